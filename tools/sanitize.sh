#!/usr/bin/env bash
# The test suite under a sanitizer (docs/reliability.md keeps the latest result):
#
#   tools/sanitize.sh thread|address [FILTER]
#
# Builds everything (the tests and the `clew` the CLI tests start) with -sanitize=KIND into
# .build-sanitize-KIND (a first build takes 20-30 min on 2 cores), then runs the suite with that `clew`
# (CLEW_BIN), so the processes the tests start are checked too. Each process writes its reports to
# .build-sanitize-KIND/reports/; no report changes an exit status, so the suite's result says whether
# Clew works when instrumented, and tools/sanitizer_reports.py sorts the reports apart:
#   ThreadSanitizer: data races, lock-order inversions, signal-unsafe calls in handlers.
#   AddressSanitizer: out-of-bounds access, use after free, double free (leak checking is off: the
#   Swift runtime keeps metadata for the process's life by design).
# For TSan, tools/sanitize-mutex-check.swift is built first: when this toolchain's TSan reports races
# on its correctly locked Mutex counter, reports whose every access is inside a Mutex.withLock body are
# that blind spot, listed as explained. Exits 1 when a test failed or a report is unexplained.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 thread|address [FILTER]" >&2; exit 2; }
kind="$1"
shift
case "$kind" in thread|address) ;; *) echo "sanitize: KIND is thread or address, not '$kind'" >&2; exit 2 ;; esac
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"
scratch="$root/.build-sanitize-$kind"
log="$scratch/suite.log"
mkdir -p "$scratch"
[ -n "${CLEW_TEST_POSTGRES:-}" ] || { CLEW_TEST_POSTGRES="$(tools/postgres.sh)?sslmode=disable"; export CLEW_TEST_POSTGRES; }
[ -n "${CLEW_TEST_POSTGRES_FAULTS:-}" ] || { CLEW_TEST_POSTGRES_FAULTS="$(tools/postgres.sh --faults)?sslmode=disable"; export CLEW_TEST_POSTGRES_FAULTS; }
start=$(date +%s)
echo "sanitize: building with -sanitize=$kind into $scratch" >&2
swift build --build-tests --sanitize="$kind" --scratch-path "$scratch" >&2
built=$(date +%s)
CLEW_BIN="$(swift build --sanitize="$kind" --scratch-path "$scratch" --show-bin-path)/clew"
export CLEW_BIN
# Reports go to stderr of whichever process had them; the suite's log gathers the test process's and
# the CLI tests keep each clew's stderr, so reports of child processes are also written to files.
reports="$scratch/reports"
rm -rf "$reports"
mkdir -p "$reports"
blind=()
if [ "$kind" = thread ]; then
    check="$scratch/mutex-check"
    swiftc -sanitize=thread -O "$root/tools/sanitize-mutex-check.swift" -o "$check" >&2
    mkdir -p "$scratch/mutex-check-reports"
    rm -f "$scratch/mutex-check-reports"/*
    # It finished in seconds on 2026-12-02 and spun for 12 minutes at 100% CPU on 2026-12-03 (a busy
    # machine): bounded, and what it reported until then still counts.
    if ! TSAN_OPTIONS="exitcode=0 log_path=$scratch/mutex-check-reports/tsan" timeout 300 "$check" >/dev/null; then
        echo "sanitize: tools/sanitize-mutex-check.swift did not finish within 300 s; judging by the reports it wrote" >&2
    fi
    if cat "$scratch/mutex-check-reports"/* 2>/dev/null | grep -q "^SUMMARY: ThreadSanitizer"; then
        echo "sanitize: this toolchain's TSan reports races on a correctly locked Mutex (tools/sanitize-mutex-check.swift): reports inside Mutex.withLock are set apart" >&2
        blind=(--mutex-blind)
    fi
fi
# Tests allow for instrumented processes in time limits meant to catch a hang (CLI.sanitizer).
export CLEW_TEST_SANITIZER="$kind"
export TSAN_OPTIONS="halt_on_error=0 exitcode=0 second_deadlock_stack=1 log_path=$reports/tsan"
export ASAN_OPTIONS="detect_leaks=0 halt_on_error=0 exitcode=0 log_path=$reports/asan"
filter=()
[ $# -ge 1 ] && filter=(--filter "$1")
echo "sanitize: running the suite (log: $log)" >&2
set +e
# The sanitizer runtime starts llvm-symbolizer for a process's reports; one outlived the test process
# (2026-12-03) and, holding its output pipe, kept `swift test` waiting for ever after the last test.
# Symbolizers whose process is gone (adopted by init) are ended while the suite runs.
( while sleep 20; do
    for pid in $(pgrep -x llvm-symbolizer); do
        [ "$(ps -o ppid= -p "$pid" | tr -d ' ')" = 1 ] && kill "$pid" 2>/dev/null
    done
done ) &
reaper=$!
swift test --skip-build --sanitize="$kind" --scratch-path "$scratch" --experimental-maximum-parallelization-width 4 \
    "${filter[@]}" >"$log" 2>&1
status=$?
kill "$reaper" 2>/dev/null
set -e
end=$(date +%s)
result=$(grep -E "^.*Test run with [0-9]+ tests" "$log" | tail -1 | sed 's/\x1b\[[0-9;]*m//g')
echo "sanitize: $kind: build $((built - start)) s, suite $((end - built)) s, exit $status"
echo "sanitize: ${result:-no summary line; see $log}"
set +e
python3 "$root/tools/sanitizer_reports.py" "$reports" "${blind[@]}"
sorted=$?
set -e
[ "$status" -eq 0 ] && [ "$sorted" -eq 0 ]
