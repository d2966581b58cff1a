#!/usr/bin/env bash
# Every kind of requester through a broker failure (issue 16, item 5). frMhs (uri = every broker
# address, version "auto") and a real frMhc; 200 commands with reply_to, interleaved, 50 from each
# of: python3-paho (probe.py), the mosquitto clients (mosquitto_pub -V 311 per command, one
# mosquitto_sub -V 311 on the reply topic), mqtt.js (the page's library, web/node_modules/mqtt)
# over MQTT-over-WebSocket with protocolVersion 4, and frAroundWeb's shim (a real frAroundWeb,
# uri list, version "auto"; probe.py shimreq on its shim). After 100 commands were acknowledged,
# the broker frMhs is connected to is SIGKILLed; right then a page-like mqtt.js client connects
# (subscribes fr/home1/#, asks fr/home1/sync with reply_to, as docs/topics.md tells consumers);
# another one, connected since before the kill, watches the home's status and heartbeats.
#
#   03-requesters.sh [cluster]   a 3-node RabbitMQ 3.10 cluster (tests/cluster/cluster.sh, MQTT
#                                3.1.1 only, mirrored session queues): frMhs on node 1; paho and
#                                frAroundWeb on node 2; mosquitto clients, mqtt.js and the page
#                                on node 3; node 1 is SIGKILLed.
#   03-requesters.sh mosquitto   one Mosquitto with the shipped configuration (fr-admin's
#                                accounts, ACL and client-id plugin, persistence on, autosave
#                                10 s), every client on it; it is SIGKILLed and restarted on the
#                                same ports. Every client loses its connection: requesters
#                                reconnect and ask again, with the same id, what has no final
#                                answer 10 s after it was asked (docs/topics.md: always safe).
#
# Asserted: every id of every requester gets its outcome, `ok` (the first final answer without
# "retry": true; after one with it -- busy, offline -- the requester asks again, the same id, and
# the shim a new request; docs/topics.md); besides, an id may only get answers marked
# "duplicate": true and the same message again (QoS 1: frMhs re-sends what the broker had not
# acknowledged when it died); every action ran exactly once (the action appends its tag to a
# file per run); frMhs reconnects by itself (on the cluster: to node 2 or 3) and finds its
# session; the page gets the home's and the controller's true status (online) with a sync
# answer; the page that stayed hears the home's next heartbeat and never reads it or its
# controller offline. Printed (FIGURES): answers, copies, retries, the time from the kill to
# frMhs's reconnect, to each requester's next final answer and its longest silence, and to the
# pages' true status and heartbeat. CLUSTER_SESSION_RE (cluster.sh) chooses the mirrored queues.
. "$(dirname "$0")/../integration/lib.sh"
. "$FR_SRC/tests/cluster/cluster.sh"

MODE=${1:-cluster}
case $MODE in cluster | mosquitto) ;; *) fr_fail "usage: $0 [cluster|mosquitto]" ;; esac
FR_NAME="$FR_NAME-$MODE"
PY=/usr/bin/python3   # Debian's, with python3-paho-mqtt
$PY -c 'import paho.mqtt' 2>/dev/null || fr_fail "python3-paho-mqtt missing (./fr deps)"
command -v mosquitto_pub >/dev/null || fr_fail "mosquitto-clients missing (./fr deps)"
MQTT_JS=$FR_SRC/web/node_modules/mqtt
[ -f "$MQTT_JS/package.json" ] && command -v node >/dev/null || fr_fail "node and web/node_modules/mqtt missing (./fr deps)"
EACH=50       # commands per requester
KINDS="paho mosq js shim"
N=$((EACH * 4))
RATE=4        # commands per second per requester: 16/s in all, the stream lasts ~13 s
KILL_AFTER=$((N / 2))
CMD=fr/home1/ctl/c1/cmd
T0=$SECONDS
TOKEN=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')

