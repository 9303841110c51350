-- cache_set with nx / xx / keepttl (SET ... NX | XX | KEEPTTL) and
-- cache_getset (SET ... GET). Uses only the public API.
BEGIN;
SELECT plan(71);

-- NX: write only if the key is absent
SELECT is(cache_set('nx', 'first', nx => true), true, 'nx on a missing key writes');
SELECT is(cache_ttl('nx'), -1, 'nx without ttl: no expiry');
SELECT is(cache_set('nx', 'second', nx => true), false, 'nx on a live key does not write');
SELECT is(cache_get('nx'), 'first', 'nx kept the live value');
SELECT is(cache_set('nx', '{"a": 1}'::jsonb, nx => true), false, 'nx on a live key (jsonb overload)');
SELECT is(cache_set('nx', '\x01'::bytea, nx => true), false, 'nx on a live key (bytea overload)');
SELECT is(cache_type('nx'), 'text', 'the live text value is still there');
SELECT is(cache_set('nx:ttl', 'v', 100, nx => true), true, 'nx with a ttl on a missing key writes');
SELECT ok(cache_ttl('nx:ttl') BETWEEN 98 AND 100, 'nx applies the ttl');
SELECT is(cache_set('nx:ttl', 'w', 5, nx => true), false, 'nx with a ttl on a live key does not write');
SELECT ok(cache_ttl('nx:ttl') BETWEEN 98 AND 100, 'and leaves the expiry alone');
SELECT is(cache_set('nx:json', '{"a": 1}'::jsonb, nx => true), true, 'nx writes jsonb');
SELECT is(cache_get_json('nx:json'), '{"a": 1}'::jsonb, 'the nx-written jsonb reads back');
SELECT is(cache_set('nx:bytes', '\x00ff'::bytea, 10, nx => true), true, 'nx writes bytea');
SELECT is(cache_get_bytes('nx:bytes'), '\x00ff'::bytea, 'the nx-written bytea reads back');

-- XX: write only if the key is live
SELECT is(cache_set('xx', 'v', xx => true), false, 'xx on a missing key does not write');
SELECT is(cache_exists('xx'), false, 'xx created nothing');
SELECT cache_set('xx', 'a', 100);
SELECT is(cache_set('xx', 'b', xx => true), true, 'xx on a live key writes');
SELECT is(cache_get('xx'), 'b', 'the xx write is visible');
SELECT is(cache_ttl('xx'), -1, 'xx without ttl clears the expiry, as a plain set does');
SELECT is(cache_set('xx', 'c', 50, xx => true), true, 'xx with a ttl writes');
SELECT ok(cache_ttl('xx') BETWEEN 48 AND 50, 'xx applies the ttl');
SELECT is(cache_set('xx', '[1, 2]'::jsonb, xx => true), true, 'xx writes jsonb over text');
SELECT is(cache_type('xx'), 'json', 'the kind follows the overload');
SELECT is(cache_set('xx', '\x02'::bytea, xx => true), true, 'xx writes bytea');
SELECT is(cache_type('xx'), 'bytes', 'the kind is bytes now');

-- KEEPTTL: the new value keeps the live entry's expiry
SELECT cache_set('kt', 'a', 100);
SELECT is(cache_set('kt', 'b', keepttl => true), true, 'keepttl writes');
SELECT is(cache_get('kt'), 'b', 'the keepttl write is visible');
SELECT ok(cache_ttl('kt') BETWEEN 98 AND 100, 'keepttl kept the expiry');
SELECT is(cache_set('kt', '{"k": 1}'::jsonb, keepttl => true) AND cache_ttl('kt') BETWEEN 98 AND 100, true, 'keepttl (jsonb) keeps the expiry');
SELECT is(cache_set('kt', '\x03'::bytea, keepttl => true) AND cache_ttl('kt') BETWEEN 98 AND 100, true, 'keepttl (bytea) keeps the expiry');
SELECT is(cache_set('kt', 'c', xx => true, keepttl => true), true, 'xx with keepttl on a live key writes');
SELECT ok(cache_ttl('kt') BETWEEN 98 AND 100, 'xx with keepttl kept the expiry');
SELECT is(cache_set('kt:new', 'v', keepttl => true), true, 'keepttl on a missing key writes');
SELECT is(cache_ttl('kt:new'), -1, 'keepttl on a missing key: no expiry');
SELECT is(cache_set('kt:new', 'w', keepttl => true) AND cache_ttl('kt:new') = -1, true, 'keepttl on a key without expiry: still none');
SELECT is(cache_set('kt:nx', 'v', nx => true, keepttl => true), true, 'nx with keepttl on a missing key writes');
SELECT is(cache_ttl('kt:nx'), -1, 'nx with keepttl: no expiry');
SELECT is(cache_set('kt:nx', 'w', nx => true, keepttl => true), false, 'nx with keepttl on a live key does not write');

