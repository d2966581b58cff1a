#!/usr/bin/env bash
# Commands through MQTT end to end: outside clients (mosquitto_rr and fr's paho-based mqttreq)
# -> real broker -> real frMhs -> real frMhc -> result. Every status, MQTT 5 response topic +
# correlation data, MQTT 3.1.1 with reply_to, retained commands refused, redelivered ids not run
# twice, and 200 QoS 1 commands across a broker stop/start with no action run twice.
. "$(dirname "$0")/lib.sh"

fr_secret "$T/home.secret"
BPORT=$(fr_free_port)
APORT=$(fr_free_port)
URI="mqtt://127.0.0.1:$BPORT"
MQTTREQ=$FR_BIN/mqttreq
fr_mosquitto broker "$BPORT"
fr_mhs_conf home1 "$APORT" "$BPORT"
fr_start mhs "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
fr_mhc_conf c2 127.0.0.2 "$APORT"
fr_start c2 "$FR_BIN/frMhc" -f -v -c "$T/c2.conf"
fr_mhc_conf c3 127.0.0.3 "$APORT"
fr_start c3 "$FR_BIN/frMhc" -f -c "$T/c3.conf"
fr_wait 10 "c2 online" fr_retained_is "$BPORT" fr/home1/ctl/c2/status online
fr_wait 10 "c3 online" fr_retained_is "$BPORT" fr/home1/ctl/c3/status online

rr() { # rr ID JSON-REST: mosquitto_rr, MQTT 5, final result only
	mosquitto_rr -p "$BPORT" -t fr/home1/ctl/c2/cmd -e "fr/home1/reply/rr-$1" -W 10 \
		-m "{\"id\":\"$1\",\"progress\":false,$2}"
}
expect() { # expect JSON FIELD VALUE
	[ "$(fr_json "$1" "$2")" = "$3" ] || fr_fail "expected $2=$3 in: $1"
}

out=$(rr ok-1 '"action":"rec","args":{"tag":"one"}') || fr_fail "mosquitto_rr ok: $out"
expect "$out" status ok; expect "$out" stdout "recorded one"; expect "$out" ctl c2; expect "$out" id ok-1
grep -qx one "$T/runs-c2" || fr_fail "action did not run"
fr_ok "mosquitto_rr: ok with stdout"

out=$(rr fail-1 '"action":"fail"'); expect "$out" status failed; expect "$out" exit_code 4; expect "$out" stderr bad
fr_ok "failed with exit code and stderr"
out=$(rr hang-1 '"action":"hang"'); expect "$out" status timeout
fr_ok "timeout"
out=$(rr unk-1 '"action":"nope"'); expect "$out" status unknown_action
fr_ok "unknown action"
out=$(rr bad-1 '"action":"rec","args":{"tag":"BAD TAG!"}'); expect "$out" status rejected
grep -q "BAD" "$T/runs-c2" && fr_fail "a bad argument reached the action"
fr_ok "bad argument rejected"
out=$(mosquitto_rr -p "$BPORT" -t fr/home1/ctl/c2/cmd -e fr/home1/reply/rr-x -W 10 -m 'not json')
expect "$out" status rejected; expect "$out" id None
fr_ok "unparseable request rejected with a reason"
# A request waits for its controller until its deadline (else request_wait, 10 s): one second here.
soon() { python3 -c "import time; print(round(time.time() + $1, 3))"; }
out=$(mosquitto_rr -p "$BPORT" -t fr/home1/ctl/ghost/cmd -e fr/home1/reply/rr-g -W 10 \
	-m '{"id":"g-1","action":"rec","progress":false,"deadline":'"$(soon 1)"'}'); expect "$out" status offline
expect "$out" retry True
fr_ok "unknown controller: offline once its deadline passed, marked retry"
out=$(rr exp-1 '"action":"rec","args":{"tag":"late"},"deadline":1000000000'); expect "$out" status expired
fr_ok "expired deadline"

