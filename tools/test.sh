#!/usr/bin/env bash
# Builds everything (the CLI tests run the built `clew` binary) and runs the whole test suite. The
# shared-log tests need PostgreSQL: tools/postgres.sh starts it (idempotent) and says where it is,
# unless CLEW_TEST_POSTGRES names a server already; the fault tests get a cluster of their own
# (tools/postgres.sh --faults, CLEW_TEST_POSTGRES_FAULTS).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"
if [ -z "${CLEW_TEST_POSTGRES:-}" ]; then
    CLEW_TEST_POSTGRES="$(tools/postgres.sh)?sslmode=disable"
    export CLEW_TEST_POSTGRES
fi
# The fault tests' own server (they restart it, and reach it from network namespaces).
if [ -z "${CLEW_TEST_POSTGRES_FAULTS:-}" ]; then
    CLEW_TEST_POSTGRES_FAULTS="$(tools/postgres.sh --faults)?sslmode=disable"
    export CLEW_TEST_POSTGRES_FAULTS
fi
# The Python package's own tests, and its venv (tools/producers.sh; quick when nothing changed), which
# the Python-task tests run.
python3 -m unittest discover -s python/tests
tools/producers.sh >/dev/null
swift build
# At most 8 tests at once: the suite's processes (servers, Chromium, Airflow, hosts in namespaces) share
# two cores, and unbounded, the timing of the cluster fault tests and the benchmarks' smoke runs went past
# their limits in about one full run in two.
swift test --experimental-maximum-parallelization-width 8
