-- Kept plans follow the extension through DROP / CREATE EXTENSION, another
-- schema and a schema rename, in one session.
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

-- The schema is renamed, and a new schema takes the old name with an
-- impostor table: the plans follow the extension's schema, not its old name.
ALTER SCHEMA regress_other RENAME TO regress_renamed;
CREATE SCHEMA regress_other;
CREATE TABLE regress_other.cache_entries (LIKE regress_renamed.cache_entries INCLUDING ALL);
SELECT regress_renamed.cache_set('p', 'four'), regress_renamed.cache_get('p');
SELECT regress_renamed.cache_set('q', 'new'), regress_renamed.cache_delete('q'), regress_renamed.cache_exists('q');
SELECT key, convert_from(value, 'UTF8') AS value FROM regress_renamed.cache_entries ORDER BY key;
SELECT count(*) AS rows_in_impostor FROM regress_other.cache_entries;
DROP SCHEMA regress_other CASCADE;

DROP EXTENSION fastpgcache;
DROP SCHEMA regress_renamed;
CREATE EXTENSION fastpgcache;
SELECT cache_set('p', 'five'), cache_get('p');
SELECT count(*) FROM cache_entries;
