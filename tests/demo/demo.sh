#!/usr/bin/env bash
# The local demo: a broker, a home server and three controllers on loopback addresses, with the
# example actions and sensors. `./fr demo` runs this in the foreground (Ctrl-C stops it);
# `./fr stop` stops a demo started elsewhere. State and logs live in .demo/ of the checkout.
set -euo pipefail
FR_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
D=$FR_ROOT/.demo
BIN=$FR_ROOT/build/bin
EX=$FR_ROOT/agents/frMhc/examples
BROKER_PORT=${FR_DEMO_BROKER_PORT:-1883}
ANNOUNCE_PORT=${FR_DEMO_ANNOUNCE_PORT:-7400}

demo_stop() {
	[ -f "$D/pids" ] || { echo "no demo running"; return 0; }
	echo "stopping the demo"
	while read -r name pid; do
		kill -TERM "$pid" 2>/dev/null && echo "  $name ($pid)"
	done <"$D/pids"
	for _ in $(seq 50); do
		local alive=0
		while read -r _ pid; do kill -0 "$pid" 2>/dev/null && alive=1; done <"$D/pids"
		[ "$alive" = 0 ] && break
		sleep 0.1
	done
	while read -r _ pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$D/pids"
	rm -f "$D/pids"
}

if [ "${1:-}" = stop ]; then
	demo_stop
	exit 0
fi
if [ -f "$D/pids" ]; then
	echo "a demo seems to run already (.demo/pids); ./fr stop first" >&2
	exit 1
fi

mkdir -p "$D/logs"
chmod 700 "$D"
[ -f "$D/home.secret" ] || { od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$D/home.secret"; chmod 600 "$D/home.secret"; }

start() { # start NAME CMD...
	local name=$1; shift
	"$@" >>"$D/logs/$name.log" 2>&1 &
	echo "$name $!" >>"$D/pids"
}

cat >"$D/mosquitto.conf" <<CONF
# Demo broker: loopback only, anonymous (the production config with accounts is broker/).
listener $BROKER_PORT 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
persistence true
persistence_location $D/
user root
CONF
[ "$(id -u)" = 0 ] || sed -i '/^user root$/d' "$D/mosquitto.conf"
cat >"$D/frmhs.conf" <<CONF
home = "demo";
secret_file = "$D/home.secret";
discovery = { address = "127.255.255.255"; port = $ANNOUNCE_PORT; interval = 2; offline_after = 3; };
mqtt = { uri = "mqtt://127.0.0.1:$BROKER_PORT"; };
CONF
i=2
for c in kitchen hall garage; do
	cat >"$D/$c.conf" <<CONF
id = "$c";
name = "$(tr a-z A-Z <<<"${c:0:1}")${c:1}";
secret_file = "$D/home.secret";
state_dir = "$D/state-$c";
listen = { address = "127.0.0.$i"; port = 7410; };
announce = { address = "127.255.255.255"; port = $ANNOUNCE_PORT; interval = 2; };
actions = (
  { name = "lamp"; argv = ["$EX/lamp", "$D/state-$c/lamp", "{state}"]; timeout = 5;
    args = ( { name = "state"; pattern = "on|off|toggle"; default = "toggle"; } ); },
  { name = "slow"; argv = ["$EX/slow", "{seconds}"]; timeout = 30;
    args = ( { name = "seconds"; pattern = "[1-9]|1[0-9]|20"; default = "5"; } ); }
);
sensors = (
  { name = "temp"; argv = ["$EX/temp"]; interval = 5; },
  { name = "lamp"; argv = ["$EX/lampstate", "$D/state-$c/lamp"]; interval = 1; }
);
CONF
	i=$((i + 1))
done

trap 'demo_stop; exit 0' INT TERM
start mosquitto mosquitto -c "$D/mosquitto.conf"
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$BROKER_PORT") 2>/dev/null && break; sleep 0.1; done
start frMhs "$BIN/frMhs" -f -c "$D/frmhs.conf"
for c in kitchen hall garage; do start "$c" "$BIN/frMhc" -f -c "$D/$c.conf"; done

cat <<MSG

fr demo is running (logs in .demo/logs/, Ctrl-C or ./fr stop to end it).

  broker         mqtt://127.0.0.1:$BROKER_PORT
  home           demo: frMhs + controllers kitchen (127.0.0.2), hall (.3), garage (.4)

Watch everything:
  mosquitto_sub -p $BROKER_PORT -t 'fr/#' -v
Switch the kitchen lamp and wait for the result:
  mosquitto_rr -p $BROKER_PORT -t fr/demo/ctl/kitchen/cmd -e fr/demo/reply/me \\
      -m '{"id":"'\$(date +%s%N)'","action":"lamp","args":{"state":"on"},"progress":false}'
Talk to a controller directly over the LAN protocol:
  $BIN/frcmd -s $D/home.secret 127.0.0.2:7410 kitchen lamp state=toggle

MSG
wait
