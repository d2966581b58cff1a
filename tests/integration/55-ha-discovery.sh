#!/usr/bin/env bash
# Home Assistant MQTT discovery (issue 18, part 1) with the shipped broker configuration and
# fr-admin's accounts and ACLs. frMhs publishes a discovery config for every action and sensor of
# two controllers -- the demo's actions and sensors, and one action of every other kind -- and
# for itself; a foreign client with a user's account (what a user's Home Assistant is:
# tests/ha/hacheck.py, on python3-paho like HA's own MQTT integration) reads them as HA does and
# validates each against the fields HA documents (tests/ha/mqtt-discovery.schema.json), drives
# every action through its HA command topic with HA's plain payloads and sees the result in the
# entity's attributes and state. The state follows other clients' requests too; bad payloads are
# refused with a reason; a user reads and commands only their homes' entities; no account but a
# home's own writes its discovery configs.
. "$(dirname "$0")/lib.sh"

HACHECK=$FR_SRC/tests/ha/hacheck.py
/usr/bin/python3 -c 'import paho.mqtt.client, jsonschema, jinja2' 2>/dev/null ||
	fr_fail "python3-paho-mqtt, python3-jsonschema and python3-jinja2 are needed (./fr deps)"
# The checks refuse configs HA's docs refuse (so passing them means something).
/usr/bin/python3 "$HACHECK" selftest >"$T/selftest.out" 2>&1 || fr_fail "hacheck selftest: $(cat "$T/selftest.out")"
S=$T/state
admin() { "$FR_SRC/broker/fr-admin" --state "$S" "$@" 2>>"$T/admin.log"; }
admin init --broker-uri mqtt://127.0.0.1:1 >/dev/null || fr_fail "fr-admin init"
for h in home1 home2; do admin add-home "$h" >/dev/null || fr_fail "fr-admin add-home $h"; done
APW=$(admin add-user alice --homes home1 | sed -n 's/^password: //p')
BPW=bob-secret-$RANDOM$RANDOM
admin add-user bob --homes home2 --password "$BPW" >/dev/null || fr_fail "fr-admin add-user bob"
[ -n "$APW" ] || fr_fail "no password for alice"
grep -qx 'topic readwrite homeassistant/+/fr_home1/#' "$S/acl" || fr_fail "acl: home1 may not write its discovery configs"
BPORT=$(fr_free_port)
APORT=$(fr_free_port)
fr_shipped_broker broker "$S" "$BPORT"

EX=$FR_SRC/agents/frMhc/examples
# ha_ctl ID NAME ADDR [MORE_ACTIONS]: a controller with the demo's actions and sensors
# (tests/demo/demo.sh), the temperature with its unit and device class.
ha_ctl() {
	cat >"$T/$1.conf" <<CONF
id = "$1";
name = "$2";
secret_file = "$S/homes/home1/home.secret";
state_dir = "$T/state-$1";
listen = { address = "$3"; port = 0; };
announce = { address = "127.255.255.255"; port = $APORT; interval = 0.3; };
ping_interval = 0.5; ping_timeout = 2;
$(fr_mhc_root)
actions = (
  { name = "lamp"; argv = ["$EX/lamp", "$T/state-$1/lamp", "{state}"]; timeout = 5;
    args = ( { name = "state"; pattern = "on|off|toggle"; default = "toggle"; } ); },
  { name = "slow"; argv = ["$EX/slow", "{seconds}"]; timeout = 30;
    args = ( { name = "seconds"; pattern = "[1-9]|1[0-9]|20"; default = "5"; } ); }${4:-}
);
sensors = (
  { name = "temp"; argv = ["$EX/temp"]; interval = 1; unit = "°C"; device_class = "temperature"; },
  { name = "lamp"; argv = ["$EX/lampstate", "$T/state-$1/lamp"]; interval = 0.3; }
);
CONF
}
# One action of every other kind: a button, a select, a text, a number set through one of two
# arguments, and one HA cannot set (two arguments without a default).
ha_ctl kitchen "Kitchen Pi" 127.0.0.2 ',
  { name = "ping"; builtin = "noop"; },
  { name = "mode"; argv = ["/bin/echo", "mode", "{m}"]; args = ( { name = "m"; pattern = "eco|comfort|away"; } ); },
  { name = "say"; argv = ["/bin/echo", "{text}"]; args = ( { name = "text"; pattern = "[a-z ]{1,40}"; } ); },
  { name = "dim"; argv = ["/bin/echo", "{level}", "{ramp}"];
    args = ( { name = "level"; pattern = "[0-9]|[1-9][0-9]|100"; }, { name = "ramp"; pattern = "[0-9]"; default = "0"; } ); },
  { name = "pair"; argv = ["/bin/echo", "{a}", "{b}"];
    args = ( { name = "a"; pattern = "[a-z]+"; }, { name = "b"; pattern = "[a-z]+"; } ); }'
