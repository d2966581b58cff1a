#!/usr/bin/env bash
# Hostile (issue 12 item 4): a user of the home names reply topics outside fr/<home>/reply/ --
# the home's and a controller's status and info, ghost controllers, another home, the display,
# look-alikes of the reply space -- in reply_to and as MQTT 5 response topic, 600 requests in
# about 10 s (python3-paho). frMhs publishes nothing there: every such request is answered
# rejected on .../ctl/<ctl>/result and never runs. Beside it a legitimate client (mqttreq, 100
# requests) keeps >= 95 % success, and frMhs's memory stays bounded.
. "$FR_SRC/tests/integration/lib.sh"

fr_home
fr_start mhs "$FR_BIN/frMhs" -f -c "$T/mhs.conf"
fr_mhc_conf c2 127.0.0.2 "$APORT"
sed -i 's/max_running = 8/max_running = 64/' "$T/c2.conf"
fr_start c2 "$FR_BIN/frMhc" -f -c "$T/c2.conf"
fr_wait 10 "c2 online" fr_retained_is "$BPORT" fr/home1/ctl/c2/status online
fr_wait 10 "c2 info" fr_has_retained "$BPORT" fr/home1/ctl/c2/info
MHS=$(fr_pid mhs)
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
info0=$(fr_retained "$BPORT" fr/home1/ctl/c2/info)

# Everything frMhs publishes anywhere but the reply space and its own topics is seen here.
fr_start watch mosquitto_sub -p "$BPORT" -v -t 'fr/#'
fr_start results mosquitto_sub -p "$BPORT" -t fr/home1/ctl/c2/result
sleep 0.5
rss0=$(rss "$MHS")

cat >"$T/attack.py" <<'PY'
# 600 requests whose reply route leaves fr/home1/reply/, half reply_to (MQTT 3.1.1), half
# response topic (MQTT 5), in about 10 s; ids att-N, tags att-N.
import json, sys, time
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes
port = int(sys.argv[1])
targets = ["fr/home1/status", "fr/home1/ctl/c2/status", "fr/home1/ctl/c2/info",
           "fr/home1/ctl/ghost%d/info", "fr/home1/ctl/ghost%d/status", "fr/home2/reply/x",
           "fr/home1/display", "fr/home1/reply", "fr/home1/replyX/a", "fr/home1/ctl/c2/state/temp",
           "other/topic", "fr/home1/ctl/c2/cmd"]
v5 = mqtt.Client(client_id="att-v5", protocol=mqtt.MQTTv5); v5.connect("127.0.0.1", port); v5.loop_start()
v4 = mqtt.Client(client_id="att-v4", protocol=mqtt.MQTTv311); v4.connect("127.0.0.1", port); v4.loop_start()
time.sleep(0.3)
for i in range(600):
    t = targets[i % len(targets)]
    if "%d" in t:
        t = t % i
    body = {"id": "att-%d" % i, "action": "rec", "args": {"tag": "att-%d" % i}, "progress": False}
    if i % 2:
        props = Properties(PacketTypes.PUBLISH); props.ResponseTopic = t
        v5.publish("fr/home1/ctl/c2/cmd", json.dumps(body), qos=1, properties=props)
    else:
        body["reply_to"] = t
        v4.publish("fr/home1/ctl/c2/cmd", json.dumps(body), qos=1)
    time.sleep(0.016)
time.sleep(1)
v5.loop_stop(); v4.loop_stop()
print("sent 600")
PY
fr_start legit "$FR_BIN/mqttreq" -u "mqtt://127.0.0.1:$BPORT" -t fr/home1/ctl/c2/cmd \
	-s fr/home1/reply/legit -n 100 -R 10 -p legit -a rec -A '{"tag":"%n"}' -w 60
fr_start attack /usr/bin/python3 "$T/attack.py" "$BPORT"
wait "$(fr_pid attack)" || fr_fail "the attacker failed: $(cat "$T/attack.log")"
wait "$(fr_pid legit)"
sum=$(grep SUMMARY "$T/legit.log" | sed 's/^SUMMARY //')
[ -n "$sum" ] || fr_fail "no summary from the legitimate client: $(tail -n 5 "$T/legit.log")"
ok=$(fr_json "$sum" statuses.ok)
[ "${ok:-0}" -ge 95 ] || fr_fail "legitimate client: $ok of 100 ok ($sum)"
fr_log "legitimate client beside the attack: $ok of 100 ok"

fr_wait 20 "every attack answered rejected" bash -c "[ \$(grep -c '\"att-' '$T/results.log') -ge 600 ]"
python3 - "$T/results.log" <<'PY' || fr_fail "answers to the attack: $(head -n 3 "$T/results.log")"
import json, sys
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if str(r.get("id")).startswith("att-"):
        assert r["status"] == "rejected" and "fr/home1/reply/" in r["reason"], r
        n += 1
assert n == 600, n
PY
grep -q '^att-' "$T/runs-c2" 2>/dev/null && fr_fail "an attack request ran: $(grep -c '^att-' "$T/runs-c2")"
fr_stop watch TERM
# Nothing but the legitimate topics got a message from the attack.
python3 - "$T/watch.log" <<'PY' || fr_fail "frMhs published into the home outside the reply space"
import sys
bad = []
for line in open(sys.argv[1]):
    topic, _, payload = line.rstrip("\n").partition(" ")
    if '"att-' in payload and topic not in ("fr/home1/ctl/c2/cmd", "fr/home1/ctl/c2/result"):
        bad.append(line[:160])
    if topic.startswith("fr/home1/ctl/ghost") or topic.startswith("fr/home2/"):
        bad.append(line[:160])
    if topic in ("fr/home1/status", "fr/home1/ctl/c2/status") and payload not in ("online", "offline"):
        bad.append(line[:160])
assert not bad, bad[:5]
PY
[ "$(fr_retained "$BPORT" fr/home1/status)" = online ] || fr_fail "home status overwritten"
[ "$(fr_retained "$BPORT" fr/home1/ctl/c2/status)" = online ] || fr_fail "c2 status overwritten"
[ "$(fr_json "$(fr_retained "$BPORT" fr/home1/ctl/c2/info)" id)" = c2 ] || fr_fail "c2 info overwritten"
rss1=$(rss "$MHS")
fr_log "frMhs VmRSS ${rss0} kB before, ${rss1} kB after"
[ $((rss1 - rss0)) -lt 65536 ] || fr_fail "frMhs grew by $((rss1 - rss0)) kB"
fr_ok "600 requests with reply topics outside fr/home1/reply/: all refused (rejected on .../result), none ran, nothing published there; legitimate client $ok/100; frMhs +$((rss1 - rss0)) kB"
