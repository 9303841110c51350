#!/usr/bin/env bash
# Router benchmark: get / set / mget-100 through fastpgcache_router (PL/Proxy)
# with 1, 2 and 4 partitions, beside the direct path (the same functions on a
# shard, no router), in one run; throughput, p99 latency, and the CPU time per
# operation of the router's processes, the shards' and pgbench's, read from
# /proc (utime + stime of every process of each cluster).
#
#   bash bench/router/run.sh            about 3 minutes (10 s per run)
#   bash bench/router/run.sh --smoke    a few seconds per run: checks that it works
#   --dur S      seconds per run          --clients N   pgbench clients (default 4)
#   --keys N     keys loaded (10000)      --out FILE    the markdown report
#   --rounds N   rounds (default 2): every configuration runs once per round,
#                interleaved; the report keeps each row's best round (ops/s)
#
# Clusters (all on 127.0.0.1, free ports, private sockets, started and stopped
# here): a router, and two shard clusters s1 and s2 with fastpgcache. 1
# partition: a database on s1; 2 partitions: one on s1, one on s2 (separate
# clusters); 4 partitions: two on each. The code is built into a private copy
# of the PostgreSQL tree (scripts/lib.sh private_install), never the system's.
# Everything runs under nice: the machine is shared. Speed never fails it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ "$(nice)" -ge 10 ] || exec nice -n 10 bash "$0" "$@"
dur=10; clients=4; keys=10000; out=""; mode=full; rounds=2
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) mode=smoke; dur=2; keys=1000; rounds=1 ;;
    --rounds) rounds=$2; shift ;;
    --dur) dur=$2; shift ;;
    --clients) clients=$2; shift ;;
    --keys) keys=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

bash "$root/scripts/deps.sh"
source "$root/scripts/lib.sh"
work=$(mktemp -d /tmp/fpc-router-bench.XXXXXX)
chmod 755 "$work"
cleanup() { for c in router s1 s2; do cluster_stop "$work/$c"; done; rm -rf "$work"; }
trap cleanup EXIT
echo "== private install"
private_install "$root" "$work"
RP=$(free_port); S1=$(free_port); S2=$(free_port)
conf=("shared_buffers = 128MB" "max_connections = 200")
cluster_start "$work/router" "$RP" "${conf[@]}"
cluster_start "$work/s1" "$S1" "${conf[@]}" "shared_preload_libraries = 'fastpgcache'" "fastpgcache.worker_enabled = off"
cluster_start "$work/s2" "$S2" "${conf[@]}" "shared_preload_libraries = 'fastpgcache'" "fastpgcache.worker_enabled = off"
q() { local port=$1 db=$2; shift 2; psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d "$db" "$@"; }
for d in b0 b1; do q "$S1" postgres -c "CREATE DATABASE $d"; q "$S1" "$d" -c "CREATE EXTENSION fastpgcache"; done
for d in b2 b3; do q "$S2" postgres -c "CREATE DATABASE $d"; q "$S2" "$d" -c "CREATE EXTENSION fastpgcache"; done
q "$S1" postgres -c "CREATE DATABASE direct"; q "$S1" direct -c "CREATE EXTENSION fastpgcache"
q "$RP" postgres -c "CREATE DATABASE router"
q "$RP" router -c "SET client_min_messages = warning" -c "CREATE EXTENSION fastpgcache_router CASCADE"
ci() { echo "host=127.0.0.1 port=$1 dbname=$2"; }
declare -A shards=(
  [1]="ARRAY['$(ci "$S1" b0)']"
  [2]="ARRAY['$(ci "$S1" b0)', '$(ci "$S2" b2)']"
  [4]="ARRAY['$(ci "$S1" b0)', '$(ci "$S1" b1)', '$(ci "$S2" b2)', '$(ci "$S2" b3)']"
)

# Workloads: the same SQL on both paths; keys 'key:N', 100-byte values.
cat > "$work/get.sql" <<SQL
\\set i random(1, $keys)
SELECT cache_get('key:' || :i);
SQL
cat > "$work/set.sql" <<SQL
\\set i random(1, $keys)
SELECT cache_set('key:' || :i, repeat('v', 100));
SQL
cat > "$work/mget100.sql" <<SQL
\\set i random(1, $keys)
SELECT count(value) FROM cache_mget(ARRAY(SELECT 'key:' || ((:i + g * 7919) % $keys + 1) FROM generate_series(1, 100) g));
SQL
load="SELECT cache_mset(array_agg('key:' || i), array_agg(repeat('v', 100))) FROM generate_series(1, $keys) i"

