#!/usr/bin/env bash
# The agents on a real broker that speaks MQTT 3.1.1 only (RabbitMQ 3.10 with rabbitmq_mqtt,
# which closes an MQTT 5 connection before any CONNACK), and failover over a broker list: frMhs
# with version "auto" and uri = [a dead port, RabbitMQ] skips the dead one, falls back to 3.1.1
# (logged), and a 3.1.1 requester's command with reply_to gets its result from a real frMhc.
. "$(dirname "$0")/lib.sh"

command -v /usr/lib/rabbitmq/bin/rabbitmq-server >/dev/null || fr_fail "rabbitmq-server is not installed (./fr deps)"
fr_secret "$T/home.secret"
MPORT=$(fr_free_port)     # RabbitMQ's MQTT listener
QPORT=$(fr_free_port)     # its AMQP listener (unused, but on loopback)
EPORT=$(fr_free_port)     # our own epmd
DPORT=$(fr_free_port)     # Erlang distribution
DEAD=$(fr_free_port)      # nobody listens here
APORT=$(fr_free_port)

# A RabbitMQ node of our own: its own epmd (in the foreground, so teardown stops it), names,
# ports and directories; stopped on exit whatever happens.
mkdir -p "$T/rmq/home"
printf 'fr-it-36-cookie' >"$T/rmq/home/.erlang.cookie"
chmod 600 "$T/rmq/home/.erlang.cookie"
cat >"$T/rmq/rabbit.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:$QPORT
mqtt.listeners.tcp.1 = 127.0.0.1:$MPORT
mqtt.allow_anonymous = true
loopback_users = none
CONF
echo "[rabbitmq_mqtt]." >"$T/rmq/plugins"
rabbit_stop() {
	local p
	p=$(cat "$T/rmq/pid" 2>/dev/null) && kill -KILL "$p" 2>/dev/null
	p=$(cat "$T/rabbit.pid" 2>/dev/null) && kill -KILL "$p" 2>/dev/null
	true
}
trap 'rc=$?; rabbit_stop; (exit $rc); fr_teardown' EXIT
fr_start epmd epmd -port "$EPORT" -address 127.0.0.1
fr_start rabbit env HOME="$T/rmq/home" RABBITMQ_NODENAME="fr36-$$@localhost" \
	RABBITMQ_CONFIG_FILE="$T/rmq/rabbit" RABBITMQ_ENABLED_PLUGINS_FILE="$T/rmq/plugins" \
	RABBITMQ_MNESIA_BASE="$T/rmq/mnesia" RABBITMQ_LOG_BASE="$T/rmq/log" RABBITMQ_LOGS=- \
	RABBITMQ_PID_FILE="$T/rmq/pid" RABBITMQ_DIST_PORT="$DPORT" ERL_EPMD_PORT="$EPORT" \
	ERL_EPMD_ADDRESS=127.0.0.1 /usr/lib/rabbitmq/bin/rabbitmq-server
fr_wait 120 "RabbitMQ's MQTT listener" bash -c "exec 3<>/dev/tcp/127.0.0.1/$MPORT"

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
