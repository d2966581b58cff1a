#!/usr/bin/env bash
# frMhs's serial display (docs/display-protocol.md) with a pseudo-terminal standing in for the
# M5Stack: the full-state frame after opening (after a lone newline that ends any partial
# line), broker up, controllers 0/0 then 1/1, the last command, the published display text
# (escaped), heartbeats, a sync request from the device, and an unplug (the port's path
# disappears, writes fail) followed by a replug on a new pty: the port is reopened and the
# current state sent again, with one log line per state change; "bye" on a clean exit. Each
# session's bytes are also fed to the device side of the protocol (the reference sketch's
# fr_proto.c, in tests/tools/frproto-read), which must read them without a rejected line.
. "$(dirname "$0")/lib.sh"

fr_secret "$T/home.secret"
BPORT=$(fr_free_port)
APORT=$(fr_free_port)
fr_mosquitto broker "$BPORT"
fr_start dev python3 "$FR_SRC/tests/integration/bin/ptydev" "$T/ttyFR" "$T"
fr_wait 5 "pty device plugged" grep -qx "plugged 1" "$T/dev.state"
fr_mhs_conf home1 "$APORT" "$BPORT"
echo "m5stack = { port = \"$T/ttyFR\"; baud = 115200; };" >>"$T/mhs.conf"
"$FR_BIN/frMhs" --check-config -c "$T/mhs.conf" >/dev/null || fr_fail "frMhs --check-config"
fr_start mhs "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"

# dev_field N KEY: the value of the last complete "FR1 KEY=" line of session N (unescaped
# values are compared escaped, as on the wire).
dev_field() {
	python3 - "$T/dev.$1" "$2" <<'PY'
import sys
data = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
lines = data.split("\n")[:-1]          # the last piece is an incomplete line
vals = [l.split("=", 1)[1] for l in lines if l.startswith("FR1 " + sys.argv[2] + "=")]
if not vals:
    sys.exit(1)
print(vals[-1])
PY
}
dev_is() { [ "$(dev_field "$1" "$2")" = "$3" ]; }
dev_count() { grep -c "^FR1 $2=" "$T/dev.$1" 2>/dev/null; }
dev_count_ge() { [ "$(dev_count "$1" "$2")" -ge "$3" ]; }
# dev_valid N: every line is a known FR1 field, the session starts with hello, fields come in
# frames closed by end=<consecutive frame numbers>, pings never fall inside a frame.
dev_valid() {
	python3 - "$T/dev.$1" <<'PY'
import re, sys
lines = open(sys.argv[1], "rb").read().decode("utf-8").split("\n")[:-1]
keys = "hello server home broker online total cmd text end ping bye".split()
assert lines[:2] == ["", "FR1 hello=1"], "a session starts with an empty line, then hello: %r" % lines[:2]
lines = lines[1:]
inframe, frames, pings, last = False, 0, 0, 0
for i, l in enumerate(lines):
    m = re.fullmatch(r"FR1 ([a-z]+)=(.*)", l)
    assert m and m.group(1) in keys, "bad line %r" % l
    k, v = m.groups()
    assert not re.search(r"[\x00-\x1f\x7f]", v), "unescaped control byte in %r" % l
    assert len(l) + 1 <= 512, "line too long"
    if k == "end":
        assert inframe, "end without fields"
        assert v.isdigit() and (frames == 0 or int(v) == last + 1), "frame number %s after %s" % (v, last)
        frames, last = frames + 1, int(v)
        inframe = False
    elif k == "bye":
        assert not inframe and i == len(lines) - 1, "bye inside a frame or not last"
    elif k == "ping":
        assert not inframe, "ping inside a frame"
        pings += 1
        assert v.isdigit()
    else:
        if k == "hello":
            assert not inframe and v == "1"
        inframe = True
print(frames, pings)
PY
}