cpu_of() {  # cpu_of DIR...: CPU ticks (utime + stime) of every process of those clusters
  local total=0 dir pm p v
  for dir in "$@"; do
    pm=$(head -1 "$dir/data/postmaster.pid")
    for p in "$pm" $(ps -o pid= --ppid "$pm"); do
      v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null) || v=
      [ -n "$v" ] && total=$((total + v))
    done
  done
  echo "$total"
}
ticks=$(getconf CLK_TCK)
results="$work/results.tsv"
: > "$results"

run() {  # run LABEL WORKLOAD PORT DB ROUTER_DIRS SHARD_DIRS
  local label=$1 wl=$2 port=$3 db=$4 rdirs=$5 sdirs=$6
  local logp="$work/log.$label.$wl" warm=$(( dur / 5 + 1 )) c0r c0s c0p c1r c1s c1p t0 t1 pgb
  rm -f "$logp".*
  pgbench -n -M prepared -h 127.0.0.1 -p "$port" -U postgres -c "$clients" -j 2 -T "$((dur + warm + 2))" \
    -l --log-prefix="$logp" -f "$work/$wl.sql" "$db" > "$work/pgbench.out" 2>&1 &
  pgb=$!
  sleep "$warm"
  t0=$(date +%s.%N); c0r=$(cpu_of $rdirs); c0s=$(cpu_of $sdirs); c0p=$(awk '{print $14 + $15}' "/proc/$pgb/stat" 2>/dev/null || echo 0)
  sleep "$((dur - 1))"
  t1=$(date +%s.%N); c1r=$(cpu_of $rdirs); c1s=$(cpu_of $sdirs); c1p=$(awk '{print $14 + $15}' "/proc/$pgb/stat" 2>/dev/null || echo 0)
  wait "$pgb" || { cat "$work/pgbench.out"; echo "pgbench failed: $label $wl" >&2; return 1; }
  # Transactions that ended inside the measured window, and their p99.
  cat "$logp".* | awk -v a="$t0" -v b="$t1" '{ t = $5 + $6 / 1e6; if (t >= a && t < b) print $3 }' | sort -n > "$work/lat"
  local n; n=$(wc -l < "$work/lat")
  [ "$n" -gt 0 ] || { echo "no transactions in the window: $label $wl" >&2; return 1; }
  local p99; p99=$(awk -v n="$n" 'NR == int(n * 0.99 + 0.999) { print $1; exit }' "$work/lat")
  awk -v l="$label" -v w="$wl" -v n="$n" -v a="$t0" -v b="$t1" -v p99="$p99" -v hz="$ticks" \
      -v r="$((c1r - c0r))" -v s="$((c1s - c0s))" -v c="$((c1p - c0p))" \
    'BEGIN { secs = b - a; printf "%s\t%s\t%.0f\t%.2f\t%.1f\t%.1f\t%.1f\n", l, w, n / secs, p99 / 1000,
             r * 1e6 / hz / n, s * 1e6 / hz / n, c * 1e6 / hz / n }' >> "$results"
  tail -1 "$results"
}

echo "== load and run ($clients clients, $dur s per run, $keys keys, $rounds rounds)"
q "$S1" direct -c "$load" >/dev/null
for round in $(seq 1 "$rounds"); do
  echo "-- round $round"
  for wl in get set mget100; do run direct "$wl" "$S1" direct "" "$work/s1"; done
  for n in 1 2 4; do
    q "$RP" router -c "SELECT cache_router_set_shards(${shards[$n]})" >/dev/null
    q "$RP" router -c "SELECT cache_flush()" -c "$load" >/dev/null
    for wl in get set mget100; do run "router-$n" "$wl" "$RP" router "$work/router" "$work/s1 $work/s2"; done
  done
done
# Each row's best round.
sort -t$'\t' -k1,1 -k2,2 -k3,3nr "$results" | awk -F'\t' '!seen[$1 FS $2]++' |
  awk -F'\t' -v OFS='\t' '{ o = ($1 == "direct" ? 0 : substr($1, 8)); w = ($2 == "get" ? 1 : $2 == "set" ? 2 : 3); print o, w, $0 }' |
  sort -k1,1n -k2,2n | cut -f3- > "$results.best"
mv "$results.best" "$results"

report=${out:-$root/bench/results/router-$mode-$(date +%Y-%m-%d).md}
[ "$mode" = smoke ] && [ -z "$out" ] && report="$work/report.md"
mkdir -p "$(dirname "$report")"
{
  echo "# Router benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "$(nproc) cores, $clients pgbench clients (-M prepared), $dur s per run, best of $rounds rounds, $keys keys of 100 bytes;"
  echo "router and shards on this one machine. CPU: microseconds of CPU time per operation (mget-100: per call of 100 keys)."
  echo
  echo "| path | workload | ops/s | p99 ms | router CPU µs/op | shard CPU µs/op | pgbench CPU µs/op |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, ($1 == "direct" ? "-" : $5), $6, $7 }' "$results"
} > "$report"
echo; cat "$report"
echo "report: $report"
