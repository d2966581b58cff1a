#!/usr/bin/env bash
# The cluster harness (tests/cluster/cluster.sh) and the broker facts issue 16 builds on, proved
# on a 3-node RabbitMQ 3.10 cluster with foreign clients only (mosquitto_pub/sub -V 311 and
# python3-paho, tests/cluster/probe.py). Each fact is printed with its evidence (FACT lines):
#   cross-node   QoS 1 published on node 2 reaches persistent subscribers on nodes 1 and 3, and a
#                session queued while offline is resumed on another node
#   retained     per node, never sent to wildcard subscriptions, kept across a node restart
#   mirrored     a session's queued messages survive the death of its node with the ha policy
#   unmirrored   without it they are unavailable while the node is down, and those published
#                meanwhile are acknowledged and lost
#   no-will      a node's death sends no last will (a client's death does)
#   mqtt5        an MQTT 5 CONNECT is refused
#   web-mqtt     MQTT 3.1.1 over WebSocket gets messages published on another node
#   accounts     fr's topic rights, and what RabbitMQ does with another account's client id
. "$(dirname "$0")/../integration/lib.sh"
. "$FR_SRC/tests/cluster/cluster.sh"

PY=/usr/bin/python3   # Debian's, with python3-paho-mqtt (a pyenv python3 may come first)
$PY -c 'import paho.mqtt' 2>/dev/null || fr_fail "python3-paho-mqtt missing (./fr deps)"
command -v mosquitto_sub >/dev/null || fr_fail "mosquitto-clients missing (./fr deps)"
FACTS=$T/facts.txt
: >"$FACTS"
fact() { printf 'FACT %s: %s\n' "$1" "$2" | tee -a "$FACTS" >&2; }

probe() { $PY "$FR_SRC/tests/cluster/probe.py" "$@"; }
# as ACCOUNT: the probe's options for that account.
as() { echo "-u $1 -F $CLUSTER_DIR/accounts/$1.pw"; }
# bg NAME ARGS...: a probe in the background, output in $T/NAME.log.
bg() { local n=$1; shift; fr_start "$n" $PY "$FR_SRC/tests/cluster/probe.py" "$@"; }
ready() { fr_wait 30 "$1 ready" grep -q '^READY' "$T/$1.log"; }
done_() { fr_wait "${2:-90}" "$1 finished" fr_proc_gone "$(fr_pid "$1")"; wait "$(fr_pid "$1")" 2>/dev/null; }
res() { sed -n 's/^RESULT //p' "$T/$1.log" | tail -n1; }
j() { printf '%s' "$1" | jq -r "$2"; }
# msub NODE ACCOUNT ID ARGS...: mosquitto_sub, MQTT 3.1.1, on node NODE.
msub() {
	local n=$1 a=$2 id=$3; shift 3
	mosquitto_sub -V 311 -h 127.0.0.1 -p "${CLUSTER_MQTT[$n]}" -u "$a" -P "$(cluster_pw "$a")" -i "$id" "$@"
}
mpub() {
	local n=$1 a=$2 id=$3; shift 3
	mosquitto_pub -V 311 -h 127.0.0.1 -p "${CLUSTER_MQTT[$n]}" -u "$a" -P "$(cluster_pw "$a")" -i "$id" "$@"
}
# retained_on NODE TOPIC: what a new subscriber to TOPIC on NODE gets within 3 s ("" if nothing).
# subacked NAME: the mosquitto_sub -d started as NAME has its subscription (they run under
# stdbuf -oL: writing to a file, mosquitto_sub's stdout is otherwise flushed only at its exit).
subacked() { fr_wait 30 "$1 subscribed" grep -q 'received SUBACK' "$T/$1.log"; }
retained_on() { msub "$1" alice "alice:r$RANDOM" -t "$2" -v -C 1 -W 3 2>/dev/null; }
queues() { cluster_ctl 2 list_queues -p "$CLUSTER_VHOST" name type pid slave_pids messages state 2>/dev/null | tr '\t' ' '; }

T0=$SECONDS
cluster_start 3
START_S=$((SECONDS - T0))
cluster_listeners_loopback || fr_fail "a cluster listener is not on loopback"
fact cluster "3 nodes ($(cluster_running | tr '\n' ' ')) clustered and configured in ${START_S} s; every listener (MQTT, web-MQTT, AMQP, distribution, epmd) on loopback"
# The accounts at once: each rabbitmqctl call is an Erlang VM's start (about a second), and the
# five accounts are independent.
acc_pids=()
for a in "cluster_add_home h1" "cluster_add_home h2" "cluster_add_user alice h1" "cluster_add_user bob h2" cluster_add_web; do
	$a &
	acc_pids+=($!)
