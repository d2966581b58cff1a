#!/usr/bin/python3
"""hacheck: plays Home Assistant's part against fr's MQTT discovery, since HA itself cannot be
installed here (neither Debian nor npm has it). A foreign client (python3-paho, the library HA's
own MQTT integration is built on) connects with a user's account, as a user's HA would:

  hacheck.py configs ...   reads the retained discovery configs of a home the way HA does
                           (subscribes to <prefix>/#), validates each against
                           mqtt-discovery.schema.json (written from HA's MQTT docs, cited in
                           it) and against what the docs say beyond a schema; renders every
                           template with Jinja2 (HA's template engine) on the retained payloads
                           of the topics it reads; prints one line per config and a summary.
  hacheck.py command ...   publishes a plain payload on an entity's command topic (QoS 1, not
                           retained, as HA does with qos 1) and waits for the result on the
                           entity's attributes topic and, if asked, the state it expects.
  hacheck.py birth ...     publishes HA's birth message and counts the configs sent again.
  hacheck.py selftest      shows that the checks refuse configs HA's docs refuse.

Exit status 0 when every check held; 1 with a "FAIL:" line otherwise."""
import argparse
import json
import os
import re
import sys
import threading
import time

import jinja2.sandbox
import jsonschema
import paho.mqtt.client as mqtt

HERE = os.path.dirname(os.path.abspath(__file__))
PLATFORMS = ("button", "switch", "select", "number", "text", "sensor")
# HA's sensor device classes that are not numbers (https://www.home-assistant.io/integrations/sensor/#device-class).
TEXTUAL_CLASSES = ("date", "enum", "timestamp")


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


class Client:
    """One MQTT connection; every message (topic -> payload, retained flag) is recorded."""

    def __init__(self, a, subscriptions=()):
        self.lock = threading.Condition()
        self.msgs = []          # (monotonic time, topic, payload bytes, retain)
        self.last = {}          # topic -> payload bytes
        self.connected = False
        self.c = mqtt.Client(client_id=a.client_id, protocol=mqtt.MQTTv311, clean_session=True)
        self.c.username_pw_set(a.user, a.password)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.subs = list(subscriptions)
        self.c.connect("127.0.0.1", a.port, keepalive=30)
        self.c.loop_start()
        self.wait(10, lambda: self.connected, "connect as %s (client id %s)" % (a.user, a.client_id))

    def _on_connect(self, c, userdata, flags, rc):
        if rc != 0:
            fail("broker refused the connection: %s" % mqtt.connack_string(rc))
        for s in self.subs:
            c.subscribe(s, qos=1)
        with self.lock:
            self.connected = True
            self.lock.notify_all()

    def _on_message(self, c, userdata, m):
        with self.lock:
            self.msgs.append((time.monotonic(), m.topic, m.payload, bool(m.retain)))
            self.last[m.topic] = m.payload
            self.lock.notify_all()

    def wait(self, secs, cond, what):
        end = time.monotonic() + secs
        with self.lock:
            while not cond():
                left = end - time.monotonic()
                if left <= 0:
                    fail("timed out after %gs waiting for: %s" % (secs, what))
                self.lock.wait(left)

    def quiet(self, secs, bound):
        """Waits until nothing arrived for secs (the retained copies are all in), at most bound."""
        end = time.monotonic() + bound
        while time.monotonic() < end:
            with self.lock:
                last = self.msgs[-1][0] if self.msgs else 0
            if time.monotonic() - max(last, self.t0) >= secs:
                return
            time.sleep(0.05)

    def start_clock(self):
        self.t0 = time.monotonic()

    def publish(self, topic, payload, retain=False, qos=1):
        info = self.c.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(10)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def render(template, payload):
    """A template as HA renders one on a received payload: value, and value_json if it is JSON."""
    env = jinja2.sandbox.ImmutableSandboxedEnvironment()
    value = payload.decode("utf-8")
    try:
        value_json = json.loads(value)
    except ValueError:
        value_json = None
    return env.from_string(template).render(value=value, value_json=value_json).strip()


