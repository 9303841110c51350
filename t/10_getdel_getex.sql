-- cache_getdel (GETDEL) and cache_getex (GETEX, sliding sessions). Uses
-- only the public API.
BEGIN;
SELECT plan(34);

-- GETDEL
SELECT is(cache_getdel('missing'), NULL, 'getdel of a missing key is NULL');
SELECT cache_set('gd', 'v', 100);
SELECT is(cache_getdel('gd'), 'v', 'getdel returns the value');
SELECT is(cache_exists('gd'), false, 'and deletes the key');
SELECT is(cache_getdel('gd'), NULL, 'a second getdel is NULL');
SELECT cache_set('gd:json', '{"a": [1, 2]}'::jsonb);
SELECT is(cache_getdel('gd:json'), '{"a": [1, 2]}', 'getdel of JSON returns its text');
SELECT cache_set('gd:text-bytes', convert_to('héllo', 'UTF8'));
SELECT is(cache_getdel('gd:text-bytes'), 'héllo', 'getdel of bytes that are valid text');
SELECT cache_set('gd:bin', '\xff00'::bytea, 100);
SELECT throws_ok($$SELECT cache_getdel('gd:bin')$$, '22021', NULL, 'getdel of bytes that are not text: 22021');
SELECT is(cache_get_bytes('gd:bin'), '\xff00'::bytea, 'and the key is not deleted');
SELECT ok(cache_ttl('gd:bin') BETWEEN 98 AND 100, 'nor its expiry changed');
SELECT throws_ok($$SELECT cache_getdel(NULL)$$, '22004', NULL, 'getdel(NULL): 22004');
SELECT cache_set('gd:tx', 'kept');
SAVEPOINT a;
SELECT is(cache_getdel('gd:tx'), 'kept', 'getdel inside a savepoint');
ROLLBACK TO SAVEPOINT a;
-- router: skip: ROLLBACK TO SAVEPOINT cannot undo a shard write
SELECT is(cache_get('gd:tx'), 'kept', 'a rolled-back getdel deleted nothing');

-- GETEX
SELECT is(cache_getex('missing'), NULL, 'getex of a missing key is NULL');
SELECT is(cache_getex('missing', 100), NULL, 'getex with a ttl of a missing key is NULL');
SELECT is(cache_exists('missing'), false, 'and creates nothing');
SELECT cache_set('gx', 'session', 100);
SELECT is(cache_getex('gx'), 'session', 'getex returns the value');
SELECT ok(cache_ttl('gx') BETWEEN 98 AND 100, 'getex without options leaves the expiry');
SELECT is(cache_getex('gx', 500), 'session', 'getex with a ttl returns the value');
SELECT ok(cache_ttl('gx') BETWEEN 498 AND 500, 'and sets the new expiry (sliding)');
SELECT is(cache_getex('gx', persist => true), 'session', 'getex with persist returns the value');
SELECT is(cache_ttl('gx'), -1, 'and removes the expiry');
SELECT is(cache_getex('gx') || ' ' || cache_ttl('gx'), 'session -1', 'getex without options on a key without expiry');
SELECT is(cache_getex('gx', 30) || ' ' || cache_ttl('gx'), 'session 30', 'getex with a ttl gives a key without expiry one');
SELECT cache_set('gx:json', '[1]'::jsonb);
SELECT is(cache_getex('gx:json', 10), '[1]', 'getex of JSON returns its text');
SELECT cache_set('gx:bin', '\xfe'::bytea, 100);
SELECT throws_ok($$SELECT cache_getex('gx:bin', 5)$$, '22021', NULL, 'getex of bytes that are not text: 22021');
SELECT ok(cache_ttl('gx:bin') BETWEEN 98 AND 100, 'and the expiry is unchanged');
SELECT throws_ok($$SELECT cache_getex('gx:bin', persist => true)$$, '22021', NULL, 'getex persist of bytes that are not text: 22021');
SELECT ok(cache_ttl('gx:bin') BETWEEN 98 AND 100, 'and the expiry is still there');
SELECT throws_ok($$SELECT cache_getex('gx', 0)$$, '22023', NULL, 'getex with ttl 0: 22023');
SELECT throws_ok($$SELECT cache_getex('gx', -1)$$, '22023', NULL, 'getex with a negative ttl: 22023');
SELECT throws_ok($$SELECT cache_getex('gx', 10, true)$$, '22023', NULL, 'getex with a ttl and persist: 22023');
SELECT throws_ok($$SELECT cache_getex(NULL)$$, '22004', NULL, 'getex with a NULL key: 22004');
SELECT throws_ok($$SELECT cache_getex('gx', 10, NULL)$$, '22004', NULL, 'getex with a NULL persist: 22004');
SELECT ok(cache_ttl('gx') BETWEEN 28 AND 30, 'the failed getex calls changed nothing');

SELECT * FROM finish();
ROLLBACK;
