#!/usr/bin/env bash
# The home's state on request (issue 16 item 2, docs/topics.md "fr/<home>/sync"): a consumer
# asks fr/home1/sync and frMhs answers with every controller (status, the same info as the
# retained one) and the latest state of its sensors -- on the MQTT 5 response topic with the
# correlation data (mosquitto_rr), and on the payload's reply_to for an MQTT 3.1.1 client. A
# reply_to outside fr/home1/reply/ gets no answer (logged), the retained status it names is not
# touched, and a retained request is ignored (logged). frAroundWeb asks on connect and fills
# its cache from the answer: c2's retained status and info are removed from the broker first, so
# the shim can only know them from the sync answer.
. "$(dirname "$0")/lib.sh"

fr_home
fr_start mhs "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
fr_mhc_conf c2 127.0.0.2 "$APORT"
fr_start c2 "$FR_BIN/frMhc" -f -c "$T/c2.conf"
fr_wait 15 "c2 online" fr_retained_is "$BPORT" fr/home1/ctl/c2/status online
fr_wait 15 "a temp state of c2" fr_has_retained "$BPORT" fr/home1/ctl/c2/state/temp

# MQTT 5: response topic and correlation data; mosquitto_rr prints "<correlation>|<payload>".
out=$(mosquitto_rr -V 5 -p "$BPORT" -t fr/home1/sync -e fr/home1/reply/t/s5 -W 15 -q 1 \
	-D publish correlation-data corr-42 -F '%D|%r|%p' -m '{"id":"s-5"}') || fr_fail "no sync answer: $out"
