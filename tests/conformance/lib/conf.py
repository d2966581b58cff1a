"""Conformance harness: the running system, foreign clients and the check runner.

Written from the documents only (README.md, docs/topics.md, docs/shim.md, docs/broker.md,
bridge-php/README.md, docs/*.conf.example and the programs' --help), never from agents/.
harness.sh has started tests/demo/demo.sh; this module adds the suite's own controllers to the
demo's home, drives everything with clients fr did not write (python3-paho-mqtt, the mosquitto
clients, mqtt.js, bridge-php, raw sockets, curl) and prints one line per check.
"""
import json
import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

W = os.environ["CONF_W"]
D = os.environ["FR_DEMO_DIR"]
SRC = os.environ["FR_SRC"]
BIN = os.environ["FR_BIN"]
PORT = {k.lower(): int(os.environ["FR_DEMO_%s_PORT" % k])
        for k in ("HTTPS", "HTTP", "BROKER", "MQTTS", "WS", "ANNOUNCE", "LINK", "SHIM", "METRICS")}
HOME = "demo"
USER = "demo"
STATE = os.path.join(D, "broker")            # fr-admin's state dir of the demo
G = os.path.join(W, "g")                     # what the test actions did (act.sh)
ACT = os.path.join(SRC, "tests/conformance/lib/act.sh")
LOGS = os.path.join(W, "logs")
# The demo's daemons and the suite's controllers run as the demo's unprivileged user
# (tests/demo/demo.sh; frMhc's `user` setting): what they write must belong to it.
RUN_USER = os.environ.get("FR_DEMO_USER", "fr-demo")
# The MQTT version frMhs and frAroundWeb speak with the broker in this run: harness.sh's
# CONF_MQTT_VERSION=4 starts the demo with FR_DEMO_MQTT_VERSION=4 (MQTT 3.1.1), else 5.
HOME_V = 4 if os.environ.get("FR_DEMO_MQTT_VERSION") == "4" else 5


AS_RUN_USER = ["setpriv", "--reuid=" + RUN_USER, "--regid=" + RUN_USER, "--init-groups", "--"]


def give(path):
    """Hands path to RUN_USER (the suite runs as root)."""
    pw = pwd.getpwnam(RUN_USER)
    os.chown(path, pw.pw_uid, pw.pw_gid)


os.makedirs(G, exist_ok=True)
give(G)
os.makedirs(os.path.join(W, "pids"), exist_ok=True)
os.makedirs(LOGS, exist_ok=True)


def password(user=USER):
    if user == USER:
        with open(os.path.join(D, "demo.password")) as f:
            return f.read().strip()
    return USERS[user]


USERS = {}                                    # users this suite created: name -> secret


def now_ms():
    return int(time.time() * 1000)


def uid(prefix="c"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:16])


def short(v, n=300):
    s = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"), default=str)
    return s if len(s) <= n else s[:n] + "..."


# --------------------------------------------------------------------------------------------
# Checks: each is a function that returns an evidence string or raises Fail.

class Fail(Exception):
    pass


def expect(cond, evidence):
    if not cond:
        raise Fail(evidence)


