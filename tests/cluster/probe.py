#!/usr/bin/python3
"""MQTT 3.1.1 probes of a broker (cluster) with python3-paho-mqtt, a client fr did not write.

Each subcommand prints one JSON line (RESULT ...) with what it saw, so the shell test asserts on
figures and prints them as evidence. Every wait is bounded.

  session ID PORT TOPIC          make a persistent session (clean session off) subscribed to
                                 TOPIC at QoS 1, then disconnect
  pub PORT TOPIC N               publish N QoS 1 messages {"i": 0..N-1}, each waiting for its
                                 PUBACK; --pause-at K prints PAUSE before message K and waits
                                 for the file --go; --rate R per second
  recv ID PORT N BOUND           connect with clean session off (resuming ID's session); with
                                 --topic also subscribe (QoS 1); print READY, then collect
                                 until N distinct messages or BOUND seconds; --ws: over
                                 WebSocket (path /ws); --clean: a clean session
  v5 PORT                        send an MQTT 5 CONNECT on a raw socket and report the answer
  sub1 PORT TOPIC                subscribe (clean session) and report the SUBACK return code
  pubdeny PORT TOPIC             publish one QoS 1 message; report PUBACK or the connection's end
  kick ID PORT                   connect with client id ID, report; then stay READY and report
                                 whether the broker closed it within --bound seconds
  requests PORT TOPIC N          fr commands {"id": PREFIX<i>, "action": ACTION, "args": {"tag":
                                 PREFIX<i>}, "reply_to": REPLY} at --rate per second (QoS 1,
                                 each waiting for its PUBACK), subscribed (clean session) to
                                 REPLY first; --pause-at/--go as pub; then waits up to --bound s
                                 for a final answer ("type": "result") to each; reports finals per id;
                                 prints SENT i after each PUBACK; --answers FILE appends each
                                 reply as "<unix s> <payload>"; --reconnect: paho reconnects
                                 (and resubscribes) by itself; --retry S: an id without a final
                                 answer S s after it was last asked is asked again (same id)
  shimreq PORT TOKEN HOME CTL N  N "request" ops (action --action, args {"tag": PREFIX<i>}) on one
                                 connection to frAroundWeb's shim, at --rate per second; prints
                                 SENT i as each is written; each final answer goes to --answers
                                 as a reply would ({"type": "result", "id": PREFIX<i>, ...})
  tally FILE N                   the answers in FILE ("<unix s> <payload>" lines) for the ids
                                 PREFIX0..PREFIX<N-1>: finals per id, extra answers and whether
                                 they are marked duplicate, and with --kill-ms the time from
                                 then to the first final answer after it and the longest
                                 silence between final answers
Common options: -u USER -F PASSWORD_FILE (or -P PASSWORD).
"""
import argparse
import json
import os
import socket
import struct
import sys
import threading
import time

import paho.mqtt.client as mqtt


def out(tag, obj):
    print(tag, json.dumps(obj, sort_keys=True), flush=True)


def password(a):
    if a.pw_file:
        with open(a.pw_file) as f:
            return f.read().strip()
    return a.password


class Conn:
    """A paho client run on its own network thread; events recorded for the caller."""

    def __init__(self, a, cid, port, clean, ws=False, reconnect=False):
        self.resubscribe = None   # a topic subscribed again at every reconnect
        self.connects = 0
        self.connected = threading.Event()
        self.closed = threading.Event()
        self.subacked = threading.Event()
        self.rc = None
        self.session_present = None
        self.granted = None
        self.disconnect_rc = None
        self.msgs = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(client_id=cid, clean_session=clean, protocol=mqtt.MQTTv311,
                             transport="websockets" if ws else "tcp")
        if ws:
            self.c.ws_set_options(path="/ws")
        if a.user:
            self.c.username_pw_set(a.user, password(a))
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = self._on_message
        # No reconnects by paho unless asked: a test decides where a client goes after its node
        # died; a client of a single broker that restarts reconnects to it.
        if reconnect:
            self.c.reconnect_delay_set(0.1, 1)
        else:
            self.c.reconnect_delay_set(3600, 3600)
        self.port = port

    def _on_connect(self, c, u, flags, rc):
        self.rc = rc
        self.connects += 1
        if rc == 0 and self.resubscribe and self.connects > 1:
            c.subscribe(self.resubscribe, 1)   # a clean session lost it
        self.session_present = flags.get("session present")
        self.connected.set()

    def _on_disconnect(self, c, u, rc):
        self.disconnect_rc = rc
        self.closed.set()
        self.connected.set()  # wake a waiter: the connection will not come

    def _on_subscribe(self, c, u, mid, granted):
        self.granted = list(granted)
        self.subacked.set()

    def _on_message(self, c, u, m):
        with self.lock:
            self.msgs.append((m.topic, m.payload, m.qos, m.retain, m.dup))

    def start(self, bound=15):
        try:
            self.c.connect("127.0.0.1", self.port, keepalive=10)
        except OSError as e:
            self.rc = "connect: %s" % e
            return False
        self.c.loop_start()
        self.connected.wait(bound)
        return self.rc == 0 and not self.closed.is_set()

    def subscribe(self, topic, bound=15):
        self.c.subscribe(topic, 1)
        self.subacked.wait(bound)
        return self.granted

    def stop(self):
        try:
            self.c.disconnect()
        except Exception:
            pass
        self.c.loop_stop()


