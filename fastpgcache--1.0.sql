-- FastPgCache 1.0: a Redis-style key/value cache with TTL.

\echo Use "CREATE EXTENSION fastpgcache" to load this file. \quit

-- The cache. UNLOGGED: no WAL, so writes are cheap, and the contents are
-- emptied after a crash (it is a cache). See README.md, "Why the table looks
-- like this", for the measurements behind this shape:
--  * key_hash (first 16 bytes of SHA-256 of the key) is the only indexed
--    column: keys of any length fit the btree, lookups compare 16 bytes, and
--    no column that a set changes is indexed, so overwrites are HOT updates.
--  * no index on expires_at: it would make every overwrite a non-HOT update;
--    expired rows are found by scanning (cache_cleanup, the background worker).
--  * fillfactor 90 leaves room on each page for HOT updates.
CREATE UNLOGGED TABLE @extschema@.cache_entries (
    key_hash   uuid             NOT NULL,
    expires_at timestamptz,
    kind       "char"           NOT NULL,
    key        text COLLATE "C" NOT NULL,
    value      bytea            NOT NULL,
    CONSTRAINT cache_entries_pkey PRIMARY KEY (key_hash),
    CONSTRAINT cache_entries_kind_check CHECK (kind IN ('t', 'j', 'b'))
) WITH (fillfactor = 90);

COMMENT ON TABLE @extschema@.cache_entries IS
    'FastPgCache entries. Use the cache_* functions to read and write it.';
COMMENT ON COLUMN @extschema@.cache_entries.key_hash IS
    'First 16 bytes of SHA-256 of key: the primary key, so that keys of any length can be indexed';
COMMENT ON COLUMN @extschema@.cache_entries.kind IS
    'How the value was stored: t = text, j = jsonb (as its text form), b = bytea';
COMMENT ON COLUMN @extschema@.cache_entries.expires_at IS
    'NULL for no expiry';

-- Nobody but the owner touches the table directly; see README.md,
-- "Privileges", for the grants that let an application role use the cache.
REVOKE ALL ON TABLE @extschema@.cache_entries FROM PUBLIC;

-- Writes. Not STRICT: a NULL key or value is an error, not a silent no-op.
CREATE FUNCTION @extschema@.cache_set(key text, value text, ttl integer DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'cache_set_text'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.cache_set(key text, value jsonb, ttl integer DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'cache_set_jsonb'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.cache_set(key text, value bytea, ttl integer DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'cache_set_bytea'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.cache_delete(key text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'cache_delete'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.cache_cleanup()
RETURNS integer
AS 'MODULE_PATHNAME', 'cache_cleanup'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Reads. VOLATILE because expiry follows the wall clock, STRICT: a NULL key
-- reads as NULL.
CREATE FUNCTION @extschema@.cache_get(key text)
RETURNS text
AS 'MODULE_PATHNAME', 'cache_get'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

CREATE FUNCTION @extschema@.cache_get_json(key text)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'cache_get_json'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

CREATE FUNCTION @extschema@.cache_get_bytes(key text)
RETURNS bytea
AS 'MODULE_PATHNAME', 'cache_get_bytes'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

CREATE FUNCTION @extschema@.cache_exists(key text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'cache_exists'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

CREATE FUNCTION @extschema@.cache_ttl(key text)
RETURNS integer
AS 'MODULE_PATHNAME', 'cache_ttl'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

-- Exercises the C++/PostgreSQL error boundary; used by the regression tests.
CREATE FUNCTION @extschema@.fastpgcache_selftest(mode text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'fastpgcache_selftest'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION @extschema@.fastpgcache_selftest(text) FROM PUBLIC;
