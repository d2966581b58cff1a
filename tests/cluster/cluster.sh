# A RabbitMQ 3.10 cluster of N nodes on loopback for the cluster stage (tests/cluster/NN-*.sh),
# sourced after tests/integration/lib.sh (its $T, fr_free_port, fr_start, fr_wait, fr_log).
# Every node is Debian's rabbitmq-server with its own name (fr1@localhost ...), config file,
# ports and data dir under $T/cluster, the rabbitmq_mqtt and rabbitmq_web_mqtt plugins, every
# listener on 127.0.0.1; Erlang distribution on 127.0.0.1 through a private epmd on a free port
# (the nodes never start one of their own, so nothing outlives the test). Nodes 2..N join node 1
# (rabbitmqctl join_cluster). fr's accounts live in the vhost "fr", with topic permissions that
# follow fr's ACL (docs/broker.md) and queue permissions that bind MQTT session queues to the
# account's client ids. Teardown (installed by cluster_start) SIGKILLs every node before lib.sh's.
#
#   cluster_start N            start, cluster and configure N nodes (bounded: CLUSTER_BOUND s)
#   cluster_kill I             SIGKILL node I's Erlang VM (beam.smp), wait until it is gone
#   cluster_start_node I       start node I again (it rejoins with its data), wait until running
#   cluster_stop               SIGKILL every node and the epmd (also done at exit)
#   cluster_ctl I ARGS...      rabbitmqctl against node I (bounded)
#   cluster_running            the nodes running, as seen by the first live node (one a line)
#   cluster_wait_running K     wait until K nodes run in the cluster
#   cluster_policy_sessions    the policy that keeps MQTT sessions when a node dies (mirrored)
#   cluster_policy_clear       remove it
#   cluster_add_home H         account home-H (frMhs-H, home-H, home-H:*), password in
#                              $CLUSTER_DIR/accounts/home-H.pw (one written there before is
#                              taken: an account fr-admin made elsewhere, tests/cluster/04-page.sh)
#   cluster_add_user U H1,H2   account U for those homes (U, U:*, web-U-*)
#   cluster_add_web            account fr-web (frAroundWeb-*, fr-web, fr-web:*)
#   cluster_pw NAME            the account's password
#   cluster_beam_pid I         pid of node I's beam.smp (empty if down)
#   cluster_listeners_loopback every listening socket of the cluster is on loopback
#
# Ports (after cluster_start), for node I: CLUSTER_MQTT[I] (MQTT 3.1.1), CLUSTER_WS[I]
# (MQTT over WebSocket, path /ws), CLUSTER_AMQP[I], CLUSTER_MGMT[I] (HTTP management API, only
# with CLUSTER_MANAGEMENT=1), CLUSTER_DIST[I] (Erlang distribution); CLUSTER_NODE[I] its name,
# CLUSTER_EPMD the epmd port, CLUSTER_VHOST the vhost (fr).
#
# Settings (before cluster_start): CLUSTER_SESSION_QUEUES = mirrored (default: classic queues
# and the ha-mode "all" policy on CLUSTER_SESSION_RE, mqtt-subscription-*), quorum
# (mqtt.durable_queue_type = quorum, no policy) or none (classic queues, no policy: a session
# dies with its node);
# CLUSTER_MANAGEMENT=1 adds rabbitmq_management; CLUSTER_BOUND (default 240) bounds the start;
# CLUSTER_WS_PATH the web-MQTT path (default RabbitMQ's /ws; /mqtt is the one nginx proxies).

CLUSTER_RMQ=/usr/lib/rabbitmq/bin
CLUSTER_DIR=$T/cluster
CLUSTER_VHOST=fr
CLUSTER_SESSION_QUEUES=${CLUSTER_SESSION_QUEUES:-mirrored}
CLUSTER_MANAGEMENT=${CLUSTER_MANAGEMENT:-0}
CLUSTER_BOUND=${CLUSTER_BOUND:-240}
CLUSTER_N=0
CLUSTER_NODE=() CLUSTER_MQTT=() CLUSTER_WS=() CLUSTER_AMQP=() CLUSTER_MGMT=() CLUSTER_DIST=()
CLUSTER_EPMD=
# The queues MQTT sessions live in: mqtt-subscription-<client id>qos0 and ...qos1; the policy
# mirrors those matching CLUSTER_SESSION_RE (default: every session's, clean ones included;
# '^mqtt-subscription-frMhs-' mirrors only the homes' sessions, docs/scale-out.md).
CLUSTER_SESSION_RE=${CLUSTER_SESSION_RE:-'^mqtt-subscription-'}

