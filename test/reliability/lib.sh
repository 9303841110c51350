# Shared helpers of the reliability suite (test/reliability). Source it.
#
# - Makes sure the extension under test is the one built from this checkout:
#   run from scripts/test.sh, PGBIN already points at a private install tree
#   (private_install) and is used as is; run alone, the tree is built here
#   with private_install into the suite's temporary directory, never into the
#   system's PostgreSQL (other people test on this machine).
# - Starts throwaway clusters (scripts/lib.sh: cluster_start) in REL_TMP and
#   stops every one of them, and every background process registered with
#   rel_bg, on exit, also on failure or interruption.
# - ok/not_ok/check counters; rel_finish prints "N passed, M failed" last.
# - Crash detection: crash_mark / crash_since (server log lines, postmaster
#   start time, a canary entry in the cache of a database nobody else uses).
#
# Environment: KEEP_LOGS=1 keeps REL_TMP (cluster logs, generated files);
# FPC_RELIABILITY_LONG=1 selects the long versions (each script documents its
# own knobs); REL_TMP may name an existing directory to work in.

REL_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REL_ROOT=$(cd "$REL_HERE/../.." && pwd)
# shellcheck source=../../scripts/lib.sh
. "$REL_ROOT/scripts/lib.sh"

REL_PASSED=0
REL_FAILED=0
REL_CLUSTERS=()
REL_BG=()
REL_STARTED=$(date +%s)
REL_NAME=${REL_NAME:-$(basename "$0" .sh)}
REL_LONG=${FPC_RELIABILITY_LONG:-0}
[ "$REL_LONG" = 1 ] || REL_LONG=0
PYTHON=/usr/bin/python3   # Debian's python3, which python3-psycopg2 is for

if [ -z "${REL_TMP:-}" ]; then
  REL_TMP=$(mktemp -d "${TMPDIR:-/tmp}/fpc-rel-$REL_NAME.XXXXXX")
  REL_OWN_TMP=1
else
  mkdir -p "$REL_TMP"
  REL_OWN_TMP=0
fi
chmod 755 "$REL_TMP"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$REL_TMP"

rel_cleanup() {
  local rc=$?
  local pid d
  for pid in "${REL_BG[@]}"; do
    kill "$pid" 2>/dev/null
  done
  for pid in "${REL_BG[@]}"; do
    wait "$pid" 2>/dev/null
  done
  for d in "${REL_CLUSTERS[@]}"; do
    if [ -f "$d/data/postmaster.pid" ]; then
      as_pg pg_ctl -D "$d/data" -m immediate -w -t 30 stop >/dev/null 2>&1
    fi
  done
  if [ "$REL_OWN_TMP" = 1 ]; then
    if [ "${KEEP_LOGS:-0}" = 1 ]; then
      echo "# logs kept in $REL_TMP"
    else
      rm -rf "$REL_TMP"
    fi
  fi
  return $rc
}
trap rel_cleanup EXIT
trap 'exit 130' INT TERM

# rel_bg PID: a background process to end on exit.
rel_bg() { REL_BG+=("$1"); }

ok() { REL_PASSED=$((REL_PASSED + 1)); echo "ok - $1"; }
not_ok() {
  REL_FAILED=$((REL_FAILED + 1))
  echo "not ok - $1"
  shift
  local line
  for line in "$@"; do printf '%s\n' "$line" | sed 's/^/#   /'; done
  return 0
}
# check DESC EXPECTED ACTUAL [reproducer lines...]
check() {
  local desc=$1 want=$2 got=$3; shift 3
  if [ "$want" = "$got" ]; then ok "$desc"; else not_ok "$desc" "expected [$want], got [$got]" "$@"; fi
}
note() { echo "# $*"; }

rel_finish() {
  note "$REL_NAME: runtime $(( $(date +%s) - REL_STARTED )) s"
  echo "$REL_PASSED passed, $REL_FAILED failed"
  [ "$REL_FAILED" -eq 0 ]
}

