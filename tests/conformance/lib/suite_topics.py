"""01-topics: docs/topics.md from the outside -- every row of the topic table, every status of a
final result that needs no restart, the reply routing order, progress, duplicates, display,
retained requests -- with python3-paho (MQTT 5 and 3.1.1), the mosquitto clients (-V 5 and
-V 311) and mqtt.js (ws, and wss through nginx)."""
import json
import os
import re
import signal
import subprocess
import time

from conf import (D, G, HOME, HOME_V, NA_RETAINED, NA_RT, PORT, RUN_USER, SRC, USER, W, Mq, Requester, Suite, System, cmd_topic,
                  dup_keys, expect, final_of, gates, is_ms, password, replies, run, shim_mqtt_version, short,
                  uid, wait_until)

s = Suite("01-topics")
S = System()
S.add_ctl("lab", actions=__import__("conf").LAB_ACTIONS + """,
  { name = "tree"; argv = ["/bin/sh", "-c", "sleep 30 & echo $! > @G@/tree-child; wait"]; timeout = 0.5; kill_grace = 0.2; }""")
S.add_ctl("attic")
S.wait_online(S.base_ctls + ["lab", "attic"], 60)
V5 = Requester(5)
V3 = Requester(4)
PW = password()
T = "fr/%s" % HOME


def fresh_retained(topic, timeout=10):
    """A new subscriber's retained message on topic."""
    c = Mq()
    try:
        c.sub(topic)
        return c.wait(topic, lambda m: m.retain, timeout)[0]
    finally:
        c.close()


def sync_point(req):
    """A request after which every earlier reply of frMhs has been published (one ordered
    connection): returns once its own final result is in."""
    req.run("lab", {"action": "ping", "progress": False})


def words():
    try:
        with open(os.path.join(G, "words")) as f:
            return f.read().split("\n")
    except FileNotFoundError:
        return []


def reason_ok(r):
    return isinstance(r.get("reason"), str) and r["reason"].strip() != ""


# ---------------------------------------------------------------------------- the topic table

@s.check("table.home-status.retained",
         "fr/<home>/status | frMhs | retained yes | QoS 1 | `online` / `offline` (plain text)")
def _():
    m = fresh_retained(T + "/status")
    expect(m.text() == "online" and m.qos == 1 and m.retain, repr(m))
    return repr(m)


@s.check("table.ctl-status.retained", "fr/<home>/ctl/<ctl>/status | frMhs | retained yes | QoS 1 | online/offline")
def _():
    out = []
    for c in ("kitchen", "lab"):
        m = fresh_retained("%s/ctl/%s/status" % (T, c))
        expect(m.text() == "online" and m.qos == 1 and m.retain, repr(m))
        out.append(repr(m))
    return "; ".join(out)


INFO_KEYS = {"id": str, "name": str, "address": str, "port": int, "online": bool, "since": int,
             "last_seen": int, "version": str, "proto": int, "boot": str, "actions": list, "sensors": list}


@s.check("table.info.shape", "fr/<home>/ctl/<ctl>/info | frMhs | retained | QoS 1 | controller description (fields of the example)")
def _():
    m = fresh_retained(T + "/ctl/lab/info")
    expect(m.qos == 1 and m.retain, repr(m))
    i = m.json()
    expect(isinstance(i, dict), "not a JSON object: %r" % m)
    for k, ty in INFO_KEYS.items():
        expect(isinstance(i.get(k), ty) and not (ty is int and isinstance(i.get(k), bool)),
               "%s: %r is not %s" % (k, i.get(k), ty.__name__))
    expect("offline_reason" in i and i["offline_reason"] is None, "offline_reason %r" % i.get("offline_reason"))
    expect(i["id"] == "lab" and i["name"] == "Conformance lab" and i["online"] is True, short(i))
    expect(i["address"] == "127.0.0.5" and 0 < i["port"] < 65536, "address %s port %s" % (i["address"], i["port"]))
    expect(is_ms(i["since"]) and is_ms(i["last_seen"]) and i["since"] <= i["last_seen"] + 1000,
           "since %s last_seen %s" % (i["since"], i["last_seen"]))
    expect(re.fullmatch(r"[0-9a-f]{32}", i["boot"]), "boot %r" % i["boot"])
    acts = {a["name"]: a for a in i["actions"]}
    expect(acts.get("word", {}).get("args") == [{"name": "w", "pattern": "[a-z0-9.]{1,16}"}],
           "word: %s" % short(acts.get("word")))
    expect(acts.get("opt", {}).get("args") == [{"name": "w", "pattern": "on|off|toggle", "default": "toggle"}],
           "opt: %s" % short(acts.get("opt")))
    expect(acts.get("gate", {}).get("timeout") == 60 and acts.get("hang", {}).get("timeout") == 0.5,
           "timeouts: gate %s hang %s" % (acts.get("gate", {}).get("timeout"), acts.get("hang", {}).get("timeout")))
    expect(i["sensors"] == [{"name": "temp", "interval": 5}], "sensors %s" % short(i["sensors"]))
    return short(i, 200)


@s.check("table.state", "fr/<home>/ctl/<ctl>/state/<sensor> | frMhs | retained | QoS 1 | {\"value\": <number or string>, \"ts\": <ms>}")
def _():
    c = Mq()
    try:
        c.sub(T + "/ctl/kitchen/state/+")
        ms = {m.topic.rsplit("/", 1)[1]: m for m in c.wait(T + "/ctl/kitchen/state/+", lambda m: m.retain, 10, count=2)}
    finally:
        c.close()
    for m in ms.values():
        expect(m.qos == 1 and m.retain, repr(m))
        j = m.json()
        expect(isinstance(j, dict) and set(j) >= {"value", "ts"} and is_ms(j["ts"]), repr(m))
    t = ms["temp"].json()["value"]
    expect(isinstance(t, (int, float)) and not isinstance(t, bool), "temp reads as a number but is %r" % (t,))
    expect(isinstance(ms["lamp"].json()["value"], str), "lamp value %r is not a string" % (ms["lamp"].json()["value"],))
    return "; ".join(repr(m) for m in ms.values())


@s.check("table.state+event.on-change",
         "state: Published when the value changes; event | not retained | QoS 0 | {\"kind\": \"state\", \"sensor\", \"value\", \"ts\"}, without `type`")
def _():
    cur = S.obs.last(T + "/ctl/kitchen/state/lamp").json()["value"]
    new = "off" if cur == "on" else "on"
    mk = S.obs.mark()
    r, _ = V5.run("kitchen", {"action": "lamp", "args": {"state": new}, "progress": False})
    expect(r["status"] == "ok", short(r))
    st = S.obs.wait(T + "/ctl/kitchen/state/lamp", lambda m: m.json()["value"] == new, 15, mk)[0]
    ev = S.obs.wait(T + "/ctl/kitchen/event", lambda m: (m.json() or {}).get("sensor") == "lamp", 15, mk)[0]
    expect(st.retain and st.qos == 1, "state live message: %r" % st)
    expect(not ev.retain and ev.qos == 0, "event: %r (want retain 0, QoS 0)" % ev)
    j = ev.json()
    expect(j.get("kind") == "state" and j.get("value") == new and is_ms(j.get("ts")) and "type" not in j, short(j))
    return "%r / %r" % (st, ev)


