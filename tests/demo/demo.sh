#!/usr/bin/env bash
# The local demo: the whole system on loopback, production-style. A broker with accounts and ACLs
# (broker/mosquitto.conf.in rendered by fr-admin), frAroundWeb, php-fpm and nginx serving the web
# page over HTTPS (self-signed certificate), and a home "demo": frMhs + three controllers on
# 127.0.0.2-4 with the example actions and sensors.
#
#   demo.sh                 start everything, print the URL and the sign-in, run until Ctrl-C
#   demo.sh stop            stop a demo started elsewhere (./fr stop)
#   demo.sh restart NAME    restart one process (mosquitto, frMhs, kitchen, ...) of a running demo
#
# Started as root, every daemon runs as the unprivileged system user fr-demo (created when
# missing; FR_DEMO_USER names another), which owns the demo dir; root only prepares it.
#
# Knobs (environment): FR_DEMO_DIR (state, logs, pid file; default .demo/ of the checkout),
# FR_DEMO_BIN (default build/bin), FR_DEMO_HTTPS_PORT (8443), FR_DEMO_HTTP_PORT (8080),
# FR_DEMO_BROKER_PORT (plain MQTT on loopback, 1883), FR_DEMO_MQTTS_PORT (8883),
# FR_DEMO_WS_PORT (9001), FR_DEMO_ANNOUNCE_PORT (7400), FR_DEMO_LINK_PORT (7410),
# FR_DEMO_SHIM_PORT (7420), FR_DEMO_METRICS_PORT (7421), FR_DEMO_READY_TIMEOUT (60 s),
# FR_DEMO_USER (fr-demo; used only when started as root), FR_DEMO_HEARTBEAT (frMhs's
# heartbeat_interval, 30 s), FR_DEMO_MQTT_VERSION (4 = MQTT 3.1.1, 5 or auto: the `mqtt.version`
# of frMhs and frAroundWeb; unset, frMhs speaks 5 and frAroundWeb "auto").
# Another broker instead of the demo's Mosquitto (a RabbitMQ cluster: tests/cluster/04-page.sh):
# FR_DEMO_MQTT_URIS, a comma-separated list of MQTT URIs, the `mqtt.uri` list of frMhs and
# frAroundWeb; no Mosquitto is started then. FR_DEMO_BROKER_PORT must name that broker's plain
# MQTT 3.1.1 port on loopback where frMhs's retained statuses can be read (the start-up check),
# FR_DEMO_MQTT_WS its websocket listener (host:port, path /mqtt) that nginx proxies the page to;
# its accounts (the ones fr-admin makes in $FR_DEMO_DIR/broker, with the same passwords) are the
# caller's to create, before demo.sh starts.
set -euo pipefail
FR_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
D=$(realpath -m "${FR_DEMO_DIR:-$FR_ROOT/.demo}")
BIN=$(realpath -m "${FR_DEMO_BIN:-$FR_ROOT/build/bin}")
EX=$FR_ROOT/agents/frMhc/examples
ADMIN=$FR_ROOT/broker/fr-admin
HTTPS_PORT=${FR_DEMO_HTTPS_PORT:-8443}
HTTP_PORT=${FR_DEMO_HTTP_PORT:-8080}
BROKER_PORT=${FR_DEMO_BROKER_PORT:-1883}
MQTTS_PORT=${FR_DEMO_MQTTS_PORT:-8883}
WS_PORT=${FR_DEMO_WS_PORT:-9001}
ANNOUNCE_PORT=${FR_DEMO_ANNOUNCE_PORT:-7400}
LINK_PORT=${FR_DEMO_LINK_PORT:-7410}
SHIM_PORT=${FR_DEMO_SHIM_PORT:-7420}
METRICS_PORT=${FR_DEMO_METRICS_PORT:-7421}
READY_TIMEOUT=${FR_DEMO_READY_TIMEOUT:-60}
RUN_USER=${FR_DEMO_USER:-fr-demo}
MQTT_VERSION=${FR_DEMO_MQTT_VERSION:-}
case "$MQTT_VERSION" in
"" | 4 | 5) ;;
auto) MQTT_VERSION='"auto"' ;;
*) echo "demo.sh: FR_DEMO_MQTT_VERSION must be 4 (MQTT 3.1.1), 5 or auto" >&2; exit 2 ;;
esac
MQTT_URIS=${FR_DEMO_MQTT_URIS:-}
MQTT_URI_CONF="\"mqtt://127.0.0.1:$BROKER_PORT\""
[ -z "$MQTT_URIS" ] || MQTT_URI_CONF="[\"${MQTT_URIS//,/\", \"}\"]"
MQTT_WS=${FR_DEMO_MQTT_WS:-127.0.0.1:$WS_PORT}
S=$D/broker                     # fr-admin's state: accounts, passwd, acl, persistence
CTLS=(kitchen hall garage)
HOME_ID=demo
DEMO_USER=demo

