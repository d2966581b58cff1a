#!/usr/bin/env bash
# frAroundWeb with a real broker, a real frMhs and a real frMhc ("kitchen" in home1): every
# shim operation, pipelining, auth and home grants, garbage and over-long lines, 500 idle
# connections and a client that never reads while a good client keeps working, the audit
# trail, /healthz and /metrics.
. "$(dirname "$0")/lib.sh"

fr_secret "$T/home.secret"
BPORT=$(fr_free_port)
APORT=$(fr_free_port)
SPORT=$(fr_free_port)
HPORT=$(fr_free_port)
fr_mosquitto broker "$BPORT"
fr_mhs_conf home1 "$APORT" "$BPORT"
fr_start mhs "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
fr_mhc_conf kitchen 127.0.0.2 "$APORT"
fr_start kitchen "$FR_BIN/frMhc" -f -c "$T/kitchen.conf"
fr_wait 15 "kitchen online" fr_retained_is "$BPORT" fr/home1/ctl/kitchen/status online

fr_users alice:alice-token:home1 bob:bob-token:home2
fr_web_conf "$BPORT" "$SPORT" "$HPORT" "unix = \"$T/shim.sock\"; max_line = 4096; max_clients = 1000;
         max_inflight = 16; max_outq = 65536;" 'instance = "t1";'
"$FR_BIN/frAroundWeb" --check-config -c "$T/web.conf" >/dev/null || fr_fail "--check-config"
"$FR_BIN/frAroundWeb" --help | grep -q '^SIGNALS' || fr_fail "--help"
fr_start web "$FR_BIN/frAroundWeb" -f -v -c "$T/web.conf"
fr_wait 10 "shim listening" bash -c "exec 3<>/dev/tcp/127.0.0.1/$SPORT"
fr_wait 10 "web connected" fr_grep_log web "connected (session"

cat >"$T/shim.py" <<'PY'
import json, os, socket, subprocess, sys, time, urllib.request, urllib.error
sport, hport, bport, tmp = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def fail(msg):
    print("FAIL: " + msg, flush=True); sys.exit(1)
def ok(msg):
    print("ok: " + msg, flush=True)

class Client:
    def __init__(self, unix=None, rcvbuf=None):
        if unix:
            self.s = socket.socket(socket.AF_UNIX); self.s.connect(unix)
        else:
            self.s = socket.socket()
            if rcvbuf: self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.s.connect(("127.0.0.1", sport))
        self.s.settimeout(20); self.buf = b""; self.pending = []
    def send(self, obj):
        self.s.sendall((obj if isinstance(obj, (bytes, str)) and False else
                        (obj.encode() if isinstance(obj, str) else json.dumps(obj).encode())) + b"\n")
    def line(self):
        while b"\n" not in self.buf:
            d = self.s.recv(65536)
            if not d: raise EOFError("connection closed")
            self.buf += d
        l, self.buf = self.buf.split(b"\n", 1)
        return json.loads(l)
    def wait(self, rid, final=True):
        for i, m in enumerate(self.pending):
            if m.get("id") == rid and (not final or "ok" in m):
                return self.pending.pop(i)
        while True:
            m = self.line()
            if m.get("id") == rid and (not final or "ok" in m): return m
            self.pending.append(m)
    def call(self, obj):
        self.send(obj); return self.wait(obj["id"])
    def events(self, rid):
        ev = [m for m in self.pending if m.get("id") == rid and "event" in m]
        self.pending = [m for m in self.pending if m not in ev]
        return ev

def err(m): return m.get("error", {}).get("code") if m.get("ok") is False else None

c = Client()
r = c.call({"id": 1, "op": "ping"})
if r.get("ok") is not True or not isinstance(r.get("time"), (int, float)): fail("ping %r" % r)
r = c.call({"id": 2, "op": "get", "topic": "fr/home1/status"})
if err(r) != "auth": fail("get before auth %r" % r)
r = c.call({"id": 3, "op": "auth", "token": "wrong"})
if err(r) != "auth": fail("wrong token %r" % r)
r = c.call({"id": "a", "op": "auth", "token": "alice-token"})
if r.get("ok") is not True or r.get("user") != "alice" or r.get("homes") != ["home1"]: fail("auth %r" % r)
ok("ping, auth required, wrong token refused and connection kept, auth")

