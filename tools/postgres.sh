#!/usr/bin/env bash
# Starts Debian's PostgreSQL (installed by tools/setup.sh) for Clew's PostgreSQL ledger and its tests:
# the first cluster pg_lsclusters lists (one is created if there is none), listening on loopback, with
# a role `clew` (password `clew`, allowed to create databases) and a database `clew`. Waits until the
# server accepts connections. Idempotent. Prints the URL the tests use (CLEW_TEST_POSTGRES), and nothing else on stdout.
#
# tools/postgres.sh --faults: a second cluster, `clewfaults` on port 5433, for the fault tests that
# run hosts in network namespaces and restart the server (so no other test sees the restarts). It
# listens on every address and accepts password logins from loopback and from the test namespaces'
# links (10.231.0.0/16) only. Prints its URL (CLEW_TEST_POSTGRES_FAULTS).
set -euo pipefail
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

faults=false
if [ "${1:-}" = "--faults" ]; then faults=true; fi

if $faults; then
    version=$(ls /usr/lib/postgresql | sort -n | tail -1)
    if ! pg_lsclusters -h | awk '{print $2}' | grep -qx clewfaults; then
        $sudo pg_createcluster "$version" clewfaults -p 5433 >/dev/null
    fi
    read -r version cluster port status _ < <(pg_lsclusters -h | awk '$2 == "clewfaults"')
    conf=/etc/postgresql/$version/$cluster
    changed=false
    if ! grep -q "^listen_addresses = '\*'" "$conf/postgresql.conf"; then
        echo "listen_addresses = '*'" | $sudo tee -a "$conf/postgresql.conf" >/dev/null
        changed=true
    fi
    if ! grep -q "10.231.0.0/16" "$conf/pg_hba.conf"; then
        echo "host all clew 10.231.0.0/16 scram-sha-256" | $sudo tee -a "$conf/pg_hba.conf" >/dev/null
        changed=true
    fi
    if [ "$status" = "online" ] && $changed; then
        $sudo pg_ctlcluster "$version" "$cluster" restart >&2
    elif [ "$status" != "online" ]; then
        $sudo pg_ctlcluster "$version" "$cluster" start >&2
    fi
else
    if ! pg_lsclusters -h 2>/dev/null | grep -q .; then
        version=$(ls /usr/lib/postgresql | sort -n | tail -1)
        $sudo pg_createcluster "$version" main >/dev/null
    fi
    read -r version cluster port status _ < <(pg_lsclusters -h | awk '$2 != "clewfaults"' | head -1)
    if [ "$status" != "online" ]; then
        $sudo pg_ctlcluster "$version" "$cluster" start >&2
    fi
fi
for _ in $(seq 1 100); do
    pg_isready -q -h 127.0.0.1 -p "$port" && break
    sleep 0.1
done
pg_isready -q -h 127.0.0.1 -p "$port" || { echo "postgres.sh: PostgreSQL $version/$cluster did not accept connections on 127.0.0.1:$port" >&2; exit 1; }
as_postgres psql -q -p "$port" -v ON_ERROR_STOP=1 -d postgres <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'clew') THEN
    CREATE ROLE clew LOGIN PASSWORD 'clew' CREATEDB;
  END IF;
END $$;
SQL
if ! as_postgres psql -p "$port" -tAc "SELECT 1 FROM pg_database WHERE datname = 'clew'" | grep -q 1; then
    as_postgres createdb -p "$port" -O clew clew
fi
echo "postgres://clew:clew@127.0.0.1:$port/clew"
