#!/usr/bin/env bash
# The reliability suite (issue 9): nothing a user, a role or a schema change
# does may crash the server, escalate privileges, or write where PostgreSQL
# forbids it. Runs each area's script (each also runs alone, see README.md
# in this folder) and prints "N passed, M failed" last; non-zero on failure.
#
# usage: bash test/reliability/run.sh [--long] [AREA...]
#   AREA: sqlsmith random_calls crash_restart schema_drift standby privileges
#   --long (or FPC_RELIABILITY_LONG=1): the long versions (about an hour).
#   KEEP_LOGS=1 keeps every cluster's log and generated file.
# Run from scripts/test.sh, PGBIN names the private install tree built there;
# run alone, the extension is built into a private tree here first.
set -u
here=$(cd "$(dirname "$0")" && pwd)
areas=()
for a in "$@"; do
  case "$a" in
    --long) export FPC_RELIABILITY_LONG=1 ;;
    *) areas+=("$a") ;;
  esac
done
[ ${#areas[@]} -gt 0 ] || areas=(schema_drift privileges standby crash_restart random_calls sqlsmith)

REL_NAME=reliability
. "$here/lib.sh"
rel_ensure_install || { echo "0 passed, 1 failed"; exit 1; }
export PGBIN PG_BINDIR PATH

summary=()
for a in "${areas[@]}"; do
  [ -f "$here/$a.sh" ] || { not_ok "unknown area $a"; continue; }
  echo
  echo "=== reliability: $a"
  t0=$(date +%s)
  out="$REL_TMP/$a.out"
  bash "$here/$a.sh" 2>&1 | tee "$out"
  last=$(tail -3 "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -1)
  if [ -z "$last" ]; then
    not_ok "$a: ran to its closing line" "$(tail -5 "$out")"
    summary+=("$a: no result ($(( $(date +%s) - t0 )) s)")
    continue
  fi
  p=${last%% passed*}
  f=${last#*, }; f=${f%% failed*}
  REL_PASSED=$((REL_PASSED + p))
  REL_FAILED=$((REL_FAILED + f))
  summary+=("$a: $last ($(( $(date +%s) - t0 )) s)")
done
echo
echo "=== reliability summary"
for s in "${summary[@]}"; do echo "# $s"; done
grep -h '^not ok' "$REL_TMP"/*.out 2>/dev/null | sed 's/^/# /' | head -80
rel_finish