r = c.call({"id": 4, "op": "get", "topic": "fr/home1/ctl/kitchen/status"})
if r.get("ok") is not True or r.get("payload") != "online" or r.get("retained") is not True: fail("get %r" % r)
r = c.call({"id": 5, "op": "get", "topic": "fr/home1/ctl/kitchen/info"})
if r["payload"]["id"] != "kitchen": fail("get info %r" % r)
deadline = time.time() + 10
while True:
    r = c.call({"id": 6, "op": "get", "topic": "fr/home1/ctl/kitchen/state/temp"})
    if r.get("ok"): break
    if time.time() > deadline: fail("state never cached %r" % r)
    time.sleep(0.2)
if not isinstance(r["payload"].get("value"), (int, float)): fail("state %r" % r)
r = c.call({"id": 7, "op": "get", "topic": "fr/home1/ctl/nope/status"})
if err(r) != "not_found": fail("not_found %r" % r)
r = c.call({"id": 8, "op": "list"})
h = r["homes"]
if len(h) != 1 or h[0]["home"] != "home1" or h[0]["status"] != "online": fail("list %r" % r)
k = [x for x in h[0]["controllers"] if x["id"] == "kitchen"]
if not k or k[0]["status"] != "online" or "temp" not in k[0]["state"] or k[0]["info"]["id"] != "kitchen": fail("list kitchen %r" % r)
r = c.call({"id": 9, "op": "list", "home": "home1"})
if len(r["homes"]) != 1: fail("list home %r" % r)
ok("get (status, info, state, not_found) and list answer from the cache")

for rid, req in [(10, {"op": "get", "topic": "fr/home2/status"}),
                 (11, {"op": "list", "home": "home2"}),
                 (12, {"op": "request", "home": "home2", "ctl": "kitchen", "action": "rec"}),
                 (13, {"op": "subscribe", "filter": "fr/home2/#"}),
                 (14, {"op": "subscribe", "filter": "fr/+/status"}),
                 (15, {"op": "publish", "topic": "fr/home2/display", "payload": "x"}),
                 (16, {"op": "publish", "topic": "fr/home1/status", "payload": "offline"}),
                 (17, {"op": "publish", "topic": "fr/home1/ctl/kitchen/cmd", "payload": {}, "retain": True})]:
    req["id"] = rid
    r = c.call(req)
    if err(r) != "forbidden": fail("forbidden %r -> %r" % (req, r))
ok("ungranted home / topic: forbidden for get, list, request, subscribe, publish")

c.send(b"hello, not json".decode())
r = c.wait(None)
if err(r) != "bad_request": fail("garbage %r" % r)
c.send('{"id":"g2","op":"fly"}')
r = c.wait("g2")
if err(r) != "bad_request": fail("unknown op %r" % r)
c.send('[1,2,3]')
if err(c.wait(None)) != "bad_request": fail("array line")
if c.call({"id": 18, "op": "ping"}).get("ok") is not True: fail("connection did not survive garbage")
ok("garbage lines: bad_request (id null when unreadable), the connection survives")

# Pipelined: many requests in one write, answered by id.
batch = [{"id": "p%d" % i, "op": "ping"} for i in range(20)]
batch += [{"id": "pr1", "op": "request", "home": "home1", "ctl": "kitchen", "action": "rec", "args": {"tag": "pipe"}, "timeout": 5},
          {"id": "pg", "op": "get", "topic": "fr/home1/status"}, {"id": "pl", "op": "list"}]
c.s.sendall(b"".join(json.dumps(b).encode() + b"\n" for b in batch))
for b in batch:
    r = c.wait(b["id"])
    if r.get("ok") is not True: fail("pipelined %r -> %r" % (b, r))
r = c.wait("pr1") if False else r
ok("pipelined requests on one connection answered by id")

r = c.call({"id": 20, "op": "request", "home": "home1", "ctl": "kitchen", "action": "rec", "args": {"tag": "one"}, "timeout": 5})
ev = [m["event"] for m in c.events(20)]
if r.get("ok") is not True or r["result"]["status"] != "ok" or r["result"]["action"] != "rec": fail("request %r" % r)
if "accepted" not in ev or "started" not in ev: fail("request events %r" % ev)
req_uuid = r["request"]
r = c.call({"id": 21, "op": "request", "home": "home1", "ctl": "kitchen", "action": "fail"})
if r.get("ok") is not True or r["result"]["status"] != "failed": fail("failed action %r" % r)
r = c.call({"id": 22, "op": "request", "home": "home1", "ctl": "kitchen", "action": "slow", "args": {"secs": "3"}, "wait": 0.3})
if err(r) != "timeout" or not r.get("request"): fail("wait expiry %r" % r)
timeout_uuid = r["request"]
subprocess.run(["mosquitto_pub", "-p", str(bport), "-r", "-q", "1", "-t", "fr/home1/ctl/gone/status", "-m", "offline"], check=True)
deadline = time.time() + 5
while c.call({"id": 23, "op": "get", "topic": "fr/home1/ctl/gone/status"}).get("ok") is not True:
    if time.time() > deadline: fail("gone status not cached")
    time.sleep(0.1)
