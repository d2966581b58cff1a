"""03-once: "Exactly once, end to end" (docs/topics.md) with restarts of frMhs, frMhc and the
broker between a request and its answer, a link cut mid-run, a frozen controller and a full disk;
#11 items 2, 3, 4, 5, 6, 7 and 16, each set up deterministically (actions held by the test until
it releases them, processes stopped with SIGSTOP, the link cut with ss -K)."""
import os
import signal
import time

from conf import (HOME, W, Fail, Requester, Shim, Suite, System, broker_restart_in_flight, deadline, expect,
                  gates, is_ms, real_final, run, short, uid, wait_until)

s = Suite("03-once")
S = System()
S.add_ctl("lab")
S.add_ctl("ice")
S.add_ctl("attic")
MNT = os.path.join(W, "mnt", "cellar")
os.makedirs(MNT, exist_ok=True)
MOUNTED = run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", MNT]).returncode == 0
if MOUNTED:
    S.mounted.append(MNT)
    S.add_ctl("cellar", state_dir=MNT, extra="journal_max = 16;")
S.wait_online(S.base_ctls + list(S.ctls), 60)
T = "fr/%s" % HOME
# A requester with a persistent session: its reply subscription outlives a broker restart.
P = Requester(5, cid="conf-once-p", clean=False, expiry=600)


def tag():
    return uid("g")[:30].lower()


def shim_send(sh, ctl, action, args, wait=60):
    return sh.send({"op": "request", "home": HOME, "ctl": ctl, "action": action, "args": args, "wait": wait})


# ---------------------------------------------------------------------------- the journal

@s.check("once.crash-reads-lost", "After a crash, an id that had started but has no result reads as `lost` (frMhc SIGKILLed mid-run and started again)")
def _():
    t = tag()
    mk = P.cl.mark()
    rid, rt = P.ask("attic", {"action": "gate", "args": {"tag": t}})
    gates.started(t)
    S.stop("attic", signal.SIGKILL)
    S.start("attic")
    gates.release(t)          # the orphaned action ends; nobody records it
    f = real_final(P.cl, rt, rid, mk, 40, want="lost")
    S.wait_online(["attic"], 30)
    mk2 = P.cl.mark()
    P.ask("attic", {"id": rid, "action": "gate", "args": {"tag": t}})
    again = real_final(P.cl, rt, rid, mk2, 20, want="lost")
    expect(again.get("duplicate") is True, "asked again: %s" % short(again))
    expect(gates.runs(t) == 1, "ran %d times" % gates.runs(t))
    return "lost (%s); asked again: lost, duplicate" % f.get("reason")


@s.check("once.link-drop", "When a link drops mid-run, frMhs re-sends unfinished requests once the link is back ... the requester still gets the real result (and the controller does not flap offline)")
def _():
    t = tag()
    mk, mko = P.cl.mark(), S.obs.mark()
    rid, rt = P.ask("lab", {"action": "gate", "args": {"tag": t}})
    gates.started(t)
    n = S.kill_link("lab")
    expect(n > 0, "set-up: ss -K found no link socket of lab")
    gates.release(t, 0)
    f = real_final(P.cl, rt, rid, mk, 40)
    flaps = S.obs.since(mko, T + "/ctl/lab/status", lambda m: m.text() == "offline")
    expect(not flaps, "lab went offline: %r" % flaps)
    expect(gates.runs(t) == 1, "ran %d times" % gates.runs(t))
    return "%d sockets cut; result %s, stdout %r" % (n, f["status"], f.get("stdout"))


def dedup_across(restart, ctl="lab"):
    t = tag()
    r1, _ = P.run(ctl, {"action": "rec", "args": {"tag": t}, "progress": False})
    expect(r1["status"] == "ok", short(r1))
    restart()
    S.wait_online([ctl], 40)
    r2, _ = P.run(ctl, {"id": r1["id"], "action": "rec", "args": {"tag": t}, "progress": False}, timeout=30)
    expect(r2.get("duplicate") is True and r2["status"] == "ok" and r2.get("started") == r1.get("started"), short(r2))
    expect(gates.runs(t) == 1, "ran %d times" % gates.runs(t))
    return "answered duplicate with the first run's result; ran once"


@s.check("once.dedup.frMhs-crash", "A request whose id was seen before is ... never run again, also across restarts of frMhs (SIGKILL)")
def _():
    def restart():
        mk = S.obs.mark()
        S.stop("frMhs", signal.SIGKILL)
        S.start("frMhs")
        S.wait_status(None, "online", mk, 30)
    return dedup_across(restart)