@s.check("table.reply-topic", "reply topic | frMhs | not retained | QoS 1 | `accepted`, `started`, final `result`")
def _():
    tag = uid("t")[:30].lower()
    r, rs = V5.run("lab", {"action": "rec", "args": {"tag": tag}})
    kinds = [x["type"] for x in rs]
    expect(kinds == ["accepted", "started", "result"], "replies %s" % kinds)
    for x in rs:
        m = x["_msg"]
        expect(m.qos == 1 and not m.retain, "%s: %r" % (x["type"], m))
    return "accepted, started, result; QoS 1, retain 0"


@s.check("table.result-default", "fr/<home>/ctl/<ctl>/result | frMhs | not retained | QoS 1 | default reply topic")
def _():
    c = Mq()
    try:
        c.sub(T + "/ctl/lab/result")
        rid = uid()
        c.pub(cmd_topic("lab"), {"id": rid, "action": "ping"})
        r, rs = final_of(c, T + "/ctl/lab/result", rid, 20)
    finally:
        c.close()
    for x in rs:
        expect(x["_msg"].qos == 1 and not x["_msg"].retain, repr(x["_msg"]))
    expect(r["status"] == "ok", short(r))
    return "%d replies on .../result, QoS 1, retain 0" % len(rs)


@s.check("table.display", "fr/<home>/display | users | may be retained | QoS 1 | UTF-8 text shown on the displays (the first 255 bytes are kept, less the bytes of a character that would be cut)")
def _():
    dev = os.path.join(D, "m5stack", "dev.1")
    text = "conformance " + uid("d")
    c = Mq()
    try:
        c.pub(T + "/display", text, qos=1, retain=False)
        wait_until(lambda: ("FR1 text=" + text) in open(dev, errors="replace").read(), 15,
                   "FR1 text=%s on the M5Stack line" % text)
        long = "x" * 250 + "ABCDEFGHIJ" + "y" * 40
        c.pub(T + "/display", long, qos=1, retain=True)
        want = "FR1 text=" + long[:255] + "\n"
        wait_until(lambda: want in open(dev, errors="replace").read(), 15, "the first 255 bytes on the M5Stack line")
        m = fresh_retained(T + "/display")
        expect(m.text() == long, "retained display %r" % m)
        c.pub(T + "/display", "", qos=1, retain=True)   # clear the retained text again
        # "less the bytes of a character that would be cut": bytes 255-256 are one character
        split = "z" * 254 + "\u00e9" + "tail"
        c.pub(T + "/display", split.encode(), qos=1)
        want = ("FR1 text=" + "z" * 254 + "\n").encode()
        wait_until(lambda: want in open(dev, "rb").read(), 15, "254 bytes (the 2-byte character at 255 left out) on the M5Stack line")
    finally:
        c.close()
    return "text, 255-byte cut and a cut before a split character shown on %s" % dev


@s.check("table.publishers.acl", "only frMhs publishes status/info/state (a user's publish there reaches nobody: docs/broker.md ACL)")
def _():
    c = Mq()
    try:
        mk = S.obs.mark()
        c.pub(T + "/status", "offline", qos=1, retain=False)
        c.pub(T + "/ctl/lab/state/temp", '{"value":-99,"ts":1}', qos=1)
        marker = uid("m")
        c.pub(T + "/display", marker, qos=1)
        S.obs.wait(T + "/display", lambda m: m.text() == marker, 10, mk)
        bad = S.obs.since(mk, T + "/status") + S.obs.since(mk, T + "/ctl/lab/state/temp",
                                                             lambda m: b"-99" in m.payload)
        expect(not bad, "a user's publish reached subscribers: %r" % bad)
    finally:
        c.close()
    return "the user's status/state publishes were dropped"


@s.check("table.home-status.birth",
         "`online` is published (retained) every time frMhs connects ... A clean stop publishes `offline` itself")
def _():
    mk = S.obs.mark()
    S.restart("frMhs")
    off = S.wait_status(None, "offline", mk, 20)
    on = S.obs.wait(T + "/status", lambda m: m.text() == "online" and m.t >= off.t, 30, mk)[0]
    expect(off.retain and off.qos == 1, "offline: %r" % off)
    expect(on.retain and on.qos == 1, "online: %r" % on)
    return "%r then %r" % (off, on)


@s.check("table.home-status.will",
         "the same topic is its MQTT last will with `offline`, so a crashed ... home server reads `offline`")
def _():
    mk = S.obs.mark()
    S.stop("frMhs", signal.SIGKILL)
    off = S.wait_status(None, "offline", mk, 20)
    expect(off.retain and off.qos == 1, repr(off))
    mk2 = S.obs.mark()
    S.start("frMhs")
    on = S.wait_status(None, "online", mk2, 30)
    return "%r after SIGKILL, then %r" % (off, on)


# ---------------------------------------------------------------------------- replies

@s.check("reply.rt-correlation", "1. the MQTT 5 response topic of the request, with its correlation data copied", v5=NA_RT)
def _():
    corr = b"\x00\xffbin-" + os.urandom(4)
    tag = uid("c")[:30].lower()
    r, rs = V5.run("lab", {"action": "rec", "args": {"tag": tag}}, corr=corr, rt_only=True)
    bad = [x["type"] for x in rs if x["_msg"].corr() != corr]
    expect(not bad, "replies without the correlation data: %s (%r)" % (bad, [x["_msg"].corr() for x in rs]))
    return "%d replies carried %r" % (len(rs), corr)


@s.check("reply.reply_to-v311", "2. else the request's `reply_to` (MQTT 3.1.1 clients)")
def _():
    tag = uid("c")[:30].lower()
    r, rs = V3.run("lab", {"action": "rec", "args": {"tag": tag}})
    expect([x["type"] for x in rs] == ["accepted", "started", "result"] and r["status"] == "ok",
           short([x["type"] for x in rs]) + " " + short(r))
    return "accepted, started, result on reply_to"


@s.check("reply.default-v5-and-v311", "3. else `fr/<home>/ctl/<ctl>/result` (MQTT 5 without response topic, 3.1.1 without reply_to)")
def _():
    out = []
    for v in (5, 4):
        c = Mq(v=v)
        try:
            c.sub(T + "/ctl/lab/result")
            rid = uid()
            c.pub(cmd_topic("lab"), {"id": rid, "action": "ping"})
            r, rs = final_of(c, T + "/ctl/lab/result", rid, 20)
            expect(r["status"] == "ok", short(r))
            out.append("v%d: %s" % (v, [x["type"] for x in rs]))
        finally:
            c.close()
    return "; ".join(out)


def only_preferred(publish, cl, topic, req):
    """publish(rid, other) sends request rid naming a second reply topic `other` in reply_to;
    its final result must come on topic (to cl; None: on `other`), and nothing of it on a less
    preferred topic (`other`, .../result)."""
    c = Mq()
    try:
        other = "fr/%s/reply/%s/%s" % (HOME, USER, uid("rt"))
        c.sub(other)
        c.sub(T + "/ctl/lab/result")
        cl, topic = cl or c, topic or other
        mk, mk1 = cl.mark(), c.mark()
        rid = uid()
        publish(rid, other)
        final_of(cl, topic, rid, 20, mk)
        sync_point(req)
        wrong = [m for m in c.since(mk1) if (m.json() or {}).get("id") == rid and m.topic != topic]
        expect(not wrong, "replies also went to a less preferred topic: %r" % wrong)
    finally:
        c.close()


