#!/usr/bin/env python3
"""Sorts the sanitizer reports of a tools/sanitize.sh run (files REPORTS/tsan.PID or asan.PID).

usage: sanitizer_reports.py REPORTS_DIR [--mutex-blind]

Prints one line per distinct report (its SUMMARY, with a count) in two groups, and exits 1 when the
second group is not empty:
  explained   ThreadSanitizer races where every access happened inside the body of a
              Synchronization.Mutex `withLock` (a closure of that signature is on each stack). With
              --mutex-blind (tools/sanitize.sh passes it once it has shown, on a ten-line program, that
              this toolchain's TSan reports races on a correctly locked Mutex<Int> counter), these are
              the Mutex false positive: on Linux, Mutex hands the lock over through the kernel's PI
              futex, which TSan cannot see.
  unexplained everything else: the reports to read.
"""
import os
import re
import sys
from collections import Counter

# A non-escaping closure taking its state `inout` (`z`, `zYu` for inout sending), with typed throws
# (`YT`, after the thrown type if it is not `any Error`): the body of Mutex.withLock.
WITH_LOCK_BODY = re.compile(r"z(Yu)?\w{0,12}?YTXEfU\d*_$")


def reports(directory):
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), errors="replace") as f:
            text = f.read()
        for block in re.split(r"\n(?===================\n)", text):
            if "SUMMARY:" in block:
                yield name, block


def accesses(block):
    """The stacks of a race report's accesses (current and previous)."""
    stacks, current = [], None
    for line in block.splitlines():
        if re.match(r"  (Read|Write|Atomic read|Atomic write|Modifying access|Read-only access|Previous)", line):
            current = []
            stacks.append(current)
        elif current is not None and re.match(r"    #\d+ ", line):
            current.append(line.split()[1])
        elif not line.startswith("    "):
            current = None
    return stacks


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    mutex_blind = "--mutex-blind" in sys.argv
    explained, unexplained = Counter(), Counter()
    for _, block in reports(sys.argv[1]):
        summary = re.search(r"SUMMARY: (.*)", block).group(1)
        summary = re.sub(r" \(BuildId: [0-9a-f]+\)", "", summary)
        stacks = accesses(block)
        inside_lock = "ThreadSanitizer" in summary and stacks and all(
            any(WITH_LOCK_BODY.search(frame) for frame in stack) for stack in stacks)
        (explained if mutex_blind and inside_lock else unexplained)[summary] += 1
    print(f"explained (inside Mutex.withLock, which this toolchain's TSan cannot see): {sum(explained.values())} reports, {len(explained)} distinct")
    for s, n in explained.most_common():
        print(f"  {n:4}  {s[:220]}")
    print(f"unexplained: {sum(unexplained.values())} reports, {len(unexplained)} distinct")
    for s, n in unexplained.most_common():
        print(f"  {n:4}  {s[:220]}")
    sys.exit(1 if unexplained else 0)


if __name__ == "__main__":
    main()