def config_errors(schema, platform, c):
    """What HA's documentation says of one config of platform, the broker aside."""
    errors = []
    v = jsonschema.Draft7Validator({"$ref": "#/definitions/" + platform, "definitions": schema["definitions"]})
    for e in sorted(v.iter_errors(c), key=str):
        errors.append("%s at %s" % (e.message, "/".join(map(str, e.path)) or "top"))
    if not isinstance(c, dict):
        return errors
    if platform == "number" and not c.get("max", 100) > c.get("min", 1):
        errors.append("max must be greater than min")
    if platform == "text" and c.get("min", 0) > c.get("max", 255):
        errors.append("min greater than max")
    if platform == "sensor":
        if c.get("entity_category") not in (None, "diagnostic"):
            errors.append("a sensor's entity_category must be diagnostic")
        if "options" in c and (c.get("device_class") != "enum" or "state_class" in c or "unit_of_measurement" in c):
            errors.append("options need device_class enum and no state_class or unit")
        if c.get("state_class") and c.get("device_class") in TEXTUAL_CLASSES:
            errors.append("state_class with the non-numeric device class %s" % c["device_class"])
    for key in ("value_template", "json_attributes_template", "command_template"):
        if isinstance(c.get(key), str):
            try:
                jinja2.sandbox.ImmutableSandboxedEnvironment().parse(c[key])
            except jinja2.TemplateSyntaxError as e:
                errors.append("%s: %s" % (key, e))
    return errors


# Configs HA's docs refuse, each with what is wrong: the self-test shows the checks can fail.
BROKEN = [
    ("switch", {"name": "x", "comand_topic": "a/set"}, "a misspelt key, no command_topic"),
    ("select", {"command_topic": "a/set"}, "a select without options"),
    ("button", {"command_topic": "a/#"}, "a wildcard in a topic"),
    ("sensor", {"state_topic": "a", "qos": 3}, "qos 3"),
    ("sensor", {"state_topic": "a", "availability_topic": "b", "availability": [{"topic": "c"}]},
     "availability together with availability_topic"),
    ("sensor", {"state_topic": "a", "device": {"name": "no ids"}}, "a device without identifiers"),
    ("sensor", {"state_topic": "a", "device_class": "temprature"}, "an unknown device class"),
    ("sensor", {"state_topic": "a", "device_class": "timestamp", "state_class": "measurement"},
     "a timestamp measured"),
    ("sensor", {"state_topic": "a", "entity_category": "config"}, "a config sensor"),
    ("number", {"command_topic": "a", "min": 5, "max": 5}, "max not above min"),
    ("number", {"command_topic": "a", "step": 0}, "step 0"),
    ("text", {"command_topic": "a", "max": 300}, "text longer than 255"),
    ("switch", {"command_topic": "a", "value_template": "{{ value_json.x "}, "a broken template"),
    ("switch", {"command_topic": "a", "origin": {"sw_version": "1"}}, "an origin without name"),
    ("switch", {"command_topic": "a", "availability_mode": "most"}, "an unknown availability mode"),
]
GOOD = [
    ("switch", {"command_topic": "a/set", "state_topic": "a", "device": {"identifiers": "x"}}),
    ("select", {"command_topic": "a/set", "options": []}),
    ("sensor", {"state_topic": "a", "device_class": "enum", "options": ["a", "b"], "name": None}),
]


def selftest(a):
    schema = json.load(open(os.path.join(HERE, "mqtt-discovery.schema.json")))
    for platform, c, what in BROKEN:
        if not config_errors(schema, platform, c):
            fail("the checks accept a %s config with %s: %s" % (platform, what, c))
    for platform, c in GOOD:
        e = config_errors(schema, platform, c)
        if e:
            fail("the checks refuse a valid %s config %s: %s" % (platform, c, e))
    print("SUMMARY " + json.dumps({"refused": len(BROKEN), "accepted": len(GOOD)}), flush=True)


