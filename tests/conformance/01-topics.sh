#!/usr/bin/env bash
# Conformance: docs/topics.md -- the topic table, statuses, reply routing, progress, duplicates,
# display, retained requests -- with python3-paho (MQTT 5 and 3.1.1), the mosquitto clients and
# mqtt.js (ws, and wss through nginx). One line per check; fails if any check fails.
source "$FR_SRC/tests/conformance/harness.sh"
conf_run topics
