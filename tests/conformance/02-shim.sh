#!/usr/bin/env bash
# Conformance: docs/shim.md -- every op and error, ids, framing, limits, HTTP endpoints, the users
# file and revocations with fr-admin -- with raw sockets, curl and bridge-php. One line per check.
source "$FR_SRC/tests/conformance/harness.sh"
conf_run shim