# Progress: accepted, started, result, in that order, each once, with correlation data.
"$MQTTREQ" -u "$URI" -V 5 -t fr/home1/ctl/c2/cmd -r fr/home1/reply/paho -C corr-42 \
	-m '{"id":"p5-1","action":"rec","args":{"tag":"paho5"}}' >"$T/p5.out" || fr_fail "paho MQTT 5 request: $(cat "$T/p5.out")"
types=$(while read -r l; do fr_json "$(fr_json "$l" payload)" type; done <"$T/p5.out" | tr '\n' ' ')
[ "$types" = "accepted started result " ] || fr_fail "progress order: $types"
while read -r l; do [ "$(fr_json "$l" corr)" = corr-42 ] || fr_fail "correlation data lost: $l"; done <"$T/p5.out"
fr_ok "MQTT 5 (paho): accepted, started, result in order, correlation data on each"

# MQTT 3.1.1 client: replies go to the request's reply_to.
"$MQTTREQ" -u "$URI" -V 4 -t fr/home1/ctl/c2/cmd -s fr/home1/reply/v311 \
	-m '{"id":"p4-1","action":"rec","args":{"tag":"paho311"},"reply_to":"fr/home1/reply/v311"}' >"$T/p4.out" \
	|| fr_fail "MQTT 3.1.1 request: $(cat "$T/p4.out")"
[ "$(fr_json "$(tail -n1 "$T/p4.out")" payload.status)" = ok ] || fr_fail "3.1.1 result: $(cat "$T/p4.out")"
fr_ok "MQTT 3.1.1 (paho) with reply_to"

# Default result topic when no reply route is given.
mosquitto_sub -p "$BPORT" -t fr/home1/ctl/c2/result -C 1 -W 10 >"$T/def.out" &
sub=$!
sleep 0.3
mosquitto_pub -p "$BPORT" -q 1 -t fr/home1/ctl/c2/cmd -m '{"id":"def-1","action":"rec","args":{"tag":"default"},"progress":false}'
wait "$sub" || fr_fail "nothing on the default result topic"
expect "$(cat "$T/def.out")" status ok
fr_ok "default result topic"

# A retained command is never run.
mosquitto_sub -p "$BPORT" -t fr/home1/reply/ret -C 1 -W 10 >"$T/ret.out" &
sub=$!
sleep 0.3
mosquitto_pub -p "$BPORT" -q 1 -r -t fr/home1/ctl/c2/cmd -m '{"id":"ret-1","action":"rec","args":{"tag":"retained"},"reply_to":"fr/home1/reply/ret"}'
wait "$sub" || fr_fail "no answer to a retained command"
expect "$(cat "$T/ret.out")" status rejected
# ... also not after frMhs reconnects and the broker hands the retained message out again.
fr_stop mhs TERM
fr_start mhs2 "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
fr_wait 10 "frMhs back" fr_retained_is "$BPORT" fr/home1/status online
fr_wait 10 "c2 online again" fr_retained_is "$BPORT" fr/home1/ctl/c2/status online
sleep 0.5
grep -q retained "$T/runs-c2" && fr_fail "a retained command ran"
mosquitto_pub -p "$BPORT" -r -t fr/home1/ctl/c2/cmd -n   # clear it
fr_ok "retained command answered rejected and never run, also after a reconnect"

# A redelivered id (client retry, QoS 1 dup) is answered, not run twice: also across frMhs restarts.
out=$(rr dup-1 '"action":"rec","args":{"tag":"dup"}'); expect "$out" status ok
out=$(rr dup-1 '"action":"rec","args":{"tag":"dup"}'); expect "$out" status ok; expect "$out" duplicate True
fr_stop mhs2 TERM
fr_start mhs3 "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
fr_wait 10 "c2 online after frMhs restart" fr_retained_is "$BPORT" fr/home1/ctl/c2/status online
sleep 0.3
fr_wait 10 "c2 link up" fr_grep_log mhs3 "controller c2: link up"
out=$(rr dup-1 '"action":"rec","args":{"tag":"dup"}'); expect "$out" status ok; expect "$out" duplicate True
[ "$(grep -cx dup "$T/runs-c2")" = 1 ] || fr_fail "a repeated id ran twice"
fr_ok "a repeated request id is answered from the first run, also after frMhs restarts"

