# Shared start-up of the conformance scripts (tests/conformance/NN-*.sh, sourced): the whole
# system as tests/demo/demo.sh runs it (broker with the shipped config, accounts and ACLs made by
# fr-admin, frAroundWeb, php-fpm, nginx with wss, frMhs, three frMhc) on free loopback ports in a
# temp dir, then one Python suite (lib/suite_*.py) that adds its own controllers to the home,
# runs its checks with foreign clients and prints one ok/FAIL line per check. The script fails if
# any check fails. Teardown always runs: the demo is stopped, the suite's controllers are killed,
# a tmpfs it mounted is unmounted, and the logs are printed when something failed.
# The integration tests' helpers (fr_free_port, ...) and their temp dir $T, which is ours.
source "$FR_SRC/tests/integration/lib.sh"
CONF_NAME=$(basename "$0" .sh)
# CONF_MQTT_VERSION=4: the same suite with frMhs and frAroundWeb on MQTT 3.1.1 (the demo's
# FR_DEMO_MQTT_VERSION; the page follows frAroundWeb). ctest runs each script so too, as
# conformance.NN-name-v311.
case "${CONF_MQTT_VERSION:-}" in
"" | 5) unset FR_DEMO_MQTT_VERSION ;;
4) export FR_DEMO_MQTT_VERSION=4; CONF_NAME=$CONF_NAME-v311 ;;
*) echo "CONF_MQTT_VERSION must be 4 (MQTT 3.1.1) or 5" >&2; exit 2 ;;
esac
CONF_W=$T
FR_DEMO_DIR=$CONF_W/demo
# The demo runs its daemons as an unprivileged user (tests/demo/demo.sh): it must reach the demo
# dir through our temp dir, and the suite's own controllers run as that user too.
chmod 0711 "$T"
export FR_DEMO_USER=${FR_DEMO_USER:-fr-demo}
# Debian's python3 has python3-paho-mqtt; a python3 earlier on PATH (pyenv) may not.
CONF_PY=/usr/bin/python3
export FR_BIN FR_SRC CONF_W FR_DEMO_DIR CONF_NAME
export FR_DEMO_BIN=$FR_BIN

conf_log() { printf '[%s %s] %s\n' "$(date +%T.%3N)" "$CONF_NAME" "$*" >&2; }

conf_teardown() {
	local rc=$? f pid
	FR_DEMO_DIR=$FR_DEMO_DIR bash "$FR_SRC/tests/demo/demo.sh" stop >/dev/null 2>&1
	for f in "$CONF_W"/pids/*; do
		[ -e "$f" ] || continue
		pid=$(cat "$f")
		# The suite starts its controllers with setsid: the group holds their actions too.
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
	done
	for f in "$CONF_W"/mnt/*; do
		[ -d "$f" ] && mountpoint -q "$f" && umount -l "$f"
	done
	# Built with FR_SANITIZE, a daemon reports what it found to its log, some of it only as it
	# exits (LeakSanitizer, at the stops above): each report fails the script.
	local san
	san=$(grep -l -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' \
		"$CONF_W"/demo/logs/*.log "$CONF_W"/logs/*.log 2>/dev/null)
	if [ -n "$san" ]; then
		conf_log "FAIL: sanitizer reports in $(echo $san)"
		grep -h -A30 -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' $san | head -n 120 >&2
		rc=1
	fi
	if [ "$rc" -ne 0 ]; then
		for f in "$CONF_W"/demo/logs/*.log "$CONF_W"/logs/*.log; do
			[ -s "$f" ] || continue
			echo "----- $f (last 60 lines) -----" >&2
			tail -n 60 "$f" >&2
		done
		echo "FAILED: $CONF_NAME (work dir $CONF_W kept)" >&2
	else
		rm -rf "$CONF_W"
	fi
	exit "$rc"
}
trap conf_teardown EXIT    # instead of lib.sh's

# conf_start_demo: tests/demo/demo.sh in the background until it prints that it runs. A free port
# is only free until someone binds it (other tests run beside this one): when demo.sh exits
# because it lost one, start again on new ports (like tests/browser does), at most 3 times.
conf_start_demo() {
	local attempt k i
	mkdir -p "$CONF_W/logs" "$CONF_W/pids"
	for attempt in 1 2 3; do
		for k in HTTPS HTTP BROKER MQTTS WS ANNOUNCE LINK SHIM METRICS; do
			export "FR_DEMO_${k}_PORT=$(fr_free_port)"
		done
		: >"$CONF_W/logs/demo-start.log"
		setsid bash "$FR_SRC/tests/demo/demo.sh" >>"$CONF_W/logs/demo-start.log" 2>&1 </dev/null &
		local pid=$!
		for ((i = 0; i < 1200; i++)); do
			grep -q 'fr demo is running' "$CONF_W/logs/demo-start.log" && return 0
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			conf_log "the demo did not start within 120 s"
			cat "$CONF_W/logs/demo-start.log" >&2
			return 1
		fi
		wait "$pid" 2>/dev/null
		conf_log "demo start $attempt failed:"
		tail -n 8 "$CONF_W/logs/demo-start.log" >&2
		FR_DEMO_DIR=$FR_DEMO_DIR bash "$FR_SRC/tests/demo/demo.sh" stop >/dev/null 2>&1
		rm -rf "$FR_DEMO_DIR"
	done
	return 1
}

# conf_run SUITE: starts the system and runs lib/suite_SUITE.py; exits with its status.
conf_run() {
	local suite=$1 rc t0
	for tool in mosquitto mosquitto_rr mosquitto_pub mosquitto_sub node php curl ss; do
		command -v "$tool" >/dev/null || { conf_log "FAIL: $tool missing (./fr deps)"; exit 1; }
	done
	"$CONF_PY" -c 'import paho.mqtt' 2>/dev/null ||
		{ conf_log "FAIL: python3-paho-mqtt missing (./fr deps)"; exit 1; }
	t0=$(date +%s)
	conf_start_demo || { conf_log "FAIL: the demo did not start"; exit 1; }
	conf_log "demo up in $(($(date +%s) - t0)) s (dir $FR_DEMO_DIR)"
	# Bounded as a whole: a hung check must not hold the suite until ctest's own timeout.
	timeout -k 10 "${CONF_TIMEOUT:-420}" "$CONF_PY" -u "$FR_SRC/tests/conformance/lib/suite_$suite.py"
	rc=$?
	[ "$rc" -ne 124 ] || conf_log "FAIL: the suite ran out of time (${CONF_TIMEOUT:-420} s)"
	conf_log "finished in $(($(date +%s) - t0)) s, status $rc"
	exit "$rc"
}
