#!/usr/bin/env bash
# An action that ends while its controller is frozen (SIGSTOP) past the action's timeout is
# reported by what the process did -- its exit -- not as a timeout nobody enforced (issue 11
# item 6). Deterministic: the exit and the deadline both happen while frMhc is stopped, so on
# SIGCONT the timer and the exit are pending together, the order that used to mislabel it.
. "$(dirname "$0")/lib.sh"

fr_secret "$T/home.secret"
PORT=$(fr_free_port)
ADDR=127.0.0.2
cat >"$T/mhc.conf" <<CONF
id = "kitchen";
secret_file = "$T/home.secret";
state_dir = "$T/state";
listen = { address = "$ADDR"; port = $PORT; };
$(fr_mhc_root)
actions = (
  { name = "quick"; argv = ["/bin/sh", "-c", "read -r _ < $T/go; echo done"]; timeout = 1; },
  { name = "hang"; argv = ["/bin/sleep", "30"]; timeout = 1; kill_grace = 0.2; }
);
CONF
fr_start mhc "$FR_BIN/frMhc" -f -v -c "$T/mhc.conf"
fr_wait 10 "frMhc listening" fr_grep_log mhc "listening on"
MHC=$(fr_pid mhc)
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
past() { [ "$(now_ms)" -ge "$1" ]; }

# The action blocks on a fifo until the test lets it end, so its end falls inside the freeze.
mkfifo "$T/go"
fr_start quick "$FR_BIN/frcmd" -s "$T/home.secret" -v -w 60 -i frozen-1 "$ADDR:$PORT" kitchen quick
fr_wait 20 "the action started" grep -q '"started"' "$T/quick.log"
started=$(now_ms)
pid=$(fr_json "$(grep '"started"' "$T/quick.log" | head -n1)" pid)
kill -STOP "$MHC"
echo go >"$T/go"                                    # the action ends now, exit code 0
fr_wait 20 "the action exited (a zombie of the frozen frMhc)" fr_proc_gone "$pid"
# Its 1 s timeout passes while frMhc is still frozen (1.5 s: the deadline lies before it).
fr_wait 20 "the action's timeout passed" past $(( started + 1500 ))
kill -CONT "$MHC"
wait "$(fr_pid quick)" || fr_fail "frcmd: $(cat "$T/quick.log")"
res=$(grep '"result"' "$T/quick.log" | tail -n1)
[ "$(fr_json "$res" status)" = ok ] || fr_fail "an action that exited 0 during the freeze was reported: $res"
[ "$(fr_json "$res" exit_code)" = 0 ] || fr_fail "exit code: $res"
[ "$(fr_json "$res" stdout)" = done ] || fr_fail "stdout: $res"
echo "$res" | grep -q killed && fr_fail "reason says killed: $res"
fr_ok "an action that ended during a freeze past its timeout is reported ok, exit 0"

# The timeout still holds for an action that really is running at its deadline, frozen or not.
fr_start hang "$FR_BIN/frcmd" -s "$T/home.secret" -v -w 60 -i frozen-2 "$ADDR:$PORT" kitchen hang
fr_wait 20 "hang started" grep -q '"started"' "$T/hang.log"
started=$(now_ms)
kill -STOP "$MHC"
fr_wait 20 "the hang's timeout passed" past $(( started + 1500 ))
kill -CONT "$MHC"
wait "$(fr_pid hang)" && fr_fail "hang reported ok"
res=$(grep '"result"' "$T/hang.log" | tail -n1)
[ "$(fr_json "$res" status)" = timeout ] || fr_fail "a running action past its deadline: $res"
fr_ok "an action still running at its deadline is still a timeout after a freeze"
