#!/usr/bin/env bash
# The public broker's access control with a real Mosquitto configured from broker/mosquitto.conf.in
# and accounts made by broker/fr-admin: homes and users see only their own homes, users may only
# send commands and display text, anonymous/wrong passwords/untrusted TLS are refused, account
# changes apply on reload without a restart, and a generated frmhs.conf is ready to use.
. "$(dirname "$0")/lib.sh"

ADMIN=$FR_SRC/broker/fr-admin
S=$T/state
admin() { "$ADMIN" --state "$S" "$@" 2>>"$T/admin.log"; }

# --- accounts ------------------------------------------------------------------------------
LPORT=$(fr_free_port)
TPORT=$(fr_free_port)
WPORT=$(fr_free_port)
admin init --broker-uri "mqtts://127.0.0.1:$TPORT" >/dev/null || fr_fail "fr-admin init"
admin add-home home1 --install-dir "$S/homes/home1" >/dev/null || fr_fail "add-home home1"
admin add-home home2 >/dev/null || fr_fail "add-home home2"
out=$(admin add-user alice --homes home1) || fr_fail "add-user alice"
APW=$(sed -n 's/^password: //p' <<<"$out")
grep -q '^token:' <<<"$out" && fr_fail "a separate token was printed: $out"
out=$(admin add-user bob --homes home2 --password bob-pw) || fr_fail "add-user bob"
grep -q '^password:' <<<"$out" && fr_fail "a given password was printed: $out"
H1PW=$(cat "$S/homes/home1/mqtt.pw")
H2PW=$(cat "$S/homes/home2/mqtt.pw")
WEBPW=$(cat "$S/web/password")
[[ $APW =~ ^[0-9a-f]{32}$ ]] || fr_fail "generated password: '$APW'"
[[ $(cat "$S/homes/home1/home.secret") =~ ^[0-9a-f]{64}$ ]] || fr_fail "home secret format"
[ "$(stat -c %a "$S/homes/home1/home.secret")" = 600 ] || fr_fail "home secret mode"
# One secret per user: the shim token is the broker password (docs/broker.md).
sha=$(printf '%s' "$APW" | sha256sum | cut -d' ' -f1)
grep -qF "{ name = \"alice\"; token_sha256 = \"$sha\"; homes = [\"home1\"]; }" "$S/web/users.conf" ||
	fr_fail "users file: $(cat "$S/web/users.conf")"
grep -qF "{ name = \"bob\";" "$S/web/users.conf" || fr_fail "users file lacks bob"
grep -qrF "$APW" "$S" && fr_fail "alice's password is stored in clear"
fr_ok "fr-admin: accounts, secrets, token hashes and frAroundWeb's users file"

for bad in "add-home bad.name" "add-home home1" "add-user home-x" "add-user fr-web" \
	"add-user dave --homes nohome" "grant alice nohome" "revoke bob home1" "add-home $(printf 'x%.0s' {1..64})"; do
	# shellcheck disable=SC2086
	if "$ADMIN" --state "$S" $bad >/dev/null 2>"$T/err"; then fr_fail "fr-admin $bad succeeded"; fi
	[ -s "$T/err" ] || fr_fail "fr-admin $bad: no error message"
done
"$ADMIN" --help | grep -q '^SYNOPSIS' || fr_fail "fr-admin --help"
fr_ok "fr-admin rejects bad and reserved names, unknown homes and duplicates with a message"

# The shipped configuration is the template rendered with the production defaults.
diff <(FR_STATE='' "$ADMIN" --state /var/lib/fr/broker broker-conf) "$FR_SRC/broker/mosquitto.conf" >&2 ||
	fr_fail "broker/mosquitto.conf is not the render of mosquitto.conf.in (fr-admin broker-conf)"

# --- TLS material: a test CA with a server certificate for 127.0.0.1, and an unrelated CA ---
tls() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=fr-test-ca -keyout "$T/ca.key" -out "$T/ca.pem" &&
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=fr-other-ca -keyout "$T/other.key" -out "$T/other.pem" &&
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-subj /CN=localhost -keyout "$T/server.key" -out "$T/server.csr" &&
	printf '%s\n' 'subjectAltName=IP:127.0.0.1,DNS:localhost' 'basicConstraints=CA:FALSE' \
		'extendedKeyUsage=serverAuth' >"$T/server.ext" &&
	openssl x509 -req -in "$T/server.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
		-days 2 -extfile "$T/server.ext" -out "$T/server.pem"
}
tls >>"$T/openssl.log" 2>&1 || fr_fail "openssl: test certificates"

