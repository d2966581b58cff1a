#!/usr/bin/env bash
# frMhs on a 3-node RabbitMQ 3.10 cluster (issue 16, item 5 without the web side): frMhs with
# uri = [node 1, node 2, node 3] and version "auto" (the cluster speaks MQTT 3.1.1 only), a real
# frMhc, and a requester (python3-paho, MQTT 3.1.1, reply_to) on node 2 sending 200 commands.
# Node 1, where frMhs is connected, is SIGKILLed after 100 of them. Asserted: frMhs moves to
# another node by itself (logged); every command gets a final answer; every action ran exactly
# once; extra answers (a command redelivered by the broker) are marked duplicate; an observer on
# node 3 sees frMhs's new birth (status online). Its figures are printed.
. "$(dirname "$0")/../integration/lib.sh"
. "$FR_SRC/tests/cluster/cluster.sh"

PY=/usr/bin/python3
$PY -c 'import paho.mqtt' 2>/dev/null || fr_fail "python3-paho-mqtt missing (./fr deps)"
N=200
T0=$SECONDS
cluster_start 3
cluster_accounts home1 alice

fr_secret "$T/home.secret"
APORT=$(fr_free_port)
fr_mhs_conf home1 "$APORT" 1
uris="\"mqtt://127.0.0.1:${CLUSTER_MQTT[1]}\", \"mqtt://127.0.0.1:${CLUSTER_MQTT[2]}\", \"mqtt://127.0.0.1:${CLUSTER_MQTT[3]}\""
sed -i "s|^mqtt = .*|mqtt = { uri = [$uris]; version = \"auto\"; username = \"home-home1\"; password_file = \"$CLUSTER_DIR/accounts/home-home1.pw\"; backoff_min = 0.1; backoff_max = 1; };|" "$T/mhs.conf"
"$FR_BIN/frMhs" --check-config -c "$T/mhs.conf" >/dev/null || fr_fail "frMhs rejects its cluster config"
fr_start mhs "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
fr_wait 60 "frMhs on node 1, MQTT 3.1.1" fr_grep_log mhs "mqtt://127.0.0.1:${CLUSTER_MQTT[1]}: connected as frMhs-home1 (MQTT 3.1.1)"
fr_mhc_conf c1 127.0.0.2 "$APORT"
fr_start c1 "$FR_BIN/frMhc" -f -v -c "$T/c1.conf"
# Online: read where frMhs publishes it (retained messages stay on the node they were sent to).
fr_wait 30 "c1 online" bash -c "mosquitto_sub -V 311 -h 127.0.0.1 -p ${CLUSTER_MQTT[1]} -u alice -P \$(cat $CLUSTER_DIR/accounts/alice.pw) -i alice:on\$RANDOM -t fr/home1/ctl/c1/status -C 1 -W 2 | grep -qx online"

# The observer on node 3: every status of the home, with its arrival time.
fr_start obs stdbuf -oL mosquitto_sub -d -V 311 -h 127.0.0.1 -p "${CLUSTER_MQTT[3]}" -u alice -P "$(cluster_pw alice)" \
	-i alice:obs -t fr/home1/status -F '%U %p'
fr_wait 30 "observer subscribed" grep -q 'received SUBACK' "$T/obs.log"

rm -f "$T/go"
fr_start req "$PY" "$FR_SRC/tests/cluster/probe.py" -u alice -F "$CLUSTER_DIR/accounts/alice.pw" requests \
	"${CLUSTER_MQTT[2]}" fr/home1/ctl/c1/cmd "$N" --reply fr/home1/reply/alice/q --prefix q --rate 20 \
	--pause-at $((N / 2)) --go "$T/go" --bound 90
fr_wait 60 "$((N / 2)) commands sent" grep -q '^PAUSE' "$T/req.log"
KILL_NS=$(date +%s%N)
cluster_kill 1
touch "$T/go"
fr_wait 60 "frMhs on another node" grep -Eq "mqtt://127.0.0.1:(${CLUSTER_MQTT[2]}|${CLUSTER_MQTT[3]}): connected as frMhs-home1 \(MQTT 3.1.1\)" "$T/mhs.log"
# Its birth on the new node reaches node 3 (node 1 sent no will: the home never looked offline).
# birth_delay: seconds from the kill to the first "online" on node 3 after it (empty if none).
birth_delay() {
	awk -v ks="${KILL_NS:0:10}" -v kn="${KILL_NS:10}" '$2 == "online" && !done {
		split($1, t, "."); d = (t[1] - ks) + (t[2] - kn) / 1e9
		if (d > 0) { printf "%.2f", d; done = 1 } }' "$T/obs.log"
}
birth_seen() { [ -n "$(birth_delay)" ]; }
fr_wait 60 "frMhs's new birth seen on node 3" birth_seen
BIRTH=$(birth_delay)
fr_wait 120 "the requester finished" fr_proc_gone "$(fr_pid req)"
wait "$(fr_pid req)" 2>/dev/null
r=$(sed -n 's/^RESULT //p' "$T/req.log" | tail -n1)
[ -n "$r" ] || fr_fail "no result from the requester: $(tail -n5 "$T/req.log")"
j() { printf '%s' "$r" | jq -r "$1"; }
runs=$(wc -l <"$T/runs-c1")
twice=$(sort "$T/runs-c1" | uniq -d | head -n5 | tr '\n' ' ')
fr_log "requester: $r"
fr_log "actions run: $runs (twice: '${twice}')"
[ "$(j .puback)" = "$N" ] || fr_fail "not every command was acknowledged by the broker: $r"
[ "$(j .answered)" = "$N" ] || fr_fail "commands without a final answer: $r"
[ "$(j '.statuses.ok // 0')" -ge "$N" ] || fr_fail "not every final answer is ok: $r"
[ "$(j .extra_not_marked_duplicate)" = 0 ] || fr_fail "an extra answer not marked duplicate: $r"
[ -z "$twice" ] || fr_fail "actions ran twice: $twice"
[ "$runs" = "$N" ] || fr_fail "$runs actions ran for $N commands"
failover=$(grep -Eo "mqtt://127.0.0.1:(${CLUSTER_MQTT[2]}|${CLUSTER_MQTT[3]}): connected as frMhs-home1 \(MQTT 3.1.1\)" "$T/mhs.log" | head -n1)
fr_log "FIGURES: $N commands from node 2, node 1 (frMhs's) SIGKILLed after $((N / 2)): answered $(j .answered), extra answers $(j .extra_answers) (all marked duplicate), actions run $runs, none twice; frMhs: '$failover'; its birth seen on node 3 ${BIRTH} s after the kill; all answers $(j .answers_s) s after the first command; test $((SECONDS - T0)) s"
fr_ok "frMhs fails over between cluster nodes by itself; every command answered, none run twice"
