#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The full crash run of issue 15: 1,000 SIGKILLs through the real daemon
# and CLI (state-crash.sh runs 100 in `meson test`).  Run as root from a
# build directory's environment:
#   CREDBROKER_CLI=build/client/credbroker CREDBROKERD=build/broker/credbrokerd \
#       bash tests/adversarial/state-crash-full.sh
CB_STATE_CRASH_ITERATIONS=${CB_STATE_CRASH_ITERATIONS:-1000} exec bash "$(dirname "$0")/state-crash.sh" "$@"
