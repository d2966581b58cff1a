#!/usr/bin/env bash
# What Mosquitto's persistence costs and what a crash loses, measured with the shipped broker
# (docs/broker.md, "What a crash loses" has one run). On loopback, bounded in count and time.
#   tests/deploy/measure-persistence.sh [RETAINED_COUNTS...]     (default: 1000 10000 30000)
#   FR_AUTOSAVE_INTERVAL=S   measure another autosave_interval than the shipped one
#   FR_CRASH_RUNS=N          crash runs (default 3; 0 measures only the save cost)
# 1. Save cost: a broker holding N retained messages of fr's sizes (a status, an info of ~600
#    bytes and sensor states per controller) is told to save (SIGUSR1) five times; strace times
#    each save from opening mosquitto.db.new to its rename, fsync included. Also the file size.
# 2. Crash loss with the shipped settings: a retained counter published 20 times a second and a
#    queue of QoS 1 messages for an offline persistent session; SIGKILL at a random point after
#    the autosave interval; after the restart, how many seconds of changes were gone.
set -euo pipefail
FR_SRC=$(cd "$(dirname "$0")/../.." && pwd)
COUNTS=("${@:-1000 10000 30000}")
read -r -a COUNTS <<<"${COUNTS[*]}"
T=$(mktemp -d /tmp/fr-persist.XXXXXX)
trap 'kill $(cat "$T"/*.pid 2>/dev/null) 2>/dev/null; rm -rf "$T"' EXIT
port() { python3 "$FR_SRC/tests/tools/free_port.py" "$T/.ports" "$$"; }
interval=${FR_AUTOSAVE_INTERVAL:-$(sed -n 's/^autosave_interval //p' "$FR_SRC/broker/mosquitto.conf.in")}
onchanges=$(sed -n 's/^autosave_on_changes //p' "$FR_SRC/broker/mosquitto.conf.in")

broker() {  # broker NAME PORT: anonymous, the shipped persistence lines, in $T/NAME
	mkdir -p "$T/$1"
	{
		echo "listener $2 127.0.0.1"
		echo "allow_anonymous true"
		echo "user root"
		echo "max_queued_messages 100000"
		grep -E '^(persistence|autosave_|persistent_client_expiration)' "$FR_SRC/broker/mosquitto.conf.in" |
			sed -e "s|^persistence_location .*|persistence_location $T/$1/|" \
				-e "s|^autosave_interval .*|autosave_interval $interval|"
	} >"$T/$1.conf"
	mosquitto -c "$T/$1.conf" >>"$T/$1.log" 2>&1 &
	echo $! >"$T/$1.pid"
	for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0; sleep 0.1; done
	echo "broker $1 did not start" >&2; exit 1
}

echo "Mosquitto $(mosquitto -h | sed -n 's/^mosquitto version //p'); shipped: autosave_interval $interval, autosave_on_changes ${onchanges:-false}"
echo "machine: $(nproc) cores, $(df -h "$T" | awk 'NR==2 {print $1}') for $T"
echo
echo "1. save cost (5 saves each, SIGUSR1)"
printf '%10s %10s %12s %12s\n' retained db_bytes median_ms max_ms
for n in "${COUNTS[@]}"; do
	p=$(port)
	broker "s$n" "$p"
	# fr's retained topics per controller: status, info (~600 bytes), two sensor states.
	python3 - "$n" >"$T/pub.txt" <<'PY'
import sys
n = int(sys.argv[1]); info = '{"name":"Kitchen","actions":[{"name":"lamp","args":[{"name":"state","pattern":"on|off|toggle","default":"toggle"}]},{"name":"slow","args":[{"name":"seconds","pattern":"[1-9]|1[0-9]|20","default":"5"}]}],"sensors":["temp","lamp"],"last_seen":"2026-11-30T18:00:00Z","version":"0.1.0","padding":"' + "x" * 300 + '"}'
i = 0
while i < n:
    c = i // 4
    for leaf, body in (("status", "online"), ("info", info), ("state/temp", '{"value":"21.5","ts":"2026-11-30T18:00:00Z"}'), ("state/lamp", '{"value":"off","ts":"2026-11-30T18:00:00Z"}')):
        if i < n:
            print(f"fr/h{c // 3}/ctl/c{c % 3}/{leaf}\t{body}")
            i += 1