@s.check("once.dedup.frMhc-restart", "... never run again, also across restarts of ... the controller")
def _():
    return dedup_across(lambda: S.restart("attic"), "attic")


@s.check("once.dedup.broker-restart", "... never run again, also across restarts of ... the broker")
def _():
    def restart():
        S.restart("mosquitto")
        P.cl.connected.wait(20)
        time.sleep(0.2)
        wait_until(lambda: P.cl.connected.is_set(), 20, "the requester reconnected")
    return dedup_across(restart)


# ---------------------------------------------------------------------------- restarts between request and answer

@s.check("i11.3.frMhs-restart-in-flight", "#11 item 3: frMhs restarted with 8 actions in flight (4 MQTT, 4 shim): every requester gets the real result, each ran once")
def _():
    tags = [tag() for _ in range(8)]
    mk = P.cl.mark()
    sh = Shim()
    mq = [P.ask("lab", {"action": "gate", "args": {"tag": x}})[0] for x in tags[:4]]
    sr = [shim_send(sh, "lab", "gate", {"tag": x}) for x in tags[4:]]
    for x in tags:
        gates.started(x)
    mko = S.obs.mark()
    S.restart("frMhs")
    S.wait_status(None, "online", mko, 30)
    S.wait_online(["lab"], 30)
    for x in tags:
        gates.release(x)
    bad = []
    left = deadline(40)
    for rid in mq:
        try:
            real_final(P.cl, P.rt, rid, mk, left())
        except Fail as e:
            bad.append("mqtt %s" % e)
    for rid in sr:
        try:
            f = sh.final(rid, left())
            if not (f.get("ok") is True and f["result"]["status"] == "ok"):
                bad.append("shim %s" % short(f, 160))
        except Fail as e:
            bad.append("shim %s" % e)
    sh.close()
    runs = [gates.runs(x) for x in tags]
    expect(not bad, "; ".join(bad)[:600])
    expect(runs == [1] * 8, "runs %s" % runs)
    return "8 real results, each ran once"


def across(disrupt):
    """One MQTT and one shim request held running; disrupt(release) restarts something and
    calls release() (which lets both actions finish) when it wants; then both requesters must
    get the real result, each action having run once."""
    t1, t2 = tag(), tag()
    mk = P.cl.mark()
    sh = Shim()
    rid, rt = P.ask("lab", {"action": "gate", "args": {"tag": t1}})
    sid = shim_send(sh, "lab", "gate", {"tag": t2})
    gates.started(t1)
    gates.started(t2)

    def release():
        for x in (t1, t2):
            gates.release(x)
        for x in (t1, t2):
            gates.done(x)
    disrupt(release)
    left = deadline(40)
    try:
        f = real_final(P.cl, rt, rid, mk, left())
    except Fail as e:
        f = {"status": str(e)}
    g = sh.final(sid, left())
    sh.close()
    expect(f["status"] == "ok" and g.get("ok") is True and g["result"]["status"] == "ok",
           "mqtt: %s; shim: %s" % (f["status"], short(g)))
    expect(gates.runs(t1) == 1 and gates.runs(t2) == 1, "runs %d %d" % (gates.runs(t1), gates.runs(t2)))
    return "mqtt %s, shim %s" % (f["status"], g["result"]["status"])


@s.check("restart.frMhs-crash-in-flight", "frMhs must be able to answer for requests across its own restart (#11): SIGKILL between request and answer")
def _():
    def disrupt(release):
        mko = S.obs.mark()
        S.stop("frMhs", signal.SIGKILL)
        S.start("frMhs")
        S.wait_status(None, "online", mko, 30)
        S.wait_online(["lab"], 30)
        release()
    return across(disrupt)


@s.check("restart.broker-in-flight", "Exactly once across a broker restart between request and answer (the answer produced while the broker is down)")
def _():
    def disrupt(release):
        S.stop("mosquitto")
        release()
        S.start("mosquitto")
    return across(disrupt)


@s.check("restart.frMhc-stop-in-flight", "`failed`: ... was stopped because the controller shut down (`reason`) (frMhc SIGTERM mid-run)")
def _():
    t = tag()
    mk = P.cl.mark()
    rid, rt = P.ask("attic", {"action": "gate", "args": {"tag": t}})
    gates.started(t)
    S.stop("attic")
    f = real_final(P.cl, rt, rid, mk, 30, want="failed")
    expect(f.get("reason"), "no reason: %s" % short(f))
    S.start("attic")
    expect(gates.runs(t) == 1, "ran %d times" % gates.runs(t))
    return "failed: %s" % f.get("reason")