r = c.call({"id": 24, "op": "request", "home": "home1", "ctl": "gone", "action": "rec"})
if err(r) != "offline": fail("offline %r" % r)
ok("request: accepted/started events then the result; failed; wait expiry -> timeout; known offline -> offline")

r = c.call({"id": 30, "op": "publish", "topic": "fr/home1/display", "payload": "hello"})
if r.get("ok") is not True: fail("publish display %r" % r)
r = c.call({"id": 31, "op": "publish", "topic": "fr/home1/ctl/kitchen/cmd",
            "payload": {"id": "shim-pub-1", "action": "rec", "args": {"tag": "pub"}}})
if r.get("ok") is not True: fail("publish cmd %r" % r)
ok("publish to display and cmd")

r = c.call({"id": 32, "op": "subscribe", "filter": "fr/home1/ctl/kitchen/state/#"}) if False else None
c.send({"id": 32, "op": "subscribe", "filter": "fr/home1/ctl/kitchen/state/#"})
r = c.wait(32, final=False)
if r.get("event") != "subscribed": fail("subscribe %r" % r)
r = c.wait(32, final=False)
if r.get("event") != "message" or r["topic"] != "fr/home1/ctl/kitchen/state/temp" or "value" not in r["payload"]: fail("sub message %r" % r)
c.send({"id": 33, "op": "unsubscribe", "sub": 32})
r = c.wait(32)
if r.get("ok") is not True or r.get("ended") != "unsubscribed": fail("sub end %r" % r)
r = c.wait(33)
if r.get("ok") is not True: fail("unsubscribe %r" % r)
r = c.call({"id": 34, "op": "unsubscribe", "sub": 32})
if err(r) != "not_found": fail("unsubscribe twice %r" % r)
ok("subscribe: subscribed, messages, unsubscribe ends the stream")

time.sleep(0)  # results are audited before they are answered
r = c.call({"id": 40, "op": "audit", "limit": 50})
recs = r.get("records")
if r.get("ok") is not True or not recs: fail("audit %r" % r)
mine = [x for x in recs if x["request"] == req_uuid]
if not mine or mine[0]["status"] != "ok" or mine[0]["user"] != "alice" or mine[0]["ctl"] != "kitchen" or mine[0]["args"] != {"tag": "one"}: fail("audit record %r" % recs)
if not [x for x in recs if x["request"] == timeout_uuid and x["status"] == "timeout"]: fail("timeout audit %r" % recs)
if recs[0]["time"] < recs[-1]["time"]: fail("audit not newest first")
if len(c.call({"id": 41, "op": "audit", "limit": 1})["records"]) != 1: fail("audit limit")
b = Client(); b.call({"id": 1, "op": "auth", "token": "bob-token"})
if b.call({"id": 2, "op": "audit"})["records"] != []: fail("bob sees alice's audit")
ok("audit records written for requests (ok and timeout) and listed newest first, own only")

u = Client(unix=os.path.join(tmp, "shim.sock"))
if u.call({"id": 1, "op": "auth", "token": "alice-token"}).get("ok") is not True: fail("unix socket")
ok("unix socket serves the same protocol")

l = Client()
l.s.sendall(b"x" * 5000)
r = l.line()
if err(r) != "too_long": fail("too_long %r" % r)
try:
    extra = l.s.recv(100)
    if extra: fail("data after too_long")
except ConnectionResetError:
    pass
ok("a line over max_line: too_long, then the connection is closed")

# Five wrong tokens close the connection.
w = Client()
for i in range(5):
    w.call({"id": i, "op": "auth", "token": "bad%d" % i})
try:
    if w.s.recv(100): fail("open after 5 wrong tokens")
except ConnectionResetError:
    pass
ok("five wrong tokens close the connection")

# 500 idle connections and a client that never reads, while a good client keeps working.
idle = []
for i in range(500):
    s = socket.socket(); s.connect(("127.0.0.1", sport)); idle.append(s)
slow = Client(rcvbuf=4096)
slow.call({"id": 1, "op": "auth", "token": "alice-token"})
slow.send({"id": 2, "op": "subscribe", "filter": "fr/home1/busy/#"})
slow.wait(2, final=False)
with open(os.path.join(tmp, "busy.txt"), "w") as f:
    for i in range(3000):
        f.write("%05d %s\n" % (i, "z" * 1000))
