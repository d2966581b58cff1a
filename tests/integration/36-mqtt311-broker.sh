#!/usr/bin/env bash
# The agents on a real broker that speaks MQTT 3.1.1 only (RabbitMQ 3.10 with rabbitmq_mqtt,
# which closes an MQTT 5 connection before any CONNACK), and failover over a broker list: frMhs
# with version "auto" and uri = [a dead port, RabbitMQ] skips the dead one, falls back to 3.1.1
# (logged), and a 3.1.1 requester's command with reply_to gets its result from a real frMhc.
. "$(dirname "$0")/lib.sh"

fr_secret "$T/home.secret"
MPORT=$(fr_free_port)     # RabbitMQ's MQTT listener
DEAD=$(fr_free_port)      # nobody listens here
APORT=$(fr_free_port)
fr_rabbit "$MPORT"

fr_mhs_conf home1 "$APORT" "$MPORT"
sed -i "s|^mqtt = .*|mqtt = { uri = [\"mqtt://127.0.0.1:$DEAD\", \"mqtt://127.0.0.1:$MPORT\"]; version = \"auto\"; backoff_min = 0.1; backoff_max = 1; };|" "$T/mhs.conf"
"$FR_BIN/frMhs" --check-config -c "$T/mhs.conf" >/dev/null || fr_fail "frMhs rejects a broker list with version auto"
fr_start mhs "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
fr_wait 30 "frMhs on MQTT 3.1.1" fr_grep_log mhs "connected as frMhs-home1 (MQTT 3.1.1)"
fr_grep_log mhs "mqtt://127.0.0.1:$MPORT: the broker closed the connection to MQTT 5; trying MQTT 3.1.1" ||
	fr_fail "the fall back was not logged"
fr_grep_log mhs "next broker mqtt://127.0.0.1:$MPORT" || fr_fail "no failover from the dead broker"
fr_ok "frMhs: failover past a dead broker, then MQTT 5 refused, MQTT 3.1.1 spoken (logged)"

fr_mhc_conf c2 127.0.0.2 "$APORT"
fr_start c2 "$FR_BIN/frMhc" -f -v -c "$T/c2.conf"
fr_wait 20 "c2 online" fr_retained_is "$MPORT" fr/home1/ctl/c2/status online
"$FR_BIN/mqttreq" -u "mqtt://127.0.0.1:$MPORT" -V auto -t fr/home1/ctl/c2/cmd -s fr/home1/reply/v311 -w 20 \
	-m '{"id":"r36-1","action":"rec","args":{"tag":"rabbit"},"reply_to":"fr/home1/reply/v311"}' \
	>"$T/req.out" 2>"$T/req.err" || fr_fail "3.1.1 request: $(cat "$T/req.out" "$T/req.err")"
grep -q "trying MQTT 3.1.1" "$T/req.err" || fr_fail "mqttreq did not fall back: $(cat "$T/req.err")"
[ "$(fr_json "$(tail -n1 "$T/req.out")" payload.status)" = ok ] || fr_fail "result: $(cat "$T/req.out")"
grep -qx rabbit "$T/runs-c2" || fr_fail "the action did not run"
fr_ok "a 3.1.1 request with reply_to through RabbitMQ: result ok from frMhc"