def cmd_session(a):
    c = Conn(a, a.id, a.port, clean=False)
    ok = c.start()
    granted = c.subscribe(a.topic) if ok else None
    c.stop()
    out("RESULT", {"connack": c.rc, "session_present": c.session_present, "granted": granted})
    return 0 if ok and granted == [1] else 1


def cmd_pub(a):
    c = Conn(a, a.id or ("%s:pub%d" % (a.user, os.getpid())), a.port, clean=True)
    if not c.start():
        out("RESULT", {"connack": c.rc, "published": 0})
        return 1
    acked = 0
    t0 = time.time()
    for i in range(a.n):
        if a.pause_at is not None and i == a.pause_at:
            print("PAUSE", i, flush=True)
            end = time.time() + 120
            while not os.path.exists(a.go) and time.time() < end:
                time.sleep(0.05)
        info = c.c.publish(a.topic, json.dumps({"i": i}), qos=1)
        try:
            info.wait_for_publish(10)
        except (RuntimeError, ValueError):
            pass
        if info.is_published():
            acked += 1
        if a.rate:
            time.sleep(1.0 / a.rate)
    c.stop()
    out("RESULT", {"published": a.n, "puback": acked, "seconds": round(time.time() - t0, 3)})
    return 0 if acked == a.n else 1


def cmd_recv(a):
    c = Conn(a, a.id, a.port, clean=a.clean, ws=a.ws)
    ok = c.start()
    granted = None
    if ok and a.topic:
        granted = c.subscribe(a.topic)
    print("READY", flush=True)
    end = time.time() + a.bound
    seen = set()
    while ok and time.time() < end and not c.closed.is_set():
        with c.lock:
            seen = {json.loads(m[1])["i"] for m in c.msgs if m[1][:1] == b"{"}
        if len(seen) >= a.n:
            break
        time.sleep(0.05)
    closed = c.closed.is_set()
    c.stop()
    with c.lock:
        ids = [json.loads(m[1])["i"] for m in c.msgs if m[1][:1] == b"{"]
    seen = set(ids)
    missing = sorted(set(range(a.n)) - seen)
    out("RESULT", {"connack": c.rc, "session_present": c.session_present, "granted": granted,
                   "received": len(ids), "distinct": len(seen), "duplicates": len(ids) - len(seen),
                   "missing": len(missing), "missing_first": missing[:5],
                   "in_order": ids == sorted(ids), "closed_by_broker": closed})
    return 0


def cmd_v5(a):
    # CONNECT, MQTT 5: protocol name "MQTT", level 5, clean start, keepalive 10, no properties,
    # client id "fr-v5-probe".
    cid = b"fr-v5-probe"
    var = b"\x00\x04MQTT\x05\x02\x00\x0a\x00"
    payload = struct.pack("!H", len(cid)) + cid
    body = var + payload
    pkt = b"\x10" + bytes([len(body)]) + body
    s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    s.sendall(pkt)
    got = b""
    t0 = time.time()
    try:
        while True:
            d = s.recv(64)
            if not d:
                break
            got += d
    except socket.timeout:
        out("RESULT", {"answer_hex": got.hex(), "closed": False, "seconds": round(time.time() - t0, 3)})
        return 1
    finally:
        s.close()
    out("RESULT", {"answer_hex": got.hex(), "closed": True, "seconds": round(time.time() - t0, 3)})
    return 0


def cmd_sub1(a):
    c = Conn(a, a.id or "%s:sub%d" % (a.user, os.getpid()), a.port, clean=True)
    ok = c.start()
    granted = c.subscribe(a.topic) if ok else None
    time.sleep(0.3)  # a broker that closes instead of answering does so at once
    closed = c.closed.is_set()
    c.stop()
    out("RESULT", {"connack": c.rc, "granted": granted, "closed_by_broker": closed})
    return 0


