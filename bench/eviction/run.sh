#!/usr/bin/env bash
# Eviction study: simulator + real redis-server replay over the same seeded
# traces; writes bench/eviction/results/<date>.md (quick: quick-<date>.md).
#
#   bash bench/eviction/run.sh            full: 10^6 keys, 10^7 requests per
#                                         trace, parameter sweeps, Redis with
#                                         maxmemory-samples 5 and 10
#   bash bench/eviction/run.sh --quick    10^6 keys, 10^6 requests, main
#                                         policies only, Redis samples 5
#   --out FILE                            where to write the report
#
# Installs what it needs on Debian 12 (g++, redis-server, python3), builds
# with -Wall -Wextra -Werror, runs everything niced and one job at a time,
# starts its own redis-server on a free 127.0.0.1 port and stops it on exit.
# Exit status is non-zero if a step fails or the replay's hit counting check
# fails; hit ratios never fail it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mode=full
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) mode=quick ;;
    --full) mode=full ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

start=$SECONDS
need=()
command -v g++ >/dev/null || need+=(g++)
command -v redis-server >/dev/null || need+=(redis-server)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> installing: ${need[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
fi

build=$here/build
mkdir -p "$build" "$here/results"
echo "==> building (g++ -O2 -Wall -Wextra -Werror)"
for p in traces sim replay_redis; do
  g++ -std=c++17 -O2 -Wall -Wextra -Werror -o "$build/$p" "$here/$p.cpp"
done

if [ $mode = quick ]; then requests=1000000; else requests=10000000; fi
keys=1000000
tdir=$build/traces-$keys-$requests
if [ ! -f "$tdir/scan.meta" ]; then
  echo "==> generating traces ($keys keys, $requests requests, seed 42) in $tdir"
  mkdir -p "$tdir"
  nice -n 10 "$build/traces" "$tdir" --keys $keys --requests $requests --seed 42
fi
traces="zipf0.8 zipf1.0 zipf1.2 scan"
caps="$((keys / 100)) $((keys / 10))"

# Policies. rec = the recommended design (DESIGN.md): probation ring of 10%,
# 2-bit counters with 6-bit tags in one byte per slot, 8 slots per entry.
rec="fpc/small=0.1/bits=2/tag=6/f=8"
simple="fpc/bits=1/f=8"
specs="lru fifo clock sieve s3fifo redis:5 redis:10 random"
for p in end hand lowest random pgfsm; do specs="$specs $rec/place=$p $simple/place=$p fpc/nobits/place=$p"; done
if [ $mode = full ]; then
  # Sweeps around the recommendation, pgfsm placement.
  for v in f=1 f=2 f=4 f=16 f=0 tag=0 bits=1 write=clear write=set lw=0.01 small=0.05 small=0.2; do
    specs="$specs $rec/place=pgfsm/$v"
  done
  specs="$specs fpc/small=0.1/bits=2/tag=14/f=2/place=pgfsm fpc/small=0.1/bits=1/tag=7/f=8/place=pgfsm"
  for v in f=1 f=2 f=0 bits=2 write=set tag=6; do specs="$specs $simple/place=pgfsm/$v"; done
fi

csv=$build/sim-$mode.csv
: > "$csv"
echo "==> simulator ($(echo $specs | wc -w) policies x 4 traces x 2 capacities)"
for t in $traces; do
  for c in $caps; do
    s0=$SECONDS
    # shellcheck disable=SC2086
    nice -n 10 "$build/sim" "$tdir/$t" --cap "$c" $specs >> "$csv"
    echo "    $t cap $c: $((SECONDS - s0)) s"
  done
done
sim_secs=$((SECONDS - start))

echo "==> redis-server replay"
# shellcheck source=../../scripts/lib.sh
source "$here/../../scripts/lib.sh"   # free_port
rdir=$(mktemp -d /tmp/fpc-evict-redis.XXXXXX)
port=$(free_port)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$rdir" \
  --logfile "$rdir/redis.log" --daemonize no &
rpid=$!
cleanup() { kill "$rpid" 2>/dev/null || true; wait "$rpid" 2>/dev/null || true; rm -rf "$rdir"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
rversion=$(redis-server --version | sed 's/ sha=.*//')

rcsv=$build/redis-$mode.csv
: > "$rcsv"
# The replay's hit counting, checked without a limit: hits must be the
# requests minus the distinct keys.
check=$(nice -n 10 "$build/replay_redis" --port "$port" --no-limit --limit 200000 "$tdir/zipf1.0")
expected=$(python3 -c "
import array,sys
a=array.array('I'); a.frombytes(open('$tdir/zipf1.0.trace','rb').read(800000)); print(len(a)-len(set(a)))")
got=$(echo "$check" | cut -d, -f5)
if [ "$got" != "$expected" ]; then
  echo "replay check FAILED: $got hits without a limit, expected $expected" >&2; exit 1
fi
echo "    hit counting check: $got hits = requests - distinct keys (200,000 requests, no limit)"
if [ $mode = quick ]; then samples="5"; else samples="5 10"; fi
for t in $traces; do
  for c in $caps; do
    for s in $samples; do
      s0=$SECONDS
      nice -n 10 "$build/replay_redis" --port "$port" --cap "$c" --samples "$s" "$tdir/$t" >> "$rcsv" 2>>"$build/redis-$mode.log"
      echo "    $t cap $c samples $s: $((SECONDS - s0)) s ($(tail -1 "$rcsv" | cut -d, -f6) hit ratio)"
    done
  done
done

# The Redis model with the server's LRU clock: one tick per second of the
# replay, i.e. every (measured requests per second) requests.
echo "==> simulator: Redis model with a 1 s LRU clock at the replay's speed"
while IFS=, read -r t c s _ _ _ _ _ _ _ _ rate; do
  tick=${rate%.*}
  nice -n 10 "$build/sim" "$tdir/$t" --cap "$c" "redis:$s:$tick" | sed "s/redis:$s:$tick/redis:$s:clock1s/" >> "$csv"
done < "$rcsv"

total=$((SECONDS - start))
date=$(date +%Y-%m-%d)
if [ -z "$out" ]; then
  if [ $mode = quick ]; then out=$here/results/quick-$date.md; else out=$here/results/$date.md; fi
fi
python3 "$here/report.py" --sim "$csv" --redis "$rcsv" --mode $mode --requests $requests --keys $keys \
  --redis-version "$rversion" --seconds "$total" --sim-seconds "$sim_secs" > "$out"
echo "==> report: $out ($total s)"
cat "$out"
