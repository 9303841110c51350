-- Counters and strings: cache_incr / cache_decr (INCRBY / DECRBY),
-- cache_incrbyfloat (INCRBYFLOAT), cache_append (APPEND), cache_strlen
-- (STRLEN). Uses only the public API.
BEGIN;
SELECT plan(103);

-- INCR
SELECT is(cache_incr('c'), 1::bigint, 'incr of a missing key starts at 0');
SELECT is(cache_ttl('c'), -1, 'and sets no ttl');
SELECT is(cache_incr('c'), 2::bigint, 'incr adds 1');
SELECT is(cache_incr('c', 10), 12::bigint, 'incr by 10');
SELECT is(cache_incr('c', -20), -8::bigint, 'incr by a negative number');
SELECT is(cache_incr('c', 0), -8::bigint, 'incr by 0 returns the value');
SELECT is(cache_get('c'), '-8', 'the value is stored as decimal text');
SELECT is(cache_type('c'), 'text', 'of kind text');
SELECT is(cache_incr('rl', 1, 60), 1::bigint, 'incr with a ttl creates the key');
SELECT ok(cache_ttl('rl') BETWEEN 58 AND 60, 'with that ttl (a fixed window)');
SELECT cache_expire('rl', 100);
SELECT is(cache_incr('rl', 1, 5), 2::bigint, 'incr with a ttl on a live key');
SELECT ok(cache_ttl('rl') BETWEEN 98 AND 100, 'ignores the ttl and keeps the expiry');
SELECT is(cache_incr('rl'), 3::bigint, 'incr without a ttl on a key with an expiry');
SELECT ok(cache_ttl('rl') BETWEEN 98 AND 100, 'keeps the expiry');
SELECT cache_set('noexp', '5');
SELECT is(cache_incr('noexp', 1, 30) || ' ' || cache_ttl('noexp'), '6 -1', 'incr with a ttl on a key without expiry adds none');
SELECT cache_set('s', '41');
SELECT is(cache_incr('s'), 42::bigint, 'incr of a value set as text');
SELECT cache_set('j', '5'::jsonb);
SELECT is(cache_incr('j') || ' ' || cache_type('j'), '6 text', 'incr of a JSON number stores text');
SELECT cache_set('b', convert_to('7', 'UTF8'));
SELECT is(cache_incr('b') || ' ' || cache_type('b'), '8 text', 'incr of bytes that are digits stores text');
SELECT cache_set('zero', '0');
SELECT is(cache_incr('zero'), 1::bigint, '"0" is an integer');
SELECT cache_set('neg', '-1');
SELECT is(cache_incr('neg'), 0::bigint, '"-1" is an integer');

-- DECR
SELECT is(cache_decr('d'), -1::bigint, 'decr of a missing key starts at 0');
SELECT is(cache_decr('d', 5), -6::bigint, 'decr by 5');
SELECT is(cache_decr('d', -10), 4::bigint, 'decr by a negative number');
SELECT is(cache_get('d'), '4', 'decr stores decimal text');

-- 64-bit limits
SELECT cache_set('max', '9223372036854775807');
SELECT throws_ok($$SELECT cache_incr('max')$$, '22003', NULL, 'incr past the largest int64: 22003');
SELECT is(cache_get('max'), '9223372036854775807', 'the value is unchanged');
SELECT is(cache_incr('max', -1), 9223372036854775806::bigint, 'the largest int64 can be decremented');
SELECT cache_set('min', '-9223372036854775808');
SELECT throws_ok($$SELECT cache_decr('min')$$, '22003', NULL, 'decr past the smallest int64: 22003');
SELECT throws_ok($$SELECT cache_incr('min', -1)$$, '22003', NULL, 'incr by -1 past the smallest int64: 22003');
SELECT is(cache_get('min'), '-9223372036854775808', 'the value is unchanged');
SELECT is(cache_incr('min', 9223372036854775807), -1::bigint, 'the smallest plus the largest is -1');
SELECT throws_ok($$SELECT cache_decr('d', '-9223372036854775808'::bigint)$$, '22003', NULL, 'decr by the smallest int64 would overflow: 22003');
SELECT throws_ok($$SELECT cache_decr('d:new', '-9223372036854775808'::bigint)$$, '22003', NULL, 'even on a missing key');
SELECT is(cache_get('d') || coalesce(cache_get('d:new'), '/none'), '4/none', 'nothing changed');
SELECT is(cache_incr('low', '-9223372036854775808'::bigint), '-9223372036854775808'::bigint, 'incr of a missing key by the smallest int64');

