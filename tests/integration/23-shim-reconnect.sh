#!/usr/bin/env bash
# A shim request survives a broker restart that lost its answer (docs/shim.md, "request"): while
# the action runs, frAroundWeb is frozen (SIGSTOP) and the broker is SIGKILLed and comes back
# without its database; frMhs reconnects and publishes the result, which nobody is subscribed to
# any more: it is gone. When frAroundWeb runs again it reconnects and asks again with the same
# id: frMhs answers the outcome it keeps, the action ran exactly once, and the shim client gets
# its ok. Without the repeat the client would get "timeout" after its wait.
. "$(dirname "$0")/lib.sh"

fr_home
fr_start mhs "$FR_BIN/frMhs" -f -c "$T/mhs.conf"
# gated: records its start, waits for $T/gate, records its end.
fr_mhc_conf c2 127.0.0.2 "$APORT" '{ name = "gated"; timeout = 60; argv = ["/bin/sh", "-c",
  "echo start >>'"$T"'/runs; while [ ! -e '"$T"'/gate ]; do sleep 0.1; done; echo end >>'"$T"'/runs"]; }'
fr_start c2 "$FR_BIN/frMhc" -f -c "$T/c2.conf"
fr_wait 10 "c2 online" fr_retained_is "$BPORT" fr/home1/ctl/c2/status online
SPORT=$(fr_free_port)
HPORT=$(fr_free_port)
fr_users alice:alice-token:home1
fr_web_conf "$BPORT" "$SPORT" "$HPORT" "" 'instance = "t23";'
fr_start web "$FR_BIN/frAroundWeb" -f -v -c "$T/web.conf"
fr_wait 10 "shim listening" bash -c "exec 3<>/dev/tcp/127.0.0.1/$SPORT"
fr_wait 10 "web connected" fr_grep_log web "connected (session"

fr_start req fr_shim "$SPORT" alice-token \
	'{"op":"request","home":"home1","ctl":"c2","action":"gated","wait":60}'
fr_wait 20 "the action running" grep -qx start "$T/runs"

# frAroundWeb frozen; the broker dies and restarts with nothing (no session, no queue).
WEB=$(fr_pid web)
kill -STOP "$WEB"
fr_stop broker KILL
rm -rf "$T/broker.db" && mkdir -p "$T/broker.db"
fr_start broker2 mosquitto -c "$T/broker.conf"
fr_wait 10 "broker back" bash -c "exec 3<>/dev/tcp/127.0.0.1/$BPORT"
fr_start watch stdbuf -oL mosquitto_sub -d -p "$BPORT" -t 'fr/home1/reply/#' -F '%t %p'
fr_wait 10 "the watcher subscribed" grep -q 'received SUBACK' "$T/watch.log"
fr_wait 20 "frMhs back" bash -c "[ \$(grep -c 'broker connected' '$T/mhs.log') -ge 2 ]"
touch "$T/gate"
fr_wait 20 "the result published while frAroundWeb was away" \
	grep -q '^fr/home1/reply/alice/web-t23 .*"type":"result"' "$T/watch.log"
kill -CONT "$WEB"
fr_wait 20 "frAroundWeb asked again" fr_grep_log web "relay: 1 open requests asked again after the reconnect"
fr_wait 30 "the shim client's answer" fr_proc_gone "$(fr_pid req)"
ans=$(tail -n1 "$T/req.log")
[ "$(fr_json "$ans" ok)" = True ] && [ "$(fr_json "$ans" result.status)" = ok ] ||
	fr_fail "shim answer after the broker lost the result: $ans"
[ "$(grep -c '^start$' "$T/runs")" = 1 ] || fr_fail "the action ran $(grep -c '^start$' "$T/runs") times"
fr_ok "the answer lost with the broker came back when frAroundWeb asked again; ran once: $ans"