# --- the broker ------------------------------------------------------------------------------
"$ADMIN" --state "$S" broker-conf "TLS_LISTENER=$TPORT 127.0.0.1" "WS_PORT=$WPORT" "LOCAL_PORT=$LPORT" \
	"CAFILE=$T/ca.pem" "CERTFILE=$T/server.pem" "KEYFILE=$T/server.key" \
	USER=root LOG_DEST=stderr "CLIENTID_PLUGIN=$FR_BIN/../lib/fr_clientid.so" >"$T/broker.conf" || fr_fail "broker-conf"
fr_start broker mosquitto -c "$T/broker.conf" -v
for p in "$LPORT" "$TPORT" "$WPORT"; do
	fr_wait 10 "broker listening on $p" bash -c "exec 3<>/dev/tcp/127.0.0.1/$p"
done
fr_wait 5 "broker pid file" test -s "$S/run/broker.pid"
# Mosquitto before 2.0.12 ignores the address of a websockets listener (upstream issue #2085) and
# listens on every address: docs/broker.md has the firewall rule that closes it. Newer ones must
# honour it.
if ss -Hltn "sport = :$WPORT" | awk '{print $4}' | grep -qv '^127\.0\.0\.1:'; then
	case $(mosquitto -h 2>&1 | sed -n 's/^mosquitto version //p') in
	1.* | 2.0.[0-9] | 2.0.1[01]) fr_log "note: this mosquitto binds websockets to all addresses; firewall port $WPORT" ;;
	*) fr_fail "the websocket listener is bound beyond loopback: $(ss -Hltn "sport = :$WPORT")" ;;
	esac
fi

pub() {  # USER PASSWORD TOPIC MESSAGE [mosquitto_pub options]: errors are the caller's business
	local u=$1 p=$2 t=$3 m=$4
	shift 4
	mosquitto_pub -h 127.0.0.1 -p "$LPORT" -u "$u" -I "$u": -P "$p" -q 1 -t "$t" -m "$m" "$@"
}
sub() {  # NAME USER PASSWORD TOPIC...: a long-running subscriber logging "topic payload" lines
	local name=$1 u=$2 p=$3 a=()
	shift 3
	for t in "$@"; do a+=(-t "$t"); done
	fr_start "$name" mosquitto_sub -h 127.0.0.1 -p "$LPORT" -u "$u" -I "$u": -P "$p" -q 1 -v "${a[@]}"
}
got() { grep -qxF -- "$2" "$T/$1.log"; }
# ready NAME USER PASSWORD TOPIC: publish TOPIC until subscriber NAME has it (so it is subscribed)
ready_probe() { pub "$2" "$3" "$4" "ready-$1" >/dev/null 2>&1; got "$1" "$4 ready-$1"; }
ready() { fr_wait 10 "subscriber $1 subscribed" ready_probe "$@"; }

# --- homes are isolated ------------------------------------------------------------------------
sub h1 home-home1 "$H1PW" 'fr/#' 'fr/home2/#'
sub h2 home-home2 "$H2PW" 'fr/home2/#'
ready h1 home-home1 "$H1PW" fr/home1/probe
ready h2 home-home2 "$H2PW" fr/home2/probe
pub home-home2 "$H2PW" fr/home2/status online -r || fr_fail "home2 publishes its status"
pub home-home2 "$H2PW" fr/home2/ctl/x/state/t '{"value":2}' || fr_fail "home2 publishes state"
pub home-home1 "$H1PW" fr/home2/ctl/x/cmd evil-from-home1 >/dev/null 2>&1
pub home-home1 "$H1PW" fr/home2/status offline-from-home1 >/dev/null 2>&1
pub home-home1 "$H1PW" fr/home1/status online -r || fr_fail "home1 publishes its status"
pub home-home2 "$H2PW" fr/home2/mark m1 || fr_fail "home2 marker"
fr_wait 10 "home1's own status" got h1 "fr/home1/status online"
fr_wait 10 "home2's marker" got h2 "fr/home2/mark m1"
grep -q '^fr/home2/' "$T/h1.log" && fr_fail "home1 read home2: $(grep '^fr/home2/' "$T/h1.log")"
grep -q 'from-home1' "$T/h2.log" && fr_fail "home1 wrote into home2: $(grep from-home1 "$T/h2.log")"
got h2 "fr/home2/ctl/x/state/t {\"value\":2}" || fr_fail "home2 does not see its own state"
# Retained messages come in the order of the subscriptions: home2's first, then home1's own.
first=$(mosquitto_sub -h 127.0.0.1 -p "$LPORT" -u home-home1 -I home-home1: -P "$H1PW" -v -C 1 -W 10 \
	-t fr/home2/status -t fr/home1/status 2>/dev/null)