done
for p in "${acc_pids[@]}"; do wait "$p" || fr_fail "an account was not made (see $T/cluster-ctl.log)"; done
fr_log "accounts made at $((SECONDS - T0)) s"

# --- mqtt5 ----------------------------------------------------------------------------------
probe v5 "${CLUSTER_MQTT[2]}" >"$T/v5.log" 2>&1
v5=$(res v5)
[ "$(j "$v5" .closed)" = true ] && [ -z "$(j "$v5" .answer_hex)" ] ||
	fr_fail "an MQTT 5 CONNECT was not refused by closing: $v5"
mpub 2 alice alice:v5 -V 5 -t fr/h1/display -m x -q 1 >"$T/v5-mosq.log" 2>&1
v5rc=$?
[ "$v5rc" -ne 0 ] || fr_fail "mosquitto_pub -V 5 succeeded"
fact mqtt5 "an MQTT 5 CONNECT is answered by closing the connection, no CONNACK (raw socket: $v5); mosquitto_pub -V 5 exits $v5rc with '$(tr '\n' ' ' <"$T/v5-mosq.log")'"

# --- cross-node -----------------------------------------------------------------------------
bg x1 $(as alice) recv alice:x1 "${CLUSTER_MQTT[1]}" 100 60 --topic fr/h1/ctl/c1/cmd
bg x3 $(as alice) recv alice:x3 "${CLUSTER_MQTT[3]}" 100 60 --topic fr/h1/ctl/c1/cmd
ready x1; ready x3
probe $(as alice) pub "${CLUSTER_MQTT[2]}" fr/h1/ctl/c1/cmd 100 >"$T/xpub.log" 2>&1 || fr_fail "publish on node 2: $(cat "$T/xpub.log")"
done_ x1; done_ x3
for n in x1 x3; do
	r=$(res $n)
	[ "$(j "$r" .distinct)" = 100 ] && [ "$(j "$r" .in_order)" = true ] || fr_fail "$n: $r"
done
# The sessions of x1 and x3 stay (clean session off): 50 more, queued while both are offline,
# then x1's session resumed on node 3 and x3's on node 1.
probe $(as alice) pub "${CLUSTER_MQTT[2]}" fr/h1/ctl/c1/cmd 50 >"$T/xpub2.log" 2>&1 || fr_fail "second publish: $(cat "$T/xpub2.log")"
probe $(as alice) recv alice:x1 "${CLUSTER_MQTT[3]}" 50 30 >"$T/x1b.log" 2>&1
probe $(as alice) recv alice:x3 "${CLUSTER_MQTT[1]}" 50 30 >"$T/x3b.log" 2>&1
for n in x1b x3b; do
	r=$(res $n)
	[ "$(j "$r" .session_present)" = 1 ] && [ "$(j "$r" .distinct)" = 50 ] || fr_fail "$n: $r"
done
fact cross-node "100 QoS 1 messages published on node 2 ($(res xpub | jq -c '{puback}')) reached the persistent subscriber on node 1 ($(res x1 | jq -c '{distinct,duplicates,in_order}')) and on node 3 ($(res x3 | jq -c '{distinct,duplicates,in_order}')); 50 queued while both were offline were delivered when each session was resumed on the other node (node 1 -> 3: $(res x1b | jq -c '{session_present,distinct}'), node 3 -> 1: $(res x3b | jq -c '{session_present,distinct}'))"

# --- retained -------------------------------------------------------------------------------
mpub 1 home-h1 home-h1:r -t fr/h1/ctl/c1/status -m online -r -q 1 || fr_fail "retained publish on node 1"
on1=$(retained_on 1 fr/h1/ctl/c1/status)
on2=$(retained_on 2 fr/h1/ctl/c1/status)
on3=$(retained_on 3 fr/h1/ctl/c1/status)
w1=$(retained_on 1 'fr/h1/ctl/+/status')
w2=$(retained_on 1 'fr/h1/#')
[ "$on1" = "fr/h1/ctl/c1/status online" ] || fr_fail "retained on node 1: '$on1'"
[ -z "$on2" ] && [ -z "$on3" ] || fr_fail "retained crossed nodes: node 2 '$on2', node 3 '$on3'"
[ -z "$w1" ] && [ -z "$w2" ] || fr_fail "retained sent to a wildcard: '$w1' '$w2'"
# Live: a wildcard subscriber on node 3 gets a retained publish of node 2 as it happens (with the
# retain flag as printed), while node 1 keeps its own older value.
fr_start live stdbuf -oL mosquitto_sub -d -V 311 -h 127.0.0.1 -p "${CLUSTER_MQTT[3]}" -u alice -P "$(cluster_pw alice)" \
	-i alice:live -t 'fr/h1/ctl/+/status' -F '%t %p retain=%r' -C 1 -W 30
