-- Expiry follows the wall clock: ttl=1, wait, gone. Uses only the public API.
-- A key is read back "at once" in the same statement that sets it, so a slow
-- machine cannot make those checks flaky.
BEGIN;
SELECT plan(16);

SELECT is((SELECT cache_set('short', 'soon gone', 1) AND cache_get('short') = 'soon gone'), true,
          'ttl=1: readable at once');
SELECT is((SELECT cache_set('short', 'soon gone', 1) AND cache_ttl('short') = 1), true, 'ttl=1: cache_ttl says 1');
SELECT is((SELECT cache_set('short', 'soon gone', 1) AND cache_exists('short')), true, 'ttl=1: exists at once');
SELECT cache_set('long', 'stays', 3600);
SELECT cache_set('permanent', 'stays');
SELECT cache_set('short_json', '{"a": 1}'::jsonb, 1);
SELECT cache_set('short_bytes', '\x01'::bytea, 1);
SELECT cache_set('to_delete', 'x', 1);

SELECT pg_sleep(1.2);

SELECT is(cache_get('short'), NULL, 'ttl=1: gone after 1.2 s (even inside one transaction)');
SELECT is(cache_exists('short'), false, 'ttl=1: cache_exists false after expiry');
SELECT is(cache_ttl('short'), -2, 'ttl=1: cache_ttl -2 after expiry');
SELECT is(cache_get_json('short_json'), NULL, 'cache_get_json does not return an expired value');
SELECT is(cache_get_bytes('short_bytes'), NULL, 'cache_get_bytes does not return an expired value');
SELECT is(cache_delete('to_delete'), false, 'deleting an expired key reports false');
SELECT is(cache_get('long'), 'stays', 'a long ttl is untouched');
SELECT cmp_ok(cache_ttl('long'), '>=', 3598, 'a long ttl counts down from 3600');
SELECT is(cache_get('permanent'), 'stays', 'a key without ttl is untouched');

SELECT is(cache_cleanup(), 3, 'cache_cleanup removes the 3 expired entries left');
SELECT is(cache_cleanup(), 0, 'a second cache_cleanup finds nothing');
SELECT is(cache_get('long'), 'stays', 'cache_cleanup keeps live entries');

SELECT cache_set('short', 'again');
SELECT is(cache_get('short'), 'again', 'an expired key can be set again');

SELECT * FROM finish();
ROLLBACK;