@s.check("reply.order", "in this order of preference: response topic before reply_to ...", v5=NA_RT)
def _():
    only_preferred(lambda rid, other: V5.ask("lab", {"id": rid, "action": "ping", "reply_to": other}), V5.cl, V5.rt, V5)
    return "response topic only"


@s.check("reply.order-reply_to", "in this order of preference: ... reply_to before .../result (MQTT 3.1.1)")
def _():
    def publish(rid, other):
        c3 = Mq(v=4)
        c3.pub(cmd_topic("lab"), {"id": rid, "action": "ping", "reply_to": other})
        c3.close()
    only_preferred(publish, None, None, V3)
    return "reply_to only"


@s.check("progress.false", "`progress` `false` sends only the final result (response topic and reply_to)")
def _():
    out = []
    for req in (V5, V3):
        tag = uid("p")[:30].lower()
        mk = req.cl.mark()
        rid, rt = req.ask("lab", {"action": "rec", "args": {"tag": tag}, "progress": False})
        final_of(req.cl, rt, rid, 20, mk)
        sync_point(req)
        kinds = [x["type"] for x in replies(req.cl, rt, rid, mk)]
        expect(kinds == ["result"], "v%d got %s" % (req.v, kinds))
        out.append("v%d %s" % (req.v, kinds))
    return "; ".join(out)


@s.check("progress.default", "`progress` default `true`: `accepted`, `started`, exactly one final `result`, in order")
def _():
    tag = uid("p")[:30].lower()
    mk = V5.cl.mark()
    r, rs = V5.run("lab", {"action": "rec", "args": {"tag": tag}})
    sync_point(V5)
    rs = replies(V5.cl, V5.rt, r["id"], mk)
    kinds = [x["type"] for x in rs]
    expect(kinds == ["accepted", "started", "result"], "got %s" % kinds)
    a, st, res = rs
    expect(a["ctl"] == "lab" and is_ms(a["ts"]), "accepted %s" % short(a))
    expect(st["ctl"] == "lab" and isinstance(st["pid"], int) and st["pid"] > 0 and is_ms(st["ts"]), "started %s" % short(st))
    return "accepted %s; started pid %s" % (short(a, 100), st["pid"])


# ---------------------------------------------------------------------------- statuses

RESULT_KEYS = ("type", "id", "ctl", "action", "status", "exit_code", "signal", "duration_ms", "started",
               "stdout", "stderr", "stdout_truncated", "stderr_truncated", "ts")


@s.check("status.ok", "`ok`: the action exited with code 0 (all result fields of the example)")
def _():
    tag = uid("ok")[:30].lower()
    r, _ = V5.run("lab", {"action": "rec", "args": {"tag": tag}})
    missing = [k for k in RESULT_KEYS if k not in r]
    expect(not missing, "missing %s in %s" % (missing, short(r)))
    expect(r["status"] == "ok" and r["exit_code"] == 0 and r["signal"] is None and r["stdout"] == "rec %s\n" % tag
           and r["stderr"] == "" and r["stdout_truncated"] is False and r["stderr_truncated"] is False
           and r["action"] == "rec" and r["ctl"] == "lab", short(r))
    expect(isinstance(r["duration_ms"], int) and is_ms(r["started"]) and is_ms(r["ts"]) and r["started"] <= r["ts"], short(r))
    expect(gates.runs(tag) == 1, "ran %d times" % gates.runs(tag))
    return short(r, 250)


@s.check("status.failed.exit", "`failed`: it exited non-zero (`exit_code`); `reason` explains every status but ok")
def _():
    r, _ = V5.run("lab", {"action": "fail"})
    expect(r["status"] == "failed" and r["exit_code"] == 4 and r["stderr"] == "bad\n" and reason_ok(r), short(r))
    return short(r, 250)


@s.check("status.failed.signal", "`failed`: ... was killed by a signal (`signal`)")
def _():
    r, _ = V5.run("lab", {"action": "sig"})
    expect(r["status"] == "failed" and r.get("signal") not in (None, 0, "") and reason_ok(r), short(r))
    return "signal %r, reason %r" % (r["signal"], r.get("reason"))


@s.check("status.failed.cannot-start", "`failed`: ... could not be started")
def _():
    r, _ = V5.run("lab", {"action": "nostart"})
    expect(r["status"] == "failed" and reason_ok(r), short(r))
    return "reason %r" % r.get("reason")


@s.check("status.timeout", "`timeout`: it ran past its timeout; its whole process group was killed (SIGTERM, then SIGKILL)")
def _():
    r, _ = V5.run("lab", {"action": "tree"})
    expect(r["status"] == "timeout" and reason_ok(r), short(r))
    child = int(open(os.path.join(G, "tree-child")).read())
    wait_until(lambda: not S.alive(child), 10, "the action's background child %d to be killed" % child)
    return "duration %s ms, reason %r, child %d gone" % (r.get("duration_ms"), r.get("reason"), child)


def refused(req, body, status, **kw):
    """A request refused before it runs: only the final result, with a reason. Replies are
    matched by the correlation data (v5) so that an answer with another id still counts."""
    mk = req.cl.mark()
    body = dict(body)
    body.setdefault("id", uid())
    corr = ("refused-" + body["id"]).encode()
    rid, rt = req.ask("lab", body, corr=corr, **kw)
    # no correlation data from a home on 3.1.1: replies matched by id (docs/topics.md)
    mine = (lambda m: m.corr() == corr) if req.v == 5 and HOME_V == 5 else (lambda m: (m.json() or {}).get("id") == rid)
    req.cl.wait(rt, lambda m: mine(m) and (m.json() or {}).get("type") == "result", 20, mk,
                what="the final result of %s" % short(body, 120))
    sync_point(req)
    rs = [m.json() for m in req.cl.since(mk, rt, mine)]
    r = [x for x in rs if x.get("type") == "result"][0]
    kinds = [x.get("type") for x in rs]
    expect(r["status"] == status, "status %s, want %s: %s" % (r["status"], status, short(r)))
    expect(reason_ok(r), "no reason: %s" % short(r))
    expect(kinds == ["result"], "Requests refused before they run get only the final result; got %s" % kinds)
    return r


@s.check("status.rejected.args", "`rejected`: bad/missing/unknown argument; a rejected value never reaches the action")
def _():
    before = len(words())
    out = []
    for body in ({"action": "word", "args": {"w": "BAD!"}},          # does not match the pattern
                 {"action": "word"},                                 # required argument missing
                 {"action": "word", "args": {"w": "ok", "zz": "1"}},  # unknown argument
                 {"action": "word", "args": {"w": "abcdefghijklmnopq"}},  # 17 chars: pattern as a whole
                 {"action": "word", "args": {"w": {"a": 1}}}):       # not a string/number/boolean
        r = refused(V5, body, "rejected")
        out.append(r["reason"])
    expect(len(words()) == before, "a rejected value reached the action: %s" % words()[before:])
    return "; ".join(out)


