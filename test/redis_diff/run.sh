#!/usr/bin/env bash
# The Redis differential test (test/redis_diff/diff.py): starts a private
# redis-server on a free port, runs the same seeded command sequence against
# it and against the SQL API of database DBNAME (the extension or the
# pure-SQL fallback, whichever DBNAME has), and stops the server.
# Usage: test/redis_diff/run.sh DBNAME [diff.py options: --ops N --seed N --keep-going ...]
#        (PGHOST/PGPORT/PGUSER set by the caller)
# By hand, a million operations: test/redis_diff/run.sh DB --ops 1000000 --seed $RANDOM --progress 50000
set -euo pipefail
db=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/lib.sh"
dir=$(mktemp -d /tmp/fastpgcache-redis.XXXXXX)
port=$(free_port)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
  --daemonize no --logfile "$dir/redis.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis-cli -p "$port" ping >/dev/null || { cat "$dir/redis.log"; echo "redis-server did not start"; exit 1; }
echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$port"
# Debian's interpreter: python3-redis and python3-psycopg2 are Debian packages
/usr/bin/python3 "$here/diff.py" --redis-port "$port" --dbname "$db" "$@"