def cmd_pubdeny(a):
    c = Conn(a, a.id or "%s:pd%d" % (a.user, os.getpid()), a.port, clean=True)
    if not c.start():
        out("RESULT", {"connack": c.rc})
        return 1
    info = c.c.publish(a.topic, json.dumps({"i": 0}), qos=1)
    end = time.time() + 10
    while time.time() < end and not info.is_published() and not c.closed.is_set():
        time.sleep(0.05)
    closed = c.closed.is_set()
    c.stop()
    out("RESULT", {"connack": c.rc, "puback": info.is_published(), "closed_by_broker": closed})
    return 0


def cmd_kick(a):
    c = Conn(a, a.id, a.port, clean=True)
    ok = c.start()
    print("READY" if ok else "REFUSED", flush=True)
    c.closed.wait(a.bound if ok else 0)
    closed = c.closed.is_set()
    c.stop()
    out("RESULT", {"connack": c.rc, "closed_by_broker": closed})
    return 0


def final_answers(msgs, ids):
    """The final answers ("type": "result") among MSGS (payload bytes) for IDS: {id: [answer]}."""
    finals = {}
    for m in msgs:
        try:
            p = json.loads(m)
        except ValueError:
            continue
        # accepted and started come first; one final "result" (docs/topics.md, Replies).
        if isinstance(p, dict) and p.get("type") == "result" and p.get("id") in ids:
            finals.setdefault(p["id"], []).append(p)
    return finals


def outcome(v):
    """The outcome among an id's final answers V: the first without "retry": true (an answer
    with it -- busy, offline, lost, expired from frMhs, a refusal before any run -- is not the
    request's outcome: the same id asked again is tried again; docs/topics.md, Replies)."""
    return next((f for f in v if f.get("retry") is not True), None)


def finals_report(finals, ids):
    statuses = {}
    outcomes = {}
    for rid, v in finals.items():
        o = outcome(v)
        if o is not None:
            outcomes[rid] = o
            st = str(o.get("status"))
            statuses[st] = statuses.get(st, 0) + 1
    # Besides the outcome an id may get: answers with "retry": true (then the requester asks
    # again, the same id); frMhs's answer to a repeated id, marked "duplicate": true; the same
    # message delivered again (MQTT QoS 1 is at least once: frMhs sends again what the broker
    # had not acknowledged when the connection broke; docs/topics.md, "Replies"). Anything else
    # is a second answer.
    copies = 0
    retries = 0
    other = 0
    for rid, v in finals.items():
        for i, f in enumerate(v):
            if f in v[:i]:
                copies += 1
            elif f.get("retry") is True:
                retries += 1
            elif f is not outcomes.get(rid) and f.get("duplicate") is not True:
                other += 1
    extra = sum(len(v) for v in finals.values()) - len(outcomes)
    missing = [r for r in ids if r not in outcomes]
    return {"answered": len(outcomes), "missing": len(missing), "missing_first": missing[:5],
            "missing_ids": missing,
            "retry_pending": [r for r in missing if finals.get(r)], "statuses": statuses, "extra_answers": extra,
            "extra_copies": copies, "retry_answers": retries,
            "retry_statuses": sorted({str(f.get("status")) for v in finals.values() for f in v
                                      if f.get("retry") is True}),
            "extra_not_marked_duplicate": other}


