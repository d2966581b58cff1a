#!/usr/bin/env bash
# frMhs discovery with a real broker and three real controllers on 127.0.0.2-4: retained
# info/status appear, a controller restarted elsewhere is followed, killed/stopped controllers
# go offline with their reasons and come back, spoofed and replayed announces are dropped.
. "$(dirname "$0")/lib.sh"

fr_home
"$FR_BIN/frMhs" --check-config -c "$T/mhs.conf" >/dev/null || fr_fail "frMhs --check-config"
fr_start mhs "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
fr_wait 10 "home status online" fr_retained_is "$BPORT" fr/home1/status online

for n in 2 3 4; do
	fr_mhc_conf "c$n" "127.0.0.$n" "$APORT"
	fr_start "c$n" "$FR_BIN/frMhc" -f -c "$T/c$n.conf"
done
for n in 2 3 4; do
	fr_wait 10 "c$n online" fr_retained_is "$BPORT" "fr/home1/ctl/c$n/status" online
	fr_wait 5 "c$n info" fr_retained_field "$BPORT" "fr/home1/ctl/c$n/info" address "127.0.0.$n"
done
info=$(fr_retained "$BPORT" fr/home1/ctl/c3/info)
[ "$(fr_json "$info" actions.0.name)" = rec ] || fr_fail "info actions: $info"
[ "$(fr_json "$info" actions.0.args.0.pattern)" = "[a-z0-9-]{1,32}" ] || fr_fail "info arg spec: $info"
[ "$(fr_json "$info" sensors.0.name)" = temp ] || fr_fail "info sensors: $info"
[ "$(fr_json "$info" online)" = True ] || fr_fail "info online: $info"
# (The expected value must not be computed before the state exists: wait for the topic.)
fr_wait 10 "c2 sensor state" fr_has_retained "$BPORT" fr/home1/ctl/c2/state/temp
st=$(fr_retained "$BPORT" fr/home1/ctl/c2/state/temp)
# The example sensor prints 20.0 .. 23.9; a whole value such as 20.0 arrives as the number 20.
python3 -c 'import json,sys; v=json.loads(sys.argv[1])["value"]; sys.exit(not (isinstance(v,(int,float)) and 20 <= v < 24))' "$st" \
	|| fr_fail "sensor value: $st"
fr_ok "three controllers appear with retained status, info and sensor state"

# A killed controller goes offline within N periods, with its reason; then comes back.
fr_stop c3 KILL
fr_wait 5 "c3 offline" fr_retained_is "$BPORT" fr/home1/ctl/c3/status offline
info=$(fr_retained "$BPORT" fr/home1/ctl/c3/info)
case $(fr_json "$info" offline_reason) in *"link lost"*"missed"*) ;; *) fr_fail "c3 offline reason: $info" ;; esac
fr_retained_is "$BPORT" fr/home1/ctl/c2/status online || fr_fail "c2 flapped when c3 died"
fr_start c3b "$FR_BIN/frMhc" -f -c "$T/c3.conf"
fr_wait 10 "c3 back online" fr_retained_is "$BPORT" fr/home1/ctl/c3/status online
fr_ok "a killed controller goes offline (link lost, announces missed) and comes back"

# Restarted on another address: followed.
fr_stop c4 TERM
fr_wait 5 "c4 offline after clean stop" fr_retained_is "$BPORT" fr/home1/ctl/c4/status offline
info=$(fr_retained "$BPORT" fr/home1/ctl/c4/info)
[ "$(fr_json "$info" offline_reason)" = "shut down cleanly" ] || fr_fail "clean stop reason: $info"
fr_ok "a cleanly stopped controller goes offline at once: shut down cleanly"
sed -i 's/127\.0\.0\.4/127.0.0.5/' "$T/c4.conf"
fr_start c4b "$FR_BIN/frMhc" -f -c "$T/c4.conf"
fr_wait 10 "c4 online at 127.0.0.5" fr_retained_field "$BPORT" fr/home1/ctl/c4/info address 127.0.0.5
fr_retained_is "$BPORT" fr/home1/ctl/c4/status online || fr_fail "c4 not online after moving"
out=$(mosquitto_rr -p "$BPORT" -t fr/home1/ctl/c4/cmd -e fr/home1/reply/r4 -W 10 \
	-m '{"id":"moved-1","action":"rec","args":{"tag":"moved"},"progress":false}') || fr_fail "command to moved c4"