-- Values that are not 64-bit integers in Redis's strict form: 22P02, unchanged
SELECT cache_mset(ARRAY['i1', 'i2', 'i3', 'i4', 'i5', 'i6', 'i7', 'i8', 'i9', 'i10', 'i11', 'i12', 'i13', 'i14'],
                  ARRAY['+1', ' 1', '1 ', '01', '-0', '1.0', '1e3', '', 'abc', '9223372036854775808',
                        '-9223372036854775809', '0x10', '٣', '12345678901234567890123']);
SELECT throws_ok($$SELECT cache_incr('i1')$$, '22P02', NULL, 'incr of "+1": 22P02');
SELECT throws_ok($$SELECT cache_incr('i2')$$, '22P02', NULL, 'incr of " 1": 22P02');
SELECT throws_ok($$SELECT cache_incr('i3')$$, '22P02', NULL, 'incr of "1 ": 22P02');
SELECT throws_ok($$SELECT cache_incr('i4')$$, '22P02', NULL, 'incr of "01": 22P02');
SELECT throws_ok($$SELECT cache_incr('i5')$$, '22P02', NULL, 'incr of "-0": 22P02');
SELECT throws_ok($$SELECT cache_incr('i6')$$, '22P02', NULL, 'incr of "1.0": 22P02');
SELECT throws_ok($$SELECT cache_incr('i7')$$, '22P02', NULL, 'incr of "1e3": 22P02');
SELECT throws_ok($$SELECT cache_incr('i8')$$, '22P02', NULL, 'incr of "": 22P02');
SELECT throws_ok($$SELECT cache_incr('i9')$$, '22P02', NULL, 'incr of "abc": 22P02');
SELECT throws_ok($$SELECT cache_incr('i10')$$, '22P02', NULL, 'incr of the largest int64 + 1: 22P02');
SELECT throws_ok($$SELECT cache_decr('i11')$$, '22P02', NULL, 'decr of the smallest int64 - 1: 22P02');
SELECT throws_ok($$SELECT cache_incr('i12')$$, '22P02', NULL, 'incr of "0x10": 22P02');
SELECT throws_ok($$SELECT cache_incr('i13')$$, '22P02', NULL, 'incr of a non-ASCII digit: 22P02');
SELECT throws_ok($$SELECT cache_incr('i14')$$, '22P02', NULL, 'incr of a 23-digit number: 22P02');
SELECT cache_set('i15', '\x3100'::bytea);
SELECT throws_ok($$SELECT cache_incr('i15')$$, '22P02', NULL, 'incr of "1" followed by a NUL byte: 22P02');
SELECT cache_set('i16', '\xff'::bytea);
SELECT throws_ok($$SELECT cache_incr('i16')$$, '22P02', NULL, 'incr of bytes that are not text: 22P02');
SELECT is((SELECT string_agg(value, ',' ORDER BY key)
             FROM cache_mget(ARRAY['i1', 'i2', 'i3', 'i4', 'i5', 'i6', 'i7', 'i8', 'i9']) AS m),
          '+1, 1,1 ,01,-0,1.0,1e3,,abc', 'no refused incr changed a value');
SELECT is(cache_get_bytes('i15'), '\x3100'::bytea, 'nor the value with a NUL byte');

