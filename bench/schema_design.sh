#!/usr/bin/env bash
# Measures the choices behind the cache table's shape (README, "Why the table
# looks like this"), on a throwaway cluster, with plain SQL so that only the
# table differs:
#  1. overwrites: HOT ratio and index growth with and without an index on
#     expires_at, and at fillfactor 100 / 90;
#  2. lookups: text key with the database collation, text key COLLATE "C",
#     and a 16-byte uuid hash of the key.
# Usage: bash bench/schema_design.sh [overwrites] [seconds per lookup run]
set -euo pipefail
cd "$(dirname "$0")/.."
overwrites=${1:-200000}
seconds=${2:-10}
keys=10000
source scripts/lib.sh
tmp=$(mktemp -d /tmp/fastpgcache-schema.XXXXXX); chmod 755 "$tmp"
port=$(free_port)
trap 'cluster_stop "$tmp"; rm -rf "$tmp"' EXIT
cluster_start "$tmp" "$port" "autovacuum = off"
export PGHOST="$tmp/sock" PGPORT="$port" PGUSER=postgres PGDATABASE=postgres
export PGOPTIONS="-c client_min_messages=warning"
q() { psql -X -qAt -v ON_ERROR_STOP=1 "$@"; }

echo "## Overwrites: $overwrites upserts over $keys keys with changing ttls (autovacuum off)"
echo
echo "| table | HOT updates | pkey index before -> after | expires_at index before -> after |"
echo "|---|---|---|---|"
variant() {  # variant NAME FILLFACTOR WITH_EXPIRES_INDEX
  q -c "DROP TABLE IF EXISTS t" -c "CREATE UNLOGGED TABLE t (key_hash uuid PRIMARY KEY, expires_at timestamptz,
        key text COLLATE \"C\" NOT NULL, value bytea NOT NULL) WITH (fillfactor = $2)"
  [ "$3" = yes ] && q -c "CREATE INDEX t_expires ON t (expires_at)"
  q -c "INSERT INTO t SELECT md5('k' || i)::uuid, clock_timestamp() + interval '1 hour', 'k' || i, convert_to(repeat('v', 100), 'UTF8')
        FROM generate_series(1, $keys) i" -c "VACUUM ANALYZE t"
  local pk0 ex0 pk1 ex1
  pk0=$(q -c "SELECT pg_size_pretty(pg_relation_size('t_pkey'))")
  ex0=$(q -c "SELECT coalesce(pg_size_pretty(pg_relation_size(to_regclass('t_expires'))), '-')")
  cat >"$tmp/upsert.sql" <<SQL
\set k random(1, $keys)
\set ttl random(60, 3600)
INSERT INTO t VALUES (md5('k' || :k)::uuid, clock_timestamp() + make_interval(secs => :ttl), 'k' || :k, convert_to(repeat('w', 100), 'UTF8'))
ON CONFLICT (key_hash) DO UPDATE SET expires_at = EXCLUDED.expires_at, value = EXCLUDED.value;
SQL
  pgbench -n -M prepared -c 2 -j 2 -t $((overwrites / 2)) -f "$tmp/upsert.sql" >/dev/null
  q -c "SELECT pg_stat_force_next_flush()" >/dev/null
  sleep 1
  pk1=$(q -c "SELECT pg_size_pretty(pg_relation_size('t_pkey'))")
  ex1=$(q -c "SELECT coalesce(pg_size_pretty(pg_relation_size(to_regclass('t_expires'))), '-')")
  local hot
  hot=$(q -c "SELECT round(100.0 * n_tup_hot_upd / greatest(n_tup_upd, 1), 1) || '% of ' || n_tup_upd FROM pg_stat_user_tables WHERE relname = 't'")
  echo "| $1 | $hot | $pk0 -> $pk1 | $ex0 -> $ex1 |"
}
variant "fillfactor 100, index on expires_at" 100 yes
variant "fillfactor 90, index on expires_at" 90 yes
variant "fillfactor 100, no index on expires_at" 100 no
variant "fillfactor 90, no index on expires_at (FastPgCache)" 90 no

echo
echo "## Lookups: pgbench -M prepared, 2 clients, ${seconds} s each, 100,000 keys of ~20 bytes"
echo
q -c "DROP TABLE IF EXISTS t" \
  -c "CREATE UNLOGGED TABLE l_default (key text PRIMARY KEY, value bytea)" \
  -c "CREATE UNLOGGED TABLE l_c (key text COLLATE \"C\" PRIMARY KEY, value bytea)" \
  -c "CREATE UNLOGGED TABLE l_hash (key_hash uuid PRIMARY KEY, key text COLLATE \"C\", value bytea)" \
  -c "INSERT INTO l_default SELECT 'user-session-' || i, convert_to(repeat('v', 100), 'UTF8') FROM generate_series(1, 100000) i" \
  -c "INSERT INTO l_c SELECT * FROM l_default" \
  -c "INSERT INTO l_hash SELECT encode(substring(sha256(convert_to(key, 'UTF8')) FROM 1 FOR 16), 'hex')::uuid, key, value FROM l_default"
q -c "VACUUM ANALYZE"
echo "| lookup | tps | ratio to text key, database collation ($(q -c "SHOW lc_collate")) |"
echo "|---|---|---|"
lookup() {  # lookup NAME SQL
  printf '\\set k random(1, 100000)\n%s\n' "$2" >"$tmp/lookup.sql"
  pgbench -n -M prepared -c 2 -j 2 -T "$seconds" -f "$tmp/lookup.sql" | awk '/^tps/ {print int($3)}'
}
# Three rounds, interleaved, so that drift on a noisy machine hits all three;
# the median of each is reported.
sql_default="SELECT value FROM l_default WHERE key = 'user-session-' || :k::int;"
sql_c="SELECT value FROM l_c WHERE key = 'user-session-' || :k::int;"
sql_hash="SELECT value FROM l_hash WHERE key_hash = encode(substring(sha256(convert_to('user-session-' || :k::int, 'UTF8')) FROM 1 FOR 16), 'hex')::uuid AND key = 'user-session-' || :k::int;"
r_default=(); r_c=(); r_hash=()
for _ in 1 2 3; do
  r_default+=("$(lookup default "$sql_default")")
  r_c+=("$(lookup c "$sql_c")")
  r_hash+=("$(lookup hash "$sql_hash")")
done
median() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
base=$(median "${r_default[@]}"); c=$(median "${r_c[@]}"); h=$(median "${r_hash[@]}")
echo "| text key, database collation | $base (runs: ${r_default[*]}) | 1.00 |"
echo "| text key, COLLATE \"C\" | $c (runs: ${r_c[*]}) | $(awk "BEGIN {printf \"%.2f\", $c / $base}") |"
echo "| uuid hash of the key, hash computed in SQL (the extension computes it in C++) | $h (runs: ${r_hash[*]}) | $(awk "BEGIN {printf \"%.2f\", $h / $base}") |"
echo
echo "Index sizes for 100,000 keys: text key $(q -c "SELECT pg_size_pretty(pg_relation_size('l_default_pkey'))"), uuid hash $(q -c "SELECT pg_size_pretty(pg_relation_size('l_hash_pkey'))")"
