#!/usr/bin/env bash
# Builds Clew (release) and runs its main job on a local ledger directory (./clew.ledger):
# records 30 days of a realistic pipeline, signs a checkpoint, verifies everything, prints stats.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"
swift build -c release
.build/release/clew demo --ledger "${CLEW_LEDGER:-./clew.ledger}" "$@"
