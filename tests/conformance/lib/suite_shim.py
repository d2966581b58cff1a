"""02-shim: docs/shim.md from the outside -- every op and error code, ids, framing, limits, the
HTTP endpoints, the users file and revocations (fr-admin while running) -- with raw sockets
(TCP and the unix socket), curl and bridge-php (bridge-php/README.md); #11 items 1, 8, 9, 10."""
import json
import os
import re
import signal
import socket
import stat
import subprocess
import time

from conf import (D, HOME, HOME_V, PORT, SRC, USER, Fail, Mq, Shim, Suite, System, cmd_topic, deadline, expect, gates,
                  http_get, http_raw, is_ms, password, run, shim_request, short, uid, wait_until)

s = Suite("02-shim")
S = System.with_ctls("lab", "attic")
T = "fr/%s" % HOME
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
S.admin("add-home", "other")               # a home nobody here is granted
SH = Shim()


def err(line):
    return (line.get("error") or {}).get("code") if line.get("ok") is False else None


def expect_error(lines, code, what):
    f = lines[-1]
    expect(f.get("ok") is False and err(f) == code and isinstance(f["error"].get("message"), str),
           "%s: want error %s, got %s" % (what, code, short(f)))
    return f


def php(*argv, token=None, address=None, timeout=40):
    r = run(["php", os.path.join(SRC, "tests/conformance/lib/bridge.php"), argv[0],
             address or "tcp://127.0.0.1:%d" % PORT["shim"], token if token is not None else password()]
            + [str(a) for a in argv[1:]], timeout, env={"FR_SRC": SRC})
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise Fail("bridge.php %s: rc %d out %r err %r" % (argv[0], r.returncode, r.stdout[-300:], r.stderr[-300:]))


# ---------------------------------------------------------------------------- framing, auth

@s.check("shim.ping", "{\"id\":2,\"op\":\"ping\"} -> {\"id\":2,\"ok\":true,\"time\":<ms>} (no auth needed)")
def _():
    sh = Shim(auth=False)
    r = sh.call({"id": 2, "op": "ping"})[-1]
    sh.close()
    expect(r.get("ok") is True and r.get("id") == 2 and is_ms(r.get("time")), short(r))
    return short(r)


@s.check("shim.auth", "auth -> {\"id\":1,\"ok\":true,\"user\":\"alice\",\"homes\":[\"home1\"]}")
def _():
    r = SH.auth_reply
    expect(r.get("user") == USER and r.get("homes") == [HOME], short(r))
    return short(r)


@s.check("shim.auth.required", "all but auth and ping require a prior successful auth on the connection -> error auth")
def _():
    sh = Shim(auth=False)
    out = []
    for op in ({"op": "get", "topic": T + "/status"}, {"op": "list"}, {"op": "audit"},
               {"op": "subscribe", "filter": T + "/#"}, {"op": "publish", "topic": T + "/display", "payload": "x"},
               {"op": "request", "home": HOME, "ctl": "lab", "action": "ping"}):
        expect_error(sh.call(op), "auth", op["op"])
        out.append(op["op"])
    sh.close()
    return "auth error for " + ",".join(out)


@s.check("shim.auth.retry", "A wrong token -> error auth (and the connection stays open for a retry)")
def _():
    sh = Shim(auth=False)
    expect_error(sh.call({"op": "auth", "token": "wrong"}), "auth", "wrong token")
    r = sh.call({"op": "auth", "token": password()})[-1]
    sh.close()
    expect(r.get("ok") is True, "retry on the same connection: %s" % short(r))
    return "wrong, then right on the same connection"


@s.check("shim.auth.fifth-failure", "after the 5th failure the error is sent and the connection closed")
def _():
    sh = Shim(auth=False)
    for i in range(4):
        expect_error(sh.call({"op": "auth", "token": "wrong%d" % i}), "auth", "failure %d" % (i + 1))
    expect(sh.call({"op": "ping"})[-1].get("ok") is True, "open after 4 failures")
    expect_error(sh.call({"op": "auth", "token": "wrong5"}), "auth", "failure 5")
    closed = sh.closed_within(10)
    sh.close()
    expect(closed, "still open after the 5th failure")
    return "error auth, then closed"


@s.check("shim.bad_request", "bad_request (unparseable line, missing/bad field; id null if unreadable); garbage lines -> bad_request and the connection stays")
def _():
    sh = Shim(auth=False)
    out = []
    for raw, want_id in ((b"garbage\n", None), (b"{\"id\":7\n", None), (b"[1,2]\n", None),
                         (b'{"id":8}\n', 8), (b'{"id":9,"op":"no_such_op"}\n', 9), (b'{"id":10,"op":5}\n', 10),
                         (b'{"id":1.5,"op":"ping"}\n', None), (b'{"id":{"a":1},"op":"ping"}\n', None),
                         (b'{"id":true,"op":"ping"}\n', None), (b'{"op":"ping"}\n', None),
                         (b'{"id":11,"op":"ping"} x\n', None)):
        sh.send_raw(raw)
        _, p = sh.take(lambda p: "ok" in p, 10, "the answer to %r" % raw)
        expect(p.get("ok") is False and err(p) == "bad_request" and p.get("id") == want_id,
               "%r -> %s (want bad_request, id %r)" % (raw, short(p), want_id))
        out.append(raw.decode().strip()[:14])
    expect(sh.call({"op": "ping"})[-1].get("ok") is True, "connection closed after garbage")
    sh.close()
    return "bad_request for %d lines, connection kept" % len(out)


@s.check("shim.framing", "A line may end in CRLF; anything but blanks after the JSON object is bad_request; unknown fields are ignored")
def _():
    sh = Shim(auth=False)
    sh.send_raw(b'{"id":"crlf","op":"ping"}\r\n')
    a = sh.final("crlf")
    sh.send_raw(b'{"id":"blank","op":"ping"}  \t \n')
    b = sh.final("blank")
    sh.send_raw(b'{"id":"extra","op":"ping","zzz":{"x":[1]},"token2":null}\n')
    c = sh.final("extra")
    sh.close()
    expect(a.get("ok") is True and b.get("ok") is True and c.get("ok") is True, "%s %s %s" % (a, b, c))
    return "CRLF, trailing blanks and unknown fields accepted"


