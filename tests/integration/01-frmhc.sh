#!/usr/bin/env bash
# frMhc end to end with real processes on loopback: announces, commands through frcmd,
# timeouts with grandchildren, exactly-once across restarts, deadlines, wrong keys, hostile
# peers beside a good one, and SIGTERM during a run.
. "$(dirname "$0")/lib.sh"

MHC=$FR_BIN/frMhc
FRCMD=$FR_BIN/frcmd
BIN=$FR_SRC/tests/integration/bin
fr_secret "$T/home.secret"
fr_secret "$T/other.secret"
PORT=$(fr_free_port)
APORT=$(fr_free_port)
ADDR=127.0.0.2

cat >"$T/mhc.conf" <<CONF
id = "kitchen";
name = "Kitchen Pi";
secret_file = "$T/home.secret";
state_dir = "$T/state";
listen = { address = "$ADDR"; port = $PORT; };
announce = { address = "127.255.255.255"; port = $APORT; interval = 0.3; };
ping_interval = 1; ping_timeout = 3;
$(fr_mhc_root)
actions = (
  { name = "rec"; argv = ["$BIN/record", "$T/runs", "{tag}"]; timeout = 5; max_running = 4;
    args = ( { name = "tag"; pattern = "[a-z0-9-]{1,32}"; } ); },
  { name = "fail"; argv = ["/bin/sh", "-c", "echo oops >&2; exit 3"]; },
  { name = "ping"; builtin = "noop"; },
  { name = "hang"; argv = ["/bin/sh", "-c", "sleep 60 & echo \$! > $T/grandchild; sleep 60"];
    timeout = 0.5; kill_grace = 0.5; },
  { name = "slow"; argv = ["/bin/sh", "-c", "echo \$\$ > $T/slowpid; sleep 60"]; timeout = 30; },
  { name = "stubborn"; argv = ["/bin/sh", "-c", "trap '' TERM; sleep 60 & wait; sleep 60"];
    timeout = 0.3; kill_grace = 0.3; }
);
sensors = (
  { name = "temp"; argv = ["$FR_SRC/agents/frMhc/examples/temp"]; interval = 1; }
);
CONF

"$MHC" --check-config -c "$T/mhc.conf" >"$T/check.out" || fr_fail "--check-config rejected a valid config"
fr_ok "--check-config accepts the test config"

# A config error names file and line.
printf 'id = "x";\nsecret_file = "%s";\nstate_dir = "%s";\nlisten = { port = "nope"; };\n' \
	"$T/home.secret" "$T/s2" >"$T/bad.conf"
if "$MHC" --check-config -c "$T/bad.conf" 2>"$T/bad.out"; then fr_fail "bad config accepted"; fi
grep -q "bad.conf:4: 'port' must be an integer" "$T/bad.out" || fr_fail "config error without file:line: $(cat "$T/bad.out")"
fr_ok "config error names file and line"

fr_start announces "$FRCMD" -s "$T/home.secret" --announces "127.255.255.255:$APORT" --count 2 --wait 15
fr_start mhc "$MHC" -f -v -c "$T/mhc.conf"
fr_wait 10 "frMhc listening" fr_grep_log mhc "listening on"

# 1. Announces on 127.255.255.255 verify, with the right id, port and source address.
fr_wait 15 "two verified announces" grep -q '"seq"' "$T/announces.log"
wait "$(fr_pid announces)" || fr_fail "announce listener did not see 2 verified announces"
first=$(grep -m1 '^{' "$T/announces.log")
[ "$(fr_json "$first" id)" = kitchen ] || fr_fail "announce id: $first"
[ "$(fr_json "$first" port)" = "$PORT" ] || fr_fail "announce port: $first"
case $(fr_json "$first" from) in "$ADDR":*) ;; *) fr_fail "announce not sent from $ADDR: $first" ;; esac
[ "$(fr_json "$first" actions.0.name)" = rec ] || fr_fail "announce actions: $first"
fr_ok "announces arrive on 127.255.255.255 and verify"

# An announce listener with another home's secret rejects them with a reason.
fr_start badann "$FRCMD" -s "$T/other.secret" --announces "127.255.255.255:$APORT" --count 1 --wait 2
wait "$(fr_pid badann)" && fr_fail "announce verified with the wrong secret"
grep -q "dropped: bad mac" "$T/badann.log" || fr_fail "no 'bad mac' reason logged: $(cat "$T/badann.log")"
fr_ok "announces fail verification under another home's key, with a logged reason"

cmd() { "$FRCMD" -s "$T/home.secret" -w 20 "$@"; }

