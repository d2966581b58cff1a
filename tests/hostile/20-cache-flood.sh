#!/usr/bin/env bash
# Issue 12 item 4 (cache part): a user of home A, and home A's own account gone rogue, try to
# fill frAroundWeb's cache so that home B's state is lost, while bob (home B) reads his home
# through the shim beside them. Real broker with the accounts and ACL of broker/fr-admin, a real
# frMhs for home A answering alice's requests wherever their reply_to points, the mosquitto
# clients as attackers. Bounded: 2000 requests, 2300 messages, at most 90 s.
# Asserts: bob's reads keep >= 95 % success and a new topic of home B is cached during the flood;
# replies and other non-retained messages on state topics are not cached; home A holds at most
# its budget; frAroundWeb's memory stays bounded.
. "$(dirname "$0")/../integration/lib.sh"

ADMIN=$FR_SRC/broker/fr-admin
S=$T/state
admin() { "$ADMIN" --state "$S" "$@" >>"$T/admin.log" 2>&1; }
admin init --broker-uri mqtt://127.0.0.1:1 || fr_fail "fr-admin init"
admin add-home A && admin add-home B || fr_fail "add-home"
admin add-user alice --homes A --password alice-pw && admin add-user bob --homes B --password bob-pw ||
	fr_fail "add-user"
BPORT=$(fr_free_port)
APORT=$(fr_free_port)
SPORT=$(fr_free_port)
HPORT=$(fr_free_port)
fr_acl_broker broker "$BPORT" "$S"
fr_asan_quarantine 16

fr_secret "$T/home.secret"
cat >"$T/mhs.conf" <<CONF
home = "A";
secret_file = "$T/home.secret";
state_dir = "$T/state-mhs";
discovery = { address = "127.255.255.255"; port = $APORT; interval = 0.3; offline_after = 3; };
mqtt = { uri = "mqtt://127.0.0.1:$BPORT"; username = "home-A"; password_file = "$S/homes/A/mqtt.pw";
         backoff_min = 0.1; backoff_max = 1; };
CONF
fr_start mhs "$FR_BIN/frMhs" -f -c "$T/mhs.conf"
HBPW=$(cat "$S/homes/B/mqtt.pw")
HAPW=$(cat "$S/homes/A/mqtt.pw")
homeb() { mosquitto_pub -p "$BPORT" -u home-B -P "$HBPW" -q 1 "$@"; }
homeb -r -t fr/B/status -m online || fr_fail "home B status"
homeb -r -t fr/B/ctl/k/status -m online || fr_fail "home B controller"

cat >"$T/web.conf" <<CONF
instance = "h20";
users_file = "$S/web/users.conf";
audit_file = "$T/audit.log";
shim = { address = "127.0.0.1"; port = $SPORT; };
http = { address = "127.0.0.1"; port = $HPORT; };
max_topics = 5000;
max_topics_per_home = 100;
mqtt = { uri = "mqtt://127.0.0.1:$BPORT"; username = "fr-web"; password_file = "$S/web/password";
         backoff_min = 0.1; backoff_max = 1; };
CONF
fr_start web "$FR_BIN/frAroundWeb" -f -c "$T/web.conf"
fr_wait 10 "shim listening" bash -c "exec 3<>/dev/tcp/127.0.0.1/$SPORT"
fr_wait 10 "frMhs of home A online" fr_grep_log broker "home-A"

# The attack, in the background: alice's requests to a controller that does not exist, each
# with a reply_to naming a ghost controller's status (frMhs answers "offline" there); home A's
# account publishing 300 retained and 2000 non-retained ghost states.
for i in $(seq 2000); do
	printf '{"id":"flood-%d","action":"x","reply_to":"fr/A/ctl/ghost%d/status","progress":false}\n' "$i" "$i"
done >"$T/requests"
for i in $(seq 100); do printf 'online\n'; done >"$T/lines"
cat >"$T/attack.sh" <<EOF
mosquitto_pub -p $BPORT -u alice -P alice-pw -q 1 -t fr/A/ctl/nobody/cmd -l <"$T/requests"
# 300 retained ghost controllers (one mosquitto_pub each: -l sends every line to one topic),
# and 20 x 100 non-retained messages on state topics.
for i in \$(seq 300); do
	mosquitto_pub -p $BPORT -u home-A -P $HAPW -q 1 -r -t "fr/A/ctl/retained\$i/status" -m online
	if [ \$((i % 15)) = 0 ]; then
		mosquitto_pub -p $BPORT -u home-A -P $HAPW -q 0 -t "fr/A/ctl/live\$i/info" -l <"$T/lines"
	fi
done
EOF

cat >"$T/legit.py" <<'PY'
import json, os, socket, subprocess, sys, time
sport, bport, hbpw, tmp = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
def fail(msg): print("FAIL: " + msg, flush=True); sys.exit(1)
s = socket.create_connection(("127.0.0.1", sport)); s.settimeout(30)
f = s.makefile("rb")
n = 0
def call(op):
    global n
    n += 1
    op["id"] = n
    s.sendall(json.dumps(op).encode() + b"\n")
    while True:
        m = json.loads(f.readline())
        if m.get("id") == n and "ok" in m: return m
