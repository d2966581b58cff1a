#!/usr/bin/env bash
# Home Assistant discovery over time (issue 18, part 1), with the shipped broker configuration and
# fr-admin's accounts: HA's birth message makes frMhs send its configs again (after a random
# delay, at most every 10 s); a retained HA command is never run and is removed; an action that
# disappears from a controller loses its config, state and attributes; a restarted frMhs keeps
# the entities' states (a toggle still flips) and removes the configs of a controller it no
# longer knows; discovery switched off removes every config and state it published; a bad
# discovery prefix is refused by --check-config. Checked with a foreign client with a user's
# account (tests/ha/hacheck.py, python3-paho) and the mosquitto clients.
. "$(dirname "$0")/lib.sh"

HACHECK=$FR_SRC/tests/ha/hacheck.py
/usr/bin/python3 -c 'import paho.mqtt.client, jsonschema, jinja2' 2>/dev/null ||
	fr_fail "python3-paho-mqtt, python3-jsonschema and python3-jinja2 are needed (./fr deps)"
S=$T/state
admin() { "$FR_SRC/broker/fr-admin" --state "$S" "$@" 2>>"$T/admin.log"; }
admin init --broker-uri mqtt://127.0.0.1:1 >/dev/null || fr_fail "fr-admin init"
admin add-home home1 >/dev/null || fr_fail "fr-admin add-home"
APW=$(admin add-user alice --homes home1 | sed -n 's/^password: //p')
H1PW=$(cat "$S/homes/home1/mqtt.pw")
BPORT=$(fr_free_port)
APORT=$(fr_free_port)
fr_shipped_broker broker "$S" "$BPORT"

EX=$FR_SRC/agents/frMhc/examples
MODE='{ name = "mode"; argv = ["/bin/echo", "{m}"]; args = ( { name = "m"; pattern = "eco|comfort"; } ); },'
# ctl ID ADDR [ACTION]: a controller with the demo's lamp and temperature, and ACTION.
ctl() {
	cat >"$T/$1.conf" <<CONF
id = "$1";
secret_file = "$S/homes/home1/home.secret";
state_dir = "$T/state-$1";
listen = { address = "$2"; port = 0; };
announce = { address = "127.255.255.255"; port = $APORT; interval = 0.3; };
ping_interval = 0.5; ping_timeout = 2;
$(fr_mhc_root)
actions = ( ${3:-}
  { name = "lamp"; argv = ["$EX/lamp", "$T/state-$1/lamp", "{state}"]; timeout = 5;
    args = ( { name = "state"; pattern = "on|off|toggle"; default = "toggle"; } ); }
);
sensors = ( { name = "temp"; argv = ["$EX/temp"]; interval = 1; unit = "°C"; device_class = "temperature"; } );
CONF
}
ctl kitchen 127.0.0.2 "$MODE"
ctl hall 127.0.0.3
# mhs STATE_DIR ENABLED: frMhs's configuration.
mhs() {
	cat >"$T/mhs.conf" <<CONF
home = "home1";
secret_file = "$S/homes/home1/home.secret";
discovery = { address = "127.255.255.255"; port = $APORT; interval = 0.3; offline_after = 3; };
ping_interval = 0.5; ping_timeout = 2;
state_dir = "$T/$1";
mqtt = { uri = "mqtt://127.0.0.1:$BPORT"; username = "home-home1"; password_file = "$S/homes/home1/mqtt.pw";
         version = 5; backoff_min = 0.1; backoff_max = 1; };
homeassistant = { enabled = $2; };
CONF
}

# A discovery prefix must be topic levels, outside fr's own topics.
for bad in '"fr/x"' '"a/+/b"' '"a//b"' '""' '"fr"'; do
	mhs state-mhs true
	sed -i "s|enabled = true;|enabled = true; prefix = $bad;|" "$T/mhs.conf"
	"$FR_BIN/frMhs" --check-config -c "$T/mhs.conf" >/dev/null 2>"$T/check.err" && fr_fail "prefix $bad accepted"
	grep -q 'homeassistant.prefix must be topic levels' "$T/check.err" || fr_fail "prefix $bad: $(cat "$T/check.err")"
done
fr_ok "--check-config refuses a discovery prefix that is no topic levels or lies in fr's topics"

mhs state-mhs true
fr_start mhs "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
fr_start kitchen "$FR_BIN/frMhc" -f -c "$T/kitchen.conf"
fr_start hall "$FR_BIN/frMhc" -f -c "$T/hall.conf"

ha() { HACHECK_PASSWORD=$APW /usr/bin/python3 "$HACHECK" --port "$BPORT" --user alice --client-id alice:ha --home home1 "$@"; }
HOME_ENTITIES="sensor:home-controllers-online sensor:home-controllers-known sensor:home-requests-open"
ALL="$HOME_ENTITIES select:kitchen__mode switch:kitchen__lamp sensor:kitchen__temp switch:hall__lamp sensor:hall__temp"
configs() { ha configs --expect "$@" >"$T/configs.out" 2>&1; }
fr_wait 30 "home1's configs" configs $ALL
as() { local u=$1 p=$2; shift 2; "$@" -p "$BPORT" -u "$u" -I "$u": -P "$p"; }
retained() { as alice "$APW" mosquitto_sub -t "$1" -C 1 -W 2 --retained-only 2>/dev/null; }
cmd() {
	ha command --ctl "$1" --action "$2" --payload "$3" --status ok ${4:+--state "$4"} >"$T/cmd.out" 2>&1 ||
		fr_fail "HA command $1/$2 $3: $(cat "$T/cmd.out")"
}
cmd kitchen mode eco eco
cmd kitchen lamp ON ON

