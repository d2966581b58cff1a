#!/usr/bin/env bash
# The shim's promises on subscriptions and ids (docs/shim.md), with a real mosquitto, the
# mosquitto clients as publishers and raw lines read off the socket:
#  - a shim subscription overlapping frAroundWeb's own cache filters (fr/+/ctl/+/status) gets
#    each live change of a retained topic exactly once, with "retained": false; the retained
#    value comes once, "retained": true, when the subscription starts; two overlapping
#    subscriptions of one client get one copy each (issue 11 item 8);
#  - integer ids are echoed digit for digit up to 2^53; 2^53 + 1, fractions and exponents are
#    bad_request (issue 11 item 9);
#  - a restarted frAroundWeb (same instance, killed with a subscription open) gets nothing for the
#    old process's subscriptions: each start is a clean session.
. "$(dirname "$0")/lib.sh"

BPORT=$(fr_free_port)
SPORT=$(fr_free_port)
HPORT=$(fr_free_port)
fr_mosquitto broker "$BPORT"
fr_users alice:alice-token:home1
fr_web_conf "$BPORT" "$SPORT" "$HPORT" "" 'instance = "t25";'
mosquitto_pub -p "$BPORT" -r -q 1 -t fr/home1/status -m online
mosquitto_pub -p "$BPORT" -r -q 1 -t fr/home1/ctl/k/status -m online
fr_start web "$FR_BIN/frAroundWeb" -f -v -c "$T/web.conf"
fr_wait 10 "shim listening" bash -c "exec 3<>/dev/tcp/127.0.0.1/$SPORT"
fr_wait 10 "web connected" fr_grep_log web "connected (session"

cat >"$T/t25.py" <<'PY'
import json, socket, subprocess, sys, time
sport, bport = int(sys.argv[1]), int(sys.argv[2])

def fail(msg):
    print("FAIL: " + msg, flush=True); sys.exit(1)
def ok(msg):
    print("ok: " + msg, flush=True)

s = socket.create_connection(("127.0.0.1", sport)); s.settimeout(20)
buf = b""
def raw_line():
    global buf
    while b"\n" not in buf:
        d = s.recv(65536)
        if not d: fail("connection closed")
        buf += d
    l, buf = buf.split(b"\n", 1)
    return l
def send(text):
    s.sendall(text.encode() + b"\n")
def pub(topic, msg, retain):
    subprocess.run(["mosquitto_pub", "-p", str(bport), "-q", "1", "-t", topic, "-m", msg]
                   + (["-r"] if retain else []), check=True)

send('{"id":"a","op":"auth","token":"alice-token"}')
if json.loads(raw_line()).get("ok") is not True: fail("auth")

# --- ids: the raw text of the answer carries the id exactly as sent ---
for text in ["8000000000000001", "9007199254740991", "9007199254740992", "-9007199254740992",
             "0", "-0", "42"]:
    send('{"id":%s,"op":"ping"}' % text)
    l = raw_line()
    if not l.startswith(b'{"id":' + text.encode() + b',"ok":true'): fail("id %s echoed as %r" % (text, l))
for text in ["9007199254740993", "-9007199254740993", "18014398509481984", "1.0", "1e3", "0.5",
             "01", "1E400"]:
    send('{"id":%s,"op":"ping"}' % text)
    m = json.loads(raw_line())
    if m.get("ok") is not False or m["error"]["code"] != "bad_request" or m["id"] is not None:
        fail("id %s: %r" % (text, m))
# The id of a subscription, given as "sub", is matched by its text too.
send('{"id":8000000000000001,"op":"subscribe","filter":"fr/home1/nothing/#"}')
if raw_line() != b'{"id":8000000000000001,"event":"subscribed"}': fail("big-id subscribe")
send('{"id":8000000000000000,"op":"unsubscribe","sub":8000000000000000}')
if json.loads(raw_line())["error"]["code"] != "not_found": fail("unsubscribe of a different big id")
send('{"id":8000000000000002,"op":"unsubscribe","sub":8000000000000001}')
a, b = raw_line(), raw_line()
if not a.startswith(b'{"id":8000000000000001,"ok":true,"ended":"unsubscribed"') or \
   not b.startswith(b'{"id":8000000000000002,"ok":true'):
    fail("unsubscribe by big id: %r %r" % (a, b))
ok("integer ids up to 2^53 echoed digit for digit (also as 'sub'); 2^53+1, fractions, exponents: bad_request")

# --- subscriptions ---
msgs = []
def read_until(pred, what):
    for m in msgs:
        if pred(m): return m
    end = time.time() + 15
    while time.time() < end:
        m = json.loads(raw_line())
        msgs.append(m)
        if pred(m): return m
    fail("timed out waiting for " + what)
def of(sub, topic):
    return [m for m in msgs if m.get("id") == sub and m.get("event") == "message" and m["topic"] == topic]

