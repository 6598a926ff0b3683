#!/usr/bin/env bash
# The load test of docs/reliability.md: wrk (Debian) against `clew serve`'s read endpoints and
# OpenLineage ingest, then reads during ingest; p50/p99 latency, errors, the server's memory, and
# afterwards every acknowledged event recorded and the ledger verified (tools/load.py says exactly how).
#
#   tools/load.sh [--seconds S] [--connections C] [--threads T] [--workdir DIR] [--clew PATH]
#
# Builds clew in release mode unless --clew names an executable. Installs nothing: wrk comes from
# tools/setup.sh (apt-get install wrk).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
command -v wrk >/dev/null || { echo "load: wrk is missing; run tools/setup.sh (or apt-get install wrk)" >&2; exit 2; }
args=("$@")
[[ " $* " == *" --clew "* ]] || args+=(--clew "$("$root/tools/clew_release.sh")")
exec python3 "$root/tools/load.py" "${args[@]}"
