#!/usr/bin/env bash
# The real web page on a cluster node (issue 16, item 5: "the page on node 3 shows the true status
# within a documented time"). A 3-node RabbitMQ 3.10 cluster (cluster.sh; web-MQTT on /mqtt) and
# the demo (tests/demo/demo.sh, its external-broker knobs): frMhs (uri = the three nodes, version
# "auto", heartbeat_interval 2) and its three frMhc on node 1, frAroundWeb (the same list), php-fpm
# and nginx serving web/ with the page's MQTT over wss proxied to node 3's web-MQTT; the accounts
# are the ones fr-admin made, in RabbitMQ with the same passwords. The page runs in Debian's
# headless Chromium (tests/cluster/pagewatch.cjs), signed in as the demo user.
#
# Asserted, from what the page shows (#conn data-state/data-mqtt, section.home data-status/
# data-sync, article.ctl data-status):
#  1. signed in and live on MQTT 3.1.1, the home and its controllers online, the sync answered;
#  2. node 1 (frMhs's) SIGKILLed: frMhs moves to node 2 or 3 by itself; the page that stays
#     connected (node 3 lives) hears the home's next heartbeat and never shows the home or a
#     controller offline (nor the home stale unless 3 beats were really missed); a page opened right after the kill shows the home and every
#     controller online from its sync answer;
#  3. frMhs hung (SIGSTOP: its connection stays open, so no will): both pages show the home stale
#     ("no heartbeat for N s") once it missed 3 beats (docs/topics.md, fr/<home>/heartbeat), not
#     before; online again with its next beat after SIGCONT;
#  4. a controller stopped (SIGTERM: it says bye): both pages show it offline (docs/topics.md:
#     "at once when it says it is shutting down"), the others online;
#  5. frMhs killed for good (SIGKILL): the broker node it is on publishes its will, both pages show
#     the home offline.
# FIGURES: each of those times, from the event on.
. "$(dirname "$0")/../integration/lib.sh"
. "$FR_SRC/tests/cluster/cluster.sh"

PW_JS=$FR_SRC/tests/browser/node_modules/playwright-core
[ -x /usr/bin/chromium ] || fr_fail "/usr/bin/chromium missing (./fr deps)"
[ -d "$PW_JS" ] || fr_fail "tests/browser/node_modules missing (./fr deps runs npm ci)"
[ -f "$FR_SRC/web/node_modules/mqtt/dist/mqtt.esm.js" ] || fr_fail "web/node_modules missing (./fr deps)"
command -v node >/dev/null && command -v jq >/dev/null || fr_fail "node and jq needed (./fr deps)"
T0=$SECONDS
HOME_ID=demo
CTLS="garage hall kitchen"
BEAT=2          # frMhs's heartbeat_interval (s)
STALE_AFTER=3   # missed beats before a home is stale (docs/topics.md)
# The demo runs its daemons as an unprivileged user: it must reach its dir through $T.
chmod 0711 "$T"
D=$T/demo
S=$D/broker
export FR_DEMO_DIR=$D FR_DEMO_BIN=$FR_BIN FR_DEMO_USER=${FR_DEMO_USER:-fr-demo}

# --- the accounts: fr-admin's (as the demo makes them), then the same in RabbitMQ ----------------
admin() { "$FR_SRC/broker/fr-admin" --state "$S" "$@" 2>>"$T/admin.log"; }
mkdir -p "$D"
admin init --broker-uri mqtt://127.0.0.1:1 >/dev/null &&
	admin add-home "$HOME_ID" --install-dir "$S/homes/$HOME_ID" >/dev/null || fr_fail "fr-admin: the home"
od -An -tx1 -N12 /dev/urandom | tr -d ' \n' >"$D/demo.password"
admin add-user demo --homes "$HOME_ID" --password "$(cat "$D/demo.password")" >/dev/null || fr_fail "fr-admin: the user"

