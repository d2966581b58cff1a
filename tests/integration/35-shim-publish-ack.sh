#!/usr/bin/env bash
# A shim "publish" answers ok only once the broker has the message (#11.10, docs/shim.md): with
# the broker frozen (SIGSTOP) no ok comes while the shim answers a ping; when it runs again every
# publish is answered ok and a subscriber gets each one. 2000 pipelined publishes: one answer per
# id, all ok, and the subscriber gets all 2000. A broker that stays frozen: the publish is
# answered timeout (and delivered later), and waiting publishes count toward max_inflight. A
# client that leaves while its publishes wait: they are delivered, the shim goes on.
. "$(dirname "$0")/lib.sh"

BPORT=$(fr_free_port)
SPORT=$(fr_free_port)
HPORT=$(fr_free_port)
fr_mosquitto broker "$BPORT" "max_queued_messages 10000"
fr_users alice:alice-token:home1
fr_web_conf "$BPORT" "$SPORT" "$HPORT" "max_inflight = 256;" 'instance = "t35";'
fr_start web "$FR_BIN/frAroundWeb" -f -v -c "$T/web.conf"
fr_wait 10 "shim listening" bash -c "exec 3<>/dev/tcp/127.0.0.1/$SPORT"
fr_wait 10 "web connected" fr_grep_log web "connected as"

# The subscriber: QoS 1, so the broker queues for it what it acknowledged to frAroundWeb.
fr_start sub mosquitto_sub -p "$BPORT" -q 1 -t fr/home1/display -W 120
fr_wait 10 "subscriber ready" bash -c "mosquitto_pub -p $BPORT -q 1 -t fr/home1/display -m probe; grep -qx probe '$T/sub.log'"

cat >"$T/pub.py" <<'PY'
import json, os, signal, socket, subprocess, sys, time
sport, bpid, sublog = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def fail(msg):
    os.kill(bpid, signal.SIGCONT); print("FAIL: " + msg, flush=True); sys.exit(1)
def ok(msg):
    print("ok: " + msg, flush=True)
s = socket.create_connection(("127.0.0.1", sport)); s.settimeout(60); buf = b""
def send(o): s.sendall((json.dumps(o) + "\n").encode())
def recv():
    global buf
    while b"\n" not in buf:
        d = s.recv(65536)
        if not d: fail("shim closed the connection")
        buf += d
    line, buf = buf.split(b"\n", 1)
    return json.loads(line)
def delivered(prefix):
    with open(sublog) as f:
        return {l.strip() for l in f if l.startswith(prefix)}
def wait_delivered(prefix, n, secs=60):
    end = time.time() + secs
    while time.time() < end:
        if len(delivered(prefix)) >= n: return
        time.sleep(0.1)
    fail(f"subscriber got {len(delivered(prefix))} of {n} '{prefix}' messages")

send({"id": "a", "op": "auth", "token": "alice-token"})
if not recv().get("ok"): fail("auth")

# 1. Frozen broker: no ok may come; the shim itself keeps answering.
os.kill(bpid, signal.SIGSTOP)
for i in range(10):
    send({"id": f"f{i}", "op": "publish", "topic": "fr/home1/display", "payload": f"f{i}"})
send({"id": "ping", "op": "ping"})
while True:
    r = recv()
    if r["id"] == "ping": break
    fail(f"answered before the broker had it: {r}")
ok("no publish answered while the broker was frozen (the ping was)")
os.kill(bpid, signal.SIGCONT)
got = {}
while len(got) < 10:
    r = recv(); got[r["id"]] = r
if any(not r.get("ok") for r in got.values()): fail(f"not all ok: {got}")
wait_delivered("f", 10)
ok("after the broker ran again: 10 ok, and the subscriber got all 10")

# 2. 2000 pipelined publishes, 200 in flight: one answer per id, all ok, all delivered.
N, W = 2000, 200
sent = answered = 0; seen = set()
while answered < N:
    while sent < N and sent - answered < W:
        send({"id": sent, "op": "publish", "topic": "fr/home1/display", "payload": f"b{sent}"}); sent += 1
    r = recv()
    if r["id"] in seen: fail(f"two answers for {r['id']}")
    seen.add(r["id"]); answered += 1
    if not r.get("ok"): fail(f"publish {r['id']}: {r}")
wait_delivered("b", N)
ok(f"{N} publishes: {N} ok, each id once, the subscriber got all {N}")

# 3. A broker that stays frozen: timeout (the message may still arrive later), and waiting
# publishes count toward max_inflight (256).
os.kill(bpid, signal.SIGSTOP)
t0 = time.time()
for i in range(257):
    send({"id": f"t{i}", "op": "publish", "topic": "fr/home1/display", "payload": f"t{i}"})
r = recv()
if r["id"] != "t256" or r.get("error", {}).get("code") != "too_many": fail(f"expected too_many: {r}")
ok("the 257th waiting publish: too_many")
r = recv()
if r.get("ok") is not False or r["error"]["code"] != "timeout": fail(f"expected timeout: {r}")
if time.time() - t0 < 5: fail("timeout came too early")
codes = {recv()["error"]["code"] for _ in range(255)}
if codes != {"timeout"}: fail(f"codes {codes}")
os.kill(bpid, signal.SIGCONT)
wait_delivered("t", 256)
ok("a frozen broker: timeout for each, delivered once it ran again")

# 4. A client that leaves while its publishes wait: their acknowledgments come later to a
# client that is gone; the messages are still delivered and the shim serves the others.
os.kill(bpid, signal.SIGSTOP)
g = socket.create_connection(("127.0.0.1", sport)); g.settimeout(60)
g.sendall(b'{"id":"a","op":"auth","token":"alice-token"}\n')
if b'"ok":true' not in g.recv(65536): fail("second client auth")
for i in range(5):
    g.sendall(('{"id":"g%d","op":"publish","topic":"fr/home1/display","payload":"g%d"}\n' % (i, i)).encode())
# Its ping is answered after the publishes before it were taken (one connection is in order).
g.sendall(b'{"id":"gp","op":"ping"}\n')
gbuf = b""
while b'"gp"' not in gbuf:
    d = g.recv(65536)
    if not d: fail("second client closed")
    gbuf += d
if b'"g0"' in gbuf: fail(f"a publish answered while the broker was frozen: {gbuf}")
g.close()
os.kill(bpid, signal.SIGCONT)
wait_delivered("g", 5)
send({"id": "ping3", "op": "ping"})
if not recv().get("ok"): fail("ping after the gone client's acknowledgments")
ok("a client gone while its publishes waited: delivered, the shim still answers")
PY
python3 "$T/pub.py" "$SPORT" "$(fr_pid broker)" "$T/sub.log" || fr_fail "shim publish acknowledgment"
fr_ok "shim publish: ok means the broker has it"
