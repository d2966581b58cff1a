#!/usr/bin/env bash
# install-test.sh DEBDIR: the amd64 packages in a clean Debian 12 root.
#   1. a minbase bookworm root (debootstrap, cached in $FR_ROOTFS_CACHE, default
#      /var/cache/fr-test/bookworm-minbase; only the first run downloads it), copied fresh;
#   2. apt installs fr-controller, fr-home and fr-server from DEBDIR with their dependencies
#      from the Debian mirror (downloaded .debs cached beside the root);
#   3. checks what the maintainer scripts did (users, groups, secret, conffiles, units) and
#      runs systemd-analyze verify and security --offline on the installed units;
#   4. starts mosquitto, then frMhs, frMhc and frAroundWeb each as its unit would
#      (packaging/tests/unit-run: user, groups, sandbox mounts, credentials, Type=notify),
#      and runs a command round trip through the broker and one through frAroundWeb's shim;
#   5. stops them: each reports STOPPING=1 and exits 0.
# Everything listens on 127.0.0.1 (free ports); the root shares this machine's network.
set -u
DEBS=$(cd "${1:?usage: install-test.sh DEBDIR}" && pwd)
FR_SRC=$(cd "$(dirname "$0")/../.." && pwd)
FR_BIN=${FR_BIN:-$FR_SRC/build/bin}
export FR_SRC FR_BIN
. "$FR_SRC/tests/integration/lib.sh"
FR_NAME=install-test
CACHE=${FR_ROOTFS_CACHE:-/var/cache/fr-test/bookworm-minbase}
ARCHIVES=${FR_APT_CACHE:-/var/cache/fr-test/apt-archives}
MIRROR=${FR_DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOT=$T/root
MOUNTS=()

umount_all() {
	local i
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[$i]}" 2>/dev/null; done
	MOUNTS=()
}
cleanup() {
	local rc=$?
	# The daemons first (fr_teardown), then the mounts, then the root.
	for pid in "${FR_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for f in "$T"/unit-*/pid; do [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null; done
	sleep 0.5
	umount_all
	(exit $rc)
	fr_teardown
}
trap cleanup EXIT
bind() { mount --bind "$1" "$2" && MOUNTS+=("$2"); }
inroot() { chroot "$ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

# 1. The cached root.
if [ ! -x "$CACHE/usr/bin/apt-get" ]; then
	fr_log "debootstrap --variant=minbase bookworm into $CACHE (first run only)"
	rm -rf "$CACHE.tmp"
	mkdir -p "$(dirname "$CACHE")"
	debootstrap --variant=minbase bookworm "$CACHE.tmp" "$MIRROR" >"$T/debootstrap.log" 2>&1 ||
		fr_fail "debootstrap failed: $(tail -5 "$T/debootstrap.log")"
	rm -rf "$CACHE.tmp/var/cache/apt/archives/"*.deb
	mv "$CACHE.tmp" "$CACHE"
fi
cp -a "$CACHE" "$ROOT" || fr_fail "copy of the cached root"
mkdir -p "$ARCHIVES/partial"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$MIRROR" "$MIRROR" >"$ROOT/etc/apt/sources.list"
# No service starts inside the root while packages install (mosquitto's would take port 1883).
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod +x "$ROOT/usr/sbin/policy-rc.d"
bind "$ARCHIVES" "$ROOT/var/cache/apt/archives"
mount -t proc proc "$ROOT/proc" && MOUNTS+=("$ROOT/proc")
bind /dev "$ROOT/dev"
mkdir -p "$ROOT/tmp/debs"
cp "$DEBS"/fr-*_amd64.deb "$ROOT/tmp/debs/"
fr_ok "clean bookworm minbase root ready ($(du -smx "$ROOT" | cut -f1) MB)"

# 2. Install.
inroot apt-get -q update >"$T/apt.log" 2>&1 || fr_fail "apt-get update in the root: $(tail -5 "$T/apt.log")"
debs=()
for f in "$ROOT"/tmp/debs/fr-*_amd64.deb; do debs+=("/tmp/debs/${f##*/}"); done
inroot apt-get -q install -y --no-install-recommends "${debs[@]}" >>"$T/apt.log" 2>&1 ||
	fr_fail "apt-get install of the packages: $(tail -20 "$T/apt.log")"
for p in fr-controller fr-home fr-server; do
	inroot dpkg-query -W -f='${Status}\n' "$p" | grep -qx "install ok installed" || fr_fail "$p not installed"
done
fr_ok "fr-controller, fr-home, fr-server installed with their dependencies from the mirror"

# 3. What the maintainer scripts made.
for u in frmhc frmhs fraroundweb; do
	inroot getent passwd "$u" | grep -q ":/usr/sbin/nologin$" || fr_fail "system user $u: $(inroot getent passwd "$u")"
done
inroot id -nG frmhs | grep -qw dialout || fr_fail "frmhs not in dialout: $(inroot id -nG frmhs)"
inroot id -nG www-data | grep -qw fraroundweb || fr_fail "www-data not in fraroundweb"
[ "$(stat -c '%a %U' "$ROOT/etc/fr/home.secret")" = "600 root" ] || fr_fail "home.secret: $(stat -c '%a %U' "$ROOT/etc/fr/home.secret")"
grep -Eqx '[0-9a-f]{64}' "$ROOT/etc/fr/home.secret" || fr_fail "home.secret is not 64 hex digits"
for c in frmhc.conf frmhs.conf frAroundWeb.conf; do
	inroot dpkg-query -W -f='${Conffiles}\n' fr-controller fr-home fr-server | grep -q " /etc/fr/$c " ||
		fr_fail "/etc/fr/$c is not a conffile"
done
[ -L "$ROOT/etc/systemd/system/multi-user.target.wants/frmhs.service" ] || fr_fail "frmhs.service not enabled"
fr_ok "system users frmhc/frmhs/fraroundweb, frmhs in dialout, home secret 0600, conffiles, units enabled"
for u in frmhc frmhs fraroundweb; do
	systemd-analyze verify --root="$ROOT" --man=no "/lib/systemd/system/$u.service" >"$T/verify-$u.log" 2>&1 ||
		fr_fail "systemd-analyze verify $u.service: $(cat "$T/verify-$u.log")"
	score=$(systemd-analyze security --offline=true --root="$ROOT" "$u.service" 2>&1 | tail -1)
	case "$score" in *" OK "* | *" SAFE "*) ;; *) fr_fail "$u.service exposure: $score" ;; esac
	fr_log "$u.service: verify clean; ${score#→ }"
