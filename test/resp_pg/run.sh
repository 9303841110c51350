#!/usr/bin/env bash
# The Redis-protocol front end to end (issue 13, "Tests"): the RESP workers
# of REAL PostgreSQL clusters (never test/resp's in-memory double), with a
# private redis-server as the reference where Redis defines the behaviour.
#
#   cluster "main"     preloaded, fastpgcache.resp_port set, 2 workers sharing
#                      the port, a unix socket, resp_default_user = app, and
#                      the roles of e2e.py: every script below runs against it
#   cluster "standby"  pg_basebackup -R of main with the same settings: does
#                      not listen; listens once promoted
#   cluster "startup"  fastpgcache.resp_database not created yet and the
#                      port held by another listener: one WARNING each, then
#                      served once the database exists and the port is free
#
# Usage: bash test/resp_pg/run.sh [--long] [STEP...]
#   STEP: commands sql_resp auth diff cli robust lifecycle standby startup
#   --long: the long variants (10,000 idle connections, 500,000 differential
#           commands, a longer slow client); or set the knobs one by one:
#           RESP_IDLE_CONNECTIONS=N  RESP_DIFF_OPS=N  RESP_DIFF_SEED=N
#   KEEP_LOGS=1 keeps the clusters' logs (the directory is printed).
# Run from scripts/test.sh, PGBIN names the private install tree built there;
# run alone, the extension is built into a private tree here first (never the
# system's). Prints "N passed, N failed" last; non-zero on failure.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$root/scripts/lib.sh"
PY=/usr/bin/python3   # Debian's python3: python3-redis and python3-psycopg2 are Debian packages

steps=()
for a in "$@"; do
  case "$a" in
    --long) export RESP_IDLE_CONNECTIONS=${RESP_IDLE_CONNECTIONS:-10000} RESP_DIFF_OPS=${RESP_DIFF_OPS:-500000}
            export RESP_SLOW_SECONDS=${RESP_SLOW_SECONDS:-60} ;;
    *) steps+=("$a") ;;
  esac