# --- process bookkeeping: "$D/pids" has one "NAME PID" line per process; "$D/cmd/NAME" its argv.

pid_of() { [ -f "$D/pids" ] && awk -v n="$1" '$1 == n { print $2 }' "$D/pids"; }

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# group_alive PGID: some process of the group still exists (not a zombie). Every process is
# started as the leader of its own group (setsid), and daemons' workers stay in it even when
# their master is killed (nginx, php-fpm): the group, not the leader, is what holds the ports.
group_alive() {
	local p
	for p in $(pgrep -g "$1" 2>/dev/null); do
		grep -q '^[^ ]* ([^)]*) Z' "/proc/$p/stat" 2>/dev/null || return 0
	done
	return 1
}

# wait_gone PGID SECONDS: 0 once the group PGID is empty, 1 if something of it is still there.
wait_gone() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		group_alive "$1" || return 0
		sleep 0.1
	done
	return 1
}

# start NAME CMD...: runs CMD (as $RUN_USER when we are root) in its own process group (so a stop
# reaches its children), output appended to logs/NAME.log; remembers its pid and argv for stop and
# restart.
start() {
	local name=$1
	shift
	printf '%s\0' "$@" >"$D/cmd/$name"
	setsid "${AS_USER[@]}" "$@" >>"$D/logs/$name.log" 2>&1 </dev/null &
	local pid=$!
	{ grep -v "^$name " "$D/pids" 2>/dev/null || true; echo "$name $pid"; } >"$D/pids.tmp"
	mv -f "$D/pids.tmp" "$D/pids"
	if [ "$name" = frAroundWeb ]; then
		echo "$pid" >"$S/web/frAroundWeb.pid"
		# fr-admin runs as the demo's user too (it signals frAroundWeb after a users change).
		[ "$(id -u)" -ne 0 ] || chown "$RUN_USER:" "$S/web/frAroundWeb.pid"
	fi
}

# stop_group PGID: SIGTERM to the whole group, SIGKILL to what is left after 5 s, then wait until
# the group is empty (its ports and sockets are free then).
stop_group() {
	group_alive "$1" || return 0
	kill -TERM -- "-$1" 2>/dev/null || true
	wait_gone "$1" 5 && return 0
	kill -KILL -- "-$1" 2>/dev/null || true
	wait_gone "$1" 5 || echo "demo.sh: process group $1 survived SIGKILL" >&2
}

# stop_one NAME: stop NAME's process group.
stop_one() {
	local pid
	pid=$(pid_of "$1")
	[ -z "$pid" ] || stop_group "$pid"
}

# demo_stop: `demo.sh stop` from another terminal. The foreground demo.sh stops everything
# itself on SIGTERM (and then ends); what is left (it was killed, say) is stopped here.
demo_stop() {
	local fg
	fg=$(cat "$D/demo.pid" 2>/dev/null || true)
	if [ -n "$fg" ] && alive "$fg" && grep -q demo.sh "/proc/$fg/cmdline" 2>/dev/null; then
		kill -TERM "$fg" 2>/dev/null || true
		local i
		for ((i = 0; i < 200; i++)); do alive "$fg" || break; sleep 0.1; done
	fi
	rm -f "$D/demo.pid"
	if [ -n "$fg" ] && [ ! -f "$D/pids" ]; then
		echo "the demo has stopped"
		return 0
	fi
	demo_cleanup
}