def cmd_requests(a):
    c = Conn(a, a.id or "%s:rq%d" % (a.user, os.getpid()), a.port, clean=True, reconnect=a.reconnect)
    c.resubscribe = a.reply
    answers = open(a.answers, "a", buffering=1) if a.answers else None
    if answers:
        orig = c._on_message

        def on_message(cl, u, m):
            answers.write("%.6f %s\n" % (time.time(), m.payload.decode("utf-8", "replace")))
            orig(cl, u, m)
        c.c.on_message = on_message
    if not c.start() or c.subscribe(a.reply) != [1]:
        out("RESULT", {"connack": c.rc, "granted": c.granted})
        return 1
    print("READY", flush=True)
    ids = ["%s%d" % (a.prefix, i) for i in range(a.n)]
    asked = {}      # id -> when it was last asked
    retried = 0
    acked = 0

    def ask(rid):
        req = {"id": rid, "action": a.action, "args": {"tag": rid}, "reply_to": a.reply}
        asked[rid] = time.time()
        return c.c.publish(a.topic, json.dumps(req), qos=1)

    def send(rid):
        # Until the broker acknowledges it: a publish made while the connection is down fails
        # at once (paho) and is made again once reconnected (the same id: always safe).
        end = time.time() + 60
        while time.time() < end:
            if not c.c.is_connected():
                if not a.reconnect:
                    return False
                time.sleep(0.05)
                continue
            info = ask(rid)
            try:
                info.wait_for_publish(10)
                if info.is_published():
                    return True
            except (RuntimeError, ValueError):
                pass
            time.sleep(0.1)
        return False

    def answered():
        with c.lock:
            return final_answers([m[1] for m in c.msgs], set(ids))

    t0 = time.time()
    for i, rid in enumerate(ids):
        if a.pause_at is not None and i == a.pause_at:
            print("PAUSE", i, flush=True)
            end = time.time() + 120
            while not os.path.exists(a.go) and time.time() < end:
                time.sleep(0.05)
        if send(rid):
            acked += 1
            print("SENT", i, flush=True)
        time.sleep(1.0 / a.rate)
    t_sent = time.time()
    end = time.time() + a.bound
    retried_after_retry = 0
    while time.time() < end:
        finals = answered()
        if sum(1 for v in finals.values() if outcome(v)) == a.n:
            break
        for rid in ids:
            v = finals.get(rid, [])
            if outcome(v) or not c.c.is_connected():
                continue
            # The same id asked again: never runs twice (docs/topics.md).
            if v and time.time() - asked[rid] > 1:
                ask(rid)   # its answers so far all said "retry": true
                retried_after_retry += 1
            elif not v and a.retry and time.time() - asked[rid] > a.retry:
                ask(rid)   # no answer at all
                retried += 1
        time.sleep(0.1)
    time.sleep(1)  # late repeats of an answer
    finals = answered()
    closed = c.closed.is_set()
    c.stop()
    r = finals_report(finals, ids)
    r.pop("missing_ids")
    r.pop("retry_pending")
    r.update({"sent": a.n, "puback": acked, "retried": retried,
              "retried_after_retry": retried_after_retry, "connects": c.connects,
              "closed_by_broker": closed, "send_s": round(t_sent - t0, 2),
              "answers_s": round(time.time() - t0, 2)})
    out("RESULT", r)
    return 0


def cmd_shimreq(a):
    """Requests through frAroundWeb's shim (docs/shim.md): one connection, several in flight."""
    ids = ["%s%d" % (a.prefix, i) for i in range(a.n)]
    answers = open(a.answers, "a", buffering=1) if a.answers else None
    s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    f = s.makefile("rwb")
    lock = threading.Lock()
    finals = {}
    errors = {}

    def send(o):
        with lock:
            f.write((json.dumps(o) + "\n").encode())
            f.flush()

    send({"id": "auth", "op": "auth", "token": a.token})
    s.settimeout(None)
    first = json.loads(f.readline())
    if not first.get("ok"):
        out("RESULT", {"auth": first})
        return 1
    print("READY", flush=True)

    def reader():
        for line in f:
            try:
                m = json.loads(line)
            except ValueError:
                continue
            rid = str(m.get("id")).split("~")[0]   # s5, or s5~2: its second ask
            if rid not in ids or "ok" not in m:
                continue   # progress events
            if m["ok"] and isinstance(m.get("result"), dict):
                r = dict(m["result"], type="result", id=rid, request=m.get("request"))
                finals.setdefault(rid, []).append(r)
                if answers:
                    answers.write("%.6f %s\n" % (time.time(), json.dumps(r)))
                # Not the outcome, and not run (busy, offline: docs/topics.md): asked again.
                # The shim makes a new command id per request, so never after "lost" (which
                # may have run): that stays the answer.
                if r.get("retry") is True and r.get("status") in ("busy", "offline"):
                    again.append((time.time() + 1, rid))
            else:
                errors[rid] = m.get("error")
    again = []
    asks = {}

    def ask(rid):
        asks[rid] = asks.get(rid, 0) + 1
        sid = rid if asks[rid] == 1 else "%s~%d" % (rid, asks[rid])
        send({"id": sid, "op": "request", "home": a.home, "ctl": a.ctl, "action": a.action,
              "args": {"tag": rid}, "timeout": 5, "wait": a.wait})

    def ask_again():
        while again and again[0][0] <= time.time():
            ask(again.pop(0)[1])

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    t0 = time.time()
    for i, rid in enumerate(ids):
        ask(rid)
        print("SENT", i, flush=True)
        ask_again()
        time.sleep(1.0 / a.rate)
    t_sent = time.time()
    end = time.time() + a.bound

    def done():
        return sum(1 for rid in ids if outcome(finals.get(rid, [])) or rid in errors)
    while time.time() < end and done() < a.n:
        ask_again()
        time.sleep(0.1)
    time.sleep(1)
    s.close()
    r = finals_report(finals, ids)
    r.pop("missing_ids")
    r.pop("retry_pending")
    outs = [outcome(v) for v in finals.values() if outcome(v)]
    r.update({"sent": a.n, "errors": len(errors), "errors_first": list(errors.items())[:5],
              "asked_again": sum(asks.values()) - len(asks),
              "requests_distinct": len({o.get("request") for o in outs}),
              "send_s": round(t_sent - t0, 2), "answers_s": round(time.time() - t0, 2)})
    out("RESULT", r)
    return 0


