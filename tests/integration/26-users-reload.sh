#!/usr/bin/env bash
# Issue 11 item 1: user changes made with broker/fr-admin reach frAroundWeb, and fr-admin tells
# the truth about it. A real broker with fr-admin's accounts and ACL, frAroundWeb with its pid
# file where fr-admin looks, a shim client kept open across the changes:
#  - a user added without homes, and a user whose last home is revoked, are valid: they sign in
#    and see nothing; fr-admin says "frAroundWeb reloaded" only after frAroundWeb's /healthz
#    names the file it just wrote;
#  - revoking a home ends, on the open connection, that home's subscription and pending request
#    (error forbidden) while the other home's subscription goes on;
#  - when frAroundWeb cannot load the new file (here: it runs unprivileged and the file is
#    root's), or does not answer, fr-admin says so and exits 1.
. "$(dirname "$0")/lib.sh"

ADMIN=$FR_SRC/broker/fr-admin
S=$T/state
BPORT=$(fr_free_port)
SPORT=$(fr_free_port)
HPORT=$(fr_free_port)
export FR_WEB_HTTP=127.0.0.1:$HPORT
admin() { "$ADMIN" --state "$S" "$@" 2>>"$T/admin.log"; }
admin init --broker-uri mqtt://127.0.0.1:1 >/dev/null || fr_fail "fr-admin init"
admin add-home home1 >/dev/null && admin add-home home2 >/dev/null || fr_fail "add-home"
admin add-user alice --homes home1,home2 --password alice-pw >/dev/null || fr_fail "add-user alice"
fr_acl_broker broker "$BPORT" "$S"
mosquitto_pub -p "$BPORT" -u home-home1 -P "$(cat "$S/homes/home1/mqtt.pw")" -r -q 1 -t fr/home1/status -m online
mosquitto_pub -p "$BPORT" -u home-home2 -P "$(cat "$S/homes/home2/mqtt.pw")" -r -q 1 -t fr/home2/status -m online

# frAroundWeb runs as nobody (as a privilege-dropping deployment would): the files it reads
# must be readable by it.
mkdir -m 0777 "$T/audit"
chmod 0755 "$T" "$S" "$S/web"
cat >"$T/web.conf" <<CONF
instance = "t26";
users_file = "$S/web/users.conf";
audit_file = "$T/audit/audit.log";
shim = { address = "127.0.0.1"; port = $SPORT; };
http = { address = "127.0.0.1"; port = $HPORT; };
mqtt = { uri = "mqtt://127.0.0.1:$BPORT"; username = "fr-web"; password_file = "$T/web.pw";
         backoff_min = 0.1; backoff_max = 1; };
CONF
install -m 0644 "$S/web/password" "$T/web.pw"
chmod 0644 "$S/web/users.conf"
chmod 0644 "$T/web.conf"
fr_start web setpriv --reuid=nobody --regid=nogroup --clear-groups "$FR_BIN/frAroundWeb" -f -v -c "$T/web.conf"
echo "$(fr_pid web)" >"$S/web/frAroundWeb.pid"
fr_wait 10 "shim listening" bash -c "exec 3<>/dev/tcp/127.0.0.1/$SPORT"
fr_wait 10 "web connected" fr_grep_log web "connected (session"

# From here on fr-admin writes the users file for nobody's group, so frAroundWeb can read it.
export FR_WEB_GROUP=nogroup
admin add-user carol --password carol-pw >/dev/null || fr_fail "add-user carol without homes: $(tail -3 "$T/admin.log")"
grep -q "frAroundWeb reloaded: 2 users" "$T/admin.log" || fr_fail "fr-admin did not confirm the reload: $(tail -3 "$T/admin.log")"
fr_ok "add-user without --homes: frAroundWeb takes it, fr-admin confirms"

mkfifo "$T/step"
cat >"$T/alice.py" <<'PY'
import json, socket, subprocess, sys, time
sport, bport, tmp = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def fail(msg): print("FAIL: " + msg, flush=True); sys.exit(1)
def ok(msg): print("ok: " + msg, flush=True)
class C:
    def __init__(self, token):
        self.s = socket.create_connection(("127.0.0.1", sport)); self.s.settimeout(30)
        self.f = self.s.makefile("rb"); self.seen = []
        self.auth = self.call({"id": "auth", "op": "auth", "token": token})
    def send(self, o): self.s.sendall(json.dumps(o).encode() + b"\n")
    def next(self, pred, what):
        for m in self.seen:
            if pred(m): self.seen.remove(m); return m
        end = time.time() + 20
        while time.time() < end:
            m = json.loads(self.f.readline())
            if pred(m): return m
            self.seen.append(m)
        fail("timed out waiting for " + what)
    def call(self, o):
        self.send(o); return self.next(lambda m: m.get("id") == o["id"] and "ok" in m, str(o))
def step(name):
    # Tells the shell to run the next fr-admin command, and waits until it has.
    print("step " + name, flush=True)
    if sys.stdin.readline().strip() != "done": fail("no step " + name)

carol = C("carol-pw")
if carol.auth.get("ok") is not True or carol.auth.get("homes") != []: fail("carol: %r" % carol.auth)
if carol.call({"id": 1, "op": "list"}).get("homes") != []: fail("carol lists homes")
if carol.call({"id": 2, "op": "get", "topic": "fr/home1/status"})["error"]["code"] != "forbidden": fail("carol reads home1")
ok("a user with no homes signs in and sees nothing")

