#!/usr/bin/env bash
# Checks the PostgreSQL replay client (replay_pg.cpp) against the real
# extension without a size limit (eviction is not built yet): in both modes
# the hits it counts must be the requests minus the distinct keys of the
# trace prefix, the sets the distinct keys, cache_stats() must have counted
# the same hits and misses, and the table must hold one row per distinct key.
#
#   bash bench/eviction/check_replay_pg.sh [REQUESTS]   (default 200000)
#
# Builds the extension into a private copy of the PostgreSQL tree
# (scripts/lib.sh private_install), starts a throwaway cluster with
# shared_preload_libraries = 'fastpgcache' on a free port, and stops it.
# Needs the traces of run.sh (it generates small ones if they are missing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
requests=${1:-200000}

bash "$root/scripts/deps.sh"
source "$root/scripts/lib.sh"
build=$here/build
mkdir -p "$build"
g++ -std=c++17 -O2 -Wall -Wextra -Werror -I"$(pg_config --includedir)" -o "$build/replay_pg" "$here/replay_pg.cpp" -lpq
g++ -std=c++17 -O2 -Wall -Wextra -Werror -o "$build/traces" "$here/traces.cpp"
tdir=$build/traces-check
if [ ! -f "$tdir/zipf1.0.meta" ]; then
  mkdir -p "$tdir"
  "$build/traces" "$tdir" --keys 100000 --requests 1000000 --seed 7 >/dev/null
fi

tmp=$(mktemp -d /tmp/fpc-evict-pg.XXXXXX)
chmod 755 "$tmp"
cleanup() { cluster_stop "$tmp"; rm -rf "$tmp"; }
trap cleanup EXIT
echo "==> building the extension into a private install tree"
private_install "$root" "$tmp"
port=$(free_port)
cluster_start "$tmp" "$port" "shared_preload_libraries = 'fastpgcache'"
export PGHOST="$tmp/sock" PGPORT="$port" PGUSER=postgres
expected_hits=$(python3 -c "
import array
a=array.array('I'); a.frombytes(open('$tdir/zipf1.0.trace','rb').read(4*$requests)); print(len(a)-len(set(a)), len(set(a)))")
hits_exp=${expected_hits% *}
distinct=${expected_hits#* }

fail=0
for mode in split combined; do
  db=replay_$mode
  psql -q -X -d postgres -c "CREATE DATABASE $db" >/dev/null
  psql -q -X -d $db -c "CREATE EXTENSION fastpgcache" >/dev/null
  psql -q -X -d $db -c "SELECT cache_stats_reset()" >/dev/null
  line=$(nice -n 10 "$build/replay_pg" --conninfo "dbname=$db" --mode $mode --limit "$requests" "$tdir/zipf1.0")
  hits=$(echo "$line" | cut -d, -f4); sets=$(echo "$line" | cut -d, -f6)
  stats=$(psql -X -At -d $db -c "SELECT hits || ' ' || misses FROM cache_stats()")
  rows=$(psql -X -At -d $db -c "SELECT count(*) FROM cache_entries")
  echo "    $mode: $line; cache_stats hits/misses: $stats; rows: $rows"
  if [ "$hits" != "$hits_exp" ] || [ "$sets" != "$distinct" ] || [ "$stats" != "$hits_exp $distinct" ] \
     || [ "$rows" != "$distinct" ]; then
    echo "FAIL ($mode): expected $hits_exp hits, $distinct sets/misses/rows" >&2
    fail=1
  fi
done
[ $fail -eq 0 ] && echo "==> replay_pg check: 2 passed, 0 failed" || { echo "==> replay_pg check: failed"; exit 1; }
