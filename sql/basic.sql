-- The cache API: set, get, exists, ttl, delete, cleanup.
CREATE EXTENSION fastpgcache;

SELECT cache_set('user:123', '{"name":"Alice"}', 3600);
SELECT cache_get('user:123');
SELECT cache_exists('user:123') AS live, cache_exists('user:999') AS missing;
SELECT cache_ttl('user:123') BETWEEN 3599 AND 3600 AS ttl_about_an_hour;

-- A set without ttl clears the previous expiry (Redis SET semantics).
SELECT cache_set('user:123', 'v2');
SELECT cache_get('user:123'), cache_ttl('user:123');

-- A set with ttl gives an expiry again.
-- (Read in the same statement, so that a slow machine cannot let a second pass.)
SELECT cache_set('user:123', 'v3', 10) AS set, cache_ttl('user:123') AS ttl_rounded_up;

-- Missing keys.
SELECT cache_get('user:999') IS NULL AS get_null, cache_ttl('user:999') AS ttl;

-- Delete: true only when a live entry was deleted.
SELECT cache_delete('user:123') AS first, cache_delete('user:123') AS second;
SELECT cache_exists('user:123');

-- Empty strings are values, not NULL.
SELECT cache_set('empty', '');
SELECT cache_get('empty') = '' AS empty_string_round_trips, cache_get('empty') IS NULL AS is_null;
SELECT cache_set('', 'empty key');
SELECT cache_get('');

-- Unicode keys and values.
SELECT cache_set('ключ:日本語:🐘', 'значение ✓ 値 🚀');
SELECT cache_get('ключ:日本語:🐘');

-- Untyped literals resolve to the text overload without ambiguity.
SELECT cache_set('untyped', 'plain');
SELECT kind FROM cache_entries WHERE key = 'untyped';

-- Reads of a NULL key are NULL.
SELECT cache_get(NULL) IS NULL AS get, cache_exists(NULL) IS NULL AS exists,
       cache_ttl(NULL) IS NULL AS ttl, cache_get_json(NULL) IS NULL AS json,
       cache_get_bytes(NULL) IS NULL AS bytes;

-- An expired entry is never returned, whether or not it was cleaned up.
-- (Ageing the row by hand keeps this test independent of the clock.)
SELECT cache_set('old', 'stale', 60), cache_set('old2', 'stale', 60), cache_set('fresh', 'new', 60);
UPDATE cache_entries SET expires_at = now() - interval '1 second' WHERE key IN ('old', 'old2');
SELECT cache_get('old') IS NULL AS get, cache_exists('old') AS exists, cache_ttl('old') AS ttl,
       cache_get_json('old') IS NULL AS json, cache_get_bytes('old') IS NULL AS bytes;
-- Deleting an expired entry removes the row but reports false.
SELECT cache_delete('old');
SELECT count(*) FROM cache_entries WHERE key = 'old';
-- A set over an expired entry replaces it.
SELECT cache_set('old', 'reborn');
SELECT cache_get('old'), cache_ttl('old');

-- cache_cleanup deletes only expired entries and says how many.
SELECT cache_cleanup();
SELECT cache_cleanup();
SELECT key FROM cache_entries ORDER BY key;
