-- What holds, and what cannot, when the cache API runs through the router
-- (fastpgcache_router) against 4 partitions: each call runs and commits on
-- its shard at once, so the router's transaction does not contain it. Run by
-- test/router/run.sh after cache_flush(), with no transaction around the file
-- (a rolled-back assertion would be lost): values seen inside a transaction
-- are kept in psql variables and checked after it.
\set ON_ERROR_STOP 1
SELECT plan(57);

-- ------------------------------------------------------------------ transactions
-- t/04_transactions.sql relies on ROLLBACK; here is what the router does instead.
BEGIN;
SELECT cache_set('tx', 'inside');
SELECT cache_get('tx') AS tx_inside \gset
ROLLBACK;
SELECT is(:'tx_inside'::text, 'inside', 'a set is visible later in the same router transaction');
SELECT is(cache_get('tx'), 'inside', 'a ROLLBACK on the router does not undo a shard write');

BEGIN;
SELECT cache_set('sp', 'v1');
SAVEPOINT b;
SELECT cache_set('sp', 'v2');
SELECT cache_delete('sp');
ROLLBACK TO SAVEPOINT b;
SELECT coalesce(cache_get('sp'), '<none>') AS sp_after \gset
COMMIT;
SELECT is(:'sp_after'::text, '<none>', 'ROLLBACK TO SAVEPOINT does not undo an overwrite and a delete either');

SELECT lives_ok($$
  DO $do$
  BEGIN
    PERFORM cache_set('blk', 'kept');
    BEGIN
      PERFORM cache_set('blk', 'lost');
      PERFORM cache_set(NULL, 'boom');
    EXCEPTION WHEN null_value_not_allowed THEN
      NULL;
    END;
  END $do$
$$, 'an error caught in PL/pgSQL (the shard''s 22004 keeps its SQLSTATE)');
SELECT is(cache_get('blk'), 'lost', 'the failed block''s earlier set is not rolled back');

SELECT is((SELECT cache_set('same', 'statement') AND cache_get('same') = 'statement'), true,
          'a get sees a set made earlier in the same statement');
SELECT is((SELECT count(*) FROM generate_series(1, 500) i WHERE cache_set('bulk:' || i, i::text, 600))::int, 500,
          '500 sets in one statement');
SELECT is((SELECT count(*) FROM generate_series(1, 500) i WHERE cache_get('bulk:' || i) = i::text)::int, 500,
          'all 500 read back');
SELECT is((SELECT count(DISTINCT cache_router_partition('bulk:' || i)) FROM generate_series(1, 500) i)::int, 4,
          'and they are spread over the 4 partitions');

-- cache_flush is transactional on one server; through the router each shard
-- commits its own flush.
SELECT cache_dbsize() AS before_flush \gset
BEGIN;
SELECT cache_flush() AS flushed \gset
ROLLBACK;
SELECT is(:flushed::bigint, :before_flush::bigint, 'cache_flush counts every live entry of every partition');
SELECT is(cache_dbsize(), 0::bigint, 'a rolled-back cache_flush has removed them all the same');

-- ------------------------------------------------------------------ batches (SPLIT)
SELECT cache_mset(array_agg('k' || i), array_agg('v' || i)) FROM generate_series(1, 40) i;
SELECT results_eq(
  $$SELECT key, value FROM cache_mget(ARRAY['k7', 'missing', 'k31', 'k7', NULL, 'k8', 'k40', 'k5'])$$,
  $$VALUES ('k7', 'v7'), ('missing', NULL), ('k31', 'v31'), ('k7', 'v7'), (NULL, NULL), ('k8', 'v8'), ('k40', 'v40'), ('k5', 'v5')$$,
  'cache_mget: one row per key in the caller''s order, across partitions (duplicates, misses, a NULL key)');
SELECT is((SELECT count(DISTINCT cache_router_partition(k)) FROM unnest(ARRAY['k7', 'k31', 'k8', 'k40', 'k5']) k)::int, 4,
          'those keys are on all 4 partitions');
SELECT is((SELECT array_agg(m.value ORDER BY m.ord) FROM cache_mget((SELECT array_agg('k' || i ORDER BY i DESC) FROM generate_series(1, 40) i))
                  WITH ORDINALITY AS m(key, value, ord)),
          (SELECT array_agg('v' || i ORDER BY i DESC) FROM generate_series(1, 40) i),
          'cache_mget of 40 keys in reverse order comes back in that order');