def wait_until(pred, timeout, what, step=0.05):
    """Polls pred() until it returns a true value; Fail after timeout seconds."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= end:
            raise Fail("timed out after %gs waiting for %s" % (timeout, what))
        time.sleep(step)


def deadline(seconds):
    """A shared bound for several waits: call the result for the seconds left (at least 0.1)."""
    end = time.monotonic() + seconds
    return lambda: max(0.1, end - time.monotonic())


class Suite:
    """Runs its checks in order, one output line each; exits 1 if any failed."""

    def __init__(self, name, versions=None):
        """versions: (frMhs's, frAroundWeb's) MQTT version when the checks start, if the suite
        sets them itself (04-v311); else both speak HOME_V."""
        self.name = name + ("-v311" if HOME_V == 4 else "")
        self.checks = []
        self.failed = []
        self.sys = None
        mhs, web = versions or (HOME_V, HOME_V)
        vname = lambda v: "3.1.1" if v == 4 else "5"
        self.check("mqtt.version", "frMhs speaks MQTT %s and frAroundWeb MQTT %s with the broker in this run "
                   "(the broker's log; the shim's auth answer `mqtt_version`, docs/shim.md)" % (vname(mhs), vname(web)))(
                       lambda: check_versions(mhs, web))

    def check(self, cid, doc, pending=None, v5=None):
        """pending: why the check is not run (an issue not implemented yet, listed under
        "Pending" in tests/conformance/README.md). It prints a PEND line, never counts as
        passed, and runs (and may fail) with CONF_PENDING=1.
        v5: (doc file, sentence) -- the documents promise what the check asserts only while the
        home speaks MQTT 5. In a 3.1.1 run the check is not run: it prints an `n/a` line with
        that sentence, counted apart; the sentence must still be in the file (whitespace and
        `**` aside), else the check fails."""
        def deco(fn):
            self.checks.append((cid, doc, fn, pending, v5))
            return fn
        return deco

    def run(self, system):
        self.sys = system
        only = os.environ.get("CONF_ONLY")
        run_pending = os.environ.get("CONF_PENDING") == "1"
        t_all = time.monotonic()
        pend = []
        na = []
        for cid, doc, fn, pending, v5 in self.checks:
            if only and not re.search(only, cid):
                continue
            if pending and not run_pending:
                pend.append(cid)
                print("PEND %s: %s  [not run: %s]" % (cid, doc, pending), flush=True)
                continue
            if v5 and HOME_V == 4:
                missing = doc_lacks(*v5)
                if missing:
                    self.failed.append(cid)
                    print("FAIL %s: n/a on MQTT 3.1.1 by a sentence the documents no longer hold  [%s]" % (
                        cid, missing), flush=True)
                else:
                    na.append(cid)
                    print("n/a  %s %s: \"%s\"  [%s]" % (cid, v5[0], " ".join(v5[1].split()), doc), flush=True)
                continue
            t0 = time.monotonic()
            try:
                ev = fn()
                line = "ok   %s: %s" % (cid, doc)
                if ev:
                    line += "  [%s]" % short(ev, 400)
            except Fail as e:
                self.failed.append(cid)
                line = "FAIL %s: %s  [%s]" % (cid, doc, short(str(e), 700))
            except Exception as e:  # a broken check is a failed check, with its cause
                self.failed.append(cid)
                tb = traceback.format_exc().strip().splitlines()
                line = "FAIL %s: %s  [error: %s: %s at %s]" % (
                    cid, doc, type(e).__name__, short(str(e), 300), tb[-3].strip() if len(tb) > 2 else "")
            # one line per check, whatever the evidence holds
            line = line.replace("\r", "").replace("\n", " | ")
            print("%s (%.1fs)" % (line, time.monotonic() - t0), flush=True)
            try:
                crashed = system.heal()
            except Exception as e:
                print("# heal after %s: %s" % (cid, e), flush=True)
                continue
            if crashed:
                # a daemon the check did not stop has exited by itself: a crash (ASan aborts too)
                self.failed.append("crash")
                print("FAIL crash.%s: no process exits by itself (exited during %s)  [%s]" % (
                    "+".join(crashed), cid, " | ".join(
                        "%s: %s" % (n, system.log_tail(n)) for n in crashed)[:700]), flush=True)
        n = len([c for c in self.checks if not only or re.search(only, c[0])])
        print("# %s: %d checks, %d failed, %d pending (not run), %d n/a on MQTT 3.1.1 (not run), %.0fs%s%s%s" % (
            self.name, n, len(self.failed), len(pend), len(na), time.monotonic() - t_all,
            (": " + " ".join(self.failed)) if self.failed else "",
            ("; pending: " + " ".join(pend)) if pend else "",
            ("; n/a: " + " ".join(na)) if na else ""), flush=True)
        system.close()
        sys.exit(1 if self.failed else 0)


# Why a check is n/a while the home speaks MQTT 3.1.1 (Suite.check's v5=): the documents' words.
NA_RT = ("docs/topics.md", "A home server on 3.1.1 (frMhs with `version = 4`, or \"auto\" on a broker without "
         "MQTT 5) is an MQTT 3.1.1 hop for every request: it receives no response topic and no correlation "
         "data, so its replies go to the request's `reply_to`, else to `fr/<home>/ctl/<ctl>/result`, and "
         "carry no correlation data.")
NA_RETAINED = ("docs/topics.md", "This holds for requests from MQTT 5 and MQTT 3.1.1 clients alike as long "
               "as frMhs itself speaks MQTT 5 to the broker (its default, `mqtt.version = 5`)")


def doc_lacks(path, sentence):
    """None if the document at path (relative to the checkout) holds sentence, whitespace and
    markdown emphasis aside; else what is missing."""
    norm = lambda t: " ".join(t.replace("**", "").split())
    try:
        with open(os.path.join(SRC, path)) as f:
            text = f.read()
    except OSError as e:
        return "%s: %s" % (path, e)
    return None if norm(sentence) in norm(text) else "%s no longer says: %s" % (path, norm(sentence))


def shim_mqtt_version():
    """The MQTT version frAroundWeb says it speaks: its auth answer's `mqtt_version` (docs/shim.md)."""
    sh = Shim()
    try:
        return sh.auth_reply.get("mqtt_version")
    finally:
        sh.close()


def check_versions(mhs, web):
    """The first check of every suite: the run speaks the MQTT versions it claims (else a 3.1.1
    run could pass on MQTT 5)."""
    pv = lambda v: "p2" if v == 4 else "p5"
    log = os.path.join(D, "logs", "mosquitto.log")
    got = {}
    with open(log, errors="replace") as f:
        for line in f:
            # mosquitto: "New client connected from A as ID (p2, c1, k30, u'user')." (p2 = 3.1.1)
            m = re.search(r"New client connected from \S+ as (frMhs-%s|frAroundWeb-\S+) \((p\d)," % HOME, line)
            if m:
                got["frMhs" if m.group(1).startswith("frMhs") else "frAroundWeb"] = m.group(2)
    want = {"frMhs": pv(mhs), "frAroundWeb": pv(web)}
    expect(got == want, "the broker's latest connects: %s (want %s)" % (got, want))
    v = shim_mqtt_version()
    expect(v == web, "the shim's auth answer says mqtt_version %r (want %d)" % (v, web))
    return "broker log: frMhs %s, frAroundWeb %s; shim auth: mqtt_version %s" % (got["frMhs"], got["frAroundWeb"], v)


