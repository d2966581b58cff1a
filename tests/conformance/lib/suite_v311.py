"""04-v311: the home on MQTT 3.1.1 (frmhs.conf `version = 4`, docs/frmhs.conf.example: "4 =
MQTT 3.1.1 for brokers without MQTT 5") -- the contract must hold for it too (docs/topics.md:
"MQTT 5 and MQTT 3.1.1 clients are both served"; #16: every documented promise on both):
routing without response topics, statuses, duplicates, #11 item 12 (a retained request on a
3.1.1 connection), item 16 on 3.1.1, item 14 (offline timing from the keepalive), and #16's
frAroundWeb on 3.1.1."""
import os
import re
import signal
import time

from conf import (D, HOME, PORT, USER, Fail, Mq, Requester, Shim, Suite, System, broker_restart_in_flight,
                  cmd_topic, expect, final_of, gates, http_get, password, run, shim_request,
                  short, uid, wait_until)

KEEPALIVE = 5
s = Suite("04-v311", versions=(4, 5))
S = System.with_ctls("lab")
T = "fr/%s" % HOME
PW = password()
MHS_CONF = os.path.join(D, "frmhs.conf")
BROKER_LOG = os.path.join(D, "logs", "mosquitto.log")

# the home server on MQTT 3.1.1 with a short keepalive (item 14 measures the offline time)
_txt = open(MHS_CONF).read()
_new = re.sub(r"version = 5;", "version = 4; keepalive = %d;" % KEEPALIVE, _txt)
assert _new != _txt, "frmhs.conf of the demo has no 'version = 5;'"
open(MHS_CONF, "w").write(_new)
_mk = S.obs.mark()
_log_from = os.path.getsize(BROKER_LOG)
S.restart("frMhs")
S.wait_status(None, "online", _mk, 30)
S.wait_online(S.base_ctls + ["lab"], 60)
V3 = Requester(4)
V5 = Requester(5)


def sync(req):
    req.run("lab", {"action": "ping", "progress": False})


@s.check("v311.connected", "frMhs with `version = 4` speaks MQTT 3.1.1 to the broker and the home is online")
def _():
    with open(BROKER_LOG, errors="replace") as f:
        f.seek(_log_from)
        lines = [l.strip() for l in f if "as frMhs-%s" % HOME in l and "New client connected" in l]
    # mosquitto logs the protocol as p2 for MQTT 3.1.1 (p5 for MQTT 5)
    expect(lines and "(p2," in lines[-1], "broker log: %s" % lines[-1:])
    return lines[-1][-80:]


@s.check("v311.table", "the retained rows (status, ctl status, info, state) keep retained + QoS 1; events QoS 0, not retained")
def _():
    c = Mq()
    try:
        for t in (T + "/status", T + "/ctl/lab/status", T + "/ctl/lab/info", T + "/ctl/kitchen/state/temp"):
            c.sub(t)
            m = c.wait(t, lambda m: m.retain, 10)[0]
            expect(m.qos == 1, repr(m))
        mk = S.obs.mark()
        cur = S.obs.last(T + "/ctl/kitchen/state/lamp").json()["value"]
        r, _ = V3.run("kitchen", {"action": "lamp", "args": {"state": "off" if cur == "on" else "on"}, "progress": False})
        ev = S.obs.wait(T + "/ctl/kitchen/event", lambda m: (m.json() or {}).get("sensor") == "lamp", 15, mk)[0]
        st = S.obs.wait(T + "/ctl/kitchen/state/lamp", None, 15, mk)[0]
        expect(ev.qos == 0 and not ev.retain and st.qos == 1 and st.retain, "%r %r" % (ev, st))
    finally:
        c.close()
    return "retained QoS 1 rows; %r" % ev


@s.check("v311.reply_to", "2. the request's `reply_to` (MQTT 3.1.1 clients): accepted, started, result")
def _():
    r, rs = V3.run("lab", {"action": "rec", "args": {"tag": uid("a")[:30].lower()}})
    expect([x["type"] for x in rs] == ["accepted", "started", "result"] and r["status"] == "ok", short(rs))
    return "ok"


@s.check("v311.v5-requester", "a request without an MQTT 5 response topic (frMhs on 3.1.1 cannot see one) is answered on `reply_to`, else on .../result")
def _():
    c = Mq()
    try:
        c.sub(T + "/ctl/lab/result")
        mk = V5.cl.mark()
        rid, rt = V5.ask("lab", {"action": "ping", "reply_to": V5.rt, "progress": False})
        a, _ = final_of(V5.cl, V5.rt, rid, 20, mk)
        rid2 = uid()
        V5.cl.pub(cmd_topic("lab"), {"id": rid2, "action": "ping"}, rt=V5.rt, corr=rid2)
        b, _ = final_of(c, T + "/ctl/lab/result", rid2, 20)
    finally:
        c.close()
    expect(a["status"] == "ok" and b["status"] == "ok", "%s %s" % (short(a), short(b)))
    return "reply_to, then .../result"