PY
	while IFS=$'\t' read -r t m; do printf '%s\n' "$m" | mosquitto_pub -p "$p" -r -q 0 -t "$t" -s; done <"$T/pub.txt" 2>/dev/null &
	wait $!
	bpid=$(cat "$T/s$n.pid")
	: >"$T/strace.log"
	strace -f -p "$bpid" -e trace=openat,rename,fsync -ttt -o "$T/strace.log" &
	spid=$!
	sleep 1
	for _ in 1 2 3 4 5; do kill -USR1 "$bpid"; sleep 1; done
	kill "$spid"; wait "$spid" 2>/dev/null || true
	size=$(stat -c %s "$T/s$n/mosquitto.db")
	python3 - "$T/strace.log" "$n" "$size" <<'PY'
import re, statistics, sys
start, d = None, []
for line in open(sys.argv[1]):
    m = re.match(r"\d+\s+(\d+\.\d+) (\w+)\((.*)", line)
    if not m: continue
    t, call, args = float(m.group(1)), m.group(2), m.group(3)
    if call == "openat" and "mosquitto.db.new" in args: start = t
    elif call == "rename" and start is not None: d.append((t - start) * 1000); start = None
print("%10s %10s %12.1f %12.1f" % (sys.argv[2], sys.argv[3], statistics.median(d), max(d)) if d else "%10s no saves seen" % sys.argv[2])
PY
	kill "$bpid"; wait "$bpid" 2>/dev/null || true
done

echo
echo "2. crash loss (SIGKILL), autosave_interval $interval, ${FR_CRASH_RUNS:-3} runs"
for ((run = 0; run < ${FR_CRASH_RUNS:-3}; run++)); do
	p=$(port)
	rm -rf "$T/c"
	broker c "$p"
	# An offline persistent session subscribed to the queue topic.
	mosquitto_sub -p "$p" -i q-offline -c -q 1 -t q -C 1 -W 5 >/dev/null 2>&1 &
	sleep 1
	mosquitto_pub -p "$p" -q 1 -t q -m start >/dev/null
	wait $! || true
	start=$(date +%s.%N)
	killat=$(python3 -c "import random; print(${interval:-300} + random.uniform(1, ${interval:-300}))")
	i=0
	while python3 -c "import sys,time; sys.exit(time.time() - $start > $killat)"; do
		i=$((i + 1))
		mosquitto_pub -p "$p" -r -q 1 -t counter -m "$i $(date +%s.%N)" 2>/dev/null
		mosquitto_pub -p "$p" -q 1 -t q -m "$i" 2>/dev/null
		sleep 0.05
	done
	last=$i
	killed=$(date +%s.%N)
	kill -KILL "$(cat "$T/c.pid")"
	wait "$(cat "$T/c.pid")" 2>/dev/null || true
	broker c "$p"
	got=$(mosquitto_sub -p "$p" -t counter -C 1 -W 5 --retained-only 2>/dev/null || echo "0 $start")
	n=${got%% *}
	ts=${got#* }
	queued=$(mosquitto_sub -p "$p" -i q-offline -c -q 1 -t q -W 5 2>/dev/null | grep -vc start || true)
	python3 - "$last" "$n" "$ts" "$killed" "$queued" <<'PY'
import sys
last, n, ts, killed, queued = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
print(f"   published {last} changes; after the crash the retained counter was {n} "
      f"({killed - ts:.1f} s before the kill; {last - n} changes lost), "
      f"{queued} of {last} queued messages delivered ({last - queued} lost)")
PY
	kill "$(cat "$T/c.pid")"; wait "$(cat "$T/c.pid")" 2>/dev/null || true
done