SELECT is(cache_exists(ARRAY['k1', 'k1', 'k2', 'nope', 'k33']), 4, 'cache_exists counts across partitions (a duplicate twice)');
SELECT is(cache_delete(ARRAY['k1', 'k1', 'k2', 'nope', 'k33']), 3, 'cache_delete counts across partitions (a duplicate once)');
SELECT is(cache_exists(ARRAY['k1', 'k2', 'k33']), 0, 'and they are gone');
SELECT is(cache_mset('{}'::text[], '{}'::text[]), 0, 'an empty cache_mset');
SELECT is(cache_delete('{}'::text[]), 0, 'an empty cache_delete');
SELECT is(cache_exists('{}'::text[]), 0, 'an empty cache_exists');
SELECT is((SELECT count(*) FROM cache_mget('{}'::text[]))::int, 0, 'an empty cache_mget');

-- A bad batch is refused before any partition writes (keys on all 4).
SELECT throws_ok($$SELECT cache_mset(ARRAY['b1', 'b5', 'b7', 'b8', 'b9', 'b10', NULL], ARRAY['1', '2', '3', '4', '5', '6', '7'])$$,
                 '22004', 'cache key must not be null', 'cache_mset: a NULL key is refused');
SELECT throws_ok($$SELECT cache_mset(ARRAY['b1', 'b5', 'b7', 'b8', 'b9', 'b10'], ARRAY['1', '2', '3', '4', '5', NULL])$$,
                 '22004', 'cache value must not be null', 'cache_mset: a NULL value is refused');
SELECT throws_ok($$SELECT cache_mset(ARRAY['b1', 'b2'], ARRAY['1'])$$, '22023', NULL, 'cache_mset: lengths differ');
SELECT throws_ok($$SELECT cache_mset(ARRAY[['b1', 'b2']], ARRAY[['1', '2']])$$, '22023', NULL, 'cache_mset: two dimensions');
SELECT throws_ok($$SELECT cache_mset(ARRAY['b1', 'b2'], ARRAY['1', '2'], 0)$$, '22023', NULL, 'cache_mset: ttl 0');
SELECT is(cache_exists(ARRAY['b1', 'b2', 'b5', 'b7', 'b8', 'b9', 'b10']), 0, 'no refused batch wrote anything on any partition');
SELECT is((SELECT count(DISTINCT cache_router_partition(k)) FROM unnest(ARRAY['b1', 'b5', 'b7', 'b8', 'b9', 'b10']) k)::int, 4,
          'those batches had keys on all 4 partitions');
SELECT throws_ok($$SELECT cache_delete(ARRAY['k3', NULL])$$, '22004', NULL, 'cache_delete: a NULL key is refused');
SELECT is(cache_get('k3'), 'v3', 'and nothing was deleted');
SELECT throws_ok($$SELECT cache_exists(ARRAY['k3', NULL])$$, '22004', NULL, 'cache_exists: a NULL key is refused');
SELECT throws_ok($$SELECT * FROM cache_mget(ARRAY[['k3', 'k4']])$$, '22023', NULL, 'cache_mget: two dimensions');

-- MSETNX: atomic on one partition; refused across partitions.
SELECT array_agg(k) AS same_part FROM (
  SELECT 'nx' || i AS k FROM generate_series(1, 100) i WHERE cache_router_partition('nx' || i) = 2 LIMIT 3) s \gset
SELECT is(cache_msetnx(:'same_part', ARRAY['1', '2', '3']), true, 'cache_msetnx of 3 keys on one partition sets them');
SELECT is(cache_msetnx(ARRAY[(:'same_part'::text[])[1], (:'same_part'::text[])[3]], ARRAY['x', 'y']), false,
          'cache_msetnx on that partition with a live key sets nothing');
SELECT is(cache_get((:'same_part'::text[])[3]), '3', 'the live key kept its value');
SELECT throws_ok($$SELECT cache_msetnx(ARRAY['k5', 'k6', 'k7', 'k8', 'fresh1', 'fresh2'], ARRAY['1', '2', '3', '4', '5', '6'])$$,
                 '0A000', NULL, 'cache_msetnx across partitions is refused (it cannot be atomic)');
SELECT is(cache_exists(ARRAY['fresh1', 'fresh2']), 0, 'and nothing was written');

