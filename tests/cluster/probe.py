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
                                 for a final answer ("type": "result") to each; reports finals per id
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

    def __init__(self, a, cid, port, clean, ws=False):
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
        # No reconnects by paho: a test decides where a client goes after its node died.
        self.c.reconnect_delay_set(3600, 3600)
        self.port = port

    def _on_connect(self, c, u, flags, rc):
        self.rc = rc
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


def cmd_requests(a):
    c = Conn(a, a.id or "%s:rq%d" % (a.user, os.getpid()), a.port, clean=True)
    if not c.start() or c.subscribe(a.reply) != [1]:
        out("RESULT", {"connack": c.rc, "granted": c.granted})
        return 1
    print("READY", flush=True)
    ids = ["%s%d" % (a.prefix, i) for i in range(a.n)]
    acked = 0
    t0 = time.time()
    for i, rid in enumerate(ids):
        if a.pause_at is not None and i == a.pause_at:
            print("PAUSE", i, flush=True)
            end = time.time() + 120
            while not os.path.exists(a.go) and time.time() < end:
                time.sleep(0.05)
        req = {"id": rid, "action": a.action, "args": {"tag": rid}, "reply_to": a.reply}
        info = c.c.publish(a.topic, json.dumps(req), qos=1)
        try:
            info.wait_for_publish(30)
        except (RuntimeError, ValueError):
            pass
        if info.is_published():
            acked += 1
        time.sleep(1.0 / a.rate)
    t_sent = time.time()
    end = time.time() + a.bound
    finals = {}
    statuses = {}

    def scan():
        finals.clear()
        statuses.clear()
        with c.lock:
            msgs = list(c.msgs)
        for m in msgs:
            try:
                p = json.loads(m[1])
            except ValueError:
                continue
            st = p.get("status")
            # accepted and started come first; one final "result" (docs/topics.md, Replies).
            if p.get("type") != "result" or p.get("id") not in ids:
                continue
            finals.setdefault(p["id"], []).append(p)
            statuses[str(st)] = statuses.get(str(st), 0) + 1

    while time.time() < end:
        scan()
        if len(finals) == a.n:
            break
        time.sleep(0.1)
    time.sleep(1)  # late repeats of an answer
    scan()
    closed = c.closed.is_set()
    c.stop()
    extra = [f for v in finals.values() for f in v[1:]]
    missing = [r for r in ids if r not in finals]
    out("RESULT", {"sent": a.n, "puback": acked, "answered": len(finals), "missing": len(missing),
                   "missing_first": missing[:5], "statuses": statuses,
                   "extra_answers": len(extra),
                   "extra_not_marked_duplicate": sum(1 for f in extra if f.get("duplicate") is not True),
                   "closed_by_broker": closed, "send_s": round(t_sent - t0, 2),
                   "answers_s": round(time.time() - t0, 2)})
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
    a = p.parse_args()
    return globals()["cmd_" + a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