# ---------------------------------------------------------------------------- issue 11 items

@s.check("i11.2.queued-while-frMhs-down", "#11 item 2: a QoS 1 request queued while frMhs is down runs when it is back (real result, not `offline`); its `deadline` is honoured; asking the id again gives the real result")
def _():
    t1, t2 = tag(), tag()
    mk, mko = P.cl.mark(), S.obs.mark()
    S.stop("frMhs")
    S.wait_status(None, "offline", mko, 20)
    r1, rt = P.ask("lab", {"action": "rec", "args": {"tag": t1}})
    dl = time.time() + 1.5
    r2, _ = P.ask("lab", {"action": "rec", "args": {"tag": t2}, "deadline": dl})
    wait_until(lambda: time.time() > dl + 0.5, 5, "the deadline to pass")
    S.start("frMhs")
    f1 = real_final(P.cl, rt, r1, mk, 40)
    f2 = real_final(P.cl, rt, r2, mk, 20, want="expired")
    expect(gates.runs(t1) == 1 and gates.runs(t2) == 0, "runs %d %d" % (gates.runs(t1), gates.runs(t2)))
    mk2 = P.cl.mark()
    P.ask("lab", {"id": r1, "action": "rec", "args": {"tag": t1}})
    again = real_final(P.cl, rt, r1, mk2, 20)
    expect(again.get("duplicate") is True, short(again))
    return "ran after the outage: %s; deadline: %s; again: %s duplicate" % (f1["status"], f2["status"], again["status"])


@s.check("i11.4.lost-then-real", "#11 item 4: after `lost`, \"Ask again with the same id to learn the outcome once it is back\" gives the controller's real result")
def _():
    t = tag()
    mk = P.cl.mark()
    rid, rt = P.ask("ice", {"action": "gate", "args": {"tag": t}})
    gates.started(t)
    S.kill("ice", signal.SIGSTOP)
    try:
        expect(S.kill_link("ice") > 0, "set-up: no link socket of ice to cut")
        lost = real_final(P.cl, rt, rid, mk, 60, want="lost")
        gates.release(t)
        gates.done(t)
    finally:
        S.kill("ice", signal.SIGCONT)
    S.wait_online(["ice"], 40)
    mk2 = P.cl.mark()
    P.ask("ice", {"id": rid, "action": "gate", "args": {"tag": t}})
    again = real_final(P.cl, rt, rid, mk2, 30)
    expect(gates.runs(t) == 1, "ran %d times" % gates.runs(t))
    return "lost (%s); asked again: %s, duplicate %s" % (lost.get("reason"), again["status"], again.get("duplicate"))