# The Erlang side of every node and of every rabbitmqctl: our epmd, our cookie (HOME), no
# system-wide rabbitmq-env.conf, distribution on 127.0.0.1, never an epmd of its own.
cluster_env() {
	CLUSTER_ENV=(HOME="$CLUSTER_DIR/home" ERL_EPMD_PORT="$CLUSTER_EPMD" ERL_EPMD_ADDRESS=127.0.0.1
		RABBITMQ_CONF_ENV_FILE="$CLUSTER_DIR/rabbitmq-env.conf")
}

cluster_ctl() {
	local i=$1; shift
	# The CLI is a distributed Erlang node too: an ephemeral port on loopback (min = max = 0),
	# so concurrent calls and other tests never collide on RabbitMQ's fixed default range.
	env "${CLUSTER_ENV[@]}" RABBITMQ_CTL_DIST_PORT_MIN=0 RABBITMQ_CTL_DIST_PORT_MAX=0 \
		RABBITMQ_CTL_ERL_ARGS="-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}" \
		timeout -k 5 "${CLUSTER_CTL_TIMEOUT:-90}" "$CLUSTER_RMQ/rabbitmqctl" -q -n "${CLUSTER_NODE[$i]}" "$@" 2>>"$T/cluster-ctl.log"
}

# cluster_node_conf I: node I's rabbitmq.conf (sysctl format, the config file of 3.10).
cluster_node_conf() {
	local i=$1 d=$CLUSTER_DIR/n$1
	mkdir -p "$d"
	cat >"$d/rabbitmq.conf" <<CONF
# Node ${CLUSTER_NODE[$i]} of the test cluster: every listener on loopback.
listeners.tcp.1 = 127.0.0.1:${CLUSTER_AMQP[$i]}
# Every listener is on loopback, so the guest account's loopback-only rule says nothing here;
# guest is deleted once the cluster is up, and fr's accounts are made by the harness.
loopback_users = none
mqtt.listeners.tcp.1 = 127.0.0.1:${CLUSTER_MQTT[$i]}
mqtt.tcp_listen_options.nodelay = true
mqtt.allow_anonymous = false
mqtt.vhost = $CLUSTER_VHOST
mqtt.exchange = amq.topic
web_mqtt.tcp.ip = 127.0.0.1
web_mqtt.tcp.port = ${CLUSTER_WS[$i]}
# A node that loses sight of the majority stops serving instead of diverging (RabbitMQ's advice
# for 3 or more nodes); a SIGKILLed node is a node down, not a partition.
cluster_partition_handling = pause_minority
log.console = true
log.console.level = info
log.file = false
CONF
	if [ -n "${CLUSTER_WS_PATH:-}" ]; then
		echo "web_mqtt.ws_path = $CLUSTER_WS_PATH" >>"$d/rabbitmq.conf"
	fi
	if [ "$CLUSTER_SESSION_QUEUES" = quorum ]; then
		echo "mqtt.durable_queue_type = quorum" >>"$d/rabbitmq.conf"
	fi
	if [ "$CLUSTER_MANAGEMENT" = 1 ]; then
		printf 'management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = %s\n' "${CLUSTER_MGMT[$i]}" >>"$d/rabbitmq.conf"
	fi
}

# cluster_start_node I: starts node I again (after cluster_kill; it rejoins the cluster with its
# data dir) and waits until it has booted.
cluster_start_node() {
	cluster_start_node_bg "$1"
	cluster_wait_node "$1"
}

# cluster_node_ports I: fresh free ports for node I (its config is rewritten).
cluster_node_ports() {
	local i=$1
	CLUSTER_MQTT[i]=$(fr_free_port)
	CLUSTER_WS[i]=$(fr_free_port)
	CLUSTER_AMQP[i]=$(fr_free_port)
	CLUSTER_DIST[i]=$(fr_free_port)
	[ "$CLUSTER_MANAGEMENT" = 1 ] && CLUSTER_MGMT[i]=$(fr_free_port)
	cluster_node_conf "$i"
}

# cluster_node_up_or_gone I: node I's MQTT listener answers, or its VM has exited.
cluster_node_up_or_gone() {
	bash -c "exec 3<>/dev/tcp/127.0.0.1/${CLUSTER_MQTT[$1]}" 2>/dev/null ||
		fr_proc_gone "$(cat "$T/cluster-fr$1.pid")"
}