ha_ctl hall Hall 127.0.0.3

# mhs_conf HOME: frMhs of HOME with its own account and discovery on.
mhs_conf() {
	cat >"$T/mhs-$1.conf" <<CONF
home = "$1";
secret_file = "$S/homes/$1/home.secret";
discovery = { address = "127.255.255.255"; port = $2; interval = 0.3; offline_after = 3; };
ping_interval = 0.5; ping_timeout = 2;
state_dir = "$T/state-mhs-$1";
mqtt = { uri = "mqtt://127.0.0.1:$BPORT"; username = "home-$1"; password_file = "$S/homes/$1/mqtt.pw";
         version = 5; backoff_min = 0.1; backoff_max = 1; };
homeassistant = { enabled = true; };
CONF
}
mhs_conf home1 "$APORT"
mhs_conf home2 "$(fr_free_port)"
"$FR_BIN/frMhs" --check-config -c "$T/mhs-home1.conf" >/dev/null || fr_fail "frMhs --check-config"
"$FR_BIN/frMhc" --check-config -c "$T/kitchen.conf" >/dev/null || fr_fail "frMhc --check-config (unit, device_class)"
fr_start mhs1 "$FR_BIN/frMhs" -f -v -c "$T/mhs-home1.conf"
fr_start mhs2 "$FR_BIN/frMhs" -f -v -c "$T/mhs-home2.conf"
fr_start kitchen "$FR_BIN/frMhc" -f -c "$T/kitchen.conf"
fr_start hall "$FR_BIN/frMhc" -f -c "$T/hall.conf"

# ha USER PASSWORD SUBCOMMAND ARGS...: the foreign client, as USER's Home Assistant.
ha() {
	local u=$1 p=$2
	shift 2
	HACHECK_PASSWORD=$p /usr/bin/python3 "$HACHECK" --port "$BPORT" --user "$u" --client-id "$u:ha" "$@"
}
HOME_ENTITIES="sensor:home-controllers-online sensor:home-controllers-known sensor:home-requests-open"
DEMO="switch:__lamp number:__slow sensor:__temp sensor:__lamp"
EXPECT="$HOME_ENTITIES $(for c in kitchen hall; do for e in $DEMO; do echo -n "${e/:__/:${c}__} "; done; done)"
EXPECT="$EXPECT button:kitchen__ping select:kitchen__mode text:kitchen__say number:kitchen__dim"
# The sensors' configs come with their first values, the controllers' with their hello.
configs_ok() { ha alice "$APW" --home home1 configs --expect $EXPECT >"$T/configs.out" 2>&1; }
fr_wait 30 "every config of home1, valid for HA" configs_ok
grep -q '^config sensor kitchen__temp temp = [0-9.]*$' "$T/configs.out" || fr_fail "temp: $(cat "$T/configs.out")"
fr_grep_log mhs1 "action pair: not exposed: 2 of its arguments have no default" || fr_fail "pair: not logged"
fr_log "$(tail -n 1 "$T/configs.out")"
fr_ok "home1's $(wc -w <<<"$EXPECT") configs (2 controllers, every action kind, numeric and text sensors, the home server) pass HA's documented fields"