CLUSTER_WS_PATH=/mqtt   # the path nginx proxies the page's MQTT to (web/nginx/fr-site.conf.template)
cluster_start 3
trap 'rc=$?; bash "$FR_SRC/tests/demo/demo.sh" stop >/dev/null 2>&1; cluster_stop; (exit $rc); fr_teardown' EXIT
mkdir -p "$CLUSTER_DIR/accounts"
cp "$S/homes/$HOME_ID/mqtt.pw" "$CLUSTER_DIR/accounts/home-$HOME_ID.pw"
cp "$D/demo.password" "$CLUSTER_DIR/accounts/demo.pw"
cp "$S/web/password" "$CLUSTER_DIR/accounts/fr-web.pw"
cluster_accounts "$HOME_ID" demo web
cluster_listeners_loopback || fr_fail "a cluster listener beyond loopback"
fr_log "cluster and accounts ready at $((SECONDS - T0)) s"

# --- the demo on the cluster -------------------------------------------------------------------
u() { echo "mqtt://127.0.0.1:${CLUSTER_MQTT[$1]}"; }
for k in HTTPS HTTP MQTTS WS ANNOUNCE LINK SHIM METRICS; do export "FR_DEMO_${k}_PORT=$(fr_free_port)"; done
export FR_DEMO_BROKER_PORT=${CLUSTER_MQTT[1]} FR_DEMO_MQTT_URIS="$(u 1),$(u 2),$(u 3)" \
	FR_DEMO_MQTT_WS=127.0.0.1:${CLUSTER_WS[3]} FR_DEMO_MQTT_VERSION=auto FR_DEMO_HEARTBEAT=$BEAT
fr_start demo bash "$FR_SRC/tests/demo/demo.sh"
demo_up() {
	grep -q 'fr demo is running' "$T/demo.log" && return 0
	fr_proc_gone "$(fr_pid demo)" && fr_fail "the demo did not start: $(tail -n 5 "$T/demo.log")"
	return 1
}
fr_wait 120 "the demo runs" demo_up
grep -q "proxy_pass http://127.0.0.1:${CLUSTER_WS[3]};" "$D/nginx/fr-site.conf" || fr_fail "nginx does not proxy /mqtt to node 3"
MHS_LOG=$D/logs/frMhs.log
grep -q "$(u 1): connected as frMhs-$HOME_ID (MQTT 3.1.1)" "$MHS_LOG" || fr_fail "frMhs not on node 1 in 3.1.1: $(grep -m1 'connected as' "$MHS_LOG")"
demo_pid() { awk -v n="$1" '$1 == n { print $2 }' "$D/pids"; }
MHS_PID=$(demo_pid frMhs)
[ "$(cat "/proc/$MHS_PID/comm" 2>/dev/null)" = frMhs ] || fr_fail "frMhs's pid $MHS_PID is not frMhs"
fr_log "demo up at $((SECONDS - T0)) s"

# --- the page in Chromium ----------------------------------------------------------------------
URL=https://localhost:$FR_DEMO_HTTPS_PORT/
fr_start page env FR_SRC="$FR_SRC" LATE="$T/late" END="$T/end" BOUND=200 \
	node "$FR_SRC/tests/cluster/pagewatch.cjs" "$URL" demo "$D/demo.password" "$HOME_ID"
# state PAGE: what PAGE shows now (its last state line, JSON); shows PAGE JQ: it satisfies JQ.
state() { grep -E "^$1 [0-9]+ \{" "$T/page.log" | tail -n1 | cut -d' ' -f3-; }
page_ok() { ! grep -q '^ERROR' "$T/page.log" || fr_fail "the page: $(grep '^ERROR' "$T/page.log")"; }
shows() { page_ok; local s; s=$(state "$1"); [ -n "$s" ] && jq -e "$2" <<<"$s" >/dev/null; }
both_show() { shows stay "$1" && shows late "$1"; }
# ms_when PAGE JQ AFTER_MS: the first time after AFTER_MS that PAGE showed what JQ asks.
ms_when() {
	grep -E "^$1 [0-9]+ \{" "$T/page.log" | while read -r _ ms js; do
		[ "$ms" -gt "$3" ] && jq -e "$2" <<<"$js" >/dev/null && { echo "$ms"; break; }
	done
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (a - b) / 1000 }'; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
CTL_ALL_ONLINE='(.ctl | length) == 3 and ([.ctl[]] | all(. == "online"))'
TRUE_ONLINE=".conn == \"up\" and .mqtt == \"3.1.1\" and .home == \"online\" and .sync == \"ok\" and $CTL_ALL_ONLINE"
fr_wait 90 "the page signed in, live on 3.1.1, the home and its controllers online" shows stay "$TRUE_ONLINE"
# The home's beats reach the page through node 3 before anything dies.
has_beat() { grep -q "^$1 [0-9]* BEAT" "$T/page.log"; }
fr_wait 30 "the page hears the home's heartbeat" has_beat stay
fr_log "page live at $((SECONDS - T0)) s: $(state stay)"

