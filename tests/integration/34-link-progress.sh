#!/usr/bin/env bash
# A command with "progress": false crosses the link as such and frMhc answers it with its result
# alone -- no accepted, no started (docs/lan-protocol.md, command) -- for a builtin, for a
# process, and for a repeat while the id runs; without the field (what an older home server
# sends) it still gets accepted, started and the result. Counted as the link messages frcmd
# receives about the id.
. "$(dirname "$0")/lib.sh"

FRCMD=$FR_BIN/frcmd
fr_secret "$T/home.secret"
APORT=$(fr_free_port)
ADDR=127.0.0.2
fr_mhc_conf kitchen "$ADDR" "$APORT" '{ name = "ping"; builtin = "noop"; },
  { name = "true"; argv = ["/bin/true"]; },
  { name = "nap"; argv = ["/bin/sh", "-c", "while [ ! -e '"$T"'/wake ]; do sleep 0.05; done"]; timeout = 60; }'
fr_start mhc "$FR_BIN/frMhc" -f -v -c "$T/kitchen.conf"
fr_wait 10 "frMhc listening" fr_grep_log mhc "listening on"
PORT=$(sed -n "s/.*listening on $ADDR:\([0-9]*\).*/\1/p" "$T/mhc.log" | head -1)
[ -n "$PORT" ] || fr_fail "no link port in the log: $(cat "$T/mhc.log")"

# send ID JSON-FIELDS: the type of every message about ID that frcmd -v received, in order.
send() {
	local id=$1 fields=$2
	"$FRCMD" -s "$T/home.secret" -w 30 -v --raw "{\"id\":\"$id\",$fields}" "$ADDR:$PORT" kitchen \
		>"$T/$id.out" 2>"$T/$id.err" || fr_fail "frcmd $id: $(cat "$T/$id.err")"
	grep "\"id\":\"$id\"" "$T/$id.out" | sed -n 's/^{"type":"\([a-z]*\)".*/\1/p'
}
types() { send "$@" | tr '\n' ' ' | sed 's/ $//'; }

got=$(types p-on '"action":"ping"')
[ "$got" = "accepted started result" ] || fr_fail "builtin, progress not given: $got ($(cat "$T/p-on.out"))"
got=$(types p-true '"action":"ping","progress":true')
[ "$got" = "accepted started result" ] || fr_fail "builtin, progress true: $got"
fr_ok "without progress:false a command gets accepted, started and its result"

got=$(types p-off '"action":"ping","progress":false')
[ "$got" = "result" ] || fr_fail "builtin, progress false: $got ($(cat "$T/p-off.out"))"
got=$(types t-off '"action":"true","progress":false')
[ "$got" = "result" ] || fr_fail "process, progress false: $got ($(cat "$T/t-off.out"))"
[ "$(fr_json "$(grep '"result"' "$T/t-off.out")" status)" = ok ] || fr_fail "process result: $(cat "$T/t-off.out")"
fr_ok "with progress:false only the result crosses the link (builtin and process)"

# A repeat while the id runs: with progress it is told started (duplicate), without it waits
# for the result alone.
"$FRCMD" -s "$T/home.secret" -w 30 -v --raw '{"id":"n-1","action":"nap"}' "$ADDR:$PORT" kitchen \
	>"$T/n-first.out" 2>&1 &
first=$!
fr_wait 10 "the first run started" grep -q '"started"' "$T/n-first.out"
"$FRCMD" -s "$T/home.secret" -w 30 -v --raw '{"id":"n-1","action":"nap","progress":false}' \
	"$ADDR:$PORT" kitchen >"$T/n-off.out" 2>&1 &
off=$!
"$FRCMD" -s "$T/home.secret" -w 30 -v --raw '{"id":"n-1","action":"nap"}' "$ADDR:$PORT" kitchen \
	>"$T/n-on.out" 2>&1 &
on=$!
fr_wait 10 "the repeat with progress told started" grep -q '"duplicate":true' "$T/n-on.out"
fr_wait 10 "both repeats logged by frMhc" sh -c "[ \$(grep -c 'n-1: repeated while running' '$T/mhc.log') -ge 2 ]"
touch "$T/wake"
wait "$first" || fr_fail "first run: $(cat "$T/n-first.out")"
wait "$off" || fr_fail "repeat without progress: $(cat "$T/n-off.out")"
wait "$on" || fr_fail "repeat with progress: $(cat "$T/n-on.out")"
n=$(grep -c '"id":"n-1"' "$T/n-off.out")
[ "$n" = 1 ] && grep -q '"type":"result"' "$T/n-off.out" ||
	fr_fail "a repeat with progress:false while running got more than its result: $(cat "$T/n-off.out")"
[ "$(grep -c '"type":"result"' "$T/n-first.out")" = 1 ] || fr_fail "first run: $(cat "$T/n-first.out")"
fr_ok "a repeat with progress:false while the id runs gets only the result"