[ "$first" = "fr/home1/status online" ] || fr_fail "home1 subscribing to home2's retained status got: $first"
fr_ok "a home's account reads and writes only fr/<its home>/#"

# --- a user: read granted homes, write only cmd and display ------------------------------------
sub alice alice "$APW" 'fr/#'
ready alice home-home1 "$H1PW" fr/home1/probe
pub home-home2 "$H2PW" fr/home2/ctl/x/state/t '{"value":"secret"}' || fr_fail "home2 state"
pub home-home1 "$H1PW" fr/home1/ctl/x/state/t '{"value":21.5}' || fr_fail "home1 state"
fr_wait 10 "alice receives home1's state" got alice 'fr/home1/ctl/x/state/t {"value":21.5}'
grep -q '^fr/home2/' "$T/alice.log" && fr_fail "alice read home2: $(grep '^fr/home2/' "$T/alice.log")"
[ "$(mosquitto_sub -h 127.0.0.1 -p "$LPORT" -u alice -I alice: -P "$APW" -t fr/home1/status -C 1 -W 5 --retained-only 2>/dev/null)" = online ] ||
	fr_fail "alice cannot read home1's retained status"
for t in fr/home1/status fr/home1/ctl/x/info fr/home1/ctl/x/state/t fr/home1/ctl/x/result \
	fr/home1/reply/alice/1 fr/home2/ctl/x/cmd fr/home2/display fr/other; do
	pub alice "$APW" "$t" "forbidden-alice" >/dev/null 2>&1
done
pub alice "$APW" fr/home1/ctl/x/cmd '{"id":"a-1","action":"lamp"}' || fr_fail "alice publishes a command"
pub alice "$APW" fr/home1/display 'hello from alice' || fr_fail "alice publishes display text"
fr_wait 10 "home1 receives alice's command" got h1 'fr/home1/ctl/x/cmd {"id":"a-1","action":"lamp"}'
fr_wait 10 "home1 receives alice's display text" got h1 'fr/home1/display hello from alice'
pub home-home2 "$H2PW" fr/home2/mark m2 || fr_fail "home2 marker"
fr_wait 10 "home2's second marker" got h2 "fr/home2/mark m2"
grep -q forbidden-alice "$T/h1.log" "$T/h2.log" && fr_fail "alice wrote where she may not: $(grep forbidden-alice "$T/h1.log" "$T/h2.log")"
# Replies to alice's requests go under the home (frMhs can write only there), where she reads.
pub home-home1 "$H1PW" fr/home1/reply/alice/r1 '{"type":"result"}' || fr_fail "home1 reply"
fr_wait 10 "alice receives her reply" got alice 'fr/home1/reply/alice/r1 {"type":"result"}'
fr_ok "a user reads granted homes only and writes only .../ctl/<ctl>/cmd and .../display"

# frAroundWeb's account: reads every home, writes commands and display text only.
sub web fr-web "$WEBPW" 'fr/#'
ready web home-home2 "$H2PW" fr/home2/probe
pub fr-web "$WEBPW" fr/home2/ctl/y/cmd '{"id":"w-1","action":"x"}' || fr_fail "fr-web command"
pub fr-web "$WEBPW" fr/home2/status forbidden-web >/dev/null 2>&1
pub fr-web "$WEBPW" fr/home2/display 'web text' || fr_fail "fr-web display"
fr_wait 10 "home2 receives frAroundWeb's display" got h2 'fr/home2/display web text'
got h2 'fr/home2/ctl/y/cmd {"id":"w-1","action":"x"}' || fr_fail "home2 lacks frAroundWeb's command"
grep -q forbidden-web "$T/h2.log" && fr_fail "fr-web wrote a home's status"
fr_ok "frAroundWeb reads all homes and writes only commands and display text"

