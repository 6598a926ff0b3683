#!/usr/bin/env bash
# Where a views rebuild's writes go, per view (docs/benchmarks.md keeps the latest figures):
#
#   tools/views_writes.sh LEDGER [CLEW]
#
# Runs `clew rebuild` on LEDGER under strace, counting the bytes of every write/pwrite64/pwritev/writev
# by the file it went to, and prints them per view: the folded copy (every commit writes each page it
# touched, so a table with random keys writes far more than it keeps), the sorted runs of its
# bulk-loaded tables (views format 10: the value index and lineage edges, written once and merged), and
# the packed copy swapped in (written once, in key order). The bytes are the same on every run of one ledger; strace makes the
# rebuild itself 3-5x slower, so its time means nothing here. CLEW defaults to .build/release/clew.
# Needs strace (apt-get install strace). The ledger's views are rebuilt: it must not be in use.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 LEDGER [CLEW]" >&2; exit 2; }
ledger="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"
clew="${2:-$root/.build/release/clew}"
[ -d "$ledger" ] || { echo "views_writes: no ledger at $ledger" >&2; exit 2; }
[ -x "$clew" ] || { echo "views_writes: no clew at $clew (swift build -c release, or pass one)" >&2; exit 2; }
command -v strace >/dev/null || { echo "views_writes: strace is not installed (apt-get install strace)" >&2; exit 2; }
trace="$(mktemp)"
trap 'rm -f "$trace"' EXIT
strace -f -e trace=openat,write,pwrite64,pwritev,writev -e signal=none -o "$trace" "$clew" rebuild --ledger "$ledger"
python3 - "$trace" "$ledger" <<'EOF'
import collections, re, sys
trace, ledger = sys.argv[1], sys.argv[2]
names, written, calls, sorted_runs = {}, collections.Counter(), collections.Counter(), collections.Counter()
pending = {}  # a call strace split across lines (threads): pid -> (call, fd or path)
for line in open(trace):
    head = re.match(r'(\d+)\s+(.*)$', line.rstrip("\n"))
    if not head:
        continue
    pid, rest = head.groups()
    m = re.match(r'(openat|write|pwrite64|pwritev|writev)\((?:AT_FDCWD, "([^"]+)"|(\d+)),.*<unfinished \.\.\.>$', rest)
    if m:
        pending[pid] = (m.group(1), m.group(2) or m.group(3))
        continue
    m = re.match(r'<\.\.\. (\w+) resumed>.*= (\d+)$', rest)
    if m and pid in pending:
        call, arg = pending.pop(pid)
        if call == "openat":
            names[m.group(2)] = arg
            continue
        fd, n = arg, int(m.group(2))
    else:
        m = re.match(r'openat\(AT_FDCWD, "([^"]+)".*= (\d+)$', rest)
        if m:
            names[m.group(2)] = m.group(1)
            continue
        m = re.match(r'(?:write|pwrite64|pwritev|writev)\((\d+),.*= (\d+)$', rest)
        if not m:
            continue
        fd, n = m.group(1), int(m.group(2))
    path = names.get(fd, "")
    g = re.search(r'/views/(\w+)\.(\d+)/bulk-[\w-]+\.run$', path)
    if g:
        sorted_runs[g.group(1)] += n
        continue
    g = re.search(r'/views/(\w+)\.(\d+)/data\.mdb$', path)
    if not g:
        continue
    key = (g.group(1), int(g.group(2)))
    written[key] += n
    calls[key] += 1
# Per view, the rebuild folds into a new generation, then packs it into the next one.
seen = collections.defaultdict(list)
for view, gen in sorted(written):
    seen[view].append(gen)
print(f"{'view':10} {'fold MB':>10} {'pwrites':>10} {'runs MB':>10} {'packed MB':>10} {'written/packed':>15}")
total_fold = total_packed = total_runs = 0
for view in sorted(seen, key=lambda v: -written[(v, seen[v][0])]):
    fold = written[(view, seen[view][0])]
    packed = written[(view, seen[view][1])] if len(seen[view]) > 1 else 0
    runs = sorted_runs[view]
    total_fold += fold
    total_packed += packed
    total_runs += runs
    ratio = f"{(fold + runs) / packed:15.1f}" if packed else f"{'-':>15}"
    print(f"{view:10} {fold / 1e6:10.1f} {calls[(view, seen[view][0])]:10d} {runs / 1e6:10.1f} {packed / 1e6:10.1f} {ratio}")
print(f"{'all':10} {total_fold / 1e6:10.1f} {'':10} {total_runs / 1e6:10.1f} {total_packed / 1e6:10.1f} {(total_fold + total_runs) / max(1, total_packed):15.1f}")
EOF
