#!/usr/bin/env bash
# The plain-Debian install of docs/broker.md and docs/web.md, in a temp dir instead of /etc and
# /var/lib: fr-admin init as root, the broker config rendered for the unprivileged user mosquitto
# (Mosquitto 2.0 writes its pid file after dropping privileges: issue 13), the broker started as
# root must run as mosquitto with its pid file written, `fr-admin reload` must reach it, and an
# account added while it runs must work; the nginx site rendered with docs/web.md's envsubst
# command must pass `nginx -t`.
source "$FR_SRC/tests/integration/lib.sh"
[ "$(id -u)" -eq 0 ] || fr_fail "needs root: it checks that the broker drops to the mosquitto user"
getent passwd mosquitto >/dev/null || fr_fail "no mosquitto user (Debian's mosquitto package makes it)"
ADMIN=$FR_SRC/broker/fr-admin
# Like /var/lib and /etc: every directory above the state is searchable by others.
chmod 0755 "$T"
S=$T/var-lib-fr-broker
TLS=$T/etc-fr-broker-tls
PLUGIN=$(dirname "$FR_BIN")/lib/fr_clientid.so
TPORT=$(fr_free_port) WPORT=$(fr_free_port) LPORT=$(fr_free_port)

# docs/broker.md, "Install (Debian)": init, the TLS files (the deploy hook's modes), the config.
"$ADMIN" --state "$S" init --broker-uri "mqtts://localhost:$TPORT" 2>>"$T/admin.log" || fr_fail "fr-admin init"
install -d -m 0755 "$TLS"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
	-addext subjectAltName=DNS:localhost -keyout "$T/key.pem" -out "$T/cert.pem" 2>>"$T/openssl.log" || fr_fail openssl
install -m 0644 "$T/cert.pem" "$TLS/fullchain.pem"
install -m 0644 "$T/cert.pem" "$TLS/chain.pem"
install -m 0640 -g mosquitto "$T/key.pem" "$TLS/privkey.pem"
"$ADMIN" --state "$S" broker-conf "TLS_LISTENER=$TPORT 127.0.0.1" "WS_PORT=$WPORT" "LOCAL_PORT=$LPORT" \
	"CAFILE=$TLS/chain.pem" "CERTFILE=$TLS/fullchain.pem" "KEYFILE=$TLS/privkey.pem" \
	"CLIENTID_PLUGIN=$PLUGIN" LOG_DEST=stderr >"$T/mosquitto.conf" || fr_fail "broker-conf"
grep -q '^user mosquitto$' "$T/mosquitto.conf" || fr_fail "the rendered config does not drop to mosquitto"
fr_start broker mosquitto -c "$T/mosquitto.conf"
fr_wait 10 "the broker's pid file" test -s "$S/run/broker.pid"
bpid=$(fr_pid broker)
[ "$(cat "$S/run/broker.pid")" = "$bpid" ] || fr_fail "pid file $(cat "$S/run/broker.pid") is not the broker ($bpid)"
[ "$(ps -o user= -p "$bpid")" = mosquitto ] || fr_fail "the broker runs as $(ps -o user= -p "$bpid")"
fr_ok "broker started as root runs as mosquitto, pid file $S/run/broker.pid written"

# An account added while it runs: fr-admin signals the broker through the pid file.
"$ADMIN" --state "$S" add-user carol --password carol-0123456789abcdef 2>"$T/add.log" >/dev/null || fr_fail "add-user"
grep -q "broker reloaded" "$T/add.log" || fr_fail "fr-admin did not reload the broker: $(cat "$T/add.log")"
"$ADMIN" --state "$S" reload 2>>"$T/admin.log" || fr_fail "fr-admin reload"
carol() {
	mosquitto_sub -h localhost -p "$TPORT" --cafile "$TLS/chain.pem" -u carol -I carol: \
		-P carol-0123456789abcdef -t fr/x -W 1 2>&1 | grep -q 'Timed out'
}
fr_wait 10 "carol accepted over TLS" carol
grep -q -E 'Error|Unable' "$T/broker.log" && fr_fail "the broker logged an error: $(grep -E 'Error|Unable' "$T/broker.log")"
fr_ok "fr-admin add-user and reload reach the running broker; the new account works over TLS"

# docs/web.md: the site rendered with the documented envsubst command passes nginx -t.
cmd=$(awk '/^export FR_SERVER_NAME=fr.example.org/,/fr-site.conf.template/' "$FR_SRC/docs/web.md")
[ -n "$cmd" ] || fr_fail "docs/web.md has no envsubst command for the site"
mkdir -p "$T/web/public" "$T/acme" "$T/nginx"
cmd=$(sed -e "s|/etc/letsencrypt/live/fr.example.org/fullchain.pem|$T/cert.pem|; s|/etc/letsencrypt/live/fr.example.org/privkey.pem|$T/key.pem|" \
	-e "s|FR_WEB=/srv/fr/web|FR_WEB=$T/web|; s|FR_ACME_ROOT=/var/www/letsencrypt|FR_ACME_ROOT=$T/acme|" \
	-e "s|FR_HTTPS_PORT=443|FR_HTTPS_PORT=$(fr_free_port)|; s|FR_HTTP_PORT=80|FR_HTTP_PORT=$(fr_free_port)|" \
	-e "s|/etc/nginx/sites-available/fr|$T/nginx/fr-site.conf|" <<<"$cmd")
(cd "$FR_SRC" && bash -c "$cmd") 2>"$T/envsubst.log" || fr_fail "the envsubst command: $(cat "$T/envsubst.log")"
left=$(grep -v '^[[:space:]]*#' "$T/nginx/fr-site.conf" | grep -o '\${FR_[A-Z_]*}' | sort -u)
[ -z "$left" ] || fr_fail "unrendered placeholders: $left"
printf 'pid %s/nginx.pid;\nerror_log %s/nginx-error.log;\nevents {}\nhttp { include /etc/nginx/mime.types; include %s/fr-site.conf; }\n' \
	"$T/nginx" "$T/nginx" "$T/nginx" >"$T/nginx/nginx.conf"
nginx -t -q -p "$T/nginx/" -c "$T/nginx/nginx.conf" 2>"$T/nginx-t.log" || fr_fail "nginx -t: $(cat "$T/nginx-t.log")"
fr_ok "docs/web.md's site rendering passes nginx -t"
