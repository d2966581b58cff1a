#!/usr/bin/env bash
# Issue 11 item 4, the controller's side: a command refused because its start could not be
# recorded durably (the journal's filesystem is full) is answered failed, "recorded": false,
# and not remembered; once there is room again the same id runs, exactly once. The journal
# lives on a 1 MiB tmpfs the test mounts (needs root, as CI runs) and fills.
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || fr_fail "this test needs root (it mounts a tmpfs)"
mkdir -p "$T/fs"
mount -t tmpfs -o size=1m,mode=0700 tmpfs "$T/fs" || fr_fail "mount tmpfs"
# Lazily unmounted first (frMhc may still hold the journal open), then the usual teardown.
trap 'rc=$?; umount -l "$T/fs" 2>/dev/null; (exit $rc); fr_teardown' EXIT

fr_secret "$T/home.secret"
PORT=$(fr_free_port)
ADDR=127.0.0.2
BIN=$FR_SRC/tests/integration/bin
cat >"$T/mhc.conf" <<CONF
id = "kitchen";
secret_file = "$T/home.secret";
state_dir = "$T/fs/state";
listen = { address = "$ADDR"; port = $PORT; };
$(fr_mhc_root)
actions = (
  { name = "rec"; argv = ["$BIN/record", "$T/runs", "{tag}"]; timeout = 5;
    args = ( { name = "tag"; pattern = "[a-z0-9-]{1,32}"; } ); },
  { name = "big"; argv = ["/bin/sh", "-c", "yes xxxxxxx | head -c 4096; yes yyyyyyy | head -c 4096 >&2"]; timeout = 5; }
);
CONF
fr_start mhc "$FR_BIN/frMhc" -f -v -c "$T/mhc.conf"
fr_wait 10 "frMhc listening" fr_grep_log mhc "listening on"
cmd() { "$FR_BIN/frcmd" -s "$T/home.secret" -w 20 "$@"; }

# Fill the filesystem; the journal still has its preallocated room, so use it up with results
# of 8 KiB each until one can no longer be appended.
dd if=/dev/zero of="$T/fs/fill" bs=4k 2>/dev/null
[ "$(df --output=avail "$T/fs" | tail -n1)" -lt 8 ] || fr_fail "tmpfs not full: $(df "$T/fs")"
for i in $(seq 200); do
	cmd -i "big-$i" "$ADDR:$PORT" kitchen big >/dev/null || fr_fail "big-$i"
	grep -q "journal .*: append" "$T/mhc.log" && break
done
grep -q "journal .*: append" "$T/mhc.log" || fr_fail "the journal never ran out of room"
# Then small commands until a start cannot be recorded either.
refused=
for i in $(seq 400); do
	out=$(cmd -i "full-$i" "$ADDR:$PORT" kitchen rec "tag=full-$i") && continue
	if [ "$(fr_json "$out" reason)" = "could not record the command durably" ]; then refused=$i; break; fi
	fr_fail "full-$i: $out"
done
[ -n "$refused" ] || fr_fail "no start was refused on a full disk"
[ "$(fr_json "$out" status)" = failed ] || fr_fail "refusal status: $out"
[ "$(fr_json "$out" recorded)" = False ] || fr_fail "the refusal is not marked recorded:false: $out"
grep -qx "full-$refused" "$T/runs" && fr_fail "a command whose start was not recorded ran"
# Asked again while the disk is still full: refused again, not answered from memory.
out=$(cmd -i "full-$refused" "$ADDR:$PORT" kitchen rec "tag=full-$refused") && fr_fail "ran on a full disk: $out"
[ "$(fr_json "$out" reason)" = "could not record the command durably" ] || fr_fail "second try: $out"
[ "$(fr_json "$out" duplicate)" = "" ] || fr_fail "the refusal was remembered as the outcome: $out"
fr_ok "full disk: the start is refused (failed, recorded:false), nothing runs, nothing is remembered"

# Room again: the same id runs now, once.
rm -f "$T/fs/fill"
out=$(cmd -i "full-$refused" "$ADDR:$PORT" kitchen rec "tag=full-$refused") || fr_fail "after freeing space: $out"
[ "$(fr_json "$out" status)" = ok ] || fr_fail "status: $out"
[ "$(fr_json "$out" duplicate)" = "" ] || fr_fail "answered as a duplicate: $out"
[ "$(grep -cx "full-$refused" "$T/runs")" = 1 ] || fr_fail "did not run exactly once"
out=$(cmd -i "full-$refused" "$ADDR:$PORT" kitchen rec "tag=full-$refused") || fr_fail "repeat: $out"
[ "$(fr_json "$out" duplicate)" = True ] || fr_fail "now recorded, a repeat must come from the journal: $out"
[ "$(grep -cx "full-$refused" "$T/runs")" = 1 ] || fr_fail "ran twice"
# And across a restart it is still known, and still ran once.
fr_stop mhc TERM
fr_start mhc2 "$FR_BIN/frMhc" -f -c "$T/mhc.conf"
fr_wait 10 "frMhc back" fr_grep_log mhc2 "listening on"
out=$(cmd -i "full-$refused" "$ADDR:$PORT" kitchen rec "tag=full-$refused") || fr_fail "after restart: $out"
[ "$(fr_json "$out" duplicate)" = True ] || fr_fail "after restart: $out"
[ "$(grep -cx "full-$refused" "$T/runs")" = 1 ] || fr_fail "ran again after restart"
fr_stop mhc2 TERM
fr_ok "with room again the same id runs exactly once, and stays answered across a restart"
