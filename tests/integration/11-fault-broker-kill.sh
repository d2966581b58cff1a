#!/usr/bin/env bash
# Fault: the broker is SIGKILLed and restarted in the middle of a stream of 1000 QoS 1 commands
# from a persistent-session client that retries (same id) what has no final result yet. Every
# command must end with exactly one final outcome, and none may run twice -- counted on the
# controller, in its durable journal of started commands.
. "$(dirname "$0")/lib.sh"

fr_home
fr_start mhs "$FR_BIN/frMhs" -f -c "$T/mhs.conf"
fr_mhc_conf c2 127.0.0.2 "$APORT" '{ name = "noop"; builtin = "noop"; }'
fr_start c2 "$FR_BIN/frMhc" -f -c "$T/c2.conf"
fr_wait 10 "c2 online" fr_retained_is "$BPORT" fr/home1/ctl/c2/status online

N=1000
fr_start stream "$FR_BIN/mqttreq" -u "mqtt://127.0.0.1:$BPORT" -c fault-client -P \
	-t fr/home1/ctl/c2/cmd -s fr/home1/reply/fault -n "$N" -R 250 -p k -a noop -T 3 -w 120
fr_wait 20 "a third of the results" bash -c "[ \$(grep -c '\"result\"' '$T/stream.log') -ge 300 ]"
fr_stop broker KILL
fr_log "broker SIGKILLed after $(grep -c '"result"' "$T/stream.log") results"
sleep 1
fr_start broker2 mosquitto -c "$T/broker.conf"
fr_wait 10 "broker back" bash -c "exec 3<>/dev/tcp/127.0.0.1/$BPORT"
wait "$(fr_pid stream)" || fr_fail "not every command ended: $(grep SUMMARY "$T/stream.log")"
sum=$(grep SUMMARY "$T/stream.log" | sed 's/^SUMMARY //')
[ "$(fr_json "$sum" final_ids)" = "$N" ] || fr_fail "final outcomes: $sum"
[ "$(fr_json "$sum" conflicts)" = 0 ] || fr_fail "an id ended two different ways: $sum"
[ "$(fr_json "$sum" statuses.ok)" = "$N" ] || fr_fail "statuses: $sum"

# The journal holds one "started" record per run: every id exactly once.
python3 - "$T/state-c2/journal" "$N" <<'PY' || fr_fail "journal check failed"
import json, sys, collections
starts = collections.Counter()
for line in open(sys.argv[1]):
    try: r = json.loads(line)
    except ValueError: continue
    if "result" not in r: starts[r["id"]] += 1
twice = [i for i, c in starts.items() if c > 1]
assert not twice, f"ran more than once: {twice[:10]}"
assert len(starts) == int(sys.argv[2]), f"{len(starts)} ids started, want {sys.argv[2]}"
PY
fr_ok "broker SIGKILL mid-stream: $N commands, one outcome each, each run exactly once ($sum)"
