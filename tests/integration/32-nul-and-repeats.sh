#!/usr/bin/env bash
# Issue 11 item 13: an escaped NUL ("a\u0000b") in a request is refused with a reason instead of
# being cut to "a" and passing the argument's pattern -- on MQTT (frMhs, command_parse: result
# rejected), on the LAN link (frMhc: bad frame) and in a key as well as a value; and frMhc's
# answers to a repeated id carry each key once.
. "$(dirname "$0")/lib.sh"

fr_home
fr_start mhs "$FR_BIN/frMhs" -f -c "$T/mhs.conf"
fr_mhc_conf c2 127.0.0.2 "$APORT"
fr_start c2 "$FR_BIN/frMhc" -f -c "$T/c2.conf"
fr_wait 15 "c2 online" fr_retained_is "$BPORT" fr/home1/ctl/c2/status online
CPORT=$(fr_json "$(fr_retained "$BPORT" fr/home1/ctl/c2/info)" port)

rr() { mosquitto_rr -p "$BPORT" -t fr/home1/ctl/c2/cmd -e "fr/home1/reply/$1" -W 20 -m "$2"; }

# 1. MQTT: a value and a key with an escaped NUL are rejected with the reason; nothing runs.
out=$(rr nul '{"id":"nul-1","action":"rec","args":{"tag":"a\u0000b"},"progress":false}') || fr_fail "no reply: $out"
[ "$(fr_json "$out" status)" = rejected ] || fr_fail "NUL in a value: $out"
echo "$out" | grep -q 'must not contain NUL' || fr_fail "reason: $out"
out=$(rr nul '{"id":"nul-2","action":"rec","args":{"t\u0000ag":"a"},"progress":false}') || fr_fail "no reply: $out"
[ "$(fr_json "$out" status)" = rejected ] || fr_fail "NUL in a key: $out"
# The same request without the NUL runs: the refusal was about the NUL alone.
out=$(rr nul '{"id":"nul-3","action":"rec","args":{"tag":"ab"},"progress":false}') || fr_fail "no reply: $out"
[ "$(fr_json "$out" status)" = ok ] || fr_fail "the clean request: $out"
grep -qx a "$T/runs-c2" && fr_fail "a NUL-cut argument reached the action"
fr_ok "MQTT: an escaped NUL in an argument's value or name is rejected with the reason, never run"

# 2. The link: frMhc refuses the frame itself (frcmd --raw sends the bytes as given).
out=$("$FR_BIN/frcmd" -s "$T/home.secret" -w 10 \
	--raw '{"id":"nul-4","action":"rec","args":{"tag":"a\u0000b"}}' "127.0.0.2:$CPORT" c2 2>&1) &&
	fr_fail "frMhc answered ok: $out"
fr_wait 5 "bad frame logged" grep -q 'bad frame: NUL (\\u0000) in a string' "$T/c2.log"
grep -qx a "$T/runs-c2" && fr_fail "a NUL-cut argument reached the action over the link"
fr_wait 10 "c2 still online" fr_retained_is "$BPORT" fr/home1/ctl/c2/status online
fr_ok "link: a frame with an escaped NUL is a bad frame, nothing runs, other links stay"

# 3. frMhc's answers to a repeated id (from the journal, and while it runs) have unique keys.
uniq_keys() {
	python3 -c '
import json, sys
def hook(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)): sys.exit("duplicate keys: %s" % keys)
    return dict(pairs)
for line in sys.stdin:
    if line.startswith("{"): json.loads(line, object_pairs_hook=hook)
'
}
"$FR_BIN/frcmd" -s "$T/home.secret" -w 20 -i rep-1 "127.0.0.2:$CPORT" c2 rec tag=rep >/dev/null || fr_fail "rep-1"
out=$("$FR_BIN/frcmd" -s "$T/home.secret" -v -w 20 -i rep-1 "127.0.0.2:$CPORT" c2 rec tag=rep) || fr_fail "rep-1 again: $out"
echo "$out" | grep '"result"' | grep -q '"duplicate":true' || fr_fail "not answered from the journal: $out"
echo "$out" | uniq_keys || fr_fail "repeated-id result: $out"
fr_start slow "$FR_BIN/frcmd" -s "$T/home.secret" -v -w 30 -i rep-2 "127.0.0.2:$CPORT" c2 slow secs=2
fr_wait 10 "slow started" grep -q '"started"' "$T/slow.log"
out=$("$FR_BIN/frcmd" -s "$T/home.secret" -v -w 30 -i rep-2 "127.0.0.2:$CPORT" c2 slow secs=2) || fr_fail "rep-2 again: $out"
echo "$out" | grep '"started"' | grep -q '"duplicate":true' || fr_fail "no duplicate started: $out"
echo "$out" | uniq_keys || fr_fail "repeated-id answers while running: $out"
wait "$(fr_pid slow)" || fr_fail "slow"
fr_ok "frMhc's answers to a repeated id carry every key once"