# --- HA's birth message ------------------------------------------------------------------------
n=$(wc -w <<<"$ALL")
ha --timeout 40 birth --count "$n" >"$T/birth.out" 2>&1 || fr_fail "birth: $(cat "$T/birth.out")"
fr_grep_log mhs "its birth message: configs published again in" || fr_fail "the birth was not noticed"
fr_log "$(tail -n 1 "$T/birth.out")"
fr_ok "HA's birth message (published by a user's HA) makes frMhs send all $n configs again"

# --- a retained HA command is never run ---------------------------------------------------------
runs() { grep -c 'home assistant: kitchen/lamp' "$T/mhs.log"; }
before=$(runs)
as alice "$APW" mosquitto_pub -q 1 -r -t fr/home1/ha/kitchen/lamp/set -m OFF || fr_fail "retained publish"
fr_wait 10 "the retained command refused" fr_grep_log mhs "command for kitchen/lamp: retained message not run"
gone() { [ -z "$(retained "$1")" ]; }
fr_wait 10 "the retained command removed from the broker" gone fr/home1/ha/kitchen/lamp/set
[ "$(runs)" = "$before" ] || fr_fail "a retained HA command ran"
[ "$(retained fr/home1/ha/kitchen/lamp/state)" = ON ] || fr_fail "the lamp's state moved"
fr_ok "a retained HA command is not run and is removed from the broker"

# --- an action disappears -----------------------------------------------------------------------
for t in config state attributes; do
	case $t in config) topic=homeassistant/select/fr_home1/kitchen__mode/config ;; *) topic=fr/home1/ha/kitchen/mode/$t ;; esac
	[ -n "$(retained "$topic")" ] || fr_fail "no $topic before the action disappears"
done
fr_stop kitchen
ctl kitchen 127.0.0.2
fr_start kitchen2 "$FR_BIN/frMhc" -f -c "$T/kitchen.conf"
fr_wait 20 "the mode config removed" gone homeassistant/select/fr_home1/kitchen__mode/config
gone fr/home1/ha/kitchen/mode/state || fr_fail "mode's state left behind"
gone fr/home1/ha/kitchen/mode/attributes || fr_fail "mode's attributes left behind"
ALL=${ALL/select:kitchen__mode /}
fr_wait 20 "the other configs" configs $ALL
fr_ok "an action gone from a controller loses its config, state and attributes; the rest stays valid"

# --- frMhs restarts without the hall: its configs go, the kitchen's states stay --------------------
fr_stop mhs
fr_stop hall
# The hall is taken out of the home: its retained status and info removed (by the home's
# account, as an operator would), and frMhs starts with a new state dir.
for t in status info state/temp; do
	as home-home1 "$H1PW" mosquitto_pub -q 1 -r -n -t "fr/home1/ctl/hall/$t" || fr_fail "removing hall's $t"
done
[ -n "$(retained homeassistant/switch/fr_home1/hall__lamp/config)" ] || fr_fail "hall's config gone too early"
mhs state-mhs-new true
fr_start mhs2 "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
ALL=$(sed 's/switch:hall__lamp //; s/ sensor:hall__temp//' <<<"$ALL")
fr_wait 30 "hall's configs removed, the kitchen's there" configs $ALL
fr_grep_log mhs2 "controller hall is not known here: its configs are removed" || fr_fail "no log of hall's removal"
gone homeassistant/sensor/fr_home1/hall__temp/config || fr_fail "hall's sensor config left"
# The lamp's state of before the restart is what a toggle by another client flips.
id=$(cat /proc/sys/kernel/random/uuid)
out=$(as alice "$APW" mosquitto_rr -q 1 -t fr/home1/ctl/kitchen/cmd -e "fr/home1/reply/alice/$id" -W 20 \
	-m '{"id":"'"$id"'","action":"lamp","args":{"state":"toggle"},"progress":false}' 2>&1) ||
	fr_fail "toggle: $out"
state_off() { [ "$(retained fr/home1/ha/kitchen/lamp/state)" = OFF ]; }
fr_wait 10 "the restarted frMhs flips ON to OFF" state_off
fr_ok "after a restart, configs of a controller frMhs no longer knows are removed; states survive (a toggle flips ON to OFF)"

# --- discovery switched off ---------------------------------------------------------------------
fr_stop mhs2
mhs state-mhs-new false
fr_start mhs3 "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
fr_wait 30 "every config removed" configs
none_left() { [ -z "$(as alice "$APW" mosquitto_sub -t 'fr/home1/ha/#' -W 2 --retained-only 2>/dev/null)" ]; }
fr_wait 20 "every HA state and attributes removed" none_left
[ "$(retained fr/home1/ctl/kitchen/status)" = online ] || fr_fail "the kitchen is not online with discovery off"
fr_ok "discovery switched off removes every config, state and attributes frMhs published"

fr_clean_stop mhs3 kitchen2
grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T/mhs.log" "$T/mhs2.log" &&
	fr_fail "a sanitizer report from an earlier frMhs"
fr_ok "every frMhs and frMhc stopped cleanly"