# demo_cleanup: stop every process group in $D/pids (orphaned workers included), newest first.
demo_cleanup() {
	[ -f "$D/pids" ] || { echo "no demo running (no $D/pids)"; return 0; }
	echo "stopping the demo"
	local name pid
	# Reverse start order: the page's servers first, the broker last.
	tac "$D/pids" | while read -r name pid; do
		if group_alive "$pid"; then
			kill -TERM -- "-$pid" 2>/dev/null && echo "  $name ($pid)"
		fi
	done
	while read -r name pid; do
		stop_group "$pid"
	done <"$D/pids"
	rm -f "$D/pids" "$S/web/frAroundWeb.pid"
}

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# wait_for SECONDS WHAT CMD...: poll CMD every 0.2 s until it succeeds.
wait_for() {
	local secs=$1 what=$2 i
	shift 2
	for ((i = 0; i < secs * 5; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	echo "demo.sh: timed out after ${secs}s waiting for $what (logs in $D/logs/)" >&2
	return 1
}
# run_as_init: AS_USER, the prefix that runs a daemon as $RUN_USER when we are root: its own uid
# and gid and supplementary groups, no capabilities at all, no way to gain any (no_new_privs).
run_as_init() {
	AS_USER=()
	[ "$(id -u)" -eq 0 ] || return 0
	AS_USER=(setpriv "--reuid=$RUN_USER" "--regid=$RUN_USER" --init-groups --inh-caps=-all
		--bounding-set=-all --no-new-privs --)
}

demo_restart() {
	local name=$1
	[ -f "$D/cmd/$name" ] || { echo "demo.sh: no process '$name' in $D" >&2; exit 1; }
	local -a argv
	mapfile -d '' -t argv <"$D/cmd/$name"
	stop_one "$name"
	run_as_init
	# The old pid files and socket must not pass for the new process's.
	case $name in
	php-fpm) rm -f "$D/php/php-fpm.pid" "$D/php/fpm.sock" ;;
	nginx) rm -f "$D/nginx/nginx.pid" ;;
	esac
	start "$name" "${argv[@]}"
	case $name in
	mosquitto) wait_for "$READY_TIMEOUT" "the broker on port $BROKER_PORT" tcp_open "$BROKER_PORT" ;;
	frAroundWeb) wait_for "$READY_TIMEOUT" "the shim on port $SHIM_PORT" tcp_open "$SHIM_PORT" ;;
	php-fpm) wait_for "$READY_TIMEOUT" "php-fpm's socket" test -S "$D/php/fpm.sock" ;;
	nginx) wait_for "$READY_TIMEOUT" "nginx on port $HTTPS_PORT" tcp_open "$HTTPS_PORT" ;;
	esac
	echo "restarted $name ($(pid_of "$name"))"
}

case "${1:-}" in
stop) demo_stop; exit 0 ;;
restart) [ $# -eq 2 ] || { echo "usage: demo.sh restart NAME" >&2; exit 2; }; demo_restart "$2"; exit 0 ;;
"") ;;
*) echo "usage: demo.sh [stop | restart NAME]" >&2; exit 2 ;;
esac

if [ -f "$D/pids" ]; then
	while read -r _ pid; do
		if alive "$pid"; then
			echo "a demo runs already ($D/pids); ./fr stop first" >&2
			exit 1
		fi
	done <"$D/pids"
	rm -f "$D/pids"   # left by a demo that was killed
fi
for b in frMhs frMhc frAroundWeb; do
	[ -x "$BIN/$b" ] || { echo "demo.sh: $BIN/$b missing (./fr build)" >&2; exit 1; }
done
PHP_FPM=$(command -v php-fpm8.2 || command -v php-fpm || ls /usr/sbin/php-fpm* 2>/dev/null | head -n1 || true)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$PHP_FPM" ] || { echo "demo.sh: php-fpm not found (./fr deps)" >&2; exit 1; }
[ -x "$NGINX" ] || { echo "demo.sh: nginx not found (./fr deps)" >&2; exit 1; }
[ -f "$FR_ROOT/web/node_modules/mqtt/dist/mqtt.esm.js" ] && [ -f "$FR_ROOT/web/node_modules/uplot/dist/uPlot.iife.min.js" ] ||
	{ echo "demo.sh: web/node_modules missing (./fr deps runs npm ci in web/)" >&2; exit 1; }

umask 077
mkdir -p "$D/logs" "$D/cmd" "$D/tls" "$D/php/sessions" "$D/nginx/tmp"
chmod 700 "$D"
ROOT=0
[ "$(id -u)" -ne 0 ] || ROOT=1
if [ "$ROOT" -eq 1 ]; then
	# Nothing of the demo runs as root: a system user owns the demo dir and runs every daemon.
	getent passwd "$RUN_USER" >/dev/null ||
		useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$RUN_USER" ||
		{ echo "demo.sh: cannot create the user $RUN_USER" >&2; exit 1; }
	chown -R "$RUN_USER:" "$D"
