#!/usr/bin/env bash
# Liveness without a last will (issue 16 item 3, docs/topics.md "fr/<home>/heartbeat"): frMhs
# beats on fr/<home>/heartbeat (QoS 0, not retained, with its interval); frAroundWeb's shim
# reports a home stale with the reason once it missed 3 beats -- here frMhs is frozen with
# SIGSTOP, so its connection stays open and no will is sent, as when a cluster node dies -- and
# online again at its next beat. A home that never beat (an older frMhs) is never stale.
. "$(dirname "$0")/lib.sh"

fr_home
echo 'heartbeat_interval = 1;' >>"$T/mhs.conf"
SPORT=$(fr_free_port)
HPORT=$(fr_free_port)
"$FR_BIN/frMhs" --check-config -c "$T/mhs.conf" >/dev/null || fr_fail "--check-config with heartbeat_interval"
"$FR_BIN/frMhs" --help | grep -q 'heartbeat_interval' || fr_fail "frMhs --help names heartbeat_interval"
fr_start mhs "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
fr_wait 15 "home1 online" fr_retained_is "$BPORT" fr/home1/status online

# The beat: not retained, with ts, seq and interval.
beat=$(mosquitto_sub -p "$BPORT" -t fr/home1/heartbeat -C 1 -W 10 -F '%r %p') ||
	fr_fail "no heartbeat within 10 s"
[ "${beat%% *}" = 0 ] || fr_fail "heartbeat is retained: $beat"
msg=${beat#* }
[ "$(fr_json "$msg" interval)" = 1 ] || fr_fail "heartbeat interval: $msg"
[ "$(fr_json "$msg" seq)" -ge 1 ] 2>/dev/null || fr_fail "heartbeat seq: $msg"
[ "$(fr_json "$msg" ts)" -gt 1700000000000 ] 2>/dev/null || fr_fail "heartbeat ts: $msg"
fr_has_retained "$BPORT" fr/home1/heartbeat && fr_fail "a retained heartbeat on the broker"
fr_ok "heartbeat $msg, not retained"

# home2: an frMhs from before heartbeats (its retained online alone).
mosquitto_pub -p "$BPORT" -t fr/home2/status -m online -r -q 1
fr_users alice:alice-token:home1,home2
fr_web_conf "$BPORT" "$SPORT" "$HPORT" "" 'stale_after = 3;'
"$FR_BIN/frAroundWeb" --check-config -c "$T/web.conf" >/dev/null || fr_fail "--check-config with stale_after"
fr_start web "$FR_BIN/frAroundWeb" -f -v -c "$T/web.conf"
fr_wait 10 "shim listening" bash -c "exec 3<>/dev/tcp/127.0.0.1/$SPORT"

# shim OP_JSON: auth as alice, send one request, print its final answer.
shim() { fr_shim "$SPORT" alice-token "$1"; }
home() { shim "{\"op\":\"list\",\"home\":\"$1\"}"; }
status_is() { local h; h=$(home "$1") && [ "$(fr_json "$h" homes.0.status)" = "$2" ]; }
stale_count() { curl -s "http://127.0.0.1:$HPORT/metrics" | grep -q "^fr_homes_stale $1\$"; }

beats() { local h; h=$(home "$1") && [ "$(fr_json "$h" homes.0.heartbeat_interval)" = "$2" ]; }

fr_wait 15 "shim: home1 online" status_is home1 online
fr_wait 15 "shim: home2 online" status_is home2 online
# frAroundWeb has heard home1's beat (before it, home1 has no liveness to lose).
fr_wait 15 "shim: home1 beats every 1 s" beats home1 1
fr_json "$(home home2)" homes.0.heartbeat_interval >/dev/null && fr_fail "home2 never beat: $(home home2)"
fr_ok "shim reports both homes online, home1 with heartbeats"

kill -STOP "$(fr_pid mhs)"
fr_log "frMhs stopped (SIGSTOP): no beat, no will"
fr_wait 30 "shim: home1 stale" status_is home1 stale
h=$(home home1)
reason=$(fr_json "$h" homes.0.reason)
[[ $reason =~ ^no\ heartbeat\ for\ ([0-9]+)\ s$ ]] || fr_fail "stale reason: $h"
[ "${BASH_REMATCH[1]}" -ge 3 ] || fr_fail "stale before 3 beats were missed: $h"
[ "$(fr_json "$h" homes.0.last_status)" = online ] || fr_fail "last_status: $h"
g=$(shim '{"op":"get","topic":"fr/home1/status"}')
[ "$(fr_json "$g" stale)" = True ] && [[ $(fr_json "$g" reason) =~ ^no\ heartbeat\ for ]] &&
	[ "$(fr_json "$g" payload)" = online ] || fr_fail "get of a stale home's status: $g"
fr_wait 10 "metrics: one stale home" stale_count 1
# The retained status still says online: only the heartbeat tells.
fr_retained_is "$BPORT" fr/home1/status online || fr_fail "a will was sent (the broker dropped frMhs?)"
status_is home2 online || fr_fail "home2 (no heartbeats) changed: $(home home2)"
fr_ok "stale with reason '$reason'; the home without heartbeats stays online"

kill -CONT "$(fr_pid mhs)"
fr_wait 30 "shim: home1 online again" status_is home1 online
g=$(shim '{"op":"get","topic":"fr/home1/status"}')
fr_json "$g" stale >/dev/null && fr_fail "get still stale after a beat: $g"
fr_wait 10 "metrics: no stale home" stale_count 0
fr_ok "a beat clears stale"

# A retained beat (old; frMhs never sends one) gives a home no liveness: frAroundWeb, restarted,
# hears it from the broker's store, and home3 (status online, beat retained, nothing since)
# stays online with no heartbeat_interval beyond 3 of its intervals.
mosquitto_pub -p "$BPORT" -t fr/home3/status -m online -r -q 1
mosquitto_pub -p "$BPORT" -t fr/home3/heartbeat -m '{"ts":1,"seq":1,"interval":1}' -r -q 1
fr_users alice:alice-token:home1,home2,home3
fr_stop web
fr_start web "$FR_BIN/frAroundWeb" -f -v -c "$T/web.conf"
fr_wait 10 "shim listening again" bash -c "exec 3<>/dev/tcp/127.0.0.1/$SPORT"
fr_wait 15 "shim: home3 online" status_is home3 online
sleep_until=$(( $(date +%s) + 4 ))
fr_wait 15 "shim: home1 beats again" beats home1 1
while [ "$(date +%s)" -lt "$sleep_until" ]; do status_is home3 online || fr_fail "home3 (retained beat only): $(home home3)"; sleep 0.5; done
fr_json "$(home home3)" homes.0.heartbeat_interval >/dev/null && fr_fail "a retained beat counted: $(home home3)"
mosquitto_pub -p "$BPORT" -t fr/home3/heartbeat -r -n -q 1
fr_ok "a retained beat is not a heartbeat"

# A garbage heartbeat is refused with a reason and changes nothing.
mosquitto_pub -p "$BPORT" -t fr/home2/heartbeat -m 'not json'
fr_wait 10 "web logs the bad heartbeat" fr_grep_log web "fr/home2/heartbeat: not a heartbeat"
status_is home2 online || fr_fail "home2 after a garbage heartbeat: $(home home2)"
fr_ok "garbage heartbeat refused"
