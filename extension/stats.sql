-- cache_stats(): in its own file because 1.1 adds columns, so the update
-- from 1.0 drops it and creates it again from here.

-- Counters since server start or cache_stats_reset(). The counters need
-- shared_preload_libraries = 'fastpgcache': without it shared_memory is false
-- and every counter is NULL. hits/misses count cache_get, cache_get_json and
-- cache_get_bytes (not cache_exists/cache_ttl); deletes counts cache_delete
-- calls that removed a live entry. entries_estimate is n_live_tup from the
-- cumulative statistics: an estimate that includes expired rows not yet
-- removed. table_bytes is pg_table_size, index_bytes pg_indexes_size.
-- evicted counts live entries deleted to keep the cache within
-- fastpgcache.max_entries / max_size, expired_by_eviction the expired ones the
-- writers deleted while helping to evict (the worker counts those it deletes
-- in expired_by_worker). entries and data_bytes are what the limits
-- compare with, for this database: NULL until the worker has counted them
-- (data_bytes: key and value bytes plus 80 per entry, see README.md).
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
    OUT stats_reset timestamptz,
    OUT evicted bigint,
    OUT expired_by_eviction bigint,
    OUT entries bigint,
    OUT data_bytes bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'cache_stats'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

