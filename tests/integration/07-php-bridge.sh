#!/usr/bin/env bash
# The PHP bridge (bridge-php/, Fr\Bridge\Client) against a real stack: mosquitto, frMhs, a
# frMhc "kitchen" on 127.0.0.2 and frAroundWeb's shim on TCP and a unix socket. Runs the whole
# PHPUnit suite (unit + end to end) with FR_SHIM set, so no end-to-end test is skipped; the run
# fails if PHPUnit reports any failure, error, warning, skipped, incomplete or risky test.
. "$(dirname "$0")/lib.sh"

command -v php >/dev/null || fr_fail "php (php-cli 8.2) is not installed"
command -v phpunit >/dev/null || fr_fail "phpunit (9.6) is not installed"

fr_secret "$T/home.secret"
BPORT=$(fr_free_port)
APORT=$(fr_free_port)
SPORT=$(fr_free_port)
fr_mosquitto broker "$BPORT"
fr_mhs_conf home1 "$APORT" "$BPORT"
fr_start mhs "$FR_BIN/frMhs" -f -v -c "$T/mhs.conf"
fr_mhc_conf kitchen 127.0.0.2 "$APORT" \
	'{ name = "lamp_on"; argv = ["'"$FR_SRC"'/agents/frMhc/examples/lamp", "'"$T"'/lamp.state", "on"]; timeout = 5; },
  { name = "lamp"; argv = ["'"$FR_SRC"'/agents/frMhc/examples/lamp", "'"$T"'/lamp.state", "{state}"]; timeout = 5; args = ( { name = "state"; pattern = "on|off|toggle"; default = "toggle"; } ); },
  { name = "fail"; argv = ["/bin/sh", "-c", "echo bad >&2; exit 4"]; timeout = 5; },
  { name = "slow"; argv = ["/bin/sleep", "{secs}"]; timeout = 30; max_running = 4; args = ( { name = "secs"; pattern = "[0-9]{1,2}(\\.[0-9])?"; } ); }'
# The demo's second sensor too: the lamp's state (bridge-php's README and its E2E tests use it).
sed -i 's|^sensors = ( |sensors = ( { name = "lamp"; argv = ["'"$FR_SRC"'/agents/frMhc/examples/lampstate", "'"$T"'/lamp.state"]; interval = 1; }, |' "$T/kitchen.conf"
grep -q 'name = "lamp"; argv' "$T/kitchen.conf" || fr_fail "lamp sensor not added"
fr_start kitchen "$FR_BIN/frMhc" -f -v -c "$T/kitchen.conf"
fr_wait 15 "kitchen online" fr_retained_is "$BPORT" fr/home1/ctl/kitchen/status online
fr_wait 15 "kitchen temp state" bash -c "[ -n \"\$(mosquitto_sub -p $BPORT -t fr/home1/ctl/kitchen/state/temp -C 1 -W 2 --retained-only 2>/dev/null)\" ]"

TOKEN="php-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
fr_users "alice:$TOKEN:home1" "bob:bob-$TOKEN:home2"
fr_web_conf "$BPORT" "$SPORT" 0 "unix = \"$T/shim.sock\"; max_line = 65536;" 'instance = "php";
history = { file = "'"$T"'/history.db"; };'
fr_start web "$FR_BIN/frAroundWeb" -f -v -c "$T/web.conf"
fr_wait 10 "shim listening" bash -c "exec 3<>/dev/tcp/127.0.0.1/$SPORT"
fr_wait 10 "web connected to the broker" fr_grep_log web "connected (session"

# A controller the shim's cache knows to be offline (its retained status), for the shim's own
# "offline" answer.
mosquitto_pub -p "$BPORT" -r -q 1 -t fr/home1/ctl/gone/status -m offline
fr_wait 5 "gone cached" bash -c "mosquitto_sub -p $BPORT -t fr/home1/ctl/gone/status -C 1 -W 2 | grep -q offline"

set -o pipefail
FR_SHIM="tcp://127.0.0.1:$SPORT" FR_SHIM_UNIX="unix://$T/shim.sock" FR_TOKEN="$TOKEN" \
	FR_HOME=home1 FR_CTL=kitchen FR_OTHER_HOME=home2 FR_OFFLINE_CTL=gone \
	phpunit -c "$FR_SRC/bridge-php/phpunit.xml" --colors=never \
	--fail-on-skipped --fail-on-incomplete --fail-on-risky --fail-on-warning \
	--log-junit "$T/junit.xml" 2>&1 | tee "$T/phpunit.log"
rc=$?
[ "$rc" = 0 ] || fr_fail "phpunit exited $rc"
# Belt and braces: the summary must be a plain "OK (...)" and the e2e suite must have run.
grep -q '^OK ([0-9]* tests, [0-9]* assertions)$' "$T/phpunit.log" || fr_fail "phpunit summary is not a plain OK"
grep -Eq 'Skipped|Risky|Incomplete' "$T/phpunit.log" && fr_fail "phpunit reported skipped/risky/incomplete tests"
grep -q 'testsuite name="e2e" tests="[1-9]' "$T/junit.xml" || fr_fail "the e2e suite did not run"
grep -q 'skipped="[1-9]' "$T/junit.xml" && fr_fail "junit log has skipped tests"
fr_ok "phpunit: $(grep '^OK (' "$T/phpunit.log")"

# The requests the PHP tests made were audited by frAroundWeb itself.
grep -q '"action":"lamp_on"' "$T/audit.log" || fr_fail "lamp_on not in the audit file"
fr_ok "audit file has the PHP client's requests"
