#!/usr/bin/env bash
# Speed of the Redis-protocol front (issue 13, "Speed"), measured side by side
# in one run on this machine (not in CI; nothing here is asserted):
#   - redis-benchmark -t get,set,incr,mset -r 100000 -d 100 -c 50 at pipeline
#     1 and 16, against redis-server and against the RESP port with
#     fastpgcache.resp_workers = 1 and = 2;
#   - cache_get / cache_set through pgbench -M prepared, 50 clients (the SQL
#     path), same keys and 100-byte values;
#   - ops/s, p50/p99 (redis-benchmark's own percentiles; pgbench's per
#     transaction log), medians over --rounds rounds run in turn (redis, RESP
#     w=1, SQL, RESP w=2, ...), ratios RESP/redis-server and RESP/SQL;
#   - --profile: perf record (cpu-clock, call graphs) of one RESP worker under
#     a GET load and a SET load, summarised by profile.py into where the time
#     goes (transaction start/commit, index probe, snapshot, locking,
#     parsing, syscalls...).
#
# Usage: bash bench/resp/run.sh [--rounds N] [--seconds S] [--profile] [--profile-only] [--out FILE]
#   --rounds 3 --seconds 5 by default (about 10 minutes on 2 cores).
# Builds the extension into a private install tree (scripts/lib.sh), never the
# system's; starts its own cluster and redis-server on free ports; the report
# goes to stdout and to bench/resp/results/<date>.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$root/scripts/lib.sh"
rounds=3 seconds=5 profile=0 bench=1 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    --profile) profile=1 ;;
    --profile-only) profile=1; bench=0 ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
command -v perf >/dev/null || [ "$profile" = 0 ] || {
  echo "==> installing linux-perf for --profile"; apt-get install -y -q --no-install-recommends linux-perf >/dev/null; }

