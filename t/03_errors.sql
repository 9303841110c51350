-- Every error a user can reach, with its SQLSTATE; the session goes on.
BEGIN;
SELECT plan(22);

SELECT throws_ok($$SELECT cache_set(NULL, 'v')$$, '22004', NULL, 'NULL key (text) is refused');
SELECT throws_ok($$SELECT cache_set(NULL, '{}'::jsonb)$$, '22004', NULL, 'NULL key (jsonb) is refused');
SELECT throws_ok($$SELECT cache_set(NULL, '\x00'::bytea)$$, '22004', NULL, 'NULL key (bytea) is refused');
SELECT throws_ok($$SELECT cache_set(NULL, 'v', 10)$$, '22004', NULL, 'NULL key with a ttl is refused');
SELECT throws_ok($$SELECT cache_set('k', NULL::text)$$, '22004', NULL, 'NULL text value is refused');
SELECT throws_ok($$SELECT cache_set('k', NULL::jsonb)$$, '22004', NULL, 'NULL jsonb value is refused');
SELECT throws_ok($$SELECT cache_set('k', NULL::bytea)$$, '22004', NULL, 'NULL bytea value is refused');
SELECT throws_ok($$SELECT cache_delete(NULL)$$, '22004', NULL, 'cache_delete(NULL) is refused');
SELECT throws_ok($$SELECT cache_set('k', 'v', 0)$$, '22023', NULL, 'ttl 0 is refused');
SELECT throws_ok($$SELECT cache_set('k', 'v', -1)$$, '22023', NULL, 'a negative ttl is refused');
SELECT throws_ok($$SELECT cache_set('k', '{}'::jsonb, 0)$$, '22023', NULL, 'ttl 0 is refused (jsonb)');
SELECT throws_ok($$SELECT cache_set('k', '\x00'::bytea, -2147483648)$$, '22023', NULL, 'the smallest ttl is refused (bytea)');
SELECT throws_ok($$SELECT cache_set('k', 'v', 2147483648)$$, '42883', NULL, 'a ttl beyond integer has no matching function');
SELECT is(cache_exists('k'), false, 'no failed call wrote anything');

SELECT lives_ok($$SELECT cache_set('k', 'v', 2147483647)$$, 'the largest ttl is accepted');
SELECT is((SELECT cache_set('k', 'v', 2147483647) AND cache_ttl('k') = 2147483647), true, 'and reported in full');

SELECT cache_set('notjson', 'plain text');
SELECT throws_ok($$SELECT cache_get_json('notjson')$$, '22P02', NULL, 'cache_get_json of a non-JSON value');
SELECT cache_set('binary', '\xff00'::bytea);
SELECT throws_ok($$SELECT cache_get('binary')$$, '22021', NULL, 'cache_get of bytes that are not text');
SELECT throws_ok($$SELECT cache_get_json('binary')$$, '22021', NULL, 'cache_get_json of bytes that are not text');
SELECT is(cache_get_bytes('binary'), '\xff00'::bytea, 'the binary value is still there');

SELECT lives_ok($$SELECT cache_set('after', 'errors')$$, 'the session still works after the errors');
SELECT is(cache_get('after'), 'errors', 'and reads its writes');

SELECT * FROM finish();
ROLLBACK;
