#!/usr/bin/env bash
# Hostile (issue 12 item 2): 2000 idle connections without a login against frAroundWeb's shim,
# first on TCP, then on the unix socket, each from the same peer as the legitimate clients
# (127.0.0.1, and the same uid: the hardest case for per-peer budgets). Beside each flood a legitimate
# TCP client and a legitimate unix-socket client connect, authenticate and list, again and
# again: each keeps >= 95 % success. A connection that never authenticates is closed after
# auth_timeout; frAroundWeb's memory stays bounded and the refusals are logged with counts,
# not a line each. Bounded: 2 x 20 s of flood, at most 20 000 connections each.
. "$FR_SRC/tests/integration/lib.sh"

BPORT=$(fr_free_port)
SPORT=$(fr_free_port)
HPORT=$(fr_free_port)
fr_mosquitto broker "$BPORT"
fr_users alice:alice-token:home1
fr_web_conf "$BPORT" "$SPORT" "$HPORT" "unix = \"$T/shim.sock\"; auth_timeout = 3;" 'instance = "h1";'
fr_start web "$FR_BIN/frAroundWeb" -f -c "$T/web.conf"
fr_wait 10 "web connected" fr_grep_log web "connected (session"
WEB=$(fr_pid web)

cat >"$T/legit.py" <<'PY'
# One legitimate client: connect, auth, list, close; every 0.25 s for SECONDS; prints a summary.
import json, socket, sys, time
where, seconds = sys.argv[1], float(sys.argv[2])
ok = tries = 0
errors = {}
end = time.monotonic() + seconds
while time.monotonic() < end:
    tries += 1
    try:
        if where.startswith("unix:"):
            s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(where[5:])
        else:
            h, p = where.rsplit(":", 1)
            s = socket.create_connection((h, int(p)), timeout=5)
        f = s.makefile("rwb")
        f.write(b'{"id":1,"op":"auth","token":"alice-token"}\n{"id":2,"op":"list"}\n'); f.flush()
        a = json.loads(f.readline()); b = json.loads(f.readline())
        if a.get("ok") and b.get("ok"):
            ok += 1
        else:
            errors[str(a)[:80]] = errors.get(str(a)[:80], 0) + 1
        s.close()
    except Exception as e:
        errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
    time.sleep(0.25)
print(json.dumps({"where": where, "ok": ok, "tries": tries, "errors": errors}), flush=True)
PY

check_legit() {   # check_legit NAME
	local sum; sum=$(tail -n1 "$T/$1.log")
	fr_log "$1: $sum"
	[ "$(fr_json "$sum" tries)" -ge 20 ] || fr_fail "$1: too few tries: $sum"
	fr_rate_ok "$(fr_json "$sum" ok)" "$(fr_json "$sum" tries)" || fr_fail "$1: below 95 %: $sum"
}

hwm0=$(fr_vm "$WEB" VmHWM)
lines0=$(wc -l <"$T/web.log")
for target in "127.0.0.1:$SPORT" "unix:$T/shim.sock"; do
	name=$(echo "$target" | cut -d: -f1)
	fr_start "flood-$name" python3 "$FR_SRC/tests/hostile/flood.py" idle --target "$target" \
		--count 2000 --hold 20 --max-opens 20000
	sleep 1   # the flood is under way before the legitimate clients start measuring
	fr_start "legit-tcp-$name" python3 "$T/legit.py" "127.0.0.1:$SPORT" 17
	fr_start "legit-unix-$name" python3 "$T/legit.py" "unix:$T/shim.sock" 17
	wait "$(fr_pid "flood-$name")" || fr_fail "flood $target"
	wait "$(fr_pid "legit-tcp-$name")"; wait "$(fr_pid "legit-unix-$name")"
	fr_log "flood $target: $(tail -n1 "$T/flood-$name.log")"
	check_legit "legit-tcp-$name"
	check_legit "legit-unix-$name"
	kill -0 "$WEB" || fr_fail "frAroundWeb died"
	fr_ok "2000 idle connections on $target: legitimate TCP and unix clients >= 95 %"
done

# A connection that never authenticates is closed after auth_timeout (3 s here).
python3 - "$SPORT" <<'PY' || fr_fail "an unauthenticated connection was not closed"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=15)
t = time.monotonic()
data = s.recv(100)
sys.exit(0 if data == b"" and time.monotonic() - t < 14 else 1)
PY
curl -s "http://127.0.0.1:$HPORT/metrics" >"$T/metrics"
grep -q 'fr_shim_disconnects_total{reason="auth_timeout"} [1-9]' "$T/metrics" ||
	fr_fail "no auth_timeout disconnect counted: $(grep disconnects "$T/metrics")"
grep -q 'fr_shim_disconnects_total{reason="pending_budget"} [1-9]' "$T/metrics" ||
	fr_fail "no pending_budget disconnect counted"
fr_ok "an unauthenticated connection is closed after auth_timeout; /metrics counts both reasons"

fr_mem_bounded frAroundWeb "$WEB" "$hwm0" 16384
# What the floods made frAroundWeb log (the legitimate clients' sign-ins aside).
lines=$(tail -n +"$((lines0 + 1))" "$T/web.log" | grep -vc ': user alice$')
[ "$lines" -lt 40 ] || fr_fail "$lines log lines for 40 000 hostile connections: not rate-limited"
grep -q "shim: refused [0-9]* connections from 127.0.0.1 in the last 10 s" "$T/web.log" ||
	fr_fail "no counted refusal line: $(grep -m3 refused "$T/web.log")"
grep -q "shim (unix): refused [0-9]* connections from uid $(id -u)" "$T/web.log" ||
	fr_fail "no counted refusal line for the unix socket"
fr_ok "memory bounded, $lines log lines with counts for the floods"
