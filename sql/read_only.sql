-- Writes in a read-only transaction fail with 25006, whichever path they
-- would take (the in-place overwrite of an existing key has no executor to
-- check for it); reads work; nothing changes.
CREATE FUNCTION pg_temp.sqlstate_of(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE query;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SELECT cache_set('ro:existing', 'v'), cache_set('ro:json', '{}'::jsonb), cache_set('ro:bytes', '\x00'::bytea),
       cache_set('ro:expired', 'x', 1);
SELECT pg_sleep(1.1);

BEGIN READ ONLY;
SELECT q, pg_temp.sqlstate_of(q) FROM (VALUES
  ($$SELECT cache_set('ro:existing', 'changed')$$),
  ($$SELECT cache_set('ro:new', 'v')$$),
  ($$SELECT cache_set('ro:json', '{"a": 1}'::jsonb)$$),
  ($$SELECT cache_set('ro:bytes', '\x01'::bytea, 10)$$),
  ($$SELECT cache_delete('ro:existing')$$),
  ($$SELECT cache_delete('ro:missing')$$),
  ($$SELECT cache_cleanup()$$),
  ($$SELECT cache_mset(ARRAY['ro:existing', 'ro:new'], ARRAY['a', 'b'])$$),
  ($$SELECT cache_mset(ARRAY[]::text[], ARRAY[]::text[])$$)
) AS t(q);
SELECT cache_get('ro:existing'), cache_exists('ro:json'), cache_ttl('ro:bytes'),
       (SELECT count(*) FROM cache_mget(ARRAY['ro:existing', 'ro:new'])) AS mget_rows;
COMMIT;

-- The same with default_transaction_read_only, and through the SQL path.
SET default_transaction_read_only = on;
SET fastpgcache.direct_writes = off;
SELECT pg_temp.sqlstate_of($$SELECT cache_set('ro:existing', 'changed')$$) AS sql_path;
RESET fastpgcache.direct_writes;
SELECT pg_temp.sqlstate_of($$SELECT cache_set('ro:existing', 'changed')$$) AS direct_path;
RESET default_transaction_read_only;

-- Nothing was written.
SELECT key, convert_from(value, 'UTF8') AS value FROM cache_entries WHERE key LIKE 'ro:%' AND kind <> 'b' ORDER BY key;
SELECT cache_cleanup() >= 1 AS expired_removed_now;
