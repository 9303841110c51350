#!/usr/bin/env bash
# The measurements of issue 11 (bounded size and eviction), side by side in
# one run, against the extension built from this checkout:
#   limit     the limit holds under 8 writers: max_entries = 100000 and
#             max_size = 64MB, sampled every second, beside no limit
#   hitratio  seeded traces at 1% and 10% of the key space: FastPgCache
#             beside exact LRU / FIFO (simulator) and redis-server allkeys-lru
#   cost      cache_get / cache_set throughput, eviction on and the cache
#             full against no limit, alternating rounds
#
#   bash bench/eviction/measure.sh            full run: about 26 minutes on 2
#                                             busy cores (limit runs of 60 s;
#                                             hit ratios at 1% and 10%, also
#                                             without preloading; 5 cost rounds)
#   bash bench/eviction/measure.sh --quick    about 10 minutes: limit runs of
#                                             20 s, hit ratios at 1% only,
#                                             3 cost rounds of 10 s
#   --phases LIST     only these of limit,hitratio,cost
#   --requests N      requests per trace (default 1000000; 10000000 takes
#                     about ten times as long in the hitratio phase)
#   --caps LIST       capacities in % of the key space (default 1,10; quick 1)
#   --traces LIST     of zipf0.8,zipf1.0,zipf1.2,scan (default all four)
#   --degraded yes|no also replay without shared_preload_libraries
#                     (default: yes in the full run, no in the quick one)
#   --dur S           seconds of writing per limit run
#   --rounds N, --round-dur S   cost rounds and seconds per run
#   --out FILE        the report (default: bench/results/eviction-<date>.md;
#                     quick runs: bench/eviction/results/quick-eviction-<date>.md,
#                     not committed)
#   --keep            keep the work directory (cluster logs, raw CSV, JSON)
#
# Installs what it needs (scripts/deps.sh), builds the programs here with
# -Wall -Wextra -Werror into bench/eviction/build/, builds the extension into a
# private copy of the PostgreSQL tree (scripts/lib.sh private_install), starts
# throwaway clusters (as postgres when run as root) and a redis-server on free
# ports, and stops them on exit. Runs niced (nice 10). Exit status is non-zero
# if a step fails; speed and hit ratios never fail it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

# Other people's jobs share this machine: run below them.
if [ "$(nice)" -lt 10 ]; then
  exec nice -n $((10 - $(nice))) bash "$0" "$@"
fi

mode=full
requests=1000000
keep=0
out=""
pyargs=()
cmdline="bash bench/eviction/measure.sh"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) mode=quick; cmdline="$cmdline --quick" ;;
    --full) mode=full ;;
    --keep) keep=1 ;;
    --out) out=$2; shift ;;
    --requests) requests=$2; cmdline="$cmdline $1 $2"; shift ;;
    --phases|--caps|--degraded|--dur|--rounds|--round-dur)
      pyargs+=("$1" "$2"); cmdline="$cmdline $1 $2"; shift ;;
    --traces) pyargs+=(--trace-names "$2"); cmdline="$cmdline $1 $2"; shift ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
case "$requests" in ''|*[!0-9]*) echo "--requests needs a number" >&2; exit 2 ;; esac

bash "$root/scripts/deps.sh"
# shellcheck source=../../scripts/lib.sh
source "$root/scripts/lib.sh"
export PATH="/usr/sbin:$PATH"  # redis-server

build=$here/build
mkdir -p "$build" "$here/results"
echo "==> building the programs (g++ -O2 -Wall -Wextra -Werror)"
for p in traces sim replay_redis; do
  g++ -std=c++17 -O2 -Wall -Wextra -Werror -o "$build/$p" "$here/$p.cpp"
done
pginc=$("$FPC_SYSTEM_PG_CONFIG" --includedir)
for p in replay_pg sampler; do
  g++ -std=c++17 -O2 -Wall -Wextra -Werror -I"$pginc" -o "$build/$p" "$here/$p.cpp" -lpq
done

keys=1000000
tdir=$build/traces-$keys-$requests
if [ ! -f "$tdir/scan.meta" ]; then
  echo "==> generating traces ($keys keys, $requests requests, seed 42) in $tdir"
  mkdir -p "$tdir"
  "$build/traces" "$tdir" --keys $keys --requests "$requests" --seed 42
fi

work=$(mktemp -d /tmp/fpc-evict-measure.XXXXXX)
chmod 755 "$work"
cleanup() {
  local rc=$? d
  for d in "$work"/*/data; do
    [ -f "$d/postmaster.pid" ] && as_pg pg_ctl -D "$d" -m immediate -w stop >/dev/null 2>&1
  done
  if [ "$keep" = 1 ]; then echo "==> work directory kept: $work"; else rm -rf "$work"; fi
  return $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "==> building the extension into a private install tree"
private_install "$root" "$work/install"

date=$(date +%Y-%m-%d)
if [ -z "$out" ]; then
  if [ $mode = quick ]; then out=$here/results/quick-eviction-$date.md; else out=$root/bench/results/eviction-$date.md; fi
fi
python3 "$here/measure.py" --root "$root" --work "$work" --tools "$build" --traces "$tdir" --mode $mode \
  --out "$out" --command "$cmdline" "${pyargs[@]}"
echo "==> report: $out"
