#!/usr/bin/env bash
# arm64-test.sh BUILD-DIR: the arm64 (Raspberry Pi) build tested here under emulation. Every
# unit suite of the cross-built tree runs under qemu-aarch64-static (ctest prefixes each with
# the toolchain's CMAKE_CROSSCOMPILING_EMULATOR; no binfmt_misc needed), then the integration
# test it.03-frmhs-commands (frMhc + frMhs + the broker on loopback, commands end to end) runs
# with the arm64 frMhc, frMhs and mqttreq (mosquitto is this machine's own).
set -euo pipefail
b=$(cd "${1:?usage: arm64-test.sh BUILD-DIR}" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
file "$b/bin/frMhs" | grep -q "ARM aarch64" || { echo "arm64-test: $b/bin/frMhs is not arm64" >&2; exit 1; }

echo "== arm64 unit suites under qemu-aarch64-static"
(cd "$b" && ctest -L unit -E 'unit.test_runner$' -j2 --output-on-failure --timeout 600)
# test_runner under qemu-user: the children it spawns (/bin/sh, /bin/sleep) are this machine's
# amd64 programs, and qemu-user runs posix_spawn's CLONE_VFORK as a plain fork. Two checks
# cannot pass that way, each with one exact signature that is accepted (on a real arm64 CPU
# both hold); every other check of the suite must pass, so a real regression still shows:
#  - test_spawn_failed: glibc reports a failed exec through memory shared with the vfork'ed
#    child; under qemu the error is lost and the child exits 127 (status 0 = EXITED).
#  - test_kill: a SIGTERM sent right after the spawn reaches qemu's forked copy before its
#    exec, is caught by qemu's handler and lost with it; the runner escalates to SIGKILL (9).
out=$(cd "$b" && CK_VERBOSITY=verbose qemu-aarch64-static bin/test_runner 2>&1) || true
failed=$(printf '%s\n' "$out" | grep -E ':[EF]:' || true)
unexpected=$(printf '%s\n' "$failed" | grep . |
	grep -v ':F:core:test_spawn_failed:.*res->status == 0, RUNNER_SPAWN_FAILED == 4' |
	grep -v ':F:core:test_kill:.*c.got.res.signal == 9, 15 == 15' || true)
# (the suite ran to its end: its summary line is there, whatever its number of checks)
if [ -n "$unexpected" ] || ! printf '%s\n' "$out" | grep -qE '^[0-9]+%: Checks: [0-9]+,'; then
	printf '%s\n' "$out" >&2
	echo "arm64-test: test_runner failed beyond the known qemu-user vfork limitations" >&2
	exit 1
fi
echo "unit.test_runner under qemu: $(printf '%s\n' "$out" | grep -E '^[0-9]+%')"
printf '%s\n' "$failed" | grep . | sed 's|^.*/|  known qemu-user vfork limitation: |' || true

echo "== it.03-frmhs-commands with the arm64 agents under qemu-aarch64-static"
q=$b/qemu-bin
mkdir -p "$q"
for p in frMhc frMhs frcmd frAroundWeb mqttreq; do
	printf '#!/bin/sh\nexec qemu-aarch64-static %s "$@"\n' "$b/bin/$p" >"$q/$p"
	chmod +x "$q/$p"
done
FR_BIN=$q FR_SRC=$src bash "$src/tests/integration/03-frmhs-commands.sh"
echo "arm64 under qemu: unit suites and it.03 passed"