def raw_refusal(payload, corr):
    """Publishes payload (a text) to lab's cmd with V5's reply topic; returns the first final
    result on it. The home on 3.1.1 sees no response topic and no correlation data: a JSON
    object then names the topic in reply_to too (the request profile), and the result of any
    other payload can only go to .../result (docs/topics.md, "Replies"), where it is the first
    final result after the publish (the checks send one at a time)."""
    mk = V5.cl.mark()
    if HOME_V == 5:
        V5.cl.pub(cmd_topic("lab"), payload, rt=V5.rt, corr=corr)
        return V5.cl.wait(V5.rt, lambda m: (m.json() or {}).get("type") == "result" and m.corr() == corr,
                          20, mk, what="a result for %r" % payload)[0].json()
    try:
        doc = json.loads(payload)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        doc["reply_to"] = V5.rt
        V5.cl.pub(cmd_topic("lab"), json.dumps(doc), rt=V5.rt, corr=corr)
        return V5.cl.wait(V5.rt, lambda m: (m.json() or {}).get("type") == "result", 20, mk,
                          what="a result for %r on its reply_to" % payload)[0].json()
    res = T + "/ctl/lab/result"
    c = Mq()
    try:
        c.sub(res)
        V5.cl.pub(cmd_topic("lab"), payload, rt=V5.rt, corr=corr)
        return c.wait(res, lambda m: (m.json() or {}).get("type") == "result", 20,
                      what="a result for %r on %s" % (payload, res))[0].json()
    finally:
        c.close()


@s.check("status.rejected.unparseable", "not valid JSON or lacks `id`/`action` -> `rejected` with the reason and `\"id\": null` when the id could not be read")
def _():
    out = []
    for payload, want_id in (("this is not json", None), ('{"action":"ping"}', None), ('["id","ping"]', None),
                             ('{"id":"x-no-action-%s"}' % uid()[-8:], "same"),
                             ('{"id":"x-obj-arg-%s","action":"word","args":{"w":{"a":1}}}' % uid()[-8:], "same")):
        r = raw_refusal(payload, b"unparseable")
        want = json.loads(payload)["id"] if want_id == "same" else None
        expect(r["status"] == "rejected" and reason_ok(r) and "id" in r and r["id"] == want,
               "%r -> %s" % (payload, short(r)))
        out.append("%s -> id %r" % (payload[:20], r["id"]))
    return "; ".join(out)


@s.check("status.rejected.bad-id", "`id` is `[A-Za-z0-9_.:-]{1,64}`: another id is a bad request")
def _():
    out = []
    for bad in ("a" * 65, "has space", "", "slash/id"):
        r = raw_refusal(json.dumps({"id": bad, "action": "ping"}), b"badid")
        expect(r["status"] == "rejected", "id %r -> %s" % (bad, short(r)))
        out.append("%r: %s" % (bad[:10], r["status"]))
    return "; ".join(out)


@s.check("status.expired", "`expired`: its `deadline` had passed; not run")
def _():
    tag = uid("e")[:30].lower()
    r = refused(V5, {"action": "rec", "args": {"tag": tag}, "deadline": time.time() - 5}, "expired")
    expect(gates.runs(tag) == 0, "an expired request ran")
    return "reason %r" % r["reason"]


@s.check("status.busy", "`busy`: the action already runs its `max_running` times; not run (`max_running` defaults to 1: frMhc --help)")
def _():
    t1, t2 = uid("b")[:30].lower(), uid("b")[:30].lower()
    mk = V5.cl.mark()
    rid1, _ = V5.ask("lab", {"action": "one", "args": {"tag": t1}})
    gates.started(t1)
    try:
        r = refused(V5, {"action": "one", "args": {"tag": t2}}, "busy")
        expect(gates.runs(t2) == 0, "the busy request ran")
    finally:
        gates.release(t1)
    r1, _ = final_of(V5.cl, V5.rt, rid1, 20, mk)
    expect(r1["status"] == "ok", short(r1))
    return "reason %r" % r["reason"]


@s.check("status.unknown_action", "`unknown_action`: the controller has no such action; not run")
def _():
    r = refused(V5, {"action": "no_such_action"}, "unknown_action")
    return "reason %r" % r["reason"]


@s.check("status.offline.unknown", "`offline`: the controller is ... unknown; not sent")
def _():
    mk = V5.cl.mark()
    rid = uid()
    V5.ask("nosuchctl", {"id": rid, "action": "ping"})
    r, rs = final_of(V5.cl, V5.rt, rid, 20, mk)
    expect(r["status"] == "offline" and reason_ok(r) and [x["type"] for x in rs] == ["result"], short(rs))
    return "reason %r" % r["reason"]


@s.check("status.offline.down", "`offline`: the controller is offline; not sent (and `offline` at once when it says it is shutting down)")
def _():
    mk = S.obs.mark()
    S.stop("attic")
    S.wait_status("attic", "offline", mk, 15)
    i = S.obs.wait(T + "/ctl/attic/info", lambda m: m.json().get("online") is False, 10, mk)[0].json()
    expect(i.get("offline_reason") == "shut down cleanly", "offline_reason %r" % i.get("offline_reason"))
    tag = uid("o")[:30].lower()
    mk2 = V5.cl.mark()
    rid = uid()
    V5.ask("attic", {"id": rid, "action": "rec", "args": {"tag": tag}})
    r, rs = final_of(V5.cl, V5.rt, rid, 20, mk2)
    expect(r["status"] == "offline" and reason_ok(r), short(r))
    mk3 = S.obs.mark()
    S.start("attic")
    S.wait_status("attic", "online", mk3, 30)
    V5.run("attic", {"action": "ping", "progress": False})
    expect(gates.runs(tag) == 0, "the offline request ran after the controller came back")
    return "info.offline_reason %r; result reason %r" % (i.get("offline_reason"), r["reason"])


# ---------------------------------------------------------------------------- request fields

@s.check("args.text", "numbers and booleans are turned into their JSON text")
def _():
    out = []
    for v, want in ((42, "42"), (1.5, "1.5"), (True, "true"), ("abc", "abc")):
        r, _ = V5.run("lab", {"action": "word", "args": {"w": v}, "progress": False})
        expect(r["status"] == "ok" and r["stdout"] == want + "\n", "%r -> %s" % (v, short(r)))
        out.append("%r->%r" % (v, r["stdout"]))
    return " ".join(out)


@s.check("args.default", "`default` is used when the argument is omitted")
def _():
    r, _ = V5.run("lab", {"action": "opt", "progress": False})
    expect(r["status"] == "ok" and r["stdout"] == "toggle\n", short(r))
    return "stdout %r" % r["stdout"]


@s.check("request.timeout", "`timeout`: seconds; can only shorten the action's own timeout, never extend it")
def _():
    r1, _ = V5.run("lab", {"action": "slow", "args": {"secs": "8"}, "timeout": 0.5, "progress": False})
    expect(r1["status"] == "timeout" and r1["duration_ms"] < 8000, "shortened: %s" % short(r1))
    r2, _ = V5.run("lab", {"action": "hang", "timeout": 100, "progress": False})
    expect(r2["status"] == "timeout" and r2["duration_ms"] < 25000, "extended: %s" % short(r2))
    return "slow 8 s with timeout 0.5: %d ms; hang (0.5 s) with timeout 100: %d ms" % (r1["duration_ms"], r2["duration_ms"])


@s.check("result.output", "`stdout`/`stderr` are the last 4 KiB of each stream (`*_truncated` says whether more was written)")
def _():
    r, _ = V5.run("lab", {"action": "big", "progress": False})
    o = r["stdout"]
    expect(r["status"] == "ok" and len(o.encode()) == 4096 and o.endswith("END\n") and r["stdout_truncated"] is True,
           "stdout %d bytes, ends %r, truncated %r" % (len(o.encode()), o[-6:], r["stdout_truncated"]))
    expect(r["stderr"] == "a line on stderr\n" and r["stderr_truncated"] is False, short(r))
    return "stdout 4096 bytes ending END, truncated"


