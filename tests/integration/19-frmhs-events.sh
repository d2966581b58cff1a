#!/usr/bin/env bash
# Events under load (issue 11, item 11): a simulated controller (bench/ctlsim, fr's own LAN
# protocol code) pushes a burst of events as fast as its link drains. frMhs publishes every one
# while the broker is connected -- nothing is lost inside frMhs -- and counts what it received,
# published and dropped in the retained fr/<home>/stats topic; while the broker is away, events
# beyond a small allowance are dropped and counted, never silently lost.
. "$(dirname "$0")/lib.sh"

[ -x "$FR_BIN/ctlsim" ] || fr_fail "ctlsim is not built (bench/, FR_BENCH=ON)"
fr_secret "$T/home.secret"
BPORT=$(fr_free_port)
APORT=$(fr_free_port)
SPORT=$(fr_free_port)
N=20000
M=3000
fr_mosquitto broker "$BPORT"
fr_mhs_conf home1 "$APORT" "$BPORT"
echo "controllers = ( { id = \"sim-ev\"; address = \"127.0.0.1\"; port = $SPORT; } );" >>"$T/mhs.conf"
fr_start mhs "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
fr_wait 10 "home online" fr_retained_is "$BPORT" fr/home1/status online
fr_start sub mosquitto_sub -p "$BPORT" -t fr/home1/ctl/sim-ev/event
sleep 0.3

# stats FIELD...: the fields of the retained stats document, space-separated.
stats() {
	local s f out=
	s=$(fr_retained "$BPORT" fr/home1/stats)
	for f in "$@"; do out="$out $(fr_json "$s" "$f")"; done
	echo $out
}
# stats_is FIELD VALUE
stats_is() { [ "$(stats "$1")" = "$2" ]; }
fr_start sim "$FR_BIN/ctlsim" events -s "$T/home.secret" -l 127.0.0.1 -p "$SPORT" -n "$N" -T 60 -L 1
fr_wait 60 "ctlsim pushed $N events" fr_grep_log sim "^RESULT"
# The stats topic is refreshed every 10 s when a counter changed.
fr_wait 30 "stats count $N events" stats_is events.received "$N"
read -r rcv pub drop <<<"$(stats events.received events.published events.dropped)"
[ "$rcv" = "$N" ] || fr_fail "stats: received $rcv of $N: $(fr_retained "$BPORT" fr/home1/stats)"
[ "$pub" = "$N" ] && [ "$drop" = 0 ] || fr_fail "events lost inside frMhs with the broker up: published $pub, dropped $drop of $N"
fr_stop sub TERM
got=$(grep -c '"kind"' "$T/sub.log")
[ "$got" -gt 0 ] && [ "$got" -le "$N" ] || fr_fail "subscriber got $got events"
fr_ok "a burst of $N events: frMhs received and published all of them (stats); a subscriber read $got (QoS 0: the broker may drop for a slow reader, and counts it)"

# The broker away: a restarted controller pushes M more; beyond the allowance they are dropped,
# and counted.
fr_stop broker TERM
fr_stop sim TERM
fr_start sim2 "$FR_BIN/ctlsim" events -s "$T/home.secret" -l 127.0.0.1 -p "$SPORT" -n "$M" -T 60 -L 1
fr_wait 60 "ctlsim pushed $M events" fr_grep_log sim2 "^RESULT"
fr_start broker2 mosquitto -c "$T/broker.conf"
fr_wait 10 "broker back" bash -c "exec 3<>/dev/tcp/127.0.0.1/$BPORT"
fr_wait 30 "stats count $((N + M)) events" stats_is events.received "$((N + M))"
read -r rcv pub drop <<<"$(stats events.received events.published events.dropped)"
[ $((pub + drop)) = "$rcv" ] || fr_fail "stats do not add up: received $rcv, published $pub, dropped $drop"
[ "$drop" -ge $((M - 1000)) ] && [ "$drop" -le "$M" ] || fr_fail "dropped while the broker was away: $drop of $M"
fr_ok "with the broker away, $drop of $M events were dropped and counted (received = published + dropped)"