subacked live
mpub 2 home-h1 home-h1:r2 -t fr/h1/ctl/c1/status -m offline -r -q 1 || fr_fail "retained publish on node 2"
done_ live 35
live=$(grep '^fr/' "$T/live.log")
[ "$live" = "fr/h1/ctl/c1/status offline retain=0" ] || fr_fail "live delivery of a retained publish: '$live'"
on1b=$(retained_on 1 fr/h1/ctl/c1/status); on2b=$(retained_on 2 fr/h1/ctl/c1/status)
[ "$on1b" = "fr/h1/ctl/c1/status online" ] && [ "$on2b" = "fr/h1/ctl/c1/status offline" ] ||
	fr_fail "per-node retained values: node 1 '$on1b', node 2 '$on2b'"
fact retained "published retained on node 1: a new exact subscriber on node 1 gets '$on1'; on nodes 2 and 3 nothing ('$on2', '$on3'); wildcard subscribers on node 1 (fr/h1/ctl/+/status, fr/h1/#) nothing; a wildcard subscriber on node 3 gets a retained publish of node 2 live ('$live'); then node 1 still answers '$on1b' and node 2 '$on2b': each node keeps its own last value"

# --- no-will, control: a client's death sends its will ---------------------------------------
fr_start obs2 stdbuf -oL mosquitto_sub -d -V 311 -h 127.0.0.1 -p "${CLUSTER_MQTT[2]}" -u alice -P "$(cluster_pw alice)" \
	-i alice:obs2 -t fr/h1/status -F '%t %p' -k 30
fr_start obs3 stdbuf -oL mosquitto_sub -d -V 311 -h 127.0.0.1 -p "${CLUSTER_MQTT[3]}" -u alice -P "$(cluster_pw alice)" \
	-i alice:obs3 -t fr/h1/status -F '%t %p' -k 30
fr_start willc stdbuf -oL mosquitto_sub -d -V 311 -h 127.0.0.1 -p "${CLUSTER_MQTT[2]}" -u home-h1 -P "$(cluster_pw home-h1)" \
	-i home-h1:willc -t fr/h1/nothing -k 5 --will-topic fr/h1/status --will-payload client-died --will-qos 1
subacked obs2; subacked obs3; subacked willc
fr_stop willc KILL
fr_wait 30 "the will of a killed client on node 3" grep -q 'fr/h1/status client-died' "$T/obs3.log"
fr_wait 30 "the will of a killed client on node 2" grep -q 'fr/h1/status client-died' "$T/obs2.log"

# --- mirrored: node 1 dies with a session's queue on it --------------------------------------
# frMhs-like: home h1's session on node 1, subscribed to its commands, then offline; alice sends
# 100 commands on node 2; after 50, node 1 is killed; the session is resumed on node 3. Node 1
# also holds a client with a last will (for no-will).
probe $(as home-h1) session frMhs-h1 "${CLUSTER_MQTT[1]}" 'fr/h1/ctl/+/cmd' >"$T/m-sess.log" 2>&1 ||
	fr_fail "session on node 1: $(cat "$T/m-sess.log")"
fr_start willn stdbuf -oL mosquitto_sub -d -V 311 -h 127.0.0.1 -p "${CLUSTER_MQTT[1]}" -u home-h1 -P "$(cluster_pw home-h1)" \
	-i home-h1:willn -t fr/h1/nothing -k 5 --will-topic fr/h1/status --will-payload node-died --will-qos 1
subacked willn
mq=$(queues | grep 'mqtt-subscription-frMhs-h1qos1')
echo "$mq" | grep -q "<fr1@localhost" && echo "$mq" | grep -q fr2@localhost && echo "$mq" | grep -q fr3@localhost ||
	fr_fail "the session queue is not on node 1 with mirrors on 2 and 3: $mq"