# ---------------------------------------------------------------------------- duplicates

@s.check("dup.same-id", "A request whose id was seen before is answered and never run again; `duplicate: true` marks an answer to a repeated id: the result of the first run")
def _():
    tag = uid("d")[:30].lower()
    rid = uid()
    r1, _ = V5.run("lab", {"id": rid, "action": "rec", "args": {"tag": tag}, "progress": False})
    r2, _ = V5.run("lab", {"id": rid, "action": "rec", "args": {"tag": tag}, "progress": False})
    r3, _ = V3.run("lab", {"id": rid, "action": "rec", "args": {"tag": tag}, "progress": False})
    expect(r1.get("duplicate") in (None, False), "first answer marked duplicate: %s" % short(r1))
    for r in (r2, r3):
        expect(r.get("duplicate") is True and r["status"] == "ok" and r["stdout"] == r1["stdout"]
               and r["started"] == r1["started"], "repeat: %s" % short(r))
    expect(gates.runs(tag) == 1, "ran %d times" % gates.runs(tag))
    return "ran once; repeats (v5, v3.1.1) duplicate:true with the first run's result"


@s.check("i11.13a.dup-answer-keys", "#11 item 13: a repeated-id answer is one JSON object without duplicate keys (`ctl`, `id` once)")
def _():
    rid = uid()
    V5.run("lab", {"id": rid, "action": "ping", "progress": False})
    mk = V5.cl.mark()
    V5.ask("lab", {"id": rid, "action": "ping"})
    final_of(V5.cl, V5.rt, rid, 20, mk)
    sync_point(V5)
    bad = []
    for m in V5.cl.since(mk, V5.rt):
        if (m.json() or {}).get("id") == rid:
            d = dup_keys(m.payload)
            if d:
                bad.append("%s %s" % (d, m.text()[:160]))
    expect(not bad, "duplicate keys: %s" % bad)
    return "no duplicate keys"


@s.check("i11.13b.nul-in-arg", "#11 item 13: an argument value must match the pattern as a whole; \"a\\u0000b\" is rejected and never reaches the action")
def _():
    before = len(words())
    mk = V5.cl.mark()
    rid = uid()
    # the request profile (docs/topics.md): the reply topic as response topic and reply_to
    V5.cl.pub(cmd_topic("lab"), '{"id":"%s","action":"word","args":{"w":"a\\u0000b"},"progress":false,"reply_to":"%s"}'
              % (rid, V5.rt), rt=V5.rt, corr=rid)
    r, _ = final_of(V5.cl, V5.rt, rid, 20, mk)
    ran = words()[before:]
    expect(r["status"] == "rejected" and not [w for w in ran if w], "status %s, the action got %r" % (r["status"], ran))
    return "rejected: %r" % r.get("reason")


# ---------------------------------------------------------------------------- fr/<home>/sync

@s.check("sync.answer", "fr/<home>/sync: \"The answer goes, exactly as the replies of a request, to the MQTT 5 response topic with the request's correlation data, else to `reply_to`\"; one JSON object: type sync, the id, home, status online, ts, heartbeat_interval, every controller with status, info and states (paho 5 and 3.1.1)")
def _():
    out = []
    for req in (V5, V3):
        sid = uid("s")
        body = {"id": sid}
        mk = req.cl.mark()
        if req.v == 5:
            if HOME_V == 4:
                body["reply_to"] = req.rt      # the home sees no response topic (docs/topics.md)
            req.cl.pub(T + "/sync", body, rt=req.rt, corr=sid)
        else:
            body["reply_to"] = req.rt
            req.cl.pub(T + "/sync", body)
        m = req.cl.wait(req.rt, lambda m: (m.json() or {}).get("type") == "sync" and m.json().get("id") == sid, 20, mk,
                        what="the sync answer %s" % sid)[0]
        j = m.json()
        ctls = {c.get("id"): c for c in j.get("controllers") or []}
        lab, kitchen = ctls.get("lab") or {}, ctls.get("kitchen") or {}
        expect(m.qos == 1 and not m.retain and j.get("home") == HOME and j.get("status") == "online" and is_ms(j.get("ts"))
               and isinstance(j.get("heartbeat_interval"), int), "answer %s (%r)" % (short(j), m))
        expect(lab.get("status") == "online" and (lab.get("info") or {}).get("id") == "lab" and
               isinstance(lab.get("states"), dict), "lab in the answer: %s" % short(lab))
        expect("value" in ((kitchen.get("states") or {}).get("temp") or {}), "kitchen's temp state: %s" % short(kitchen))
        if req.v == 5 and HOME_V == 5:
            expect(m.corr() == sid.encode(), "correlation data %r (want %r)" % (m.corr(), sid))
        out.append("v%d: %d controllers%s" % (req.v, len(ctls), ", correlation data" if m.corr() else ""))
    return "; ".join(out)


# ---------------------------------------------------------------------------- retained requests

def retained_request(pub_argv, tag, rt, cl, mk):
    r = run(pub_argv)
    expect(r.returncode == 0, "%s: %s" % (pub_argv[0], r.stderr))
    rid = json.loads(pub_argv[-1])["id"]
    return final_of(cl, rt, rid, 20, mk)[0]


def clear_retained(ctl):
    run(["mosquitto_pub", "-p", str(PORT["broker"]), "-u", USER, "-I", USER + ":", "-P", PW, "-t", cmd_topic(ctl), "-r", "-n", "-q", "1"])


@s.check("retained.rejected", "A retained request is never run ... answered with a `rejected` result (mosquitto_pub -r, -V 5 and -V 311)",
         v5=NA_RETAINED)
def _():
    out = []
    try:
        for v, req in (("5", V5), ("311", V3)):
            tag = uid("r")[:30].lower()
            rid = uid()
            body = {"id": rid, "action": "rec", "args": {"tag": tag}, "reply_to": req.rt}
            mk = req.cl.mark()
            r = retained_request(["mosquitto_pub", "-V", v, "-p", str(PORT["broker"]), "-u", USER, "-I", USER + ":", "-P", PW,
                                  "-q", "1", "-r", "-t", cmd_topic("lab"), "-m", json.dumps(body)], tag, req.rt, req.cl, mk)
            clear_retained("lab")
            sync_point(req)
            expect(r["status"] == "rejected" and reason_ok(r), "-V %s: %s" % (v, short(r)))
            expect(gates.runs(tag) == 0, "-V %s: the retained request ran" % v)
            out.append("-V %s: rejected (%s)" % (v, r["reason"]))
    finally:
        clear_retained("lab")
    return "; ".join(out)


@s.check("retained.not-on-reconnect", "A retained request is never run: it would run again on every reconnect of every subscriber (frMhs restarted while one is stored)"
         if HOME_V == 5 else "frMhs on MQTT 3.1.1: \"a retained request then runs once, like any request; it never runs again, because the copy the broker keeps is handed to frMhs with the flag set at its next subscription\" (frMhs restarted while one is stored)")
