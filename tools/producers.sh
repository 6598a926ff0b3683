#!/usr/bin/env bash
# Installs the real OpenLineage producers the tests drive, from PyPI, each into its own virtual
# environment outside the repository (CLEW_VENVS, default ~/.cache/clew/venvs; never in git):
#   airflow2  Airflow 2.10 with its OpenLineage provider (and the SQLite provider for the fixture DAG)
#   airflow3  the newest Airflow 3 that installs here, with the same providers and the standard operators
#   dbt       dbt-core with dbt-duckdb and openlineage-dbt (`dbt-ol`)
#   clew-python  this repository's Python package (python/), what Python tasks import as `clew`
#   ops       aiosmtpd (the SMTP server the alert tests send to) and prometheus-client (its parser)
# A venv is rebuilt only when its requirement list changes (a stamp file holds the list). Prints the
# venvs' directory last. Fails, naming the producer, if one cannot be installed.
set -euo pipefail
venvs="${CLEW_VENVS:-$HOME/.cache/clew/venvs}"
mkdir -p "$venvs"

install() {
    local name="$1"
    shift
    local dir="$venvs/$name" stamp="$venvs/$name/.clew-requirements"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$*" ]; then return 0; fi
    echo "producers: installing $name ($*) from PyPI into $dir"
    rm -rf "$dir"
    python3 -m venv "$dir"
    local reqs=()
    for r in "$@"; do
        [[ "$r" == stamp=* ]] && continue  # stamp=…: in the stamp only
        [[ "$r" == clew-python-local ]] && r="$package"  # this repository's package (a copy; see below)
        reqs+=("$r")
    done
    if ! "$dir/bin/pip" install --quiet --disable-pip-version-check "${reqs[@]}" >"$venvs/$name.log" 2>&1; then
        echo "producers: could not install $name; pip said:" >&2
        tail -20 "$venvs/$name.log" >&2
        exit 1
    fi
    echo "$*" >"$stamp"
}

install airflow2 "apache-airflow==2.10.5" "apache-airflow-providers-openlineage==2.8.0" "apache-airflow-providers-sqlite"
install airflow3 "apache-airflow==3.3.2" "apache-airflow-providers-openlineage==2.20.3" "apache-airflow-providers-standard" \
    "apache-airflow-providers-sqlite" "apache-airflow-providers-common-sql"
install dbt "dbt-core~=1.9.0" "dbt-duckdb~=1.9.0" "openlineage-dbt"
# Operations peers: a real SMTP server (STARTTLS, AUTH) the alert tests start on loopback, and the
# Prometheus client's parser of the exposition format the metrics test reads /metrics with.
install ops "aiosmtpd==1.4.6" "prometheus-client==0.21.1"
# API conformance: schemathesis generates requests from docs/openapi.yaml and checks the answers.
install conformance "schemathesis==4.32.5"
# Clew's own Python package (python/ in this repository), for Python tasks: reinstalled when its files
# change; also into the Airflow venvs (their DAGs' tasks use it), without reinstalling Airflow.
source_dir="$(cd "$(dirname "$0")/../python" && pwd)"
sources="$(cd "$source_dir" && find clew -name '*.py' | sort | xargs sha256sum | cat - pyproject.toml | sha256sum | cut -c1-16)"
# pip builds in the folder it is given (build/, *.egg-info): give it a copy, so the repository stays clean
# and no stale build output is installed.
package="$(mktemp -d)/clew-python"
trap 'rm -rf "$(dirname "$package")"' EXIT
mkdir -p "$package"
cp -r "$source_dir/clew" "$source_dir/pyproject.toml" "$source_dir/README.md" "$package/"
install clew-python clew-python-local "stamp=$sources"
for venv in airflow2 airflow3; do
    stamp="$venvs/$venv/.clew-package"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sources" ]; then continue; fi
    if ! "$venvs/$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --force-reinstall "$package" >"$venvs/$venv-clew.log" 2>&1; then
        echo "producers: could not install Clew's package into $venv; pip said:" >&2
        tail -20 "$venvs/$venv-clew.log" >&2
        exit 1
    fi
    echo "$sources" >"$stamp"
done
echo "$venvs"
