#!/usr/bin/env bash
# bench/mqtt-libs.sh: paho MQTTAsync vs libmosquitto on the agents' pattern (bench/mqtt_libs.c),
# against one mosquitto in one run, alternating the libraries round by round so that both see
# the same machine load. Prints min / median / max over the rounds for:
#   round trip with 1 in flight (median and p99 of FR_LIBS_N requests)
#   requests per second with 100 in flight (FR_LIBS_TPUT_N requests)
# Env: FR_BIN (default build/bin), FR_LIBS_ROUNDS [5], FR_LIBS_N [2000], FR_LIBS_TPUT_N [20000].
# Bounded: every client stops after its count or 60 s.
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FR_BIN:-$SRC/build/bin}
ROUNDS=${FR_LIBS_ROUNDS:-5}
N=${FR_LIBS_N:-2000}
TN=${FR_LIBS_TPUT_N:-20000}
W=$(mktemp -d "${TMPDIR:-/tmp}/fr-libs.XXXXXX")
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The shipped broker's relevant settings (broker/mosquitto.conf): no Nagle, 1000 in flight.
cat >"$W/broker.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
max_inflight_messages 1000
max_queued_messages 100000
persistence false
$( [ "$(id -u)" = 0 ] && echo "user root" )
EOF
mosquitto -c "$W/broker.conf" >"$W/broker.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

one() { # one LIB: echo + rtt(k=1) + rtt(k=100); appends RESULT lines to $W/LIB.res
	local lib=$1
	"$BIN/mqtt_libs" echo -l "$lib" -p "$port" -T 120 >"$W/echo.out" 2>"$W/echo.err" &
	local e=$!
	for _ in $(seq 100); do grep -q READY "$W/echo.out" && break; sleep 0.05; done
	"$BIN/mqtt_libs" rtt -l "$lib" -p "$port" -n "$N" -k 1 -T 60 | grep RESULT >>"$W/$lib.res"
	"$BIN/mqtt_libs" rtt -l "$lib" -p "$port" -n "$TN" -k 100 -T 60 | grep RESULT >>"$W/$lib.res"
	kill "$e" 2>/dev/null
	wait "$e" 2>/dev/null
}
for r in $(seq "$ROUNDS"); do
	for lib in paho mosq; do one "$lib"; done
	echo "round $r done" >&2
done
python3 - "$W" <<'PY'
import json, statistics, sys
w = sys.argv[1]
def load(lib):
    rows = [json.loads(l.split(" ", 1)[1]) for l in open(f"{w}/{lib}.res")]
    return [r for r in rows if r["inflight"] == 1], [r for r in rows if r["inflight"] == 100]
def mmm(v):
    return f"{min(v):.3f} / {statistics.median(v):.3f} / {max(v):.3f}"
res = {lib: load(lib) for lib in ("paho", "mosq")}
print("| measure (min / median / max over rounds) | paho MQTTAsync | libmosquitto | mosq/paho (medians) |")
print("|---|---|---|---|")
for key, name, k in (("median_ms", "round trip median, ms (1 in flight)", 0),
                     ("p99_ms", "round trip p99, ms (1 in flight)", 0),
                     ("req_per_s", "requests/s, 100 in flight", 1)):
    p = [r[key] for r in res["paho"][k]]; m = [r[key] for r in res["mosq"][k]]
    print(f"| {name} | {mmm(p)} | {mmm(m)} | {statistics.median(m)/statistics.median(p):.2f} |")
PY