if [ "$MODE" = cluster ]; then
	cluster_start 3
	cluster_accounts home1 alice web
	PW_HOME=$CLUSTER_DIR/accounts/home-home1.pw
	PW_ALICE=$CLUSTER_DIR/accounts/alice.pw
	PW_WEB=$CLUSTER_DIR/accounts/fr-web.pw
	u() { echo "mqtt://127.0.0.1:${CLUSTER_MQTT[$1]}"; }
	MHS_URIS="\"$(u 1)\", \"$(u 2)\", \"$(u 3)\""
	WEB_URIS="\"$(u 2)\", \"$(u 3)\", \"$(u 1)\""
	P_PAHO=${CLUSTER_MQTT[2]}
	P_MOSQ=${CLUSTER_MQTT[3]}
	WS_URL=ws://127.0.0.1:${CLUSTER_WS[3]}/ws
	fr_users "alice:$TOKEN:home1"
	RETRY=""      # every requester is on a node that lives: nothing to ask again
	# frMhs's new connection: to node 2 or 3.
	MHS_MOVED_RE="mqtt://127.0.0.1:(${CLUSTER_MQTT[2]}|${CLUSTER_MQTT[3]}): connected as frMhs-home1 \(MQTT 3\.1\.1\)"
else
	S=$T/state
	admin() { "$FR_SRC/broker/fr-admin" --state "$S" "$@" 2>>"$T/admin.log"; }
	admin init --broker-uri mqtt://127.0.0.1:1 >/dev/null || fr_fail "fr-admin init"
	admin add-home home1 >/dev/null || fr_fail "fr-admin add-home"
	admin add-user alice --homes home1 --password "$TOKEN" >/dev/null || fr_fail "fr-admin add-user"
	printf '%s\n' "$TOKEN" >"$T/alice.pw"
	PW_HOME=$S/homes/home1/mqtt.pw
	PW_ALICE=$T/alice.pw
	PW_WEB=$S/web/password
	cp "$S/web/users.conf" "$T/users.conf"
	BPORT=$(fr_free_port)
	fr_shipped_broker broker "$S" "$BPORT"
	MHS_URIS="\"mqtt://127.0.0.1:$BPORT\""
	WEB_URIS=$MHS_URIS
	P_PAHO=$BPORT
	P_MOSQ=$BPORT
	WS_URL=ws://127.0.0.1:$(cat "$T/broker.ws-port")/mqtt
	RETRY=10
	MHS_MOVED_RE=
fi
fr_log "$MODE ready at $((SECONDS - T0)) s"

# --- frMhs, frMhc, frAroundWeb ---------------------------------------------------------------
fr_secret "$T/home.secret"
APORT=$(fr_free_port)
fr_mhs_conf home1 "$APORT" 1
sed -i "s|^mqtt = .*|mqtt = { uri = [$MHS_URIS]; version = \"auto\"; username = \"home-home1\"; password_file = \"$PW_HOME\"; backoff_min = 0.1; backoff_max = 1; };|" "$T/mhs.conf"
# Beats every 2 s (default 30): the page that stays connected hears one soon after the kill
# also when it reconnected after frMhs's beat at its own reconnect (one Mosquitto).
echo 'heartbeat_interval = 2;' >>"$T/mhs.conf"
"$FR_BIN/frMhs" --check-config -c "$T/mhs.conf" >/dev/null || fr_fail "frMhs rejects its config"
fr_start mhs "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
# frMhs subscribed before frAroundWeb asks fr/home1/sync (a sync nobody subscribes to is gone).
fr_wait 60 "frMhs connected" fr_grep_log mhs "connected as frMhs-home1"
fr_mhc_conf c1 127.0.0.2 "$APORT"
fr_start c1 "$FR_BIN/frMhc" -f -v -c "$T/c1.conf"
SHIM=$(fr_free_port)
fr_web_conf 1 "$SHIM" "$(fr_free_port)" "" 'instance = "w1";'
sed -i "s|^mqtt = .*|mqtt = { uri = [$WEB_URIS]; version = \"auto\"; username = \"fr-web\"; password_file = \"$PW_WEB\"; backoff_min = 0.1; backoff_max = 1; };|" "$T/web.conf"
"$FR_BIN/frAroundWeb" --check-config -c "$T/web.conf" >/dev/null || fr_fail "frAroundWeb rejects its config"
fr_start web "$FR_BIN/frAroundWeb" -f -v -c "$T/web.conf"
fr_wait 60 "frAroundWeb connected" fr_grep_log web "connected as frAroundWeb-w1"
MHS_FIRST=$(grep -o 'mqtt://[0-9.:]*: connected as frMhs-home1 ([^)]*)' "$T/mhs.log" | head -n1)
WEB_FIRST=$(grep -o 'mqtt://[0-9.:]*: connected as frAroundWeb-w1 ([^)]*)' "$T/web.log" | head -n1)
if [ "$MODE" = cluster ]; then
	[ "$MHS_FIRST" = "$(u 1): connected as frMhs-home1 (MQTT 3.1.1)" ] || fr_fail "frMhs not on node 1 in 3.1.1: '$MHS_FIRST'"
	[ "$WEB_FIRST" = "$(u 2): connected as frAroundWeb-w1 (MQTT 3.1.1)" ] || fr_fail "frAroundWeb not on node 2 in 3.1.1: '$WEB_FIRST'"