# Offline controller: requests get "offline" with the reason.
fr_stop c3 TERM
fr_wait 5 "c3 offline" fr_retained_is "$BPORT" fr/home1/ctl/c3/status offline
out=$(mosquitto_rr -p "$BPORT" -t fr/home1/ctl/c3/cmd -e fr/home1/reply/off -W 10 -m '{"id":"off-1","action":"rec","args":{"tag":"x"},"progress":false,"deadline":'"$(soon 1)"'}')
expect "$out" status offline
case $(fr_json "$out" reason) in *"shut down cleanly"*) ;; *) fr_fail "offline reason: $out" ;; esac
fr_ok "offline controller: status offline with its reason"

# A controller that dies mid-run: the request ends "lost", never hangs.
fr_start slow "$MQTTREQ" -u "$URI" -t fr/home1/ctl/c2/cmd -r fr/home1/reply/slow -w 20 \
	-m '{"id":"slow-1","action":"slow","args":{"secs":"20"}}'
fr_wait 10 "slow started" grep -q '"started"' "$T/slow.log"
fr_stop c2 KILL
wait "$(fr_pid slow)" && fr_fail "a request to a killed controller reported ok"
last=$(grep '"result"' "$T/slow.log" | tail -n1)
[ "$(fr_json "$(fr_json "$last" payload)" status)" = lost ] || fr_fail "killed mid-run: $(cat "$T/slow.log")"
fr_ok "a controller killed mid-run: the request ends lost"
pkill -f "sleep 20" 2>/dev/null || true

# 200 QoS 1 commands from a persistent session across a broker stop/start.
fr_start c2b "$FR_BIN/frMhc" -f -c "$T/c2.conf"
fr_wait 10 "c2 back" fr_retained_is "$BPORT" fr/home1/ctl/c2/status online
: >"$T/runs-c2"
fr_start stream "$MQTTREQ" -u "$URI" -c stream-client -P -t fr/home1/ctl/c2/cmd -s fr/home1/reply/stream \
	-n 200 -R 100 -p s200 -a rec -A '{"tag":"%n"}' -w 60
fr_wait 10 "first results" bash -c "[ \$(grep -c '\"result\"' '$T/stream.log') -ge 40 ]"
fr_stop broker TERM
sleep 1
fr_start broker2 mosquitto -c "$T/broker.conf" -v
fr_wait 10 "broker back" bash -c "exec 3<>/dev/tcp/127.0.0.1/$BPORT"
wait "$(fr_pid stream)" || fr_fail "not every command got a final result: $(grep SUMMARY "$T/stream.log")"
sum=$(grep SUMMARY "$T/stream.log" | sed 's/^SUMMARY //')
expect "$sum" final_ids 200; expect "$sum" conflicts 0
ok=$(fr_json "$sum" statuses.ok); busy=$(fr_json "$sum" statuses.busy || echo 0)
# The commands the client buffered during the outage arrive in a burst: beyond the action's
# max_running they are refused "busy" (not run) -- every id still ends exactly one way.
[ $((ok + busy)) = 200 ] || fr_fail "statuses other than ok/busy: $sum"
[ "$ok" -gt 0 ] || fr_fail "nothing ran: $sum"
runs=$(wc -l <"$T/runs-c2"); uniq=$(sort -u "$T/runs-c2" | wc -l)
[ "$runs" = "$ok" ] && [ "$uniq" = "$ok" ] || fr_fail "runs on the controller: $runs lines, $uniq distinct, $ok ok results"
fr_ok "200 QoS 1 commands across a broker restart: one outcome each, $runs runs = ok results, none twice ($sum)"
