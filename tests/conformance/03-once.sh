#!/usr/bin/env bash
# Conformance: "Exactly once, end to end" (docs/topics.md) with restarts of frMhs, frMhc and the
# broker between a request and its answer, a link cut mid-run, a frozen controller and a full
# disk; #11 items 2-7 and 16 as deterministic set-ups. One line per check.
source "$FR_SRC/tests/conformance/harness.sh"
conf_run once