# --- authentication ----------------------------------------------------------------------------
is_refused() {  # mosquitto_sub ARGS...: fails with the broker's refusal (message in $T/refused)
	local rc=0
	mosquitto_sub -h 127.0.0.1 -C 1 -W 5 -t 'fr/#' "$@" >/dev/null 2>"$T/refused" || rc=$?
	[ "$rc" -ne 0 ] && grep -qE 'not authorised|Connection Refused' "$T/refused"
}
refused() { is_refused "$@" || fr_fail "not refused ($*): $(cat "$T/refused")"; }
refused -p "$LPORT"
refused -p "$LPORT" -u alice -I alice: -P wrong
refused -p "$LPORT" -u alice -I alice:
refused -p "$LPORT" -u home-home1 -I home-home1: -P "$H2PW"
refused -p "$LPORT" -u nobody -I nobody: -P "$APW"
fr_ok "anonymous, wrong and missing passwords and unknown users are refused"

# --- TLS -------------------------------------------------------------------------------------------
tls_pub() { mosquitto_pub -h 127.0.0.1 -p "$TPORT" -u alice -I alice: -P "$APW" -q 1 -t fr/home1/display "$@"; }
tls_pub --cafile "$T/ca.pem" -m 'over tls' 2>"$T/err" || fr_fail "TLS with the test CA: $(cat "$T/err")"
fr_wait 10 "home1 receives the TLS message" got h1 'fr/home1/display over tls'
tls_pub --cafile "$T/other.pem" -m 'other ca' 2>/dev/null && fr_fail "TLS accepted a certificate from an untrusted CA"
tls_pub --tls-use-os-certs -m 'os certs' 2>/dev/null && fr_fail "the system CA store trusts the test CA?"
tls_pub -m 'plain' 2>/dev/null && fr_fail "plain MQTT accepted on the TLS listener"
# mosquitto_pub's --tls-version only sets a floor, so ask openssl for exactly one version (the
# client side at security level 0, so only the broker can be the one refusing).
s_client() {
	openssl s_client -connect "127.0.0.1:$TPORT" -CAfile "$T/ca.pem" -verify_return_error \
		-cipher 'DEFAULT@SECLEVEL=0' "$@" </dev/null >>"$T/s_client.log" 2>&1
}
s_client -tls1_2 || fr_fail "TLS 1.2 refused"
s_client -tls1_1 && fr_fail "TLS 1.1 accepted"
refused -p "$TPORT" --cafile "$T/ca.pem" -u alice -I alice: -P wrong
fr_ok "TLS: the test CA is trusted; another CA, no TLS and TLS 1.1 fail; TLS 1.2 works; passwords still checked"

# --- WebSocket (behind nginx in production): a raw MQTT 3.1.1 CONNECT over ws ------------------
ws_connack() {  # USER PASSWORD: prints the CONNACK return code
	python3 - "$WPORT" "$1" "$2" <<'PY'
import base64, os, socket, struct, sys
port, user, pw = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3].encode()
s = socket.create_connection(("127.0.0.1", port), timeout=5)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(("GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n" % key).encode())
buf = b""
while b"\r\n\r\n" not in buf:
    d = s.recv(4096)
    if not d: sys.exit("no handshake")
    buf += d
head, buf = buf.split(b"\r\n\r\n", 1)
if b" 101 " not in head.split(b"\r\n")[0]: sys.exit("handshake: %r" % head)
def lp(b): return struct.pack("!H", len(b)) + b
body = lp(b"MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 30) + lp(user + b":ws") + lp(user) + lp(pw)
pkt = bytes([0x10, len(body)]) + body
mask = os.urandom(4)
s.sendall(bytes([0x82, 0x80 | len(pkt)]) + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(pkt)))
while len(buf) < 6:
    d = s.recv(4096)
    if not d: break
    buf += d
if len(buf) >= 6 and buf[0] == 0x82 and buf[2] == 0x20:
    print(buf[5])
else:
    print("closed")
PY
}
[ "$(ws_connack alice "$APW")" = 0 ] || fr_fail "websocket: alice not accepted"
[ "$(ws_connack alice wrong)" = 5 ] || fr_fail "websocket: a wrong password is not refused"
fr_ok "the websocket listener serves MQTT with the same authentication"