if call({"op": "auth", "token": "bob-pw"}).get("ok") is not True: fail("bob auth")
def good(topic, want):
    m = call({"op": "get", "topic": topic})
    return m.get("ok") is True and m.get("payload") == want
# Before the attack.
for _ in range(20):
    if not good("fr/B/status", "online"): fail("home B not readable before the attack")
attack = subprocess.Popen(["bash", os.path.join(tmp, "attack.sh")])
tries = oks = 0
k2_sent = k2_seen = False
end = time.time() + 90
while time.time() < end and (attack.poll() is None or tries < 200):
    for topic, want in (("fr/B/status", "online"), ("fr/B/ctl/k/status", "online")):
        tries += 1
        oks += good(topic, want)
    if not k2_sent and tries > 50:
        # Home B gets a new controller during the flood: it must be cached.
        subprocess.run(["mosquitto_pub", "-p", str(bport), "-u", "home-B", "-P", hbpw, "-q", "1",
                        "-r", "-t", "fr/B/ctl/k2/status", "-m", "online"], check=True)
        k2_sent = True
    if k2_sent and not k2_seen:
        k2_seen = good("fr/B/ctl/k2/status", "online")
    m = call({"op": "list"})
    tries += 1
    oks += m.get("ok") is True and m["homes"][0]["status"] == "online"
    time.sleep(0.01)
if attack.poll() is None:
    attack.kill(); fail("the attack did not end within 90 s")
end = time.time() + 15
while not k2_seen and time.time() < end:
    k2_seen = good("fr/B/ctl/k2/status", "online"); time.sleep(0.1)
# And one more after the flood: home A's ghosts must not have used up the room.
subprocess.run(["mosquitto_pub", "-p", str(bport), "-u", "home-B", "-P", hbpw, "-q", "1",
                "-r", "-t", "fr/B/ctl/k3/status", "-m", "online"], check=True)
end = time.time() + 15
k3_seen = False
while not k3_seen and time.time() < end:
    k3_seen = good("fr/B/ctl/k3/status", "online"); time.sleep(0.1)
if not k3_seen: fail("home B's controller status published after the flood was never cached")
print("legitimate reads: %d of %d ok" % (oks, tries), flush=True)
if oks < 0.95 * tries: fail("bob's reads: %d of %d ok (< 95 %%)" % (oks, tries))
if not k2_seen: fail("home B's new controller status was never cached during the flood")
# What alice can see of her own home: no replies cached as state.
a = socket.create_connection(("127.0.0.1", sport)); a.settimeout(30)
af = a.makefile("rb")
a.sendall(b'{"id":1,"op":"auth","token":"alice-pw"}\n'); json.loads(af.readline())
a.sendall(b'{"id":2,"op":"get","topic":"fr/A/ctl/ghost7/status"}\n')
m = json.loads(af.readline())
if m.get("error", {}).get("code") != "not_found": fail("a reply to a ghost controller was cached: %r" % m)
print("ok", flush=True)
PY
rss0=$(fr_vm "$(fr_pid web)" VmRSS)
python3 "$T/legit.py" "$SPORT" "$BPORT" "$HBPW" "$T" || fr_fail "legitimate client beside the flood"
rss1=$(fr_vm "$(fr_pid web)" VmRSS)
kill -0 "$(fr_pid web)" || fr_fail "frAroundWeb died"
fr_log "frAroundWeb RSS: $rss0 KiB before, $rss1 KiB after the flood"
[ "$rss1" -gt 0 ] && [ $((rss1 - rss0)) -lt 32768 ] || fr_fail "frAroundWeb grew by $((rss1 - rss0)) KiB"
metrics=$(curl -s "http://127.0.0.1:$HPORT/metrics")
metric() { awk -v n="$1" '$1 == n {print $2}' <<<"$metrics"; }
topics=$(metric fr_cache_topics)
[ "$topics" -le 105 ] || fr_fail "the cache holds $topics topics, more than home A's budget + home B's"
[ "$(metric 'fr_cache_refused_total{reason="home_topics"}')" -gt 0 ] || fr_fail "no home budget refusal counted"
[ "$(metric 'fr_cache_refused_total{reason="not_retained"}')" -gt 0 ] || fr_fail "no non-retained refusal counted"
[ "$(grep -c 'home A over its budget' "$T/web.log")" -le 3 ] || fr_fail "budget refusals not rate-limited in the log"
[ "$(grep -c 'not retained, not kept' "$T/web.log")" -le 3 ] || fr_fail "non-retained refusals not rate-limited in the log"
fr_ok "cache flood by home A: home B kept >= 95 %, $topics topics cached, RSS +$((rss1 - rss0)) KiB"