@s.check("i11.4.disk-full-then-retry", "#11 item 4: an id that failed with `could not record the command durably` gets its real outcome when asked again after the disk has space again")
def _():
    if not MOUNTED:
        raise Fail("set-up: cannot mount a tmpfs for the controller's state_dir (needs root)")
    filler = os.path.join(MNT, "filler")
    # frMhc preallocates its journal: give the unused tail back to the file system (the file's
    # content stays the same: zeros) so that the disk really is full for the next appends.
    journal = os.path.join(MNT, "journal")
    data = open(journal, "rb").read()
    used = len(data.rstrip(b"\0"))
    off = (used // 4096 + 1) * 4096
    if off < len(data):
        r = run(["fallocate", "--punch-hole", "--keep-size", "-o", str(off), "-l", str(len(data) - off), journal])
        expect(r.returncode == 0, "set-up: fallocate --punch-hole: %s" % r.stderr)
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for bs in (65536, 4096):
            while True:
                try:
                    os.write(fd, b"\0" * bs)
                except OSError:
                    break
    finally:
        os.close(fd)
    failed = None
    st = os.statvfs(MNT)
    listing = "free %d bytes; %s" % (st.f_bavail * st.f_frsize, ", ".join(
        "%s %d" % (n, os.path.getsize(os.path.join(MNT, n))) for n in sorted(os.listdir(MNT))))
    try:
        for _ in range(200):
            t = tag()
            r, _ = P.run("cellar", {"action": "rec", "args": {"tag": t}, "progress": False}, timeout=20)
            if r["status"] != "ok":
                failed = (r, t)
                break
    finally:
        os.unlink(filler)
    expect(failed, "set-up: 200 commands recorded on a full disk (%s)" % listing)
    r, t = failed
    expect(gates.runs(t) == 0, "an unrecorded command ran (%s)" % short(r))
    again, _ = P.run("cellar", {"id": r["id"], "action": "rec", "args": {"tag": t}, "progress": False}, timeout=20)
    t2 = tag()
    fresh, _ = P.run("cellar", {"action": "rec", "args": {"tag": t2}, "progress": False}, timeout=20)
    expect(again["status"] == "ok" and gates.runs(t) == 1,
           "first %s (%s); asked again after freeing space: %s (%s), ran %d; a new id then: %s" % (
               r["status"], r.get("reason"), again["status"], again.get("reason"), gates.runs(t), fresh["status"]))
    return "first %s (%s); again ok" % (r["status"], r.get("reason"))


@s.check("i11.5.repeat-other-reply-topic", "#11 item 5: a repeated id with a different reply topic (response topic, reply_to; progress true and false) gets the final result")
def _():
    t = tag()
    Q = Requester(5)
    R = Requester(4)
    try:
        mk, mq, mr = P.cl.mark(), Q.cl.mark(), R.cl.mark()
        rid, rt = P.ask("lab", {"action": "gate", "args": {"tag": t}})
        gates.started(t)
        Q.ask("lab", {"id": rid, "action": "gate", "args": {"tag": t}, "progress": True})
        R.ask("lab", {"id": rid, "action": "gate", "args": {"tag": t}, "progress": False})
        # frMhs reads its commands in order: once this one is answered, the repeats were seen
        P.run("lab", {"action": "ping", "progress": False})
        gates.release(t)
        real_final(P.cl, rt, rid, mk, 30)
        bad = []
        left = deadline(20)
        for name, req, m in (("response topic, progress true", Q, mq), ("reply_to, progress false", R, mr)):
            try:
                g = real_final(req.cl, req.rt, rid, m, left())
                if g.get("duplicate") is not True:
                    bad.append("%s: not marked duplicate" % name)
            except Fail as e:
                bad.append("%s: %s" % (name, e))
    finally:
        Q.close()
        R.close()
    expect(not bad, "; ".join(bad))
    expect(gates.runs(t) == 1, "ran %d times" % gates.runs(t))
    return "both repeats got the final result (duplicate)"


@s.check("i11.6.frozen-controller", "#11 item 6: a controller frozen (SIGSTOP) past an action's timeout, while the action exited 0, reports `ok` (the exit is reaped before the timer)")
def _():
    t = tag()
    mk = P.cl.mark()
    rid, rt = P.ask("ice", {"action": "short", "args": {"tag": t}, "progress": False})
    gates.started(t)
    child = gates.pid(t)
    t0 = time.time()
    S.kill("ice", signal.SIGSTOP)
    try:
        gates.release(t)
        gates.done(t)
        wait_until(lambda: not S.alive(child), 10, "the action to exit")
        # the action's 3 s timeout passes while the controller is frozen
        wait_until(lambda: time.time() > t0 + 4.5, 6, "the timeout to pass")
    finally:
        S.kill("ice", signal.SIGCONT)
    f = real_final(P.cl, rt, rid, mk, 30)
    expect(f.get("exit_code") == 0, short(f))
    return "ok, exit 0"


@s.check("i11.7.since-after-restart", "#11 item 7: `since` (when `online` last changed) is a real time for every controller relearned after a frMhs restart")
def _():
    mko = S.obs.mark()
    S.restart("frMhs")
    S.wait_status(None, "online", mko, 30)
    S.wait_online(["lab", "attic"], 30)
    names = S.base_ctls + ["lab", "attic", "ice"]
    wait_until(lambda: all(S.obs.since(mko, "%s/ctl/%s/info" % (T, c)) for c in names), 20,
               "info of every controller after the restart")
    bad = {}
    for c in names:
        i = S.obs.since(mko, "%s/ctl/%s/info" % (T, c))[-1].json()
        if not (is_ms(i.get("since")) and i["since"] <= i.get("last_seen", 0) + 1000):
            bad[c] = (i.get("since"), i.get("last_seen"))
    expect(not bad, "since/last_seen: %s" % bad)
    return "since set for %d controllers" % len(names)


@s.check("i11.16.broker-restart-in-flight", "#11 item 16: a broker restart while frMhs has unacknowledged replies and the broker queued commands for it: frMhs recovers (no malformed packet), every request gets its result, none runs twice")
def _():
    return broker_restart_in_flight(S, P, int(os.environ.get("CONF_I16_A", 3)), int(os.environ.get("CONF_I16_B", 3)))


s.run(S)