def flood():
    return subprocess.Popen(["mosquitto_pub", "-p", str(bport), "-q", "0", "-t", "fr/home1/busy/x", "-l"],
                            stdin=open(os.path.join(tmp, "busy.txt")))
# The broker may drop QoS 0 messages to a slow subscriber, so the flood repeats until the
# non-reading client is cut off (bounded), and the good client works all along.
pub = flood()
rounds = 1
n = 0
deadline = time.time() + 120
cut = False
while time.time() < deadline and not (cut and n > 40):
    r = c.call({"id": "good%d" % n, "op": "get", "topic": "fr/home1/ctl/kitchen/status"})
    if r.get("ok") is not True: fail("good client failed during the flood %r" % r)
    n += 1
    if n % 10 == 0:
        r = c.call({"id": "req%d" % n, "op": "request", "home": "home1", "ctl": "kitchen", "action": "rec", "args": {"tag": "flood"}, "timeout": 5, "wait": 120})
        if r.get("ok") is not True or r["result"]["status"] != "ok": fail("request during flood %r" % r)
    cut = cut or "output queue over" in open(os.path.join(tmp, "web.log")).read()
    if not cut and pub.poll() is not None and rounds < 40:
        pub = flood(); rounds += 1
pub.wait(timeout=60)
if not cut: fail("the client that never reads was not cut off")
r = c.call({"id": "after", "op": "list"})
if r.get("ok") is not True: fail("good client after the flood")
for s in idle: s.close()
ok("500 idle connections + a client that never reads (cut off, logged) while a good client worked (%d calls)" % n)

def http(path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (hport, path), timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
st, body = http("/healthz")
j = json.loads(body)
if st != 200 or j["status"] != "ok" or j["broker"] != "connected" or not isinstance(j["uptime_s"], int): fail("healthz %s %s" % (st, body))
st, body = http("/readyz")
if st != 200: fail("readyz %s %s" % (st, body))
st, body = http("/metrics")
if st != 200: fail("metrics %s" % st)
def metric(body, name):
    for line in body.splitlines():
        if line.startswith(name + " "): return float(line.split()[-1])
    fail("metric %s missing" % name)
conns = metric(body, "fr_shim_connections_total")
if conns < 500 or metric(body, 'fr_relay_requests_total{status="ok"}') < 2: fail("metrics values\n" + body)
if metric(body, 'fr_shim_disconnects_total{reason="outq"}') < 1 or metric(body, 'fr_shim_errors_total{code="forbidden"}') < 8: fail("metrics values\n" + body)
if metric(body, "fr_mqtt_connected") != 1 or metric(body, "fr_cache_topics") < 3: fail("metrics gauges\n" + body)
Client().call({"id": 1, "op": "ping"})
st, body = http("/metrics")
if metric(body, "fr_shim_connections_total") <= conns: fail("connections counter did not move")
st, _ = http("/nope")
if st != 404: fail("404")
ok("/healthz, /readyz and /metrics answer; counters move")
PY
python3 "$T/shim.py" "$SPORT" "$HPORT" "$BPORT" "$T" || fr_fail "shim client checks"
fr_grep_log web "output queue over 65536 bytes" || fr_fail "cut-off not logged"
[ "$(grep -c '"user":"alice"' "$T/audit.log")" -ge 3 ] || fr_fail "audit file: $(cat "$T/audit.log")"

# A users reload drops a client whose token is gone.
python3 - "$SPORT" "$T" <<'PY' &
import json, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); s.settimeout(20)
s.sendall(b'{"id":1,"op":"auth","token":"bob-token"}\n'); s.recv(4096)
open(sys.argv[2] + "/bob-ready", "w").close()
data = s.recv(4096)
sys.exit(0 if data == b"" else 1)
PY
BOBPID=$!
fr_wait 10 "bob authenticated" test -e "$T/bob-ready"
# A broken file is refused and the old users stay; then the file without bob.
echo 'users = ( {' >"$T/users.conf"
kill -HUP "$(fr_pid web)"
fr_wait 10 "broken users file refused" fr_grep_log web "not reloaded, the previous users stay"
fr_users alice:alice-token:home1
kill -HUP "$(fr_pid web)"
wait "$BOBPID" || fr_fail "bob not disconnected after reload"
fr_grep_log web "reloaded: 1 users" || fr_fail "reload not logged"
fr_ok "SIGHUP reloads the users; a removed user's connection is closed"

fr_stop web TERM
fr_grep_log web "stopped" || fr_fail "no clean stop"
[ ! -e "$T/shim.sock" ] || fr_fail "unix socket left behind"
fr_ok "clean stop on SIGTERM"