# --------------------------------------------------------------------------------------------
# MQTT with python3-paho-mqtt (1.6.1: MQTT 5 and 3.1.1).

class Msg:
    __slots__ = ("t", "topic", "payload", "qos", "retain", "props")

    def __init__(self, m):
        self.t = time.monotonic()
        self.topic = m.topic
        self.payload = m.payload
        self.qos = m.qos
        self.retain = bool(m.retain)
        self.props = getattr(m, "properties", None)

    def text(self):
        return self.payload.decode("utf-8", "replace")

    def json(self):
        try:
            return json.loads(self.payload)
        except ValueError:
            return None

    def corr(self):
        return getattr(self.props, "CorrelationData", None) if self.props else None

    def __repr__(self):
        return "%s q%d r%d %s" % (self.topic, self.qos, self.retain, short(self.text(), 200))


class Mq:
    """A paho client on its own network thread; every message it receives is kept."""

    def __init__(self, user=USER, pw=None, v=5, cid=None, clean=True, expiry=None, port=None,
                 keepalive=30, connect=True):
        self.v = v
        # docs/broker.md "Client ids": the shipped broker takes `<account>` or
        # `<account>:<anything>` from an account's clients.
        self.cid = cid or uid("conf")
        if user and not (self.cid == user or self.cid.startswith(user + ":")):
            self.cid = "%s:%s" % (user, self.cid)
        self.msgs = []
        self.cv = threading.Condition()
        self.connected = threading.Event()
        self.connacks = []
        self.subacks = {}
        self.subs = []
        kw = {"protocol": mqtt.MQTTv5} if v == 5 else {"protocol": mqtt.MQTTv311, "clean_session": clean}
        self.c = mqtt.Client(client_id=self.cid, **kw)
        if user:
            self.c.username_pw_set(user, pw if pw is not None else password(user))
        self.c.on_message = self._on_message
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = lambda *a: self.connected.clear()
        self.c.on_subscribe = self._on_subscribe
        self.c.reconnect_delay_set(0.1, 1)
        self.clean, self.expiry, self.port, self.keepalive = clean, expiry, port or PORT["broker"], keepalive
        if connect:
            self.connect()

    def connect(self, timeout=15):
        props = None
        if self.v == 5:
            props = Properties(PacketTypes.CONNECT)
            if self.expiry:
                props.SessionExpiryInterval = self.expiry
            self.c.connect("127.0.0.1", self.port, self.keepalive, clean_start=self.clean, properties=props)
        else:
            self.c.connect("127.0.0.1", self.port, self.keepalive)
        self.c.loop_start()
        if not self.connected.wait(timeout):
            raise Fail("%s: no CONNACK within %ds" % (self.cid, timeout))
        return self

    def _on_connect(self, c, u, flags, rc, props=None):
        self.connacks.append((flags, rc, props))
        if (rc == 0) if isinstance(rc, int) else (rc.value == 0):
            # paho reconnects by itself; a session the broker lost needs its subscriptions again
            if len(self.connacks) > 1 and not flags.get("session present"):
                for topic, qos, rap in self.subs:
                    if self.v == 5:
                        c.subscribe(topic, options=SubscribeOptions(qos=qos, retainAsPublished=rap))
                    else:
                        c.subscribe(topic, qos)
            self.connected.set()

    def _on_subscribe(self, c, u, mid, granted, props=None):
        with self.cv:
            self.subacks[mid] = granted
            self.cv.notify_all()

    def _on_message(self, c, u, m):
        with self.cv:
            self.msgs.append(Msg(m))
            self.cv.notify_all()

    def sub(self, topic, qos=2, rap=True, timeout=10):
        self.subs.append((topic, qos, rap))
        if self.v == 5:
            r, mid = self.c.subscribe(topic, options=SubscribeOptions(qos=qos, retainAsPublished=rap))
        else:
            r, mid = self.c.subscribe(topic, qos)
        with self.cv:
            if not self.cv.wait_for(lambda: mid in self.subacks, timeout):
                raise Fail("%s: no SUBACK for %s" % (self.cid, topic))
        return self

    def unsub(self, topic):
        self.c.unsubscribe(topic)

    def pub(self, topic, payload, qos=1, retain=False, rt=None, corr=None, wait=True, props=None):
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
        if self.v == 5 and (rt or corr is not None or props):
            p = props or Properties(PacketTypes.PUBLISH)
            if rt:
                p.ResponseTopic = rt
            if corr is not None:
                p.CorrelationData = corr if isinstance(corr, bytes) else corr.encode()
            info = self.c.publish(topic, payload, qos, retain, properties=p)
        else:
            info = self.c.publish(topic, payload, qos, retain)
        if wait and qos > 0:
            info.wait_for_publish(15)
            if not info.is_published():
                raise Fail("%s: publish to %s not acknowledged within 15 s" % (self.cid, topic))
        return info

    def mark(self):
        with self.cv:
            return len(self.msgs)

    def since(self, mark=0, topic=None, pred=None):
        with self.cv:
            ms = self.msgs[mark:]
        return [m for m in ms if (topic is None or mqtt.topic_matches_sub(topic, m.topic))
                and (pred is None or pred(m))]

    def wait(self, topic=None, pred=None, timeout=20, mark=0, count=1, what=None):
        """Waits until `count` messages since `mark` match; returns them."""
        end = time.monotonic() + timeout
        with self.cv:
            while True:
                got = [m for m in self.msgs[mark:]
                       if (topic is None or mqtt.topic_matches_sub(topic, m.topic))
                       and (pred is None or pred(m))]
                if len(got) >= count:
                    return got
                left = end - time.monotonic()
                if left <= 0:
                    raise Fail("timed out after %gs waiting for %s (got %d: %s)" % (
                        timeout, what or ("%d message(s) on %s" % (count, topic)), len(got),
                        short([repr(m) for m in got[-3:]], 400)))
                self.cv.wait(min(left, 0.5))

    def last(self, topic):
        with self.cv:
            for m in reversed(self.msgs):
                if m.topic == topic:
                    return m
        return None

    def close(self):
        try:
            self.c.disconnect()
            self.c.loop_stop()
        except Exception:
            pass


