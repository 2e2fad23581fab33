#!/usr/bin/env bash
# Install (if needed) and start a PostgreSQL server on loopback for the multi-worker tests.
# Prints the storage URL on success; prints nothing and exits non-zero otherwise.
set -u
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) \
        >/dev/null 2>&1 || exit 1
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
pg_lsclusters -h | grep -q "^$version main" || pg_createcluster "$version" main >/dev/null 2>&1
pg_ctlcluster "$version" main start >/dev/null 2>&1 || pg_lsclusters -h | grep -q online || exit 1
for _ in $(seq 1 30); do
    su postgres -c "psql -qAtc 'select 1'" >/dev/null 2>&1 && break
    sleep 1
done
su postgres -c "psql -qAtc \"select 1 from pg_roles where rolname='pairsearch'\"" | grep -q 1 ||
    su postgres -c "psql -qc \"create role pairsearch login password 'pairsearch'\"" >/dev/null || exit 1
su postgres -c "psql -qAtc \"select 1 from pg_database where datname='pairsearch'\"" | grep -q 1 ||
    su postgres -c "createdb -O pairsearch pairsearch" >/dev/null || exit 1
echo "postgresql+psycopg2://pairsearch:pairsearch@127.0.0.1:5432/pairsearch"