def cmd_tally(a):
    ids = ["%s%d" % (a.prefix, i) for i in range(a.n)]
    idset = set(ids)
    times = []
    times_all = []
    msgs = []
    with open(a.file, "rb") as f:
        for line in f:
            ts, _, payload = line.rstrip(b"\n").partition(b" ")
            try:
                t = float(ts)
            except ValueError:
                continue
            msgs.append(payload)
            times_all.append(t)
            if final_answers([payload], idset):
                times.append(t)
    r = finals_report(final_answers(msgs, idset), ids)
    # How late the copies came (QoS 1 redeliveries): seconds after the first of each.
    first = {}
    late = []
    copy_at = []
    for t, payload in zip(times_all, msgs):
        for rid, v in final_answers([payload], idset).items():
            key = (rid, json.dumps(v[0], sort_keys=True))
            if key in first:
                late.append(t - first[key])
                copy_at.append(t)
            else:
                first[key] = t
    r["copies_latest_s"] = round(max(late), 3) if late else None
    if a.kill_ms is not None:
        k = a.kill_ms / 1000.0
        after = [t for t in times if t > k]
        r["first_after_kill_s"] = round(after[0] - k, 3) if after else None
        # When the copies arrived: before or after the publisher of the answers reconnected.
        r["copies_arrived_s"] = [round(min(copy_at) - k, 3), round(max(copy_at) - k, 3)] if copy_at else None
        gaps = [y - x for x, y in zip([k] + after, after)]
        r["longest_silence_after_kill_s"] = round(max(gaps), 3) if gaps else None
    out("RESULT", r)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-u", "--user")
    p.add_argument("-F", "--pw-file")
    p.add_argument("-P", "--password")
    p.add_argument("-i", "--id")
    sp = p.add_subparsers(dest="cmd", required=True)
    s = sp.add_parser("session"); s.add_argument("id"); s.add_argument("port", type=int); s.add_argument("topic")
    s = sp.add_parser("pub"); s.add_argument("port", type=int); s.add_argument("topic"); s.add_argument("n", type=int)
    s.add_argument("--pause-at", type=int); s.add_argument("--go"); s.add_argument("--rate", type=float)
    s = sp.add_parser("recv"); s.add_argument("id"); s.add_argument("port", type=int)
    s.add_argument("n", type=int); s.add_argument("bound", type=float); s.add_argument("--topic")
    s.add_argument("--ws", action="store_true"); s.add_argument("--clean", action="store_true")
    s = sp.add_parser("v5"); s.add_argument("port", type=int)
    s = sp.add_parser("sub1"); s.add_argument("port", type=int); s.add_argument("topic")
    s = sp.add_parser("pubdeny"); s.add_argument("port", type=int); s.add_argument("topic")
    s = sp.add_parser("kick"); s.add_argument("id"); s.add_argument("port", type=int)
    s.add_argument("--bound", type=float, default=10)
    s = sp.add_parser("requests"); s.add_argument("port", type=int); s.add_argument("topic")
    s.add_argument("n", type=int); s.add_argument("--reply", required=True)
    s.add_argument("--prefix", default="q"); s.add_argument("--action", default="rec")
    s.add_argument("--rate", type=float, default=20); s.add_argument("--pause-at", type=int)
    s.add_argument("--go"); s.add_argument("--bound", type=float, default=60)
    s.add_argument("--answers"); s.add_argument("--reconnect", action="store_true")
    s.add_argument("--retry", type=float)
    s = sp.add_parser("shimreq"); s.add_argument("port", type=int); s.add_argument("token")
    s.add_argument("home"); s.add_argument("ctl"); s.add_argument("n", type=int)
    s.add_argument("--prefix", default="s"); s.add_argument("--action", default="rec")
    s.add_argument("--rate", type=float, default=20); s.add_argument("--wait", type=float, default=60)
    s.add_argument("--bound", type=float, default=60); s.add_argument("--answers")
    s = sp.add_parser("tally"); s.add_argument("file"); s.add_argument("n", type=int)
    s.add_argument("--prefix", required=True); s.add_argument("--kill-ms", type=float)
    a = p.parse_args()
    return globals()["cmd_" + a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