@s.check("shim.ids.strings", "Ids: a string of at most 128 bytes (echoed verbatim)")
def _():
    sh = Shim(auth=False)
    ok_id = "é" * 64                        # 128 bytes of UTF-8
    sh.send_raw(json.dumps({"id": ok_id, "op": "ping"}, ensure_ascii=False).encode() + b"\n")
    r = sh.final(ok_id)
    expect(r.get("ok") is True, short(r))
    long_id = "x" * 129
    sh.send_raw(json.dumps({"id": long_id, "op": "ping"}).encode() + b"\n")
    _, p = sh.take(lambda p: "ok" in p, 10)
    sh.close()
    expect(p.get("ok") is False and err(p) == "bad_request", "129-byte id: %s" % short(p))
    return "128 bytes echoed, 129 bad_request"


@s.check("i11.9.ids.integers", "#11 item 9: an integer id of magnitude at most 2^53 is echoed verbatim; 2^53+1 is bad_request")
def _():
    sh = Shim(auth=False)
    bad = []
    for n in ("8000000000000001", "9007199254740991", "9007199254740992", "-9007199254740992", "0", "42"):
        sh.send_raw(('{"id":%s,"op":"ping"}\n' % n).encode())
        raw, p = sh.take(lambda p: "ok" in p, 10)
        if not re.match(r'^\{"id":%s[,}]' % re.escape(n), raw) and not re.search(r'"id":%s[,}]' % re.escape(n), raw):
            bad.append("%s -> %s" % (n, raw[:60]))
    sh.send_raw(b'{"id":9007199254740993,"op":"ping"}\n')
    raw, p = sh.take(lambda p: "ok" in p, 10)
    sh.close()
    expect(not bad, "not verbatim: %s" % bad)
    expect(p.get("ok") is False and err(p) == "bad_request", "2^53+1 -> %s" % raw[:100])
    return "verbatim; 2^53+1 bad_request"


@s.check("shim.pipelining", "Several requests may be in flight on one connection; responses come in any order, matched by id")
def _():
    tag = uid("p")[:30].lower()
    sh = Shim()
    rid = sh.send({"op": "request", "home": HOME, "ctl": "lab", "action": "gate", "args": {"tag": tag}})
    gates.started(tag)
    p1 = sh.send({"op": "ping"})
    g1 = sh.send({"op": "get", "topic": T + "/status"})
    a = sh.final(p1)
    b = sh.final(g1)
    gates.release(tag)
    c = sh.final(rid, 30)
    sh.close()
    expect(a.get("ok") and b.get("ok") and c.get("ok") and c["result"]["status"] == "ok", "%s %s %s" % (a, b, short(c)))
    return "ping and get answered while a request was pending"


@s.check("shim.unix", "Transport: ... a unix socket (mode 0660)")
def _():
    path = os.path.join(D, "shim.sock")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    sh = Shim(unix=True)
    r = sh.call({"op": "get", "topic": T + "/status"})[-1]
    sh.close()
    expect(r.get("ok") is True and r.get("payload") == "online", short(r))
    expect(mode == 0o660, "mode %o" % mode)
    return "auth + get over %s, mode %o" % (path, mode)


# ---------------------------------------------------------------------------- publish, get, list

@s.check("shim.publish.cmd", "publish fr/<granted home>/ctl/<ctl>/cmd -> {ok:true}; A JSON payload is serialised compactly")
def _():
    c = Mq()
    c.sub(T + "/ctl/lab/cmd")
    c.sub(T + "/ctl/lab/result")
    rid = uid()
    body = {"id": rid, "action": "ping", "args": {}}
    r = SH.call({"op": "publish", "topic": T + "/ctl/lab/cmd", "payload": body, "qos": 1, "retain": False})[-1]
    expect(r.get("ok") is True, short(r))
    m = c.wait(T + "/ctl/lab/cmd", lambda m: rid.encode() in m.payload, 10)[0]
    res = c.wait(T + "/ctl/lab/result", lambda m: (m.json() or {}).get("id") == rid and
                 m.json().get("type") == "result", 20)[0]
    c.close()
    expect(m.text() == json.dumps(body, separators=(",", ":")), "payload %r" % m.text())
    return "broker got %s; result %s" % (m.text(), res.json()["status"])


@s.check("shim.publish.display", "publish fr/<granted home>/display (retained allowed) -> ok")
def _():
    text = uid("disp")
    r = SH.call({"op": "publish", "topic": T + "/display", "payload": text, "retain": True})[-1]
    expect(r.get("ok") is True, short(r))
    c = Mq()
    c.sub(T + "/display")
    m = c.wait(T + "/display", lambda m: m.retain, 10)[0]
    c.pub(T + "/display", "", retain=True)
    c.close()
    expect(m.text() == text, repr(m))
    return repr(m)


@s.check("shim.publish.forbidden", "Allowed topics: exactly what the broker ACL allows a user ... (retain must be false on cmd). Anything else -> forbidden")
def _():
    out = []
    for topic, retain in ((T + "/ctl/lab/cmd", True), (T + "/status", False), (T + "/ctl/lab/state/temp", False),
                          ("fr/other/display", False), ("fr/other/ctl/x/cmd", False), (T + "/reply/demo/x", False),
                          ("fr/+/display", False), ("elsewhere", False)):
        r = SH.call({"op": "publish", "topic": topic, "payload": '{"id":"forbidden-x","action":"ping"}', "retain": retain})
        expect_error(r, "forbidden", "%s retain=%s" % (topic, retain))
        out.append(topic)
    return "forbidden: " + ", ".join(out)


@s.check("i11.10.publish-ok-after-broker", "#11 item 10: a shim publish answers ok when the broker has the message (not when it is only queued)")
def _():
    pid = S.pid("mosquitto")
    text = uid("frozen")
    c = Mq()
    c.sub(T + "/display")
    os.kill(pid, signal.SIGSTOP)
    try:
        rid = SH.send({"op": "publish", "topic": T + "/display", "payload": text, "qos": 1})
        early = None
        try:
            early = SH.final(rid, 2.0)
        except Fail:
            pass
    finally:
        os.kill(pid, signal.SIGCONT)
    late = early or SH.final(rid, 30)
    c.wait(T + "/display", lambda m: m.text() == text, 20)
    c.close()
    expect(early is None or early.get("ok") is not True,
           "answered %s while the broker was stopped (SIGSTOP): it could not have the message" % short(early))
    return "no ok while the broker was stopped; then %s" % short(late)