fi
run_as_init
for f in "$FR_ROOT/web/public/index.php" "$BIN/frMhs" "$EX/lamp"; do
	"${AS_USER[@]}" test -r "$f" || { echo "demo.sh: $f is not readable by $RUN_USER (the checkout must be)" >&2; exit 1; }
done
"${AS_USER[@]}" test -w "$D" ||
	{ echo "demo.sh: $RUN_USER cannot reach $D (every directory above it must be searchable by others)" >&2; exit 1; }

# --- certificate: self-signed for localhost (nginx and the broker's TLS listener) -------------
if [ ! -f "$D/tls/cert.pem" ]; then
	openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=localhost" \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout "$D/tls/key.pem" -out "$D/tls/cert.pem" 2>/dev/null
fi

# --- accounts: fr-admin's state, the home, the demo user -------------------------------------
# fr-admin signals the broker through $S/broker.pid: it must not signal another demo's broker.
admin() { "${AS_USER[@]}" "$ADMIN" --state "$S" "$@"; }
admin init --broker-uri "mqtt://127.0.0.1:$BROKER_PORT" 2>>"$D/logs/fr-admin.log"
[ -d "$S/homes/$HOME_ID" ] || admin add-home "$HOME_ID" --install-dir "$S/homes/$HOME_ID" 2>>"$D/logs/fr-admin.log"
if [ ! -f "$D/demo.password" ] || [ ! -d "$S/users/$DEMO_USER" ]; then
	openssl rand -hex 12 >"$D/demo.password"
	[ ! -d "$S/users/$DEMO_USER" ] || admin remove-user "$DEMO_USER" 2>>"$D/logs/fr-admin.log"
	admin add-user "$DEMO_USER" --homes "$HOME_ID" --password "$(cat "$D/demo.password")" \
		2>>"$D/logs/fr-admin.log" >/dev/null
fi
DEMO_PW=$(cat "$D/demo.password")

# --- broker: the production template, loopback ports, our TLS files ---------------------------
# Started as $RUN_USER (or the calling user), so the config's user setting is not used.
BUSER=$(id -un)
[ "$ROOT" -eq 0 ] || BUSER=$RUN_USER
admin broker-conf STATE="$S" TLS_LISTENER="$MQTTS_PORT 127.0.0.1" CAFILE="$D/tls/cert.pem" \
	CERTFILE="$D/tls/cert.pem" KEYFILE="$D/tls/key.pem" WS_PORT="$WS_PORT" \
	LOCAL_PORT="$BROKER_PORT" USER="$BUSER" LOG_DEST=stderr \
	CLIENTID_PLUGIN="$(dirname "$BIN")/lib/fr_clientid.so" >"$D/mosquitto.conf"

# --- frAroundWeb -----------------------------------------------------------------------------
cat >"$D/frAroundWeb.conf" <<CONF
instance = "demo";
users_file = "$S/web/users.conf";
audit_file = "$D/audit.log";
shim = { address = "127.0.0.1"; port = $SHIM_PORT; unix = "$D/shim.sock"; };
http = { address = "127.0.0.1"; port = $METRICS_PORT; };
history = { file = "$D/history.db"; };
mqtt = { uri = $MQTT_URI_CONF; username = "fr-web";
         password_file = "$S/web/password"; backoff_min = 0.2; backoff_max = 2;${MQTT_VERSION:+ version = $MQTT_VERSION;} };
CONF

# --- home server and controllers --------------------------------------------------------------
cat >"$D/frmhs.conf" <<CONF
home = "$HOME_ID";
secret_file = "$S/homes/$HOME_ID/home.secret";
discovery = { address = "127.255.255.255"; port = $ANNOUNCE_PORT; interval = 2; offline_after = 3; };
state_dir = "$D/state-frMhs";
heartbeat_interval = ${FR_DEMO_HEARTBEAT:-30};
mqtt = { uri = $MQTT_URI_CONF; username = "home-$HOME_ID";
         password_file = "$S/homes/$HOME_ID/mqtt.pw"; version = ${MQTT_VERSION:-5}; backoff_min = 0.2; backoff_max = 2; };
# Home Assistant MQTT discovery (README.md, "Use with Home Assistant"): an HA on the demo's
# broker with the demo user's account sees the controllers as devices.
homeassistant = { enabled = true; };
# A pseudo-terminal stands in for the M5Stack (tests/integration/bin/ptydev): what frMhs
# shows on it is appended to $D/m5stack/dev.N (docs/display-protocol.md).
m5stack = { port = "$D/m5stack.tty"; baud = 115200; };
CONF
mkdir -p "$D/m5stack"
i=2
for c in "${CTLS[@]}"; do
	cat >"$D/$c.conf" <<CONF