fi
# c1 online, as the shim's cache tells it (frAroundWeb asked fr/home1/sync after connecting).
c1_online() { fr_shim "$SHIM" "$TOKEN" '{"op":"list","home":"home1"}' | grep -q '"id": *"c1"[^}]*"status": *"online"'; }
fr_wait 60 "c1 online in frAroundWeb's cache" c1_online
fr_log "agents up at $((SECONDS - T0)) s: frMhs '$MHS_FIRST', frAroundWeb '$WEB_FIRST'"
if [ "$MODE" = mosquitto ]; then
	# What a crash of Mosquitto loses is what changed since its last save (autosave_interval
	# 10 in the shipped config, docs/broker.md): a broker killed before it ever saved would
	# come back without frMhs's and frAroundWeb's sessions. As a broker that has been running,
	# the kill comes after a save that holds them.
	UP_S=$(date +%s)
	saved() { [ -f "$S/db/mosquitto.db" ] && [ "$(stat -c %Y "$S/db/mosquitto.db")" -gt "$UP_S" ]; }
	fr_wait 30 "the broker saved its sessions" saved
fi

# --- a page that stays connected through the kill (node 3) --------------------------------
fr_start watch env MQTT_JS="$MQTT_JS" FR_USER=alice FR_PW_FILE="$PW_ALICE" FR_CLIENT_ID=alice:watch BOUND=200 \
	WATCH="$T/watch-end" node "$FR_SRC/tests/cluster/jsclient.js" page "$WS_URL" home1 c1
fr_wait 60 "the watching page knows the status" grep -q '^TRUE' "$T/watch.log"

# --- the requesters --------------------------------------------------------------------------
retry_py=() retry_env=""
if [ -n "$RETRY" ]; then retry_py=(--reconnect --retry "$RETRY"); retry_env=$RETRY; fi
fr_start msub stdbuf -oL mosquitto_sub -d -V 311 -q 1 -h 127.0.0.1 -p "$P_MOSQ" -u alice -P "$(cat "$PW_ALICE")" \
	-i alice:msub -t fr/home1/reply/alice/mosq -F '%U %p'