-- ------------------------------------------------------------------ every partition
SELECT cache_flush();
SELECT cache_mset(array_agg('user:' || i), array_agg(i::text)) FROM generate_series(1, 60) i;
SELECT cache_mset(array_agg('item:' || i), array_agg(i::text)) FROM generate_series(1, 40) i;
SELECT is(cache_dbsize(), 100::bigint, 'cache_dbsize adds up the partitions');
SELECT is((SELECT count(*) FROM cache_keys('user:*'))::int, 60, 'cache_keys(pattern) gathers every partition');
SELECT is((SELECT count(DISTINCT k) FROM cache_keys() k)::int, 100, 'cache_keys() returns each key once');
SELECT cache_pexpire('user:' || i, 1) FROM generate_series(1, 7) i;
SELECT pg_sleep(0.05);
SELECT is(cache_cleanup(), 7, 'cache_cleanup adds up the expired entries of every partition');
SELECT is(cache_dbsize(), 93::bigint, 'and cache_dbsize sees them gone');

-- SCAN: every key once, in key_hash order, partition after partition.
CREATE TEMP TABLE scanned AS
WITH RECURSIVE s(cur, keys, step) AS (
    SELECT r.next_cursor, r.keys, 1 FROM cache_scan(0, '*', 7) r
  UNION ALL
    SELECT r.next_cursor, r.keys, s.step + 1 FROM s, LATERAL cache_scan(s.cur, '*', 7) r WHERE s.cur <> 0)
SELECT step, cur, k FROM s LEFT JOIN LATERAL unnest(s.keys) k ON true;
SELECT is((SELECT count(k) FROM scanned)::int, 93, 'a full cache_scan (count 7) returns 93 keys');
SELECT is((SELECT count(DISTINCT k) FROM scanned)::int, 93, 'each of them once');
SELECT ok((SELECT bool_and(cache_router_partition(k) >= coalesce(lag_part, 0)) FROM (
             SELECT k, lag(cache_router_partition(k)) OVER (ORDER BY step) AS lag_part FROM scanned WHERE k IS NOT NULL) x),
          'the scan walks the partitions in order');
SELECT is((SELECT count(*) FROM scanned s1 JOIN scanned s2 ON s2.step = s1.step + 1
            WHERE s1.cur <> 0 AND s2.k IS NOT NULL AND cache_router_partition(s2.k) <> (s1.cur >> 61)::int)::int, 0,
          'each cursor names the partition (its first 2 bits) where the next step''s keys are');
SELECT throws_ok($$SELECT * FROM cache_scan(-1)$$, '22023', 'invalid cursor -1', 'cache_scan: a negative cursor');
SELECT throws_ok($$SELECT * FROM cache_scan(0, '*', 0)$$, '22023', NULL, 'cache_scan: count 0');
SELECT is((SELECT count(*) FROM cache_scan(NULL))::int, 0, 'cache_scan(NULL): no row (STRICT)');

-- ------------------------------------------------------------------ read-only transactions
-- Each write call tells its shard to run read-only; the shard checks the
-- arguments first, then refuses (as the extension does).
SELECT throws_ok($$SELECT CASE WHEN set_config('transaction_read_only', 'on', true) = 'on' THEN cache_set('ro', 'v') END$$,
                 '25006', NULL, 'cache_set in a read-only transaction');
SELECT throws_ok($$SELECT CASE WHEN set_config('transaction_read_only', 'on', true) = 'on' THEN cache_set(NULL, 'v') END$$,
                 '22004', NULL, 'a NULL key in a read-only transaction: the argument error comes first');
SELECT throws_ok($$SELECT CASE WHEN set_config('transaction_read_only', 'on', true) = 'on'
                          THEN cache_mset(ARRAY['ro1', 'ro2', 'ro3', 'ro4', 'ro5'], ARRAY['1', '2', '3', '4', '5']) END$$,
                 '25006', NULL, 'cache_mset in a read-only transaction');
SELECT throws_ok($$SELECT CASE WHEN set_config('transaction_read_only', 'on', true) = 'on' THEN cache_flush() END$$,
                 '25006', NULL, 'cache_flush in a read-only transaction');
SELECT is((SELECT CASE WHEN set_config('transaction_read_only', 'on', true) = 'on' THEN cache_get('user:30') END), '30',
          'cache_get in a read-only transaction');
SELECT is(cache_exists(ARRAY['ro', 'ro1', 'ro2', 'ro3', 'ro4', 'ro5']), 0, 'no refused write happened');

-- ------------------------------------------------------------------ errors keep their SQLSTATE
SELECT cache_set('notint', 'abc');
SELECT throws_like($$SELECT cache_incr('notint')$$, '%[fpc_p_] REMOTE ERROR: value is not an integer%',
                   'a shard''s error names the partition''s database ([fpc_pN])');
SELECT throws_ok($$SELECT cache_incr('notint')$$, '22P02', NULL, 'and keeps its SQLSTATE');

SELECT * FROM finish();
