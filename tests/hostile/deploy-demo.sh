# Helpers of the deploy stream's hostile tests (60-79), sourced after tests/integration/lib.sh:
# the demo (the production broker config with its limits and client-id plugin, nginx in front of
# the websockets listener, frMhs and three controllers) on free loopback ports in $T/demo, a
# legitimate client measured beside an attack, and the broker's memory.
DEMO=$FR_SRC/tests/demo/demo.sh

# hd_start: the demo, stopped when the test exits.
hd_start() {
	chmod 0711 "$T"    # the demo's daemons run as an unprivileged user
	export FR_DEMO_DIR=$T/demo FR_DEMO_BIN=$FR_BIN FR_DEMO_READY_TIMEOUT=120
	local v
	for v in HTTPS HTTP BROKER MQTTS WS ANNOUNCE LINK SHIM METRICS; do
		export "FR_DEMO_${v}_PORT=$(fr_free_port)"
	done
	trap 'bash "$DEMO" stop >>"$T/demo-stop.log" 2>&1; fr_teardown' EXIT
	fr_start demo bash "$DEMO"
	fr_wait 180 "the demo is running" grep -q 'fr demo is running' "$T/demo.log"
	DEMO_PW=$(cat "$FR_DEMO_DIR/demo.password")
	# --web-http: fr-admin waits for frAroundWeb's /healthz to confirm a users change
	ADMIN=("$FR_SRC/broker/fr-admin" --state "$FR_DEMO_DIR/broker" --web-http "127.0.0.1:$FR_DEMO_METRICS_PORT")
	if [ "$(id -u)" -eq 0 ]; then ADMIN=(setpriv --reuid=fr-demo --regid=fr-demo --init-groups -- "${ADMIN[@]}"); fi
}

hd_pid() { awk -v n="$1" '$1 == n { print $2 }' "$FR_DEMO_DIR/pids"; }
hd_rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# hd_sample_rss PID FILE SECONDS: the peak VmRSS (kB) of PID over SECONDS, into FILE.
hd_sample_rss() {
	local pid=$1 out=$2 end=$(( $(date +%s) + $3 )) peak=0 r
	while [ "$(date +%s)" -lt "$end" ]; do
		r=$(hd_rss_kb "$pid") || break
		[ "$r" -le "$peak" ] || peak=$r
		sleep 0.1
	done
	echo "$peak" >"$out"
}

# hd_legit NAME SECONDS: command round trips to the kitchen through frMhs, as the demo user over
# the broker's loopback listener, one after another for SECONDS; "ok"/"fail" lines in $T/NAME.res.
hd_legit() {
	local name=$1 end=$(( $(date +%s) + $2 )) id out i=0
	: >"$T/$name.res"
	while [ "$(date +%s)" -lt "$end" ]; do
		i=$((i + 1))
		id=$(cat /proc/sys/kernel/random/uuid)
		out=$(timeout 12 mosquitto_rr -p "$FR_DEMO_BROKER_PORT" -u demo -i "demo:$name" -P "$DEMO_PW" \
			-t fr/demo/ctl/kitchen/cmd -e "fr/demo/reply/demo/$name" -W 10 \
			-m '{"id":"'"$id"'","action":"lamp","args":{"state":"toggle"},"progress":false}' 2>&1)
		if [ "$(fr_json "$out" status 2>/dev/null)" = ok ]; then echo ok; else echo "fail $out"; fi >>"$T/$name.res"
	done
}

# hd_legit_ratio NAME MIN_PERCENT: fails unless at least MIN_PERCENT of NAME's round trips succeeded.
hd_legit_ratio() {
	local ok n
	ok=$(grep -c '^ok' "$T/$1.res")
	n=$(wc -l <"$T/$1.res")
	[ "$n" -ge 5 ] || fr_fail "the legitimate client made only $n round trips"
	[ $((ok * 100)) -ge $(($2 * n)) ] || fr_fail "the legitimate client succeeded $ok/$n (< $2 %): $(grep -m3 '^fail' "$T/$1.res")"
	fr_ok "legitimate client: $ok/$n round trips succeeded during the attack"
}
