#!/usr/bin/env bash
# Builds everything (the CLI tests run the built `clew` binary) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"
swift build
swift test
