-- Many keys at once: cache_delete(text[]) (DEL k1 k2 ...), cache_exists(text[])
-- (EXISTS k1 k2 ...), cache_msetnx (MSETNX); and cache_type (TYPE). Uses
-- only the public API.
BEGIN;
SELECT plan(45);

-- DEL k1 k2 ...
SELECT cache_mset(ARRAY['a', 'b', 'c', 'd'], ARRAY['1', '2', '3', '4']);
SELECT is(cache_delete(ARRAY['a', 'b', 'missing']), 2, 'delete counts the live keys it deleted');
SELECT is(cache_exists('a') OR cache_exists('b'), false, 'and they are gone');
SELECT is(cache_delete(ARRAY['c', 'c']), 1, 'a key listed twice counts once');
SELECT is(cache_delete('{}'::text[]), 0, 'an empty list deletes nothing');
SELECT cache_set('gone', 'v');
SELECT cache_pexpire('gone', 20);
SELECT pg_sleep(0.06);
SELECT is(cache_delete(ARRAY['gone', 'd']), 1, 'an expired key is not counted');
SELECT is(cache_set('gone', 'x', xx => true), false, 'and stays absent');
SELECT cache_mset(ARRAY['e', 'f'], ARRAY['5', '6']);
SELECT throws_ok($$SELECT cache_delete(NULL::text[])$$, '22004', NULL, 'delete of a NULL array: 22004');
SELECT throws_ok($$SELECT cache_delete(ARRAY['e', NULL])$$, '22004', NULL, 'a NULL key in the list: 22004');
SELECT is(cache_exists('e'), true, 'and nothing was deleted');
SELECT throws_ok($$SELECT cache_delete('{{e},{f}}'::text[])$$, '22023', NULL, 'a two-dimensional array: 22023');
SELECT is(cache_exists(ARRAY['e', 'f']), 2, 'and nothing was deleted');
SELECT is(cache_delete('e'), true, 'cache_delete(text) still deletes one key');
SELECT is(cache_delete(ARRAY(SELECT 'bulk:' || i FROM generate_series(1, 3) i)), 0, 'delete of keys that never existed');
SELECT cache_mset(ARRAY(SELECT 'bulk:' || i FROM generate_series(1, 500) i), ARRAY(SELECT i::text FROM generate_series(1, 500) i));
SELECT is(cache_delete(ARRAY(SELECT 'bulk:' || i FROM generate_series(1, 600) i)), 500, '500 keys in one delete');

-- EXISTS k1 k2 ...
SELECT cache_mset(ARRAY['x', 'y'], ARRAY['1', '2']);
SELECT is(cache_exists(ARRAY['x', 'y', 'missing']), 2, 'exists counts the live keys');
SELECT is(cache_exists(ARRAY['x', 'x', 'x', 'y']), 4, 'a key listed twice counts twice');
SELECT is(cache_exists('{}'::text[]), 0, 'exists of an empty list is 0');
SELECT is(cache_exists(NULL::text[]), NULL, 'exists of a NULL array is NULL');
SELECT throws_ok($$SELECT cache_exists(ARRAY['x', NULL])$$, '22004', NULL, 'a NULL key in the list: 22004');
SELECT throws_ok($$SELECT cache_exists('{{x},{y}}'::text[])$$, '22023', NULL, 'a two-dimensional array: 22023');
SELECT is(cache_exists('x'), true, 'cache_exists(text) still answers for one key');

-- TYPE
SELECT cache_set('t:text', 'v'), cache_set('t:json', '{}'::jsonb), cache_set('t:bytes', '\x00'::bytea);
SELECT is(cache_type('t:text'), 'text', 'type of text');
SELECT is(cache_type('t:json'), 'json', 'type of jsonb');
SELECT is(cache_type('t:bytes'), 'bytes', 'type of bytea');
SELECT is(cache_type('missing'), NULL, 'type of a missing key is NULL');
SELECT is(cache_type(NULL), NULL, 'type(NULL) is NULL');
SELECT cache_set('t:json', 'now text');
SELECT is(cache_type('t:json'), 'text', 'the type follows the last write');

-- MSETNX
-- router: skip: these keys are on several partitions, where MSETNX is refused (test/router/t/10_router_semantics.sql)
SELECT is(cache_msetnx(ARRAY['m1', 'm2'], ARRAY['a', 'b']), true, 'msetnx of missing keys is true');
-- router: skip: MSETNX across partitions, as above
SELECT is(cache_get('m1') || cache_get('m2'), 'ab', 'and sets every pair');
-- router: skip: MSETNX across partitions, as above
SELECT is(cache_ttl('m1'), -1, 'without ttl: no expiry');
-- router: skip: MSETNX across partitions, as above
SELECT is(cache_msetnx(ARRAY['m3', 'm2', 'm4'], ARRAY['c', 'x', 'd']), false, 'msetnx with one live key is false');
-- router: skip: MSETNX across partitions, as above
SELECT is(cache_exists(ARRAY['m3', 'm4']), 0, 'and sets nothing');
-- router: skip: MSETNX across partitions, as above
SELECT is(cache_get('m2'), 'b', 'and leaves the live key alone');
-- router: skip: MSETNX across partitions, as above
SELECT is(cache_msetnx(ARRAY['m5', 'm6', 'm5'], ARRAY['first', 'v', 'last'], 60), true, 'msetnx with a key listed twice');
-- router: skip: MSETNX across partitions, as above
SELECT is(cache_get('m5'), 'last', 'the last value wins');
-- router: skip: MSETNX across partitions, as above
SELECT ok(cache_ttl('m6') BETWEEN 58 AND 60, 'msetnx applies the ttl');
SELECT is(cache_msetnx('{}'::text[], '{}'::text[]), true, 'msetnx of no pairs is true (nothing was live)');
SELECT throws_ok($$SELECT cache_msetnx(NULL, ARRAY['v'])$$, '22004', NULL, 'msetnx with NULL keys: 22004');
SELECT throws_ok($$SELECT cache_msetnx(ARRAY['n1'], NULL)$$, '22004', NULL, 'msetnx with NULL values: 22004');
SELECT throws_ok($$SELECT cache_msetnx(ARRAY['n1', NULL], ARRAY['v', 'w'])$$, '22004', NULL, 'a NULL key: 22004');
SELECT throws_ok($$SELECT cache_msetnx(ARRAY['n1', 'n2'], ARRAY['v', NULL])$$, '22004', NULL, 'a NULL value: 22004');
SELECT throws_ok($$SELECT cache_msetnx(ARRAY['n1', 'n2'], ARRAY['v'])$$, '22023', NULL, 'arrays of different lengths: 22023');
SELECT throws_ok($$SELECT cache_msetnx('{{n1},{n2}}'::text[], '{{v},{w}}'::text[])$$, '22023', NULL, 'two-dimensional arrays: 22023');
SELECT throws_ok($$SELECT cache_msetnx(ARRAY['n1'], ARRAY['v'], 0)$$, '22023', NULL, 'ttl 0: 22023');
SELECT is(cache_exists('n1'), false, 'no failed msetnx wrote anything');

SELECT * FROM finish();
ROLLBACK;
