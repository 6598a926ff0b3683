#!/usr/bin/env bash
# Builds everything (the CLI tests run the built `clew` binary) and runs the whole test suite. The
# shared-log tests need PostgreSQL: tools/postgres.sh starts it (idempotent) and says where it is,
# unless CLEW_TEST_POSTGRES names a server already.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"
if [ -z "${CLEW_TEST_POSTGRES:-}" ]; then
    CLEW_TEST_POSTGRES="$(tools/postgres.sh)?sslmode=disable"
    export CLEW_TEST_POSTGRES
fi
swift build
swift test
