-- The Redis command set (version 1.1). Part of fastpgcache--1.1.sql and of
-- the upgrade script fastpgcache--1.0--1.1.sql (the Makefile assembles both
-- from extension/*.sql).
--
-- Where Redis defines a behaviour these functions behave like Redis; an
-- expired entry counts as absent everywhere. Writes are not STRICT (a NULL
-- argument is an error, not a silent no-op); reads are STRICT (a NULL key
-- reads as NULL). README.md, "The SQL API", has the details.

-- SET key value [EX ttl] [NX | XX] [KEEPTTL]: true if written, false when
-- NX or XX prevented it.
CREATE FUNCTION @extschema@.cache_set(key text, value text, ttl integer DEFAULT NULL,
                                      nx boolean DEFAULT false, xx boolean DEFAULT false,
                                      keepttl boolean DEFAULT false)
RETURNS boolean
AS 'MODULE_PATHNAME', 'cache_set_text'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.cache_set(key text, value jsonb, ttl integer DEFAULT NULL,
                                      nx boolean DEFAULT false, xx boolean DEFAULT false,
                                      keepttl boolean DEFAULT false)
RETURNS boolean
AS 'MODULE_PATHNAME', 'cache_set_jsonb'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.cache_set(key text, value bytea, ttl integer DEFAULT NULL,
                                      nx boolean DEFAULT false, xx boolean DEFAULT false,
                                      keepttl boolean DEFAULT false)
RETURNS boolean
AS 'MODULE_PATHNAME', 'cache_set_bytea'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- SET key value GET: sets, returns the previous value (NULL if none).
CREATE FUNCTION @extschema@.cache_getset(key text, value text, ttl integer DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'cache_getset'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- INCRBY: atomic; a new key starts at 0 and gets `ttl` (only then).
CREATE FUNCTION @extschema@.cache_incr(key text, by bigint DEFAULT 1, ttl integer DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'cache_incr'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- DECRBY.
CREATE FUNCTION @extschema@.cache_decr(key text, by bigint DEFAULT 1)
RETURNS bigint
AS 'MODULE_PATHNAME', 'cache_decr'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- INCRBYFLOAT.
CREATE FUNCTION @extschema@.cache_incrbyfloat(key text, by double precision)
RETURNS double precision
AS 'MODULE_PATHNAME', 'cache_incrbyfloat'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- APPEND: the new length in bytes.
CREATE FUNCTION @extschema@.cache_append(key text, value text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'cache_append'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- STRLEN: the value's length in bytes, 0 when absent.
CREATE FUNCTION @extschema@.cache_strlen(key text)
RETURNS integer
AS 'MODULE_PATHNAME', 'cache_strlen'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

-- EXPIRE / PEXPIRE / EXPIREAT: true if the key is live and the expiry was
-- set; a time not in the future deletes the key.
CREATE FUNCTION @extschema@.cache_expire(key text, ttl integer)
RETURNS boolean
AS 'MODULE_PATHNAME', 'cache_expire'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.cache_pexpire(key text, ttl_ms bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'cache_pexpire'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION @extschema@.cache_expireat(key text, at timestamptz)
RETURNS boolean
AS 'MODULE_PATHNAME', 'cache_expireat'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- PERSIST: true if an expiry was removed.
CREATE FUNCTION @extschema@.cache_persist(key text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'cache_persist'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- PTTL: milliseconds left (rounded up); -1 no expiry; -2 absent.
CREATE FUNCTION @extschema@.cache_pttl(key text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'cache_pttl'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

-- GETDEL: the value, and the key is gone.
CREATE FUNCTION @extschema@.cache_getdel(key text)
RETURNS text
AS 'MODULE_PATHNAME', 'cache_getdel'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- GETEX [EX ttl | PERSIST]: the value; the expiry changed as asked.
CREATE FUNCTION @extschema@.cache_getex(key text, ttl integer DEFAULT NULL, persist boolean DEFAULT false)
RETURNS text
AS 'MODULE_PATHNAME', 'cache_getex'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- DEL k1 k2 ...: how many live keys were deleted.
CREATE FUNCTION @extschema@.cache_delete(keys text[])
RETURNS integer
AS 'MODULE_PATHNAME', 'cache_delete_many'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- EXISTS k1 k2 ...: how many are live (a key listed twice counts twice).
CREATE FUNCTION @extschema@.cache_exists(keys text[])
RETURNS integer
AS 'MODULE_PATHNAME', 'cache_exists_many'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

-- TYPE: 'text', 'json' or 'bytes' (how the value was stored); NULL if absent.
CREATE FUNCTION @extschema@.cache_type(key text)
RETURNS text
AS 'MODULE_PATHNAME', 'cache_type'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;

-- KEYS pattern: every live key matching a Redis glob pattern.
CREATE FUNCTION @extschema@.cache_keys(pattern text DEFAULT '*')
RETURNS SETOF text
AS 'MODULE_PATHNAME', 'cache_keys'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED ROWS 100;

-- SCAN cursor [MATCH pattern] [COUNT count]: start at 0, stop when
-- next_cursor is 0; every key that exists for the whole iteration is
-- returned at least once.
CREATE FUNCTION @extschema@.cache_scan(cursor bigint DEFAULT 0, pattern text DEFAULT '*', count integer DEFAULT 100)
RETURNS TABLE(next_cursor bigint, keys text[])
AS 'MODULE_PATHNAME', 'cache_scan'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED ROWS 1;

-- FLUSHDB, transactional: the number of live entries removed.
CREATE FUNCTION @extschema@.cache_flush()
RETURNS bigint
AS 'MODULE_PATHNAME', 'cache_flush'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- DBSIZE, exact: the number of live entries.
CREATE FUNCTION @extschema@.cache_dbsize()
RETURNS bigint
AS 'MODULE_PATHNAME', 'cache_dbsize'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

-- MSETNX: sets every pair only if none of the keys is live.
CREATE FUNCTION @extschema@.cache_msetnx(keys text[], "values" text[], ttl integer DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'cache_msetnx'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