@s.check("v311.statuses", "statuses over 3.1.1: ok, failed, rejected, expired, unknown_action, offline")
def _():
    out = []
    for body, want in (({"action": "rec", "args": {"tag": "v311-ok"}}, "ok"), ({"action": "fail"}, "failed"),
                       ({"action": "word", "args": {"w": "BAD!"}}, "rejected"),
                       ({"action": "rec", "args": {"tag": "v311-exp"}, "deadline": time.time() - 5}, "expired"),
                       ({"action": "nosuch"}, "unknown_action")):
        r, _ = V3.run("lab", dict(body, progress=False))
        expect(r["status"] == want, "%s -> %s" % (body["action"], short(r)))
        out.append(want)
    r, _ = V3.run("nosuchctl", {"action": "ping", "progress": False})
    expect(r["status"] == "offline", short(r))
    expect(gates.runs("v311-exp") == 0, "expired request ran")
    return " ".join(out + ["offline"])


@s.check("v311.duplicate", "a repeated id is answered (duplicate: true) and never run again (frMhs on 3.1.1)")
def _():
    t = uid("d")[:30].lower()
    r1, _ = V3.run("lab", {"action": "rec", "args": {"tag": t}, "progress": False})
    r2, _ = V3.run("lab", {"id": r1["id"], "action": "rec", "args": {"tag": t}, "progress": False})
    expect(r2.get("duplicate") is True and r2["status"] == "ok" and gates.runs(t) == 1, short(r2))
    return "duplicate, ran once"


def clear_retained():
    run(["mosquitto_pub", "-p", str(PORT["broker"]), "-u", USER, "-I", USER + ":", "-P", PW, "-t", cmd_topic("lab"), "-r", "-n", "-q", "1"])


def stored_retained(timeout=3):
    """The retained message the broker holds on lab's cmd topic (None: none)."""
    c = Mq()
    try:
        c.sub(cmd_topic("lab"))
        try:
            return c.wait(cmd_topic("lab"), lambda m: m.retain, timeout)[0]
        except Fail:
            return None
    finally:
        c.close()


RETAINED_311 = ("docs/topics.md: with frMhs on MQTT 3.1.1 \"a retained request then runs once, like any request; it never "
                "runs again, because the copy the broker keeps is handed to frMhs with the flag set at its next subscription, "
                "answered `rejected` ... and removed from the broker\"")


@s.check("i11.12.retained-on-311", "#11 item 12 on MQTT 3.1.1 (mosquitto_pub -r -V 311 and -V 5): " + RETAINED_311 +
         " -- the live copy runs at most once (Mosquitto keeps the flag for a subscription an MQTT 5 session made: then rejected)")
def _():
    out = []
    try:
        for v in ("311", "5"):
            t = uid("r")[:30].lower()
            rid = uid()
            mk = V3.cl.mark()
            r = run(["mosquitto_pub", "-V", v, "-p", str(PORT["broker"]), "-u", USER, "-I", USER + ":", "-P", PW, "-q", "1", "-r",
                     "-t", cmd_topic("lab"), "-m",
                     '{"id":"%s","action":"rec","args":{"tag":"%s"},"reply_to":"%s"}' % (rid, t, V3.rt)])
            expect(r.returncode == 0, r.stderr)
            res, _ = final_of(V3.cl, V3.rt, rid, 20, mk)
            clear_retained()
            sync(V3)
            out.append("-V %s: %s, ran %d" % (v, res["status"], gates.runs(t)))
            expect(res["status"] in ("ok", "rejected") and gates.runs(t) == (1 if res["status"] == "ok" else 0),
                   "; ".join(out))
    finally:
        clear_retained()
    return "; ".join(out)


@s.check("i11.12.retained-stored-311", "#11 item 12 on MQTT 3.1.1: " + RETAINED_311 + " (frMhs restarted while one is stored)")
def _():
    t = uid("r")[:30].lower()
    rid = uid()
    try:
        mk = V3.cl.mark()
        r = run(["mosquitto_pub", "-V", "311", "-p", str(PORT["broker"]), "-u", USER, "-I", USER + ":", "-P", PW, "-q", "1", "-r",
                 "-t", cmd_topic("lab"), "-m", '{"id":"%s","action":"rec","args":{"tag":"%s"},"reply_to":"%s"}' % (rid, t, V3.rt)])
        expect(r.returncode == 0, r.stderr)
        live, _ = final_of(V3.cl, V3.rt, rid, 20, mk)
        before = gates.runs(t)
        mk = S.obs.mark()
        S.restart("frMhs")
        S.wait_status(None, "online", mk, 30)
        S.wait_online(["lab"], 30)
        sync(V3)
        # frMhs removes the stored copy (an empty retained message) when it refuses it
        wait_until(lambda: stored_retained() is None, 20, "the stored request to be removed from the broker")
    finally:
        clear_retained()
    expect(before <= 1 and gates.runs(t) == before,
           "live copy %s, ran %d; after the restart ran %d" % (live["status"], before, gates.runs(t)))
    return "live copy %s, ran %d; not again after the restart; removed from the broker" % (live["status"], before)