def check_configs(a):
    schema = json.load(open(os.path.join(HERE, "mqtt-discovery.schema.json")))
    cl = Client(a, [a.prefix + "/#", a.fr + "/" + a.home + "/#"])
    cl.start_clock()
    cl.quiet(1.0, 10)
    node = "fr_" + a.home
    topic_re = re.compile(r"^%s/(%s)/([a-zA-Z0-9_-]+)/([a-zA-Z0-9_-]+)/config$" %
                          (re.escape(a.prefix), "|".join(PLATFORMS)))
    configs = {}
    for t, p in sorted(cl.last.items()):
        if not t.startswith(a.prefix + "/") or not t.endswith("/config"):
            continue
        m = topic_re.match(t)
        if not m:
            fail("config topic %s is not <prefix>/<platform>/<node_id>/<object_id>/config "
                 "(https://www.home-assistant.io/integrations/mqtt/#discovery-topic)" % t)
        if m.group(2) != node:
            continue   # another home's: this account must not see it (checked by the caller)
        if p:
            configs[t] = (m.group(1), m.group(3), p)
    states = {t: p for t, p in cl.last.items() if t.startswith(a.fr + "/")}
    cl.close()
    errors, uids, devices, lines = [], {}, {}, []
    for t, (platform, obj, raw) in sorted(configs.items()):
        try:
            c = json.loads(raw.decode("utf-8"))
        except ValueError as e:
            errors.append("%s: not JSON: %s" % (t, e))
            continue
        errors += ["%s: %s" % (t, e) for e in config_errors(schema, platform, c)]
        uid = c.get("unique_id")
        if uid in uids:
            errors.append("%s: unique_id %s also in %s" % (t, uid, uids[uid]))
        uids[uid] = t
        dev = c.get("device") or {}
        ids = dev.get("identifiers")
        for i in ([ids] if isinstance(ids, str) else ids or []):
            # Entities sharing a device must describe it alike (HA merges them into one).
            if i in devices and devices[i] != dev:
                errors.append("%s: device %s described differently in another config" % (t, i))
            devices[i] = dev
        # fr's own promises (docs/topics.md, "Home Assistant"): availability from the home's and
        # the controller's status, all of them.
        av = [x["topic"] for x in c.get("availability", [])]
        if c.get("availability_mode") != "all" or "%s/%s/status" % (a.fr, a.home) not in av:
            errors.append("%s: availability must include %s/%s/status with mode all" % (t, a.fr, a.home))
        for at in av:
            if states.get(at) not in (b"online", b"offline"):
                errors.append("%s: availability topic %s holds %r, not online/offline" % (t, at, states.get(at)))
        # Templates rendered on what HA would receive.
        st = c.get("state_topic")
        shown = ""
        if st and st in states and c.get("value_template"):
            try:
                shown = render(c["value_template"], states[st])
            except jinja2.TemplateError as e:
                errors.append("%s: value_template: %s" % (t, e))
            if c.get("state_class"):
                try:
                    float(shown)
                except ValueError:
                    if shown != "null":
                        errors.append("%s: numeric sensor renders %r from %s" % (t, shown, states[st]))
        elif st and st in states:
            shown = states[st].decode()
        if st and st in states:
            if platform == "switch" and shown not in (c.get("state_on", c.get("payload_on", "ON")), c.get("state_off", c.get("payload_off", "OFF")), "None"):
                errors.append("%s: switch state %r is neither on nor off" % (t, shown))
            if platform == "select" and shown not in c["options"] + ["None"]:
                errors.append("%s: select state %r is not an option" % (t, shown))
            if platform == "number" and not c.get("min", 1) <= float(shown) <= c.get("max", 100):
                errors.append("%s: number state %r out of range" % (t, shown))
        at = c.get("json_attributes_topic")
        if at and at in states and not isinstance(json.loads(states[at]), dict):
            errors.append("%s: attributes on %s are not a JSON object" % (t, at))
        lines.append("%s %s %s%s" % (platform, obj, c.get("name"), (" = " + shown) if shown else ""))
    for t, (platform, obj, raw) in configs.items():
        via = json.loads(raw).get("device", {}).get("via_device")
        if via and via not in devices:
            errors.append("%s: via_device %s is no device of these configs" % (t, via))
    for line in lines:
        print("config " + line, flush=True)
    for e in errors:
        print("error: " + e, flush=True)
    got = sorted("%s:%s" % (p, o) for p, o, _ in configs.values())
    if a.expect is not None and got != sorted(a.expect):
        fail("configs of home %s: %s, expected %s" % (a.home, got, sorted(a.expect)))
    if errors:
        fail("%d of %d configs violate HA's documented fields" % (len(errors), len(configs)))
    print("SUMMARY " + json.dumps({"configs": len(configs), "entities": got}), flush=True)


