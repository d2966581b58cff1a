#!/usr/bin/env bash
# Sensor history (issue 18) with a real broker, frMhs, a frMhc "kitchen" whose temperature
# changes every few seconds, and frAroundWeb recording into SQLite:
#  - the controller's real readings are recorded, the latest equal to the retained state;
#  - 10000 readings of a sensor over 3.5 days, written with past ts through the MQTT state topic
#    as frMhs publishes a sensor change (retained, QoS 1) -- the test writes them itself, a
#    controller cannot be made to live 3.5 days here -- come back exactly through the shim's
#    history op, in parts, to a client that reads slowly beside a small max_outq; buckets of
#    them have the mean, min and max computed here from what was written; strings make a
#    timeline;
#  - garbage state payloads are skipped with a logged reason and the next good one is recorded;
#  - a broker restart and a frAroundWeb restart (both re-deliver every retained state) add no
#    duplicate and lose nothing; points still queued at SIGTERM are written before the exit;
#  - a home not granted is forbidden, also one revoked while its answer is being sent.
. "$(dirname "$0")/lib.sh"

# Debian's python3 has python3-paho-mqtt; a python3 earlier on PATH (pyenv) may not.
PY=/usr/bin/python3
"$PY" -c 'import paho.mqtt.client' 2>/dev/null || fr_fail "python3-paho-mqtt is not installed (./fr deps)"
fr_secret "$T/home.secret"
BPORT=$(fr_free_port)
APORT=$(fr_free_port)
SPORT=$(fr_free_port)
HPORT=$(fr_free_port)
# The test publishes 10000 readings at once, far more than a home sends: the broker must queue
# them all for frAroundWeb (mosquitto drops what is over max_queued_messages, 1000 by default
# and in broker/mosquitto.conf.in, when a subscriber is busy -- seen here under load).
fr_mosquitto broker "$BPORT" "max_queued_messages 0
max_inflight_messages 1000"
fr_mhs_conf home1 "$APORT" "$BPORT"
fr_start mhs "$FR_BIN/frMhs" -f -c "$T/mhs.conf"
fr_mhc_conf kitchen 127.0.0.2 "$APORT"
fr_start kitchen "$FR_BIN/frMhc" -f -c "$T/kitchen.conf"
fr_wait 15 "kitchen online" fr_retained_is "$BPORT" fr/home1/ctl/kitchen/status online

fr_users alice:alice-token:home1 bob:bob-token:home2
fr_web_conf "$BPORT" "$SPORT" "$HPORT" "max_outq = 65536;" "history = { file = \"$T/history.db\"; };"
"$FR_BIN/frAroundWeb" --check-config -c "$T/web.conf" >/dev/null || fr_fail "--check-config"
"$FR_BIN/frAroundWeb" --help | grep -q "history = { file" || fr_fail "--help does not document history"
web_up() {
	fr_start web "$FR_BIN/frAroundWeb" -f -c "$T/web.conf"
	fr_wait 10 "shim listening" bash -c "exec 3<>/dev/tcp/127.0.0.1/$SPORT"
	fr_wait 10 "web connected" fr_grep_log web "connected (session"
}
web_up

cat >"$T/hist.py" <<'PY'
import json, math, socket, sys, time
import paho.mqtt.client as paho
sport, bport, tmp, phase = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]

def fail(msg):
    print("FAIL: " + msg, flush=True); sys.exit(1)
def ok(msg):
    print("ok: " + msg, flush=True)

class Client:
    """A shim client; slow=True reads in small pieces with pauses (a slow PHP page)."""
    def __init__(self, slow=False):
        self.s = socket.socket()
        if slow: self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        self.s.connect(("127.0.0.1", sport)); self.s.settimeout(30)
        self.buf = b""; self.slow = slow; self.n = 0
    def call_lines(self, obj):
        self.n += 1; obj["id"] = self.n
        self.s.sendall(json.dumps(obj).encode() + b"\n")
        lines = []
        while True:
            while b"\n" not in self.buf:
                d = self.s.recv(4096 if self.slow else 1 << 20)
                if not d: fail("shim closed the connection")
                self.buf += d
                if self.slow: time.sleep(0.002)
            l, self.buf = self.buf.split(b"\n", 1)
            m = json.loads(l)
            if m.get("id") != self.n: fail("line for another id %r" % m)
            lines.append(m)
            if "ok" in m: return lines
    def call(self, obj):
        return self.call_lines(obj)[-1]
    def history(self, sensor, ctl="kitchen", **kw):
        lines = self.call_lines(dict(op="history", home="home1", ctl=ctl, sensor=sensor, **kw))
        final = lines[-1]
        if final.get("ok") is not True: return final, [], lines
        pts = [p for m in lines for p in m.get("points", [])]
        if any(m.get("event") != "points" for m in lines[:-1]): fail("unexpected events %r" % lines[:-1][:1])
        if final["count"] != len(pts): fail("count %d, %d points" % (final["count"], len(pts)))
        return final, pts, lines