fr_wait 10 "hello on the serial port" dev_count_ge 1 end 1
head -n 10 "$T/dev.1" | python3 -c '
import sys
got = [l.split("=")[0] for l in sys.stdin.read().split("\n")[1:10]]
want = ["FR1 " + k for k in "hello server home broker online total cmd text end".split()]
sys.exit(0 if got == want else 1)' || fr_fail "first frame is not a full-state frame: $(head -n 9 "$T/dev.1")"
dev_is 1 home home1 || fr_fail "home"
fr_grep_log mhs "m5stack $T/ttyFR: open (tty, 115200 baud)" || fr_fail "open not logged"
fr_wait 10 "broker=up" dev_is 1 broker up
dev_is 1 online 0 && dev_is 1 total 0 || fr_fail "controllers not 0/0 before any controller"
[ "$(head -c 1 "$T/dev.1" | od -An -c | tr -d ' ')" = '\n' ] || fr_fail "the session does not start with a newline"
fr_ok "full-state frame after open: newline, hello, home, broker up, 0/0 controllers"

fr_mhc_conf c2 127.0.0.2 "$APORT"
fr_start c2 "$FR_BIN/frMhc" -f -c "$T/c2.conf"
fr_wait 10 "online=1" dev_is 1 online 1
dev_is 1 total 1 || fr_fail "total after c2: $(dev_field 1 total)"
fr_ok "a real controller shows as 1/1 online"

out=$(mosquitto_rr -p "$BPORT" -t fr/home1/ctl/c2/cmd -e fr/home1/reply/r2 -W 10 \
	-m '{"id":"disp-1","action":"rec","args":{"tag":"disp"},"progress":false}') || fr_fail "command"
[ "$(fr_json "$out" status)" = ok ] || fr_fail "command result: $out"
fr_wait 5 "cmd=c2/rec ok" dev_is 1 cmd "c2/rec ok"
mosquitto_rr -p "$BPORT" -t fr/home1/ctl/c2/cmd -e fr/home1/reply/r2 -W 10 \
	-m '{"id":"disp-2","action":"fail","progress":false}' >/dev/null || fr_fail "failing command"
fr_wait 5 "cmd=c2/fail failed" dev_is 1 cmd "c2/fail failed"
fr_ok "the last command and its result: $(dev_field 1 cmd)"

mosquitto_pub -p "$BPORT" -t fr/home1/display -m hello
fr_wait 5 "text=hello" dev_is 1 text hello
mosquitto_pub -p "$BPORT" -t fr/home1/display -m "$(printf 'two\nlines\\ tab\there caf\303\251')"
fr_wait 5 "escaped text" dev_is 1 text 'two\nlines\\ tab\there café'
n0=$(dev_count 1 text)
mosquitto_pub -p "$BPORT" -t fr/home1/display -m hello
fr_wait 5 "the same text published again is sent again" dev_count_ge 1 text $((n0 + 1))
fr_ok "display text, escaped (\\n, \\\\, \\t, UTF-8 as is), re-publication sent again"

before=$(dev_count 1 text)
seq 1 40 | sed 's/^/burst-/' | mosquitto_pub -p "$BPORT" -t fr/home1/display -l
fr_wait 5 "text=burst-40" dev_is 1 text burst-40
fr_log "a burst of 40 texts gave $(( $(dev_count 1 text) - before )) text lines (coalesced, at most one frame per 200 ms)"

fr_wait 10 "two heartbeats" dev_count_ge 1 ping 2
kill -HUP "$(fr_pid dev)"
fr_wait 5 "full state again after the device's sync request" dev_count_ge 1 hello 2
fr_wait 5 "second full frame complete" python3 -c '
import sys; l = open(sys.argv[1]).read().split("\n")[:-1]
i = max(k for k, x in enumerate(l) if x == "FR1 hello=1")
sys.exit(0 if any(x.startswith("FR1 end=") for x in l[i:]) else 1)' "$T/dev.1"
# The device talking must not read as an unplug (a tty read with nothing waiting is no EOF):
# the port stays open, one "open" so far, no close. Before #11.15's fix frMhs closed the port
# here and reopened it a second later; the unplug below usually came first and hid it.
fr_wait 5 "ping after the sync request" dev_count_ge 1 ping $(( $(dev_count 1 ping) + 1 ))
! fr_grep_log mhs "m5stack $T/ttyFR: .*closed" || fr_fail "port closed after the device talked: $(grep m5stack "$T/mhs.log")"
[ "$(grep -c "m5stack $T/ttyFR: open" "$T/mhs.log")" = 1 ] || fr_fail "port reopened after the device talked"
v=$(dev_valid 1) || fr_fail "protocol of session 1"
fr_ok "heartbeats, sync request answered with a full frame, boot noise ignored; session 1 valid (frames, pings: $v)"

