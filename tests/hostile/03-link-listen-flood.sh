#!/usr/bin/env bash
# Hostile (issue 12 item 3, the home server's side): 2000 idle connections without the secret
# against frMhs's link_listen (where controllers dial in) from 32 addresses, reopened when
# closed. Beside it a controller that dials in is restarted and must come back, and MQTT
# requests to it keep >= 95 % success; frMhs's memory stays bounded and the flood is logged
# with counts. Bounded: 25 s of flood, at most 20 000 connections.
. "$FR_SRC/tests/integration/lib.sh"

fr_secret "$T/home.secret"
BPORT=$(fr_free_port)
APORT=$(fr_free_port)
LPORT=$(fr_free_port)
fr_mosquitto broker "$BPORT"
fr_mhs_conf home1 "$APORT" "$BPORT"
echo "link_listen = { address = \"127.0.0.1\"; port = $LPORT; };" >>"$T/mhs.conf"
fr_start mhs "$FR_BIN/frMhs" -f -c "$T/mhs.conf"
fr_wait 10 "frMhs online" fr_retained_is "$BPORT" fr/home1/status online
# A controller without announces that dials the home server (home_server).
cat >"$T/far.conf" <<CONF
id = "far";
secret_file = "$T/home.secret";
state_dir = "$T/state-far";
listen = { address = "127.0.0.3"; port = 0; };
home_server = { address = "127.0.0.1"; port = $LPORT; };
ping_interval = 0.5; ping_timeout = 2;
$(fr_mhc_root)
actions = ( { name = "noop"; builtin = "noop"; } );
CONF
fr_start far "$FR_BIN/frMhc" -f -c "$T/far.conf"
fr_wait 15 "far online" fr_retained_is "$BPORT" fr/home1/ctl/far/status online
MHS=$(fr_pid mhs)
hwm0=$(fr_vm "$MHS" VmHWM)
lines0=$(wc -l <"$T/mhs.log")

FROM=$(seq -s, -f '127.0.0.%g' 9 40)
fr_start flood python3 "$FR_SRC/tests/hostile/flood.py" idle --target "127.0.0.1:$LPORT" \
	--from "$FROM" --count 2000 --hold 25 --max-opens 20000
sleep 1

# The controller restarts during the flood and has to dial in again.
fr_stop far KILL
fr_wait 20 "far offline" fr_retained_is "$BPORT" fr/home1/ctl/far/status offline
fr_start far2 "$FR_BIN/frMhc" -f -c "$T/far.conf"
fr_wait 20 "far dialled in again under the flood" fr_retained_is "$BPORT" fr/home1/ctl/far/status online
fr_ok "a controller dialled in again during the flood"

fr_start mqtt "$FR_BIN/mqttreq" -u "mqtt://127.0.0.1:$BPORT" -t fr/home1/ctl/far/cmd \
	-s fr/home1/reply/legit -n 60 -R 4 -p m -a noop -w 60
wait "$(fr_pid mqtt)"
fr_mqttreq_ok mqtt 60
wait "$(fr_pid flood)" || fr_fail "flood"
fr_log "flood: $(tail -n1 "$T/flood.log")"
kill -0 "$MHS" || fr_fail "frMhs died"
fr_ok "during the flood: MQTT requests to the dialled-in controller >= 95 % ok"

fr_mem_bounded frMhs "$MHS" "$hwm0" 16384
hostile=$(tail -n +"$((lines0 + 1))" "$T/mhs.log" | grep -c '127\.0\.0\.\(9\|[1-3][0-9]\|40\)\b')
[ "$hostile" -lt 200 ] || fr_fail "$hostile log lines about the flood's addresses: not rate-limited"
grep -q "link listener: refused [0-9]* connections from 127.0.0.[0-9]* in the last 10 s" "$T/mhs.log" ||
	fr_fail "no counted refusal line"
fr_ok "frMhs memory bounded, $hostile counted log lines for the flood"
