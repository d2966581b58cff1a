#!/usr/bin/env bash
# Two frMhs for one home on one broker (an old home server left running beside its
# replacement) share the client id frMhs-<home>, so the broker closes the older connection each
# time the other connects (MQTT session takeover). Each used to come back after backoff_min,
# since every CONNACK reset its reconnect delay: the two took turns at backoff_min forever. A
# connection that lasts under 10 s now counts as one more failure, so the delays grow up to
# backoff_max (frMhs --help, "reconnect delay"). Asserted on the delays both log.
. "$(dirname "$0")/lib.sh"

fr_home
A2=$(fr_free_port)
sed -i 's|backoff_max = 1;|backoff_max = 2;|' "$T/mhs.conf"
grep -q 'backoff_max = 2;' "$T/mhs.conf" || fr_fail "mhs.conf: backoff_max not set"
sed -e "s|state-mhs|state-mhs2|" -e "s|port = $APORT;|port = $A2;|" "$T/mhs.conf" >"$T/mhs2.conf"
fr_start mhs "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
fr_wait 10 "the first frMhs connected" fr_grep_log mhs "connected as frMhs-home1"
fr_start mhs2 "$FR_BIN/frMhs" -f -v -c "$T/mhs2.conf"

delays() { fr_reconnect_delays mhs mhs2; }
enough() { [ "$(delays | wc -l)" -ge 12 ]; }
fr_wait 60 "12 reconnects between the two" enough
# takeovers: how many times the broker closed the older connection of the client id.
takeovers() { grep -c "already connected, closing old connection" "$T/broker.log"; }
ten_takeovers() { [ "$(takeovers)" -ge 10 ]; }
fr_wait 30 "the broker's takeovers logged (the loop this test is about)" ten_takeovers
first=$(delays | head -n 12 | tr '\n' ' ')
# Reset at every CONNACK, each delay is backoff_min (100 ms). Growing, they are drawn from
# [100, 100 << failures] capped at 2000: all twelve below 400 ms by chance is under 1e-6.
max=$(delays | head -n 12 | sort -n | tail -n1)
[ "$max" -ge 400 ] || fr_fail "the two frMhs take turns at backoff_min: delays $first ms"
fr_stop mhs2 TERM
fr_ok "two frMhs with one client id: $(takeovers) takeovers, and their reconnect delays grew (first twelve: $first ms)"