fr_wait 30 "mosquitto_sub subscribed" grep -q 'received SUBACK' "$T/msub.log"
# mosq_requester: one mosquitto_pub per command (each its own connection; a failed one is
# tried again until the broker acknowledges it); with RETRY, ids without a final answer are
# asked again, like the other requesters.
mosq_pub() {
	mosquitto_pub -V 311 -q 1 -h 127.0.0.1 -p "$P_MOSQ" -u alice -P "$(cat "$PW_ALICE")" -i "alice:m$1" -t "$CMD" \
		-m '{"id":"m'"$1"'","action":"rec","args":{"tag":"m'"$1"'"},"reply_to":"fr/home1/reply/alice/mosq"}' 2>/dev/null
}
mosq_requester() {
	local i end asked=() t pending id how
	for ((i = 0; i < EACH; i++)); do
		end=$((SECONDS + 60))
		until mosq_pub "$i"; do
			[ "$SECONDS" -lt "$end" ] || { echo "GAVE UP $i"; break; }
			sleep 0.2
		done
		asked[i]=$SECONDS
		echo "SENT $i"
		sleep "$(awk -v r="$RATE" 'BEGIN { print 1 / r }')"
	done
	end=$((SECONDS + 90))
	while [ "$SECONDS" -lt "$end" ]; do
		t=$($PY "$FR_SRC/tests/cluster/probe.py" tally "$T/msub.log" "$EACH" --prefix m | sed 's/^RESULT //')
		[ "$(jq -r .missing <<<"$t")" = 0 ] && return 0
		pending=" $(jq -r '.retry_pending | join(" ")' <<<"$t") "
		for id in $(jq -r '.missing_ids[]' <<<"$t"); do
			i=${id#m}
			# Answered only with "retry": true (busy, offline, ...): asked again after 1 s;
			# with RETRY, one without any answer after that long.
			if [[ "$pending" == *" $id "* ]]; then
				[ $((SECONDS - asked[i])) -ge 1 ] || continue
				how=RETRIED_AFTER_RETRY
			else
				[ -n "$RETRY" ] && [ $((SECONDS - asked[i])) -gt "$RETRY" ] || continue
				how=RETRIED
			fi
			mosq_pub "$i" && { asked[i]=$SECONDS; echo "$how $i"; }
		done
		sleep 1
	done
}
fr_start mosq mosq_requester
fr_start paho "$PY" "$FR_SRC/tests/cluster/probe.py" -u alice -F "$PW_ALICE" -i alice:paho requests "$P_PAHO" "$CMD" "$EACH" \
	--reply fr/home1/reply/alice/paho --prefix p --rate "$RATE" --bound 90 --answers "$T/ans-paho.txt" "${retry_py[@]}"
fr_start js env MQTT_JS="$MQTT_JS" FR_USER=alice FR_PW_FILE="$PW_ALICE" FR_CLIENT_ID=alice:js \
	REPLY=fr/home1/reply/alice/js PREFIX=j RATE="$RATE" BOUND=90 ANSWERS="$T/ans-js.txt" RETRY="$retry_env" \
	node "$FR_SRC/tests/cluster/jsclient.js" requests "$WS_URL" "$CMD" "$EACH"
fr_start shim "$PY" "$FR_SRC/tests/cluster/probe.py" shimreq "$SHIM" "$TOKEN" home1 c1 "$EACH" \
	--prefix s --rate "$RATE" --wait 30 --bound 90 --answers "$T/ans-shim.txt"
sent() { cat "$T"/{paho,mosq,js,shim}.log | grep -c '^SENT'; }
sent_ge() { [ "$(sent)" -ge "$1" ]; }
fr_wait 90 "$KILL_AFTER commands sent" sent_ge "$KILL_AFTER"

# --- the kill ----------------------------------------------------------------------------------
KILL_NS=$(date +%s%N)
SENT_AT_KILL=$(sent)
if [ "$MODE" = cluster ]; then
	cluster_kill 1
else
	fr_stop broker KILL
	fr_log "broker SIGKILLed; restarting it on the same ports"
	fr_start broker mosquitto -c "$T/broker.conf" -v
	fr_wait 30 "the broker back on $BPORT" bash -c "exec 3<>/dev/tcp/127.0.0.1/$BPORT"
fi
fr_start page env MQTT_JS="$MQTT_JS" FR_USER=alice FR_PW_FILE="$PW_ALICE" FR_CLIENT_ID=alice:page BOUND=60 \
	node "$FR_SRC/tests/cluster/jsclient.js" page "$WS_URL" home1 c1
mhs_back() {
	if [ -n "$MHS_MOVED_RE" ]; then grep -Eq "$MHS_MOVED_RE" "$T/mhs.log"
	else [ "$(grep -c 'connected as frMhs-home1' "$T/mhs.log")" -ge 2 ]; fi
}
fr_wait 90 "frMhs connected again by itself" mhs_back
# ms_of_day: a log stamp (HH:MM:SS.mmm, local time) or the kill, in ms since local midnight.
ms_of_day() { awk -F'[:.]' '{ print (($1 * 60 + $2) * 60 + $3) * 1000 + $4 }' <<<"$1"; }
if [ -n "$MHS_MOVED_RE" ]; then
	line=$(grep -E "$MHS_MOVED_RE" "$T/mhs.log" | head -n1)
else
	line=$(grep 'connected as frMhs-home1' "$T/mhs.log" | sed -n 2p)
fi
MHS_AFTER=$(awk -v a="$(ms_of_day "${line%% *}")" -v k="$(ms_of_day "$(date -d "@${KILL_NS:0:10}.${KILL_NS:10:3}" +%H:%M:%S.%3N)")" \
	'BEGIN { d = a - k; if (d < 0) d += 86400000; printf "%.2f", d / 1000 }')
MHS_NOW=$(grep -o 'mqtt://[0-9.:]*: connected as frMhs-home1 ([^)]*)' <<<"$line")
fr_wait 30 "frMhs's session flag" bash -c "[ \$(grep -c 'broker connected (session' '$T/mhs.log') -ge 2 ]"
MHS_SESSION=$(grep -o 'broker connected (session [a-z]*)' "$T/mhs.log" | sed -n '2s/.*(\(.*\))/\1/p')
# Its session (subscriptions, commands queued while it was away) was kept: mirrored on the
# cluster, saved by Mosquitto.
[ "$MHS_SESSION" = "session resumed" ] || fr_fail "frMhs's session was not kept: '$MHS_SESSION'"

for k in $KINDS page; do
	fr_wait 150 "$k finished" fr_proc_gone "$(fr_pid "$k")"
	wait "$(fr_pid "$k")" 2>/dev/null
done
fr_stop msub
touch "$T/watch-end"
fr_wait 30 "the watching page finished" fr_proc_gone "$(fr_pid watch)"
res() { sed -n 's/^RESULT //p' "$T/$1.log" | tail -n1; }
KILL_MS=$((KILL_NS / 1000000))
tally() { $PY "$FR_SRC/tests/cluster/probe.py" tally "$1" "$EACH" --prefix "$2" --kill-ms "$KILL_MS" | sed 's/^RESULT //'; }
declare -A TL
TL[paho]=$(tally "$T/ans-paho.txt" p)
TL[mosq]=$(tally "$T/msub.log" m)
TL[js]=$(tally "$T/ans-js.txt" j)
TL[shim]=$(tally "$T/ans-shim.txt" s)
# frAroundWeb asks its open requests again with the same id after it reconnects (docs/shim.md),
# so a broker that died with a shim request's command or answer loses neither: no shim request
# may end in an error, on the cluster or on one Mosquitto.
SHIM_TIMEOUTS=0
shim_r=$(res shim)
[ "$(jq -r .errors <<<"$shim_r")" = "$SHIM_TIMEOUTS" ] || fr_fail "shim: requests ended in an error: $shim_r"
figures=""
for k in $KINDS; do
	t=${TL[$k]}
	fr_log "$k: own report $(res "$k"); answers $t"
	[ -n "$t" ] || fr_fail "$k: no tally"
	want=$EACH
	[ "$k" = shim ] && want=$((EACH - SHIM_TIMEOUTS))
	[ "$(jq -r .answered <<<"$t")" = "$want" ] || fr_fail "$k: ids without a final answer: $t"
	[ "$(jq -r '.statuses.ok // 0' <<<"$t")" = "$want" ] || fr_fail "$k: not every final answer is ok: $t"
	[ "$(jq -r .extra_not_marked_duplicate <<<"$t")" = 0 ] || fr_fail "$k: an extra final answer not marked duplicate: $t"
	figures="$figures $k: $(jq -r .answered <<<"$t")/$EACH answered, extra final answers $(jq -r .extra_answers <<<"$t") ($(jq -r .extra_copies <<<"$t") the same message again, the latest $(jq -r .copies_latest_s <<<"$t") s after the first, arriving $(jq -c .copies_arrived_s <<<"$t") s after the kill),"
	figures="$figures first answer $(jq -r .first_after_kill_s <<<"$t") s after the kill, longest silence $(jq -r .longest_silence_after_kill_s <<<"$t") s;"
done
[ "$(jq -r .requests_distinct <<<"$shim_r")" = "$((EACH - SHIM_TIMEOUTS))" ] || fr_fail "shim: not one command id per request: $shim_r"
retries="paho $(jq -r '.retried // 0' <<<"$(res paho)"), mosquitto $(grep -c '^RETRIED ' "$T/mosq.log"), mqtt.js $(jq -r '.retried // 0' <<<"$(res js)")"
if [ -z "$RETRY" ]; then
	[ "$retries" = "paho 0, mosquitto 0, mqtt.js 0" ] || fr_fail "requests without an answer were asked again: $retries"
fi
retry_answers=""
for k in $KINDS; do retry_answers="$retry_answers $k $(jq -r '.retry_answers' <<<"${TL[$k]}") $(jq -c '.retry_statuses' <<<"${TL[$k]}"),"; done
asked_again="paho $(jq -r '.retried_after_retry // 0' <<<"$(res paho)"), mosquitto $(grep -c '^RETRIED_AFTER_RETRY' "$T/mosq.log"), mqtt.js $(jq -r '.retried_after_retry // 0' <<<"$(res js)"), shim $(jq -r '.asked_again // 0' <<<"$shim_r") (a new request)"

# Every action ran once: the action appends its tag per run. An answered id ran exactly once;
# a shim request that timed out (above) ran at most once.
runs=$(wc -l <"$T/runs-c1")
twice=$(sort "$T/runs-c1" | uniq -d | head -n5 | tr '\n' ' ')
[ -z "$twice" ] || fr_fail "actions ran twice: $twice"
timed_out=$(jq -r '.errors_first[] | .[0]' <<<"$shim_r")
for p in p m j s; do
	for ((i = 0; i < EACH; i++)); do
		grep -qx "$p$i" "$T/runs-c1" || grep -qx "$p$i" <<<"$timed_out" || fr_fail "command $p$i was answered but its action never ran"
	done
done
[ "$runs" -le "$N" ] && [ "$runs" -ge $((N - SHIM_TIMEOUTS)) ] || fr_fail "$runs actions ran for $N commands"

# The page: the home and c1 known online (sync answer or live status), and when.
pg=$(res page)
[ "$(jq -r .home <<<"$pg")" = online ] && [ "$(jq -r .ctl <<<"$pg")" = online ] && [ "$(jq -r .true_at_ms <<<"$pg")" != null ] ||
	fr_fail "the page did not get the true status: $pg"
PAGE_TRUE=$(awk -v t="$(jq -r .true_at_ms <<<"$pg")" -v k="$KILL_MS" 'BEGIN { printf "%.2f", (t - k) / 1000 }')
PAGE_SYNC=$(jq -r 'if .sync_answer_ms then .sync_answer_ms else empty end' <<<"$pg")
[ -n "$PAGE_SYNC" ] || fr_fail "the page's fr/home1/sync got no answer: $pg"
PAGE_SYNC=$(awk -v t="$PAGE_SYNC" -v k="$KILL_MS" 'BEGIN { printf "%.2f", (t - k) / 1000 }')

# The page that stayed: the home's next heartbeat after the kill (frMhs beats at once after a
# reconnect), and never offline (no will: frMhs did not die).
WATCH_BEAT=$(awk -v k="$KILL_MS" '$1 == "BEAT" && $2 > k { printf "%.2f", ($2 - k) / 1000; exit }' "$T/watch.log")
[ -n "$WATCH_BEAT" ] || fr_fail "the page that stayed connected heard no heartbeat after the kill: $(res watch)"
if awk -v k="$KILL_MS" '($1 == "HOME" || $1 == "CTL") && $2 != "online" && $3 > k { f = 1 } END { exit !f }' "$T/watch.log"; then
	fr_fail "the page that stayed connected read a status other than online after the kill: $(grep -E '^(HOME|CTL)' "$T/watch.log" | tr '\n' ' ')"
fi
fr_log "FIGURES ($MODE): $N commands ($EACH each from paho, mosquitto clients, mqtt.js over web-MQTT, the shim), $SENT_AT_KILL acknowledged when the broker frMhs used was SIGKILLed; actions run $runs, none twice; asked again (same id) for want of an answer: $retries; answers with \"retry\": true:$retry_answers asked again after them: $asked_again; shim requests ended by timeout: $SHIM_TIMEOUTS; frMhs ${MHS_AFTER} s after the kill: '$MHS_NOW', $MHS_SESSION;$figures page (connected after the kill on $WS_URL): true status ${PAGE_TRUE} s after the kill, sync answer ${PAGE_SYNC} s; the page connected throughout (same URL): the next heartbeat ${WATCH_BEAT} s after the kill, never offline; test $((SECONDS - T0)) s"
fr_ok "$MODE: every requester kind got one final answer per id through the broker's death, none ran twice, frMhs came back by itself, the page saw the true status"
