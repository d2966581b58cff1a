# Shared helpers of the integration tests: temp dir, free loopback ports, daemons started
# as real processes with their logs kept, waits with a bound, and a teardown that always runs
# and prints every log when a test fails.
set -u
FR_BIN=${FR_BIN:?set FR_BIN to the bin dir of the build}
FR_SRC=${FR_SRC:?set FR_SRC to the source tree}
T=$(mktemp -d /tmp/fr-it.XXXXXX)
FR_PIDS=()
FR_FAILED=0
FR_NAME=$(basename "$0" .sh)

fr_log() { printf '[%s %s] %s\n' "$(date +%T.%3N)" "$FR_NAME" "$*" >&2; }

# fr_is_child PID: PID is still a child of this shell. A pid recorded by fr_start whose process
# has ended may have been handed to a process of another test since (pid_max is 32768 here and
# parallel tests spawn thousands): it must never be signalled.
fr_is_child() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	set -- $st
	[ "$2" = "$$" ]
}

fr_teardown() {
	local rc=$?
	local pid
	for pid in "${FR_PIDS[@]}"; do fr_is_child "$pid" && kill -TERM "$pid" 2>/dev/null; done
	for pid in "${FR_PIDS[@]}"; do
		for _ in $(seq 50); do fr_is_child "$pid" || break; sleep 0.1; done
		fr_is_child "$pid" && kill -KILL "$pid" 2>/dev/null
	done
	# This test's port reservations (tests/tools/free_port.py), now that its servers are gone.
	local p
	for p in $(cat "$T/.ports" 2>/dev/null); do
		[ "$(cat "${FR_PORT_DIR:-/tmp/fr-ports}/$p" 2>/dev/null)" = "$$" ] &&
			rm -f "${FR_PORT_DIR:-/tmp/fr-ports}/$p"
	done
	if [ "$rc" -ne 0 ] || [ "$FR_FAILED" -ne 0 ]; then
		# one level down too: the demo (and other nested setups) keep their daemons' logs there
		for f in "$T"/*.log "$T"/*/logs/*.log; do
			[ -e "$f" ] || continue
			echo "----- $f -----" >&2
			tail -n 60 "$f" >&2
		done
		echo "FAILED: $FR_NAME (work dir $T kept)" >&2
	else
		rm -rf "$T"
	fi
}
trap fr_teardown EXIT

fr_fail() { FR_FAILED=1; fr_log "FAIL: $*"; exit 1; }
fr_ok() { fr_log "ok: $*"; }

# A free TCP/UDP port on loopback below the ephemeral range, never one this test was given
# before (tests/tools/free_port.py says why both).
fr_free_port() {
	python3 "$FR_SRC/tests/tools/free_port.py" "$T/.ports" "$$"
}

# fr_start NAME CMD...: runs CMD in the background, output in $T/NAME.log, pid in $T/NAME.pid.
fr_start() {
	local name=$1; shift
	"$@" >>"$T/$name.log" 2>&1 &
	local pid=$!
	echo "$pid" >"$T/$name.pid"
	FR_PIDS+=("$pid")
}

fr_pid() { cat "$T/$1.pid"; }

# fr_stop NAME [SIGNAL]: signal it and wait (bounded) until it is gone.
fr_stop() {
	local pid; pid=$(fr_pid "$1")
	fr_is_child "$pid" && kill -"${2:-TERM}" "$pid" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }; sleep 0.1; done
	fr_fail "$1 (pid $pid) did not stop after SIG${2:-TERM}"
}

# fr_wait SECONDS DESCRIPTION CMD...: polls CMD until it succeeds.
fr_wait() {
	local secs=$1 what=$2; shift 2
	local end=$(( $(date +%s%N) / 1000000 + secs * 1000 ))
	while [ $(( $(date +%s%N) / 1000000 )) -lt "$end" ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	fr_fail "timed out after ${secs}s waiting for: $what"
}

fr_grep_log() { grep -q -- "$2" "$T/$1.log"; }
# fr_reconnect_delays NAME...: the MQTT reconnect delays (ms) agents started with -v logged in
# $T/NAME.log, one per line, in order.
fr_reconnect_delays() {
	local n
	for n in "$@"; do sed -n 's/.*: reconnecting in \([0-9]*\) ms$/\1/p' "$T/$n.log"; done
}

fr_secret() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$1"; echo >>"$1"; chmod 600 "$1"; }

# A JSON field of a one-line JSON document: fr_json '{"a":1}' a
fr_json() { "$FR_SRC/tests/integration/bin/jget" "$1" "$2"; }

fr_proc_gone() { ! kill -0 "$1" 2>/dev/null || grep -q '^[^ ]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null; }

# fr_mosquitto NAME PORT [EXTRA_CONFIG_LINES]: a real broker on 127.0.0.1:PORT (anonymous,
# persistence in $T/NAME.db so a restart keeps sessions and retained messages).
fr_mosquitto() {
	local name=$1 port=$2 extra=${3:-}
	mkdir -p "$T/$name.db"
	cat >"$T/$name.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
persistence true
persistence_location $T/$name.db/
autosave_interval 1
# As root, mosquitto would drop to the mosquitto user, which cannot write our temp dir.
user root
$extra
CONF
	fr_start "$name" mosquitto -c "$T/$name.conf" -v
	fr_wait 10 "mosquitto $name on port $port" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
}

# frMhc refuses to run actions as root unless its config says so (or names a user to drop to);
# the tests run as root in CI: the line that says so, when it is needed.
fr_mhc_root() { [ "$(id -u)" != 0 ] || echo 'allow_root_actions = true;'; }

# fr_mhc_conf ID ADDR ANNOUNCE_PORT [ACTIONS]: writes $T/ID.conf for a demo-like controller.
fr_mhc_conf() {
	local id=$1 addr=$2 aport=$3
	local actions=${4:-'{ name = "rec"; argv = ["'"$FR_SRC"'/tests/integration/bin/record", "'"$T"'/runs-'"$id"'", "{tag}"]; timeout = 5; max_running = 8; args = ( { name = "tag"; pattern = "[a-z0-9-]{1,32}"; } ); },
  { name = "fail"; argv = ["/bin/sh", "-c", "echo bad >&2; exit 4"]; },
  { name = "hang"; argv = ["/bin/sleep", "30"]; timeout = 0.5; kill_grace = 0.2; },
  { name = "slow"; argv = ["/bin/sleep", "{secs}"]; timeout = 30; max_running = 4; args = ( { name = "secs"; pattern = "[0-9]{1,2}(\\.[0-9])?"; } ); }'}
	cat >"$T/$id.conf" <<CONF
id = "$id";
name = "Controller $id";
secret_file = "$T/home.secret";
state_dir = "$T/state-$id";
listen = { address = "$addr"; port = 0; };
announce = { address = "127.255.255.255"; port = $aport; interval = 0.3; };
ping_interval = 0.5; ping_timeout = 2;
$(fr_mhc_root)
actions = ( $actions );
sensors = ( { name = "temp"; argv = ["$FR_SRC/agents/frMhc/examples/temp"]; interval = 1; } );
CONF
}

# fr_mhs_conf HOME ANNOUNCE_PORT BROKER_PORT [MQTT_VERSION]: writes $T/mhs.conf.
fr_mhs_conf() {
	cat >"$T/mhs.conf" <<CONF
home = "$1";
secret_file = "$T/home.secret";
discovery = { address = "127.255.255.255"; port = $2; interval = 0.3; offline_after = 3; };
ping_interval = 0.5; ping_timeout = 2;
result_grace = 2;
state_dir = "$T/state-mhs";
mqtt = { uri = "mqtt://127.0.0.1:$3"; version = ${4:-5}; backoff_min = 0.1; backoff_max = 1; };
CONF
}

# fr_home [BROKER_CONFIG_LINES]: the home most tests use: its secret ($T/home.secret), free ports BPORT (a broker,
# started as "broker") and APORT (announces), and $T/mhs.conf for home1 (frMhs not started).
fr_home() {
	fr_secret "$T/home.secret"
	BPORT=$(fr_free_port)
	APORT=$(fr_free_port)
	fr_mosquitto broker "$BPORT" "${1:-}"
	fr_mhs_conf home1 "$APORT" "$BPORT"
}

# fr_users NAME:TOKEN:HOME[,HOME...] ...: writes $T/users.conf, frAroundWeb's users file: each
# user with the SHA-256 of its token and its homes (none after the second colon: no home).
fr_users() {
	local u name token homes h sep="" list
	{
		echo "users = ("
		for u in "$@"; do
			IFS=: read -r name token homes <<<"$u"
			list=""
			for h in ${homes//,/ }; do list="$list${list:+, }\"$h\""; done
			printf '%s  { name = "%s"; token_sha256 = "%s"; homes = [%s]; }' "$sep" "$name" \
				"$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)" "$list"
			sep=$',\n'
		done
		printf '\n);\n'
	} >"$T/users.conf"
}

# fr_web_conf BROKER_PORT SHIM_PORT HTTP_PORT [SHIM_SETTINGS [MORE]]: writes $T/web.conf for
# frAroundWeb: users $T/users.conf, audit $T/audit.log, the shim on 127.0.0.1:SHIM_PORT with
# SHIM_SETTINGS ('max_inflight = 16;' ...), HTTP on HTTP_PORT, MORE top-level lines.
fr_web_conf() {
	cat >"$T/web.conf" <<CONF
users_file = "$T/users.conf";
audit_file = "$T/audit.log";
shim = { address = "127.0.0.1"; port = $2; ${4:-} };
http = { address = "127.0.0.1"; port = $3; };
mqtt = { uri = "mqtt://127.0.0.1:$1"; backoff_min = 0.1; backoff_max = 1; };
${5:-}
CONF
}

# fr_retained PORT TOPIC: the retained payload of TOPIC (empty if none).
fr_retained() { mosquitto_sub -p "$1" -t "$2" -C 1 -W 2 --retained-only 2>/dev/null; }
# fr_has_retained PORT TOPIC: TOPIC has a retained message.
fr_has_retained() { [ -n "$(fr_retained "$1" "$2")" ]; }
# fr_retained_is PORT TOPIC VALUE
fr_retained_is() { [ "$(fr_retained "$1" "$2")" = "$3" ]; }
# fr_retained_field PORT TOPIC FIELD VALUE
fr_retained_field() { local v; v=$(fr_retained "$1" "$2") && [ -n "$v" ] && [ "$(fr_json "$v" "$3")" = "$4" ]; }


# fr_acl_broker NAME PORT STATE: a real mosquitto on 127.0.0.1:PORT with the accounts and the ACL
# that broker/fr-admin keeps in STATE (no anonymous clients; no TLS, loopback only).
fr_acl_broker() {
	local name=$1 port=$2 state=$3
	cat >"$T/$name.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous false
password_file $state/passwd
acl_file $state/acl
set_tcp_nodelay true
persistence false
user root
CONF
	fr_start "$name" mosquitto -c "$T/$name.conf" -v
	fr_wait 10 "mosquitto $name on port $port" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
}

# fr_asan_quarantine MB: with AddressSanitizer, keep freed memory in quarantine only up to MB,
# so a memory bound measured with RSS holds for the daemons started after this.
fr_asan_quarantine() { export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=$1"; }

# fr_vm PID FIELD: a memory figure of a process in kB (FIELD: VmRSS, VmHWM, ...); 0 if gone.
fr_vm() {
	awk -v f="$2:" '$1 == f { print $2; found = 1 } END { if (!found) print 0 }' \
		"/proc/$1/status" 2>/dev/null || echo 0
}
# fr_rate_ok OK TRIES: OK is at least 95 % of TRIES (> 0): the bar legitimate clients meet in
# the hostile stage.
fr_rate_ok() { [ "$2" -gt 0 ] && [ $(($1 * 100)) -ge $((95 * $2)) ]; }
# fr_mqttreq_ok NAME N: mqttreq started as NAME (-n N) got ok for >= 95 % of its N requests.
fr_mqttreq_ok() {
	local sum ok
	sum=$(grep SUMMARY "$T/$1.log" | sed 's/^SUMMARY //')
	fr_log "$1: $sum"
	ok=$(fr_json "$sum" statuses.ok)
	fr_rate_ok "${ok:-0}" "$2" || fr_fail "$1: ${ok:-0}/$2 ok: $sum"
}
# fr_mem_bounded NAME PID HWM0_KB MAX_KB: the VmHWM of PID grew by less than MAX_KB since it was
# HWM0_KB (both logged).
fr_mem_bounded() {
	local hwm; hwm=$(fr_vm "$2" VmHWM)
	fr_log "$1 VmHWM: $3 kB before, $hwm kB after; VmRSS now $(fr_vm "$2" VmRSS) kB"
	[ $((hwm - $3)) -lt "$4" ] || fr_fail "$1 memory grew by $(((hwm - $3) / 1024)) MiB (bound $(($4 / 1024)) MiB)"
}

# fr_shipped_broker NAME STATE PORT: the production broker configuration (broker/mosquitto.conf.in
# rendered by fr-admin broker-conf: the accounts and ACLs fr-admin keeps in STATE, the client-id
# plugin) with its plain listener on 127.0.0.1:PORT, and its TLS and websockets listeners on free
# ports (written to $T/NAME.tls-port and $T/NAME.ws-port) with a throwaway self-signed certificate.
fr_shipped_broker() {
	local name=$1 state=$2 port=$3 tport wport
	tport=$(fr_free_port)
	wport=$(fr_free_port)
	echo "$tport" >"$T/$name.tls-port"
	echo "$wport" >"$T/$name.ws-port"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
		-keyout "$T/$name.key" -out "$T/$name.pem" >>"$T/$name.openssl.log" 2>&1 ||
		fr_fail "openssl: a certificate for $name"
	"$FR_SRC/broker/fr-admin" --state "$state" broker-conf "TLS_LISTENER=$tport 127.0.0.1" \
		"WS_PORT=$wport" "LOCAL_PORT=$port" "CAFILE=$T/$name.pem" "CERTFILE=$T/$name.pem" \
		"KEYFILE=$T/$name.key" USER=root LOG_DEST=stderr \
		"CLIENTID_PLUGIN=$FR_BIN/../lib/fr_clientid.so" >"$T/$name.conf" || fr_fail "fr-admin broker-conf"
	fr_start "$name" mosquitto -c "$T/$name.conf" -v
	fr_wait 10 "broker $name on port $port" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
}

# fr_clean_stop NAME...: stops each (SIGTERM, bounded) and fails if its log holds a sanitizer
# report: in the AddressSanitizer build a leak is reported only when the process exits.
fr_clean_stop() {
	local n
	for n in "$@"; do
		fr_is_child "$(fr_pid "$n")" && fr_stop "$n"
		if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T/$n.log"; then
			fr_fail "$n: a sanitizer report in $T/$n.log"
		fi
	done
	return 0
}

# fr_rabbit MQTT_PORT [EXTRA_CONF_LINES [PLUGINS]]: a RabbitMQ 3.10 node of the test's own, a
# broker that speaks MQTT 3.1.1 only (rabbitmq_mqtt closes an MQTT 5 connection before any
# CONNACK), anonymous, its MQTT listener on 127.0.0.1:MQTT_PORT; its own epmd (in the
# foreground, so the teardown stops it), node name, cookie, ports and directories under
# $T/rmq. PLUGINS: an Erlang list's items (default rabbitmq_mqtt). Killed on exit whatever
# happens (the EXIT trap also runs fr_teardown).
fr_rabbit() {
	local mport=$1 extra=${2:-} plugins=${3:-rabbitmq_mqtt} qport eport dport
	command -v /usr/lib/rabbitmq/bin/rabbitmq-server >/dev/null ||
		fr_fail "rabbitmq-server is not installed (./fr deps)"
	qport=$(fr_free_port)   # AMQP (unused, but on loopback)
	eport=$(fr_free_port)   # epmd
	dport=$(fr_free_port)   # Erlang distribution
	mkdir -p "$T/rmq/home"
	od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$T/rmq/home/.erlang.cookie"
	chmod 600 "$T/rmq/home/.erlang.cookie"
	cat >"$T/rmq/rabbit.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:$qport
mqtt.listeners.tcp.1 = 127.0.0.1:$mport
mqtt.allow_anonymous = true
loopback_users = none
$extra
CONF
	echo "[$plugins]." >"$T/rmq/plugins"
	trap 'rc=$?; fr_rabbit_stop; (exit $rc); fr_teardown' EXIT
	fr_start epmd epmd -port "$eport" -address 127.0.0.1
	fr_start rabbit env HOME="$T/rmq/home" RABBITMQ_NODENAME="fr-$FR_NAME-$$@localhost" \
		RABBITMQ_CONFIG_FILE="$T/rmq/rabbit" RABBITMQ_ENABLED_PLUGINS_FILE="$T/rmq/plugins" \
		RABBITMQ_MNESIA_BASE="$T/rmq/mnesia" RABBITMQ_LOG_BASE="$T/rmq/log" RABBITMQ_LOGS=- \
		RABBITMQ_PID_FILE="$T/rmq/pid" RABBITMQ_DIST_PORT="$dport" ERL_EPMD_PORT="$eport" \
		ERL_EPMD_ADDRESS=127.0.0.1 /usr/lib/rabbitmq/bin/rabbitmq-server
	fr_wait 120 "RabbitMQ's MQTT listener" bash -c "exec 3<>/dev/tcp/127.0.0.1/$mport"
}

fr_rabbit_stop() {
	local p
	p=$(cat "$T/rmq/pid" 2>/dev/null) && kill -KILL "$p" 2>/dev/null
	p=$(cat "$T/rabbit.pid" 2>/dev/null) && fr_is_child "$p" && kill -KILL "$p" 2>/dev/null
	true
}

# fr_shim PORT TOKEN OP_JSON: signs in to frAroundWeb's shim on PORT with TOKEN, sends one
# operation (its "id" is set) and prints its final answer (JSON, one line).
fr_shim() {
	python3 - "$1" "$2" "$3" <<'PY'
import json, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
f = s.makefile("rwb")
def call(o):
    f.write((json.dumps(o) + "\n").encode()); f.flush()
    while True:
        m = json.loads(f.readline())
        if m.get("id") == o["id"] and "ok" in m: return m
if not call({"id": "a", "op": "auth", "token": sys.argv[2]}).get("ok"): sys.exit(1)
print(json.dumps(call(dict(json.loads(sys.argv[3]), id="q"))))
PY
}
