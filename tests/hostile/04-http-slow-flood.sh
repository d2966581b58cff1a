#!/usr/bin/env bash
# Hostile (issue 12 item 7): slow clients (slowloris: a request head that never ends, one byte a
# second) on frAroundWeb's /healthz-/metrics port -- 100 from the health checker's own
# address, plus 1000 idle connections from 32 other addresses -- reopened whenever closed.
# Beside them a health checker GETs /healthz every 0.2 s: >= 95 % answered 200. Memory stays
# bounded and the flood is logged with counts. Bounded: 20 s, at most 20 000 connections.
. "$FR_SRC/tests/integration/lib.sh"

BPORT=$(fr_free_port)
SPORT=$(fr_free_port)
HPORT=$(fr_free_port)
fr_mosquitto broker "$BPORT"
printf 'users = ( );\n' >"$T/users.conf"
cat >"$T/web.conf" <<CONF
users_file = "$T/users.conf";
audit_file = "$T/audit.log";
shim = { address = "127.0.0.1"; port = $SPORT; };
http = { address = "127.0.0.1"; port = $HPORT; };
mqtt = { uri = "mqtt://127.0.0.1:$BPORT"; backoff_min = 0.1; backoff_max = 1; };
CONF
fr_start web "$FR_BIN/frAroundWeb" -f -c "$T/web.conf"
fr_wait 10 "web connected" fr_grep_log web "connected (session"
fr_wait 10 "/healthz answers" curl -sf -m 2 "http://127.0.0.1:$HPORT/healthz"
WEB=$(fr_pid web)
hwm0=$(fr_vm "$WEB" VmHWM)
lines0=$(wc -l <"$T/web.log")

fr_start slow python3 "$FR_SRC/tests/hostile/flood.py" slow --target "127.0.0.1:$HPORT" \
	--count 100 --hold 20 --every 1 --max-opens 10000
fr_start idle python3 "$FR_SRC/tests/hostile/flood.py" idle --target "127.0.0.1:$HPORT" \
	--from "$(seq -s, -f '127.0.0.%g' 9 40)" --count 1000 --hold 20 --max-opens 10000
sleep 1
ok=0 tries=0
end=$(( $(date +%s) + 17 ))
while [ "$(date +%s)" -lt "$end" ]; do
	tries=$((tries + 1))
	code=$(curl -sS -o /dev/null -w "%{http_code}" -m 5 "http://127.0.0.1:$HPORT/healthz" 2>>"$T/curl.log")
	[ "$code" = 200 ] && ok=$((ok + 1))
	sleep 0.2
done
wait "$(fr_pid slow)" || fr_fail "slow flood"
wait "$(fr_pid idle)" || fr_fail "idle flood"
fr_log "slow: $(tail -n1 "$T/slow.log")"
fr_log "idle: $(tail -n1 "$T/idle.log")"
fr_log "/healthz during the floods: $ok/$tries answered 200"
[ "$tries" -ge 20 ] && fr_rate_ok "$ok" "$tries" || fr_fail "/healthz during the floods: $ok/$tries"
kill -0 "$WEB" || fr_fail "frAroundWeb died"
fr_ok "100 slow and 1000 idle connections: /healthz $ok/$tries"

fr_mem_bounded frAroundWeb "$WEB" "$hwm0" 16384
lines=$(( $(wc -l <"$T/web.log") - lines0 ))
[ "$lines" -lt 60 ] || fr_fail "$lines log lines for the floods: not rate-limited"
grep -q "http: refused [0-9]* connections from 127.0.0.1 in the last 10 s" "$T/web.log" ||
	fr_fail "no counted refusal line: $(grep -m3 'http:' "$T/web.log")"
fr_ok "memory bounded, $lines log lines with counts for the floods"