# --- changes apply on reload, without a restart --------------------------------------------------
bpid=$(fr_pid broker)
admin add-home home3 >/dev/null || fr_fail "add-home home3"
H3PW=$(cat "$S/homes/home3/mqtt.pw")
fr_wait 10 "home3's account accepted after reload" pub home-home3 "$H3PW" fr/home3/status online -r
admin grant alice home3 >/dev/null || fr_fail "grant alice home3"
admin revoke alice home1 >/dev/null || fr_fail "revoke alice home1"
grep -q 'topic read fr/home1/#' <(sed -n '/^user alice$/,/^$/p' "$S/acl") && fr_fail "acl still grants alice home1"
# A new subscription: home1's retained status (first in the request) must no longer come; home3's
# (second) shows that the subscription was served.
alice_lost_home1() {
	local first
	first=$(mosquitto_sub -h 127.0.0.1 -p "$LPORT" -u alice -I alice: -P "$APW" -v -C 1 -W 5 \
		-t fr/home1/status -t fr/home3/status 2>/dev/null)
	[ "$first" = "fr/home3/status online" ]
}
fr_wait 15 "alice's new subscriptions lose home1" alice_lost_home1
# Alice's subscriber from before the revoke is still connected: it loses home1 too.
pub home-home1 "$H1PW" fr/home1/ctl/x/state/t '{"value":"after-revoke"}' || fr_fail "home1 state"
pub home-home3 "$H3PW" fr/home3/ctl/x/state/t '{"value":"barrier"}' || fr_fail "home3 state"
fr_wait 10 "alice's old connection receives home3" got alice 'fr/home3/ctl/x/state/t {"value":"barrier"}'
grep -q after-revoke "$T/alice.log" && fr_fail "alice's open connection still reads home1 after revoke"
pub alice "$APW" fr/home1/ctl/x/cmd '{"id":"a-2","action":"lamp"}' >/dev/null 2>&1
pub alice "$APW" fr/home3/display 'alice on home3' || fr_fail "alice publishes to home3"
sub h3 home-home3 "$H3PW" 'fr/home3/#'
ready h3 home-home3 "$H3PW" fr/home3/probe
pub alice "$APW" fr/home3/display 'alice on home3 again' || fr_fail "alice publishes to home3"
pub home-home1 "$H1PW" fr/home1/mark m3 || fr_fail "home1 marker"
fr_wait 10 "home1's marker" got h1 "fr/home1/mark m3"
fr_wait 10 "home3 receives alice" got h3 'fr/home3/display alice on home3 again'
grep -q '"a-2"' "$T/h1.log" && fr_fail "alice still writes commands to home1 after revoke"
admin remove-user bob >/dev/null || fr_fail "remove-user bob"
fr_wait 10 "bob refused after remove-user" is_refused -p "$LPORT" -u bob -P bob-pw
kill -0 "$bpid" 2>/dev/null || fr_fail "the broker was restarted"
fr_ok "add-home, grant, revoke and remove-user apply on reload without a restart, also to open connections"

# --- the generated frMhs configuration -----------------------------------------------------------
"$FR_BIN/frMhs" --check-config -c "$S/homes/home1/frmhs.conf" >"$T/check.log" 2>&1 ||
	fr_fail "frMhs --check-config on the generated frmhs.conf: $(cat "$T/check.log")"
grep -q '^# discovery = ' "$S/homes/home1/frmhs.conf" || fr_fail "discovery is not left commented out"
# And it works as is against the TLS listener, given the test CA (production: the system store).
sed 's|^  # ca_file = .*|  ca_file = "'"$T/ca.pem"'";|' "$S/homes/home1/frmhs.conf" >"$T/frmhs.conf"
echo "state_dir = \"$T/state-mhs\";" >>"$T/frmhs.conf"   # not the machine's /var/lib/fr/frmhs
births() { grep -c '^fr/home1/status online$' "$T/h1.log"; }
n=$(births)
fr_start mhs "$FR_BIN/frMhs" -f -v -c "$T/frmhs.conf"
more_births() { [ "$(births)" -gt "$n" ]; }
fr_wait 15 "frMhs online through TLS with its generated account" more_births
fr_grep_log broker "on port $TPORT" || fr_fail "no TLS connection in the broker's log"
fr_ok "a generated frmhs.conf passes frMhs --check-config and connects over TLS"