@s.check("shim.get", "get -> {ok, topic, payload: JSON value if it parses as JSON else string, retained: true, received: <ms>}")
def _():
    a = SH.call({"op": "get", "topic": T + "/ctl/kitchen/state/temp"})[-1]
    b = SH.call({"op": "get", "topic": T + "/status"})[-1]
    for r in (a, b):
        expect(r.get("ok") is True and r.get("retained") is True and is_ms(r.get("received")), short(r))
    expect(a["topic"] == T + "/ctl/kitchen/state/temp" and isinstance(a["payload"], dict) and "value" in a["payload"], short(a))
    expect(b["payload"] == "online", short(b))
    return "%s; %s" % (short(a, 150), short(b, 120))


@s.check("shim.get.errors", "get: not_found (no cached value); Topic must be under a granted home (forbidden)")
def _():
    expect_error(SH.call({"op": "get", "topic": T + "/ctl/lab/state/nosuch"}), "not_found", "uncached topic")
    expect_error(SH.call({"op": "get", "topic": "fr/other/status"}), "forbidden", "other home")
    expect_error(SH.call({"op": "get", "topic": "nothing/here"}), "forbidden", "outside fr/")
    return "not_found, forbidden, forbidden"


@s.check("shim.list", "list -> {homes:[{home, status, controllers:[{id, status, info, state:{temp:{value, ts}}}]}]}; Only granted homes")
def _():
    r = SH.call({"op": "list"})[-1]
    r2 = SH.call({"op": "list", "home": HOME})[-1]
    expect(r.get("ok") is True and [h["home"] for h in r["homes"]] == [HOME], short(r))
    h = r["homes"][0]
    expect(h["status"] == "online", "status %r" % h["status"])
    cs = {c["id"]: c for c in h["controllers"]}
    expect(set(cs) >= {"kitchen", "hall", "garage", "lab"}, "controllers %s" % sorted(cs))
    k = cs["kitchen"]
    expect(k["status"] == "online" and k["info"].get("id") == "kitchen" and "value" in k["state"].get("temp", {})
           and is_ms(k["state"]["temp"].get("ts")), short(k))
    expect(r2.get("ok") is True and [x["home"] for x in r2["homes"]] == [HOME], short(r2))
    expect_error(SH.call({"op": "list", "home": "other"}), "forbidden", "list of a home not granted")
    return "%d controllers; kitchen %s" % (len(cs), short(k, 120))


@s.check("shim.list.empty-home", "a granted home with nothing cached still appears (status null)")
def _():
    S.add_user("lister", "demo")
    S.admin("add-home", "ghost")
    S.admin("grant", "lister", "ghost")
    sh = wait_until(lambda: _auth_or_none("lister"), 10, "lister to be known to the shim")
    r = sh.call({"op": "list"})[-1]
    sh.close()
    g = [h for h in r.get("homes", []) if h["home"] == "ghost"]
    expect(g and g[0]["status"] is None and g[0]["controllers"] == [], short(r, 300))
    return short(g[0])


def _auth_or_none(user):
    try:
        return Shim(user=user)
    except Fail:
        return None


# ---------------------------------------------------------------------------- request

@s.check("shim.request.stream", "request -> stream accepted/started (\"request\":\"<uuid>\", pid) -> final {ok:true, request, result: final result without \"type\"}")
def _():
    tag = uid("s")[:30].lower()
    lines = shim_request(SH, "lab", "rec", {"tag": tag})
    ev = [l.get("event") for l in lines[:-1]]
    f = lines[-1]
    expect(ev == ["accepted", "started"], "events %s" % ev)
    req = lines[0].get("request")
    expect(isinstance(req, str) and UUID.match(req) and all(l.get("request") == req for l in lines), short(lines))
    expect(isinstance(lines[1].get("pid"), int), "started without pid: %s" % short(lines[1]))
    res = f.get("result", {})
    expect(f.get("ok") is True and res.get("status") == "ok" and "type" not in res and res.get("stdout") == "rec %s\n" % tag
           and res.get("id") == req, short(f))
    return short(f, 250)


@s.check("shim.request.results", "\"ok\" says a result came; result.status says how the action went (failed, rejected, unknown_action, expired, timeout)")
def _():
    out = []
    for action, args, extra, want in (("fail", None, None, "failed"), ("word", {"w": "BAD!"}, None, "rejected"),
                                      ("nosuch", None, None, "unknown_action"), ("hang", None, None, "timeout"),
                                      ("rec", {"tag": "expired"}, {"deadline": time.time() - 10}, "expired")):
        f = shim_request(SH, "lab", action, args, extra=extra)[-1]
        expect(f.get("ok") is True and f.get("result", {}).get("status") == want, "%s: %s" % (action, short(f)))
        out.append("%s->%s" % (action, want))
    return " ".join(out)


@s.check("shim.request.unknown-ctl", "an unknown status is sent (frMhs then answers with result status \"offline\" if it does not know the controller)")
def _():
    f = shim_request(SH, "nosuchctl", "ping")[-1]
    expect(f.get("ok") is True and f["result"].get("status") == "offline" and UUID.match(f.get("request", "")), short(f))
    return short(f, 200)


@s.check("shim.request.offline", "error offline: answered at once, without sending, when the cache knows the controller is offline")
def _():
    mk = S.obs.mark()
    S.stop("attic")
    S.wait_status("attic", "offline", mk, 20)
    wait_until(lambda: (SH.call({"op": "get", "topic": T + "/ctl/attic/status"})[-1].get("payload") == "offline"), 10,
               "the shim's cache to know attic is offline")
    mk2 = S.obs.mark()
    f = expect_error(shim_request(SH, "attic", "ping"), "offline", "offline controller")
    marker = uid("m")
    Mq().pub(T + "/display", marker)
    S.obs.wait(T + "/display", lambda m: m.text() == marker, 10, mk2)
    sent = S.obs.since(mk2, T + "/ctl/attic/cmd")
    expect(not sent, "a request was sent: %r" % sent)
    return short(f)


@s.check("shim.request.forbidden", "request: forbidden (home not granted)")
def _():
    f = expect_error(shim_request(SH, "lab", "ping", home="other"), "forbidden", "other home")
    return short(f)


