-- The cache. UNLOGGED: no WAL, so writes are cheap, and the contents are
-- emptied after a crash (it is a cache). See README.md, "Why the table looks
-- like this", for the measurements behind this shape:
--  * key_hash (first 16 bytes of SHA-256 of the key) is the only indexed
--    column: keys of any length fit the btree, lookups compare 16 bytes, and
--    no column that a set changes is indexed, so overwrites are HOT updates.
--  * no index on expires_at: it would make every overwrite a non-HOT update;
--    expired rows are found by scanning (cache_cleanup, the background worker).
--  * fillfactor 90 leaves room on each page for HOT updates.
--  * the functions overwrite an existing row directly (heap update of the
--    row found through the index) when the table has no triggers, no row
--    level security, no other index and no CHECK constraint; otherwise SQL.
CREATE UNLOGGED TABLE @extschema@.cache_entries (
    key_hash   uuid             NOT NULL,
    expires_at timestamptz,
    kind       "char"           NOT NULL,
    key        text COLLATE "C" NOT NULL,
    value      bytea            NOT NULL,
    CONSTRAINT cache_entries_pkey PRIMARY KEY (key_hash)
) WITH (fillfactor = 90);
-- No CHECK constraint on kind: the functions only write 't', 'j' or 'b', and
-- a CHECK is re-read and planned at every executor start, about a quarter of
-- the instructions of a set (callgrind, bench/run.sh --profile). A kind
-- written by hand that is not 'b' reads as text.

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

-- Batches: many keys in one call (one round trip).
-- One row per element of keys, in order; value NULL for a miss.
CREATE FUNCTION @extschema@.cache_mget(keys text[])
RETURNS TABLE(key text, value text)
AS 'MODULE_PATHNAME', 'cache_mget'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED ROWS 10;

-- Sets keys[i] to values[i] for every i, in one statement. Returns the number
-- of pairs; a key given twice keeps its last value.
CREATE FUNCTION @extschema@.cache_mset(keys text[], "values" text[], ttl integer DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'cache_mset'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Background expiry worker and statistics (src/worker.cpp, src/stats.cpp).

-- Counters since server start or cache_stats_reset(). The counters need
-- shared_preload_libraries = 'fastpgcache': without it shared_memory is false
-- and every counter is NULL. hits/misses count cache_get, cache_get_json and
-- cache_get_bytes (not cache_exists/cache_ttl); deletes counts cache_delete
-- calls that removed a live entry. entries_estimate is n_live_tup from the
-- cumulative statistics: an estimate that includes expired rows not yet
-- removed. table_bytes is pg_table_size, index_bytes pg_indexes_size.
CREATE FUNCTION @extschema@.cache_stats(
    OUT shared_memory boolean,
    OUT hits bigint,
    OUT misses bigint,
    OUT sets bigint,
    OUT deletes bigint,
    OUT expired_by_worker bigint,
    OUT removed_by_cleanup bigint,
    OUT worker_cycles bigint,
    OUT worker_passes bigint,
    OUT last_cycle_ms double precision,
    OUT last_cycle_rows bigint,
    OUT last_pass_ms double precision,
    OUT entries_estimate bigint,
    OUT table_bytes bigint,
    OUT index_bytes bigint,
    OUT stats_reset timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'cache_stats'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

-- Zeroes the counters (false, with a NOTICE, when there are none).
CREATE FUNCTION @extschema@.cache_stats_reset()
RETURNS boolean
AS 'MODULE_PATHNAME', 'cache_stats_reset'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Starts a background expiry worker for the current database; returns its
-- pid, or NULL with a NOTICE when one already runs there.
CREATE FUNCTION @extschema@.cache_start_worker()
RETURNS integer
AS 'MODULE_PATHNAME', 'cache_start_worker'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Stops the worker started by cache_start_worker() in the current database
-- (waits until it is gone); false with a NOTICE when there is none.
CREATE FUNCTION @extschema@.cache_stop_worker()
RETURNS boolean
AS 'MODULE_PATHNAME', 'cache_stop_worker'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Starting and stopping workers (which run as the bootstrap superuser) and
-- resetting the shared counters are for the extension owner (a superuser)
-- and roles it grants EXECUTE to. cache_stats() stays readable by everyone.
REVOKE ALL ON FUNCTION @extschema@.cache_stats_reset() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.cache_start_worker() FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.cache_stop_worker() FROM PUBLIC;