@s.check("v311.mosquitto-clients", "docs/topics.md's 3.1.1 example (mosquitto_sub -V 311 + mosquitto_pub -V 311 -q 1 with reply_to) and mosquitto_rr -V 311 with reply_to")
def _():
    rid = uid()
    rt = "fr/%s/reply/%s/%s" % (HOME, USER, uid("rr"))
    r = run(["mosquitto_rr", "-V", "311", "-p", str(PORT["broker"]), "-u", USER, "-I", USER + ":", "-P", PW, "-W", "20", "-q", "1",
             "-t", cmd_topic("lab"), "-e", rt,
             "-m", '{"id":"%s","action":"ping","reply_to":"%s","progress":false}' % (rid, rt)], 30)
    expect(r.returncode == 0 and '"status":"ok"' in r.stdout and rid in r.stdout, "rc %d %r %r" % (r.returncode, r.stdout[:200], r.stderr[:200]))
    return r.stdout.strip()[:120]


def offline_promise():
    """The bound docs/topics.md gives for a hung home server to read offline, for keepalive K:
    "as soon as the broker notices (keepalive, ...)" reads as K; a doc that names MQTT's 1.5 x
    keepalive gets 1.5 K plus Mosquitto 2.0's keepalive check period (it checks every 5-6 s)."""
    doc = open(os.path.join(os.environ["FR_SRC"], "docs/topics.md")).read()
    sec = doc[doc.index("### `fr/<home>/status`"):doc.index("### `fr/<home>/ctl/<ctl>/status`")]
    if re.search(r"1\.5|one and a half", sec):
        return KEEPALIVE * 1.5 + 7, "1.5 x keepalive + the broker's 6 s check period"
    return KEEPALIVE + 1, "the keepalive (docs/topics.md: 'as soon as the broker notices (keepalive, 30 s by default)')"


@s.check("i11.14.keepalive-offline", "#11 item 14: \"a crashed or unplugged home server reads `offline` as soon as the broker notices (keepalive, 30 s by default)\": a hung frMhs (SIGSTOP) reads offline within the time docs/topics.md promises, and online again when it resumes")
def _():
    bound, what = offline_promise()
    mk = S.obs.mark()
    t0 = time.monotonic()
    S.kill("frMhs", signal.SIGSTOP)
    try:
        off = S.wait_status(None, "offline", mk, KEEPALIVE * 1.5 + 20)
        took = off.t - t0
    finally:
        S.kill("frMhs", signal.SIGCONT)
    mk2 = S.obs.mark()
    S.wait_status(None, "online", mk2, 30)
    expect(off.retain and took <= bound,
           "offline after %.1f s with keepalive %d s; the doc promises %s = %.1f s" % (took, KEEPALIVE, what, bound))
    return "offline after %.1f s with keepalive %d s (promise: %s)" % (took, KEEPALIVE, what)


@s.check("i11.16.broker-restart-in-flight-311", "#11 item 16 on MQTT 3.1.1: broker restart while frMhs has unacknowledged replies and queued commands: recovers, every request answered, none runs twice")
def _():
    P = Requester(4, cid="conf-v311-p", clean=False)
    try:
        return broker_restart_in_flight(S, P, 3, 3)
    finally:
        P.close()


@s.check("i16.frAroundWeb-311", "#16: frAroundWeb with `version = 4` (MQTT 3.1.1) serves shim requests (reply_to with the id matched)")
def _():
    conf = os.path.join(D, "frAroundWeb.conf")
    orig = open(conf).read()
    try:
        open(conf, "w").write(orig.replace('username = "fr-web";', 'username = "fr-web"; version = 4;'))
        S.restart("frAroundWeb")
        try:
            wait_until(lambda: S.alive(S.pid("frAroundWeb")) and _readyz() == 200, 20,
                       "frAroundWeb with version = 4 to run and be ready")
        except Fail as e:
            raise Fail("%s; its log ends: %s" % (e, _tail("frAroundWeb")))
        sh = Shim()
        f = shim_request(sh, "lab", "rec", {"tag": "web311"})[-1]
        sh.close()
        expect(f.get("ok") is True and f["result"]["status"] == "ok", short(f))
    finally:
        open(conf, "w").write(orig)
        S.restart("frAroundWeb")
    return "request ok over 3.1.1"


def _readyz():
    try:
        return http_get(PORT["metrics"], "/readyz")[0]
    except OSError:
        return 0


def _tail(name):
    try:
        return open(os.path.join(D, "logs", name + ".log"), errors="replace").read()[-300:]
    except OSError:
        return ""


s.run(S)
