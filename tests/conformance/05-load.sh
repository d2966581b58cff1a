#!/usr/bin/env bash
# Conformance under load: every controller event reaches the event topic (#11 item 11), and
# requests from four kinds of client at once each get one result and run once. Bounded.
source "$FR_SRC/tests/conformance/harness.sh"
conf_run load
