#!/usr/bin/env bash
# Starts Debian's PostgreSQL (installed by tools/setup.sh) for Clew's PostgreSQL ledger and its tests:
# the first cluster pg_lsclusters lists (one is created if there is none), listening on loopback, with
# a role `clew` (password `clew`, allowed to create databases) and a database `clew`. Waits until the
# server accepts connections. Idempotent. Prints the URL the tests use (CLEW_TEST_POSTGRES).
set -euo pipefail
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

if ! pg_lsclusters -h 2>/dev/null | grep -q .; then
    version=$(ls /usr/lib/postgresql | sort -n | tail -1)
    $sudo pg_createcluster "$version" main >/dev/null
fi
read -r version cluster port status _ < <(pg_lsclusters -h | head -1)
if [ "$status" != "online" ]; then
    $sudo pg_ctlcluster "$version" "$cluster" start
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