# cluster_wait_node I: node I has booted (bounded), else the test fails with its log. A free
# port chosen for it may be taken by someone else before the node binds it (other tests run
# beside this one); a node that exits while booting is started again on fresh ports, twice at
# most, with the reason logged.
cluster_wait_node() {
	local i=$1 attempt
	for attempt in 1 2 3; do
		fr_wait "$CLUSTER_BOUND" "node ${CLUSTER_NODE[$i]}: MQTT listener on ${CLUSTER_MQTT[$i]}" \
			cluster_node_up_or_gone "$i"
		fr_proc_gone "$(cat "$T/cluster-fr$i.pid")" || break
		wait "$(cat "$T/cluster-fr$i.pid")" 2>/dev/null
		fr_log "cluster: node ${CLUSTER_NODE[$i]} exited while booting (attempt $attempt): $(grep -m1 -o 'ERROR: .*' "$T/cluster-fr$i.log" | tail -n1)"
		[ "$attempt" -lt 3 ] || fr_fail "node ${CLUSTER_NODE[$i]} did not boot (see $T/cluster-fr$i.log)"
		mv "$T/cluster-fr$i.log" "$T/cluster-fr$i.attempt$attempt.log"
		cluster_node_ports "$i"
		cluster_start_node_bg "$i"
	done
	cluster_ctl "$i" await_startup --timeout 120 >/dev/null ||
		fr_fail "node ${CLUSTER_NODE[$i]} did not finish booting"
}