# The install under test.
rel_ensure_install() {
  local sysbin
  sysbin=$(/usr/bin/pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
  if [ -n "${PGBIN:-}" ] && [ "$PGBIN" != "$sysbin" ] && [ -x "$PGBIN/pg_config" ] &&
     [ -f "$("$PGBIN/pg_config" --sharedir)/extension/fastpgcache.control" ]; then
    export PG_BINDIR=$PGBIN PATH="$PGBIN:$PATH"
    return 0
  fi
  bash "$REL_ROOT/scripts/deps.sh" || return 1
  echo "# building the extension into a private install tree ($REL_TMP/install)"
  mkdir -p "$REL_TMP/install"
  PATH="$sysbin:$PATH" private_install "$REL_ROOT" "$REL_TMP/install" || return 1
}

# rel_cluster NAME [postgresql.conf lines...]: starts cluster REL_TMP/NAME on
# a free port (kept in REL_TMP/NAME/port). Returns non-zero if it failed.
rel_cluster() {
  local name=$1; shift
  local dir="$REL_TMP/$name" port attempt
  mkdir -p "$dir"
  REL_CLUSTERS+=("$dir")
  # Other people's tests share this machine: a free port can be taken between
  # free_port and the bind. Then try another.
  for attempt in 1 2 3 4 5; do
    port=$(free_port) || return 1
    echo "$port" >"$dir/port"
    cluster_start "$dir" "$port" "log_line_prefix = '%m [%p] %q%a '" "$@" >"$dir/start.out" 2>&1 && return 0
    grep -q 'Address already in use' "$dir/start.out" || { cat "$dir/start.out"; return 1; }
    echo "# port $port was taken meanwhile (attempt $attempt); trying another"
  done
  cat "$dir/start.out"
  return 1
}
port_of() { cat "$REL_TMP/$1/port"; }
sock_of() { echo "$REL_TMP/$1/sock"; }
log_of() { echo "$REL_TMP/$1/server.log"; }

# q NAME SQL [DB] [USER]: runs SQL with psql on cluster NAME; values unaligned.
q() {
  psql -X -qAt -h "$(sock_of "$1")" -p "$(port_of "$1")" -U "${4:-postgres}" -d "${3:-postgres}" \
    -v ON_ERROR_STOP=1 -c "$2"
}
# qf NAME DB [USER] < FILE: runs a script.
qf() {
  psql -X -qAt -h "$(sock_of "$1")" -p "$(port_of "$1")" -U "${3:-postgres}" -d "$2" -v ON_ERROR_STOP=1
}
# conninfo NAME [DB] [USER]
conninfo() {
  echo "host=$(sock_of "$1") port=$(port_of "$1") dbname=${2:-postgres} user=${3:-postgres}"
}

# wait_until SECONDS CMD...: polls CMD (which prints t when done) every 0.1 s.
wait_until() {
  local deadline=$(( $(date +%s%N) + $1 * 1000000000 )); shift
  while [ "$(date +%s%N)" -lt "$deadline" ]; do
    [ "$("$@" 2>/dev/null)" = "t" ] && return 0
    sleep 0.1
  done
  return 1
}
# server_up NAME: t when the cluster answers a query.
server_up() { q "$1" "SELECT true" 2>/dev/null; }

############################################################################
# Crash detection.
#
# A crash of any backend makes the postmaster end every process and empty
# every UNLOGGED table. It is seen by any of:
#  - server log lines: "terminated by signal", "server process (PID ...) was
#    terminated", "all server processes terminated; reinitializing",
#    "was terminated by exception", "PANIC:";
#  - pg_postmaster_start_time() changing (a restart);
#  - the canary: database fpc_canary holds the extension and one cache entry
#    that nothing else touches; a crash-restart empties it.
############################################################################
CRASH_PATTERN='terminated by signal|terminated by exception|server process \(PID [0-9]+\) was terminated|all server processes terminated; reinitializing|PANIC:'

canary_setup() {  # canary_setup NAME
  q "$1" "CREATE DATABASE fpc_canary" >/dev/null 2>&1
  q "$1" "CREATE EXTENSION IF NOT EXISTS fastpgcache" fpc_canary >/dev/null &&
    q "$1" "SELECT cache_set('canary', 'alive')" fpc_canary >/dev/null
}
canary_alive() { q "$1" "SELECT coalesce(cache_get('canary'), 'GONE')" fpc_canary 2>/dev/null; }

# crash_mark NAME: remembers the log position, start time and canary state.
crash_mark() {
  local d="$REL_TMP/$1"
  wc -l <"$d/server.log" >"$d/mark.lines"
  q "$1" "SELECT pg_postmaster_start_time()" >"$d/mark.start" 2>/dev/null
  canary_setup "$1" >/dev/null 2>&1
}
# crash_since NAME: prints nothing if no crash happened since crash_mark,
# else what was seen (log lines with the failing query, start time, canary).
# Waits up to 30 s for a crashed server to come back first.
crash_since() {
  local d="$REL_TMP/$1" from lines start can
  wait_until 30 server_up "$1" || echo "server does not answer"
  from=$(( $(cat "$d/mark.lines" 2>/dev/null || echo 0) + 1 ))
  lines=$(tail -n +"$from" "$d/server.log" | grep -E -A2 "$CRASH_PATTERN" | head -20)
  [ -n "$lines" ] && printf 'server log:\n%s\n' "$lines"
  start=$(q "$1" "SELECT pg_postmaster_start_time()" 2>/dev/null)
  [ "$start" != "$(cat "$d/mark.start" 2>/dev/null)" ] &&
    echo "pg_postmaster_start_time changed: $(cat "$d/mark.start" 2>/dev/null) -> $start"
  can=$(canary_alive "$1")
  [ "$can" != "alive" ] && echo "canary cache entry in database fpc_canary: $can (a crash-restart empties UNLOGGED tables)"
  return 0
}
# no_crash NAME DESC [reproducer lines]: one check that nothing crashed since
# crash_mark; re-marks afterwards so that the next check starts clean.
no_crash() {
  local name=$1 desc=$2; shift 2
  local seen
  seen=$(crash_since "$name")
  if [ -z "$seen" ]; then ok "no crash: $desc"; else not_ok "no crash: $desc" "$seen" "$@"; fi
  crash_mark "$name"
}

# py_checks CMD...: runs a checker that prints "ok - ..."/"not ok - ..." lines
# (and "# ..." notes); adds its counts to this script's. A checker that dies
# without printing its closing "N passed, M failed" line counts as a failure.
py_checks() {
  local out="$REL_TMP/py_checks.$$.$RANDOM" rc p f
  "$@" >"$out" 2>&1
  rc=$?
  cat "$out"
  p=$(grep -c '^ok - ' "$out")
  f=$(grep -c '^not ok - ' "$out")
  REL_PASSED=$((REL_PASSED + p))
  REL_FAILED=$((REL_FAILED + f))
  if ! tail -1 "$out" | grep -qE '^[0-9]+ passed, [0-9]+ failed$'; then
    not_ok "$(basename "$2" 2>/dev/null) ran to the end (exit status $rc)" "$(tail -5 "$out")"
  elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    not_ok "$(basename "$2" 2>/dev/null) exit status $rc with no failed check"
  fi
  rm -f "$out"
}
