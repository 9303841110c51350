#!/usr/bin/env bash
# Sanity numbers for the later PostgreSQL-backed worker (not run in CI, no
# assertion): parser throughput, and redis-benchmark against redis-server and
# against the standalone harness (in-memory TEST DOUBLE executor) in the same
# run, at pipeline 1 and 16, reported as ratios to redis-server.
# Usage: bash test/resp/bench.sh [REQUESTS]   (default 200000 per test)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$root/scripts/lib.sh"
n=${1:-200000}
work=$(mktemp -d /tmp/fpc-resp-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
bash "$here/build.sh" "$work/bin" >/dev/null
echo "== parser ($(nproc) cores)"
"$work/bin/bench_parser" 16
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
  --logfile "$work/redis.log" --daemonize no &
pids+=($!)
"$work/bin/resp_harness" --port 0 --port-file "$work/h.port" --max-seconds 3600 >"$work/h.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/h.port" ] && break; sleep 0.05; done
sleep 0.5
harness_port=$(cat "$work/h.port")
declare -A rps
for p in 1 16; do
  for target in redis harness; do
    port=$redis_port; [ "$target" = harness ] && port=$harness_port
    redis-cli -p "$port" FLUSHALL >/dev/null
    while IFS=, read -r test value _; do
      test=${test//\"/}; value=${value//\"/}
      [ "$test" = test ] && continue
      rps["$target,$p,$test"]=$value
    done < <(redis-benchmark -p "$port" -t get,set,incr,mset -r 100000 -d 100 -c 50 -n "$n" -P "$p" --csv 2>/dev/null)
  done
done
printf '%-16s %-9s %14s %14s %8s\n' test pipeline redis-server harness ratio
for p in 1 16; do
  for t in SET GET INCR "MSET (10 keys)"; do
    r=${rps["redis,$p,$t"]:-0}; h=${rps["harness,$p,$t"]:-0}
    ratio=$(awk -v a="$h" -v b="$r" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
    printf '%-16s %-9s %14s %14s %8s\n' "$t" "$p" "$r" "$h" "$ratio"
  done
done
