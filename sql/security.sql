-- Privileges and search_path safety.
\set SHOW_CONTEXT never

-- The table is closed to PUBLIC.
SELECT has_table_privilege('public', 'cache_entries', 'SELECT') AS public_select,
       has_table_privilege('public', 'cache_entries', 'INSERT') AS public_insert,
       has_table_privilege('public', 'cache_entries', 'UPDATE') AS public_update,
       has_table_privilege('public', 'cache_entries', 'DELETE') AS public_delete;

CREATE ROLE regress_fpc_nobody;
CREATE ROLE regress_fpc_reader;
CREATE ROLE regress_fpc_app;
GRANT SELECT ON cache_entries TO regress_fpc_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON cache_entries TO regress_fpc_app;

SELECT cache_set('shared', 'secret');

-- A role without grants is refused, through the functions and directly.
SET ROLE regress_fpc_nobody;
SELECT cache_get('shared');
SELECT cache_set('shared', 'overwritten');
SELECT cache_exists('shared');
SELECT * FROM cache_entries;
INSERT INTO cache_entries (key_hash, key, value, kind) VALUES (gen_random_uuid(), 'x', 'y', 't');
RESET ROLE;

-- A reader can read and cannot write.
SET ROLE regress_fpc_reader;
SELECT cache_get('shared'), cache_exists('shared'), cache_ttl('shared');
SELECT cache_set('shared', 'overwritten');
SELECT cache_delete('shared');
SELECT cache_cleanup();
RESET ROLE;

-- An application role with the documented grants can do everything.
SET ROLE regress_fpc_app;
SELECT cache_set('app', 'value', 60), cache_get('app'), cache_delete('app'), cache_cleanup() >= 0 AS cleanup_ran;
RESET ROLE;

-- Reads probe the index directly only with table-level SELECT; with column
-- privileges they go through SQL, which applies them.
CREATE ROLE regress_fpc_columns;
GRANT SELECT (key_hash, key, kind, expires_at) ON cache_entries TO regress_fpc_columns;
SET ROLE regress_fpc_columns;
SELECT cache_exists('shared') AS exists_with_column_grants, cache_ttl('shared') AS ttl;
SELECT cache_get('shared');
RESET ROLE;
GRANT SELECT (value) ON cache_entries TO regress_fpc_columns;
SET ROLE regress_fpc_columns;
SELECT cache_get('shared') AS get_with_column_grants;
RESET ROLE;
REVOKE ALL ON cache_entries FROM regress_fpc_columns;
DROP ROLE regress_fpc_columns;

-- Row level security is honoured: reads then go through SQL too.
SELECT cache_set('visible', 'yes'), cache_set('hidden', 'no');
ALTER TABLE cache_entries ENABLE ROW LEVEL SECURITY;
CREATE POLICY regress_only_visible ON cache_entries FOR SELECT TO regress_fpc_reader USING (key <> 'hidden');
SET ROLE regress_fpc_reader;
SELECT cache_get('visible') AS visible, cache_get('hidden') AS hidden, cache_exists('hidden') AS hidden_exists;
SELECT * FROM cache_mget(ARRAY['visible', 'hidden']);
RESET ROLE;
-- The owner is not subject to the policy.
SELECT cache_get('hidden') AS owner_sees;
DROP POLICY regress_only_visible ON cache_entries;
ALTER TABLE cache_entries DISABLE ROW LEVEL SECURITY;

-- Both read paths give the same answers.
SET fastpgcache.index_scan_reads = off;
SELECT cache_get('visible'), cache_get('nope') IS NULL AS miss, cache_exists('hidden'), cache_ttl('hidden');
SELECT * FROM cache_mget(ARRAY['visible', 'nope']);
RESET fastpgcache.index_scan_reads;

-- search_path cannot redirect the functions: a schema that shadows the
-- table, and an '=' operator that matches everything, are both ignored.
CREATE SCHEMA regress_evil;
CREATE TABLE regress_evil.cache_entries (LIKE cache_entries);
CREATE FUNCTION regress_evil.always_true(uuid, uuid) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR regress_evil.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = regress_evil.always_true);
CREATE FUNCTION regress_evil.always_true(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR regress_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_evil.always_true);
-- ... and a type that shadows bytea, whose CHECK runs code of the schema's
-- owner (the plans name every type with its schema; a plan that said
-- NULL::bytea would resolve to this one and run it).
CREATE FUNCTION regress_evil.hijacked(integer) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  RAISE NOTICE 'hijacked through search_path';
  RETURN true;
END $$;
CREATE DOMAIN regress_evil.bytea AS integer CHECK (regress_evil.hijacked(VALUE));
-- A new session prepares its plans under the hostile search_path.
\c
SET search_path = regress_evil, public, pg_catalog;
SELECT public.cache_set('safe', 'value');
SELECT public.cache_get('safe'), public.cache_get('no such key') IS NULL AS miss_is_miss;
SET fastpgcache.index_scan_reads = off;
SELECT public.cache_exists('safe'), public.cache_ttl('safe'), public.cache_get('safe');
RESET fastpgcache.index_scan_reads;
SELECT count(*) AS rows_in_shadow_table FROM regress_evil.cache_entries;
RESET search_path;

DROP SCHEMA regress_evil CASCADE;
REVOKE ALL ON cache_entries FROM regress_fpc_reader, regress_fpc_app;
DROP ROLE regress_fpc_nobody, regress_fpc_reader, regress_fpc_app;