# --- every action through its HA command topic ---------------------------------------------------
# cmd CTL ACTION PAYLOAD STATUS [STATE]: HA's payload on the command topic; the attributes show the
# request's status (an id of frMhs's own: "ha-..."), the entity its state.
cmd() {
	local st=()
	[ -n "${5:-}" ] && st=(--state "$5")
	ha alice "$APW" --home home1 command --ctl "$1" --action "$2" --payload "$3" --status "$4" \
		"${st[@]}" >"$T/cmd.out" 2>&1 || fr_fail "HA command $1/$2 '$3': $(cat "$T/cmd.out")"
	RESULT=$(sed -n 's/^RESULT //p' "$T/cmd.out")
}
field() { fr_json "$RESULT" "$1"; }
cmd kitchen lamp ON ok ON
[ "$(field stdout)" = on ] && [[ $(field id) == ha-* ]] && [ "$(field args.state)" = on ] || fr_fail "lamp ON: $RESULT"
[ "$(cat "$T/state-kitchen/lamp")" = on ] || fr_fail "the lamp is not on"
cmd kitchen lamp OFF ok OFF
[ "$(cat "$T/state-kitchen/lamp")" = off ] || fr_fail "the lamp is not off"
cmd kitchen slow 2 ok 2
[[ $(field stdout) == *done* ]] && [ "$(field exit_code)" = 0 ] || fr_fail "slow 2: $RESULT"
cmd kitchen ping PRESS ok
[ "$(field action)" = ping ] || fr_fail "ping: $RESULT"
cmd kitchen mode comfort ok comfort
[ "$(field stdout)" = "mode comfort" ] || fr_fail "mode: $RESULT"
cmd kitchen say "hello world" ok "hello world"
cmd kitchen dim 42 ok 42
[ "$(field stdout)" = "42 0" ] || fr_fail "dim (the other argument at its default): $RESULT"
cmd hall lamp ON ok ON
[ "$(cat "$T/state-hall/lamp")" = on ] || fr_fail "the hall lamp is not on"
fr_ok "button, switch, select, number (one and two arguments) and text run through HA's command topics; results in attributes and state"

# Refused: what the platform never sends (a reason in the attributes, nothing run), and a value
# the controller's pattern refuses (the controller's answer).
cmd kitchen lamp maybe rejected
[[ $(field reason) == *"'ON' or 'OFF'"* ]] || fr_fail "lamp maybe: $RESULT"
cmd kitchen slow 99 rejected
[[ $(field reason) == *"out of range 1..20"* ]] || fr_fail "slow 99: $RESULT"
cmd kitchen mode party rejected
cmd kitchen say HELLO rejected
[[ $(field reason) == *"does not match"* ]] || fr_fail "say HELLO (the controller's pattern): $RESULT"
r=$(mosquitto_sub -p "$BPORT" -u alice -I alice: -P "$APW" -t fr/home1/ha/kitchen/say/state -C 1 -W 5 --retained-only)
[ "$r" = "hello world" ] || fr_fail "a refused value changed the state: $r"
# An action HA has no entity for: refused on its result topic.
fr_start pairsub mosquitto_sub -p "$BPORT" -u alice -I alice: -P "$APW" -q 1 -t fr/home1/ha/kitchen/pair/result -C 1
sleep 0.5
pair_refused() {
	mosquitto_pub -p "$BPORT" -u alice -I alice: -P "$APW" -q 1 -t fr/home1/ha/kitchen/pair/set -m PRESS &&
		grep -q '"status":"rejected"' "$T/pairsub.log"
}
fr_wait 10 "a refusal for an action without entity" pair_refused
grep -q 'no Home Assistant entity for action pair' "$T/pairsub.log" || fr_fail "pair: $(cat "$T/pairsub.log")"
fr_ok "payloads HA never sends, out-of-range numbers, unknown options and unexposed actions are refused with a reason"

# --- the state follows everybody's requests ------------------------------------------------------
# The web page (or a script) toggles the kitchen lamp with fr's own request: HA's switch follows.
id=$(cat /proc/sys/kernel/random/uuid)
out=$(mosquitto_rr -p "$BPORT" -u alice -i "alice:$id" -P "$APW" -q 1 -t fr/home1/ctl/kitchen/cmd \
	-e "fr/home1/reply/alice/$id" -W 20 \
	-m '{"id":"'"$id"'","action":"lamp","args":{"state":"toggle"},"progress":false}') || fr_fail "mosquitto_rr: $out"
