#!/usr/bin/env bash
# A controller on a network where broadcasts do not reach the home server: no announces, it
# dials frMhs's link_listen itself. frMhs learns it from the link (id from the PSK identity,
# port from the hello), publishes it online and drives it; when it stops, it goes offline.
. "$(dirname "$0")/lib.sh"

fr_secret "$T/home.secret"
BPORT=$(fr_free_port)
APORT=$(fr_free_port)
LPORT=$(fr_free_port)
fr_mosquitto broker "$BPORT"
fr_mhs_conf home1 "$APORT" "$BPORT"
echo "link_listen = { address = \"127.0.0.1\"; port = $LPORT; };" >>"$T/mhs.conf"
fr_start mhs "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
fr_wait 10 "home online" fr_retained_is "$BPORT" fr/home1/status online

fr_mhc_conf far 127.0.0.6 "$APORT"
sed -i '/^announce = /d' "$T/far.conf"
echo "home_server = { address = \"127.0.0.1\"; port = $LPORT; };" >>"$T/far.conf"
"$FR_BIN/frMhc" --check-config -c "$T/far.conf" >/dev/null || fr_fail "dial-in config rejected"
fr_start far "$FR_BIN/frMhc" -f -v -c "$T/far.conf"
fr_wait 10 "far online by dialling in" fr_retained_is "$BPORT" fr/home1/ctl/far/status online
info=$(fr_retained "$BPORT" fr/home1/ctl/far/info)
[ "$(fr_json "$info" address)" = 127.0.0.6 ] || fr_fail "address of a dialled-in controller: $info"
[ "$(fr_json "$info" port)" != 0 ] || fr_fail "link port not learnt from the hello: $info"
grep -q "announce" "$T/far.log" && grep -q "not announcing" "$T/far.log" || fr_fail "the controller announced"
out=$(mosquitto_rr -p "$BPORT" -t fr/home1/ctl/far/cmd -e fr/home1/reply/far -W 10 \
	-m '{"id":"far-1","action":"rec","args":{"tag":"far"},"progress":false}') || fr_fail "no reply from far"
[ "$(fr_json "$out" status)" = ok ] || fr_fail "far result: $out"
grep -qx far "$T/runs-far" || fr_fail "the action did not run on far"
fr_ok "a controller that dials in appears online with its address and port, and is driven"

fr_stop far TERM
fr_wait 5 "far offline" fr_retained_is "$BPORT" fr/home1/ctl/far/status offline
fr_ok "a dialled-in controller that stops goes offline"
