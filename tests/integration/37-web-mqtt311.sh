#!/usr/bin/env bash
# frAroundWeb on a broker that speaks MQTT 3.1.1 only (a RabbitMQ 3.10 node of the test's own,
# fr_rabbit), with mqtt.version left at its default "auto" (issue 16 item 1): it falls back to
# 3.1.1 and logs it, tells shim clients (mqtt_version 4 in the auth answer, which the page
# connects with), keeps its cache from live state on 3.1.1 (no Retain As Published there), hands
# each message to each of a client's overlapping shim subscriptions exactly once (no
# subscription identifiers: matched by filter), and relays a shim request through a real frMhs
# (also "auto", so 3.1.1) to a real frMhc: reply_to in the payload, the replies matched by id,
# accepted, started and the result, and the audit record.
. "$(dirname "$0")/lib.sh"

fr_secret "$T/home.secret"
MPORT=$(fr_free_port)
APORT=$(fr_free_port)
SPORT=$(fr_free_port)
HPORT=$(fr_free_port)
fr_rabbit "$MPORT"

fr_users alice:alice-token:home1
fr_web_conf "$MPORT" "$SPORT" "$HPORT" "" 'instance = "t37";'
"$FR_BIN/frAroundWeb" --check-config -c "$T/web.conf" >/dev/null || fr_fail "--check-config with the default version"
fr_start web "$FR_BIN/frAroundWeb" -f -v -c "$T/web.conf"
fr_wait 30 "frAroundWeb on MQTT 3.1.1" fr_grep_log web "MQTT 3.1.1, connected (session"
fr_grep_log web "mqtt://127.0.0.1:$MPORT: the broker closed the connection to MQTT 5; trying MQTT 3.1.1" ||
	fr_fail "the fall back to 3.1.1 was not logged"
fr_grep_log web "(MQTT 5, else 3.1.1)" || fr_fail "the configured version (auto) was not logged at start"
fr_ok "frAroundWeb (version auto): MQTT 5 refused, MQTT 3.1.1 spoken (logged)"

# frMhs and the controller come after frAroundWeb: RabbitMQ never sends retained messages to
# wildcard filters, so the cache learns the statuses from their live publishes.
fr_mhs_conf home1 "$APORT" "$MPORT" '"auto"'
fr_start mhs "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
fr_wait 30 "frMhs on MQTT 3.1.1" fr_grep_log mhs "(MQTT 3.1.1)"
fr_mhc_conf c1 127.0.0.2 "$APORT"
fr_start c1 "$FR_BIN/frMhc" -f -v -c "$T/c1.conf"

cat >"$T/t37.py" <<'PY'
import json, socket, subprocess, sys, time
sport, mport, tmp = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

def fail(msg):
    print("FAIL: " + msg, flush=True); sys.exit(1)
def ok(msg):
    print("ok: " + msg, flush=True)

s = socket.create_connection(("127.0.0.1", sport)); s.settimeout(5)
buf, seen = b"", []
def send(obj):
    s.sendall(json.dumps(obj).encode() + b"\n")
def read_for(secs):
    """Collects lines for at most secs; returns when the socket stays quiet that long."""
    global buf
    end = time.time() + secs
    while time.time() < end:
        while b"\n" in buf:
            l, buf = buf.split(b"\n", 1)
            seen.append(json.loads(l))
        s.settimeout(max(0.05, end - time.time()))
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        if not d: fail("connection closed")
        buf += d
    while b"\n" in buf:
        l, buf = buf.split(b"\n", 1)
        seen.append(json.loads(l))
def poll(pred, secs):
    end = time.time() + secs
    while True:
        for m in seen:
            if pred(m): return m
        if time.time() >= end: return None
        read_for(0.2)
def wait_for(pred, secs, what):
    m = poll(pred, secs)
    if m is None: fail("timed out after %ds waiting for %s; got %s" % (secs, what, seen[-5:]))
    return m
def pub(topic, msg):
    subprocess.run(["mosquitto_pub", "-V", "311", "-p", str(mport), "-q", "1", "-t", topic,
                    "-m", msg], check=True)

send({"id": "a", "op": "auth", "token": "alice-token"})
a = wait_for(lambda m: m.get("id") == "a", 10, "the auth answer")
if a.get("ok") is not True or a.get("mqtt_version") != 4:
    fail("auth answer on 3.1.1: %s" % a)
ok("auth answers mqtt_version 4 (the page connects with it)")