@s.check("shim.request.timeout", "error timeout (with \"request\": no result within \"wait\"; the request may still run)")
def _():
    tag = uid("w")[:30].lower()
    try:
        lines = shim_request(SH, "lab", "gate", {"tag": tag}, wait=1, tmo=20)
    finally:
        gates.release(tag)
    f = expect_error(lines, "timeout", "wait 1 on a held action")
    expect(UUID.match(f.get("request") or ""), "no request uuid: %s" % short(f))
    return short(f)


@s.check("shim.request.wait-bound", "\"wait\": <s, optional, default timeout+5 or 30, at most 3600> (more is a bad request)")
def _():
    expect_error(shim_request(SH, "lab", "ping", wait=3601), "bad_request", "wait 3601")
    expect_error(shim_request(SH, "lab", "ping", wait=-1), "bad_request", "wait -1")
    return "3601 and -1 refused"


@s.check("shim.request.mqtt", "publishes to fr/<home>/ctl/<ctl>/cmd with QoS 1, the reply topic fr/<home>/reply/<user>/web-<instance> as MQTT 5 response topic and as reply_to, the id as correlation data, \"progress\": true and the deadline now + max(wait - 2, wait / 2) s"
         + ("" if HOME_V == 5 else "; \"On MQTT 3.1.1 (no response topic, no correlation data) the same request goes out with only reply_to\""))
def _():
    mk = S.obs.mark()
    t0 = time.time()
    f = shim_request(SH, "lab", "ping", wait=30)[-1]
    t1 = time.time()
    m = S.obs.wait(T + "/ctl/lab/cmd", lambda m: (m.json() or {}).get("id") == f.get("request"), 10, mk)[0]
    rt = getattr(m.props, "ResponseTopic", None)
    body = m.json() or {}
    want = "%s/reply/%s/web-demo" % (T, USER)
    want_rt, want_corr = (want, f["request"].encode()) if HOME_V == 5 else (None, None)
    expect(m.qos == 1 and not m.retain and rt == want_rt and body.get("reply_to") == want
           and m.corr() == want_corr and body.get("progress") is True and f.get("ok") is True,
           "%r rt=%r corr=%r body=%r final %s" % (m, rt, m.corr(), body, short(f)))
    d = body.get("deadline")
    expect(isinstance(d, (int, float)) and t0 + 28 - 0.5 <= d <= t1 + 28 + 0.5, "deadline %r for wait 30 sent between %.1f and %.1f" % (d, t0, t1))
    return "%r rt %s" % (m, rt)


@s.check("shim.too_many", "max_inflight per client (default 64; pending requests plus active subscriptions) -> too_many")
def _():
    sh = Shim()
    subs = []
    for i in range(64):
        r = sh.send({"op": "subscribe", "filter": T + "/ctl/lab/state/s%d" % i})
        subs.append(r)
    for r in subs:
        sh.take(lambda p, r=r: p.get("id") == r and p.get("event") == "subscribed", 10, "subscribed %s" % r)
    a = sh.call({"op": "request", "home": HOME, "ctl": "lab", "action": "ping"})
    b = sh.call({"op": "subscribe", "filter": T + "/status"})
    sh.close()
    expect_error(a, "too_many", "65th (request)")
    expect_error(b, "too_many", "65th (subscription)")
    return "64 subscriptions held; request and subscription 65 too_many"


# ---------------------------------------------------------------------------- subscribe

@s.check("shim.subscribe", "subscribe -> {event:subscribed} then messages; Retained messages come with \"retained\":true when the subscription starts")
def _():
    sh = Shim()
    rid = sh.send({"op": "subscribe", "filter": T + "/ctl/kitchen/state/#"})
    sh.take(lambda p: p.get("id") == rid and p.get("event") == "subscribed", 10)
    got = {}
    for _ in range(2):
        _, p = sh.take(lambda p: p.get("id") == rid and p.get("event") == "message", 10)
        got[p["topic"]] = p
    u = sh.send({"op": "unsubscribe", "sub": rid})
    end1 = sh.final(rid)
    end2 = sh.final(u)
    sh.close()
    expect(all(p.get("retained") is True and isinstance(p.get("payload"), dict) for p in got.values()), short(got))
    expect(end1.get("ok") is True and end1.get("ended") == "unsubscribed" and end2.get("ok") is True, "%s %s" % (end1, end2))
    return "retained %s; ended %s" % (sorted(got), short(end1))


@s.check("i11.8.subscribe.live-once", "#11 item 8: a live change comes once, with \"retained\":false (repeats only at subscription start)")
def _():
    sh = Shim()
    lamp = T + "/ctl/kitchen/state/lamp"
    rid = sh.send({"op": "subscribe", "filter": lamp})
    rid2 = sh.send({"op": "subscribe", "filter": T + "/display"})
    sh.take(lambda p: p.get("id") == rid and p.get("event") == "subscribed", 10)
    sh.take(lambda p: p.get("id") == rid2 and p.get("event") == "subscribed", 10)
    sh.take(lambda p: p.get("id") == rid and p.get("event") == "message", 10, "the retained lamp state")
    cur = S.obs.last(lamp).json()["value"]
    new = "off" if cur == "on" else "on"
    mk = S.obs.mark()
    f = shim_request(SH, "kitchen", "lamp", {"state": new})[-1]
    expect(f.get("ok") is True, short(f))
    S.obs.wait(lamp, lambda m: m.json()["value"] == new, 15, mk)
    # frAroundWeb gets the broker's messages in order: a display marker after the change
    marker = uid("marker")
    Mq().pub(T + "/display", marker)
    sh.take(lambda p: p.get("id") == rid2 and p.get("payload") == marker, 15, "the display marker")
    live = [p for _, p in sh.lines if p.get("id") == rid and p.get("event") == "message"]
    sh.close()
    expect(len(live) == 1 and live[0].get("retained") is False and live[0]["payload"]["value"] == new,
           "%d message(s) for one change: %s" % (len(live), short(live)))
    return short(live[0])