rm -f "$T/go-m"
bg m-pub $(as alice) pub "${CLUSTER_MQTT[2]}" fr/h1/ctl/c1/cmd 100 --pause-at 50 --go "$T/go-m"
fr_wait 60 "50 commands published" grep -q '^PAUSE' "$T/m-pub.log"
KILL_AT=$(date +%s%N)
cluster_kill 1
touch "$T/go-m"
done_ m-pub
probe $(as home-h1) recv frMhs-h1 "${CLUSTER_MQTT[3]}" 100 30 >"$T/m-recv.log" 2>&1
r=$(res m-recv)
[ "$(j "$(res m-pub)" .puback)" = 100 ] || fr_fail "mirrored: publisher: $(res m-pub)"
[ "$(j "$r" .session_present)" = 1 ] && [ "$(j "$r" .distinct)" = 100 ] || fr_fail "mirrored: $r"
fact mirrored "policy fr-mqtt-sessions (ha-mode all, ha-sync-mode automatic on ^mqtt-subscription-): the session queue was on node 1 with mirrors on 2 and 3 ($mq); 50 commands queued, node 1 SIGKILLed, 50 more published on node 2 ($(res m-pub | jq -c '{puback}')); resumed on node 3: $(echo "$r" | jq -c '{session_present,distinct,duplicates,missing}'); queue now: $(queues | grep 'frMhs-h1qos1')"

# --- node 1 back: it rejoins; its retained store survived -------------------------------------
# Its restart overlaps the no-will window below (a will published when the node comes back
# would be seen there too).
t1=$SECONDS
cluster_start_node 1
cluster_wait_running 3
RESTART_S=$((SECONDS - t1))

# --- no-will: nothing from the node's death ---------------------------------------------------
# The will client on node 1 had keepalive 5 s: a broker that kept its will would publish it
# within 1.5 x 5 s of the silence. Wait 20 s (2.7 times that) from the kill, then read the
# observers.
fr_wait 60 "20 s since node 1 died" bash -c "[ \$(( (\$(date +%s%N) - $KILL_AT) / 1000000000 )) -ge 20 ]"
if grep -q '^fr/.*node-died' "$T/obs2.log" "$T/obs3.log"; then fr_fail "a will was sent for a dead node's client"; fi
fact no-will "a client with a last will killed by SIGKILL on node 2: its will reached observers on nodes 2 and 3 ('$(grep -h '^fr/.*client-died' "$T/obs3.log" | head -n1)'); a client with a will (keepalive 5 s) on node 1 when node 1 was SIGKILLed: nothing on nodes 2 and 3 in 20 s, node 1's restart included (observers saw: $(grep -h '^fr/' "$T/obs2.log" "$T/obs3.log" | sort | uniq -c | tr -s ' ' | tr '\n' ';'))"
fr_stop willn KILL
on1c=$(retained_on 1 fr/h1/ctl/c1/status)
[ "$on1c" = "fr/h1/ctl/c1/status online" ] || fr_fail "node 1's retained value after its restart: '$on1c'"
fact retained-restart "node 1 restarted and rejoined in ${RESTART_S} s; its retained value survived the SIGKILL: '$on1c'"

# --- unmirrored: the same without the policy ---------------------------------------------------
cluster_policy_clear
probe $(as home-h2) session frMhs-h2 "${CLUSTER_MQTT[1]}" 'fr/h2/ctl/+/cmd' >"$T/u-sess.log" 2>&1 ||
	fr_fail "session on node 1: $(cat "$T/u-sess.log")"
uq=$(queues | grep 'mqtt-subscription-frMhs-h2qos1')
echo "$uq" | grep -q "<fr1@localhost" && ! echo "$uq" | grep -q fr2@localhost || fr_fail "the unmirrored queue: $uq"
rm -f "$T/go-u"
bg u-pub $(as bob) pub "${CLUSTER_MQTT[2]}" fr/h2/ctl/c1/cmd 100 --pause-at 50 --go "$T/go-u"
fr_wait 60 "50 commands published" grep -q '^PAUSE' "$T/u-pub.log"
cluster_kill 1
touch "$T/go-u"
done_ u-pub
probe $(as home-h2) recv frMhs-h2 "${CLUSTER_MQTT[3]}" 100 5 >"$T/u-recv.log" 2>&1
ud=$(res u-recv)
uqd=$(queues | grep 'frMhs-h2qos1')
cluster_start_node 1
cluster_wait_running 3
probe $(as home-h2) recv frMhs-h2 "${CLUSTER_MQTT[1]}" 100 5 >"$T/u-recv2.log" 2>&1
ua=$(res u-recv2)
[ "$(j "$(res u-pub)" .puback)" = 100 ] || fr_fail "unmirrored: publisher: $(res u-pub)"
[ "$(j "$ud" .distinct)" = 0 ] || fr_fail "unmirrored: messages came while the queue's node was down: $ud"
[ "$(j "$ua" .distinct)" -lt 100 ] || fr_fail "unmirrored: nothing was lost: $ua"
fact unmirrored "no policy: the queue on node 1 only ($uq); 50 commands queued, node 1 SIGKILLed, 50 more published on node 2 ($(res u-pub | jq -c '{puback}'): every one acknowledged); resumed on node 3 while node 1 was down: $(echo "$ud" | jq -c '{session_present,distinct}') (queue: $uqd); after node 1 came back, resumed on node 1: $(echo "$ua" | jq -c '{session_present,distinct,missing,missing_first}')"
cluster_policy_sessions

