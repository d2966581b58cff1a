#!/usr/bin/env bash
# Issue 12 item 8: nginx with web/nginx/fr-site.conf.template must never copy the request's Host
# header into the Content-Security-Policy or the HTTPS redirect ("Host: a;b" gave "wss://a;b;",
# a directive of the attacker's choosing). Real nginx on loopback with the rendered site; 2000
# requests with hostile Host headers (bounded, 60 s at most) beside a legitimate client.
# Asserts: every CSP names the configured host, redirects go to it, the legitimate client keeps
# >= 95 % success, nginx's memory stays bounded.
. "$(dirname "$0")/../integration/lib.sh"

command -v nginx >/dev/null || fr_fail "nginx is not installed (./fr deps)"
HTTPS_PORT=$(fr_free_port)
HTTP_PORT=$(fr_free_port)
N=$T/nginx
mkdir -p "$N/tmp" "$N/acme"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
	-keyout "$N/key.pem" -out "$N/cert.pem" >>"$T/openssl.log" 2>&1 || fr_fail "certificate"
sed -e "s|\${FR_SERVER_NAME}|localhost|g" -e "s|\${FR_HTTPS_PORT}|$HTTPS_PORT|g" \
	-e "s|\${FR_HTTP_PORT}|$HTTP_PORT|g" -e "s|\${FR_LISTEN_ADDR}|127.0.0.1:|g" \
	-e "s|\${FR_CERT}|$N/cert.pem|g" -e "s|\${FR_CERT_KEY}|$N/key.pem|g" \
	-e "s|\${FR_WEB}|$FR_SRC/web|g" -e "s|\${FR_PHP}|unix:$N/no-php.sock|g" \
	-e "s|\${FR_MQTT_WS}|127.0.0.1:1|g" -e "s|\${FR_ACME_ROOT}|$N/acme|g" \
	"$FR_SRC/web/nginx/fr-site.conf.template" >"$N/site.conf"
grep -v '^ *#' "$N/site.conf" | grep -q '\${FR_' && fr_fail "a placeholder is left in the site"
{
	[ "$(id -u)" -ne 0 ] || echo "user root;"
	cat <<CONF
daemon off;
worker_processes 1;
pid $N/nginx.pid;
error_log $T/nginx-error.log warn;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path $N/tmp/body;
    proxy_temp_path $N/tmp/proxy;
    fastcgi_temp_path $N/tmp/fastcgi;
    uwsgi_temp_path $N/tmp/uwsgi;
    scgi_temp_path $N/tmp/scgi;
    include $N/site.conf;
}
CONF
} >"$N/nginx.conf"
fr_start nginx nginx -p "$N/" -e "$T/nginx-error.log" -c "$N/nginx.conf"
fr_wait 10 "nginx on $HTTPS_PORT" bash -c "exec 3<>/dev/tcp/127.0.0.1/$HTTPS_PORT"
worker() { pgrep -P "$(fr_pid nginx)" | head -n 1; }
fr_wait 10 "an nginx worker" worker

cat >"$T/h21.py" <<'PY'
import http.client, random, ssl, sys, threading, time
https, http_port = int(sys.argv[1]), int(sys.argv[2])
want = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' wss://localhost:%d; worker-src 'self' blob:; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'" % https)
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def fail(msg): print("FAIL: " + msg, flush=True); sys.exit(1)

def get(host, path="/style.css", port=None, tls=True):
    c = (http.client.HTTPSConnection("127.0.0.1", port or https, context=ctx, timeout=10) if tls
         else http.client.HTTPConnection("127.0.0.1", port, timeout=10))
    c.putrequest("GET", path, skip_host=True)
    c.putheader("Host", host)
    c.endheaders()
    r = c.getresponse(); r.read(); c.close()
    return r.status, r.getheader("Content-Security-Policy"), r.getheader("Location")

# The issue's case and its relatives: the CSP is the configured one, whatever the Host says.
for host in ("a;b", "a;b:%d" % https, "evil.example", "x; script-src *", "localhost;default-src *"):
    st, csp, _ = get(host)
    if csp != want: fail("Host %r gave CSP %r (status %d)" % (host, csp, st))
    # nginx refuses some of them outright (400); whatever it redirects goes to localhost.
    st, _, loc = get(host, "/x?y=1", http_port, False)
    if st not in (301, 400) or (st == 301 and loc != "https://localhost:%d/x?y=1" % https):
        fail("Host %r redirected to %r (status %d)" % (host, loc, st))
if get("evil.example", "/", http_port, False)[0] != 301: fail("no redirect for Host evil.example")
print("ok: Host headers with ';' and other hosts: the CSP and the redirect name localhost", flush=True)

stop = False
legit = [0, 0]
def legitimate():
    while not stop:
        legit[0] += 1
        try:
            st, csp, _ = get("localhost:%d" % https)
            legit[1] += st == 200 and csp == want
        except Exception:
            pass
        time.sleep(0.005)
t = threading.Thread(target=legitimate); t.start()
hostile = ["a;b", "x" * 200 + ";y", "a b", "\tevil", "evil.example:1;img-src *", "[::1];x",
           "localhost%3Bx", "ä;ö", "a\\b", "a\"b"]
bad = []
end = time.time() + 60
n = 0
while n < 2000 and time.time() < end:
    h = random.choice(hostile) + str(n % 7)
    try:
        st, csp, _ = get(h)
        if csp is not None and csp != want: bad.append((h, csp))
    except (http.client.HTTPException, OSError):
        pass
    n += 1
stop = True; t.join()
if bad: fail("%d responses carried another CSP, e.g. %r" % (len(bad), bad[0]))
print("hostile requests: %d; legitimate: %d of %d ok" % (n, legit[1], legit[0]), flush=True)
if n < 2000: fail("only %d hostile requests in 60 s" % n)
if legit[0] == 0 or legit[1] < 0.95 * legit[0]: fail("legitimate client: %d of %d" % (legit[1], legit[0]))
PY
rss0=$(fr_vm "$(worker)" VmRSS)
python3 "$T/h21.py" "$HTTPS_PORT" "$HTTP_PORT" || fr_fail "Host header checks"
rss1=$(fr_vm "$(worker)" VmRSS)
fr_log "nginx worker RSS: $rss0 KiB before, $rss1 KiB after"
[ "$rss1" -gt 0 ] && [ $((rss1 - rss0)) -lt 32768 ] || fr_fail "nginx worker grew by $((rss1 - rss0)) KiB"
fr_ok "hostile Host headers: CSP and redirect always name the configured host; legitimate >= 95 %; memory bounded"
