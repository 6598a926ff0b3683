#!/usr/bin/env bash
# The soak of docs/reliability.md: 1,000 kill -9 rounds over appenders, engine runs, OpenLineage ingest
# and view rebuilds (every acknowledged event present, `verify` and `views verify` clean after each),
# then several processes appending while the server ingests and serves (tools/soak.py says exactly what
# each round checks).
#
#   tools/soak.sh [--rounds N] [--minutes M] [--appenders K] [--seed S] [--workdir DIR] [--clew PATH]
#
# Builds clew in release mode unless --clew names an executable. Prints per-kind figures and one JSON
# line; exits 1 on the first broken promise, keeping the scratch ledgers for a look.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
args=("$@")
[[ " $* " == *" --clew "* ]] || args+=(--clew "$("$root/tools/clew_release.sh")")
exec python3 "$root/tools/soak.py" "${args[@]}"