[ "${out%%|*}" = corr-42 ] || fr_fail "correlation data not echoed: $out"
rest=${out#*|}
[ "${rest%%|*}" = 0 ] || fr_fail "answer retained: $out"
doc=${rest#*|}
info=$(fr_retained "$BPORT" fr/home1/ctl/c2/info)
python3 - "$doc" "$info" <<'PY' || fr_fail "sync answer: $doc"
import json, sys
d, info = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert d["type"] == "sync" and d["id"] == "s-5" and d["home"] == "home1", d
assert d["status"] == "online" and d["ts"] > 1700000000000, d
assert d["heartbeat_interval"] == 30 and "truncated" not in d, d
c = [c for c in d["controllers"] if c["id"] == "c2"]
assert len(c) == 1, d
c = c[0]
assert c["status"] == "online", c
# The same object as the retained info; last_seen is as of now (the retained copy is
# republished on changes, not on every ping).
assert c["info"]["last_seen"] >= info["last_seen"], (c["info"], info)
del c["info"]["last_seen"], info["last_seen"]
assert c["info"] == info, (c["info"], info)
t = c["states"]["temp"]
assert isinstance(t["value"], (int, float)) and t["ts"] > 1700000000000, t
PY
fr_ok "MQTT 5: c2 online with its info and temp $(fr_json "$doc" controllers.0.states.temp.value), correlation data echoed"

# Everything on fr/home1/# from now on, one line each.
fr_start watch mosquitto_sub -V 5 -p "$BPORT" -t 'fr/home1/#' -q 1 -F '%t %r %p'
seen() { grep -q "^$1 " "$T/watch.log"; }
# A probe until the watcher shows it (one sent before its SUBSCRIBE would be lost).
probe() { seen fr/home1/reply/t/probe || { mosquitto_pub -p "$BPORT" -t fr/home1/reply/t/probe -m probe; false; }; }
fr_wait 15 "the watcher subscribed" probe

# Refused: a reply_to outside the reply space (the retained status it names stays), and a
# retained request. Then an MQTT 3.1.1 request with reply_to: once it is answered, the two
# before it (same subscription, QoS 1, in order) were handled and got nothing.
mosquitto_pub -V 311 -p "$BPORT" -q 1 -t fr/home1/sync -m '{"id":"bad","reply_to":"fr/home1/ctl/c2/status"}'
mosquitto_pub -V 311 -p "$BPORT" -q 1 -t fr/home1/sync -m '{"id":"bad2","reply_to":"fr/home1/other"}'
mosquitto_pub -V 311 -p "$BPORT" -q 1 -r -t fr/home1/sync -m '{"id":"ret","reply_to":"fr/home1/reply/t/ret"}'
mosquitto_pub -V 311 -p "$BPORT" -q 1 -t fr/home1/sync -m '{"id":12,"reply_to":"fr/home1/reply/t/num"}'
mosquitto_pub -V 311 -p "$BPORT" -q 1 -t fr/home1/sync -m '{"id":"s-311","reply_to":"fr/home1/reply/t/s311"}'
fr_wait 15 "the 3.1.1 answer" seen fr/home1/reply/t/s311
line=$(grep "^fr/home1/reply/t/s311 " "$T/watch.log")
doc=${line#fr/home1/reply/t/s311 0 }
[ "$(fr_json "$doc" id)" = s-311 ] && [ "$(fr_json "$doc" type)" = sync ] || fr_fail "3.1.1 answer: $line"
[ "$(fr_json "$doc" controllers.0.id)" = c2 ] || fr_fail "3.1.1 answer lists c2: $line"
fr_ok "MQTT 3.1.1: answered on reply_to"

seen fr/home1/reply/t/ret && fr_fail "a retained request was answered"
seen fr/home1/other && fr_fail "answered outside fr/home1/reply/"
grep -q '^fr/home1/ctl/c2/status .*{' "$T/watch.log" && fr_fail "a sync answer on c2's status"
fr_retained_is "$BPORT" fr/home1/ctl/c2/status online || fr_fail "c2's retained status changed"
fr_grep_log mhs "sync (id bad): reply topic 'fr/home1/ctl/c2/status' refused" || fr_fail "refusal not logged"
fr_grep_log mhs "sync (id bad2): reply topic 'fr/home1/other' refused" || fr_fail "refusal 2 not logged"
fr_grep_log mhs "sync: retained request ignored" || fr_fail "retained request not logged"
# A number as id: answered without an id (the reply_to still routes it), and logged.
line=$(grep "^fr/home1/reply/t/num " "$T/watch.log") || fr_fail "the request with a numeric id was not answered"
[ -z "$(fr_json "${line#fr/home1/reply/t/num 0 }" id)" ] || fr_fail "a numeric id echoed: $line"
fr_grep_log mhs 'sync (id ?): "id" not a string of at most 64 bytes: not echoed' || fr_fail "numeric id not logged"
mosquitto_pub -p "$BPORT" -q 1 -r -t fr/home1/sync -n
fr_ok "reply_to outside fr/home1/reply/ refused, retained request ignored, numeric id not echoed, all logged"

# frAroundWeb: its cache from the answer alone.
mosquitto_pub -p "$BPORT" -q 1 -r -t fr/home1/ctl/c2/status -n
mosquitto_pub -p "$BPORT" -q 1 -r -t fr/home1/ctl/c2/info -n
fr_has_retained "$BPORT" fr/home1/ctl/c2/info && fr_fail "c2's retained info still on the broker"
SPORT=$(fr_free_port)
HPORT=$(fr_free_port)
# Three users, two of them sharing home1 and one also granted home2 (which has no frMhs):
# each home is asked once.
fr_users alice:alice-token:home1 bob:bob-token:home2,home1 carol:carol-token:home1
fr_web_conf "$BPORT" "$SPORT" "$HPORT" "" 'instance = "w1";'
fr_start web "$FR_BIN/frAroundWeb" -f -v -c "$T/web.conf"
fr_wait 10 "shim listening" bash -c "exec 3<>/dev/tcp/127.0.0.1/$SPORT"
list() { fr_shim "$SPORT" alice-token '{"op":"list","home":"home1"}'; }
c2_known() {
	local l; l=$(list) && [ "$(fr_json "$l" homes.0.controllers.0.id)" = c2 ] &&
		[ "$(fr_json "$l" homes.0.controllers.0.status)" = online ] &&
		[ "$(fr_json "$l" homes.0.controllers.0.info.name)" = "Controller c2" ]
}
fr_wait 15 "the shim lists c2 online with its info" c2_known
fr_grep_log web "sync: home home1: state taken from its answer" || fr_fail "frAroundWeb did not log the sync"
seen fr/home1/reply/web-sync-w1 || fr_fail "no answer on frAroundWeb's sync reply topic"
fr_grep_log web "sync: asked 2 homes for their state" || fr_fail "home1 (3 users) and home2 not asked once each: $(grep 'sync: asked' "$T/web.log")"
fr_has_retained "$BPORT" fr/home1/ctl/c2/info && fr_fail "c2's info came back retained (the test proves nothing)"
# An answer to an earlier ask (its id is not the latest, web-w1-<n>) is older than what came
# since: ignored, logged.
mosquitto_pub -p "$BPORT" -q 1 -t fr/home1/reply/web-sync-w1 \
	-m '{"type":"sync","id":"web-w1-0","home":"home1","status":"online","controllers":[{"id":"c2","status":"offline"}]}'
fr_wait 10 "the old answer logged" fr_grep_log web "sync: home home1: answer to an earlier ask ignored"
[ "$(fr_json "$(list)" homes.0.controllers.0.status)" = online ] || fr_fail "an old sync answer was applied: $(list)"
fr_ok "frAroundWeb: c2 online with its info from the sync answer alone: $(list)"