@s.check("shim.payload-json-or-string", "payload: <JSON value if the payload parses as JSON, else string> (a text that only starts like JSON is a string)")
def _():
    sh = Shim()
    rid = sh.send({"op": "subscribe", "filter": T + "/display"})
    sh.take(lambda p: p.get("id") == rid and p.get("event") == "subscribed", 10)
    cases = [("42", 42), ('{"a":1}', {"a": 1}), ("plain text", "plain text"), ("0-zzz", "0-zzz"),
             ("12 apples", "12 apples"), ("true story", "true story"), ('{"a":1} trailing', '{"a":1} trailing'),
             ("[1,2", "[1,2")]
    c = Mq()
    for text, _ in cases:
        c.pub(T + "/display", text)
    c.close()
    got = []
    for _ in cases:
        _, p = sh.take(lambda p: p.get("id") == rid and p.get("event") == "message" and not p.get("retained"), 10)
        got.append(p["payload"])
    sh.close()
    bad = ["%r -> %r" % (t, g) for (t, want), g in zip(cases, got) if g != want or type(g) is not type(want)]
    expect(not bad, "; ".join(bad))
    return "numbers/objects as JSON, other texts as strings"


@s.check("shim.unsubscribe.unknown", "unsubscribe: an unknown \"sub\" -> not_found")
def _():
    f = expect_error(SH.call({"op": "unsubscribe", "sub": 987654}), "not_found", "unknown sub")
    return short(f)


@s.check("shim.subscribe.forbidden", "The filter must be within a granted home (fr/<home>/...; no '#' or '+' at the home level; a valid MQTT filter), else forbidden")
def _():
    out = []
    for flt in ("fr/other/#", "fr/#", "fr/+/status", "#", "fr/%s/a#" % HOME, "fr/%s/#/x" % HOME, "x/%s/#" % HOME):
        expect_error(SH.call({"op": "subscribe", "filter": flt}), "forbidden", flt)
        out.append(flt)
    return "forbidden: " + " ".join(out)


# ---------------------------------------------------------------------------- audit

def audit_lines():
    with open(os.path.join(D, "audit.log")) as f:
        return [json.loads(x) for x in f if x.strip()]


@s.check("shim.audit", "audit -> records newest first; a user sees only their own records; audit record fields")
def _():
    t1 = shim_request(SH, "lab", "rec", {"tag": "audit-a"})[-1]["request"]
    t2 = shim_request(SH, "lab", "fail")[-1]["request"]
    r = SH.call({"op": "audit", "limit": 2})[-1]
    recs = r.get("records", [])
    expect(r.get("ok") is True and [x.get("request") for x in recs] == [t2, t1], short(r, 400))
    a = recs[1]
    keys = {"time", "user", "path", "home", "ctl", "action", "args", "request", "status", "duration_ms"}
    expect(keys <= set(a) and a["user"] == USER and a["path"] == "shim" and a["status"] == "ok" and
           a["args"] == {"tag": "audit-a"} and is_ms(a["time"]) and recs[0]["status"] == "failed", short(a))
    S.add_user("auditor", HOME)
    sh = wait_until(lambda: _auth_or_none("auditor"), 10, "auditor known")
    other = sh.call({"op": "audit", "limit": 50})[-1]
    sh.close()
    expect(other.get("ok") is True and not [x for x in other["records"] if x.get("user") != "auditor"],
           "another user's audit shows: %s" % short(other))
    in_file = [x for x in audit_lines() if x.get("request") == t1]
    expect(len(in_file) == 1 and keys <= set(in_file[0]), "audit_file: %s" % short(in_file))
    return short(a, 250)


@s.check("shim.audit.client-gone", "appends an audit record when a sent request ends, also when the shim client has gone meanwhile")
def _():
    tag = uid("g")[:30].lower()
    sh = Shim()
    rid = sh.send({"op": "request", "home": HOME, "ctl": "lab", "action": "gate", "args": {"tag": tag}, "wait": 30})
    _, acc = sh.take(lambda p: p.get("id") == rid and p.get("event") == "accepted", 10)
    gates.started(tag)
    sh.close()
    gates.release(tag)
    req = acc["request"]
    rec = wait_until(lambda: [x for x in audit_lines() if x.get("request") == req], 20, "the audit record of %s" % req)
    expect(rec[0]["status"] == "ok", short(rec))
    return short(rec[0], 200)


@s.check("shim.audit.refused", "Requests refused before sending are not audited")
def _():
    n = len(audit_lines())
    expect_error(shim_request(SH, "lab", "ping", home="other"), "forbidden", "forbidden request")
    expect_error(shim_request(SH, "lab", "ping", wait=5000), "bad_request", "bad request")
    SH.call({"op": "ping"})
    time.sleep(0.3)
    new = audit_lines()[n:]
    expect(not new, "audited: %s" % short(new))
    return "no record"


# ---------------------------------------------------------------------------- limits

def line_limit(sh, limit):
    """A line of exactly limit bytes (newline included) is served; one byte more is too_long
    (id null), then the connection is closed."""
    pad = limit - len(b'{"id":"edge","op":"ping","pad":""}\n')
    sh.send_raw(b'{"id":"edge","op":"ping","pad":"' + b"x" * pad + b'"}\n')
    edge = sh.final("edge")
    expect(edge.get("ok") is True, "a line of exactly %d bytes: %s" % (limit, short(edge)))
    sh.send_raw(b'{"id":"long","op":"ping","pad":"' + b"x" * (pad + 1) + b'"}\n')
    _, p = sh.take(lambda p: "ok" in p, 10, "too_long")
    closed = sh.closed_within(10)
    sh.close()
    expect(p.get("ok") is False and err(p) == "too_long" and p.get("id") is None, "%d + 1 bytes: %s" % (limit, short(p)))
    expect(closed, "connection not closed after too_long (%d + 1 bytes)" % limit)


@s.check("shim.too_long", "a line over max_line (default 65536, newline included) -> error too_long (id null) then the connection is closed; before its auth succeeds a connection's \"lines may be at most 4096 bytes\"")
def _():
    line_limit(Shim(), 65536)
    line_limit(Shim(auth=False), 4096)
    return "authenticated: 65536 ok, 65537 too_long, closed; pending: 4096 ok, 4097 too_long, closed"