-- Argument errors
SELECT throws_ok($$SELECT cache_incr(NULL)$$, '22004', NULL, 'incr with a NULL key: 22004');
SELECT throws_ok($$SELECT cache_incr('c', NULL)$$, '22004', NULL, 'incr by NULL: 22004');
SELECT throws_ok($$SELECT cache_incr('c:ttl', 1, 0)$$, '22023', NULL, 'incr with ttl 0: 22023');
SELECT throws_ok($$SELECT cache_incr('c:ttl', 1, -5)$$, '22023', NULL, 'incr with a negative ttl: 22023');
SELECT throws_ok($$SELECT cache_decr(NULL)$$, '22004', NULL, 'decr with a NULL key: 22004');
SELECT throws_ok($$SELECT cache_decr('c', NULL)$$, '22004', NULL, 'decr by NULL: 22004');
SELECT is(cache_get('c') || coalesce(cache_get('c:ttl'), '/none'), '-8/none', 'failed calls changed nothing');

-- INCRBYFLOAT
SELECT is(cache_incrbyfloat('f', 10.5), 10.5::double precision, 'incrbyfloat of a missing key starts at 0');
SELECT is(cache_incrbyfloat('f', 0.1), 10.6::double precision, 'incrbyfloat adds');
SELECT is(cache_get('f'), '10.6', 'and stores the value as Redis prints it');
SELECT cache_set('f2', '5.0e3');
SELECT is(cache_incrbyfloat('f2', 2.0e2) || ' ' || cache_get('f2'), '5200 5200', 'exponents are read; integers print without a point');
SELECT cache_set('f3', '3');
SELECT is(cache_incrbyfloat('f3', -3.5) || ' ' || cache_get('f3'), '-0.5 -0.5', 'a negative result');
SELECT is(cache_incrbyfloat('f3', 0.5) || ' ' || cache_get('f3'), '0 0', 'zero prints as 0 (no sign, no point)');
SELECT is(cache_incr('f3', 7), 7::bigint, 'an integral float result is an integer for incr');
SELECT cache_set('f4', '1', 100);
SELECT is(cache_incrbyfloat('f4', 1.25) || ' ' || cache_get('f4'), '2.25 2.25', 'incrbyfloat of a value with an expiry');
SELECT ok(cache_ttl('f4') BETWEEN 98 AND 100, 'keeps the expiry');
SELECT cache_mset(ARRAY['g1', 'g2', 'g3', 'g4'], ARRAY['.5', '5.', '0x10', '-0x1p3']);
SELECT is(cache_incrbyfloat('g1', 1) || ' ' || cache_incrbyfloat('g2', 1) || ' ' || cache_incrbyfloat('g3', 1) || ' ' || cache_incrbyfloat('g4', 1),
          '1.5 6 17 -7', 'strtold forms: ".5", "5.", hex "0x10" and "-0x1p3"');