# 2. ok / failing / unknown / bad argument.
out=$(cmd -i ok-1 "$ADDR:$PORT" kitchen rec tag=one) || fr_fail "ok command: $out"
[ "$(fr_json "$out" status)" = ok ] || fr_fail "status: $out"
[ "$(fr_json "$out" exit_code)" = 0 ] || fr_fail "exit_code: $out"
[ "$(fr_json "$out" stdout)" = "recorded one" ] || fr_fail "stdout: $out"
grep -qx one "$T/runs" || fr_fail "the action did not run"
fr_ok "ok command runs the action and returns its output"

out=$(cmd -i ping-1 "$ADDR:$PORT" kitchen ping) || fr_fail "builtin noop: $out"
[ "$(fr_json "$out" status)" = ok ] || fr_fail "builtin status: $out"
out=$(cmd -i ping-1 "$ADDR:$PORT" kitchen ping) || fr_fail "builtin repeat: $out"
[ "$(fr_json "$out" duplicate)" = True ] || fr_fail "builtin repeat not from the journal: $out"
fr_ok "a builtin noop action answers ok without a process, exactly once"

out=$(cmd "$ADDR:$PORT" kitchen fail) && fr_fail "failing command exited 0"
[ "$(fr_json "$out" status)" = failed ] && [ "$(fr_json "$out" exit_code)" = 3 ] || fr_fail "fail: $out"
[ "$(fr_json "$out" stderr)" = oops ] || fr_fail "stderr tail: $out"
fr_ok "failing action: status failed, exit code 3, stderr captured"

out=$(cmd "$ADDR:$PORT" kitchen nosuch) && fr_fail "unknown action exited 0"
[ "$(fr_json "$out" status)" = unknown_action ] || fr_fail "unknown: $out"
fr_ok "unknown action answered unknown_action"

out=$(cmd "$ADDR:$PORT" kitchen rec 'tag=x;rm -rf /') && fr_fail "bad argument exited 0"
[ "$(fr_json "$out" status)" = rejected ] || fr_fail "bad arg: $out"
grep -q 'rm -rf' "$T/runs" && fr_fail "a rejected argument reached the action"
out=$(cmd "$ADDR:$PORT" kitchen rec tag=ok extra=1) && fr_fail "unknown argument exited 0"
[ "$(fr_json "$out" status)" = rejected ] || fr_fail "unknown arg: $out"
out=$(cmd "$ADDR:$PORT" kitchen rec) && fr_fail "missing argument exited 0"
[ "$(fr_json "$out" status)" = rejected ] || fr_fail "missing arg: $out"
out=$(cmd --raw '{"id":"raw-1","action":"rec","args":[1,2]}' "$ADDR:$PORT" kitchen) && fr_fail "bad args type accepted"
[ "$(fr_json "$out" status)" = rejected ] || fr_fail "raw bad args: $out"
fr_ok "bad, unknown and missing arguments rejected before argv"

# 3. A timed-out action that spawned a grandchild leaves no process behind.
out=$(cmd "$ADDR:$PORT" kitchen hang) && fr_fail "hang exited 0"
[ "$(fr_json "$out" status)" = timeout ] || fr_fail "hang: $out"
gc=$(cat "$T/grandchild")
fr_wait 5 "grandchild $gc gone" fr_proc_gone "$gc"
fr_ok "timeout kills the whole process group (grandchild $gc gone)"

out=$(cmd "$ADDR:$PORT" kitchen stubborn) && fr_fail "stubborn exited 0"
[ "$(fr_json "$out" status)" = timeout ] || fr_fail "stubborn: $out"
[ "$(fr_json "$out" signal)" = 9 ] || fr_fail "a SIGTERM-ignoring action must end by SIGKILL: $out"
fr_ok "an action ignoring SIGTERM is SIGKILLed after the grace period"

# 4. A repeated id is not run twice.
out=$(cmd -i once-1 "$ADDR:$PORT" kitchen rec tag=once) || fr_fail "once: $out"
out=$(cmd -i once-1 "$ADDR:$PORT" kitchen rec tag=once) || fr_fail "once again: $out"
[ "$(fr_json "$out" duplicate)" = True ] || fr_fail "repeat not flagged duplicate: $out"
[ "$(grep -cx once "$T/runs")" = 1 ] || fr_fail "repeated id ran twice"
fr_ok "a repeated id is answered from the journal and not run again"

# 5. An expired deadline is refused.
out=$(cmd -D -5 "$ADDR:$PORT" kitchen rec tag=late) && fr_fail "expired exited 0"
[ "$(fr_json "$out" status)" = expired ] || fr_fail "expired: $out"
grep -qx late "$T/runs" && fr_fail "an expired command ran"
fr_ok "a command past its deadline is answered expired and not run"

