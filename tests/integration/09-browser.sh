#!/usr/bin/env bash
# The browser test (tests/browser/browser.test.mjs) under ctest: the demo stack on free loopback
# ports in a temp dir, Debian's chromium through playwright-core, bounded in time. Screenshots
# land in the build dir (browser-artifacts/). Needs `npm ci` in tests/browser/ and web/
# (./fr deps does both).
set -u
FR_BIN=${FR_BIN:?set FR_BIN to the bin dir of the build}
FR_SRC=${FR_SRC:?set FR_SRC to the source tree}
fail() { echo "FAIL: 09-browser: $*" >&2; exit 1; }

[ -x /usr/bin/chromium ] || fail "/usr/bin/chromium missing (./fr deps installs chromium)"
[ -d "$FR_SRC/tests/browser/node_modules/playwright-core" ] || fail "tests/browser/node_modules missing (./fr deps runs npm ci)"
[ -f "$FR_SRC/web/node_modules/mqtt/dist/mqtt.esm.js" ] || fail "web/node_modules missing (./fr deps runs npm ci)"
[ -f "$FR_SRC/web/node_modules/uplot/dist/uPlot.iife.min.js" ] || fail "web/node_modules/uplot missing (./fr deps runs npm ci)"
command -v node >/dev/null || fail "node missing (./fr deps installs nodejs)"
command -v php >/dev/null || fail "php missing (./fr deps installs php-cli)"

# The page's sources at least parse (a syntax error would otherwise show only as a blank page).
for f in "$FR_SRC"/web/public/*.php "$FR_SRC"/web/lib/*.php "$FR_SRC"/web/api/*.php; do
	php -l "$f" >/dev/null || fail "php -l $f"
done
for f in app.js charts.js; do
	node --check "$FR_SRC/web/public/$f" 2>/dev/null ||
		node --input-type=module --check <"$FR_SRC/web/public/$f" || fail "node --check web/public/$f"
done

STATE=$(mktemp -d /tmp/fr-browser.XXXXXX)
# However the node process ends (even killed by the timeout), the demo it started is stopped.
cleanup() {
	FR_DEMO_DIR=$STATE bash "$FR_SRC/tests/demo/demo.sh" stop >/dev/null 2>&1 || true
	if [ "${rc:-1}" -ne 0 ] && [ -d "$STATE/logs" ]; then
		mkdir -p "$FR_ARTIFACTS" && cp -r "$STATE/logs" "$FR_ARTIFACTS/demo-logs"
		echo "09-browser: the demo's logs are in $FR_ARTIFACTS/demo-logs" >&2
	fi
	rm -rf "$STATE"
}
trap cleanup EXIT

export FR_BIN FR_BROWSER_STATE=$STATE FR_ARTIFACTS=${FR_ARTIFACTS:-$(dirname "$FR_BIN")/browser-artifacts}
rm -rf "$FR_ARTIFACTS/demo-logs"
cd "$FR_SRC/tests/browser" || exit 1
timeout -k 10 270 node --test --test-timeout=240000 browser.test.mjs
rc=$?
[ $rc -eq 0 ] || echo "09-browser: failed (rc $rc); screenshots in $FR_ARTIFACTS" >&2
exit $rc
