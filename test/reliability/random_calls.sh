#!/usr/bin/env bash
# Random calls of every cache_* function (random_calls.py) against a cluster
# with the extension preloaded, then a check that nothing crashed (server log,
# postmaster start time, canary).
#
# Env: FPC_SEED (default 20261127 in CI; with FPC_RELIABILITY_LONG=1 a random
# seed), FPC_RANDOM_CALLS (default 4000, long 200000), FPC_RANDOM_SECONDS
# (default 60, long 1800). The seed is printed: FPC_SEED=N replays a run.
# Prints "N passed, M failed" last.
set -u
REL_NAME=random_calls
. "$(dirname "$0")/lib.sh"
rel_ensure_install || { echo "0 passed, 1 failed"; exit 1; }

if [ "$REL_LONG" = 1 ]; then
  SEED=${FPC_SEED:-$(( (RANDOM << 15 | RANDOM) + 1 ))}
  CALLS=${FPC_RANDOM_CALLS:-200000}
  SECONDS_BUDGET=${FPC_RANDOM_SECONDS:-1800}
else
  SEED=${FPC_SEED:-20261127}
  CALLS=${FPC_RANDOM_CALLS:-4000}
  SECONDS_BUDGET=${FPC_RANDOM_SECONDS:-60}
fi

C=calls
rel_cluster $C "shared_preload_libraries = 'fastpgcache'" "fastpgcache.cleanup_interval = '200ms'" \
  "restart_after_crash = on" || { echo "0 passed, 1 failed"; exit 1; }
q $C "CREATE DATABASE fuzz" >/dev/null
q $C "CREATE EXTENSION fastpgcache" fuzz >/dev/null
crash_mark $C
py_checks nice -n 5 "$PYTHON" "$REL_HERE/random_calls.py" "$(conninfo $C fuzz)" --seed "$SEED" \
  --calls "$CALLS" --seconds "$SECONDS_BUDGET"
no_crash $C "random calls (seed $SEED)"
rel_finish