def _():
    tag = uid("r")[:30].lower()
    rid = uid()
    try:
        mk = V3.cl.mark()
        r = run(["mosquitto_pub", "-p", str(PORT["broker"]), "-u", USER, "-I", USER + ":", "-P", PW, "-q", "1", "-r",
                 "-t", cmd_topic("lab"), "-m", json.dumps({"id": rid, "action": "rec", "args": {"tag": tag}, "reply_to": V3.rt})])
        expect(r.returncode == 0, r.stderr)
        live, _ = final_of(V3.cl, V3.rt, rid, 20, mk)       # frMhs's answer to the live copy
        before = gates.runs(tag)
        mk = S.obs.mark()
        S.restart("frMhs")
        S.wait_status(None, "online", mk, 30)
        S.wait_online(["lab"], 30)
        sync_point(V5)
    finally:
        clear_retained("lab")
    after = gates.runs(tag)
    if HOME_V == 5:
        expect(after == 0, "the stored retained request ran %d times (live answer %s)" % (after, live["status"]))
        return "live copy %s; not run after the restart" % live["status"]
    expect(before <= 1 and after == before, "ran %d time(s) live (answer %s), %d after the restart" % (before, live["status"], after))
    return "live copy %s, ran %d time(s); not again after the restart" % (live["status"], before)


# ---------------------------------------------------------------------------- the clients of the docs

def rr_lamp(v):
    rid = uid()
    body = {"id": rid, "action": "lamp", "args": {"state": "on"}, "progress": False}
    if v == "311":
        body["reply_to"] = "fr/%s/reply/%s/rr311" % (HOME, USER)
    r = run(["mosquitto_rr", "-V", v, "-p", str(PORT["broker"]), "-u", USER, "-I", USER + ":", "-P", PW, "-W", "20",
             "-t", cmd_topic("kitchen"), "-e", body.get("reply_to", "fr/%s/reply/%s" % (HOME, USER)),
             "-m", json.dumps(body)], 30)
    j = json.loads(r.stdout.strip().splitlines()[0]) if r.stdout.strip() else {}
    expect(r.returncode == 0 and j.get("type") == "result" and j.get("id") == rid and j.get("status") == "ok",
           "-V %s rc %d out %r err %r" % (v, r.returncode, r.stdout[:200], r.stderr[:200]))
    return "-V %s: %s" % (v, j["status"])


@s.check("cli.mosquitto_rr", "docs/topics.md: `mosquitto_rr ... -e fr/home1/reply/$USER -m '{...,\"progress\":false}'` prints the final result (MQTT 5 response topic)",
         v5=NA_RT)
def _():
    return rr_lamp("5")


@s.check("cli.mosquitto_rr-311", "mosquitto_rr -V 311 with the reply topic as `reply_to` (docs/topics.md, \"On MQTT 3.1.1\") prints the final result")
def _():
    return rr_lamp("311")


def sub_and_publish(v, pub_argv, rt):
    """mosquitto_sub -V v -C 3 on rt (subscribed first), then pub_argv; the JSON lines it printed."""
    sub = subprocess.Popen(["stdbuf", "-oL", "mosquitto_sub", "-V", v, "-p", str(PORT["broker"]), "-u", USER,
                            "-I", USER + ":", "-P", PW, "-t", rt, "-C", "3", "-W", "20", "-d"], stdout=subprocess.PIPE, text=True)
    try:
        out = ""
        while "SUBACK" not in out:
            line = sub.stdout.readline()
            if not line:
                break
            out += line
        r = run(pub_argv)
        expect(r.returncode == 0, r.stderr)
        rest, _ = sub.communicate(timeout=25)
    finally:
        if sub.poll() is None:
            sub.kill()
    return [json.loads(x) for x in rest.splitlines() if x.startswith("{")]


PUB = ["mosquitto_pub", "-p", str(PORT["broker"]), "-u", USER, "-I", USER + ":", "-P", PW, "-q", "1", "-t", cmd_topic("lab")]


@s.check("cli.mosquitto_sub-pub-311", "docs/topics.md: MQTT 3.1.1: `mosquitto_sub -V 311 -t fr/home1/reply/me -C 3 &` + `mosquitto_pub -V 311 -q 1 ... reply_to` -> accepted, started, result")
def _():
    rt = "fr/%s/reply/%s/%s" % (HOME, USER, uid("me"))
    rid = uid()
    lines = sub_and_publish("311", PUB + ["-V", "311", "-m", json.dumps({"id": rid, "action": "ping", "reply_to": rt})], rt)
    kinds = [x.get("type") for x in lines if x.get("id") == rid]
    expect(kinds[-1:] == ["result"] and kinds[0] == "accepted" and lines[-1]["status"] == "ok", "got %s" % short(lines))
    return "got %s" % kinds


@s.check("cli.mosquitto_pub-sub-v5", "MQTT 5 clients: mosquitto_pub -V 5 with a response topic and correlation data; mosquitto_sub -V 5 reads the replies",
         v5=NA_RT)
def _():
    rt = "fr/%s/reply/%s/%s" % (HOME, USER, uid("v5"))
    rid = uid()
    lines = sub_and_publish("5", PUB + ["-V", "5", "-D", "publish", "response-topic", rt, "-D", "publish",
                                        "correlation-data", rid, "-m", json.dumps({"id": rid, "action": "ping"})], rt)
    expect(lines and lines[-1].get("type") == "result" and lines[-1].get("status") == "ok" and
           lines[-1].get("id") == rid, "got %s" % short(lines))
    return "%d replies, final ok" % len(lines)


def page_session(user=USER, pw=None):
    """Signs in on the web page (docs/web.md: a POST with the per-session CSRF token); returns
    the session cookie `name=value` nginx's /mqtt asks the page about."""
    host = "localhost:%d" % PORT["https"]
    jar = os.path.join(W, "cookies-%s" % uid("jar"))
    base = ["curl", "-sk", "--resolve", "localhost:%d:127.0.0.1" % PORT["https"], "-b", jar, "-c", jar]
    r = run(base + ["https://%s/" % host], 20)
    m = re.search(r'name="csrf" value="([0-9a-f]+)"', r.stdout)
    expect(m, "sign-in form without a csrf token: %s" % short(r.stdout))
    r = run(base + ["-o", "/dev/null", "-w", "%{http_code}", "--data-urlencode", "csrf=" + m.group(1),
                    "--data-urlencode", "action=signin", "--data-urlencode", "username=" + user,
                    "--data-urlencode", "password=" + (pw or PW), "https://%s/" % host], 20)
    expect(r.stdout == "303", "sign-in answered %s (want 303)" % r.stdout)
    with open(jar) as f:
        c = [l.split("\t") for l in f.read().splitlines() if "__Host-fr" in l]
    expect(c, "no session cookie after sign-in")
    return "%s=%s" % (c[-1][5], c[-1][6])


# mqtt.js speaks the version the page would: the one frAroundWeb speaks (docs/web.md), with
# reply_to and replies matched by id on 3.1.1 (docs/topics.md, "On MQTT 3.1.1").
JS_ENV = {"MQTTJS_VERSION": str(HOME_V)}
JS_HOW = ("MQTT 5; request with response topic + correlation" if HOME_V == 5 else
          "MQTT 3.1.1, as the page when frAroundWeb speaks it (docs/web.md); request with reply_to, replies matched by id")