a = C("alice-pw")
if a.auth.get("homes") != ["home1", "home2"]: fail("alice: %r" % a.auth)
for sid, home in (("s1", "home1"), ("s2", "home2")):
    a.send({"id": sid, "op": "subscribe", "filter": "fr/%s/#" % home})
    a.next(lambda m: m.get("id") == sid and m.get("event") == "subscribed", sid)
# A request nobody answers (no home server runs): pending until revoked.
a.send({"id": "r1", "op": "request", "home": "home1", "ctl": "k", "action": "x", "wait": 120})
time.sleep(0)  # the request is in the shim's hands once the next call is answered
a.call({"id": "p", "op": "ping"})

step("revoke home1")
m = a.next(lambda m: m.get("id") == "s1" and "ok" in m, "end of the home1 subscription")
if m.get("ok") is not False or m["error"]["code"] != "forbidden": fail("s1 end: %r" % m)
m = a.next(lambda m: m.get("id") == "r1" and "ok" in m, "end of the home1 request")
if m.get("ok") is not False or m["error"]["code"] != "forbidden" or len(m.get("request", "")) != 36: fail("r1 end: %r" % m)
if a.call({"id": 3, "op": "get", "topic": "fr/home1/status"})["error"]["code"] != "forbidden": fail("home1 still readable")
if a.call({"id": 4, "op": "request", "home": "home1", "ctl": "k", "action": "x"})["error"]["code"] != "forbidden": fail("home1 still requestable")
if [h["home"] for h in a.call({"id": 5, "op": "list"})["homes"]] != ["home2"]: fail("list after revoke")
subprocess.run(["mosquitto_pub", "-p", str(bport), "-u", "home-home2", "-P", open(tmp + "/h2.pw").read().strip(),
                "-q", "1", "-t", "fr/home2/ctl/k/status", "-r", "-m", "online"], check=True)
m = a.next(lambda m: m.get("id") == "s2" and m.get("topic") == "fr/home2/ctl/k/status", "home2 message")
ok("revoke on an open connection: home1's subscription and request end (forbidden), home2 goes on")

step("revoke home2")
m = a.next(lambda m: m.get("id") == "s2" and "ok" in m, "end of the home2 subscription")
if m["error"]["code"] != "forbidden": fail("s2 end: %r" % m)
if a.call({"id": 6, "op": "list"}).get("homes") != []: fail("alice still has homes")
if a.call({"id": 7, "op": "ping"}).get("ok") is not True: fail("alice's connection")
ok("revoking the last home: the user keeps the connection and sees nothing")
print("end", flush=True)
PY
cp "$S/homes/home2/mqtt.pw" "$T/h2.pw"
exec 5<>"$T/step"
python3 "$T/alice.py" "$SPORT" "$BPORT" "$T" <&5 >"$T/alice.out" 2>&1 &
PYPID=$!
next_step() {  # waits for the client to ask for step $1
	fr_wait 30 "client at step $1" grep -q "step $1" "$T/alice.out"
}
next_step "revoke home1"
: >"$T/admin.log"
admin revoke alice home1 || fr_fail "revoke alice home1: $(cat "$T/admin.log")"
grep -q "frAroundWeb reloaded: 2 users" "$T/admin.log" || fr_fail "revoke not confirmed: $(cat "$T/admin.log")"
echo done >&5
next_step "revoke home2"
: >"$T/admin.log"
admin revoke alice home2 || fr_fail "revoke alice's last home: $(cat "$T/admin.log")"
grep -q "frAroundWeb reloaded: 2 users" "$T/admin.log" || fr_fail "last revoke not confirmed: $(cat "$T/admin.log")"
echo done >&5
wait "$PYPID" || fr_fail "shim client: $(cat "$T/alice.out")"
cat "$T/alice.out" >&2
grep -q '^homes = \[\]' <(sed -n 's/.*name = "alice";.*\(homes = \[\]\).*/\1/p' "$S/web/users.conf") ||
	fr_fail "alice's entry: $(grep alice "$S/web/users.conf")"
fr_ok "fr-admin revoke (also of the last home) confirmed by frAroundWeb and applied to the open connection"

# frAroundWeb cannot read the file fr-admin writes (root's, mode 0600): fr-admin must say so.
unset FR_WEB_GROUP
: >"$T/admin.log"
if admin grant alice home1; then fr_fail "fr-admin exited 0 though frAroundWeb could not load the users"; fi
grep -q "frAroundWeb could not load" "$T/admin.log" || fr_fail "no failure message: $(cat "$T/admin.log")"
grep -q "frAroundWeb reloaded" "$T/admin.log" && fr_fail "fr-admin claimed a reload: $(cat "$T/admin.log")"
fr_grep_log web "not reloaded, the previous users stay" || fr_fail "frAroundWeb did not log the refusal"
# And when frAroundWeb's /healthz cannot be reached, it does not claim success either.
export FR_WEB_GROUP=nogroup
: >"$T/admin.log"
if FR_WEB_HTTP=127.0.0.1:1 "$ADMIN" --state "$S" revoke alice home1 2>>"$T/admin.log"; then
	fr_fail "fr-admin exited 0 without a confirmation"
fi
grep -q "did not confirm the new users" "$T/admin.log" || fr_fail "no 'did not confirm': $(cat "$T/admin.log")"
: >"$T/admin.log"
admin grant alice home1 || fr_fail "grant after the file is readable again: $(cat "$T/admin.log")"
grep -q "frAroundWeb reloaded: 2 users" "$T/admin.log" || fr_fail "not confirmed: $(cat "$T/admin.log")"
fr_ok "fr-admin reports a users file frAroundWeb could not load, and an unconfirmed reload, with exit 1"
