#!/usr/bin/env bash
# The same request id asked again (issue 11, items 4, 5 and 13), with clients we did not write
# (python3-paho MQTT 5 and 3.1.1, mosquitto_rr):
# - a repeat while the first still runs, on another reply topic (with or without progress),
#   gets the final result on its own topic, marked duplicate; the action runs once;
# - an answer from the table to a repeat names ctl and id once;
# - after "lost" (the controller froze mid-run) the same id learns the real outcome;
# - after "offline" the same id runs once the controller is back.
. "$(dirname "$0")/lib.sh"

fr_home
fr_start mhs "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
for n in 2 3; do
	fr_mhc_conf "c$n" "127.0.0.$n" "$APORT"
	fr_start "c$n" "$FR_BIN/frMhc" -f -v -c "$T/c$n.conf"
	fr_wait 10 "c$n online" fr_retained_is "$BPORT" "fr/home1/ctl/c$n/status" online
done
PAHOREQ=$FR_SRC/tests/integration/bin/pahoreq
soon() { python3 -c "import time; print(round(time.time() + $1, 3))"; }
runs() { grep -cx "$1" "$T/runs-$2" 2>/dev/null || echo 0; }
# starts ID: how often c2's journal recorded ID as started (the durable record of every run).
starts() { tr -d '\0' <"$T/state-c2/journal" | grep -c "^{\"id\":\"$1\"}$"; }

# --- #11.5: three requesters of one id while it runs, each on its own reply topic ---
cat >"$T/join.in" <<'EOF'
{"v":5,"cmd":"fr/home1/ctl/c2/cmd","reply":"fr/home1/reply/j-first","corr":"first","body":{"id":"join-1","action":"rec","args":{"tag":"join"}}}
{"v":5,"cmd":"fr/home1/ctl/c2/cmd","reply":"fr/home1/reply/j-second","corr":"second","body":{"id":"join-1","action":"rec","args":{"tag":"join"},"progress":false}}
{"v":4,"cmd":"fr/home1/ctl/c2/cmd","reply":"fr/home1/reply/j-third","how":"reply_to","body":{"id":"join-1","action":"rec","args":{"tag":"join"}}}
EOF
# Long enough for the repeats to arrive while it runs.
sed -i 's/"action":"rec","args":{"tag":"join"}/"action":"slow","args":{"secs":"2"}/' "$T/join.in"
"$PAHOREQ" -p "$BPORT" -w 20 <"$T/join.in" >"$T/join.out" || fr_fail "repeat while running: $(cat "$T/join.out")"
python3 - "$T/join.out" <<'PY' || fr_fail "repeat while running: $(cat "$T/join.out")"
import json, sys
out = json.load(open(sys.argv[1]))
first, second, third = (out["join-1@fr/home1/reply/j-" + k] for k in ("first", "second", "third"))
for e in (first, second, third):
    assert len(e["finals"]) == 1 and e["finals"][0]["status"] == "ok", e["raw"]
assert not first["finals"][0].get("duplicate"), first["raw"]
assert second["finals"][0].get("duplicate") is True and third["finals"][0].get("duplicate") is True
assert all(c == "first" for c in first["corr"]) and all(c == "second" for c in second["corr"])
assert second["progress"] == [], second["raw"]            # progress: false
assert "started" in third["progress"], third["raw"]       # progress asked for: it gets it
PY
[ "$(starts join-1)" = 1 ] || fr_fail "join-1 started $(starts join-1) times on the controller"
fr_ok "a repeated id while it runs: every requester gets the final result on its own topic (MQTT 5 and 3.1.1), the repeats marked duplicate, one run"

# --- #11.13: the answer to a repeat after the end, from frMhs's table ---
out=$(mosquitto_rr -p "$BPORT" -t fr/home1/ctl/c2/cmd -e fr/home1/reply/j-late -W 10 \
	-m '{"id":"join-1","action":"slow","args":{"secs":"2"},"progress":false}') || fr_fail "late repeat: no answer"
python3 - "$out" <<'PY' || fr_fail "late repeat answer: $out"
import json, sys
def once(pairs):
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), "duplicate keys: %s" % keys
    return dict(pairs)
r = json.loads(sys.argv[1], object_pairs_hook=once)
assert r["status"] == "ok" and r["duplicate"] is True and r["id"] == "join-1" and r["ctl"] == "c2", r
PY
fr_ok "a repeat after the end is answered from the first run, ctl and id once each"

# --- #11.4: lost, then the real outcome ---
echo '{"v":5,"cmd":"fr/home1/ctl/c2/cmd","reply":"fr/home1/reply/lost","body":{"id":"lost-1","action":"slow","args":{"secs":"5"}}}' >"$T/lost.in"
fr_start frozen bash -c "exec '$PAHOREQ' -p $BPORT -w 30 <'$T/lost.in'"
fr_wait 10 "lost-1 started" fr_grep_log c2 "command lost-1: slow started"
kill -STOP "$(fr_pid c2)"
wait "$(fr_pid frozen)"
grep -q '"status": "lost"' "$T/frozen.log" || fr_fail "a frozen controller's request: $(cat "$T/frozen.log")"
kill -CONT "$(fr_pid c2)"
fr_ok "a controller frozen mid-run: the request ends lost"
fr_wait 15 "c2 online again" fr_retained_is "$BPORT" fr/home1/ctl/c2/status online
fr_wait 15 "lost-1 finished on the controller" grep -q '"id":"lost-1","result"' "$T/state-c2/journal"
out=$(mosquitto_rr -p "$BPORT" -t fr/home1/ctl/c2/cmd -e fr/home1/reply/lost2 -W 10 \
	-m '{"id":"lost-1","action":"slow","args":{"secs":"5"},"progress":false}') || fr_fail "asked again after lost: no answer"
[ "$(fr_json "$out" status)" = ok ] || fr_fail "asked again after lost: $out"
[ "$(fr_json "$out" duplicate)" = True ] || fr_fail "the outcome of the first run is marked duplicate: $out"
[ "$(starts lost-1)" = 1 ] || fr_fail "lost-1 started $(starts lost-1) times on the controller"
fr_ok "after lost, the same id asked again learns the real outcome (ok, the first run's), not the cached lost"

# --- #11.4: offline, then the same id runs once the controller is back ---
fr_stop c3 TERM
fr_wait 5 "c3 offline" fr_retained_is "$BPORT" fr/home1/ctl/c3/status offline
out=$(mosquitto_rr -p "$BPORT" -t fr/home1/ctl/c3/cmd -e fr/home1/reply/off -W 10 \
	-m '{"id":"off-1","action":"rec","args":{"tag":"later"},"progress":false,"deadline":'"$(soon 1)"'}')
[ "$(fr_json "$out" status)" = offline ] || fr_fail "offline controller: $out"
fr_start c3b "$FR_BIN/frMhc" -f -v -c "$T/c3.conf"
fr_wait 10 "c3 back" fr_retained_is "$BPORT" fr/home1/ctl/c3/status online
out=$(mosquitto_rr -p "$BPORT" -t fr/home1/ctl/c3/cmd -e fr/home1/reply/off -W 10 \
	-m '{"id":"off-1","action":"rec","args":{"tag":"later"},"progress":false}')
[ "$(fr_json "$out" status)" = ok ] || fr_fail "asked again once the controller is back: $out"
[ "$(fr_json "$out" duplicate)" != True ] || fr_fail "a first run marked duplicate: $out"
[ "$(runs later c3)" = 1 ] || fr_fail "off-1 runs: $(runs later c3)"
fr_ok "after offline, the same id runs once the controller is back (offline is not a final answer)"
