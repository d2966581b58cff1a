#!/usr/bin/env bash
# The benchmarks keep working: bench/run with tiny counts (20 round trips, 100 events, 20
# simulated controllers, a 2 s footprint window, a few PHP calls) runs every bench program
# against real daemons on loopback and must print a figure in every row and exit 0.
# Behaviour only: no speed is asserted (the "met?" column is not checked).
. "$(dirname "$0")/lib.sh"

export FR_BIN FR_BENCH_OUT="$T/bench.md"
export FR_BENCH_RTT_N=20 FR_BENCH_RTT_T=30
export FR_BENCH_EVENTS_N=100 FR_BENCH_EVENTS_SHIPPED_N=100 FR_BENCH_EVENTS_T=30
export FR_BENCH_DISC_N=20 FR_BENCH_DISC_I=0.5
export FR_BENCH_FOOT_S=2 FR_BENCH_FOOT_I=1
export FR_BENCH_PHP_N=5 FR_BENCH_PHP_EXEC_N=2 FR_BENCH_PHP_T=20
benches=(rtt events discovery footprint)
# The PHP bench needs php and bridge-php; without them bench/run says "not measured" (exit 1).
if command -v php >/dev/null && [ -f "$FR_SRC/bridge-php/src/Client.php" ] && [ -x "$FR_BIN/frAroundWeb" ]; then
	benches+=(php)
fi
"$FR_SRC/bench/run" "${benches[@]}" >"$T/run.log" 2>&1 || { cat "$T/run.log" >&2; fr_fail "bench/run exited non-zero"; }
cat "$T/run.log" >&2
grep -q 'not measured' "$T/bench.md" && fr_fail "a bench was not measured"
for want in "cmd round trip median" "cmd round trip p99" "events, broker inflight 1000" \
	"events, broker inflight 20" "discovery: 20 controllers all online" "discovery: frMhs CPU steady" \
	"discovery: frMhs memory" "footprint: frMhc idle private RSS" "footprint: frMhc wake-ups/min"; do
	grep -q "^| $want" "$T/bench.md" || fr_fail "no row '$want' in the table"
done
[[ " ${benches[*]} " == *" php "* ]] && { grep -q '^| PHP publish (bridge' "$T/bench.md" || fr_fail "no PHP row"; }
# Every measured row has a number in its figure column.
awk -F'|' '/^\| / && $2 != " bench " && $3 !~ /[0-9]/ { bad = 1; print "no figure: " $0 } END { exit bad }' \
	"$T/bench.md" >&2 || fr_fail "a row without a figure"
fr_ok "every bench program ran with tiny counts and printed its figures"