@s.check("shim.max_outq", "a client over max_outq (does not read; default 1 MiB) is disconnected")
def _():
    s2 = socket.socket()
    # a small receive window keeps the kernel from buffering what frAroundWeb must queue itself
    s2.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s2.connect(("127.0.0.1", PORT["shim"]))
    s2.sendall(json.dumps({"id": 1, "op": "auth", "token": password()}).encode() + b"\n")
    s2.sendall(json.dumps({"id": 2, "op": "subscribe", "filter": T + "/display"}).encode() + b"\n")
    time.sleep(0.5)

    def outq_cuts():
        m = re.search(r'(?m)^fr_shim_disconnects_total\{reason="outq"\} (\d+)', http_get(PORT["metrics"], "/metrics")[2])
        return int(m.group(1)) if m else -1
    cuts = outq_cuts()
    c = Mq()
    big = "z" * 200000
    for i in range(20):                  # 4 MB, four times max_outq
        c.pub(T + "/display", "x%d-%s" % (i, big))
    c.close()
    # The client reads only once frAroundWeb has cut it off: read earlier and it drains the
    # queue as slowly as a loaded frAroundWeb fills it (seen under ASan), and nothing is over.
    wait_until(lambda: outq_cuts() > cuts, 30, "frAroundWeb to count a disconnect for max_outq")
    # now read: the server must have closed the connection (EOF after what it had sent)
    s2.settimeout(20)
    total, eof = 0, False
    end = time.monotonic() + 20
    while time.monotonic() < end:
        try:
            d = s2.recv(1 << 20)
        except ConnectionResetError:
            eof = True
            break
        except socket.timeout:
            break
        if not d:
            eof = True
            break
        total += len(d)
    s2.close()
    expect(eof and total < 4000000, "read %d bytes, closed=%s" % (total, eof))
    return "disconnected after %d bytes" % total


@s.check("shim.max_clients", "max_clients (default 1024 authenticated clients, TCP and unix together; an auth beyond it -> error too_many, then the connection is closed)")
def _():
    def clients():
        m = re.search(r"(?m)^fr_shim_clients (\d+)", http_get(PORT["metrics"], "/metrics")[2])
        return int(m.group(1)) if m else -1
    wait_until(lambda: clients() == 1, 20, "fr_shim_clients 1 (only this suite's connection)")
    socks = []
    auth = (json.dumps({"id": 1, "op": "auth", "token": password()}) + "\n").encode()
    try:
        # one at a time: a connection is pending (budget 64 per peer) until its auth succeeds
        for i in range(1024 - 2):               # SH is one, the unix socket's is the last
            x = socket.create_connection(("127.0.0.1", PORT["shim"]), timeout=10)
            socks.append(x)
            x.sendall(auth)
            expect(b'"ok":true' in x.recv(4096), "auth of client %d refused" % (i + 2))
        u = Shim(unix=True)                     # client 1024, on the unix socket
        served = u.call({"op": "ping"})[-1].get("ok") is True
        extra = Shim(auth=False)
        p = extra.call({"op": "auth", "token": password()})[-1]
        closed = extra.closed_within(10)
        extra.close()
        u.close()
    finally:
        for x in socks:
            x.close()
    expect(served, "client 1024 (unix socket) not served")
    expect(p.get("ok") is False and err(p) == "too_many" and closed, "auth 1025: %s, closed %s" % (short(p), closed))
    wait_until(lambda: clients() == 1, 20, "fr_shim_clients back to 1")
    wait_until(lambda: Shim().call({"op": "ping"})[-1].get("ok"), 20, "a new client served again")
    return "1024 authenticated (TCP and unix), auth 1025 -> too_many, closed"


# ---------------------------------------------------------------------------- HTTP

@s.check("http.healthz-readyz", "/healthz -> 200 {\"status\":\"ok\",\"broker\":\"connected\",\"uptime_s\":N}; /readyz -> 200 (curl)")
def _():
    r = run(["curl", "-s", "-0", "-w", "\\n%{http_code}", "http://127.0.0.1:%d/healthz" % PORT["metrics"]])
    body, code = r.stdout.rsplit("\n", 1)
    j = json.loads(body)
    expect(code == "200" and j.get("status") == "ok" and j.get("broker") == "connected" and isinstance(j.get("uptime_s"), int), r.stdout)
    st, _, _ = http_get(PORT["metrics"], "/readyz")
    expect(st == 200, "readyz %d" % st)
    return "%s; readyz 200" % body


METRICS = ("fr_shim_connections_total", "fr_shim_clients", "fr_shim_requests_total{op", "fr_shim_errors_total{code",
           "fr_shim_disconnects_total{reason", "fr_relay_requests_total{status", "fr_cache_topics",
           "fr_mqtt_connected", "fr_mqtt_messages_total")


