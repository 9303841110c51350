-- cache_mget / cache_mset: many keys in one call.
CREATE FUNCTION pg_temp.sqlstate_of(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE query;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

SELECT cache_mset(ARRAY['a', 'b', 'c'], ARRAY['1', '2', '3'], 60);
SELECT * FROM cache_mget(ARRAY['c', 'missing', 'a', NULL, 'b', 'a']);
SELECT cache_ttl('a') BETWEEN 59 AND 60 AS ttl_set, cache_get('b');

-- Without ttl: no expiry. A key given twice keeps its last value.
SELECT cache_mset(ARRAY['x', 'y', 'x'], ARRAY['first', 'only', 'last']);
SELECT * FROM cache_mget(ARRAY['x', 'y']);
SELECT cache_ttl('x');

-- Empty batches.
SELECT cache_mset('{}'::text[], '{}'::text[]);
SELECT count(*) FROM cache_mget('{}'::text[]);
SELECT count(*) FROM cache_mget(NULL);

-- Long keys and 1,000 keys at once.
SELECT cache_mset(ARRAY[repeat('L', 100000), 'short'], ARRAY['long key', 'short key']);
SELECT value FROM cache_mget(ARRAY[repeat('L', 100000), 'short']);
SELECT cache_mset(array_agg('bulk:' || i), array_agg(i::text), 600) FROM generate_series(1, 1000) i;
SELECT count(*) AS hits FROM cache_mget((SELECT array_agg('bulk:' || i) FROM generate_series(1, 1000) i)) m
 WHERE m.value = substr(m.key, 6);

-- Expired entries are misses in a batch too.
UPDATE cache_entries SET expires_at = now() - interval '1 second' WHERE key = 'b';
SELECT * FROM cache_mget(ARRAY['a', 'b']);

-- Binary values that are not text.
SELECT cache_set('bin', '\xff'::bytea);

-- Bad input.
SELECT q, pg_temp.sqlstate_of(q) FROM (VALUES
  ($$SELECT cache_mset(NULL, ARRAY['v'])$$),
  ($$SELECT cache_mset(ARRAY['k'], NULL)$$),
  ($$SELECT cache_mset(ARRAY['k', NULL], ARRAY['v', 'w'])$$),
  ($$SELECT cache_mset(ARRAY['k', 'l'], ARRAY['v', NULL])$$),
  ($$SELECT cache_mset(ARRAY['k', 'l'], ARRAY['v'])$$),
  ($$SELECT cache_mset(ARRAY['k'], ARRAY['v'], 0)$$),
  ($$SELECT cache_mset(ARRAY[['k']], ARRAY[['v']])$$),
  ($$SELECT * FROM cache_mget(ARRAY[['k']])$$),
  ($$SELECT * FROM cache_mget(ARRAY['bin'])$$)
) AS t(q);
SELECT cache_exists('k') AS nothing_written;