[ "$(fr_json "$out" status)" = ok ] || fr_fail "toggle: $out"
state_is() {
	[ "$(mosquitto_sub -p "$BPORT" -u alice -I alice: -P "$APW" -t "fr/home1/ha/$1/state" -C 1 -W 3 --retained-only)" = "$2" ]
}
fr_wait 10 "HA's lamp switch on after another client's toggle" state_is kitchen/lamp ON
attr=$(mosquitto_sub -p "$BPORT" -u alice -I alice: -P "$APW" -t fr/home1/ha/kitchen/lamp/attributes -C 1 -W 3 --retained-only)
[ "$(fr_json "$attr" id)" = "$id" ] || fr_fail "attributes after the toggle: $attr"
fr_ok "a toggle sent by another client moves HA's switch (OFF -> ON) and its attributes"

# Every config again, now with states and attributes behind them.
configs_ok || fr_fail "configs after the commands: $(cat "$T/configs.out")"
grep -q '^config switch kitchen__lamp lamp = ON$' "$T/configs.out" || fr_fail "lamp state: $(cat "$T/configs.out")"
grep -q '^config number kitchen__slow slow = 2$' "$T/configs.out" || fr_fail "slow state: $(cat "$T/configs.out")"

# --- the ACL -------------------------------------------------------------------------------------
# bob (a user of home2) and alice each read only their homes' configs; two homes never collide.
ha bob "$BPW" --home home1 configs --expect >"$T/bob1.out" 2>&1 || fr_fail "bob reads home1's configs: $(cat "$T/bob1.out")"
bob2() { ha bob "$BPW" --home home2 configs --expect $HOME_ENTITIES >"$T/bob2.out" 2>&1; }
fr_wait 20 "home2's own configs, for bob" bob2
ha alice "$APW" --home home2 configs --expect >"$T/alice2.out" 2>&1 || fr_fail "alice reads home2's configs: $(cat "$T/alice2.out")"
# Writes: alice and home2's account may not write home1's discovery configs, bob may not command
# home1's entities. home1's own account reads all of it, and a marker after them tells when they
# would have arrived.
H1PW=$(cat "$S/homes/home1/mqtt.pw")
H2PW=$(cat "$S/homes/home2/mqtt.pw")
fr_start watch mosquitto_sub -p "$BPORT" -u home-home1 -I home-home1: -P "$H1PW" -q 1 -v \
	-t 'homeassistant/+/fr_home1/#' -t 'fr/home1/ha/+/+/set' -t fr/home1/mark
watch_ready() {
	mosquitto_pub -p "$BPORT" -u home-home1 -I home-home1: -P "$H1PW" -q 1 -t fr/home1/mark -m ready &&
		grep -q '^fr/home1/mark ready$' "$T/watch.log"
}
fr_wait 10 "watcher subscribed" watch_ready
evil='{"name":"evil","command_topic":"x","unique_id":"evil"}'
mosquitto_pub -p "$BPORT" -u alice -I alice: -P "$APW" -q 1 -r -t homeassistant/switch/fr_home1/evil/config -m "$evil" 2>/dev/null
mosquitto_pub -p "$BPORT" -u home-home2 -I home-home2: -P "$H2PW" -q 1 -r -t homeassistant/switch/fr_home1/evil2/config -m "$evil" 2>/dev/null
mosquitto_pub -p "$BPORT" -u bob -I bob: -P "$BPW" -q 1 -t fr/home1/ha/kitchen/lamp/set -m from-bob 2>/dev/null
mosquitto_pub -p "$BPORT" -u alice -I alice: -P "$APW" -q 1 -t fr/home1/ha/kitchen/ping/set -m PRESS ||
	fr_fail "alice publishes an HA command"
mosquitto_pub -p "$BPORT" -u home-home1 -I home-home1: -P "$H1PW" -q 1 -t fr/home1/mark -m done || fr_fail "marker"
fr_wait 10 "the marker" fr_grep_log watch '^fr/home1/mark done$'
fr_grep_log watch '^fr/home1/ha/kitchen/ping/set PRESS$' || fr_fail "alice's HA command did not arrive"
grep -E 'evil|from-bob' "$T/watch.log" && fr_fail "a forbidden write reached home1's topics"
fr_grep_log mhs1 'from-bob' && fr_fail "frMhs got bob's command"
fr_ok "ACL: users read their homes' configs only, command their homes' entities only; no one else writes a home's configs"

fr_clean_stop mhs1 mhs2 kitchen hall
