#!/usr/bin/env bash
# Builds clew in release mode (quietly, progress on stderr) and prints the executable's path: what
# tools/soak.sh and tools/load.sh run unless given --clew PATH.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"
echo "building clew (release)" >&2
swift build --package-path "$root" -c release --product clew >&2
echo "$(swift build --package-path "$root" -c release --show-bin-path)/clew"
