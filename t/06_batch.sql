-- cache_mget / cache_mset. Uses only the public API.
BEGIN;
SELECT plan(14);

SELECT is(cache_mset(ARRAY['a', 'b', 'c'], ARRAY['1', '2', '3'], 60), 3, 'cache_mset returns the number of pairs');
SELECT results_eq($$SELECT key, value FROM cache_mget(ARRAY['c', 'missing', 'a', 'b'])$$,
                  $$VALUES ('c', '3'), ('missing', NULL), ('a', '1'), ('b', '2')$$,
                  'cache_mget returns one row per key, in order, NULL for a miss');
SELECT cmp_ok(cache_ttl('b'), '>=', 59, 'cache_mset applies the ttl');
SELECT is(cache_get('c'), '3', 'cache_get reads what cache_mset wrote');

SELECT cache_mset(ARRAY['x', 'y', 'x'], ARRAY['first', 'only', 'last']);
SELECT is(cache_get('x'), 'last', 'a key given twice keeps its last value');
SELECT is(cache_ttl('x'), -1, 'cache_mset without ttl: no expiry');
SELECT is(cache_mset('{}'::text[], '{}'::text[]), 0, 'an empty batch sets nothing');

SELECT cache_mset(array_agg('bulk:' || i), array_agg(i::text)) FROM generate_series(1, 1000) i;
SELECT is((SELECT count(*) FROM cache_mget((SELECT array_agg('bulk:' || i) FROM generate_series(1, 1000) i)) m
           WHERE m.value = substr(m.key, 6))::int, 1000, '1,000 keys in one batch each way');

SELECT throws_ok($$SELECT cache_mset(NULL, ARRAY['v'])$$, '22004', NULL, 'NULL keys array is refused');
SELECT throws_ok($$SELECT cache_mset(ARRAY['k', NULL], ARRAY['v', 'w'])$$, '22004', NULL, 'a NULL key in the batch is refused');
SELECT throws_ok($$SELECT cache_mset(ARRAY['k', 'l'], ARRAY['v', NULL])$$, '22004', NULL, 'a NULL value in the batch is refused');
SELECT throws_ok($$SELECT cache_mset(ARRAY['k', 'l'], ARRAY['v'])$$, '22023', NULL, 'arrays of different lengths are refused');
SELECT throws_ok($$SELECT cache_mset(ARRAY['k'], ARRAY['v'], 0)$$, '22023', NULL, 'ttl 0 is refused');
SELECT is(cache_exists('k'), false, 'no failed batch wrote anything');

SELECT * FROM finish();
ROLLBACK;
