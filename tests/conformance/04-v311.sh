#!/usr/bin/env bash
# Conformance: the home on MQTT 3.1.1 (frmhs.conf version = 4) -- routing without response
# topics, statuses, duplicates, retained requests (#11 item 12), item 16 on 3.1.1, the offline
# time from the keepalive (#11 item 14), frAroundWeb on 3.1.1 (#16). One line per check.
source "$FR_SRC/tests/conformance/harness.sh"
conf_run v311