@s.check("http.metrics", "/metrics -> Prometheus text format with the listed metrics")
def _():
    st, head, body = http_get(PORT["metrics"], "/metrics")
    missing = [m for m in METRICS if m not in body]
    expect(st == 200 and not missing, "status %d, missing %s" % (st, missing))
    expect(re.search(r"(?m)^fr_mqtt_connected 1$", body) and "text/plain" in head.lower(), "fr_mqtt_connected / content type: %s" % head)
    bad = [l for l in body.splitlines() if l and not l.startswith("#") and
           not re.match(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.eE+-]+$", l)]
    expect(not bad, "not Prometheus text: %s" % bad[:3])
    return "%d samples" % len([l for l in body.splitlines() if l and not l.startswith("#")])


@s.check("http.other", "HTTP/1.0, GET, one request per connection: other methods and paths are refused")
def _():
    st, _, _ = http_get(PORT["metrics"], "/nosuch")
    code, _, _ = http_raw(PORT["metrics"], b"POST /healthz HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
    expect(st == 404 and 400 <= code < 500, "/nosuch %d, POST %d" % (st, code))
    return "/nosuch %d, POST %d" % (st, code)


@s.check("http.broker-down", "/readyz -> 503 while the broker is disconnected; /healthz 200 with \"broker\":\"disconnected\"")
def _():
    S.stop("mosquitto")
    try:
        wait_until(lambda: http_get(PORT["metrics"], "/readyz")[0] == 503, 30, "readyz 503")
        st, _, body = http_get(PORT["metrics"], "/healthz")
        expect(st == 200 and json.loads(body).get("broker") == "disconnected", "healthz %d %s" % (st, body))
        _, _, m = http_get(PORT["metrics"], "/metrics")
        expect(re.search(r"(?m)^fr_mqtt_connected 0$", m), "fr_mqtt_connected not 0")
    finally:
        S.start("mosquitto")
    wait_until(lambda: http_get(PORT["metrics"], "/readyz")[0] == 200, 30, "readyz 200 again")
    return "503 while down, healthz %s; 200 again" % body


@s.check("shim.request.broker-down", "a request sent while frAroundWeb has no broker connection is not lost: it gets a final line within \"wait\" (the result, or error offline/timeout) -- with the broker down, and with the broker back before frAroundWeb reconnected")
def _():
    tags = [uid("bd")[:30].lower() for _ in range(2)]
    S.stop("mosquitto")
    try:
        wait_until(lambda: http_get(PORT["metrics"], "/readyz")[0] == 503, 30, "readyz 503")
        r1 = SH.send({"op": "request", "home": HOME, "ctl": "lab", "action": "rec", "args": {"tag": tags[0]}, "wait": 8})
    finally:
        S.start("mosquitto")
    # the broker runs again; frAroundWeb reconnects after its backoff
    window = http_get(PORT["metrics"], "/readyz")[0] == 503
    r2 = SH.send({"op": "request", "home": HOME, "ctl": "lab", "action": "rec", "args": {"tag": tags[1]}, "wait": 8})
    out = []
    left = deadline(20)
    for rid, what in ((r1, "broker down"), (r2, "broker back, frAroundWeb %s" % ("not yet reconnected" if window else "already reconnected"))):
        try:
            f = SH.final(rid, left())
            out.append("%s: %s" % (what, short(f.get("result", {}).get("status") or f.get("error"), 80)))
        except Fail as e:
            out.append("%s: NO FINAL LINE (%s)" % (what, e))
    expect(not [o for o in out if "NO FINAL LINE" in o], "; ".join(out))
    return "; ".join(out)


# ---------------------------------------------------------------------------- users, revocations

@s.check("users.revoke-applies", "changed homes apply at once (fr-admin revoke; the user's open connection is forbidden the home)")
def _():
    S.admin("add-home", "ghost2")
    S.add_user("bea", "%s,ghost2" % HOME)
    sh = wait_until(lambda: _auth_or_none("bea"), 10, "bea known")
    expect(sh.call({"op": "request", "home": HOME, "ctl": "lab", "action": "ping"})[-1].get("ok") is True, "before")
    S.admin("revoke", "bea", HOME)
    r = wait_until(lambda: (lambda f: f if err(f) == "forbidden" else None)(
        sh.call({"op": "request", "home": HOME, "ctl": "lab", "action": "ping"})[-1]), 10, "forbidden after revoke")
    sh.close()
    return short(r)


@s.check("users.removed-disconnected", "a client whose token is no longer in the users file is disconnected (fr-admin remove-user)")
def _():
    S.add_user("fred", HOME)
    sh = wait_until(lambda: _auth_or_none("fred"), 10, "fred known")
    S.admin("remove-user", "fred")
    closed = sh.closed_within(10)
    sh.close()
    expect(closed, "fred's connection still open 10 s after remove-user")
    return "closed"


@s.check("i11.1.revoke-last-home", "#11 item 1: fr-admin revoke of a user's last home takes effect in the shim, and later user changes still reach it")
def _():
    S.add_user("alice", HOME)
    sh = wait_until(lambda: _auth_or_none("alice"), 10, "alice known")
    try:
        return revoke_last_home(sh)
    finally:
        S.admin("grant", "alice", "other")      # a valid users file again for the checks after


def revoke_last_home(sh):
    r = S.admin("revoke", "alice", HOME)
    claim = r.stdout + r.stderr
    try:
        f = wait_until(lambda: (lambda f: f if f.get("ok") is not True else None)(
            sh.call({"op": "request", "home": HOME, "ctl": "lab", "action": "ping"})[-1]) if not sh.eof else {"closed": True},
            10, "alice's request to be refused after the revoke")
    except Fail as e:
        raise Fail("%s (fr-admin said: %s)" % (e, claim.strip()[:200]))
    finally:
        sh.close()
    S.add_user("carol", HOME)
    c = wait_until(lambda: _auth_or_none("carol"), 10, "carol (added after the revoke) known to the shim")
    c.close()
    return "alice refused (%s); carol added later is known" % short(f, 120)


@s.check("i11.1.add-user-no-homes", "#11 item 1: fr-admin add-user without --homes (its synopsis allows it) does not stop later changes reaching the shim")
def _():
    S.add_user("dave")
    try:
        return add_user_no_homes()
    finally:
        S.admin("grant", "dave", "other")


def add_user_no_homes():
    S.add_user("erin", HOME)
    e = wait_until(lambda: _auth_or_none("erin"), 10, "erin (added after dave without homes) known to the shim")
    e.close()
    S.admin("grant", "dave", HOME)
    d = wait_until(lambda: _auth_or_none("dave"), 10, "dave known after grant")
    f = d.call({"op": "request", "home": HOME, "ctl": "lab", "action": "ping"})[-1]
    d.close()
    expect(f.get("ok") is True, short(f))
    return "erin known; dave granted works"


@s.check("users.broker-revoke", "docs/broker.md: `fr-admin revoke alice home1` takes effect on alice's open (MQTT) connections too")
def _():
    S.add_user("gina", HOME)
    c = Mq(user="gina")
    c.sub(T + "/display")
    m1 = uid("before")
    Mq().pub(T + "/display", m1)
    c.wait(T + "/display", lambda m: m.text() == m1, 10)
    S.admin("revoke", "gina", HOME)
    m2 = uid("after")
    mk = S.obs.mark()
    Mq().pub(T + "/display", m2)
    S.obs.wait(T + "/display", lambda m: m.text() == m2, 10, mk)
    tag = uid("r")[:30].lower()
    c.pub(cmd_topic("lab"), {"id": uid(), "action": "rec", "args": {"tag": tag}})
    marker = uid("m")
    Mq().pub(T + "/display", marker)
    S.obs.wait(T + "/display", lambda m: m.text() == marker, 10, mk)
    time.sleep(0.5)
    got = c.since(0, T + "/display", lambda m: m.text() == m2)
    c.close()
    expect(not got and gates.runs(tag) == 0, "after revoke gina still read %d / ran %d" % (len(got), gates.runs(tag)))
    return "no delivery, no command after revoke"


# ---------------------------------------------------------------------------- bridge-php

@s.check("php.request", "bridge-php: request() returns the real Result (status, stdout, requestId, durationMs), progress callback gets accepted, started")
def _():
    o = php("request", HOME, "lab", "rec", json.dumps({"tag": "php-ok"}))
    expect(o.get("status") == "ok" and o.get("isOk") is True and o.get("stdout") == "rec php-ok\n" and
           UUID.match(o.get("requestId") or "") and isinstance(o.get("durationMs"), int) and
           o.get("events") == ["accepted", "started"], short(o))
    return short(o, 200)


@s.check("php.results", "bridge-php: request() returns a Result for every final status (failed with exitCode; offline with raw ok false)")
def _():
    a = php("request", HOME, "lab", "fail", "{}")
    expect(a.get("status") == "failed" and a.get("exitCode") == 4 and a.get("isOk") is False and a.get("reason"), short(a))
    mk = S.obs.mark()
    S.stop("attic")
    S.wait_status("attic", "offline", mk, 20)
    wait_until(lambda: (SH.call({"op": "get", "topic": T + "/ctl/attic/status"})[-1].get("payload") == "offline"), 10,
               "the shim's cache to know attic is offline")
    b = php("request", HOME, "attic", "ping", "{}")
    expect(b.get("status") == "offline" and (b.get("raw") or {}).get("ok") is False, short(b))
    return "failed exit 4; offline raw ok false"


@s.check("php.exceptions", "bridge-php: TimeoutException (shim timeout, getRequestId), ForbiddenException, NotFoundException, AuthException")
def _():
    tag = uid("pw")[:30].lower()
    try:
        t = php("request", HOME, "lab", "gate", json.dumps({"tag": tag}), "-", "1")
    finally:
        gates.release(tag)
    expect(t.get("exception", "").endswith("TimeoutException") and t.get("shimCode") == "timeout" and
           UUID.match(t.get("requestId") or ""), short(t))
    f = php("request", "other", "lab", "ping", "{}")
    expect(f.get("exception", "").endswith("ForbiddenException") and f.get("shimCode") == "forbidden", short(f))
    n = php("get", T + "/ctl/lab/state/nosuch")
    expect(n.get("exception", "").endswith("NotFoundException"), short(n))
    a = php("auth", token="wrong-token")
    expect(a.get("exception", "").endswith("AuthException"), short(a))
    return "Timeout, Forbidden, NotFound, Auth"


@s.check("php.get-list-audit-ping", "bridge-php: get/getMessage, list, audit, ping, user(), homes() as the README's table says")
def _():
    g = php("get", T + "/ctl/kitchen/state/temp")
    expect(isinstance(g.get("value"), dict) and "value" in g["value"] and g["message"]["retained"] is True and
           g["message"]["topic"] == T + "/ctl/kitchen/state/temp", short(g))
    m = php("misc", HOME, address="unix://" + os.path.join(D, "shim.sock"))
    expect(is_ms(m.get("ping")) and m.get("user") == USER and m.get("homes") == [HOME], short(m))
    expect(m["list"] and m["list"][0]["home"] == HOME and any(c["id"] == "kitchen" for c in m["list"][0]["controllers"]),
           short(m["list"]))
    expect(isinstance(m.get("audit"), list) and len(m["audit"]) <= 3 and all(a.get("user") == USER for a in m["audit"]),
           short(m.get("audit")))
    return "ping %s user %s homes %s (unix socket)" % (m["ping"], m["user"], m["homes"])


@s.check("php.publish", "bridge-php: publish() display text and a cmd array (sent as JSON); other topics ForbiddenException")
def _():
    text = uid("php")
    mk = S.obs.mark()
    a = php("publish", T + "/display", text)
    rid = uid()
    b = php("publish", T + "/ctl/lab/cmd", json.dumps({"id": rid, "action": "ping"}))
    c = php("publish", T + "/status", "offline")
    expect(a.get("published") and b.get("published"), "%s %s" % (a, b))
    expect(c.get("exception", "").endswith("ForbiddenException"), short(c))
    S.obs.wait(T + "/display", lambda m: m.text() == text, 10, mk)
    S.obs.wait(T + "/ctl/lab/result", lambda m: (m.json() or {}).get("id") == rid and m.json().get("type") == "result", 20, mk)
    return "display and cmd published; status forbidden"


@s.check("i11.8.php-subscribe", "#11 item 8 with bridge-php: subscribe() gives the retained value first (retained true), then each live change once (retained false)")
def _():
    lamp = T + "/ctl/kitchen/state/lamp"
    p = subprocess.Popen(["php", os.path.join(SRC, "tests/conformance/lib/bridge.php"), "subscribe",
                          "tcp://127.0.0.1:%d" % PORT["shim"], password(), lamp, "5", "4"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, FR_SRC=SRC))
    try:
        line = p.stderr.readline()
        expect(line.strip() == "first", "no retained message: %r" % line)
        cur = S.obs.last(lamp).json()["value"]
        new = "off" if cur == "on" else "on"
        f = shim_request(SH, "kitchen", "lamp", {"state": new})[-1]
        expect(f.get("ok") is True, short(f))
        out, _ = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    o = json.loads(out.strip().splitlines()[-1])
    ms = o.get("messages", [])
    expect(ms and ms[0]["retained"] is True, "first: %s" % short(ms))
    live = ms[1:]
    expect(len(live) == 1 and live[0]["retained"] is False and live[0]["payload"]["value"] == new,
           "after the retained one: %s" % short(live))
    return "retained, then one live change"


@s.check("i11.14.php-readme", "#11 item 14: bridge-php/README.md's first example (`$fr->request(...)` and the output its comment shows) works against the demo, whose controllers have the actions of docs/frmhc.conf.example")
def _():
    doc = open(os.path.join(SRC, "bridge-php/README.md")).read()
    m = re.search(r"\$fr->request\((.*?)\);\s*\n\s*echo \$result->status, ' ', \$result->stdout;\s*// \"([^\"]*)\"", doc)
    expect(m, "no request() example with its output in bridge-php/README.md")
    call = m.group(1).replace("'home1'", "'%s'" % HOME)
    want = m.group(2).encode().decode("unicode_escape")
    o = php("readme", call)
    expect(o.get("printed") == want, "request(%s) printed %r, the README shows %r" % (call, o.get("printed", o), want))
    return "request(%s) printed %r" % (call, o["printed"])


s.run(S)