send('{"id":"s1","op":"subscribe","filter":"fr/home1/ctl/+/status"}')
read_until(lambda m: m.get("id") == "s1" and m.get("event") == "subscribed", "subscribed")
read_until(lambda m: m.get("id") == "s1" and m.get("event") == "message", "the retained status")
# A marker after the retained status: every copy the broker sent for it is in by then.
pub("fr/home1/ctl/marker1/status", "m1", False)
read_until(lambda m: m.get("id") == "s1" and m.get("topic") == "fr/home1/ctl/marker1/status", "marker 1")
got = of("s1", "fr/home1/ctl/k/status")
if [(m["payload"], m["retained"]) for m in got] != [("online", True)]:
    fail("at subscription start, want the retained value once, retained: %r" % got)
ok("the retained value comes once, marked retained, when the subscription starts")

for i, state in enumerate(["offline", "online", "offline"]):
    pub("fr/home1/ctl/k/status", state, True)
    marker = "fr/home1/ctl/marker%d/status" % (i + 2)
    pub(marker, "m", False)
    read_until(lambda m: m.get("id") == "s1" and m.get("topic") == marker, marker)
got = of("s1", "fr/home1/ctl/k/status")[1:]
if [(m["payload"], m["retained"]) for m in got] != [("offline", False), ("online", False), ("offline", False)]:
    fail("live changes of a retained topic: want each once, retained false: %r" % got)
ok("each live change of a retained topic comes once, retained: false, though frAroundWeb's "
   "cache subscribes to fr/+/ctl/+/status too")

# A second, overlapping subscription of the same client: one copy for each.
send('{"id":"s2","op":"subscribe","filter":"fr/home1/#"}')
read_until(lambda m: m.get("id") == "s2" and m.get("event") == "subscribed", "s2 subscribed")
pub("fr/home1/ctl/marker9/status", "m9", False)
read_until(lambda m: m.get("id") == "s2" and m.get("topic") == "fr/home1/ctl/marker9/status", "marker 9 on s2")
read_until(lambda m: m.get("id") == "s1" and m.get("topic") == "fr/home1/ctl/marker9/status", "marker 9 on s1")
del msgs[:]
pub("fr/home1/ctl/k/status", "online", True)
pub("fr/home1/ctl/k/event", '{"kind":"state"}', False)
pub("fr/home1/ctl/marker10/status", "m", False)
read_until(lambda m: m.get("id") == "s2" and m.get("topic") == "fr/home1/ctl/marker10/status", "marker 10 on s2")
read_until(lambda m: m.get("id") == "s1" and m.get("topic") == "fr/home1/ctl/marker10/status", "marker 10 on s1")
for sub, topic, want in [("s1", "fr/home1/ctl/k/status", 1), ("s2", "fr/home1/ctl/k/status", 1),
                         ("s2", "fr/home1/ctl/k/event", 1), ("s1", "fr/home1/ctl/k/event", 0)]:
    got = of(sub, topic)
    if len(got) != want or any(m["retained"] for m in got):
        fail("%s on %s: want %d copy, not retained: %r" % (topic, sub, want, got))
ok("two overlapping subscriptions of one client: one copy each, live copies not retained")
PY
python3 "$T/t25.py" "$SPORT" "$BPORT" || fr_fail "shim subscription and id checks"

# A client subscription open when frAroundWeb dies (no UNSUBSCRIBE reaches the broker).
python3 - "$SPORT" "$T/held" <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); s.settimeout(30)
s.sendall(b'{"id":1,"op":"auth","token":"alice-token"}\n{"id":2,"op":"subscribe","filter":"fr/home1/stale/#"}\n')
buf = b""
while buf.count(b"\n") < 2: buf += s.recv(4096)
open(sys.argv[2], "w").close()
while s.recv(4096): pass
PY
fr_wait 10 "stale subscription made" test -e "$T/held"
fr_stop web KILL
fr_start web2 "$FR_BIN/frAroundWeb" -f -v -c "$T/web.conf"
fr_wait 10 "web restarted" fr_grep_log web2 "connected (session"
metric() { curl -s "http://127.0.0.1:$HPORT/metrics" | awk -v n="$1" '$1 == n {print $2}'; }
cached() { [ "$(metric fr_cache_topics)" = "$1" ]; }
# A retained marker the cache keeps: once it is counted, everything before it was too.
n0=$(metric fr_cache_topics)
mosquitto_pub -p "$BPORT" -r -q 1 -t fr/home1/ctl/m0/status -m online
fr_wait 10 "marker 0 cached" cached $((n0 + 1))
before=$(metric fr_mqtt_messages_total)
for i in 1 2 3 4 5; do mosquitto_pub -p "$BPORT" -q 1 -t fr/home1/stale/x -m "$i"; done
mosquitto_pub -p "$BPORT" -r -q 1 -t fr/home1/ctl/m1/status -m online
fr_wait 10 "marker 1 cached" cached $((n0 + 2))
after=$(metric fr_mqtt_messages_total)
[ "$after" = $((before + 1)) ] ||
	fr_fail "after a restart frAroundWeb received $((after - before - 1)) messages for the old process's subscription"
fr_ok "a restarted frAroundWeb starts a clean session: the old process's subscriptions are gone"
fr_stop web2 TERM