work=$(mktemp -d /tmp/fpc-bench-resp.XXXXXX)
chmod 755 "$work"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$work"
redis_pid=
cleanup() {
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null
  cluster_stop "$work/pg"
  [ "${KEEP:-0}" = 1 ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

sysbin=$("$FPC_SYSTEM_PG_CONFIG" --bindir)
if [ -z "${PGBIN:-}" ] || [ "$PGBIN" = "$sysbin" ]; then
  bash "$root/scripts/deps.sh" >/dev/null
  echo "==> building the extension into a private install tree"
  mkdir -p "$work/install"
  private_install "$root" "$work/install"
fi
export PATH="$PGBIN:$PATH"

pg_port=$(free_port); resp_port=$(free_port); redis_port=$(free_port)
mkdir -p "$work/pg"
start_pg() {  # start_pg WORKERS
  cluster_start "$work/pg" "$pg_port" "shared_preload_libraries = 'fastpgcache'" "fastpgcache.resp_port = $resp_port" \
    "fastpgcache.resp_workers = $1" "shared_buffers = '512MB'" "max_connections = 120" >/dev/null
  for _ in $(seq 1 100); do
    [ "$(redis-cli -p "$resp_port" PING 2>/dev/null)" = PONG ] &&
      [ "$(psql -X -qAt -h "$work/pg/sock" -p "$pg_port" -U postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'fastpgcache resp'")" = "$1" ] && return 0
    sleep 0.1
  done
  echo "the RESP workers did not start" >&2; return 1
}
psql_pg() { psql -X -qAt -v ON_ERROR_STOP=1 -h "$work/pg/sock" -p "$pg_port" -U postgres "$@"; }

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
  --logfile "$work/redis.log" --daemonize no &
redis_pid=$!
start_pg 1
psql_pg <<'SQL' >/dev/null
CREATE EXTENSION IF NOT EXISTS fastpgcache;
DO $$ BEGIN CREATE ROLE bench LOGIN PASSWORD 'bench-pw'; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
GRANT SELECT, INSERT, UPDATE, DELETE ON cache_entries TO bench;
SQL
auth=(--user bench -a bench-pw)

# The key space of redis-benchmark -r 100000 ("key:" and 12 digits), filled
# with 100-byte values on both servers before each round, so GETs hit.
/usr/bin/python3 - "$work/fill.resp" <<'PY'
import sys
with open(sys.argv[1], 'wb') as f:
    v = b'x' * 100
    for i in range(100000):
        k = b'key:%012d' % i
        f.write(b'*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$100\r\n%s\r\n' % (len(k), k, v))
PY
fill() {  # fill PORT [auth...]
  local p=$1; shift
  redis-cli -p "$p" "$@" --no-auth-warning --pipe <"$work/fill.resp" >/dev/null
}
cat >"$work/get.sql" <<'EOF'
\set k random(0, 99999)
SELECT cache_get('key:' || lpad(:k::text, 12, '0'));
EOF
cat >"$work/set.sql" <<'EOF'
\set k random(0, 99999)
SELECT cache_set('key:' || lpad(:k::text, 12, '0'), 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx');
EOF

results="$work/results.csv"
echo "round,target,pipeline,test,rps,p50_ms,p99_ms" >"$results"
# rb TARGET PORT PIPELINE [auth...]: the four tests; -n sized for about
# $seconds s each (from a short first run's rate).
rb() {
  local target=$1 port=$2 pipe=$3; shift 3
  local t n rate line
  for t in get set incr mset; do
    rate=$(redis-benchmark -p "$port" "$@" -t "$t" -r 100000 -d 100 -c 50 -P "$pipe" -n 20000 --csv 2>/dev/null |
           tail -1 | cut -d, -f2 | tr -d '"' | cut -d. -f1)
    n=$(( ${rate:-10000} * seconds ))
    [ "$n" -lt 20000 ] && n=20000
    line=$(redis-benchmark -p "$port" "$@" -t "$t" -r 100000 -d 100 -c 50 -P "$pipe" -n "$n" --csv 2>/dev/null | tail -1)
    # "SET","rps","avg","min","p50","p95","p99","max"
    echo "$round,$target,$pipe,$t,$(echo "$line" | tr -d '"' | cut -d, -f2,5,7)" >>"$results"
    echo "  $target P$pipe $t: $(echo "$line" | tr -d '"' | cut -d, -f2) ops/s"
  done
}
sqlbench() {  # sqlbench get|set
  local t=$1 tps
  rm -f "$work"/pgbench_log.*
  tps=$(cd "$work" && pgbench -n -M prepared -c 50 -j 2 -T "$seconds" -f "$work/$t.sql" -l -h "$work/pg/sock" \
        -p "$pg_port" -U postgres postgres 2>/dev/null | sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p')
  /usr/bin/python3 - "$round" "$t" "$tps" "$work" >>"$results" <<'PY'
import glob, sys
rnd, test, tps, work = sys.argv[1:5]
lat = []
for f in glob.glob(work + '/pgbench_log.*'):
    for line in open(f):
        lat.append(int(line.split()[2]) / 1000.0)   # microseconds -> ms
lat.sort()
pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else 0
print('%s,sql,1,%s,%s,%.3f,%.3f' % (rnd, test, tps, pct(0.50), pct(0.99)))
PY
  echo "  SQL (pgbench -M prepared) cache_$t: $tps tps"
}

if [ "$bench" = 1 ]; then
  for round in $(seq 1 "$rounds"); do
    echo "==> round $round of $rounds"
    fill "$redis_port"
    rb redis-server "$redis_port" 1
    rb redis-server "$redis_port" 16
    start_pg 1
    fill "$resp_port" "${auth[@]}"
    rb resp-w1 "$resp_port" 1 "${auth[@]}"
    rb resp-w1 "$resp_port" 16 "${auth[@]}"
    fill "$resp_port" "${auth[@]}"
    sqlbench get
    sqlbench set
    start_pg 2
    fill "$resp_port" "${auth[@]}"
    rb resp-w2 "$resp_port" 1 "${auth[@]}"
    rb resp-w2 "$resp_port" 16 "${auth[@]}"
  done
  [ -n "$out" ] || { mkdir -p "$here/results"; out="$here/results/$(date +%F).md"; }
  {
    echo "# Redis-protocol front: redis-benchmark and pgbench, $(date +%F)"
    echo
    echo "$(nproc) cores, load average at the end $(cut -d' ' -f1-3 /proc/loadavg); redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'), PostgreSQL $(postgres --version | awk '{print $3}'); $rounds rounds of $seconds s per test, medians."
    echo
    /usr/bin/python3 "$here/report.py" "$results"
  } | tee "$out"
  cp "$results" "${out%.md}.csv"
fi

if [ "$profile" = 1 ]; then
  echo "==> profile: perf record of one RESP worker (resp_workers = 1) under GET, then SET load, pipeline 1 and 16"
  start_pg 1
  fill "$resp_port" "${auth[@]}"
  pid=$(psql_pg -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'fastpgcache resp'")
  for pipe in ${PROFILE_PIPELINES:-1 16}; do
  for t in ${PROFILE_TESTS:-get set}; do
    redis-benchmark -p "$resp_port" "${auth[@]}" -t "$t" -r 100000 -d 100 -c 50 -P "$pipe" -n 100000000 -q >/dev/null 2>&1 &
    load=$!
    sleep 2
    perf record -e cpu-clock -F 2000 -g -p "$pid" -o "$work/perf-$t-$pipe.data" -- sleep "$((seconds * 2))" >/dev/null 2>&1
    kill "$load" 2>/dev/null; wait "$load" 2>/dev/null || true
    perf report -i "$work/perf-$t-$pipe.data" --no-children --sort symbol,dso --stdio -g none --percent-limit 0.01 \
      2>/dev/null >"$work/perf-$t-$pipe.txt"
    perf report -i "$work/perf-$t-$pipe.data" --children --sort symbol --stdio -g none --percent-limit 0.5 \
      2>/dev/null >"$work/perf-$t-$pipe-children.txt"
    echo
    echo "## RESP worker profile under redis-benchmark -t $t -c 50 -P $pipe (perf, cpu-clock, $((seconds * 2)) s)"
    /usr/bin/python3 "$here/profile.py" "$work/perf-$t-$pipe.txt" "$work/perf-$t-$pipe-children.txt"
  done
  done | tee -a "${out:-/dev/null}"
fi
