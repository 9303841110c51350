#!/usr/bin/env bash
# The main job: installs what it needs, builds and installs the extension,
# starts a local PostgreSQL 15 with it (or uses $DATABASE_URL / PG* variables
# when given), and shows the quick start working.
# Usage: bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
echo "==> building and installing the extension"
make -s WERROR=1
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo make -s install >/dev/null

source scripts/lib.sh
if [ -n "${DATABASE_URL:-}" ]; then
  conn=("$DATABASE_URL")
  how="psql \"\$DATABASE_URL\""
  stop=""
elif [ -n "${PGHOST:-}${PGPORT:-}${PGDATABASE:-}" ]; then
  conn=()
  how="psql   (with your PG* variables)"
  stop=""
else
  dir=${FPC_DEMO_DIR:-/tmp/fastpgcache-demo}
  port=${FPC_DEMO_PORT:-}
  if [ -z "$port" ]; then
    port=$(cat "$dir/port" 2>/dev/null || true)
    if [ -z "$port" ] || { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && ! as_pg pg_ctl -D "$dir/data" status >/dev/null 2>&1; }; then
      port=$(free_port)
    fi
  fi
  echo "==> starting PostgreSQL in $dir on 127.0.0.1:$port"
  cluster_start "$dir" "$port" "shared_preload_libraries = 'fastpgcache'"
  echo "$port" >"$dir/port"
  conn=(-h 127.0.0.1 -p "$port" -U postgres -d postgres)
  how="psql -h 127.0.0.1 -p $port -U postgres postgres"
  if [ "$(id -u)" -eq 0 ]; then
    stop="runuser -u postgres -- $PG_BINDIR/pg_ctl -D $dir/data stop"
  else
    stop="$PG_BINDIR/pg_ctl -D $dir/data stop"
  fi
fi

echo "==> the quick start"
psql -X -v ON_ERROR_STOP=1 "${conn[@]}" <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS fastpgcache;
\echo
\echo '-- SET user:123 with a one-hour ttl, then read it back'
SELECT cache_set('user:123', '{"name": "Alice", "email": "alice@example.com"}', 3600);
SELECT cache_get('user:123');
SELECT cache_get_json('user:123') ->> 'name' AS name;
\echo '-- EXISTS and TTL'
SELECT cache_exists('user:123') AS exists, cache_ttl('user:123') AS ttl_seconds;
\echo '-- a key without expiry has ttl -1, a missing key -2'
SELECT cache_set('config:app', '{"theme": "dark"}'::jsonb);
SELECT cache_ttl('config:app') AS no_expiry, cache_ttl('nope') AS missing;
\echo '-- DEL'
SELECT cache_delete('user:123') AS deleted, cache_get('user:123') AS after_delete;
\echo '-- a ttl of 1 second, then gone'
SELECT cache_set('session:abc', 'short-lived', 1);
SELECT pg_sleep(1.1);
SELECT cache_get('session:abc') AS expired_value, cache_exists('session:abc') AS exists;
SELECT cache_cleanup() AS expired_rows_removed;
SQL

echo
echo "FastPgCache is installed and working."
echo "Connect with:  $how"
[ -n "$stop" ] && echo "Stop it with:  $stop"
exit 0