def mqttjs(url, ca=None, cookie=None):
    rid = uid()
    rt = "fr/%s/reply/%s/%s" % (HOME, USER, uid("js"))
    body = {"id": rid, "action": "rec", "args": {"tag": rid[-20:].lower()}}
    if HOME_V == 4:
        body["reply_to"] = rt
    argv = ["node", os.path.join(SRC, "tests/conformance/lib/mqttjs.cjs"), url, USER, PW, cmd_topic("lab"), rt,
            "corr-" + rid, json.dumps(body), ca or "", cookie or ""]
    r = run(argv, 40, env=JS_ENV)
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    expect(r.returncode == 0, "rc %d: %s %s" % (r.returncode, short(lines[::-1]), r.stderr[:300]))
    st = [x for x in lines if x["topic"] == "fr/%s/status" % HOME]
    rep = [dict(json.loads(x["payload"]), _qos=x["qos"], _corr=x["corr"]) for x in lines if x["topic"] == rt]
    expect(st and st[0]["payload"] == "online" and st[0]["retain"], "retained status: %s" % short(st))
    expect([x["type"] for x in rep] == ["accepted", "started", "result"] and rep[-1]["status"] == "ok",
           "replies %s" % short(rep))
    want_corr = "corr-" + rid if HOME_V == 5 else None
    expect(all(x["_corr"] == want_corr and x["_qos"] == 1 for x in rep), "correlation/QoS %s" % short(rep))
    return "status online (retained); accepted, started, result ok " + (
        "with correlation data" if HOME_V == 5 else "on reply_to (MQTT 3.1.1)")


@s.check("mqttjs.ws", "mqtt.js (over ws to the broker's websockets listener; %s): retained status, the request's replies" % JS_HOW)
def _():
    return mqttjs("ws://127.0.0.1:%d" % PORT["ws"])