# Unplug: the pty disappears; frMhs closes, retries every second, logs once.
kill -USR1 "$(fr_pid dev)"
fr_wait 5 "unplugged" grep -qx unplugged "$T/dev.state"
fr_wait 5 "close logged" fr_grep_log mhs "m5stack $T/ttyFR: .*closed"
fr_wait 5 "open failure logged" fr_grep_log mhs "m5stack $T/ttyFR: cannot open"
mosquitto_pub -p "$BPORT" -t fr/home1/display -m "while unplugged"
kill -0 "$(fr_pid mhs)" || fr_fail "frMhs died on unplug"
sleep 2.5   # some retries happen: still one line
[ "$(grep -c "m5stack $T/ttyFR: cannot open" "$T/mhs.log")" = 1 ] || fr_fail "open failure logged per retry"
fr_ok "unplug: closed, one log line for the retries"

kill -USR2 "$(fr_pid dev)"
fr_wait 5 "plugged 2" grep -qx "plugged 2" "$T/dev.state"
fr_wait 5 "hello after replug" dev_count_ge 2 end 1
fr_wait 3 "state after replug" dev_is 2 text "while unplugged"
dev_is 2 broker up && dev_is 2 online 1 && dev_is 2 total 1 && dev_is 2 cmd "$(dev_field 1 cmd)" ||
	fr_fail "state after replug: $(cat "$T/dev.2")"
[ "$(grep -c "m5stack $T/ttyFR: open" "$T/mhs.log")" = 2 ] || fr_fail "reopen not logged once"
fr_ok "replug: reopened within a second, full current state sent"

fr_stop c2 TERM
fr_wait 10 "online=0" dev_is 2 online 0
dev_is 2 total 1 || fr_fail "total after c2 stopped: $(dev_field 2 total)"
fr_stop broker TERM
fr_wait 10 "broker=down" dev_is 2 broker down
fr_ok "controller gone: 0/1; broker gone: down"

# A clean exit says bye, so the device need not wait for the heartbeat to stop.
fr_stop mhs TERM
fr_wait 5 "bye after a clean exit" grep -qx "FR1 bye=stopped" "$T/dev.2"
v=$(dev_valid 2) || fr_fail "protocol of session 2"
fr_ok "frMhs stopped: bye=stopped last; session 2 valid (frames, pings: $v)"

# The device side (the reference sketch's fr_proto.c) reads both sessions, at every chunk size
# a serial port might deliver, without rejecting a line or missing a frame, and ends up
# showing what frMhs last sent.
# device_reads N: the device's view of session N agrees with the wire's last values.
device_reads() {
	local r; r=$("$FR_BIN/frproto-read" "$T/dev.$1") || return 1
	local k
	for k in home broker online total cmd; do
		[ "$(fr_json "$r" "$k")" = "$(dev_field "$1" "$k")" ] || { echo "$k: $r"; return 1; }
	done
	[ "$(fr_json "$r" rejected)" = 0 ] && [ "$(fr_json "$r" syncs)" = 0 ] &&
		[ "$(fr_json "$r" frames)" = "$(dev_count "$1" end)" ] || { echo "$r"; return 1; }
	echo "$r"
}
r1=$(device_reads 1) || fr_fail "the device side read session 1 as: $r1"
[ "$(fr_json "$r1" text)" = burst-40 ] || fr_fail "device text after session 1: $r1"
r2=$(device_reads 2) || fr_fail "the device side read session 2 as: $r2"
[ "$(fr_json "$r2" text)" = "while unplugged" ] && [ "$(fr_json "$r2" stopped)" = True ] ||
	fr_fail "device after session 2: $r2"
fr_ok "the device side read both sessions: $r2"