# 6. The wrong key is refused.
out=$("$FRCMD" -s "$T/other.secret" -w 5 "$ADDR:$PORT" kitchen rec tag=wrongkey 2>&1) && fr_fail "wrong key accepted"
echo "$out" | grep -q handshake || fr_fail "wrong key: expected a handshake failure: $out"
grep -qx wrongkey "$T/runs" && fr_fail "wrong key ran the action"
# ... and so is the right key with another controller's identity.
out=$("$FRCMD" -s "$T/home.secret" -w 5 "$ADDR:$PORT" garage rec tag=wrongid 2>&1) && fr_fail "wrong identity accepted"
fr_ok "links with the wrong key or identity are refused"

# 7. Garbage, a half TLS record and a silent connection beside a good client.
exec 7<>"/dev/tcp/$ADDR/$PORT"                       # silent: never speaks
exec 8<>"/dev/tcp/$ADDR/$PORT"; printf '\x16\x03\x01\x02\x00\x01' >&8   # half a ClientHello
head -c 65536 /dev/urandom >"$T/garbage"
exec 9<>"/dev/tcp/$ADDR/$PORT"; cat "$T/garbage" >&9 2>/dev/null
for i in 1 2 3 4 5; do
	out=$(cmd "$ADDR:$PORT" kitchen rec "tag=good$i") || fr_fail "good client $i while hostile peers: $out"
done
# The silent and half-open peers are still connected: the good client did not wait for them.
[ -n "$(ss -tnH state established "( dport = :$PORT )" 2>/dev/null)" ] || fr_log "note: ss shows no open hostile peer"
exec 7>&- 8>&- 9>&-
grep -q "handshake" "$T/mhc.log" || fr_fail "hostile peers were not logged"
fr_ok "garbage, a half handshake and a silent connection do not stop a good client"

# 8. Restart: the repeated id is still not run, an interrupted run reads as lost.
fr_stop mhc TERM
fr_start mhc2 "$MHC" -f -v -c "$T/mhc.conf"
fr_wait 10 "frMhc restarted" fr_grep_log mhc2 "listening on"
out=$(cmd -i once-1 "$ADDR:$PORT" kitchen rec tag=once) || fr_fail "once after restart: $out"
[ "$(fr_json "$out" duplicate)" = True ] || fr_fail "after restart, not answered from the journal: $out"
[ "$(grep -cx once "$T/runs")" = 1 ] || fr_fail "repeated id ran again after restart"
fr_ok "exactly once across a controller restart"

# 9. SIGTERM during a run reports it and leaves nothing running.
fr_start slowcmd "$FRCMD" -s "$T/home.secret" -v -w 20 -i slow-1 "$ADDR:$PORT" kitchen slow
fr_wait 10 "slow action started" grep -q '"started"' "$T/slowcmd.log"
slowpid=$(cat "$T/slowpid")
fr_stop mhc2 TERM
wait "$(fr_pid slowcmd)" && fr_fail "the interrupted command reported ok"
res=$(grep '"result"' "$T/slowcmd.log" | tail -n1)
[ -n "$res" ] || fr_fail "no result after SIGTERM: $(cat "$T/slowcmd.log")"
[ "$(fr_json "$res" status)" = failed ] || fr_fail "interrupted status: $res"
echo "$res" | grep -q "shutting down" || fr_fail "interrupted reason: $res"
fr_wait 5 "slow action $slowpid gone" fr_proc_gone "$slowpid"
fr_grep_log mhc2 "stopped" || fr_fail "frMhc did not stop cleanly"
fr_ok "SIGTERM during a run: reported, nothing left running, clean exit"

# A controller without announces (and a fast sensor) stops cleanly on SIGTERM too.
cat >"$T/quiet.conf" <<CONF
id = "quiet";
secret_file = "$T/home.secret";
state_dir = "$T/state-quiet";
listen = { address = "127.0.0.3"; port = 0; };
$(fr_mhc_root)
sensors = ( { name = "e"; argv = ["/bin/echo", "1"]; interval = 0.1; } );
CONF
fr_start quiet "$MHC" -f -c "$T/quiet.conf"
fr_wait 10 "quiet controller listening" fr_grep_log quiet "listening on"
sleep 0.5
kill -TERM "$(fr_pid quiet)"
wait "$(fr_pid quiet)" || fr_fail "frMhc without announces exited $? on SIGTERM"
fr_ok "a controller without announces stops cleanly on SIGTERM"