def replies(cl, topic, rid, mark=0):
    """The JSON replies with id rid received on topic, in order."""
    out = []
    for m in cl.since(mark, topic):
        j = m.json()
        if isinstance(j, dict) and j.get("id") == rid:
            j["_msg"] = m
            out.append(j)
    return out


def final_of(cl, topic, rid, timeout=25, mark=0):
    """Waits for the final result of request rid on topic; returns (result, all replies)."""
    cl.wait(topic, lambda m: isinstance(m.json(), dict) and m.json().get("id") == rid
            and m.json().get("type") == "result", timeout=timeout, mark=mark,
            what="the final result of %s on %s" % (rid, topic))
    rs = replies(cl, topic, rid, mark)
    return [r for r in rs if r.get("type") == "result"][0], rs


def cmd_topic(ctl, home=HOME):
    return "fr/%s/ctl/%s/cmd" % (home, ctl)


class Requester:
    """A user's paho client asking with the MQTT 5 response topic (v5) or reply_to (3.1.1)."""

    def __init__(self, v=5, user=USER, **kw):
        self.v = v
        self.user = user
        self.cl = Mq(user=user, v=v, **kw)
        self.rt = "fr/%s/reply/%s/%s" % (HOME, user, uuid.uuid4().hex[:10])
        self.cl.sub(self.rt)

    def ask(self, ctl, body, topic=None, corr=None, use_rt=True, wait=True, rt_only=False, **pubkw):
        """Publishes one request; with v5 the response topic (unless use_rt is False), with
        3.1.1 reply_to (unless body already names one). Returns the reply topic.
        When the home speaks 3.1.1 (HOME_V 4) it sees no response topic: then a v5 request also
        names its reply topic in reply_to, as docs/topics.md's request profile of fr's own
        clients does ("The reply topic goes twice ... A request is so answerable with and
        without MQTT 5"), unless rt_only (a check of the response topic alone, n/a there)."""
        body = dict(body)
        body.setdefault("id", uid())
        rt = topic or self.rt
        if self.v == 5 and use_rt:
            if HOME_V == 4 and not rt_only:
                body.setdefault("reply_to", rt)
            self.cl.pub(cmd_topic(ctl), body, rt=rt, corr=corr if corr is not None else body["id"],
                        wait=wait, **pubkw)
        else:
            if use_rt:
                body.setdefault("reply_to", rt)
            self.cl.pub(cmd_topic(ctl), body, wait=wait, **pubkw)
        return body["id"], rt

    def run(self, ctl, body, timeout=25, **kw):
        """ask + wait for the final result; returns (result, replies)."""
        mark = self.cl.mark()
        rid, rt = self.ask(ctl, body, **kw)
        return final_of(self.cl, rt, rid, timeout, mark)

    def close(self):
        self.cl.close()


# --------------------------------------------------------------------------------------------
# The shim (docs/shim.md): newline-delimited JSON over TCP or the unix socket.

