#!/usr/bin/env bash
# Privileges (issue 12 item 9): each daemon drops root to its configured user and group with
# that user's supplementary groups once its sockets are open, and frMhc runs actions as that
# user; frMhc started as root without 'user' refuses to start unless allow_root_actions says
# so; a daemon that cannot become its user does not start. The test needs root (as CI runs):
# it creates a system user fr-test-act in the supplementary group fr-test-dev if missing.
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || fr_fail "this test needs root (it checks what root gives up)"
# Another run of this test (the ASan build's, a parallel checkout's) may be creating them at
# the same time, and /etc/passwd may be locked for a moment: what counts is that they exist.
for _ in $(seq 50); do
	getent group fr-test-dev >/dev/null || groupadd --system fr-test-dev 2>>"$T/useradd.log"
	getent passwd fr-test-act >/dev/null || useradd --system --no-create-home \
		--shell /usr/sbin/nologin --groups fr-test-dev fr-test-act 2>>"$T/useradd.log"
	getent passwd fr-test-act >/dev/null && id -Gn fr-test-act | grep -qw fr-test-dev && break
	sleep 0.2
done
id -Gn fr-test-act | grep -qw fr-test-dev || fr_fail "could not create fr-test-act in fr-test-dev"
UID_ACT=$(id -u fr-test-act)
GID_ACT=$(id -g fr-test-act)
GID_DEV=$(getent group fr-test-dev | cut -d: -f3)
chmod 755 "$T"   # the dropped user reaches its state dir and actions through it

fr_secret "$T/home.secret"
PORT=$(fr_free_port)
ADDR=127.0.0.2
mhc_conf() {   # mhc_conf FILE EXTRA_LINES
	cat >"$1" <<CONF
id = "kitchen";
secret_file = "$T/home.secret";
state_dir = "$T/state";
journal_max = 16;
listen = { address = "$ADDR"; port = $PORT; };
actions = (
  { name = "who"; argv = ["/bin/sh", "-c", "id -u; id -g; id -G"]; timeout = 5; },
  { name = "ping"; builtin = "noop"; }
);
sensors = ( { name = "uid"; argv = ["/usr/bin/id", "-u"]; interval = 0.5; } );
$2
CONF
}
status_ids() { awk -v k="$2" '$1 == k":" { print $2, $3, $4, $5 }' "/proc/$1/status"; }

# 1. Root without 'user': refused, with the way out in the message.
mhc_conf "$T/root.conf" ""
"$FR_BIN/frMhc" --check-config -c "$T/root.conf" >/dev/null || fr_fail "check-config"
if "$FR_BIN/frMhc" -f -c "$T/root.conf" >"$T/root.out" 2>&1; then fr_fail "frMhc ran as root without user"; fi
grep -q "refusing to run actions as root: set 'user'" "$T/root.out" || fr_fail "no reason: $(cat "$T/root.out")"
[ -e "$T/state/journal" ] && fr_fail "a refused start created the journal"
fr_ok "frMhc as root without 'user' refuses to start and says why"

# 2. With user: everything after binding runs as fr-test-act, with its supplementary group.
mhc_conf "$T/mhc.conf" 'user = "fr-test-act";'
fr_start mhc "$FR_BIN/frMhc" -f -v -c "$T/mhc.conf"
fr_wait 10 "frMhc listening" fr_grep_log mhc "listening on"
fr_wait 10 "privileges dropped" fr_grep_log mhc "running as user fr-test-act"
pid=$(fr_pid mhc)
[ "$(status_ids "$pid" Uid)" = "$UID_ACT $UID_ACT $UID_ACT $UID_ACT" ] || fr_fail "frMhc uids: $(status_ids "$pid" Uid)"
[ "$(status_ids "$pid" Gid)" = "$GID_ACT $GID_ACT $GID_ACT $GID_ACT" ] || fr_fail "frMhc gids: $(status_ids "$pid" Gid)"
grep -qw "$GID_DEV" <(awk '$1 == "Groups:"' "/proc/$pid/status") || fr_fail "supplementary group missing: $(grep Groups "/proc/$pid/status")"
[ "$(stat -c %u "$T/state")" = "$UID_ACT" ] || fr_fail "state dir not handed to the user"
out=$("$FR_BIN/frcmd" -s "$T/home.secret" -w 20 -i who-1 "$ADDR:$PORT" kitchen who) || fr_fail "who: $out"
ids=$(fr_json "$out" stdout)
[ "$(sed -n 1p <<<"$ids")" = "$UID_ACT" ] || fr_fail "action uid: $ids"
[ "$(sed -n 2p <<<"$ids")" = "$GID_ACT" ] || fr_fail "action gid: $ids"
grep -qw "$GID_DEV" <<<"$(sed -n 3p <<<"$ids")" || fr_fail "action lacks the supplementary group: $ids"
fr_ok "frMhc and its actions run as fr-test-act ($UID_ACT) with its supplementary group"

