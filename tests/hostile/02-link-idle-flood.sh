#!/usr/bin/env bash
# Hostile (issue 12 item 3): a peer without the home secret opens 2000 idle connections to a
# controller's link port from 32 addresses (127.0.0.9-40: enough to fill every pending budget)
# and keeps reopening what is closed. Beside it: frMhs is killed and must relink to the
# controller, fresh links from frcmd run commands (each a new handshake, like a relink) and
# MQTT requests go through frMhs: each keeps >= 95 % success. frMhc's memory stays bounded and
# it logs the flood with counts, not a line per connection (it logged 2917 lines in 40 s).
# Bounded: 25 s of flood, at most 20 000 connections.
. "$FR_SRC/tests/integration/lib.sh"

fr_home
fr_start mhs "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
fr_mhc_conf kitchen 127.0.0.2 "$APORT" '{ name = "noop"; builtin = "noop"; }'
fr_start kitchen "$FR_BIN/frMhc" -f -c "$T/kitchen.conf"
fr_wait 15 "kitchen online" fr_retained_is "$BPORT" fr/home1/ctl/kitchen/status online
CPORT=$(fr_json "$(fr_retained "$BPORT" fr/home1/ctl/kitchen/info)" port)
MHC=$(fr_pid kitchen)
hwm0=$(fr_vm "$MHC" VmHWM)
lines0=$(wc -l <"$T/kitchen.log")

FROM=$(seq -s, -f '127.0.0.%g' 9 40)
fr_start flood python3 "$FR_SRC/tests/hostile/flood.py" idle --target "127.0.0.2:$CPORT" \
	--from "$FROM" --count 2000 --hold 25 --max-opens 20000
sleep 1

# frMhs loses its link (killed) and must link again while the flood holds the port.
fr_stop mhs KILL
fr_start mhs2 "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
fr_wait 20 "frMhs relinked under the flood" fr_grep_log mhs2 "controller kitchen: link up"
fr_ok "frMhs relinked to the controller during the flood"

# Fresh links (frcmd: connect, handshake, command) and MQTT requests through frMhs, together.
fr_start mqtt "$FR_BIN/mqttreq" -u "mqtt://127.0.0.1:$BPORT" -t fr/home1/ctl/kitchen/cmd \
	-s fr/home1/reply/legit -n 60 -R 4 -p m -a noop -w 60
ok=0 tries=0
for i in $(seq 40); do
	tries=$((tries + 1))
	"$FR_BIN/frcmd" -s "$T/home.secret" -w 10 -i "link-$i" "127.0.0.2:$CPORT" kitchen noop \
		>>"$T/frcmd.out" 2>&1 && ok=$((ok + 1))
	sleep 0.3
done
fr_log "fresh links: $ok/$tries ok"
fr_rate_ok "$ok" "$tries" || fr_fail "fresh links during the flood: $ok/$tries"
wait "$(fr_pid mqtt)"
fr_mqttreq_ok mqtt 60
wait "$(fr_pid flood)" || fr_fail "flood"
fr_log "flood: $(tail -n1 "$T/flood.log")"
kill -0 "$MHC" || fr_fail "frMhc died"
fr_ok "during the flood: fresh links $ok/$tries, MQTT requests >= 95 % ok"

fr_mem_bounded frMhc "$MHC" "$hwm0" 16384
# The log: nothing per hostile connection, counted lines instead.
hostile=$(tail -n +"$((lines0 + 1))" "$T/kitchen.log" | grep -c '127\.0\.0\.\(9\|[1-3][0-9]\|40\)\b')
[ "$hostile" -lt 200 ] || fr_fail "$hostile log lines about the flood's addresses: not rate-limited"
grep -q "link listener: refused [0-9]* connections from 127.0.0.[0-9]* in the last 10 s" "$T/kitchen.log" ||
	fr_fail "no counted refusal line: $(grep -m3 'link listener' "$T/kitchen.log")"
fr_ok "frMhc memory bounded, $hostile counted log lines for the flood"