class Shim:
    def __init__(self, user=USER, token=None, unix=False, auth=True):
        if unix:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.connect(os.path.join(D, "shim.sock"))
        else:
            self.s = socket.create_connection(("127.0.0.1", PORT["shim"]), timeout=10)
        self.s.settimeout(None)
        self.buf = b""
        self.lines = []        # (raw, parsed) not yet taken
        self.eof = False
        self.n = 1000
        if auth:
            r = self.call({"op": "auth", "token": token if token is not None else password(user)})
            if r[-1].get("ok") is not True:
                raise Fail("shim auth as %s failed: %s" % (user, short(r[-1])))
            self.auth_reply = r[-1]

    def next_id(self):
        self.n += 1
        return self.n

    def send_raw(self, b):
        self.s.sendall(b)

    def send(self, obj):
        if "id" not in obj:
            obj = dict(obj, id=self.next_id())
        self.s.sendall(json.dumps(obj, separators=(",", ":")).encode() + b"\n")
        return obj["id"]

    def _fill(self, timeout):
        if self.eof:
            return False
        self.s.settimeout(max(timeout, 0.001))
        try:
            d = self.s.recv(65536)
        except socket.timeout:
            return True
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            d = b""
        finally:
            self.s.settimeout(None)
        if not d:
            self.eof = True
            return False
        self.buf += d
        while b"\n" in self.buf:
            raw, self.buf = self.buf.split(b"\n", 1)
            raw = raw.decode("utf-8", "replace")
            try:
                p = json.loads(raw)
            except ValueError:
                p = {"_unparsed": raw}
            self.lines.append((raw, p))
        return True

    def take(self, pred, timeout=10, what="a line"):
        """Waits for and removes the first line whose parsed form matches pred; (raw, parsed)."""
        end = time.monotonic() + timeout
        while True:
            for i, (raw, p) in enumerate(self.lines):
                if pred(p):
                    del self.lines[i]
                    return raw, p
            left = end - time.monotonic()
            if left <= 0:
                raise Fail("shim: timed out after %gs waiting for %s (pending: %s%s)" % (
                    timeout, what, short([r for r, _ in self.lines[-3:]], 300),
                    ", connection closed" if self.eof else ""))
            if not self._fill(min(left, 0.5)) and self.eof:
                # nothing more will come
                for i, (raw, p) in enumerate(self.lines):
                    if pred(p):
                        del self.lines[i]
                        return raw, p
                raise Fail("shim: connection closed while waiting for %s (pending: %s)" % (
                    what, short([r for r, _ in self.lines[-3:]], 300)))

    def final(self, rid, timeout=10):
        return self.take(lambda p: p.get("id") == rid and "ok" in p, timeout,
                         "the final line of id %r" % (rid,))[1]

    def call(self, obj, timeout=10):
        """Sends a request; returns every line with its id up to and including the final one."""
        rid = self.send(obj)
        out = []
        while True:
            raw, p = self.take(lambda p: p.get("id") == rid, timeout, "lines of id %r" % (rid,))
            out.append(p)
            if "ok" in p:
                return out

    def closed_within(self, timeout):
        """True if the server closes the connection within timeout (lines before are kept)."""
        end = time.monotonic() + timeout
        while not self.eof and time.monotonic() < end:
            self._fill(min(0.5, end - time.monotonic()))
        return self.eof

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def shim_request(sh, ctl, action, args=None, timeout=None, wait=None, home=HOME, extra=None, tmo=40):
    o = {"op": "request", "home": home, "ctl": ctl, "action": action}
    if args is not None:
        o["args"] = args
    if timeout is not None:
        o["timeout"] = timeout
    if wait is not None:
        o["wait"] = wait
    if extra:
        o.update(extra)
    return sh.call(o, tmo)


def http_get(port, path, timeout=10):
    """HTTP/1.0 GET on loopback; returns (status, headers text, body)."""
    return http_raw(port, ("GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" % path).encode(), timeout)


def http_raw(port, request, timeout=10):
    """Sends the bytes of one HTTP request on loopback, reads to EOF; returns (status, headers
    text, body); status 0 when the answer is not HTTP."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(request)
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, head.decode("latin-1"), body.decode("utf-8", "replace")


def run(argv, timeout=30, input=None, env=None):
    e = dict(os.environ)
    if env:
        e.update(env)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input, env=e)


# --------------------------------------------------------------------------------------------
# The system: the demo's processes (demo.sh restart), the suite's own controllers, fr-admin.

LAB_ACTIONS = """
  { name = "ping"; builtin = "noop"; },
  { name = "rec"; argv = ["/bin/bash", "@ACT@", "rec", "@G@", "{tag}"]; timeout = 5; max_running = 16;
    args = ( { name = "tag"; pattern = "[a-z0-9-]{1,40}"; } ); },
  { name = "gate"; argv = ["/bin/bash", "@ACT@", "gate", "@G@", "{tag}"]; timeout = 60; max_running = 16;
    args = ( { name = "tag"; pattern = "[a-z0-9-]{1,40}"; } ); },
  { name = "one"; argv = ["/bin/bash", "@ACT@", "gate", "@G@", "{tag}"]; timeout = 60;
    args = ( { name = "tag"; pattern = "[a-z0-9-]{1,40}"; } ); },
  { name = "short"; argv = ["/bin/bash", "@ACT@", "gate", "@G@", "{tag}"]; timeout = 3; max_running = 4;
    args = ( { name = "tag"; pattern = "[a-z0-9-]{1,40}"; } ); },
  { name = "fail"; argv = ["/bin/sh", "-c", "echo bad >&2; exit 4"]; },
  { name = "sig"; argv = ["/bin/sh", "-c", "kill -KILL $$"]; },
  { name = "hang"; argv = ["/bin/sleep", "30"]; timeout = 0.5; kill_grace = 0.2; },
  { name = "slow"; argv = ["/bin/sleep", "{secs}"]; timeout = 30; max_running = 4;
    args = ( { name = "secs"; pattern = "[0-9]{1,2}(\\\\.[0-9])?"; } ); },
  { name = "big"; argv = ["/bin/bash", "@ACT@", "big"]; },
  { name = "word"; argv = ["/bin/bash", "@ACT@", "word", "@G@", "{w}"]; max_running = 8;
    args = ( { name = "w"; pattern = "[a-z0-9.]{1,16}"; } ); },
  { name = "opt"; argv = ["/bin/bash", "@ACT@", "word", "@G@", "{w}"]; max_running = 8;
    args = ( { name = "w"; pattern = "on|off|toggle"; default = "toggle"; } ); },
  { name = "nostart"; argv = ["/nonexistent/fr-conformance-action"]; }