done
[ ${#steps[@]} -gt 0 ] || steps=(commands sql_resp auth diff cli robust lifecycle standby startup)
want() { local s; for s in "${steps[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/fpc-resp-pg.XXXXXX")
chmod 755 "$work"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$work"
clusters=()
bg=()
cleanup() {
  local p d
  for p in "${bg[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${bg[@]}"; do wait "$p" 2>/dev/null; done
  for d in "${clusters[@]}"; do
    [ -f "$d/data/postmaster.pid" ] && as_pg pg_ctl -D "$d/data" -m immediate -w -t 30 stop >/dev/null 2>&1
  done
  if [ "${KEEP_LOGS:-0}" = 1 ]; then echo "# logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
summary=()
ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $1"; shift; local l; for l in "$@"; do printf '%s\n' "$l" | sed 's/^/#   /'; done; }
# step NAME COMMAND...: runs a script that ends with "N passed, N failed".
step() {
  local name=$1; shift
  local t0=$SECONDS out="$work/$name.out" last p f
  echo
  echo "=== resp_pg: $name"
  "$@" 2>&1 | tee "$out"
  last=$(tail -3 "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -1)
  if [ -z "$last" ]; then
    not_ok "$name: ran to its closing line" "$(tail -5 "$out")"
    summary+=("$name: no result ($((SECONDS - t0)) s)")
    return
  fi
  p=${last%% passed*}; f=${last#*, }; f=${f%% failed*}
  passed=$((passed + p)); failed=$((failed + f))
  summary+=("$name: $last ($((SECONDS - t0)) s)")
}

# The install under test.
sysbin=$("$FPC_SYSTEM_PG_CONFIG" --bindir)
if [ -z "${PGBIN:-}" ] || [ "$PGBIN" = "$sysbin" ] || [ ! -f "$("$PGBIN/pg_config" --sharedir)/extension/fastpgcache.control" ]; then
  bash "$root/scripts/deps.sh" >/dev/null
  echo "# building the extension into a private install tree ($work/install)"
  mkdir -p "$work/install"
  PATH="$sysbin:$PATH" private_install "$root" "$work/install" || { echo "0 passed, 1 failed"; exit 1; }
fi
export PG_BINDIR=$PGBIN PATH="$PGBIN:$PATH"

# start_cluster NAME PGPORT [conf lines...]: cluster in $work/NAME; retries
# another port if the free one was taken meanwhile (a shared machine).
start_cluster() {
  local name=$1 port=$2; shift 2
  local dir="$work/$name"
  mkdir -p "$dir"
  clusters+=("$dir")
  cluster_start "$dir" "$port" "log_line_prefix = '%m [%p] %q%a '" "$@" >"$dir/start.out" 2>&1 && return 0
  cat "$dir/start.out"; return 1
}
psql_on() {  # psql_on NAME SQL...
  local dir="$work/$1"; shift
  psql -X -qAt -v ON_ERROR_STOP=1 -h "$dir/sock" -p "$(cat "$dir/port")" -U postgres -d postgres "$@"
}

# ---- redis-server, the reference --------------------------------------
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
  --logfile "$work/redis.log" --daemonize no &
bg+=($!)

# ---- cluster "main" ----------------------------------------------------
main_port=$(free_port); resp_port=$(free_port)
while [ "$resp_port" = "$main_port" ]; do resp_port=$(free_port); done
echo "$main_port" >"$work/main.port"
main_conf=("shared_preload_libraries = 'fastpgcache'" "fastpgcache.resp_port = $resp_port"
           "fastpgcache.resp_workers = 2" "fastpgcache.resp_unix_socket = '$work/resp.sock'"
           "fastpgcache.resp_default_user = 'app'" "fastpgcache.resp_client_output_buffer_limit = '64MB'" "wal_level = replica"
           "max_wal_senders = 4")
if ! start_cluster main "$main_port" "${main_conf[@]}"; then echo "0 passed, 1 failed"; exit 1; fi
echo "$main_port" >"$work/main/port"
# The roles of e2e.py (ROLES): passwords are SCRAM secrets, md5user's MD5.
psql_on main <<'SQL' >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
CREATE EXTENSION fastpgcache;
CREATE ROLE app LOGIN PASSWORD 'app-secret-1';
GRANT SELECT, INSERT, UPDATE, DELETE ON cache_entries TO app;
CREATE ROLE reader LOGIN PASSWORD 'reader-secret-2';
GRANT SELECT ON cache_entries TO reader;
CREATE ROLE noconn LOGIN PASSWORD 'noconn-secret-3';
GRANT SELECT, INSERT, UPDATE, DELETE ON cache_entries TO noconn;
CREATE ROLE su SUPERUSER LOGIN PASSWORD 'su-secret-4';
CREATE ROLE nologin NOLOGIN PASSWORD 'nologin-secret-5';
GRANT SELECT, INSERT, UPDATE, DELETE ON cache_entries TO nologin;
CREATE ROLE expired LOGIN PASSWORD 'expired-secret-6' VALID UNTIL '2001-01-01';
GRANT SELECT, INSERT, UPDATE, DELETE ON cache_entries TO expired;
SET password_encryption = 'md5';
CREATE ROLE md5user LOGIN PASSWORD 'md5-secret-7';
RESET password_encryption;
GRANT SELECT, INSERT, UPDATE, DELETE ON cache_entries TO md5user;
CREATE ROLE nopw LOGIN;
GRANT SELECT, INSERT, UPDATE, DELETE ON cache_entries TO nopw;
REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;
GRANT CONNECT ON DATABASE postgres TO app, reader, nologin, expired, md5user, nopw;
SQL

export RESP_PORT=$resp_port RESP_UNIX="$work/resp.sock" REDIS_PORT=$redis_port SERVER_LOG="$work/main/server.log"
export PGHOST="$work/main/sock" PGPORT=$main_port PGUSER=postgres PGDATABASE=postgres
for _ in $(seq 1 100); do
  [ "$(psql_on main -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'fastpgcache resp'")" = 2 ] &&
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && $PY -c "import sys; sys.path.insert(0, '$here'); import e2e; sys.exit(0 if e2e.resp_serving() else 1)" && break
  sleep 0.1
done
echo "# PostgreSQL on $main_port, its RESP port $resp_port (2 workers), redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on $redis_port"

cd "$here"
want commands && step commands "$PY" commands.py
want sql_resp && step sql_resp "$PY" sql_resp.py
want auth && step auth "$PY" auth.py
want diff && step diff "$PY" diff_resp.py --ops "${RESP_DIFF_OPS:-20000}" --seed "${RESP_DIFF_SEED:-20261127}"
want cli && step cli bash cli.sh
want robust && step robust "$PY" robust.py
# lifecycle ends with a crash-restart of "main": keep it after the others
want lifecycle && step lifecycle "$PY" lifecycle.py

# ---- cluster "standby" -------------------------------------------------
if want standby; then
  clusters+=("$work/standby")
  step standby bash standby.sh "$work" "${main_conf[@]}"
fi

# ---- cluster "startup" -------------------------------------------------
if want startup; then
  clusters+=("$work/startup")
  step startup bash startup.sh "$work"
fi

# Passwords never reach a log.
if want auth; then
  leaked=$(grep -l -E 'secret-[0-9]' "$work"/*/server.log 2>/dev/null)
  if [ -z "$leaked" ]; then ok "no password appears in any server log"; else not_ok "no password appears in any server log" "$leaked"; fi
fi

echo
echo "=== resp_pg summary"
for s in "${summary[@]}"; do echo "# $s"; done
grep -h '^not ok' "$work"/*.out 2>/dev/null | sed 's/^/# /' | head -60
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