id = "$c";
name = "$(tr a-z A-Z <<<"${c:0:1}")${c:1}";
secret_file = "$S/homes/$HOME_ID/home.secret";
state_dir = "$D/state-$c";
listen = { address = "127.0.0.$i"; port = $LINK_PORT; };
announce = { address = "127.255.255.255"; port = $ANNOUNCE_PORT; interval = 2; };
$([ "$(id -u)" != 0 ] || echo 'allow_root_actions = true;')
actions = (
  { name = "lamp"; argv = ["$EX/lamp", "$D/state-$c/lamp", "{state}"]; timeout = 5;
    args = ( { name = "state"; pattern = "on|off|toggle"; default = "toggle"; } ); },
  { name = "slow"; argv = ["$EX/slow", "{seconds}"]; timeout = 30;
    args = ( { name = "seconds"; pattern = "[1-9]|1[0-9]|20"; default = "5"; } ); }
);
sensors = (
  { name = "temp"; argv = ["$EX/temp"]; interval = 5; unit = "°C"; device_class = "temperature"; },
  { name = "lamp"; argv = ["$EX/lampstate", "$D/state-$c/lamp"]; interval = 1; }
);
CONF
	i=$((i + 1))
done

# --- php-fpm: our own pool on a unix socket in $D (not the system service) -------------------
cat >"$D/php/php-fpm.conf" <<CONF
; Demo php-fpm: one pool for the fr page, socket and sessions in the demo dir.
[global]
pid = $D/php/php-fpm.pid
error_log = $D/logs/php-fpm-error.log
daemonize = no

[fr]
listen = $D/php/fpm.sock
listen.mode = 0600
pm = static
pm.max_children = 4
clear_env = yes
catch_workers_output = yes
env[FR_SHIM] = unix://$D/shim.sock
php_admin_value[session.save_path] = $D/php/sessions
php_admin_value[error_log] = $D/logs/php.log
php_admin_flag[log_errors] = on
php_admin_flag[display_errors] = off
CONF

# --- nginx: its own prefix and config in $D; the site is web/nginx/fr-site.conf.template -------
render_site() {
	sed -e "s|\${FR_SERVER_NAME}|localhost|g" \
		-e "s|\${FR_HTTPS_PORT}|$HTTPS_PORT|g" \
		-e "s|\${FR_HTTP_PORT}|$HTTP_PORT|g" \
		-e "s|\${FR_LISTEN_ADDR}|127.0.0.1:|g" \
		-e "s|\${FR_CERT}|$D/tls/cert.pem|g" \
		-e "s|\${FR_CERT_KEY}|$D/tls/key.pem|g" \
		-e "s|\${FR_WEB}|$FR_ROOT/web|g" \
		-e "s|\${FR_PHP}|unix:$D/php/fpm.sock|g" \
		-e "s|\${FR_MQTT_WS}|$MQTT_WS|g" \
		-e "s|\${FR_ACME_ROOT}|$D/acme|g" \
		"$FR_ROOT/web/nginx/fr-site.conf.template"
}
mkdir -p "$D/acme"
render_site >"$D/nginx/fr-site.conf"
{
	cat <<CONF
# Demo nginx: generated by tests/demo/demo.sh; the site itself is web/nginx/fr-site.conf.template.
daemon off;
worker_processes 1;
pid $D/nginx/nginx.pid;
error_log $D/logs/nginx-error.log warn;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log $D/logs/nginx-access.log;
    client_body_temp_path $D/nginx/tmp/body;
    proxy_temp_path $D/nginx/tmp/proxy;
    fastcgi_temp_path $D/nginx/tmp/fastcgi;
    uwsgi_temp_path $D/nginx/tmp/uwsgi;
    scgi_temp_path $D/nginx/tmp/scgi;
    include $D/nginx/fr-site.conf;
}
CONF
} >"$D/nginx/nginx.conf"
# Files written above by root belong to the user that runs the daemons.
[ "$ROOT" -eq 0 ] || chown -R "$RUN_USER:" "$D"
"${AS_USER[@]}" "$NGINX" -t -q -p "$D/nginx/" -e "$D/logs/nginx-error.log" -c "$D/nginx/nginx.conf"