# The journal works as that user, compaction included (journal_max 16: compacted at 32).
for i in $(seq 40); do
	"$FR_BIN/frcmd" -s "$T/home.secret" -w 20 -i "p-$i" "$ADDR:$PORT" kitchen ping >/dev/null ||
		fr_fail "ping $i"
done
out=$("$FR_BIN/frcmd" -s "$T/home.secret" -w 20 -i p-40 "$ADDR:$PORT" kitchen ping) || fr_fail "repeat: $out"
[ "$(fr_json "$out" duplicate)" = True ] || fr_fail "repeat not answered from the journal: $out"
grep -q "compaction" "$T/mhc.log" && fr_fail "journal compaction failed: $(grep compaction "$T/mhc.log")"
[ "$(stat -c %u "$T/state/journal")" = "$UID_ACT" ] || fr_fail "journal not the user's after compaction"
fr_ok "the journal (compaction included) works as the dropped user"
fr_stop mhc TERM

# 3. A daemon that cannot become its user stops: here started as another unprivileged user.
cp "$T/home.secret" "$T/open.secret"; chmod 644 "$T/open.secret"   # so it gets that far
sed "s|$T/home.secret|$T/open.secret|" "$T/mhc.conf" >"$T/nobody.conf"
if setpriv --reuid=65534 --regid=65534 --clear-groups "$FR_BIN/frMhc" -f -c "$T/nobody.conf" \
	>"$T/nobody.out" 2>&1; then fr_fail "frMhc ran as nobody though told to be fr-test-act"; fi
grep -q "cannot run as user fr-test-act" "$T/nobody.out" || fr_fail "no reason: $(cat "$T/nobody.out")"
fr_ok "a daemon that cannot switch to its user refuses to start"

# 4. frMhs and frAroundWeb drop to their user too, and keep working.
BPORT=$(fr_free_port)
APORT=$(fr_free_port)
LPORT=$(fr_free_port)
SPORT=$(fr_free_port)
fr_mosquitto broker "$BPORT"
fr_mhs_conf home1 "$APORT" "$BPORT"
printf 'user = "fr-test-act";\ngroup = "fr-test-dev";\nlink_listen = { address = "127.0.0.1"; port = %s; };\n' \
	"$LPORT" >>"$T/mhs.conf"
fr_start mhs "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
fr_wait 10 "frMhs online" fr_retained_is "$BPORT" fr/home1/status online
pid=$(fr_pid mhs)
[ "$(status_ids "$pid" Uid)" = "$UID_ACT $UID_ACT $UID_ACT $UID_ACT" ] || fr_fail "frMhs uids: $(status_ids "$pid" Uid)"
[ "$(status_ids "$pid" Gid)" = "$GID_DEV $GID_DEV $GID_DEV $GID_DEV" ] || fr_fail "frMhs gids (group setting): $(status_ids "$pid" Gid)"
# A controller dialling in still links (the link listener was bound before the drop).
mhc_conf "$T/far.conf" "allow_root_actions = true;
home_server = { address = \"127.0.0.1\"; port = $LPORT; };"
sed -i "s/port = $PORT;/port = 0;/; s/kitchen/far/" "$T/far.conf"
fr_start far "$FR_BIN/frMhc" -f -c "$T/far.conf"
fr_wait 15 "far online through the dropped frMhs" fr_retained_is "$BPORT" fr/home1/ctl/far/status online
fr_ok "frMhs runs as fr-test-act:fr-test-dev and still serves"

printf 'users = ( );\n' >"$T/users.conf"
chmod 644 "$T/users.conf"
cat >"$T/web.conf" <<CONF
user = "fr-test-act";
users_file = "$T/users.conf";
audit_file = "$T/audit.log";
shim = { address = "127.0.0.1"; port = $SPORT; };
mqtt = { uri = "mqtt://127.0.0.1:$BPORT"; backoff_min = 0.1; backoff_max = 1; };
CONF
fr_start web "$FR_BIN/frAroundWeb" -f -v -c "$T/web.conf"
fr_wait 10 "web connected" fr_grep_log web "connected (session"
pid=$(fr_pid web)
[ "$(status_ids "$pid" Uid)" = "$UID_ACT $UID_ACT $UID_ACT $UID_ACT" ] || fr_fail "frAroundWeb uids: $(status_ids "$pid" Uid)"
reply=$(python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1',$SPORT)); s.sendall(b'{\"id\":1,\"op\":\"ping\"}\n'); print(s.makefile().readline())")
[ "$(fr_json "$reply" ok)" = True ] || fr_fail "shim after the drop: $reply"
fr_ok "frAroundWeb runs as fr-test-act and serves the shim"
