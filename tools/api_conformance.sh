#!/usr/bin/env bash
# API conformance: schemathesis (PyPI, in the `conformance` venv of tools/producers.sh) generates
# requests from docs/openapi.yaml and sends them to a running `clew serve`, once per role, checking
# that no answer is a 5xx, that every status is one the spec documents for that operation, and that
# every body matches its documented content type and schema.
#
#   tools/api_conformance.sh BASE_URL ADMIN_TOKEN OPERATOR_TOKEN VIEWER_TOKEN [EXAMPLES]
#
# Passes: anonymous, viewer, operator, admin; revoking tokens runs last, in a pass of its own, since
# it may revoke the token that drives it. GET /api/stream is asked only anonymously: with a token it is a
# server-sent event stream that never ends (a heartbeat every 10 s), which a request/response checker
# cannot judge; ServeTests follow it instead. Deterministic generation (no random seed, no example
# database), so a run is repeatable. Prints each pass's summary and exits non-zero when one fails.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 BASE_URL ADMIN_TOKEN OPERATOR_TOKEN VIEWER_TOKEN [EXAMPLES]" >&2; exit 2; }
base="$1" admin="$2" operator="$3" viewer="$4" examples="${5:-10}"
root="$(cd "$(dirname "$0")/.." && pwd)"
venvs="${CLEW_VENVS:-$HOME/.cache/clew/venvs}"
st="$venvs/conformance/bin/schemathesis"
[ -x "$st" ] || { echo "api_conformance: $st is missing; run tools/producers.sh (it installs schemathesis)" >&2; exit 2; }
reports="$(mktemp -d)"
trap 'rm -rf "$reports"' EXIT
# schemathesis keeps a cache in its working directory: give it the scratch one, not the repository.
cd "$reports"

status=0
pass() {
    local name="$1"
    shift
    echo "== pass: $name"
    # -w 1: schemathesis's workers share Hypothesis's lambda cache, which failed with
    # "AST constructor recursion depth mismatch" under 2 workers here.
    if ! "$st" run "$root/docs/openapi.yaml" --url "$base" --workers 1 --no-color --output-truncate false \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
        --phases examples,coverage,fuzzing --max-examples "$examples" --generation-deterministic \
        --request-timeout 30 --suppress-health-check all --warnings off \
        --report junit --report-junit-path "$reports/$name.xml" "$@" >"$reports/$name.txt" 2>&1; then
        status=1
        cat "$reports/$name.txt"
    else
        sed -n '/SUMMARY/,$p' "$reports/$name.txt"
    fi
    python3 - "$reports/$name.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
cases = sum(int(s.get("tests", 0)) for s in suites)
failures = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
print(f"operations tested: {cases}, failed: {failures}")
EOF
}

pass anonymous
pass viewer -H "Authorization: Bearer $viewer" --exclude-path /api/stream
pass operator -H "Authorization: Bearer $operator" --exclude-path /api/stream
pass admin -H "Authorization: Bearer $admin" --exclude-path '/api/tokens/{id}' --exclude-path /api/stream
pass revoke -H "Authorization: Bearer $admin" --include-path '/api/tokens/{id}'
exit $status
