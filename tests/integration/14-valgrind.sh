#!/usr/bin/env bash
# frMhc and frMhs under valgrind's memcheck through a short life: discovery, links, commands of
# every kind, sensor events, a hostile connection, a clean stop. Zero errors and nothing
# definitely lost. (The ASan+UBSan build runs every other test; this catches what ASan's
# instrumentation of our own code cannot see, e.g. misuse inside the libraries.)
. "$(dirname "$0")/lib.sh"

command -v valgrind >/dev/null || fr_fail "valgrind is not installed (./fr deps installs it)"
VG=(valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
	--show-leak-kinds=definite --track-fds=no --num-callers=30 --child-silent-after-fork=yes)
fr_home
sed -i 's/offline_after = 3/offline_after = 10/' "$T/mhs.conf"
fr_start mhs "${VG[@]}" --log-file="$T/vg-mhs.txt" "$FR_BIN/frMhs" -f -c "$T/mhs.conf"
fr_mhc_conf c2 127.0.0.2 "$APORT"
sed -i 's/ping_timeout = 2;/ping_timeout = 10;/' "$T/c2.conf"
fr_start c2 "${VG[@]}" --log-file="$T/vg-mhc.txt" "$FR_BIN/frMhc" -f -c "$T/c2.conf"
fr_wait 60 "c2 online under valgrind" fr_retained_is "$BPORT" fr/home1/ctl/c2/status online
for a in '"action":"rec","args":{"tag":"vg"}' '"action":"fail"' '"action":"hang"' '"action":"nope"' \
	 '"action":"rec","args":{"tag":"NO!"}'; do
	mosquitto_rr -p "$BPORT" -t fr/home1/ctl/c2/cmd -e fr/home1/reply/vg -W 30 \
		-m "{\"id\":\"vg-$RANDOM$RANDOM\",\"progress\":false,$a}" >>"$T/replies" || fr_fail "no reply under valgrind: $a"
done
grep -q '"status":"ok"' "$T/replies" && grep -q '"status":"timeout"' "$T/replies" || fr_fail "replies: $(cat "$T/replies")"
head -c 3000 /dev/urandom >"/dev/tcp/127.0.0.2/$(fr_json "$(fr_retained "$BPORT" fr/home1/ctl/c2/info)" port)" 2>/dev/null || true
fr_wait 30 "a sensor value" fr_has_retained "$BPORT" fr/home1/ctl/c2/state/temp
sleep 1
fr_stop c2 TERM
fr_stop mhs TERM
wait "$(fr_pid c2)" 2>/dev/null; wait "$(fr_pid mhs)" 2>/dev/null
for f in vg-mhc vg-mhs; do
	grep -q "ERROR SUMMARY: 0 errors" "$T/$f.txt" || fr_fail "$f: memcheck reported errors:
$(grep -A30 -m3 '^==[0-9]*== [A-Z]' "$T/$f.txt" | head -80)"
	if grep -q "definitely lost: [1-9]" "$T/$f.txt"; then fr_fail "$f: memory definitely lost"; fi
done
fr_ok "frMhc and frMhs under memcheck: 0 errors, nothing definitely lost"
