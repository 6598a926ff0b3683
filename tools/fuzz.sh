#!/usr/bin/env bash
# Fuzzes one of Clew's parsers of outside input with libFuzzer (Swift's -sanitize=fuzzer, with
# AddressSanitizer), starting from the seed corpus in Fixtures/fuzz/TARGET.
#
#   tools/fuzz.sh TARGET [SECONDS]     TARGET: envelope append-lines pipeline openlineage expression bundle times
#   tools/fuzz.sh all [SECONDS]        each target in turn
#
# New inputs that reach new code go to .build-fuzz/corpus/TARGET (kept out of git); a crash leaves its
# input in .build-fuzz/crashes/ — copy it into Fixtures/fuzz/TARGET/ as crash-NAME once fixed, and the
# regression test (FuzzRegressionTests) replays it on every test run. Prints libFuzzer's final stats
# (executions, coverage, corpus) per target; docs/reliability.md keeps the latest figures.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 TARGET|all [SECONDS]" >&2; exit 2; }
root="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="/opt/swift/usr/bin:$PATH"
seconds="${2:-600}"
targets=("$1")
[ "$1" = all ] && targets=(envelope append-lines pipeline openlineage expression bundle times)
scratch="$root/.build-fuzz"
echo "fuzz: building the driver (first build from scratch: several minutes)" >&2
swift build --package-path "$root/Fuzz" --scratch-path "$scratch/build" --product clew-fuzz \
    -Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table -Xswiftc -use-ld=lld >&2
driver="$scratch/build/debug/clew-fuzz"
for t in "${targets[@]}"; do
    [ -d "$root/Fixtures/fuzz/$t" ] || { echo "fuzz: no seed corpus Fixtures/fuzz/$t (targets: envelope append-lines pipeline openlineage expression bundle times)" >&2; exit 2; }
    mkdir -p "$scratch/corpus/$t" "$scratch/crashes"
    echo "== $t: $seconds s" >&2
    log="$scratch/$t.log"
    set +e
    CLEW_FUZZ_TARGET="$t" ASAN_OPTIONS=detect_leaks=0 "$driver" "$scratch/corpus/$t" "$root/Fixtures/fuzz/$t" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$scratch/crashes/$t-" >"$log" 2>&1
    rc=$?
    set -e
    grep -E "^#[0-9]+.*(DONE|pulse)|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|cov:" "$log" | tail -4
    if [ $rc -ne 0 ]; then
        echo "fuzz: $t found a failure (exit $rc); its input is in $scratch/crashes/; the log: $log" >&2
        grep -E "ERROR|Fatal error|SUMMARY|Test unit written" "$log" | head -10 >&2
        exit 1
    fi
done