done

# 4. Configure for loopback as an administrator would, and start.
BPORT=$(fr_free_port)
APORT=$(fr_free_port)
cat >"$ROOT/etc/fr/test-mosquitto.conf" <<CONF
listener $BPORT 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
persistence false
CONF
fr_start broker chroot "$ROOT" setpriv --reuid=mosquitto --regid=mosquitto --init-groups \
	/usr/sbin/mosquitto -c /etc/fr/test-mosquitto.conf
fr_wait 10 "mosquitto in the root" bash -c "exec 3<>/dev/tcp/127.0.0.1/$BPORT"
echo dummy >"$ROOT/etc/fr/mqtt.pw"
chmod 600 "$ROOT/etc/fr/mqtt.pw"
sed -i -e "s|^discovery = .*|discovery = { address = \"127.255.255.255\"; port = $APORT; interval = 0.3; offline_after = 3; };|" \
	-e "s|uri = \"mqtts://broker.example.org:8883\";|uri = \"mqtt://127.0.0.1:$BPORT\";|" \
	-e '/username = /d' -e '/password_file = /d' -e '/ca_file = /d' "$ROOT/etc/fr/frmhs.conf"
sed -i -e "s|^listen = .*|listen = { address = \"127.0.0.1\"; port = 0; };|" \
	-e "s|^announce = .*|announce = { address = \"127.255.255.255\"; port = $APORT; interval = 0.3; };|" \
	"$ROOT/etc/fr/frmhc.conf"
SPORT=$(fr_free_port)
HPORT=$(fr_free_port)
inroot fr-admin init --broker-uri "mqtt://127.0.0.1:$BPORT" >"$T/admin.log" 2>&1 || fr_fail "fr-admin init: $(cat "$T/admin.log")"
inroot fr-admin add-home home1 >>"$T/admin.log" 2>&1 || fr_fail "fr-admin add-home"
TOKEN=$(od -An -tx1 -N16 /dev/urandom | tr -d " \n")
inroot fr-admin add-user alice --homes home1 --password "$TOKEN" >>"$T/admin.log" 2>&1 || fr_fail "fr-admin add-user: $(cat "$T/admin.log")"
[ -n "$TOKEN" ] || fr_fail "no token from fr-admin add-user: $(cat "$T/admin.log")"
sed -i -e "s|port = 7420;|port = $SPORT;|" -e "s|port = 7421;|port = $HPORT;|" \
	-e "s|uri = \"mqtt://127.0.0.1:1883\";|uri = \"mqtt://127.0.0.1:$BPORT\";|" "$ROOT/etc/fr/frAroundWeb.conf"