-- An expired key is absent for NX and XX, and KEEPTTL does not inherit its expiry
SELECT cache_set('gone:nx', 'old'), cache_set('gone:xx', 'old'), cache_set('gone:kt', 'old');
SELECT cache_pexpire('gone:nx', 20), cache_pexpire('gone:xx', 20), cache_pexpire('gone:kt', 20);
SELECT pg_sleep(0.1);
SELECT is(cache_set('gone:nx', 'new', nx => true), true, 'nx on an expired key writes');
SELECT is(cache_get('gone:nx') || ' ' || cache_ttl('gone:nx'), 'new -1', 'and the new value has no expiry');
SELECT is(cache_set('gone:xx', 'new', xx => true), false, 'xx on an expired key does not write');
SELECT is(cache_get('gone:xx'), NULL, 'the expired key stays absent');
SELECT is(cache_set('gone:kt', 'new', keepttl => true), true, 'keepttl on an expired key writes');
SELECT is(cache_ttl('gone:kt'), -1, 'keepttl does not keep an expired entry''s expiry');

-- Argument errors (raised before anything is read or written)
SELECT throws_ok($$SELECT cache_set('bad', 'v', nx => true, xx => true)$$, '22023', NULL, 'nx and xx together: 22023 (text)');
SELECT throws_ok($$SELECT cache_set('bad', '{}'::jsonb, nx => true, xx => true)$$, '22023', NULL, 'nx and xx together: 22023 (jsonb)');
SELECT throws_ok($$SELECT cache_set('bad', '\x00'::bytea, nx => true, xx => true)$$, '22023', NULL, 'nx and xx together: 22023 (bytea)');
SELECT throws_ok($$SELECT cache_set('bad', 'v', 10, keepttl => true)$$, '22023', NULL, 'keepttl with a ttl: 22023 (text)');
SELECT throws_ok($$SELECT cache_set('bad', '{}'::jsonb, 10, keepttl => true)$$, '22023', NULL, 'keepttl with a ttl: 22023 (jsonb)');
SELECT throws_ok($$SELECT cache_set('bad', '\x00'::bytea, 10, keepttl => true)$$, '22023', NULL, 'keepttl with a ttl: 22023 (bytea)');
SELECT throws_ok($$SELECT cache_set('bad', 'v', nx => NULL)$$, '22004', NULL, 'NULL nx: 22004');
SELECT throws_ok($$SELECT cache_set('bad', '{}'::jsonb, xx => NULL)$$, '22004', NULL, 'NULL xx: 22004');
SELECT throws_ok($$SELECT cache_set('bad', '\x00'::bytea, keepttl => NULL)$$, '22004', NULL, 'NULL keepttl: 22004');
SELECT throws_ok($$SELECT cache_set('bad', 'v', 0, nx => true)$$, '22023', NULL, 'ttl 0 with nx: 22023');
SELECT throws_ok($$SELECT cache_set(NULL, 'v', xx => true)$$, '22004', NULL, 'NULL key with xx: 22004');
SELECT is(cache_exists('bad'), false, 'no failed call wrote anything');
SELECT throws_ok($$SELECT cache_set('xx', 'v', nx => true, xx => true)$$, '22023', NULL, 'nx and xx on a live key: 22023');
SELECT is(cache_type('xx'), 'bytes', 'and the live value is untouched');

-- GETSET (SET ... GET)
SELECT is(cache_getset('gs', 'one'), NULL, 'getset of a missing key returns NULL');
SELECT is(cache_getset('gs', 'two'), 'one', 'getset returns the previous value');
SELECT is(cache_getset('gs', 'three', 30) || ' ' || cache_ttl('gs'), 'two 30', 'getset with a ttl sets it');
SELECT is(cache_getset('gs', 'four') || ' ' || cache_ttl('gs') || ' ' || cache_get('gs'), 'three -1 four',
          'getset without a ttl clears the expiry');
SELECT cache_set('gs:json', '{"a": 1}'::jsonb);
SELECT is(cache_getset('gs:json', 'plain') || ' ' || cache_type('gs:json'), '{"a": 1} text',
          'getset returns JSON as its text and stores text');
SELECT cache_set('gs:bin', '\xff00'::bytea);
SELECT throws_ok($$SELECT cache_getset('gs:bin', 'x')$$, '22021', NULL, 'getset of bytes that are not text: 22021');
SELECT is(cache_get_bytes('gs:bin'), '\xff00'::bytea, 'and nothing was written');
SELECT throws_ok($$SELECT cache_getset(NULL, 'x')$$, '22004', NULL, 'getset with a NULL key: 22004');
SELECT throws_ok($$SELECT cache_getset('gs:err', NULL)$$, '22004', NULL, 'getset with a NULL value: 22004');
SELECT throws_ok($$SELECT cache_getset('gs:err', 'x', 0)$$, '22023', NULL, 'getset with ttl 0: 22023');
SELECT throws_ok($$SELECT cache_getset('gs:err', 'x', -1)$$, '22023', NULL, 'getset with a negative ttl: 22023');
SELECT is(cache_exists('gs:err'), false, 'no failed getset wrote anything');

SELECT * FROM finish();
ROLLBACK;