# --- start everything --------------------------------------------------------------------------
echo $$ >"$D/demo.pid"
trap 'demo_cleanup; rm -f "$D/demo.pid"; exit 0' INT TERM
trap 'rc=$?; [ $rc -eq 0 ] || { demo_cleanup; rm -f "$D/demo.pid"; }; exit $rc' EXIT

retained() {
	mosquitto_sub -p "$BROKER_PORT" -u "$DEMO_USER" -I "$DEMO_USER:" -P "$DEMO_PW" -t "$1" -C 1 -W 2 \
		--retained-only 2>/dev/null
}
all_online() {
	local c
	for c in "${CTLS[@]}"; do
		[ "$(retained "fr/$HOME_ID/ctl/$c/status")" = online ] || return 1
	done
}

[ -n "$MQTT_URIS" ] || start mosquitto mosquitto -c "$D/mosquitto.conf"
wait_for 20 "the broker on port $BROKER_PORT" tcp_open "$BROKER_PORT"
start frAroundWeb "$BIN/frAroundWeb" -f -c "$D/frAroundWeb.conf"
start m5stack "$FR_ROOT/tests/integration/bin/ptydev" "$D/m5stack.tty" "$D/m5stack"
start frMhs "$BIN/frMhs" -f -c "$D/frmhs.conf"
for c in "${CTLS[@]}"; do start "$c" "$BIN/frMhc" -f -c "$D/$c.conf"; done
start php-fpm "$PHP_FPM" --nodaemonize --fpm-config "$D/php/php-fpm.conf"
start nginx "$NGINX" -p "$D/nginx/" -e "$D/logs/nginx-error.log" -c "$D/nginx/nginx.conf"
wait_for "$READY_TIMEOUT" "the shim on port $SHIM_PORT" tcp_open "$SHIM_PORT"
wait_for "$READY_TIMEOUT" "php-fpm's socket" test -S "$D/php/fpm.sock"
wait_for "$READY_TIMEOUT" "nginx on port $HTTPS_PORT" tcp_open "$HTTPS_PORT"
wait_for "$READY_TIMEOUT" "the three controllers online" all_online
# A port that answered may belong to someone else: every process started here must still run.
while read -r name pid; do
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "demo.sh: $name exited during start-up; the end of its log:" >&2
		tail -n 5 "$D/logs/$name.log" >&2 || true
		exit 1
	fi
done <"$D/pids"

URL="https://localhost:$HTTPS_PORT/"
RUNS_AS="as $(id -un)"
[ "$ROOT" -eq 0 ] || RUNS_AS="as the unprivileged user $RUN_USER"
cat <<MSG

fr demo is running $RUNS_AS (logs in $D/logs/; Ctrl-C or ./fr stop ends it).

  web page       $URL   (self-signed certificate: accept it once)
  sign in        user: $DEMO_USER   password: $DEMO_PW
  broker         mqtt://127.0.0.1:$BROKER_PORT (loopback), mqtts://127.0.0.1:$MQTTS_PORT,
                 wss://localhost:$HTTPS_PORT/mqtt through nginx
  home           $HOME_ID: frMhs + controllers kitchen (127.0.0.2), hall (.3), garage (.4)

  M5Stack        a pseudo-terminal; what frMhs shows on it: tail -f $D/m5stack/dev.1

Watch everything:
  mosquitto_sub -p $BROKER_PORT -u $DEMO_USER -I $DEMO_USER: -P $DEMO_PW -t 'fr/#' -v
Switch the kitchen lamp and wait for the result:
  id=\$(cat /proc/sys/kernel/random/uuid)
  mosquitto_rr -p $BROKER_PORT -u $DEMO_USER -i "$DEMO_USER:\$id" -P $DEMO_PW -q 1 -t fr/$HOME_ID/ctl/kitchen/cmd \\
      -e "fr/$HOME_ID/reply/$DEMO_USER/\$id" \\
      -m '{"id":"'"\$id"'","action":"lamp","args":{"state":"on"},"progress":false}'
Talk to a controller directly over the LAN protocol:
  $BIN/frcmd -s $S/homes/$HOME_ID/home.secret 127.0.0.2:$LINK_PORT kitchen lamp state=toggle

MSG
# Stay in the foreground until a signal; processes restarted by `demo.sh restart` are not our
# children, so wait on a sleep rather than on them.
while :; do
	sleep 1 &
	wait $! || true
done
