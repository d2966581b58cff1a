#!/usr/bin/env bash
# Fault: the controller and the home server are SIGKILLed at random points of a command stream
# and restarted. Every request ends with a clear final status, no action runs twice (counted by
# the action itself), and the statuses recover.
. "$(dirname "$0")/lib.sh"

fr_home
fr_start mhs "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
fr_mhc_conf c2 127.0.0.2 "$APORT"
sed -i 's/max_running = 8/max_running = 64/' "$T/c2.conf"
fr_start c2 "$FR_BIN/frMhc" -f -v -c "$T/c2.conf"
fr_wait 10 "c2 online" fr_retained_is "$BPORT" fr/home1/ctl/c2/status online

N=300
fr_start stream "$FR_BIN/mqttreq" -u "mqtt://127.0.0.1:$BPORT" -c chaos-client -P \
	-t fr/home1/ctl/c2/cmd -s fr/home1/reply/chaos -n "$N" -R 60 -p z -a rec -A '{"tag":"%n"}' -T 4 -w 120
rnd() { python3 -c "import random; print(round(random.uniform($1, $2), 2))"; }
sleep "$(rnd 0.5 1.5)"
fr_log "kill -9 frMhc"
fr_stop c2 KILL
sleep "$(rnd 0.2 1.0)"
fr_start c2b "$FR_BIN/frMhc" -f -v -c "$T/c2.conf"
sleep "$(rnd 0.5 1.5)"
fr_log "kill -9 frMhs"
fr_stop mhs KILL
sleep "$(rnd 0.2 1.0)"
fr_start mhs2 "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
sleep "$(rnd 0.3 1.0)"
fr_log "kill -9 both"
fr_stop c2b KILL
fr_stop mhs2 KILL
fr_start mhs3 "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
fr_start c2c "$FR_BIN/frMhc" -f -v -c "$T/c2.conf"

wait "$(fr_pid stream)" || fr_fail "not every request ended: $(grep SUMMARY "$T/stream.log")"
sum=$(grep SUMMARY "$T/stream.log" | sed 's/^SUMMARY //')
[ "$(fr_json "$sum" final_ids)" = "$N" ] || fr_fail "final outcomes: $sum"
# Every final status is one of the documented ones.
python3 - "$sum" <<'PY' || fr_fail "undocumented status: $sum"
import json, sys
known = {"ok", "failed", "timeout", "rejected", "expired", "busy", "unknown_action", "offline", "lost"}
st = json.loads(sys.argv[1])["statuses"]
assert set(st) <= known, st
PY
runs=$(wc -l <"$T/runs-c2"); uniq=$(sort -u "$T/runs-c2" | wc -l)
[ "$runs" = "$uniq" ] || fr_fail "an action ran twice: $runs runs, $uniq distinct: $(sort "$T/runs-c2" | uniq -d | head)"
ok=$(fr_json "$sum" statuses.ok)
[ "$uniq" -ge "$ok" ] || fr_fail "$ok ok results but only $uniq runs recorded"
fr_wait 15 "home online" fr_retained_is "$BPORT" fr/home1/status online
fr_wait 15 "c2 online" fr_retained_is "$BPORT" fr/home1/ctl/c2/status online
out=$(mosquitto_rr -p "$BPORT" -t fr/home1/ctl/c2/cmd -e fr/home1/reply/after -W 10 \
	-m '{"id":"after-chaos","action":"rec","args":{"tag":"after"},"progress":false}') || fr_fail "no answer after the chaos"
[ "$(fr_json "$out" status)" = ok ] || fr_fail "after the chaos: $out"
fr_ok "agents killed mid-stream: $N requests each ended ($sum), $runs runs none twice, statuses recovered"
