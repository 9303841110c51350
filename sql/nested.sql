-- A cache function nested in another: a trigger on cache_entries that calls
-- the cache (which sends every write through SQL) while relcache
-- invalidations arrive (a GRANT inside the trigger), and a schema rename from
-- inside the trigger. The plans the outer call is executing must not be
-- freed under it. (The test cluster runs with MALLOC_PERTURB_, so a freed
-- plan that is used again crashes instead of passing by luck.)
CREATE TEMP TABLE regress_nested_log (key text, inner_value text);
CREATE FUNCTION regress_nested_trg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE 'GRANT SELECT ON cache_entries TO PUBLIC';
  EXECUTE 'REVOKE SELECT ON cache_entries FROM PUBLIC';
  INSERT INTO regress_nested_log VALUES (NEW.key, cache_get('nested:inner'));
  RETURN NEW;
END $$;
SELECT cache_set('nested:inner', 'seen');
CREATE TRIGGER regress_nested BEFORE INSERT OR UPDATE ON cache_entries
  FOR EACH ROW WHEN (NEW.key <> 'nested:inner') EXECUTE FUNCTION regress_nested_trg();
SELECT count(*) FILTER (WHERE cache_set('nested:' || i, 'v' || i)) AS first_sets,
       count(*) FILTER (WHERE cache_set('nested:' || i, 'w' || i)) AS overwrites
FROM generate_series(1, 50) i;
SELECT count(*) FILTER (WHERE cache_get('nested:' || i) = 'w' || i) AS values_right FROM generate_series(1, 50) i;
SELECT count(*) AS trigger_calls, count(*) FILTER (WHERE inner_value = 'seen') AS inner_reads_right
FROM regress_nested_log;
SELECT cache_mset(ARRAY['nested:1', 'nested:2'], ARRAY['m1', 'm2']), cache_get('nested:1'), cache_get('nested:2');

-- The trigger renames the extension's schema and back while the outer set
-- runs: the nested call prepares the plans again, the outer one keeps its own.
CREATE OR REPLACE FUNCTION regress_nested_trg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE 'ALTER SCHEMA public RENAME TO regress_public_renamed';
  INSERT INTO regress_nested_log VALUES (NEW.key, regress_public_renamed.cache_get('nested:inner'));
  EXECUTE 'ALTER SCHEMA regress_public_renamed RENAME TO public';
  INSERT INTO regress_nested_log VALUES (NEW.key, public.cache_get('nested:inner'));
  RETURN NEW;
END $$;
TRUNCATE regress_nested_log;
SELECT count(*) FILTER (WHERE cache_set('nested:' || i, 'r' || i)) AS sets_during_renames FROM generate_series(1, 20) i;
SELECT count(*) FILTER (WHERE cache_get('nested:' || i) = 'r' || i) AS values_right FROM generate_series(1, 20) i;
SELECT count(*) AS inner_calls, count(*) FILTER (WHERE inner_value = 'seen') AS inner_reads_right
FROM regress_nested_log;

DROP TRIGGER regress_nested ON cache_entries;
DROP FUNCTION regress_nested_trg();
DROP TABLE regress_nested_log;
SELECT cache_set('nested:1', 'direct again'), cache_get('nested:1');