"""

CTL_ADDR = {"lab": "127.0.0.5", "ice": "127.0.0.6", "attic": "127.0.0.7", "cellar": "127.0.0.8"}


class Gates:
    """The gate/rec actions' files (act.sh)."""

    @staticmethod
    def path(kind, tag):
        return os.path.join(G, "%s-%s" % (kind, tag))

    def started(self, tag, timeout=20):
        return wait_until(lambda: os.path.exists(self.path("started", tag)), timeout,
                          "action %s to start" % tag)

    def release(self, tag, code=0):
        p = self.path("release", tag)
        with open(p + ".tmp", "w") as f:
            f.write(str(code))
        os.rename(p + ".tmp", p)

    def done(self, tag, timeout=20):
        return wait_until(lambda: os.path.exists(self.path("done", tag)), timeout,
                          "action %s to finish" % tag)

    def runs(self, tag):
        try:
            with open(self.path("runs", tag)) as f:
                return len(f.read().split())
        except FileNotFoundError:
            return 0

    def pid(self, tag):
        with open(self.path("started", tag)) as f:
            return int(f.read().strip())


gates = Gates()


class System:
    def __init__(self):
        self.ctls = {}            # the suite's controllers: name -> argv
        self.obs = Mq(cid=uid("conf-obs"))
        self.obs.sub("fr/%s/#" % HOME)
        self.base_ctls = ["kitchen", "hall", "garage"]
        self.mounted = []
        self.stopped = set()      # processes a check stopped on purpose (not restarted yet)

    # ---- the demo's processes
    def demo_pid(self, name):
        try:
            with open(os.path.join(D, "pids")) as f:
                for line in f:
                    n, p = line.split()
                    if n == name:
                        return int(p)
        except FileNotFoundError:
            pass
        return None

    def pid(self, name):
        if name in self.ctls:
            try:
                with open(os.path.join(W, "pids", name)) as f:
                    return int(f.read())
            except FileNotFoundError:
                return None
        return self.demo_pid(name)

    @staticmethod
    def alive(pid):
        if not pid:
            return False
        try:
            with open("/proc/%d/stat" % pid) as f:
                st = f.read().rsplit(")", 1)[1].split()[0]
            return st != "Z"
        except (FileNotFoundError, ProcessLookupError):
            return False

    def kill(self, name, sig):
        pid = self.pid(name)
        if pid:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, name, sig=signal.SIGTERM, timeout=15):
        self.stopped.add(name)
        pid = self.pid(name)
        if not self.alive(pid):
            return
        os.kill(pid, signal.SIGCONT)
        os.kill(pid, sig)
        if name in self.ctls:
            # reap our own child
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                try:
                    if os.waitpid(pid, os.WNOHANG)[0] == pid:
                        return
                except ChildProcessError:
                    break
                time.sleep(0.02)
        wait_until(lambda: not self.alive(pid), timeout, "%s (pid %d) to exit" % (name, pid))

    def start(self, name):
        self.stopped.discard(name)
        if name in self.ctls:
            return self.start_ctl(name)
        r = run(["bash", os.path.join(SRC, "tests/demo/demo.sh"), "restart", name], 60)
        if r.returncode != 0:
            raise Fail("demo.sh restart %s: %s %s" % (name, r.stdout, r.stderr))

    def restart(self, name, sig=signal.SIGTERM):
        self.stop(name, sig)
        self.start(name)

    # ---- the suite's controllers
    def add_ctl(self, name, actions=LAB_ACTIONS, state_dir=None, sensors=None, extra=""):
        addr = CTL_ADDR[name]
        sd = state_dir or os.path.join(W, "state-" + name)
        os.makedirs(sd, exist_ok=True)
        give(sd)
        sensors = sensors if sensors is not None else \
            '{ name = "temp"; argv = ["%s/agents/frMhc/examples/temp"]; interval = 5; }' % SRC
        conf = """id = "%s";
name = "Conformance %s";
secret_file = "%s/homes/%s/home.secret";
state_dir = "%s";
listen = { address = "%s"; port = 0; };
announce = { address = "127.255.255.255"; port = %d; interval = 2; };
user = "%s";
%s
actions = ( %s );
sensors = ( %s );
""" % (name, name, STATE, HOME, sd, addr, PORT["announce"], RUN_USER, extra,
            actions.replace("@ACT@", ACT).replace("@G@", G), sensors)
        path = os.path.join(W, "ctl-%s.conf" % name)
        with open(path, "w") as f:
            f.write(conf)
        r = run([os.path.join(BIN, "frMhc"), "--check-config", "-c", path])
        if r.returncode != 0:
            raise Fail("frMhc --check-config %s: %s%s" % (path, r.stdout, r.stderr))
        self.ctls[name] = [os.path.join(BIN, "frMhc"), "-f", "-c", path]
        self.start_ctl(name)

    def start_ctl(self, name):
        log = open(os.path.join(LOGS, "%s.log" % name), "a")
        p = subprocess.Popen(self.ctls[name], stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        with open(os.path.join(W, "pids", name), "w") as f:
            f.write(str(p.pid))

    # ---- observing
    def status(self, ctl=None):
        """The latest online/offline seen on a status topic (anything else there is ignored)."""
        t = "fr/%s/status" % HOME if ctl is None else "fr/%s/ctl/%s/status" % (HOME, ctl)
        with self.obs.cv:
            for m in reversed(self.obs.msgs):
                if m.topic == t and m.payload in (b"online", b"offline"):
                    return m.text()
        return None

    def info(self, ctl):
        m = self.obs.last("fr/%s/ctl/%s/info" % (HOME, ctl))
        return m.json() if m else None

    def wait_status(self, ctl, value, mark=0, timeout=30):
        t = "fr/%s/status" % HOME if ctl is None else "fr/%s/ctl/%s/status" % (HOME, ctl)
        return self.obs.wait(t, lambda m: m.text() == value, timeout, mark,
                             what="%s = %s" % (t, value))[0]

    @classmethod
    def with_ctls(cls, *names):
        """A System with the suite's controllers names (the lab actions), all of them and the
        demo's own online."""
        sysm = cls()
        for n in names:
            sysm.add_ctl(n)
        sysm.wait_online(sysm.base_ctls + list(names), 60)
        return sysm

    def wait_online(self, names, timeout=40):
        names = list(names)
        wait_until(lambda: self.status() == "online" and all(self.status(c) == "online" for c in names),
                   timeout, "home and %s online (now: home %s, %s)" % (
                       ",".join(names), self.status(), {c: self.status(c) for c in names}))

    def link_port(self, ctl):
        i = self.info(ctl)
        return i["port"] if i else None

    def kill_link(self, ctl):
        """Cuts frMhs's TLS link to ctl (both ends, RST) without touching either process."""
        addr, port = CTL_ADDR.get(ctl), self.link_port(ctl)
        f = "( src %s:%d or dst %s:%d )" % (addr, port, addr, port)
        r = run(["ss", "-K", "-t", "-n", "state", "established", f])
        return r.stdout.count("\n") - 1

    # ---- fr-admin
    def admin(self, *args, check=True):
        # As the demo runs it (tests/demo/demo.sh): as the user that owns the state and runs the
        # broker and frAroundWeb, so what it writes stays readable to them.
        r = run(AS_RUN_USER + [os.path.join(SRC, "broker/fr-admin"), "--state", STATE] + list(args), 60,
                env={"FR_WEB_HTTP": "127.0.0.1:%d" % PORT["metrics"]})
        if check and r.returncode != 0:
            raise Fail("fr-admin %s: rc %d %s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def add_user(self, name, homes=None):
        pw = uuid.uuid4().hex
        args = ["add-user", name, "--password", pw]
        if homes is not None:
            args += ["--homes", homes]
        r = self.admin(*args)
        USERS[name] = pw
        return r

    def log_tail(self, name, n=240):
        path = os.path.join(LOGS if name in self.ctls else os.path.join(D, "logs"), name + ".log")
        try:
            with open(path, errors="replace") as f:
                return f.read()[-n:].replace("\n", " | ")
        except OSError:
            return "(no log)"

    # ---- between checks: whatever a check stopped or froze runs again; returns the processes
    # that exited although no check stopped them
    def heal(self):
        names = []
        for n in ["mosquitto", "frAroundWeb", "frMhs"] + self.base_ctls:
            pid = self.demo_pid(n)
            if pid and self.alive(pid):
                os.kill(pid, signal.SIGCONT)
            else:
                names.append(n)
        for n in self.ctls:
            pid = self.pid(n)
            if pid and self.alive(pid):
                os.kill(pid, signal.SIGCONT)
            else:
                names.append(n)
        crashed = [n for n in names if n not in self.stopped]
        for n in names:
            print("# heal: starting %s again" % n, flush=True)
            self.start(n)
        if not self.obs.connected.wait(30):
            raise Fail("observer not reconnected")
        self.wait_online(self.base_ctls + list(self.ctls), 60)
        # frAroundWeb back on the broker too (it reconnects with its own backoff)
        wait_until(lambda: http_get(PORT["metrics"], "/readyz")[0] == 200, 30, "frAroundWeb's /readyz 200")
        return crashed

    def close(self):
        self.obs.close()
        for n in list(self.ctls):
            try:
                self.stop(n, signal.SIGKILL)
            except Exception:
                pass
        for m in self.mounted:
            run(["umount", "-l", m])


def is_ms(v):
    """A Unix time in milliseconds (2020..2100)."""
    return isinstance(v, int) and not isinstance(v, bool) and 1577836800000 <= v <= 4102444800000


def raw_pairs(payload):
    """The keys of a JSON object in order, duplicates kept (json.loads would hide them)."""
    pairs = []
    json.loads(payload, object_pairs_hook=lambda kv: pairs.append([k for k, _ in kv]) or dict(kv))
    return pairs[-1] if pairs else []


def dup_keys(payload):
    found = []

    def hook(kv):
        ks = [k for k, _ in kv]
        found.extend(sorted({k for k in ks if ks.count(k) > 1}))
        return dict(kv)
    json.loads(payload, object_pairs_hook=hook)
    return found


# --------------------------------------------------------------------------------------------
# Results and scenarios shared by the suites.

def finals(cl, rt, rid, mark=0):
    return [r for r in replies(cl, rt, rid, mark) if r.get("type") == "result"]


def real_final(cl, rt, rid, mark, timeout, want="ok"):
    """Waits for a final result of rid with status want; at most one that is not a duplicate."""
    cl.wait(rt, lambda m: (m.json() or {}).get("id") == rid and m.json().get("type") == "result", timeout, mark,
            what="a final result of %s" % rid)
    fs = finals(cl, rt, rid, mark)
    firsts = [f for f in fs if not f.get("duplicate")]
    expect(fs[0]["status"] == want, "%s: first final is %s (want %s): %s" % (rid, fs[0]["status"], want, short(fs[0], 250)))
    expect(len(firsts) <= 1, "%s: %d final results not marked duplicate" % (rid, len(firsts)))
    return fs[0]


def broker_restart_in_flight(S, P, na=3, nb=3, ctl="lab"):
    """#11 item 16 as a fixed sequence: na actions of ctl held running (requested by P, a
    requester with a persistent session); frMhs stopped (SIGSTOP) while P queues nb commands
    for it; the broker saves its database (SIGUSR1) and is stopped; frMhs resumes, runs the
    queued commands and publishes every reply into the stopped broker's socket; the broker is
    killed and started from its database. Every request must get its real result, each action
    run once, frMhs must serve a new request and the broker must log no malformed packet."""
    db = os.path.join(STATE, "db", "mosquitto.db")
    ta = [uid("g")[:30].lower() for _ in range(na)]
    tb = [uid("g")[:30].lower() for _ in range(nb)]
    mk = P.cl.mark()
    ra = [P.ask(ctl, {"action": "gate", "args": {"tag": x}})[0] for x in ta]
    for x in ta:
        gates.started(x)
    S.kill("frMhs", signal.SIGSTOP)
    broker = S.pid("mosquitto")
    try:
        # commands the broker has for frMhs but frMhs has not acknowledged
        rb = [P.ask(ctl, {"action": "rec", "args": {"tag": x}})[0] for x in tb]
        before = os.stat(db).st_mtime_ns if os.path.exists(db) else 0
        os.kill(broker, signal.SIGUSR1)        # mosquitto writes its persistence file
        wait_until(lambda: os.path.exists(db) and os.stat(db).st_mtime_ns != before, 15, "the broker's database save")
        time.sleep(0.3)
        os.kill(broker, signal.SIGSTOP)
        S.kill("frMhs", signal.SIGCONT)
        for x in ta:
            gates.release(x)
        for x in ta:
            gates.done(x)
        wait_until(lambda: all(gates.runs(x) for x in tb), 20, "frMhs to run the queued commands")
        # frMhs's replies now sit unacknowledged in the stopped broker's socket buffer
        wait_until(lambda: recv_q_settled(), 10, "frMhs's replies to reach the broker's socket")
    finally:
        S.kill("frMhs", signal.SIGCONT)
        S.stopped.add("mosquitto")
        try:
            os.kill(broker, signal.SIGKILL)      # a stopped process dies of SIGKILL too
        except ProcessLookupError:
            pass
    wait_until(lambda: not S.alive(broker), 10, "the broker to die")
    log = os.path.join(D, "logs", "mosquitto.log")
    log_from = os.path.getsize(log)
    S.start("mosquitto")
    bad = []
    left = deadline(40)
    for rid in ra + rb:
        try:
            real_final(P.cl, P.rt, rid, mk, left())
        except Fail as e:
            bad.append(str(e))
    try:
        fresh, _ = P.run(ctl, {"action": "ping", "progress": False}, timeout=30)
    except Fail as e:
        fresh = {"status": "none: %s" % e}
    with open(log, errors="replace") as f:
        f.seek(log_from)
        malformed = [l.strip() for l in f if "malformed" in l.lower()]
    runs = [gates.runs(x) for x in ta + tb]
    if fresh.get("status") != "ok":
        S.restart("frMhs")           # let the checks after this one have a home server
    expect(not malformed, "broker log: %s" % malformed[:3])
    expect(fresh.get("status") == "ok", "frMhs serves nothing after the restart: %s" % short(fresh))
    expect(not bad, "; ".join(bad)[:500])
    expect(runs == [1] * len(runs), "runs %s" % runs)
    return "%d real results, each ran once; a new request answered; no malformed packet" % len(runs)


_last_q = [None, 0.0]


def recv_q_settled():
    """The broker's receive queue from frMhs is non-empty and has not changed for 0.5 s."""
    r = run(["ss", "-tnH", "state", "established", "( sport = :%d )" % PORT["broker"]])
    q = sum(int(l.split()[0]) for l in r.stdout.splitlines() if l.strip())
    now = time.monotonic()
    if q != _last_q[0]:
        _last_q[0], _last_q[1] = q, now
        return False
    return q > 0 and now - _last_q[1] >= 0.5


