#!/usr/bin/env bash
# Issue 12.5: a user of another home connects with the home server's client id (frMhs-demo), the
# page's (web-demo-...) and frAroundWeb's, 10 times a second for 15 s, beside a legitimate client
# doing command round trips through frMhs-demo. The client-id plugin of the shipped broker config
# must refuse every such CONNECT (before the password), frMhs must never be disconnected, and the
# legitimate client keep >= 95 % success.
source "$FR_SRC/tests/integration/lib.sh"
source "$FR_SRC/tests/hostile/deploy-demo.sh"
hd_start
"${ADMIN[@]}" add-home other >/dev/null 2>>"$T/admin.log" || fr_fail "add-home other"
"${ADMIN[@]}" add-user bob --homes other --password bob-secret-0123456789 >/dev/null 2>>"$T/admin.log" || fr_fail "add-user bob"
bob_ok() { mosquitto_sub -p "$FR_DEMO_BROKER_PORT" -u bob -i bob:probe -P bob-secret-0123456789 -t fr/other/x -W 1 2>&1 | grep -q 'Timed out'; }
fr_wait 20 "bob accepted with his own client id" bob_ok
bpid=$(hd_pid mosquitto)
base=$(hd_rss_kb "$bpid")
lost_before=$(grep -c -i 'connection lost\|disconnected' "$FR_DEMO_DIR/logs/frMhs.log")

hd_legit legit 25 &
legit=$!
sleep 3
refused=0 accepted=0 n=0
end=$(( $(date +%s) + 15 ))
while [ "$(date +%s)" -lt "$end" ] && [ "$n" -lt 200 ]; do
	for id in frMhs-demo web-demo-1a2b3c4d frAroundWeb-demo; do
		n=$((n + 1))
		out=$(timeout 5 mosquitto_sub -p "$FR_DEMO_BROKER_PORT" -u bob -i "$id" -P bob-secret-0123456789 \
			-c -q 1 -t fr/demo/# -W 1 2>&1)
		if grep -q -i 'not authori' <<<"$out"; then refused=$((refused + 1)); else accepted=$((accepted + 1)); fi
	done
	sleep 0.1
done
wait "$legit"
fr_log "takeover attempts: $n, refused $refused, accepted $accepted"
[ "$accepted" -eq 0 ] || fr_fail "$accepted CONNECTs with another account's client id were accepted"
grep -q "fr_clientid: client id 'frMhs-demo' refused for account 'bob'" "$FR_DEMO_DIR/logs/mosquitto.log" ||
	fr_fail "the broker did not log the refusal"
lost_after=$(grep -c -i 'connection lost\|disconnected' "$FR_DEMO_DIR/logs/frMhs.log")
[ "$lost_after" -eq "$lost_before" ] || fr_fail "frMhs lost its broker connection during the attack: $(grep -i 'connection lost\|disconnected' "$FR_DEMO_DIR/logs/frMhs.log" | tail -n 3)"
grep -q "already connected, closing old connection" "$FR_DEMO_DIR/logs/mosquitto.log" &&
	fr_fail "the broker closed a connection for a duplicate client id: $(grep 'already connected' "$FR_DEMO_DIR/logs/mosquitto.log" | head -n 3)"
fr_ok "every CONNECT with another account's client id refused; frMhs-demo was never disconnected"
r=$(hd_rss_kb "$bpid")
[ $(( (r - base) / 1024 )) -le 16 ] || fr_fail "broker memory grew from $base to $r kB"
fr_ok "broker memory bounded: $base -> $r kB"
hd_legit_ratio legit 95
