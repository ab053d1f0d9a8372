# SPDX-License-Identifier: Apache-2.0
# Sourced by the integration tests: log_lines_bad FILE... prints every line
# of a daemon's captured stderr that is not "RFC3339Z credbrokerd[PID]: LEVEL: text"
# (broker/log.h), prefixed with its file name; nothing when all conform.
# Lines a hook or the operator's own program wrote are not the daemon's:
# callers capture the daemon's stderr alone, hooks write elsewhere.
log_lines_bad() {
        grep -avHE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z credbrokerd\[[0-9]+\]: (error|warning|notice|info): ' "$@"
}
