-- Kept plans follow the extension through DROP / CREATE EXTENSION and a
-- change of schema, in one session.
SELECT cache_set('p', 'one');
SELECT cache_get('p');

DROP EXTENSION fastpgcache;
CREATE EXTENSION fastpgcache;
SELECT cache_get('p') IS NULL AS new_table_is_empty;
SELECT cache_set('p', 'two'), cache_get('p');

-- Installed in another schema: its functions use its own table.
DROP EXTENSION fastpgcache;
CREATE SCHEMA regress_other;
CREATE EXTENSION fastpgcache SCHEMA regress_other;
SELECT regress_other.cache_set('p', 'three'), regress_other.cache_get('p');
SELECT key, convert_from(value, 'UTF8') AS value FROM regress_other.cache_entries;
SELECT to_regclass('public.cache_entries') AS public_table;

DROP EXTENSION fastpgcache;
DROP SCHEMA regress_other;
CREATE EXTENSION fastpgcache;
SELECT cache_set('p', 'four'), cache_get('p');
SELECT count(*) FROM cache_entries;