[ "$(fr_json "$out" status)" = ok ] || fr_fail "moved c4 result: $out"
fr_ok "a controller restarted on another address is followed and driven there"

# One lost datagram never flaps: the link keeps it online even with announces paused.
kill -STOP "$(fr_pid c2)"; sleep 0.2; kill -CONT "$(fr_pid c2)"
fr_retained_is "$BPORT" fr/home1/ctl/c2/status online || fr_fail "c2 flapped on a short pause"
fr_ok "a short silence does not flap a controller"

# Spoofed and replayed announces are dropped and logged.
python3 - "$APORT" "$T" <<'PY' || fr_fail "spoof/replay injector failed"
import socket, sys, time
port, tmp = int(sys.argv[1]), sys.argv[2]
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
r.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
r.bind(("127.255.255.255", port)); r.settimeout(5)
while True:
    data, src = r.recvfrom(9000)
    if b'"id":"c2"' in data: break
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.bind(("127.0.0.9", 0))
s.sendto(data, ("127.255.255.255", port))                        # replay
spoof = data.replace(b'"name":"Controller c2"', b'"name":"Controller cX"')
s.sendto(spoof, ("127.255.255.255", port))                       # spoof (MAC no longer matches)
s.sendto(b"fr1 " + b"0" * 64 + b' {"id":"evil"}', ("127.255.255.255", port))  # forged MAC
s.sendto(b"\x00\xff garbage", ("127.255.255.255", port))         # not even framing
PY
fr_wait 5 "replay logged" fr_grep_log mhs "announce from 127.0.0.9:.* dropped: replayed"
fr_grep_log mhs "announce from 127.0.0.9:.* dropped: bad mac" || fr_fail "spoof not logged"
fr_grep_log mhs "announce from 127.0.0.9:.* dropped: bad framing" || fr_fail "garbage not logged"
[ -z "$(fr_retained "$BPORT" fr/home1/ctl/evil/status)" ] || fr_fail "a forged controller appeared"
info=$(fr_retained "$BPORT" fr/home1/ctl/c2/info)
[ "$(fr_json "$info" name)" = "Controller c2" ] || fr_fail "spoofed name taken: $info"
fr_ok "spoofed, forged, garbage and replayed announces are dropped with a logged reason"

# frMhs killed: the will says offline; restarted: links and statuses recover.
fr_stop mhs KILL
fr_wait 10 "will message" fr_retained_is "$BPORT" fr/home1/status offline
fr_ok "the home's will says offline when frMhs is killed"
fr_stop c2 KILL
fr_start mhs2 "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
fr_wait 10 "home online again" fr_retained_is "$BPORT" fr/home1/status online
for n in 3 4; do
	fr_wait 10 "c$n online after frMhs restart" fr_retained_is "$BPORT" "fr/home1/ctl/c$n/status" online
done
# c2 died while frMhs was down: its stale "online" must not survive.
fr_wait 10 "c2 offline after frMhs restart" fr_retained_is "$BPORT" fr/home1/ctl/c2/status offline
out=$(mosquitto_rr -p "$BPORT" -t fr/home1/ctl/c3/cmd -e fr/home1/reply/r3 -W 10 \
	-m '{"id":"after-restart","action":"rec","args":{"tag":"after"},"progress":false}') || fr_fail "command after frMhs restart"
[ "$(fr_json "$out" status)" = ok ] || fr_fail "after restart: $out"
fr_ok "frMhs restarted: links and statuses recover, a controller that died meanwhile reads offline"
