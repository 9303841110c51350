-- Bad input: a clear error with a proper SQLSTATE, and the server keeps serving.
CREATE FUNCTION pg_temp.sqlstate_of(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE query;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

SELECT q, pg_temp.sqlstate_of(q) FROM (VALUES
  ($$SELECT cache_set(NULL, 'v')$$),
  ($$SELECT cache_set(NULL, '{}'::jsonb)$$),
  ($$SELECT cache_set(NULL, '\x00'::bytea)$$),
  ($$SELECT cache_set('k', NULL::text)$$),
  ($$SELECT cache_set('k', NULL::jsonb)$$),
  ($$SELECT cache_set('k', NULL::bytea)$$),
  ($$SELECT cache_set('k', NULL::text, 10)$$),
  ($$SELECT cache_delete(NULL)$$),
  ($$SELECT cache_set('k', 'v', 0)$$),
  ($$SELECT cache_set('k', 'v', -1)$$),
  ($$SELECT cache_set('k', '{}'::jsonb, 0)$$),
  ($$SELECT cache_set('k', '\x00'::bytea, -2147483648)$$),
  ($$SELECT cache_set('k', 'v', 2147483648)$$),
  ($$SELECT cache_set('k', 'v', 1.5)$$)
) AS t(q);

-- Nothing was written by the failed calls.
SELECT count(*) AS rows_for_k FROM cache_entries WHERE key = 'k';

-- The largest ttl is fine (about 68 years).
SELECT cache_set('forever', 'v', 2147483647), cache_ttl('forever') = 2147483647 AS full_ttl;

-- Reading a value in a form it cannot take.
SELECT cache_set('notjson', 'plain text'), cache_set('binary', '\xff00'::bytea);
SELECT q, pg_temp.sqlstate_of(q) FROM (VALUES
  ($$SELECT cache_get_json('notjson')$$),
  ($$SELECT cache_get('binary')$$),
  ($$SELECT cache_get_json('binary')$$)
) AS t(q);

-- The full report, with detail and hint.
SELECT cache_set('k', 'v', 0);
SELECT cache_set(NULL, 'v');
SELECT cache_set('k', NULL::text);
SELECT cache_get('binary');

-- Still serving.
SELECT cache_get('notjson'), cache_get_bytes('binary');
