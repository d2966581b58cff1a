#!/usr/bin/env bash
# The benchmarks keep working: bench/run with tiny counts and one repetition runs every bench
# program (bench_mqtt, ctlsim, mqtt_libs, php_bench.php) against real daemons and the shipped
# broker configuration on loopback, and must print a figure in every row, judge every goal row,
# and exit 0. bench/table.py's min / median / max and goal verdicts are checked on figures
# given to it. Behaviour only: no speed is asserted (what "met?" says is not checked).
. "$(dirname "$0")/lib.sh"

# --- the table: min / median / max over repetitions, ratios within a repetition -----------------
cat >"$T/rows.tsv" <<'EOF'
1	a	latency	ms	1	3	x	≤ 1.5×	ratio<=1.5
2	a	latency	ms	2	2	x	≤ 1.5×	ratio<=1.5
3	a	latency	ms	1	1	x	≤ 1.5×	ratio<=1.5
1	b	memory	MiB	-	20	-	≤ 16 MiB	fr<=16
2	b	memory	MiB	-	10	-	≤ 16 MiB	fr<=16
3	b	memory	MiB	-	30	-	≤ 16 MiB	fr<=16
1	c	rate	/s	100	50	pct		
2	c	gone	NA	NA	NA	-		
3	c	rate	/s	100	70	pct		
EOF
python3 "$FR_SRC/bench/table.py" "$T/rows.tsv" >"$T/table.md" || fr_fail "table.py failed"
cat "$T/table.md" >&2
# a: ratios 3, 1, 1 -> median 1 (met), although the median fr (2) over the median baseline
# (1) would be 2.
grep -qF '| latency | ms | 1.000 / 1.000 / 2.000 | 1.000 / 2.000 / 3.000 | 1.00 / 1.00 / 3.00× | ≤ 1.5× | **yes** |' "$T/table.md" ||
	fr_fail "row a: min / median / max or the verdict on the median ratio is wrong"
grep -qF '| memory | MiB | - | 10.00 / 20.00 / 30.00 | - | ≤ 16 MiB | **no** |' "$T/table.md" ||
	fr_fail "row b: a goal on the figure itself"
grep -qF '| rate (**not measured in 1 of 3**) | /s | 100 / 100 / 100 | 50.0 / 60.0 / 70.0 | 50.0 / 60.0 / 70.0 % | (info) | - |' "$T/table.md" ||
	fr_fail "row c: a repetition that was not measured must be said, and not counted"
fr_ok "bench/table.py: min / median / max, ratios within a repetition, verdicts on medians"

# --- every bench program, tiny counts ------------------------------------------------------------
export FR_BIN FR_BENCH_OUT="$T/bench.md" FR_BENCH_REPS=1 FR_BENCH_T=30
export FR_BENCH_RTT_N=20 FR_BENCH_TRUE_N=10 FR_BENCH_NAGLE_N=3 FR_BENCH_CONC_N=100
export FR_BENCH_EV_N=200 FR_BENCH_EV_RATE=1000
export FR_BENCH_PHP_N=5 FR_BENCH_PHP_FRESH_N=5 FR_BENCH_PHP_EXEC_N=2
export FR_BENCH_FOOT_CMDS=50 FR_BENCH_FOOT_S=2 FR_BENCH_FOOT_I=1
export FR_BENCH_DISC_N=20 FR_BENCH_DISC_I=0.5
export FR_BENCH_LIBS_N=20 FR_BENCH_LIBS_TPUT_N=200
export FR_BENCH_SCALE_N=20 FR_BENCH_SCALE_S=3 FR_BENCH_SCALE_RATE=5
groups=(rtt conc events footprint discovery libs scale)
# The PHP group needs php, bridge-php and frAroundWeb; without them bench/run says "not
# measured" and exits 1.
if command -v php >/dev/null && [ -f "$FR_SRC/bridge-php/src/Client.php" ] && [ -x "$FR_BIN/frAroundWeb" ]; then
	groups+=(php)
else
	fr_log "note: php, bridge-php or frAroundWeb missing: the PHP group is not run"
fi
"$FR_SRC/bench/run" --help | grep -q '^SYNOPSIS' || fr_fail "bench/run --help"
"$FR_SRC/bench/run" nosuchgroup >/dev/null 2>&1; [ $? = 2 ] || fr_fail "bench/run with an unknown group: want exit 2"
TMPDIR=$T "$FR_SRC/bench/run" "${groups[@]}" >"$T/run.log" 2>&1 || { cat "$T/run.log" >&2; fr_fail "bench/run exited non-zero"; }
cat "$T/run.log" >&2
grep -q 'not measured' "$T/bench.md" && fr_fail "a figure was not measured"
want=("noop round trip, progress off: median" "noop round trip, progress off: p99"
	"noop round trip, progress on (requester TCP_NODELAY): median"
	"noop round trip, progress on, requester leaves Nagle on: p99"
	"/bin/true action vs echo running /bin/true, progress off: median"
	"noop, 1 in flight: requests/s" "noop, 100 in flight: requests/s" "/bin/true, 10 in flight"
	"events offered at 1000/s (200): delivered of offered" "events offered at 1000/s (200): delivered/s"
	"events offered as fast as each goes (200): delivered of offered"
	"frMhc private RSS (USS) after 50 commands" "frMhc idle wake-ups/min" "frMhs VmRSS after 50 commands"
	"frMhs VmHWM with 20 controllers" "time until all 20 controllers online"
	"MQTT library round trip median" "MQTT library requests/s, 100 in flight"
	"scale, 20 homes: all connected over TLS at once" "scale, 20 homes: broker CPU, steady"
	"scale, 20 homes: broker VmRSS" "scale, 20 homes: commands answered")
[[ " ${groups[*]} " == *" php "* ]] && want+=("PHP publish, kept connection" "PHP publish, fresh connection per page"
	"PHP publishes delivered of sent" "PHP request noop, fresh connection per page" "PHP request noop, kept connection")
for w in "${want[@]}"; do
	grep -qF "| $w" "$T/bench.md" || fr_fail "no row '$w' in the table"
done
# Every row has a figure for fr; every row with a goal says whether it is met.
awk -F'|' '/^\| / && $2 != " measure " && $2 !~ /^-/ {
	if ($5 !~ /[0-9]/) { bad = 1; print "no figure: " $0 }
	if ($7 !~ /info/ && $8 !~ /\*\*(yes|no)\*\*/) { bad = 1; print "goal not judged: " $0 }
} END { exit bad }' "$T/bench.md" >&2 || fr_fail "a row without a figure or a verdict"
grep -q '^- rep 1 rtt: load average .* other processes [0-9]* % of [0-9]* CPUs, steal [0-9]* %' "$T/bench.md" ||
	fr_fail "the load during the run is not recorded"
# Nothing of the run is left behind: neither its processes nor its work directory.
left=$(pgrep -a -f -- "$T/fr-bench" || true)
[ -z "$left" ] || fr_fail "bench/run left processes behind: $left"
[ -z "$(ls -d "$T"/fr-bench.* 2>/dev/null)" ] || fr_fail "bench/run left its work directory: $(ls -d "$T"/fr-bench.*)"
fr_ok "every bench program ran with tiny counts and printed its figures and verdicts"
