#!/usr/bin/env bash
# A broker that closes the connection at every SUBSCRIBE does not make frMhs a reconnect loop
# (docs/broker.md, "Reconnecting"). RabbitMQ 3.10 answers a SUBSCRIBE to a topic the account
# may not read by closing the connection (access_refused), right after a CONNACK that
# succeeded. Here the home's account may publish but read nothing. frMhs's reconnect delay
# used to start from backoff_min again at every CONNACK, so it reconnected every backoff_min
# for as long as the permission was missing; a connection that lasts less than 10 s now
# counts as one more failure, and the delays grow up to backoff_max. When the operator grants
# the permission on the running node, frMhs is back within backoff_max and answers sync.
. "$(dirname "$0")/../integration/lib.sh"
. "$FR_SRC/tests/cluster/cluster.sh"

cluster_start 1
cluster_accounts home1 alice
H_WRITE='^(fr\.home1\..*|homeassistant\.[^.]+\.fr_home1\..*)$'
H_READ='^(fr\.home1\..*|homeassistant\.[^.]+\.fr_home1\..*|homeassistant\.status)$'
cluster_ctl 1 set_topic_permissions -p "$CLUSTER_VHOST" home-home1 amq.topic "$H_WRITE" '^$' >/dev/null ||
	fr_fail "rabbitmqctl: the home's read permission taken away"

fr_secret "$T/home.secret"
APORT=$(fr_free_port)
fr_mhs_conf home1 "$APORT" 1
sed -i "s|^mqtt = .*|mqtt = { uri = \"mqtt://127.0.0.1:${CLUSTER_MQTT[1]}\"; version = 4; username = \"home-home1\"; password_file = \"$CLUSTER_DIR/accounts/home-home1.pw\"; backoff_min = 0.1; backoff_max = 2; };|" "$T/mhs.conf"
fr_start mhs "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"

delays() { fr_reconnect_delays mhs; }
ten_delays() { [ "$(delays | wc -l)" -ge 10 ]; }
fr_wait 60 "10 reconnects of frMhs" ten_delays
grep -q "access_refused" "$T/cluster-fr1.log" || fr_fail "the node did not refuse frMhs's subscription (no access_refused in its log)"
conns=$(grep -c 'connected as frMhs-home1' "$T/mhs.log")
[ "$conns" -ge 10 ] || fr_fail "frMhs connected $conns times: the connections did not get a CONNACK before they closed"
first=$(delays | head -n 10 | tr '\n' ' ')
# With the delay reset at every CONNACK each of them is backoff_min (100 ms). Growing, they are
# drawn from [100, 100 << failures] capped at 2000: all ten below 400 ms by chance is ~1e-5.
max=$(delays | head -n 10 | sort -n | tail -n1)
[ "$max" -ge 400 ] || fr_fail "frMhs reconnects at backoff_min after each refused session: delays $first ms"
fr_ok "RabbitMQ closed frMhs's connection at every SUBSCRIBE ($conns connections, each with a CONNACK): the reconnect delays grew (first ten: $first ms)"

cluster_ctl 1 set_topic_permissions -p "$CLUSTER_VHOST" home-home1 amq.topic "$H_WRITE" "$H_READ" >/dev/null ||
	fr_fail "rabbitmqctl: the home's read permission given back"
GRANT=$(grep -c 'connected as frMhs-home1' "$T/mhs.log")
# kept: frMhs has made a connection since the grant and kept it for 3 s.
kept() {
	local n; n=$(grep -c 'connected as frMhs-home1' "$T/mhs.log")
	[ "$n" -gt "$GRANT" ] || return 1
	sleep 3
	[ "$(grep -c 'connected as frMhs-home1' "$T/mhs.log")" = "$n" ]
}
fr_wait 30 "frMhs connected and staying connected after the grant" kept
PW=$(cluster_pw alice)
fr_start ans stdbuf -oL mosquitto_sub -d -V 311 -q 1 -h 127.0.0.1 -p "${CLUSTER_MQTT[1]}" -u alice -P "$PW" \
	-i alice:ans -t fr/home1/reply/alice/sync -F '%p'
fr_wait 30 "the requester subscribed" grep -q 'received SUBACK' "$T/ans.log"
mosquitto_pub -V 311 -q 1 -h 127.0.0.1 -p "${CLUSTER_MQTT[1]}" -u alice -P "$PW" -i alice:p1 \
	-t fr/home1/sync -m '{"id":"s-1","reply_to":"fr/home1/reply/alice/sync"}' || fr_fail "mosquitto_pub of sync"
fr_wait 15 "the sync answer" grep -q '"id":"s-1"' "$T/ans.log"
fr_ok "after the read permission was granted on the running node, frMhs came back by itself, stayed connected and answered sync"
