-- The cache API's semantics. Uses only the public functions, so the same file
-- tests the C++ extension and the pure-SQL fallback.
BEGIN;
SELECT plan(40);

-- set / get
SELECT is(cache_set('user:123', '{"name":"Alice"}', 3600), true, 'cache_set returns true');
SELECT is(cache_get('user:123'), '{"name":"Alice"}', 'cache_get returns the value');
SELECT is(cache_get('user:999'), NULL, 'cache_get of a missing key is NULL');
SELECT is(cache_set('user:123', 'v2'), true, 'cache_set overwrites');
SELECT is(cache_get('user:123'), 'v2', 'the overwrite is visible');

-- exists / ttl
SELECT is(cache_exists('user:123'), true, 'cache_exists: live key');
SELECT is(cache_exists('user:999'), false, 'cache_exists: missing key');
SELECT is(cache_ttl('user:123'), -1, 'a set without ttl clears the previous expiry (ttl -1)');
SELECT is(cache_ttl('user:999'), -2, 'cache_ttl of a missing key is -2');
SELECT is((SELECT cache_set('user:123', 'v3', 100) AND cache_ttl('user:123') = 100), true,
          'cache_ttl right after set with ttl 100 is 100 (rounded up)');
SELECT cache_set('user:123', 'v4');
SELECT is(cache_ttl('user:123'), -1, 'overwriting without ttl makes the key permanent again');

-- delete
SELECT is(cache_delete('user:123'), true, 'cache_delete of a live key is true');
SELECT is(cache_delete('user:123'), false, 'cache_delete of a deleted key is false');
SELECT is(cache_exists('user:123'), false, 'a deleted key does not exist');
SELECT is(cache_get('user:123'), NULL, 'a deleted key reads as NULL');

-- values
SELECT cache_set('empty', '');
SELECT is(cache_get('empty'), '', 'an empty string round-trips as an empty string, not NULL');
SELECT cache_set('', 'empty key');
SELECT is(cache_get(''), 'empty key', 'the empty key is a key');
SELECT cache_set('ключ:日本語:🐘', 'значение ✓ 値 🚀');
SELECT is(cache_get('ключ:日本語:🐘'), 'значение ✓ 値 🚀', 'unicode keys and values round-trip');
SELECT cache_set('spaces ', 'a');
SELECT is(cache_get('spaces'), NULL, 'keys are compared exactly (trailing space matters)');
SELECT cache_set('Case', 'upper');
SELECT is(cache_get('case'), NULL, 'keys are case sensitive');
SELECT is(cache_set('untyped', 'literal'), true, 'cache_set with untyped literals resolves without ambiguity');
SELECT throws_ok($$SELECT cache_get_json('untyped')$$, '22P02', NULL,
                 'untyped literals chose the text overload (the value is not JSON)');

-- JSON
SELECT cache_set('doc', '{"name": "Alice", "tags": ["a", "b"]}'::jsonb, 60);
SELECT is(cache_get_json('doc'), '{"name": "Alice", "tags": ["a", "b"]}'::jsonb, 'jsonb round-trips');
SELECT is(cache_get_json('doc') -> 'tags' ->> 1, 'b', 'the JSON value can be queried');
SELECT is(cache_get('doc')::jsonb, '{"name": "Alice", "tags": ["a", "b"]}'::jsonb, 'cache_get returns JSON as its text');
SELECT cache_set('jnull', 'null'::jsonb);
SELECT is(cache_get_json('jnull'), 'null'::jsonb, 'a stored JSON null comes back as JSON null');
SELECT isnt(cache_get_json('jnull'), NULL, 'a stored JSON null is not a miss');
SELECT is(cache_get_json('missing'), NULL, 'cache_get_json of a missing key is SQL NULL');
SELECT cache_set('jstr', '"123"'::jsonb);
SELECT is(jsonb_typeof(cache_get_json('jstr')), 'string', 'a JSON string "123" stays a string');
SELECT cache_set('txtnum', '123');
SELECT is(cache_get('txtnum'), '123', 'a text value "123" stays the text "123"');
SELECT is(cache_get_json('txtnum'), '123'::jsonb, 'a text value that is JSON parses as JSON');

-- bytea
SELECT cache_set('bin', '\x00ff00fe0a0d00'::bytea);
SELECT is(cache_get_bytes('bin'), '\x00ff00fe0a0d00'::bytea, 'bytea round-trips, NUL bytes included');
SELECT cache_set('allbytes', (SELECT string_agg(set_byte('\x00'::bytea, 0, b), ''::bytea ORDER BY b) FROM generate_series(0, 255) b));
SELECT is(cache_get_bytes('allbytes'),
          (SELECT string_agg(set_byte('\x00'::bytea, 0, b), ''::bytea ORDER BY b) FROM generate_series(0, 255) b),
          'all 256 byte values round-trip');
SELECT cache_set('utf', 'é');
SELECT is(cache_get_bytes('utf'), '\xc3a9'::bytea, 'a text value read as bytes gives its encoded bytes');
SELECT cache_set('bintext', convert_to('héllo', 'UTF8'));
SELECT is(cache_get('bintext'), 'héllo', 'bytes that are valid text read as text');
SELECT throws_ok($$SELECT cache_get('bin')$$, '22021', NULL, 'bytes that are not valid text: cache_get refuses');

-- NULL reads
SELECT is(cache_get(NULL), NULL, 'cache_get(NULL) is NULL');
SELECT is(cache_exists(NULL), NULL, 'cache_exists(NULL) is NULL');
SELECT is(cache_ttl(NULL), NULL, 'cache_ttl(NULL) is NULL');
SELECT is(cache_get_bytes(NULL), NULL, 'cache_get_bytes(NULL) is NULL');

SELECT * FROM finish();
ROLLBACK;
