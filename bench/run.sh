#!/usr/bin/env bash
# FastPgCache benchmark: the extension against SELECT 1, the PL/pgSQL
# fallback, plain prepared SQL and Redis, on one machine, in one run.
#
#   bash bench/run.sh            full run (about 20 minutes on 2 cores)
#   bash bench/run.sh --quick    a few minutes, 8 clients only
#   bash bench/run.sh --smoke    CI: a few seconds per phase; checks that the
#                                benchmark works, asserts nothing about speed
#   bash bench/run.sh --profile  also count instructions per call with
#                                valgrind/callgrind (installs valgrind)
#   --no-build                   use the installed extension as it is
#   --preload                    shared_preload_libraries = 'fastpgcache'
#   --phases LIST                only these of main,scaling,churn,batch,profile
#   --rounds N, --dur S          runs per workload, seconds per run
#   --out FILE                   where to write the markdown report
#
# It installs what it needs (scripts/deps.sh), builds and installs the
# extension, starts a throwaway PostgreSQL and redis-server on 127.0.0.1 on
# free ports, runs bench/bench.py and stops both on exit. The report goes to
# bench/results/<date>.md (smoke and quick runs: bench/results/<mode>-<date>.md,
# not committed) and to stdout. Exit status is non-zero if any phase fails
# (pgbench or SQL errors); speed never fails it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

mode=full
build=1
profile=0
preload=0
phases=""
extra=()
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) mode=smoke ;;
    --quick) mode=quick ;;
    --full) mode=full ;;
    --profile) profile=1 ;;
    --no-build) build=0 ;;
    --preload) preload=1 ;;
    --out) out=$2; shift ;;
    --phases) phases=$2; shift ;;
    --rounds|--dur) extra+=("$1" "$2"); shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

bash "$root/scripts/deps.sh"
if [ "$profile" = 1 ] && ! command -v valgrind >/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends valgrind
fi
# shellcheck source=../scripts/lib.sh
. "$root/scripts/lib.sh"
export PATH="/usr/sbin:$PATH"  # redis-server

work=$(mktemp -d /tmp/fastpgcache-bench.XXXXXX)
chmod 755 "$work"
redis_pid=""
cleanup() {
  local rc=$?
  set +e
  cluster_stop "$work/pg"
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$build" = 1 ]; then
  # Build from a private copy of the working tree, and install into a
  # private copy of the PostgreSQL tree: on a shared machine other people
  # build and install in the same places, and the benchmark must measure the
  # code it built, whatever they install.
  echo "==> building the extension into a private install tree"
  private_install "$root" "$work"
fi
pg_port=$(free_port)
echo "==> starting PostgreSQL on 127.0.0.1:$pg_port"
conf=("shared_buffers = 512MB" "max_connections = 100")
[ "$preload" = 1 ] && conf+=("shared_preload_libraries = 'fastpgcache'")
cluster_start "$work/pg" "$pg_port" "${conf[@]}"
pm_pid=$(head -1 "$work/pg/data/postmaster.pid")

redis_port=$(free_port)
while [ "$redis_port" = "$pg_port" ]; do redis_port=$(free_port); done
echo "==> starting redis-server on 127.0.0.1:$redis_port"
mkdir -p "$work/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$work/redis" --daemonize no --loglevel warning >"$work/redis/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 1 50); do
  redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null

if [ -z "$out" ]; then
  mkdir -p "$here/results"
  if [ "$mode" = full ]; then out="$here/results/$(date +%F).md"
  else out="$here/results/$mode-$(date +%F).md"; fi
fi

args=(--mode "$mode" --work "$work" --root "$root"
      --pg-port "$pg_port" --postmaster-pid "$pm_pid"
      --redis-port "$redis_port" --redis-pid "$redis_pid" --out "$out")
[ "$profile" = 1 ] && args+=(--profile)
[ "$preload" = 1 ] && args+=(--preload)
[ -n "$phases" ] && args+=(--phases "$phases")
args+=("${extra[@]}")
python3 "$here/bench.py" "${args[@]}"
