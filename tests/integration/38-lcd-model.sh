#!/usr/bin/env bash
# frMhs's LCD (docs/display-protocol.md, "The LCD") on the HD44780U + PCF8574 model
# (tests/tools/hd44780.c) behind a fake i2c-dev node: libfri2cmodel.so (LD_PRELOAD) answers
# frMhs's open/ioctl/write on the configured device path and writes the screen as text and
# every timing violation to $T/lcd. With a real mosquitto and frMhc, and frMhs's loop kept busy
# by 3000 garbage datagrams a second on its announce port (tests/integration/bin/udpload, 25 s),
# the screens must follow: the status line (counts, "no MQTT" fitted to 16 columns), the last
# command, display text in Japanese (kana and kanji as half-width katakana) and with the
# characters ROM A00 lacks, a long text that scrolls, a power dip recovered by the periodic
# re-initialisation, and "frMhs stopped" after SIGTERM; with no timing violation (every wait
# at least the datasheet's worst case at 190 kHz). Prints each screen it checks.
. "$(dirname "$0")/lib.sh"

fr_home
# The node need not exist: the model answers for this path inside frMhs only.
echo "lcd = { device = \"$T/i2c-1\"; address = 0x27; width = 16; };" >>"$T/mhs.conf"
"$FR_BIN/frMhs" --check-config -c "$T/mhs.conf" >/dev/null || fr_fail "frMhs --check-config"
mkdir "$T/lcd"
# An AddressSanitizer build wants its runtime first in the preload list.
preload="$FR_BIN/libfri2cmodel.so"
asan=$(ldd "$FR_BIN/frMhs" 2>/dev/null | awk '/libasan/ { print $3 }')
[ -n "$asan" ] && preload="$asan $preload"
FR_I2C_MODEL_DEV="$T/i2c-1" FR_I2C_MODEL_DIR="$T/lcd" LD_PRELOAD="$preload" \
	fr_start mhs "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"

# The two rows without the frame and the trailing blanks.
lcd_rows() { sed 's/^|//; s/|$//; s/ *$//' "$T/lcd/screen"; }
lcd_is() { [ "$(lcd_rows)" = "$(printf '%s\n%s' "$1" "$2")" ]; }
# lcd_expect SECONDS WHAT ROW1 ROW2: waits for the screen, then prints it.
lcd_expect() {
	fr_wait "$1" "LCD showing '$3' / '$4' ($2); it shows: $(cat "$T/lcd/screen" 2>/dev/null)" lcd_is "$3" "$4"
	fr_log "LCD, $2:"
	sed 's/^/        /' "$T/lcd/screen" >&2
}
cpu() { awk '{ print $14 + $15 }' "/proc/$(fr_pid mhs)/stat"; }
dropped() {   # announces frMhs dropped, from its (rate-limited) log
	awk '/announce from .* dropped/ { n++ }
	     /more dropped in the last second/ { for (i = 1; i < NF; i++) if ($(i + 1) == "more") n += $i }
	     END { print n + 0 }' "$T/mhs.log"
}
load_seen() { [ "$(dropped)" -gt "$1" ]; }

lcd_expect 10 "started, broker up" "home1 0/0" ""
fr_grep_log mhs "lcd $T/i2c-1@0x27: ready (16x2)" || fr_fail "ready not logged"

cpu0=$(cpu)
fr_start load "$FR_SRC/tests/integration/bin/udpload" 127.255.255.255 "$APORT" 3000 25
fr_wait 10 "frMhs receiving the load" load_seen 1000

fr_mhc_conf c2 127.0.0.2 "$APORT"
fr_start c2 "$FR_BIN/frMhc" -f -c "$T/c2.conf"
lcd_expect 15 "a real controller online" "home1 1/1" ""

out=$(mosquitto_rr -p "$BPORT" -t fr/home1/ctl/c2/cmd -e fr/home1/reply/r -W 10 \
	-m '{"id":"lcd-1","action":"rec","args":{"tag":"lcd"},"progress":false}') || fr_fail "command"
[ "$(fr_json "$out" status)" = ok ] || fr_fail "command result: $out"
lcd_expect 5 "the last command" "home1 1/1" "c2/rec ok"

mosquitto_pub -p "$BPORT" -t fr/home1/display -m '台所の電気'
lcd_expect 5 "display text with kanji (read by KAKASI) and kana" "home1 1/1" 'ﾀﾞｲﾄﾞｺﾛ ﾉ ﾃﾞﾝｷ'

