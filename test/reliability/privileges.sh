#!/usr/bin/env bash
# Privileges: the worker escalation attack of issue 9, then privileges.py
# (no grants, SELECT only, full grants, SECURITY DEFINER callers, search_path
# attacks, for every function of the extension), on a cluster with the
# extension preloaded so that the background worker runs.
#
# The escalation attack: a role holding GRANT ALL ON cache_entries (TRIGGER
# included) and a schema of its own creates a BEFORE DELETE trigger whose
# function runs ALTER ROLE ... SUPERUSER and records who ran it, then an
# expired entry appears and the worker runs a few cycles. The role must not
# become superuser; if the trigger ran at all it must have run without
# superuser rights; the expired entry must not be readable; the worker keeps
# running; nothing crashed.
# Prints "N passed, M failed" last.
set -u
REL_NAME=privileges
. "$(dirname "$0")/lib.sh"
rel_ensure_install || { echo "0 passed, 1 failed"; exit 1; }

C=priv
rel_cluster $C "shared_preload_libraries = 'fastpgcache'" "fastpgcache.cleanup_interval = '200ms'" \
  "restart_after_crash = on" || { echo "0 passed, 1 failed"; exit 1; }
q $C "CREATE EXTENSION fastpgcache" >/dev/null
crash_mark $C
wait_until 15 q $C "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'fastpgcache worker'" ||
  not_ok "the preloaded worker runs"

note "1. the worker escalation attack"
q $C "CREATE ROLE mallory LOGIN; GRANT ALL ON cache_entries TO mallory; CREATE SCHEMA mal AUTHORIZATION mallory" >/dev/null
out=$(q $C "CREATE TABLE mal.ran (who name, superuser_rights text, at timestamptz DEFAULT clock_timestamp());
  GRANT INSERT ON mal.ran TO PUBLIC;
  CREATE FUNCTION mal.escalate() RETURNS trigger LANGUAGE plpgsql AS \$f\$
  BEGIN
    INSERT INTO mal.ran (who, superuser_rights) VALUES (current_user, current_setting('is_superuser'));
    EXECUTE 'ALTER ROLE mallory SUPERUSER';
    RETURN OLD;
  END \$f\$;
  CREATE TRIGGER escalate BEFORE DELETE ON public.cache_entries FOR EACH ROW EXECUTE FUNCTION mal.escalate();
  SELECT cache_set('mal:bait', 'x', 1)" postgres mallory 2>&1)
check "mallory (GRANT ALL incl. TRIGGER, own schema) sets up the trigger and an entry with ttl 1" "t" "$out"
check "mallory starts without superuser" "f" "$(q $C "SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'")"
c0=$(q $C "SELECT worker_cycles FROM cache_stats()")
sleep 1.2  # the entry expires
# Five worker cycles after the expiry (200 ms interval).
wait_until 20 q $C "SELECT worker_cycles >= $c0 + 6 FROM cache_stats()" || not_ok "the worker ran cycles after the expiry"
check "mallory did NOT become superuser through the worker" "f" \
  "$(q $C "SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'")" \
  "reproducer: GRANT ALL ON cache_entries TO mallory; CREATE SCHEMA mal AUTHORIZATION mallory; as mallory: a BEFORE DELETE trigger on cache_entries running ALTER ROLE mallory SUPERUSER; cache_set('mal:bait','x',1); wait for a worker cycle" \
  "trigger runs recorded: $(q $C "SELECT string_agg(who || ' is_superuser=' || superuser_rights, '; ') FROM mal.ran")"
check "if the trigger ran under the worker, it ran without superuser rights" "0" \
  "$(q $C "SELECT count(*) FROM mal.ran WHERE superuser_rights = 'on'")" \
  "runs: $(q $C "SELECT string_agg(who || ' is_superuser=' || superuser_rights, '; ') FROM mal.ran")"
check "the expired entry is not readable" "t" "$(q $C "SELECT cache_get('mal:bait') IS NULL AND NOT cache_exists('mal:bait')")"
check "the worker still runs" "1" "$(q $C "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'fastpgcache worker'")"
note "worker log lines about the trigger: $(grep -c 'mal.escalate\|ALTER ROLE' "$(log_of $C)")"
q $C "ALTER ROLE mallory NOSUPERUSER; DROP TRIGGER escalate ON cache_entries" >/dev/null
# The worker carries on once the trigger is gone.
q $C "SELECT cache_set('mal:after', 'x', 1)" >/dev/null
if wait_until 15 q $C "SELECT count(*) = 0 FROM cache_entries WHERE key IN ('mal:bait', 'mal:after')"; then
  ok "after the trigger is dropped the worker removes the expired entries"
else
  not_ok "after the trigger is dropped the worker removes the expired entries"
fi
no_crash $C "worker escalation attack"

note "2. roles, SECURITY DEFINER, search_path, for every function"
py_checks "$PYTHON" "$REL_HERE/privileges.py" "$(conninfo $C)"
no_crash $C "privileges and search_path checks"
rel_finish