@s.check("mqttjs.wss-nginx", "mqtt.js over wss://<host>/mqtt through nginx (docs/web.md): the same, for a browser signed in on the page; \"`/mqtt` only for a signed-in browser ... answers 403 otherwise\"")
def _():
    url, ca = "wss://localhost:%d/mqtt" % PORT["https"], os.path.join(D, "tls", "cert.pem")
    upgrade = ["curl", "-sk", "--http1.1", "--resolve", "localhost:%d:127.0.0.1" % PORT["https"], "-o", "/dev/null", "-w", "%{http_code}",
               "-H", "Connection: Upgrade", "-H", "Upgrade: websocket", "-H", "Sec-WebSocket-Version: 13",
               "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "-H", "Sec-WebSocket-Protocol: mqtt", url.replace("wss:", "https:")]
    r = run(upgrade, 20)
    expect(r.stdout == "403", "a websocket upgrade without a page session: HTTP %s (want 403)" % r.stdout)
    r = run(["node", os.path.join(SRC, "tests/conformance/lib/mqttjs.cjs"), url, USER, PW, cmd_topic("lab"),
             "fr/%s/reply/%s/%s" % (HOME, USER, uid("js")), "x", json.dumps({"id": uid(), "action": "ping"}), ca], 40, env=JS_ENV)
    expect(r.returncode == 3 and "before CONNACK" in r.stdout, "mqtt.js without a page session: rc %d %s" % (r.returncode, r.stdout[:300]))
    cookie = page_session()
    r = run(upgrade + ["-b", cookie, "--max-time", "3"], 20)
    expect(r.stdout == "101", "a websocket upgrade with the page session: HTTP %s (want 101)" % r.stdout)
    return "without a session: 403, mqtt.js refused; signed in: " + mqttjs(url, ca=ca, cookie=cookie)


@s.check("page.mqtt-version", "docs/web.md: the page speaks the MQTT version frAroundWeb speaks (the shim's auth answer `mqtt_version` into `#app`'s `data-mqtt-version`); `#conn`'s `data-mqtt` says which it speaks (\"5\" or \"3.1.1\"); on 3.1.1 its requests carry only `reply_to` (Chromium signs in and runs an action)")
def _():
    v = shim_mqtt_version()
    expect(v == HOME_V, "the shim's auth answer says mqtt_version %r in a run on %d" % (v, HOME_V))
    tag = uid("pg")[:30].lower()
    mk = S.obs.mark()
    r = run(["node", os.path.join(SRC, "tests/conformance/lib/page.cjs"), "https://localhost:%d/" % PORT["https"],
             USER, PW, "lab", "rec", json.dumps({"tag": tag})], 90)
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    j = lines[-1] if lines else {}
    expect(r.returncode == 0 and "error" not in j, "page.cjs rc %d: %s %s" % (r.returncode, short(j), r.stderr[-300:]))
    want = "3.1.1" if v == 4 else "5"
    expect(j.get("mqttVersion") == str(v) and j.get("dataMqtt") == want,
           "server said %s; #app data-mqtt-version %r, #conn data-mqtt %r (want %r)" % (v, j.get("mqttVersion"), j.get("dataMqtt"), want))
    expect(j.get("status") == "ok" and gates.runs(tag) == 1, "result %s, ran %d times: %s" % (j.get("status"), gates.runs(tag), short(j)))
    cmd = S.obs.wait(cmd_topic("lab"), lambda m: ((m.json() or {}).get("args") or {}).get("tag") == tag, 10, mk,
                     what="the page's request on %s" % cmd_topic("lab"))[0]
    rt, cd = getattr(cmd.props, "ResponseTopic", None), getattr(cmd.props, "CorrelationData", None)
    reply_to = cmd.json().get("reply_to", "")
    expect(reply_to.startswith("fr/%s/reply/%s/" % (HOME, USER)), "reply_to %r" % reply_to)
    if v == 4:
        expect(rt is None and cd is None, "an MQTT 3.1.1 request with response topic %r, correlation data %r" % (rt, cd))
    else:
        expect(rt == reply_to and cd, "MQTT 5 request: response topic %r, correlation data %r, reply_to %r" % (rt, cd, reply_to))
    return "server: %s; page: data-mqtt %s; result %s (%s); request %s" % (
        v, j["dataMqtt"], j["status"], j.get("progress"), "reply_to only" if v == 4 else "response topic + correlation + reply_to")


# ---------------------------------------------------------------------------- the programs and example configs

@s.check("docs.help", "README: Each program prints a man-page-style `--help` (frMhc, frMhs, frAroundWeb, frcmd, fr-admin)")
def _():
    bad = []
    for argv in ([os.path.join(os.environ["FR_BIN"], b) for b in ("frMhc", "frMhs", "frAroundWeb", "frcmd")] +
                 [os.path.join(SRC, "broker/fr-admin")]):
        r = run([argv, "--help"])
        if r.returncode != 0 or not all(k in r.stdout for k in ("NAME", "SYNOPSIS")):
            bad.append("%s: rc %d %r" % (os.path.basename(argv), r.returncode, (r.stdout + r.stderr)[:80]))
    expect(not bad, "; ".join(bad))
    return "5 programs"


@s.check("docs.examples-valid", "README: `--check-config -c FILE` validates a configuration: docs/frmhc.conf.example, frmhs.conf.example, frAroundWeb.conf.example are valid (their files and users put in place)")
def _():
    w = os.path.join(os.environ["CONF_W"], "examples")
    os.makedirs(os.path.join(w, "state"), exist_ok=True)
    secret = os.path.join(w, "home.secret")
    with open(secret, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    os.chmod(secret, 0o600)
    for name in ("users.conf", "pw"):
        with open(os.path.join(w, name), "w") as f:
            f.write('users = ();\n' if name == "users.conf" else "secret\n")
    subst = {"/etc/fr/home.secret": secret, "/var/lib/frmhc": os.path.join(w, "state"),
             "/etc/fr/users.conf": os.path.join(w, "users.conf"), "/var/lib/fr/audit.log": os.path.join(w, "audit.log"),
             "/run/fr/shim.sock": os.path.join(w, "shim.sock"), "/etc/fr/web-mqtt.pw": os.path.join(w, "pw"),
             "/etc/fr/mqtt.password": os.path.join(w, "pw"),
             # the packages create frmhc's user; here the demo's unprivileged user stands in
             'user = "frmhc";': 'user = "%s";' % RUN_USER}
    bad, out = [], []
    for prog, ex in (("frMhc", "frmhc.conf.example"), ("frMhs", "frmhs.conf.example"),
                     ("frAroundWeb", "frAroundWeb.conf.example")):
        txt = open(os.path.join(SRC, "docs", ex)).read()
        for k, v in subst.items():
            txt = txt.replace(k, v)
        path = os.path.join(w, ex)
        with open(path, "w") as f:
            f.write(txt)
        r = run([os.path.join(os.environ["FR_BIN"], prog), "--check-config", "-c", path])
        (out if r.returncode == 0 else bad).append("%s: rc %d %s" % (ex, r.returncode, (r.stdout + r.stderr).strip()[:160]))
    expect(not bad, "; ".join(bad))
    return "3 examples valid"


# ---------------------------------------------------------------------------- issue 11 item 14, issue 12 item 4

@s.check("i11.14.rr-concurrent", "#11 item 14: the mosquitto_rr example of docs/topics.md, run by two callers at once, gives each caller its own result",
         v5=NA_RT)
def _():
    doc = open(os.path.join(SRC, "docs/topics.md")).read()
    m = re.search(r"mosquitto_rr [^\n]*?-e (\"[^\"]*\"|'[^']*'|\S+)", doc)
    expect(m, "no mosquitto_rr example with -e in docs/topics.md")
    # each caller runs the example as a shell would: the -e word is evaluated per call
    # with the shell lines before it in the same example (id=$(...): one topic per call)
    block = doc[:m.start()].rsplit("```", 1)[-1]
    setup = [l for l in block.splitlines() if re.match(r"^[A-Za-z_]+=", l)][-1:]

    def etopic():
        return run(["bash", "-c", "; ".join(setup + ["printf %s " + m.group(1)])],
                   env={"USER": USER}).stdout.replace("home1", HOME)
    ta = uid("a")[:30].lower()
    ida, idb = uid(), uid()
    ea, eb = etopic(), etopic()
    base = ["mosquitto_rr", "-p", str(PORT["broker"]), "-u", USER, "-I", USER + ":", "-P", PW, "-W", "25", "-e"]
    a = subprocess.Popen(base + [ea, "-t", cmd_topic("lab"), "-m", json.dumps(
        {"id": ida, "action": "gate", "args": {"tag": ta}, "progress": False})], stdout=subprocess.PIPE, text=True)
    try:
        gates.started(ta)
        b = run(base + [eb, "-t", cmd_topic("lab"), "-m", json.dumps({"id": idb, "action": "ping", "progress": False})], 30)
        gates.release(ta)
        out_a, _ = a.communicate(timeout=30)
    finally:
        gates.release(ta)
        if a.poll() is None:
            a.kill()
    ga = (json.loads(out_a.splitlines()[0]) if out_a.strip() else {}).get("id")
    gb = (json.loads(b.stdout.splitlines()[0]) if b.stdout.strip() else {}).get("id")
    expect(ga == ida and gb == idb, "-e %s / %s: caller A printed the result of %s, caller B of %s"
           % (ea, eb, "B" if ga == idb else "A" if ga == ida else ga, "B" if gb == idb else gb))
    return "-e %s / %s: each caller got its own result" % (ea, eb)


@s.check("i11.14.receive-maximum", "#11 item 14: docs/broker.md names `max_inflight_messages` N: the broker's CONNACK Receive Maximum is N")
def _():
    doc = open(os.path.join(SRC, "docs/broker.md")).read()
    m = re.search(r"max_inflight_messages (\d+)", doc)
    expect(m, "docs/broker.md names no max_inflight_messages")
    c = Mq()
    try:
        props = c.connacks[0][2]
        rm = getattr(props, "ReceiveMaximum", 65535)
    finally:
        c.close()
    expect(rm == int(m.group(1)), "docs/broker.md says %s, the broker announces Receive Maximum %s" % (m.group(1), rm))
    return "Receive Maximum %s" % rm


@s.check("i11.14.csp", "#11 item 14: the Content-Security-Policy header is the one docs/web.md gives")
def _():
    doc = " ".join(open(os.path.join(SRC, "docs/web.md")).read().split())
    m = re.search(r"`Content-Security-Policy: ([^`]*)`", doc)
    expect(m, "no CSP in docs/web.md")
    host = "localhost:%d" % PORT["https"]
    r = run(["curl", "-sk", "-D", "-", "-o", "/dev/null", "--resolve", "localhost:%d:127.0.0.1" % PORT["https"],
             "https://%s/" % host], 20)
    hdr = re.search(r"(?im)^content-security-policy: (.*)\r?$", r.stdout)
    expect(hdr, "no CSP header: %s" % r.stdout[:300])

    def parse(v):
        return {d.split()[0]: set(d.split()[1:]) for d in (x.strip() for x in v.split(";")) if d}
    # The doc writes the configured name and port as <FR_SERVER_NAME>:<FR_HTTPS_PORT> (never the
    # request's Host header); the demo renders the template with localhost and its port.
    want = parse(m.group(1).replace("<FR_SERVER_NAME>", "localhost").replace("<FR_HTTPS_PORT>", str(PORT["https"])))
    got = parse(hdr.group(1).strip())
    diff = {k: (sorted(want.get(k, [])), sorted(got.get(k, []))) for k in set(want) | set(got) if want.get(k) != got.get(k)}
    expect(not diff, "doc vs header differ: %s" % diff)
    return hdr.group(1).strip()[:200]


@s.check("i12.4.reply-topic-confined", "#12 item 4: frMhs publishes replies only under fr/<home>/reply/; docs/topics.md: a reply topic anywhere else \"is refused, the request is not run, and the refusal (`rejected`, with the reason \"reply topic must be under fr/<home>/reply/ ...\", the request's id and correlation data) goes to fr/<home>/ctl/<ctl>/result\"")
def _():
    mk = S.obs.mark()
    rids = []
    for target in (T + "/status", T + "/ctl/lab/status", T + "/ctl/ghost/info"):
        rid = uid()
        rids.append(rid)
        c = Mq(v=4)
        c.pub(cmd_topic("lab"), {"id": rid, "action": "ping", "reply_to": target})
        c.close()
    res = T + "/ctl/lab/result"

    def refusal(m):
        j = m.json() or {}
        return m.topic == res and j.get("id") in rids and j.get("status") == "rejected" and \
            str(j.get("reason", "")).startswith("reply topic must be under %s/reply/" % T)
    S.obs.wait(res, refusal, 20, mk, count=len(rids), what="the %d refusals on %s" % (len(rids), res))
    sync_point(V5)
    bad = [m for m in S.obs.since(mk) if not m.topic.startswith(T + "/reply/") and
           not m.topic.endswith("/cmd") and not refusal(m) and any(r.encode() in m.payload for r in rids)]
    expect(not bad, "replies written outside fr/%s/reply/: %s" % (HOME, short([repr(m) for m in bad], 400)))
    expect(S.status() == "online" and S.status("lab") == "online", "status now %s / %s" % (S.status(), S.status("lab")))
    return "nothing written outside reply/ but the %d refusals on %s" % (len(rids), res)


s.run(S)