# cluster_beam_pid I: node I's Erlang VM: the wrapper script's child (rabbitmq-server runs erl
# in the background and waits for it; erl execs beam.smp).
cluster_beam_pid() {
	local w c
	w=$(cat "$T/cluster-fr$1.pid" 2>/dev/null) || return 0
	fr_is_child "$w" && ! fr_proc_gone "$w" || return 0
	for c in $(cat /proc/"$w"/task/*/children 2>/dev/null); do
		[ "$(cat "/proc/$c/comm" 2>/dev/null)" = beam.smp ] && { echo "$c"; return 0; }
	done
	return 0
}

cluster_kill() {
	local i=$1 b w
	b=$(cluster_beam_pid "$i")
	[ -n "$b" ] || fr_fail "cluster_kill $i: node ${CLUSTER_NODE[$i]} is not running"
	kill -KILL "$b"
	w=$(cat "$T/cluster-fr$i.pid")
	# The wrapper exits once its VM is gone: reaped, the node is down.
	fr_wait 30 "node ${CLUSTER_NODE[$i]} gone after SIGKILL" fr_proc_gone "$w"
	wait "$w" 2>/dev/null
	fr_log "cluster: node ${CLUSTER_NODE[$i]} (beam pid $b) killed"
}

cluster_stop() {
	local i b w p
	for ((i = 1; i <= CLUSTER_N; i++)); do
		b=$(cluster_beam_pid "$i")
		[ -n "$b" ] && kill -KILL "$b" 2>/dev/null
	done
	for ((i = 1; i <= CLUSTER_N; i++)); do
		w=$(cat "$T/cluster-fr$i.pid" 2>/dev/null) || continue
		for _ in $(seq 50); do fr_is_child "$w" || break; fr_proc_gone "$w" && break; sleep 0.1; done
		fr_is_child "$w" && kill -KILL "$w" 2>/dev/null
	done
	p=$(cat "$T/cluster-epmd.pid" 2>/dev/null) && fr_is_child "$p" && kill -KILL "$p" 2>/dev/null
	CLUSTER_N=0
	return 0
}

# cluster_running: the running nodes, one per line, as the first node that answers sees them.
cluster_running() {
	local i
	for ((i = 1; i <= CLUSTER_N; i++)); do
		[ -n "$(cluster_beam_pid "$i")" ] || continue
		CLUSTER_CTL_TIMEOUT=20 cluster_ctl "$i" eval 'io:format("~s~n", [string:join([atom_to_list(N) || N <- rabbit_nodes:all_running()], "\n")]), ok.' 2>/dev/null |
			grep '@' && return 0
	done
	return 1
}
cluster_count_is() { [ "$(cluster_running | wc -l)" -eq "$1" ]; }
cluster_wait_running() { fr_wait "$CLUSTER_BOUND" "$1 nodes running in the cluster" cluster_count_is "$1"; }

cluster_policy_sessions() {
	cluster_ctl 1 set_policy -p "$CLUSTER_VHOST" --apply-to queues fr-mqtt-sessions "$CLUSTER_SESSION_RE" \
		'{"ha-mode":"all","ha-sync-mode":"automatic"}' >/dev/null || fr_fail "set_policy fr-mqtt-sessions"
}
cluster_policy_clear() {
	cluster_ctl 1 clear_policy -p "$CLUSTER_VHOST" fr-mqtt-sessions >/dev/null || fr_fail "clear_policy"
}

# cluster_account NAME CLIENT_ID_RE TOPIC_WRITE_RE TOPIC_READ_RE: a user of the vhost with a
# random password ($CLUSTER_DIR/accounts/NAME.pw). The MQTT plugin keeps a session's
# subscriptions in the queues mqtt-subscription-<client id>qos0/qos1, declared with the
# account's rights: configure/write/read only on those of its own client ids (so no account
# can subscribe through, or drain, another account's session) and the topic exchange.
# Topic permissions hold for MQTT topics with '/' written '.' (RabbitMQ's routing keys).
cluster_account() {
	local name=$1 q="^mqtt-subscription-($2)qos[01]\$" pw
	mkdir -p "$CLUSTER_DIR/accounts"
	if [ -s "$CLUSTER_DIR/accounts/$name.pw" ]; then
		pw=$(cat "$CLUSTER_DIR/accounts/$name.pw")
	else
		pw=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
		printf '%s\n' "$pw" >"$CLUSTER_DIR/accounts/$name.pw"
	fi
	chmod 600 "$CLUSTER_DIR/accounts/$name.pw"
	cluster_ctl 1 add_user "$name" "$pw" >/dev/null &&
		cluster_ctl 1 set_permissions -p "$CLUSTER_VHOST" "$name" "$q" \
			"^(amq\\.topic|mqtt-subscription-($2)qos[01])\$" "^(amq\\.topic|mqtt-subscription-($2)qos[01])\$" >/dev/null &&
		cluster_ctl 1 set_topic_permissions -p "$CLUSTER_VHOST" "$name" amq.topic "$3" "$4" >/dev/null ||
		fr_fail "cluster: account $name"
}
cluster_pw() { cat "$CLUSTER_DIR/accounts/$1.pw"; }

# fr's ACL (docs/broker.md, "ACL") in RabbitMQ's terms.
cluster_add_home() {
	local h=$1
	cluster_account "home-$h" "frMhs-$h|home-$h|home-$h:.*" \
		"^(fr\\.$h\\..*|homeassistant\\.[^.]+\\.fr_$h\\..*)\$" \
		"^(fr\\.$h\\..*|homeassistant\\.[^.]+\\.fr_$h\\..*|homeassistant\\.status)\$"
}
cluster_add_user() {
	local u=$1 homes
	homes=$(printf '%s' "$2" | tr ',' '|')
	cluster_account "$u" "$u|$u:.*|web-$u-[^-]+" \
		"^(fr\\.($homes)\\.(ctl\\.[^.]+\\.cmd|sync|display|ha\\.[^.]+\\.[^.]+\\.set)|homeassistant\\.status)\$" \
		"^(fr\\.($homes)\\..*|homeassistant\\.[^.]+\\.fr_($homes)\\..*)\$"
}
cluster_add_web() {
	cluster_account fr-web "frAroundWeb-.*|fr-web|fr-web:.*" \
		'^fr\.[^.]+\.(ctl\.[^.]+\.cmd|sync|display)$' '^fr\..*$'
}

# cluster_accounts HOME USER [web]: the home's account, the user's (granted HOME) and, with
# "web", frAroundWeb's, made side by side (every rabbitmqctl call starts an Erlang VM). All are
# waited for before a failure is reported, so none is left running.
cluster_accounts() {
	local pids=() p ok=1
	cluster_add_home "$1" &
	pids+=($!)
	cluster_add_user "$2" "$1" &
	pids+=($!)
	if [ "${3:-}" = web ]; then
		cluster_add_web &
		pids+=($!)
	fi
	for p in "${pids[@]}"; do wait "$p" || ok=0; done
	[ "$ok" = 1 ] || fr_fail "cluster: an account was not made (see $T/cluster-ctl.log)"
}

# cluster_listeners_loopback: every socket the nodes and their epmd listen on is a loopback one.
cluster_listeners_loopback() {
	local pids="" i b p bad
	for ((i = 1; i <= CLUSTER_N; i++)); do
		b=$(cluster_beam_pid "$i") && [ -n "$b" ] && pids="$pids $b"
	done
	p=$(cat "$T/cluster-epmd.pid")
	bad=$(ss -Hltnp 2>/dev/null | awk -v pids="$pids $p" '
		BEGIN { n = split(pids, a, " "); for (k = 1; k <= n; k++) want["pid=" a[k] ","] = 1 }
		{ for (w in want) if (index($0, w)) { split($4, hp, ":"); if ($4 !~ /^(127\.|\[::1\]|\[::ffff:127\.)/) print $4 } }')
	[ -z "$bad" ] || { fr_log "cluster: listening beyond loopback: $bad"; return 1; }
}

# cluster_start N: N nodes, clustered, with the vhost, the session policy and no guest.
cluster_start() {
	local n=$1 i t0=$SECONDS
	command -v "$CLUSTER_RMQ/rabbitmq-server" >/dev/null ||
		fr_fail "rabbitmq-server is not installed (./fr deps)"
	command -v epmd >/dev/null || fr_fail "epmd (erlang-base) is not installed"
	trap 'rc=$?; cluster_stop; (exit $rc); fr_teardown' EXIT
	mkdir -p "$CLUSTER_DIR/home"
	od -An -tx1 -N20 /dev/urandom | tr -d ' \n' >"$CLUSTER_DIR/home/.erlang.cookie"
	chmod 600 "$CLUSTER_DIR/home/.erlang.cookie"
	: >"$CLUSTER_DIR/rabbitmq-env.conf"
	if [ "$CLUSTER_MANAGEMENT" = 1 ]; then
		echo '[rabbitmq_mqtt,rabbitmq_web_mqtt,rabbitmq_management].' >"$CLUSTER_DIR/enabled_plugins"
	else
		echo '[rabbitmq_mqtt,rabbitmq_web_mqtt].' >"$CLUSTER_DIR/enabled_plugins"
	fi
	CLUSTER_EPMD=$(fr_free_port)
	cluster_env
	CLUSTER_N=$n
	for ((i = 1; i <= n; i++)); do
		CLUSTER_NODE[i]=fr$i@localhost
		cluster_node_ports "$i"
	done
	fr_start cluster-epmd epmd -port "$CLUSTER_EPMD" -address 127.0.0.1
	fr_wait 10 "epmd on $CLUSTER_EPMD" bash -c "exec 3<>/dev/tcp/127.0.0.1/$CLUSTER_EPMD"
	# All nodes boot at once (most of a cold start is each VM loading its code), then join one
	# by one: join_cluster needs the rabbit app stopped on the joining node.
	for ((i = 1; i <= n; i++)); do cluster_start_node_bg "$i"; done
	for ((i = 1; i <= n; i++)); do cluster_wait_node "$i"; done
	fr_log "cluster: $n nodes booted in $((SECONDS - t0)) s"
	for ((i = 2; i <= n; i++)); do
		cluster_ctl "$i" stop_app >/dev/null && cluster_ctl "$i" join_cluster "${CLUSTER_NODE[1]}" >/dev/null &&
			cluster_ctl "$i" start_app >/dev/null || fr_fail "node ${CLUSTER_NODE[$i]} did not join ${CLUSTER_NODE[1]}"
	done
	cluster_wait_running "$n"
	cluster_ctl 1 add_vhost "$CLUSTER_VHOST" >/dev/null && cluster_ctl 1 delete_user guest >/dev/null ||
		fr_fail "cluster: vhost $CLUSTER_VHOST, guest"
	[ "$CLUSTER_SESSION_QUEUES" = mirrored ] && cluster_policy_sessions
	fr_log "cluster: $n nodes running in $((SECONDS - t0)) s (sessions: $CLUSTER_SESSION_QUEUES; MQTT ports ${CLUSTER_MQTT[*]}, web-MQTT ${CLUSTER_WS[*]})"
}

# cluster_start_node_bg I: node I's processes, without waiting (cluster_start waits for all).
cluster_start_node_bg() {
	local i=$1 d=$CLUSTER_DIR/n$1
	rm -f "$d/pid"
	fr_start "cluster-fr$i" env "${CLUSTER_ENV[@]}" RABBITMQ_NODENAME="${CLUSTER_NODE[$i]}" \
		RABBITMQ_CONFIG_FILE="$d/rabbitmq" RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config" \
		RABBITMQ_ENABLED_PLUGINS_FILE="$CLUSTER_DIR/enabled_plugins" \
		RABBITMQ_MNESIA_BASE="$d/mnesia" RABBITMQ_LOG_BASE="$d/log" RABBITMQ_LOGS=- \
		RABBITMQ_PID_FILE="$d/pid" RABBITMQ_DIST_PORT="${CLUSTER_DIST[$i]}" \
		RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}" \
		"$CLUSTER_RMQ/rabbitmq-server"
}
