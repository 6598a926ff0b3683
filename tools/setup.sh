#!/usr/bin/env bash
# Installs what Clew needs on a fresh Debian machine: LMDB and zstd development files (the
# system-library targets link them through pkg-config), pkg-config itself, and protoc (the tests
# check the event schema against the reference protobuf decoder), python3 (proof checks, fixture
# scripts), python3-jsonschema (the tests validate the OpenLineage and PROV-JSON exports), tmux (the
# tests drive `clew debug` in it), wrk (the load test, tools/load.sh), zlib (gzip request bodies), the
# dashboard's browser-side libraries from Debian (libjs-chart.js, node-dagre-layout), Debian's chromium
# and python3-websocket (the tests load every dashboard page in headless Chromium over the DevTools
# protocol), and the openlineage-python client from PyPI (the tests send events with it), and, through
# tools/producers.sh, Airflow and dbt with their OpenLineage integrations in virtual environments outside
# the repository, and PostgreSQL, which it starts (tools/postgres.sh: the shared-log tests use it on
# loopback). Idempotent and quiet when done.
set -euo pipefail

packages=(liblmdb-dev libzstd-dev libssl-dev pkg-config protobuf-compiler python3 python3-jsonschema tmux zlib1g-dev wrk
    libjs-chart.js node-dagre-layout python3-websocket postgresql iproute2 openssl)
# chromium with its recommended packages (fonts), as the browser tests were written against.
browser=(chromium)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for p in "${browser[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        echo "setup: installing $p"
        sudo=""
        if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$p" >/dev/null
    fi
done
python3 -c "import openlineage.client" 2>/dev/null || {
    echo "setup: installing openlineage-python (PyPI)"
    python3 -m pip install --quiet --disable-pip-version-check openlineage-python
}
# Real OpenLineage producers (Airflow with its provider, dbt with openlineage-dbt) in their own venvs.
"$(dirname "$0")/producers.sh" >/dev/null
command -v swift >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"
pkg-config --exists lmdb libzstd libcrypto || { echo "setup: pkg-config cannot find lmdb/libzstd/libcrypto" >&2; exit 1; }
# PostgreSQL for the shared log and its tests, started and given the role and database the tests use.
"$(dirname "$0")/postgres.sh" >/dev/null
# And the fault tests' own cluster (hosts in network namespaces reach it; the tests restart it).
"$(dirname "$0")/postgres.sh" --faults >/dev/null