for c in frmhs frmhc; do
	inroot "/usr/sbin/$([ $c = frmhs ] && echo frMhs || echo frMhc)" --check-config -c "/etc/fr/$c.conf" >/dev/null 2>"$T/check-$c.log" ||
		true   # the credential path exists only while the unit runs: checked by the start below
done

# start_unit UNIT USER: started by unit-run; READY=1 awaited; the process must run with the
# user's uid, gid and supplementary groups as the root's /etc/passwd and /etc/group say.
start_unit() {
	local u=$1 user=$2
	fr_start "unit-$u" "$FR_SRC/packaging/tests/unit-run" "$ROOT" "$ROOT/lib/systemd/system/$u.service" "$T/unit-$u"
	fr_wait 20 "$u.service READY=1 (Type=notify)" test -e "$T/unit-$u/ready"
	local pid; pid=$(cat "$T/unit-$u/pid")
	local want got
	want="$(inroot id -u "$user") $(inroot id -g "$user") $(inroot id -G "$user" | tr ' ' '\n' | sort -n | tr '\n' ' ')"
	got="$(awk '/^Uid:/{print $2}' "/proc/$pid/status") $(awk '/^Gid:/{print $2}' "/proc/$pid/status") $(awk '/^Groups:/{for(i=2;i<=NF;i++)print $i}' "/proc/$pid/status" | sort -n | tr '\n' ' ')"
	[ "$got" = "$want" ] || fr_fail "$u.service runs as uid gid groups '$got', want '$want' ($user)"
	fr_log "$u.service ready (READY=1): pid $pid as $user ($(inroot id "$user"))"
}
start_unit frmhs frmhs
start_unit frmhc frmhc
start_unit fraroundweb fraroundweb
grep -q "CapBnd:	0000000000000000" "/proc/$(cat "$T/unit-frmhs/pid")/status" || fr_fail "frmhs keeps capabilities"
grep -q "NoNewPrivs:	1" "/proc/$(cat "$T/unit-frmhc/pid")/status" || fr_fail "frmhc without no_new_privs"
fr_ok "frMhs, frMhc, frAroundWeb started as their units: own users, no capabilities, READY=1"

# 5. Round trips.
fr_wait 20 "controller kitchen online" fr_retained_is "$BPORT" fr/home1/ctl/kitchen/status online
out=$(mosquitto_rr -p "$BPORT" -t fr/home1/ctl/kitchen/cmd -e fr/home1/reply/pkgtest -W 20 \
	-m '{"id":"pkg-1","action":"lamp","args":{"state":"on"},"progress":false}') || fr_fail "mosquitto_rr round trip"
[ "$(fr_json "$out" status)" = ok ] || fr_fail "lamp on: $out"
[ "$(cat "$ROOT/var/lib/fr/frmhc/lamp.state")" = on ] || fr_fail "the action did not write its state in the StateDirectory"
fr_ok "MQTT round trip: lamp on -> $(fr_json "$out" status), state file in /var/lib/fr/frmhc written by the action"
shim=$(python3 - "$SPORT" "$TOKEN" <<'PY'
import json, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
f = s.makefile("rw")
def req(o):
    f.write(json.dumps(o) + "\n"); f.flush()
    while True:
        r = json.loads(f.readline())
        if r.get("id") == o["id"] and "ok" in r:
            return r
a = req({"id": 1, "op": "auth", "token": sys.argv[2]})
assert a["ok"], a
r = req({"id": 2, "op": "request", "home": "home1", "ctl": "kitchen", "action": "lamp",
         "args": {"state": "off"}, "wait": 20})
print(json.dumps(r))
PY
) || fr_fail "shim round trip: $shim"
case "$shim" in *'"ok": true'*) ;; *) fr_fail "shim request: $shim" ;; esac
[ "$(cat "$ROOT/var/lib/fr/frmhc/lamp.state")" = off ] || fr_fail "lamp off through the shim did not run"
fr_ok "shim round trip through frAroundWeb: $shim"

# 6. Stop as systemd would (SIGTERM): STOPPING=1, exit 0.
for u in frmhc frmhs fraroundweb; do
	kill -TERM "$(cat "$T/unit-$u/pid")"
	fr_wait 30 "$u.service exits" test -e "$T/unit-$u/exit"
	[ "$(cat "$T/unit-$u/exit")" = 0 ] || fr_fail "$u exit status $(cat "$T/unit-$u/exit")"
	grep -q "STOPPING=1" "$T/unit-$u/notify.log" || fr_fail "$u sent no STOPPING=1"
done
fr_ok "SIGTERM: each daemon sent STOPPING=1 and exited 0"
echo "install test: 1 passed, 0 failed"