def err(m): return m.get("error", {}).get("code") if m.get("ok") is False else None

c = Client()
if c.call({"op": "auth", "token": "alice-token"}).get("ok") is not True: fail("auth")
DAY = 86400000
now = int(time.time() * 1000)

def publish(items):
    """items: (topic, payload) published retained QoS 1, like frMhs's state, in order."""
    m = paho.Client(client_id="test-home", protocol=paho.MQTTv5)
    m.connect("127.0.0.1", bport); m.loop_start()
    infos = [m.publish(t, p, qos=1, retain=True) for t, p in items]
    for i in infos: i.wait_for_publish(30)
    m.loop_stop(); m.disconnect()

def wait_history(what, sensor, cond, ctl="kitchen", **kw):
    end = time.time() + 60
    while True:
        f, pts, lines = c.history(sensor, ctl=ctl, **kw)
        if f.get("ok") and cond(pts): return f, pts, lines
        if time.time() > end: fail("%s: history never got there: %r ... %r" % (what, f, pts[-3:]))
        time.sleep(0.3)

if phase == "1":
    r = c.call({"op": "history", "home": "home2", "ctl": "kitchen", "sensor": "temp"})
    if err(r) != "forbidden": fail("home not granted: %r" % r)
    ok("history of a home not granted is forbidden")

    # The controller's own readings: several, the newest equal to the retained state.
    def temp_done(pts):
        st = c.call({"op": "get", "topic": "fr/home1/ctl/kitchen/state/temp"})
        return len(pts) >= 3 and st.get("ok") and pts[-1] == [st["payload"]["ts"], st["payload"]["value"]]
    f, temp, _ = wait_history("kitchen temp", "temp", temp_done, **{"from": now - 3600000})
    if f["resolution"] != "raw" or not all(isinstance(p[1], (int, float)) for p in temp): fail("temp %r" % f)
    if [p[0] for p in temp] != sorted(set(p[0] for p in temp)): fail("temp not in ts order / duplicated")
    ok("the controller's %d readings are recorded, the newest equal to its retained state" % len(temp))

    # 10000 past readings, 30 s apart, over 3.5 days; a string sensor beside them.
    t0 = now - 10000 * 30000 - 60000
    wave = [[t0 + i * 30000, round(20 + 5 * math.sin(i / 50.0), 2)] for i in range(10000)]
    door = [[t0 + i * 30000 + 7, "open" if (i // 1000) % 2 else "closed"] for i in range(0, 10000, 1000)]
    items = []
    for i, (ts, v) in enumerate(wave):
        items.append(("fr/home1/ctl/sim/state/wave", json.dumps({"value": v, "ts": ts})))
        if i % 1000 == 0:
            items.append(("fr/home1/ctl/sim/state/door", json.dumps({"value": door[i // 1000][1], "ts": door[i // 1000][0]})))
    # Garbage on the same topic, then one more good reading.
    garbage = ["not json", '{"value": 1}', '{"value": [1], "ts": 5}', '{"value": 1, "ts": 1.5}', '{"value": 1, "ts": 5} x']
    items += [("fr/home1/ctl/sim/state/wave", g) for g in garbage]
    last = [now - 1000, 99.5]
    wave.append(last)
    items.append(("fr/home1/ctl/sim/state/wave", json.dumps({"value": last[1], "ts": last[0]})))
    publish(items)
    f, pts, lines = wait_history("wave", "wave", lambda p: len(p) >= len(wave), ctl="sim",
                                 **{"from": t0, "max_points": 200000})
    c2 = Client(slow=True)
    if c2.call({"op": "auth", "token": "alice-token"}).get("ok") is not True: fail("auth 2")
    f, pts, lines = c2.history("wave", ctl="sim", **{"from": t0, "max_points": 200000})
    if f.get("resolution") != "raw": fail("wave resolution %r" % f.get("resolution"))
    if pts != wave: fail("wave: %d points differ from the %d written (first %r vs %r)" % (len(pts), len(wave), pts[:2], wave[:2]))
    if len(lines) < 3: fail("10001 points came in %d lines, not in parts" % len(lines))
    ok("10001 readings written over 3.5 days come back exactly, in %d lines, to a slow reader" % len(lines))

    # Buckets: 100 points for the range -> stored 5-minute buckets grouped by the answer's width.
    f, b, _ = c.history("wave", ctl="sim", **{"from": t0, "to": now, "max_points": 100})
    w = f["resolution"]
    if not isinstance(w, int) or w % 300000 or len(b) > 100 or len(b) < 50: fail("buckets %r (%d)" % (w, len(b)))
    base = t0 - t0 % 300000
    want = {}
    for ts, v in wave:
        want.setdefault(base + (ts - base) // w * w, []).append(v)
    got = {p[0]: p[1:] for p in b}
    if sorted(got) != sorted(want): fail("bucket starts differ")
    for k, vs in want.items():
        mean, mn, mx = got[k]
        if abs(mean - sum(vs) / len(vs)) > 1e-9 * max(1, abs(mean)) or mn != min(vs) or mx != max(vs):
            fail("bucket %d: %r, want %r" % (k, got[k], [sum(vs) / len(vs), min(vs), max(vs)]))
    ok("%d buckets of %d min: mean, min and max of the readings in each" % (len(b), w // 60000))

    f, d, _ = c.history("door", ctl="sim", **{"from": t0, "max_points": 1000})
    if f.get("resolution") != "raw" or d != door: fail("door timeline %r vs %r" % (d, door))
    ok("a string sensor's values come back as a timeline")
    json.dump({"temp": temp, "wave": wave, "door": door, "t0": t0}, open(tmp + "/expected.json", "w"))

elif phase == "2":
    e = json.load(open(tmp + "/expected.json"))
    f, pts, _ = wait_history("wave after restarts", "wave", lambda p: len(p) >= len(e["wave"]), ctl="sim",
                             **{"from": e["t0"], "max_points": 200000})
    if pts != e["wave"]: fail("after the restarts wave has %d points (%d written): duplicates or losses" % (len(pts), len(e["wave"])))
    f, d, _ = c.history("door", ctl="sim", **{"from": e["t0"]})
    if d != e["door"]: fail("door after restarts %r" % d)
    f, temp, _ = c.history("temp", **{"from": now - 3600000})
    tss = [p[0] for p in temp]
    if len(tss) != len(set(tss)): fail("temp has duplicate points after the restarts")
    missing = [p for p in e["temp"] if p not in temp]
    if missing: fail("temp lost %r" % missing)
    ok("after a broker restart and a frAroundWeb restart (retained states re-delivered): no duplicate, nothing lost")

elif phase == "3":
    # Points still queued (flush_interval 60 s now) when frAroundWeb is stopped.
    late = [[now - 3000 + i, i + 0.5] for i in range(3)]
    publish([("fr/home1/ctl/sim/state/late", json.dumps({"value": v, "ts": ts})) for ts, v in late])
    # frAroundWeb has them once its cache has the last (one topic's messages come in order).
    end = time.time() + 30
    while True:
        g = c.call({"op": "get", "topic": "fr/home1/ctl/sim/state/late"})
        if g.get("ok") and g["payload"].get("ts") == late[-1][0]: break
        if time.time() > end: fail("frAroundWeb never got the late readings: %r" % g)
        time.sleep(0.05)
    f, pts, _ = c.history("late", ctl="sim", **{"from": now - 60000})
    if pts: fail("the late readings were written already (flush_interval 60 s): %r" % pts)
    json.dump(late, open(tmp + "/late.json", "w"))
    ok("3 readings received and still queued just before the stop")

elif phase == "5":
    # A home revoked while its history answer is still being sent (the client does not read, so
    # the answer waits for room): the answer ends with forbidden.
    # 40000 readings: an answer (about 1 MB) larger than what the kernel's socket buffers hold.
    t0 = now - 40000 * 12000 - 60000
    big = [[t0 + i * 12000, i % 1000 + 0.5] for i in range(40000)]
    publish([("fr/home1/ctl/sim/state/big", json.dumps({"value": v, "ts": ts})) for ts, v in big])
    wait_history("big", "big", lambda p: len(p) >= len(big), ctl="sim", **{"from": t0, "max_points": 200000})
    c2 = Client(slow=True)
    c2.n = 100
    c2.s.sendall(b'{"id":1,"op":"auth","token":"alice-token"}\n' + json.dumps(
        {"id": 2, "op": "history", "home": "home1", "ctl": "sim", "sensor": "big", "from": t0,
         "max_points": 200000}).encode() + b"\n")
    time.sleep(0.5)
    users = open(tmp + "/users.conf").read().replace('homes = ["home1"]', 'homes = ["home2"]')
    open(tmp + "/users.conf", "w").write(users)
    import os, signal, urllib.request
    os.kill(int(open(tmp + "/web.pid").read()), signal.SIGHUP)
    end = time.time() + 20
    while json.loads(urllib.request.urlopen("http://127.0.0.1:%s/healthz" % sys.argv[5]).read())["users"]["reloads"] < 1:
        if time.time() > end: fail("users never reloaded")
        time.sleep(0.05)
    got = []
    while True:
        while b"\n" not in c2.buf:
            d = c2.s.recv(65536)
            if not d: fail("connection closed")
            c2.buf += d
        l, c2.buf = c2.buf.split(b"\n", 1)
        m = json.loads(l)
        if m.get("id") == 2:
            got.append(m)
            if "ok" in m: break
    if err(got[-1]) != "forbidden" or got[-1]["error"]["message"] != "home no longer granted":
        fail("revoked answer ended with %r" % {k: v for k, v in got[-1].items() if k != "points"})
    if sum(len(m.get("points", [])) for m in got) >= len(big): fail("the whole answer came")
    ok("a history answer of a home revoked meanwhile ends with forbidden after %d parts" % (len(got) - 1))

elif phase == "4":
    late = json.load(open(tmp + "/late.json"))
    f, pts, _ = c.history("late", ctl="sim", **{"from": now - 60000})
    if pts != late: fail("points queued at SIGTERM: %r, want %r" % (pts, late))
    ok("points queued at SIGTERM were written before the exit")
PY

hist() { timeout -k 5 240 "$PY" "$T/hist.py" "$SPORT" "$BPORT" "$T" "$1" "$HPORT" || fr_fail "phase $1"; }
hist 1
fr_grep_log web "fr/home1/ctl/sim/state/wave: not recorded: not JSON" || fr_fail "garbage not logged with its reason"
fr_ok "a garbage state payload is logged with its reason"
M=$(curl -sf "http://127.0.0.1:$HPORT/metrics") || fr_fail "/metrics"
grep -q '^fr_history_refused_total{reason="not_a_state"} 5$' <<<"$M" || fr_fail "metrics: $(grep history <<<"$M")"
[ "$(awk '/^fr_history_points_total /{print $2}' <<<"$M")" -ge 10001 ] || fr_fail "metrics: $(grep history <<<"$M")"
fr_ok "/metrics counts the values written and the 5 refused"

# Both restarts re-deliver every retained state (the broker persists them).
fr_stop broker
fr_start broker mosquitto -c "$T/broker.conf" -v
fr_wait 10 "broker back" bash -c "exec 3<>/dev/tcp/127.0.0.1/$BPORT"
fr_wait 15 "web reconnected" bash -c "[ \$(grep -c 'connected (session' '$T/web.log') -ge 2 ]"
fr_stop web
mv "$T/web.log" "$T/web-1.log"
web_up
hist 2

# The stop: with flush_interval 60 s the three readings are surely still queued at the SIGTERM.
fr_stop web
mv "$T/web.log" "$T/web-2.log"
sed -i 's|^history = .*|history = { file = "'"$T"'/history.db"; flush_interval = 60; };|' "$T/web.conf"
web_up
hist 3
kill -TERM "$(fr_pid web)"
fr_wait 10 "frAroundWeb stopped" fr_proc_gone "$(fr_pid web)"
mv "$T/web.log" "$T/web-3.log"
sed -i 's|^history = .*|history = { file = "'"$T"'/history.db"; };|' "$T/web.conf"
web_up
hist 4
hist 5