# --- 2. node 1 dies ------------------------------------------------------------------------------
KILL_MS=$(now_ms)
cluster_kill 1
touch "$T/late"
MOVED_RE="mqtt://127.0.0.1:(${CLUSTER_MQTT[2]}|${CLUSTER_MQTT[3]}): connected as frMhs-$HOME_ID \(MQTT 3\.1\.1\)"
fr_wait 60 "frMhs connected to node 2 or 3 by itself" grep -Eq "$MOVED_RE" "$MHS_LOG"
MHS_NOW=$(grep -Eo "$MOVED_RE" "$MHS_LOG" | head -n1)
# The log's stamp (HH:MM:SS.mmm, local time, today) in ms since the epoch.
MHS_MOVED=$(date -d "$(date +%F) $(grep -Em1 "$MOVED_RE" "$MHS_LOG" | cut -d' ' -f1)" +%s%3N)
beat_after() { awk -v p="$1" -v k="$2" '$1 == p && $3 == "BEAT" && $2 > k { print $2; exit }' "$T/page.log"; }
beat_heard() { [ -n "$(beat_after stay "$KILL_MS")" ]; }
fr_wait 60 "the page that stayed hears a heartbeat after the kill" beat_heard
STAY_BEAT=$(beat_after stay "$KILL_MS")
fr_wait 90 "the page opened after the kill shows the true status" shows late "$TRUE_ONLINE"
LATE_OPEN=$(awk '$1 == "late" && $3 == "OPEN" { print $2; exit }' "$T/page.log")
LATE_TRUE=$(ms_when late "$TRUE_ONLINE" "$KILL_MS")
fr_wait 30 "the page that stayed shows the home and its controllers online" shows stay "$TRUE_ONLINE"
# The page that stayed never shows the home or a controller offline (frMhs did not die: no
# will, and its links stayed up), and the home stale only after 3 missed beats really passed
# (frMhs took that long to come back; here it comes back well within one beat).
STAY_STALE=0 last=0
while read -r _ ms what; do
	[ "$ms" -gt "$KILL_MS" ] || { [ "$what" = BEAT ] && last=$ms; continue; }
	case $what in
	BEAT) last=$ms ;;
	\{*)
		jq -e '.home != "offline" and ([.ctl[]] | all(. == "online"))' <<<"$what" >/dev/null ||
			fr_fail "the page that stayed showed an offline after the kill: $what"
		if jq -e '.home == "stale"' <<<"$what" >/dev/null; then
			[ $((ms - last)) -gt $((STALE_AFTER * BEAT * 1000 - 500)) ] ||
				fr_fail "the page that stayed showed the home stale $((ms - last)) ms after a beat: $what"
			STAY_STALE=$((STAY_STALE + 1))
		fi ;;
	esac
done < <(grep -E '^stay [0-9]+ ' "$T/page.log")
fr_log "after the kill: frMhs '$MHS_NOW'; stay: beat $(secs "$STAY_BEAT" "$KILL_MS") s; late: $(state late)"

# --- 3. frMhs hangs: stale after 3 missed beats ----------------------------------------------------
# last_beat PAGE: when PAGE last heard the home alive: a heartbeat, or a sync answer (data-sync
# turning "ok"; the page takes the answer as a beat, docs/web.md), whichever came last.
last_beat() {
	awk -v p="$1" '$1 != p { next }
		$3 == "BEAT" { b = $2 }
		/"sync":"ok"/ { if (!ok) b = $2; ok = 1; next }
		/"sync":/ { ok = 0 }
		END { print b }' "$T/page.log"
}
STOP_MS=$(now_ms)
kill -STOP "$MHS_PID"
STALE='.home == "stale" and (.reason | test("^no heartbeat for [0-9]+ s$"))'
# Documented: stale once no beat came for more than 3 x 2 s, the page looks each second (7 s).
fr_wait 30 "both pages show the home stale" both_show "$STALE"
declare -A SB ST
for p in stay late; do
	SB[$p]=$(last_beat "$p")
	[ -n "${SB[$p]}" ] || fr_fail "$p: no heartbeat and no sync answer"
	ST[$p]=$(ms_when "$p" "$STALE" "$STOP_MS")
	# Not before 3 beats were missed: no beat for more than 3 x the interval (less 0.5 s: the
	# beat's time is when Chromium's network side saw the frame, the page's own a little later).
	[ $((ST[$p] - SB[$p])) -gt $((STALE_AFTER * BEAT * 1000 - 500)) ] ||
		fr_fail "$p showed the home stale $(secs "${ST[$p]}" "${SB[$p]}") s after its last beat (before $STALE_AFTER missed)"