mosquitto_rr -p "$BPORT" -t fr/home1/ctl/c2/cmd -e fr/home1/reply/r -W 10 \
	-m '{"id":"lcd-2","action":"fail","progress":false}' >/dev/null || fr_fail "failing command"
lcd_expect 5 "a newer command replaces the text" "home1 1/1" "c2/fail failed"

mosquitto_pub -p "$BPORT" -t fr/home1/display -m 'ガレージ ¥500 \~'
lcd_expect 5 "katakana with dakuten, ¥ from the ROM, \\ and ~ from CGRAM" "home1 1/1" 'ｶﾞﾚｰｼﾞ ¥500 \~'

# A power dip between writes: the display resets (blank, 8-bit mode, garbage) while the
# backpack still acknowledges. The next re-initialisation (every 5 s) must bring it back.
touch "$T/lcd/dip"
fr_wait 10 "the dip applied" grep -q -- "--- power dip ---" "$T/lcd/screens.log"
# Row 1 of some screen after the dip is blank: the display was really lost (the status line is
# never blank otherwise).
dip_blanked() {
	awk '/--- power dip ---/ { after = 1 } after && row1 && $0 == "|                |" { found = 1 }
	     { row1 = /^[0-9]/ } END { exit !found }' "$T/lcd/screens.log"
}
fr_wait 5 "the display blank after the dip" dip_blanked
lcd_expect 20 "recovered from the power dip" "home1 1/1" 'ｶﾞﾚｰｼﾞ ¥500 \~'

# Scrolling: each position shows for 400 ms only, so the screens the model logged are read
# (a poll of the current screen could miss one on a loaded machine).
lcd_seen() { grep -Fqx -- "|$1|" "$T/lcd/screens.log"; }
mosquitto_pub -p "$BPORT" -t fr/home1/display -m 'Dinner at 8, bring bread'
fr_wait 5 "a long text, at rest" lcd_seen "Dinner at 8, bri"
fr_wait 10 "a long text, scrolled by one" lcd_seen "inner at 8, brin"
fr_wait 10 "a long text, scrolled by two" lcd_seen "nner at 8, bring"
fr_ok "a long text scrolls: |Dinner at 8, bri| |inner at 8, brin| |nner at 8, bring| ..."

# The status line alone (row 2 is scrolling meanwhile).
row1_is() { [ "$(lcd_rows | head -n 1)" = "$1" ]; }
fr_stop broker TERM
fr_wait 15 "status line with the broker gone" row1_is "home 1/1 no MQTT"
fr_log "LCD, broker gone: the warning fits 16 columns, the home name is cut:"
sed 's/^/        /' "$T/lcd/screen" >&2
fr_mosquitto broker "$BPORT"
fr_wait 15 "status line with the broker back" row1_is "home1 1/1"
fr_ok "broker stopped and restarted: the status line followed"

fr_wait 60 "the load finished" fr_proc_gone "$(fr_pid load)"
sent=$(tail -n 1 "$T/load.log")
cpu1=$(cpu)
got=$(dropped)
[ "$sent" -gt 30000 ] || fr_fail "the load sent only $sent datagrams"
[ "$got" -gt $((sent / 2)) ] || fr_fail "frMhs saw $got of $sent datagrams: the loop was not kept busy"
fr_ok "load: $sent garbage datagrams sent, $got dropped by frMhs with a reason, frMhs used $(( (cpu1 - cpu0) * 10 )) ms of CPU meanwhile"

fr_stop mhs TERM
lcd_expect 1 "after SIGTERM" "home1" "frMhs stopped"

[ ! -s "$T/lcd/violations" ] || fr_fail "timing violations: $(cat "$T/lcd/violations")"
stats=$(cat "$T/lcd/stats")
grep -q ", 0 violations (" <<<"$stats" || fr_fail "model stats: $stats"
checked=$(sed -n 's/.*: \([0-9]*\) waits checked.*/\1/p' <<<"$stats")
[ "$checked" -gt 100 ] || fr_fail "only $checked waits checked: $stats"
fr_ok "no timing violation under load: $stats"
fr_log "$(grep -c '^|' "$T/lcd/screens.log") screen rows written in all ($(grep -c -- '---' "$T/lcd/screens.log") model events)"