SELECT cache_mset(ARRAY['h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'h7', 'h8', 'h9'],
                  ARRAY[' 1', '1 ', 'abc', '', 'nan', '1e', '0x', '1,5', '1e5000']);
SELECT throws_ok($$SELECT cache_incrbyfloat('h1', 1)$$, '22P02', NULL, 'incrbyfloat of " 1" (leading space): 22P02');
SELECT throws_ok($$SELECT cache_incrbyfloat('h2', 1)$$, '22P02', NULL, 'incrbyfloat of "1 " (trailing space): 22P02');
SELECT throws_ok($$SELECT cache_incrbyfloat('h3', 1)$$, '22P02', NULL, 'incrbyfloat of "abc": 22P02');
SELECT throws_ok($$SELECT cache_incrbyfloat('h4', 1)$$, '22P02', NULL, 'incrbyfloat of "": 22P02');
SELECT throws_ok($$SELECT cache_incrbyfloat('h5', 1)$$, '22P02', NULL, 'incrbyfloat of "nan": 22P02');
SELECT throws_ok($$SELECT cache_incrbyfloat('h6', 1)$$, '22P02', NULL, 'incrbyfloat of "1e": 22P02');
SELECT throws_ok($$SELECT cache_incrbyfloat('h7', 1)$$, '22P02', NULL, 'incrbyfloat of "0x": 22P02');
SELECT throws_ok($$SELECT cache_incrbyfloat('h8', 1)$$, '22P02', NULL, 'incrbyfloat of "1,5": 22P02');
SELECT throws_ok($$SELECT cache_incrbyfloat('h9', 1)$$, '22P02', NULL, 'incrbyfloat of "1e5000" (beyond long double): 22P02');
SELECT cache_set('inf', 'inf');
SELECT throws_ok($$SELECT cache_incrbyfloat('inf', 1)$$, '22003', NULL, '"inf" parses, but an infinite result: 22003');
SELECT throws_ok($$SELECT cache_incrbyfloat('f', 'NaN')$$, '22003', NULL, 'incrbyfloat by NaN: 22003');
SELECT throws_ok($$SELECT cache_incrbyfloat('f', 'Infinity')$$, '22003', NULL, 'incrbyfloat by Infinity: 22003');
SELECT throws_ok($$SELECT cache_incrbyfloat('f:new', '-Infinity')$$, '22003', NULL, 'even on a missing key');
SELECT throws_ok($$SELECT cache_incrbyfloat(NULL, 1)$$, '22004', NULL, 'incrbyfloat with a NULL key: 22004');
SELECT throws_ok($$SELECT cache_incrbyfloat('f', NULL)$$, '22004', NULL, 'incrbyfloat by NULL: 22004');
SELECT is(cache_get('f') || ' ' || cache_get('h1') || ' ' || cache_get('inf') || coalesce(cache_get('f:new'), ' /none'),
          '10.6  1 inf /none', 'failed incrbyfloat calls changed nothing');

-- APPEND / STRLEN
SELECT is(cache_append('a', 'Hello'), 5::bigint, 'append to a missing key creates it');
SELECT is(cache_ttl('a'), -1, 'with no expiry');
SELECT is(cache_append('a', ' World'), 11::bigint, 'append returns the new length');
SELECT is(cache_get('a'), 'Hello World', 'append appends');
SELECT is(cache_strlen('a'), 11, 'strlen');
SELECT is(cache_strlen('missing'), 0, 'strlen of a missing key is 0');
SELECT is(cache_strlen(NULL), NULL, 'strlen(NULL) is NULL');
SELECT is(cache_append('u', 'é') || ' ' || cache_strlen('u'), '2 2', 'lengths are in bytes');
SELECT cache_set('at', 'x', 100);
SELECT is(cache_append('at', 'y'), 2::bigint, 'append to a value with an expiry');
SELECT ok(cache_ttl('at') BETWEEN 98 AND 100, 'keeps the expiry');
SELECT cache_set('ab', '\x00ff'::bytea);
SELECT is(cache_append('ab', 'A') || ' ' || cache_type('ab'), '3 bytes', 'append to bytes keeps bytes');
SELECT is(cache_get_bytes('ab'), '\x00ff41'::bytea, 'and appends the text''s bytes');
SELECT cache_set('aj', '{"a": 1}'::jsonb);
SELECT is(cache_append('aj', 'x') || ' ' || cache_type('aj') || ' ' || cache_get('aj'), '9 text {"a": 1}x', 'append to JSON gives text');
SELECT is(cache_append('e', '') || ' ' || cache_exists('e'), '0 true', 'appending "" to a missing key creates an empty value');
SELECT throws_ok($$SELECT cache_append(NULL, 'x')$$, '22004', NULL, 'append with a NULL key: 22004');
SELECT throws_ok($$SELECT cache_append('a', NULL)$$, '22004', NULL, 'append of NULL: 22004');
SELECT is(cache_get('a'), 'Hello World', 'failed appends changed nothing');

SELECT * FROM finish();
ROLLBACK;
