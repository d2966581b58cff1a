#!/usr/bin/env bash
# Many controllers announcing at once (docs/lan-protocol.md, "Discovery"): frMhs dials at most
# 32 at a time, and a controller whose announce arrived while every slot was taken is dialled
# when one frees -- it does not wait for its next announce. Here N simulated controllers
# (bench/ctlsim, fr's own LAN protocol code, one loopback address each) announce exactly once
# (their interval is an hour), so each one that comes online was linked from that one announce.
. "$(dirname "$0")/lib.sh"

[ -x "$FR_BIN/ctlsim" ] || fr_fail "ctlsim is not built (bench/, FR_BENCH=ON)"
N=120
fr_home
fr_start mhs "$FR_BIN/frMhs" -f -c "$T/mhs.conf"
fr_wait 10 "home online" fr_retained_is "$BPORT" fr/home1/status online

fr_start sim "$FR_BIN/ctlsim" discovery -s "$T/home.secret" -a "127.255.255.255:$APORT" -n "$N" -I 3600 -T 120
fr_wait 10 "the simulators started" fr_grep_log sim "^STARTED"

# online_count: how many of the home's controllers read online in their retained status.
online_count() {
	mosquitto_sub -p "$BPORT" -t 'fr/home1/ctl/+/status' -v --retained-only -W 2 2>/dev/null |
		grep -c ' online$'
}
all_online() { [ "$(online_count)" -ge "$N" ]; }
end=$((SECONDS + 60))
until all_online || [ "$SECONDS" -ge "$end" ]; do sleep 0.5; done
all_online || fr_fail "$(online_count) of $N controllers online 60 s after one announce each"

fr_stop sim TERM
res=$(sed -n 's/^RESULT //p' "$T/sim.log")
[ -n "$res" ] || fr_fail "ctlsim printed no RESULT"
ann=$(fr_json "$res" announces)
linked=$(fr_json "$res" linked)
[ "$ann" = "$N" ] || fr_fail "the simulators announced $ann times, not once each ($N): $res"
[ "$linked" = "$N" ] || fr_fail "frMhs linked $linked of $N simulators: $res"
fr_ok "$N controllers announced once, all at the same moment: frMhs linked every one (32 dials at a time) and each reads online"