# --- web-mqtt -----------------------------------------------------------------------------------
bg ws $(as alice) recv alice:ws "${CLUSTER_WS[3]}" 20 30 --ws --clean --topic fr/h1/ctl/c2/cmd
ready ws
probe $(as alice) pub "${CLUSTER_MQTT[1]}" fr/h1/ctl/c2/cmd 20 >"$T/wspub.log" 2>&1 || fr_fail "publish for ws: $(cat "$T/wspub.log")"
done_ ws
[ "$(j "$(res ws)" .distinct)" = 20 ] || fr_fail "web-MQTT: $(res ws)"
fact web-mqtt "MQTT 3.1.1 over WebSocket (ws://127.0.0.1:${CLUSTER_WS[3]}/ws, node 3) got the 20 QoS 1 messages published on node 1: $(res ws | jq -c '{distinct,duplicates}')"

# --- accounts -----------------------------------------------------------------------------------
probe $(as bob) sub1 "${CLUSTER_MQTT[2]}" 'fr/h1/#' >"$T/a1.log" 2>&1
probe $(as alice) sub1 "${CLUSTER_MQTT[2]}" 'fr/#' >"$T/a2.log" 2>&1
probe $(as alice) sub1 "${CLUSTER_MQTT[2]}" 'fr/h1/#' >"$T/a3.log" 2>&1
probe $(as home-h1) pubdeny "${CLUSTER_MQTT[2]}" fr/h2/status >"$T/a4.log" 2>&1
probe $(as alice) pubdeny "${CLUSTER_MQTT[2]}" fr/h1/status >"$T/a5.log" 2>&1
probe $(as alice) pubdeny "${CLUSTER_MQTT[2]}" fr/h1/ctl/c1/cmd >"$T/a6.log" 2>&1
# RabbitMQ 3.10 answers a refused SUBSCRIBE or PUBLISH by closing the connection (no SUBACK
# 0x80, no PUBACK).
[ "$(j "$(res a1)" .granted)" = null ] && [ "$(j "$(res a1)" .closed_by_broker)" = true ] || fr_fail "bob read home h1: $(res a1)"
[ "$(j "$(res a2)" .granted)" = null ] || fr_fail "alice subscribed to fr/#: $(res a2)"
[ "$(j "$(res a3)" '.granted[0]')" = 1 ] || fr_fail "alice could not read her home: $(res a3)"
[ "$(j "$(res a4)" .puback)" = false ] && [ "$(j "$(res a5)" .puback)" = false ] &&
	[ "$(j "$(res a4)" .closed_by_broker)" = true ] || fr_fail "a denied publish was acknowledged: $(res a4) $(res a5)"
[ "$(j "$(res a6)" .puback)" = true ] || fr_fail "alice's command was refused: $(res a6)"
# Another account's client id: home h1's frMhs connected on node 1, bob connects as frMhs-h1.
bg k-home $(as home-h1) kick frMhs-h1 "${CLUSTER_MQTT[1]}" --bound 20
ready k-home
probe $(as bob) kick frMhs-h1 "${CLUSTER_MQTT[2]}" --bound 1 >"$T/k-bob.log" 2>&1
probe $(as bob) session frMhs-h1 "${CLUSTER_MQTT[2]}" 'fr/h2/#' >"$T/k-bob-sess.log" 2>&1
done_ k-home 30
fact accounts "bob (home h2) subscribing fr/h1/#: $(res a1); alice subscribing fr/#: $(res a2) (a filter wider than the granted homes is refused, not filtered as Mosquitto does); alice fr/h1/#: $(res a3); home h1 publishing to fr/h2/status: $(res a4); alice publishing fr/h1/status: $(res a5); alice's command on fr/h1/ctl/c1/cmd: $(res a6 | jq -c '{puback}')"
fact client-ids "home h1 connected as frMhs-h1 on node 1; bob (another account) connected as frMhs-h1 on node 2: bob $(res k-bob | jq -c .), home h1's connection then: $(res k-home | jq -c .); bob's attempt to subscribe through the session frMhs-h1: $(res k-bob-sess | jq -c .)"

fr_log "all facts in $((SECONDS - T0)) s (cluster start ${START_S} s, node restart ${RESTART_S} s):"
cat "$FACTS" >&2
fr_ok "the cluster harness and the broker facts of issue 16"