# The cache on 3.1.1: c1's online status reached frAroundWeb live, with the retain flag cleared.
def c1_online():
    send({"id": "l", "op": "list", "home": "home1"})
    m = wait_for(lambda m: m.get("id") == "l", 10, "the list answer")
    seen.remove(m)
    ctls = {c["id"]: c for h in m.get("homes", []) for c in h.get("controllers", [])}
    return ctls.get("c1", {}).get("status") == "online"
end = time.time() + 30
while not c1_online():
    if time.time() > end: fail("the cache never showed c1 online")
    time.sleep(0.2)
ok("the cache keeps live state on 3.1.1: list shows c1 online")

# Two overlapping subscriptions of this client, both overlapping frAroundWeb's own cache
# filter fr/+/ctl/+/status: each gets every message once.
send({"id": "all", "op": "subscribe", "filter": "fr/home1/#"})
send({"id": "st", "op": "subscribe", "filter": "fr/home1/ctl/+/status"})
wait_for(lambda m: m.get("id") == "all" and m.get("event") == "subscribed", 10, "subscribed (all)")
wait_for(lambda m: m.get("id") == "st" and m.get("event") == "subscribed", 10, "subscribed (st)")
# A marker until both see it: the subscriptions are live at the broker from then on.
def marker(tag):
    topic = "fr/home1/ctl/marker/status"
    end = time.time() + 20
    while time.time() < end:
        pub(topic, tag)
        if all(poll(lambda m: m.get("id") == sid and m.get("event") == "message" and
                    m.get("topic") == topic and m.get("payload") == tag, 1) for sid in ("all", "st")):
            return
    fail("marker %s never reached both subscriptions" % tag)
marker("m1")
del seen[:]
N = 20
for i in range(N):
    pub("fr/home1/ctl/fake/status", "v%d" % i)
pub("fr/home1/ctl/fake/event", '{"n":1}')
marker("m2")
def msgs(sid, topic):
    return [m["payload"] for m in seen if m.get("id") == sid and m.get("event") == "message"
            and m.get("topic") == topic]
want = ["v%d" % i for i in range(N)]
for sid in ("all", "st"):
    got = msgs(sid, "fr/home1/ctl/fake/status")
    if got != want: fail("subscription %s got %s, want each of %s once, in order" % (sid, got, want))
if msgs("all", "fr/home1/ctl/fake/event") != [{"n": 1}] or msgs("st", "fr/home1/ctl/fake/event"):
    fail("the event: all %s, st %s" % (msgs("all", "fr/home1/ctl/fake/event"),
                                       msgs("st", "fr/home1/ctl/fake/event")))
ok("overlapping shim subscriptions on 3.1.1: each got all %d messages once, in order; only the matching one the event" % N)
# And the sensor state frMhs forwards from c1 reaches the subscription.
wait_for(lambda m: m.get("id") == "all" and m.get("event") == "message" and
         m.get("topic") == "fr/home1/ctl/c1/state/temp", 20, "c1's temp through frMhs")
ok("c1's sensor state reaches the shim subscription")

# A request through frMhs to c1: on 3.1.1 only reply_to routes the replies, matched by id.
send({"id": "r", "op": "request", "home": "home1", "ctl": "c1", "action": "rec",
      "args": {"tag": "web311"}, "wait": 30})
f = wait_for(lambda m: m.get("id") == "r" and "ok" in m, 40, "the request's final answer")
if f.get("ok") is not True or f["result"].get("status") != "ok":
    fail("request: %s" % f)
events = [m["event"] for m in seen if m.get("id") == "r" and "event" in m]
if events != ["accepted", "started"]:
    fail("request events %s, want accepted, started" % events)
if any(m.get("request") != f["request"] for m in seen if m.get("id") == "r"):
    fail("lines of another request id: %s" % [m for m in seen if m.get("id") == "r"])
open(tmp + "/request.id", "w").write(f["request"])
ok("shim request on 3.1.1: accepted, started, result ok (request %s)" % f["request"])
PY
python3 "$T/t37.py" "$SPORT" "$MPORT" "$T" || fr_fail "shim on 3.1.1"
grep -qx web311 "$T/runs-c1" || fr_fail "the action did not run on c1"
[ "$(grep -c . "$T/runs-c1")" = 1 ] || fr_fail "the action ran $(grep -c . "$T/runs-c1") times"
RID=$(cat "$T/request.id")
grep -q "\"request\":\"$RID\",\"status\":\"ok\"" "$T/audit.log" || fr_fail "no audit record: $(cat "$T/audit.log")"
fr_grep_log web "request $RID (alice home1/c1 rec): ok" || fr_fail "the result was not logged"
fr_ok "the action ran once on c1; audited and logged"
fr_clean_stop web mhs c1