def command(a):
    base = "%s/%s/ha/%s/%s/" % (a.fr, a.home, a.ctl, a.action)
    cl = Client(a, [base + "attributes", base + "state", base + "result"])
    cl.start_clock()
    cl.quiet(0.5, 5)   # the retained attributes and state of earlier runs
    n0 = len(cl.msgs)
    cl.publish(base + "set", a.payload.encode())
    # The attributes change with every answer (a new id, or a refusal's new ts) and come live,
    # not from the broker's retained store (a late retained copy of an earlier answer).
    def fresh():
        return [m for m in cl.msgs[n0:] if m[1] == base + "attributes" and not m[3]]
    cl.wait(a.timeout, lambda: fresh(), "new attributes on %sattributes after %r" % (base, a.payload))
    with cl.lock:
        attr = json.loads(fresh()[-1][2])
    if a.id_prefix and not str(attr.get("id")).startswith(a.id_prefix):
        fail("attributes of another request: %s" % attr)
    if a.status and attr.get("status") != a.status:
        fail("status %r, expected %r: %s" % (attr.get("status"), a.status, attr))
    if a.state is not None:
        cl.wait(a.timeout, lambda: cl.last.get(base + "state") == a.state.encode(),
                "state %r on %sstate (now %r)" % (a.state, base, cl.last.get(base + "state")))
    cl.close()
    print("RESULT " + json.dumps(attr), flush=True)


def birth(a):
    cl = Client(a, [a.prefix + "/+/fr_%s/+/config" % a.home])
    cl.start_clock()
    cl.quiet(1.0, 10)
    n0 = len(cl.msgs)
    t0 = time.monotonic()
    cl.publish(a.status_topic, b"online")
    # The configs come again live (not from the broker's retained store).
    cl.wait(a.timeout, lambda: sum(1 for m in cl.msgs[n0:] if not m[3]) >= a.count,
            "%d configs sent again after HA's birth message" % a.count)
    live = [m for m in cl.msgs[n0:] if not m[3]]
    cl.close()
    print("SUMMARY " + json.dumps({"republished": len(live), "after_s": round(live[0][0] - t0, 2)}), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int)
    p.add_argument("--user")
    p.add_argument("--password", default=os.environ.get("HACHECK_PASSWORD"))
    p.add_argument("--client-id", dest="client_id")
    p.add_argument("--home")
    p.add_argument("--prefix", default="homeassistant", help="HA's discovery prefix")
    p.add_argument("--fr", default="fr", help="fr's topic prefix")
    p.add_argument("--timeout", type=float, default=30)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("selftest", help="the checks refuse configs HA's docs refuse (no broker)")
    c = sub.add_parser("configs")
    c.add_argument("--expect", nargs="*", help="platform:object_id of every config there must be")
    c = sub.add_parser("command")
    c.add_argument("--ctl", required=True)
    c.add_argument("--action", required=True)
    c.add_argument("--payload", required=True)
    c.add_argument("--status", help="the status the attributes must show")
    c.add_argument("--state", help="the state the entity must show afterwards")
    c.add_argument("--id-prefix", dest="id_prefix", default="", help="the request id must start so")
    c = sub.add_parser("birth")
    c.add_argument("--status-topic", dest="status_topic", default="homeassistant/status")
    c.add_argument("--count", type=int, required=True, help="configs that must come again")
    a = p.parse_args()
    if a.cmd != "selftest" and not (a.port and a.user and a.client_id and a.home):
        p.error("--port, --user, --client-id and --home are needed")
    {"configs": check_configs, "command": command, "birth": birth, "selftest": selftest}[a.cmd](a)


if __name__ == "__main__":
    main()
