#!/usr/bin/env bash
# The demo's operations (issue 12.10 and the unprivileged demo of issue 12): started as root,
# every daemon runs as an unprivileged user; after SIGKILL of the nginx or the php-fpm master
# (their workers live on, holding the port), `demo.sh restart` brings a working server back;
# `demo.sh stop` leaves no process of the demo behind.
source "$FR_SRC/tests/integration/lib.sh"
DEMO=$FR_SRC/tests/demo/demo.sh
[ -f "$FR_SRC/web/node_modules/mqtt/dist/mqtt.esm.js" ] || fr_fail "web/node_modules missing (./fr deps)"

# The demo runs as an unprivileged user, which must reach its directory.
chmod 0711 "$T"
export FR_DEMO_DIR=$T/demo FR_DEMO_BIN=$FR_BIN FR_DEMO_READY_TIMEOUT=120
for v in HTTPS HTTP BROKER MQTTS WS ANNOUNCE LINK SHIM METRICS; do
	export "FR_DEMO_${v}_PORT=$(fr_free_port)"
done
demo_stop() { bash "$DEMO" stop >>"$T/demo-stop.log" 2>&1; }
trap 'demo_stop; fr_teardown' EXIT

fr_start demo bash "$DEMO"
fr_wait 180 "the demo is running" grep -q 'fr demo is running' "$T/demo.log"

# group_live PGID: a process of the group that is not a zombie (orphans are reaped by PID 1, which
# may be slow at it or not do it at all in a container).
group_live() { ps -eo pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { f = 1 } END { exit !f }'; }
# The processes of the demo: every pid of every process group in its pids file.
demo_procs() {
	local name pid
	while read -r name pid; do pgrep -g "$pid" || true; done <"$FR_DEMO_DIR/pids"
}
page_ok() { [ "$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$FR_DEMO_HTTPS_PORT/")" = 200 ]; }
fr_wait 30 "the page answers" page_ok

if [ "$(id -u)" -eq 0 ]; then
	n=0
	for p in $(demo_procs); do
		u=$(ps -o uid= -p "$p" | tr -d ' ') || continue
		[ -n "$u" ] || continue
		[ "$u" -ne 0 ] || fr_fail "demo process runs as root: $(ps -o pid,user,cmd -p "$p" | tail -n1)"
		n=$((n + 1))
	done
	[ "$n" -ge 10 ] || fr_fail "only $n demo processes found"
	fr_ok "all $n processes of the demo run unprivileged ($(ps -o user= -p "$(demo_procs | head -n1)"))"
else
	fr_log "not root: the demo runs as $(id -un) (the unprivileged-user check needs root)"
fi

# kill_master NAME PIDFILE: SIGKILL the master; its workers must still be there (the situation of
# issue 12.10), then restart must give a working page again.
kill_master() {
	local name=$1 pidf=$2 master pgid
	master=$(cat "$pidf") || fr_fail "no $pidf"
	pgid=$(awk -v n="$name" '$1 == n { print $2 }' "$FR_DEMO_DIR/pids")
	kill -KILL "$master"
	fr_wait 10 "$name master $master gone" fr_proc_gone "$master"
	group_live "$pgid" || fr_fail "no orphaned $name worker to test against"
	fr_log "$name master $master killed; orphaned workers: $(pgrep -g "$pgid" | paste -sd' ')"
	bash "$DEMO" restart "$name" >>"$T/restart.log" 2>&1 ||
		fr_fail "demo.sh restart $name: $(tail -n 3 "$T/restart.log")"
	group_live "$pgid" && fr_fail "orphaned $name workers survived the restart"
	fr_wait 30 "the page answers after restarting $name" page_ok
	fr_ok "SIGKILL of the $name master: restart stops its orphaned workers, the page works again"
}
kill_master nginx "$FR_DEMO_DIR/nginx/nginx.pid"
kill_master php-fpm "$FR_DEMO_DIR/php/php-fpm.pid"

# An orphan left behind again (nginx master killed), then stop: nothing of the demo may remain.
cp "$FR_DEMO_DIR/pids" "$T/pids.before"
kill -KILL "$(cat "$FR_DEMO_DIR/nginx/nginx.pid")"
bash "$DEMO" stop >>"$T/demo-stop.log" 2>&1 || fr_fail "demo.sh stop"
while read -r name pid; do
	group_live "$pid" && fr_fail "demo.sh stop left $name: $(ps -eo pgid=,pid=,stat=,cmd= | awk -v g="$pid" '$1 == g')"
done <"$T/pids.before"
for v in HTTPS HTTP BROKER SHIM; do
	p=FR_DEMO_${v}_PORT
	(exec 3<>"/dev/tcp/127.0.0.1/${!p}") 2>/dev/null && fr_fail "port ${!p} still open after stop"
done
fr_ok "demo.sh stop stops every process group (orphaned workers included) and frees the ports"