done
CONT_MS=$(now_ms)
kill -CONT "$MHS_PID"
fr_wait 60 "both pages show the home online again" both_show '.home == "online"'
BACK_STAY=$(ms_when stay '.home == "online"' "$CONT_MS")
BACK_LATE=$(ms_when late '.home == "online"' "$CONT_MS")
fr_log "frMhs stopped: stale on stay $(secs "${ST[stay]}" "${SB[stay]}") s after its last beat, on late $(secs "${ST[late]}" "${SB[late]}") s"

# --- 4. a controller stops ------------------------------------------------------------------------
CTL_MS=$(now_ms)
kill -TERM "$(demo_pid kitchen)"
CTL_OFF='.ctl.kitchen == "offline" and .ctl.hall == "online" and .ctl.garage == "online" and .home == "online"'
fr_wait 60 "both pages show kitchen offline" both_show "$CTL_OFF"
OFF_STAY=$(ms_when stay '.ctl.kitchen == "offline"' "$CTL_MS")
OFF_LATE=$(ms_when late '.ctl.kitchen == "offline"' "$CTL_MS")

# --- 5. frMhs dies for good: its will --------------------------------------------------------------
DIE_MS=$(now_ms)
kill -KILL "$MHS_PID"
fr_wait 60 "both pages show the home offline" both_show '.home == "offline"'
WILL_STAY=$(ms_when stay '.home == "offline"' "$DIE_MS")
WILL_LATE=$(ms_when late '.home == "offline"' "$DIE_MS")
touch "$T/end"
fr_wait 30 "the page watcher ended" fr_proc_gone "$(fr_pid page)"
wait "$(fr_pid page)" || fr_fail "the page watcher failed: $(tail -n 3 "$T/page.log")"

NBEATS="stay $(grep -c '^stay [0-9]* BEAT' "$T/page.log"), late $(grep -c '^late [0-9]* BEAT' "$T/page.log")"
fr_log "FIGURES (RabbitMQ 3.10, 3 nodes; the page in Chromium on node 3 through nginx, MQTT 3.1.1; heartbeat ${BEAT} s): node 1 SIGKILLed: frMhs $(secs "$MHS_MOVED" "$KILL_MS") s later '$MHS_NOW'; the page that stayed: the next heartbeat $(secs "$STAY_BEAT" "$KILL_MS") s after the kill, never offline, stale $STAY_STALE times; the page opened after the kill (sign-in $(secs "$LATE_OPEN" "$KILL_MS") s after it): home and controllers online, sync answered, $(secs "$LATE_TRUE" "$KILL_MS") s after the kill; frMhs SIGSTOPped: stale $(secs "${ST[stay]}" "$STOP_MS") / $(secs "${ST[late]}" "$STOP_MS") s after the stop ($(secs "${ST[stay]}" "${SB[stay]}") / $(secs "${ST[late]}" "${SB[late]}") s after the last beat; rule: more than $((STALE_AFTER * BEAT)) s), online again $(secs "$BACK_STAY" "$CONT_MS") / $(secs "$BACK_LATE" "$CONT_MS") s after SIGCONT; a controller SIGTERMed: offline $(secs "$OFF_STAY" "$CTL_MS") / $(secs "$OFF_LATE" "$CTL_MS") s later; frMhs SIGKILLed: home offline (its will) $(secs "$WILL_STAY" "$DIE_MS") / $(secs "$WILL_LATE" "$DIE_MS") s later (stay / late); heartbeats heard: $NBEATS; test $((SECONDS - T0)) s"
fr_ok "the page in Chromium on node 3 showed the true status through node 1's death, a hung frMhs (stale), a stopped controller and frMhs's death"
