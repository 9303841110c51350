-- FastPgCache router 1.1: the cache_* functions of fastpgcache 1.1 in a router
-- database; each call is sent by PL/Proxy to the shard (a server running the
-- fastpgcache extension) that holds the key. README.md, "Sharding with
-- PL/Proxy", describes the design; test/router/ tests it.
--
-- Routing. The partition of a key is the first k bits of SHA-256 of the key's
-- UTF-8 bytes, for 2^k partitions: the first k bits of the key_hash under
-- which its shard stores it. Partition p therefore holds one contiguous range
-- of key_hash, so SCAN walks the partitions in turn, in key_hash order, with
-- the shards' own cursors. PL/Proxy picks a partition with hash & (2^k - 1),
-- the LOW bits: the route handed to it is the first 16 bits of the hash with
-- their order reversed, and partition p's conninfo is stored in PL/Proxy's
-- slot reverse_k(p) (cache_router_set_shards does it).
--
-- Every public function has the extension's signature (names, argument names,
-- defaults, result, STRICT) and, like the extension's C functions, COST 1, so
-- the planner orders them in a query as it orders the extension's. Each one
-- computes the route itself and hands it to an internal PL/Proxy function as
-- an argument (RUN ON route): a RUN ON hash_function(key) would cost PL/Proxy
-- an SPI query per call, about a third of a call's time on the router.

\echo Use "CREATE EXTENSION fastpgcache_router CASCADE" to load this file. \quit

CREATE SCHEMA fastpgcache_router;
COMMENT ON SCHEMA fastpgcache_router IS
    'FastPgCache router internals: PL/Proxy functions and routing helpers. Call the cache_* functions instead.';
GRANT USAGE ON SCHEMA fastpgcache_router TO PUBLIC;

-- ---------------------------------------------------------------- routing

-- The bits of a byte in reverse order (0x01 -> 0x80).
CREATE FUNCTION fastpgcache_router.rev8(b integer) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN ((b::bigint * 8623620610) & 1136090292240) % 1023;

-- The first 16 bits of SHA-256 of the key's UTF-8 bytes, as 0..65535: its
-- partition among 2^k is this >> (16 - k).
CREATE FUNCTION fastpgcache_router.key_top16(key text) RETURNS integer
LANGUAGE sql STABLE STRICT PARALLEL SAFE
RETURN (('x' || pg_catalog.encode(pg_catalog.substring(pg_catalog.sha256(pg_catalog.convert_to(key, 'UTF8')), 1, 2),
                                  'hex'))::bit(16))::integer;

-- What PL/Proxy is given for a key: key_top16 with its 16 bits reversed, so
-- that its low k bits (PL/Proxy's mask) are the key's first k bits, reversed.
CREATE FUNCTION fastpgcache_router.key_route(key text) RETURNS integer
LANGUAGE sql STABLE STRICT PARALLEL SAFE
RETURN pg_catalog.reverse(((('x' || pg_catalog.encode(pg_catalog.substring(pg_catalog.sha256(
           pg_catalog.convert_to(key, 'UTF8')), 1, 2), 'hex'))::bit(16))::text))::bit(16)::integer;

-- PL/Proxy's slot of partition p among 2^bits (and the partition of a slot:
-- reversing is its own inverse).
CREATE FUNCTION fastpgcache_router.slot(p integer, bits integer) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN CASE WHEN bits = 0 THEN 0
            ELSE ((fastpgcache_router.rev8(p >> 8) | (fastpgcache_router.rev8(p & 255) << 8)) >> (16 - bits)) END;

-- transaction_read_only of the caller's transaction: write calls pass it to
-- the shard, which then refuses the write (25006) after checking its
-- arguments, as the extension does.
CREATE FUNCTION fastpgcache_router.read_only() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
RETURN pg_catalog.current_setting('transaction_read_only')::boolean;

-- The number of partitions, from the foreign server "fastpgcache".
CREATE FUNCTION fastpgcache_router.partition_count() RETURNS integer
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    n integer;
BEGIN
    SELECT count(*) INTO n
      FROM pg_foreign_server s, unnest(s.srvoptions) o
     WHERE s.srvname = 'fastpgcache' AND o ~ '^(p|partition_)[0-9]+=';
    IF n = 0 THEN
        RAISE EXCEPTION 'fastpgcache_router: no shards are defined'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'SELECT cache_router_set_shards(ARRAY[''host=... port=... dbname=...'', ...]);';
    END IF;
    RETURN n;
END
$fn$;

-- log2 of a power of two.
CREATE FUNCTION fastpgcache_router.log2(n integer) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (SELECT b FROM pg_catalog.generate_series(0, 30) b WHERE (1 << b) = n);

-- The routes of an array of keys, for SPLIT (a NULL key goes to partition 0,
-- whose shard answers for it as the extension would). Checks the array as the
-- extension does: one dimension (22023), and no NULL key unless allowed
-- (22004), so that a bad batch fails before any shard has written anything.
CREATE FUNCTION fastpgcache_router.batch_routes(keys text[], nulls_allowed boolean) RETURNS integer[]
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF array_ndims(keys) > 1 THEN
        RAISE EXCEPTION 'keys must be a one-dimensional array' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT nulls_allowed AND array_position(keys, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'cache key must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    RETURN ARRAY(SELECT coalesce(fastpgcache_router.key_route(k), 0)
                   FROM unnest(keys) WITH ORDINALITY AS u(k, o) ORDER BY o);
END
$fn$;

-- 1..n, beside an array of n keys.
CREATE FUNCTION fastpgcache_router.ordinals(keys text[]) RETURNS integer[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN ARRAY(SELECT pg_catalog.generate_series(1, pg_catalog.cardinality(keys)));

-- The arguments (keys, values, ttl) of cache_mset and cache_msetnx, checked in
-- the extension's order with its SQLSTATEs, before any shard is called.
CREATE FUNCTION fastpgcache_router.check_pairs(keys text[], vals text[], ttl integer) RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF keys IS NULL THEN
        RAISE EXCEPTION 'cache keys must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF vals IS NULL THEN
        RAISE EXCEPTION 'cache values must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF ttl <= 0 THEN
        RAISE EXCEPTION 'invalid ttl %', ttl USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'ttl must be a positive number of seconds.', HINT = 'Pass NULL for an entry that does not expire.';
    END IF;
    IF array_ndims(keys) > 1 THEN
        RAISE EXCEPTION 'keys must be a one-dimensional array' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF array_ndims(vals) > 1 THEN
        RAISE EXCEPTION 'values must be a one-dimensional array' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF cardinality(keys) <> cardinality(vals) THEN
        RAISE EXCEPTION 'keys and values must have the same length (% keys, % values)', cardinality(keys), cardinality(vals)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT FROM unnest(keys, vals) AS u(k, v) WHERE k IS NULL OR v IS NULL) THEN
        -- the first NULL decides which message, as in the extension
        IF (SELECT k IS NULL FROM unnest(keys, vals) WITH ORDINALITY AS u(k, v, o)
             WHERE k IS NULL OR v IS NULL ORDER BY o LIMIT 1) THEN
            RAISE EXCEPTION 'cache key must not be null' USING ERRCODE = 'null_value_not_allowed';
        END IF;
        RAISE EXCEPTION 'cache value must not be null' USING ERRCODE = 'null_value_not_allowed',
            HINT = 'Use cache_delete() to remove a key.';
    END IF;
END
$fn$;

-- ------------------------------------------- PL/Proxy functions (internal)
-- Each runs one statement on the shard(s) of its route(s). A write carries the
-- caller's transaction_read_only ("ro"): the shard then makes its own
-- statement read-only, so it refuses the write (25006) exactly where the
-- extension would.

CREATE FUNCTION fastpgcache_router.get(key text, route integer) RETURNS text
LANGUAGE plproxy VOLATILE STRICT AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT @extschema@.cache_get(key) AS r;
$$;

CREATE FUNCTION fastpgcache_router.get_json(key text, route integer) RETURNS jsonb
LANGUAGE plproxy VOLATILE STRICT AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT @extschema@.cache_get_json(key) AS r;
$$;

CREATE FUNCTION fastpgcache_router.get_bytes(key text, route integer) RETURNS bytea
LANGUAGE plproxy VOLATILE STRICT AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT @extschema@.cache_get_bytes(key) AS r;
$$;

CREATE FUNCTION fastpgcache_router.exists_key(key text, route integer) RETURNS boolean
LANGUAGE plproxy VOLATILE STRICT AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT @extschema@.cache_exists(key) AS r;
$$;

CREATE FUNCTION fastpgcache_router.ttl(key text, route integer) RETURNS integer
LANGUAGE plproxy VOLATILE STRICT AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT @extschema@.cache_ttl(key) AS r;
$$;

CREATE FUNCTION fastpgcache_router.strlen(key text, route integer) RETURNS integer
LANGUAGE plproxy VOLATILE STRICT AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT @extschema@.cache_strlen(key) AS r;
$$;

CREATE FUNCTION fastpgcache_router.pttl(key text, route integer) RETURNS bigint
LANGUAGE plproxy VOLATILE STRICT AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT @extschema@.cache_pttl(key) AS r;
$$;

CREATE FUNCTION fastpgcache_router.type(key text, route integer) RETURNS text
LANGUAGE plproxy VOLATILE STRICT AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT @extschema@.cache_type(key) AS r;
$$;

CREATE FUNCTION fastpgcache_router.delete_key(key text, route integer, ro boolean) RETURNS boolean
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT CASE WHEN NOT ro OR pg_catalog.set_config('transaction_read_only', 'on', true) = 'on'
                THEN @extschema@.cache_delete(key) END AS r;
$$;

CREATE FUNCTION fastpgcache_router.set_text(key text, value text, ttl integer, nx boolean, xx boolean,
                                            keepttl boolean, route integer, ro boolean) RETURNS boolean
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT CASE WHEN NOT ro OR pg_catalog.set_config('transaction_read_only', 'on', true) = 'on'
                THEN @extschema@.cache_set(key, value, ttl, nx, xx, keepttl) END AS r;
$$;

CREATE FUNCTION fastpgcache_router.set_jsonb(key text, value jsonb, ttl integer, nx boolean, xx boolean,
                                             keepttl boolean, route integer, ro boolean) RETURNS boolean
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT CASE WHEN NOT ro OR pg_catalog.set_config('transaction_read_only', 'on', true) = 'on'
                THEN @extschema@.cache_set(key, value, ttl, nx, xx, keepttl) END AS r;
$$;

CREATE FUNCTION fastpgcache_router.set_bytea(key text, value bytea, ttl integer, nx boolean, xx boolean,
                                             keepttl boolean, route integer, ro boolean) RETURNS boolean
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT CASE WHEN NOT ro OR pg_catalog.set_config('transaction_read_only', 'on', true) = 'on'
                THEN @extschema@.cache_set(key, value, ttl, nx, xx, keepttl) END AS r;
$$;

CREATE FUNCTION fastpgcache_router.getset(key text, value text, ttl integer, route integer, ro boolean) RETURNS text
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT CASE WHEN NOT ro OR pg_catalog.set_config('transaction_read_only', 'on', true) = 'on'
                THEN @extschema@.cache_getset(key, value, ttl) END AS r;
$$;

CREATE FUNCTION fastpgcache_router.incr(key text, by_ bigint, ttl integer, route integer, ro boolean) RETURNS bigint
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT CASE WHEN NOT ro OR pg_catalog.set_config('transaction_read_only', 'on', true) = 'on'
                THEN @extschema@.cache_incr(key, by_, ttl) END AS r;
$$;

CREATE FUNCTION fastpgcache_router.decr(key text, by_ bigint, route integer, ro boolean) RETURNS bigint
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT CASE WHEN NOT ro OR pg_catalog.set_config('transaction_read_only', 'on', true) = 'on'
                THEN @extschema@.cache_decr(key, by_) END AS r;
$$;

CREATE FUNCTION fastpgcache_router.incrbyfloat(key text, by_ double precision, route integer, ro boolean)
RETURNS double precision
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT CASE WHEN NOT ro OR pg_catalog.set_config('transaction_read_only', 'on', true) = 'on'
                THEN @extschema@.cache_incrbyfloat(key, by_) END AS r;
$$;

CREATE FUNCTION fastpgcache_router.append(key text, value text, route integer, ro boolean) RETURNS bigint
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT CASE WHEN NOT ro OR pg_catalog.set_config('transaction_read_only', 'on', true) = 'on'
                THEN @extschema@.cache_append(key, value) END AS r;
$$;

CREATE FUNCTION fastpgcache_router.expire(key text, ttl integer, route integer, ro boolean) RETURNS boolean
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT CASE WHEN NOT ro OR pg_catalog.set_config('transaction_read_only', 'on', true) = 'on'
                THEN @extschema@.cache_expire(key, ttl) END AS r;
$$;

CREATE FUNCTION fastpgcache_router.pexpire(key text, ttl_ms bigint, route integer, ro boolean) RETURNS boolean
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT CASE WHEN NOT ro OR pg_catalog.set_config('transaction_read_only', 'on', true) = 'on'
                THEN @extschema@.cache_pexpire(key, ttl_ms) END AS r;
$$;

CREATE FUNCTION fastpgcache_router.expireat(key text, at_ timestamptz, route integer, ro boolean) RETURNS boolean
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT CASE WHEN NOT ro OR pg_catalog.set_config('transaction_read_only', 'on', true) = 'on'
                THEN @extschema@.cache_expireat(key, at_) END AS r;
$$;

CREATE FUNCTION fastpgcache_router.persist(key text, route integer, ro boolean) RETURNS boolean
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT CASE WHEN NOT ro OR pg_catalog.set_config('transaction_read_only', 'on', true) = 'on'
                THEN @extschema@.cache_persist(key) END AS r;
$$;

CREATE FUNCTION fastpgcache_router.getdel(key text, route integer, ro boolean) RETURNS text
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT CASE WHEN NOT ro OR pg_catalog.set_config('transaction_read_only', 'on', true) = 'on'
                THEN @extschema@.cache_getdel(key) END AS r;
$$;

CREATE FUNCTION fastpgcache_router.getex(key text, ttl integer, persist_ boolean, route integer, ro boolean) RETURNS text
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT CASE WHEN NOT ro OR pg_catalog.set_config('transaction_read_only', 'on', true) = 'on'
                THEN @extschema@.cache_getex(key, ttl, persist_) END AS r;
$$;

-- Batches: SPLIT sends each partition its share of the arrays, in the
-- caller's order; "o" carries each key's position back for cache_mget.
CREATE FUNCTION fastpgcache_router.mget(keys text[], ords integer[], routes integer[],
                                        OUT o integer, OUT key text, OUT value text) RETURNS SETOF record
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache';
    SPLIT keys, ords, routes;
    RUN ON routes;
    SELECT m.o, m.key, m.value FROM ROWS FROM (@extschema@.cache_mget(keys), pg_catalog.unnest(ords)) AS m(key, value, o);
$$;

CREATE FUNCTION fastpgcache_router.mset(keys text[], vals text[], ttl integer, routes integer[], ro boolean)
RETURNS SETOF integer
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache';
    SPLIT keys, vals, routes;
    RUN ON routes;
    SELECT CASE WHEN NOT ro OR pg_catalog.set_config('transaction_read_only', 'on', true) = 'on'
                THEN @extschema@.cache_mset(keys, vals, ttl) END AS n;
$$;

CREATE FUNCTION fastpgcache_router.delete_keys(keys text[], routes integer[], ro boolean) RETURNS SETOF integer
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache';
    SPLIT keys, routes;
    RUN ON routes;
    SELECT CASE WHEN NOT ro OR pg_catalog.set_config('transaction_read_only', 'on', true) = 'on'
                THEN @extschema@.cache_delete(keys) END AS n;
$$;

CREATE FUNCTION fastpgcache_router.exists_keys(keys text[], routes integer[]) RETURNS SETOF integer
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache';
    SPLIT keys, routes;
    RUN ON routes;
    SELECT @extschema@.cache_exists(keys) AS n;
$$;

-- Empty batches go whole to one partition (SPLIT needs elements).
CREATE FUNCTION fastpgcache_router.mset_on(keys text[], vals text[], ttl integer, route integer, ro boolean)
RETURNS integer
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT CASE WHEN NOT ro OR pg_catalog.set_config('transaction_read_only', 'on', true) = 'on'
                THEN @extschema@.cache_mset(keys, vals, ttl) END AS n;
$$;

CREATE FUNCTION fastpgcache_router.delete_keys_on(keys text[], route integer, ro boolean) RETURNS integer
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT CASE WHEN NOT ro OR pg_catalog.set_config('transaction_read_only', 'on', true) = 'on'
                THEN @extschema@.cache_delete(keys) END AS n;
$$;

-- One partition's MSETNX (the router never splits it).
CREATE FUNCTION fastpgcache_router.msetnx(keys text[], vals text[], ttl integer, route integer, ro boolean)
RETURNS boolean
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT CASE WHEN NOT ro OR pg_catalog.set_config('transaction_read_only', 'on', true) = 'on'
                THEN @extschema@.cache_msetnx(keys, vals, ttl) END AS r;
$$;

-- One partition's SCAN step.
CREATE FUNCTION fastpgcache_router.scan(cur bigint, pat text, cnt integer, route integer,
                                        OUT next_cursor bigint, OUT keys text[]) RETURNS SETOF record
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT s.next_cursor, s.keys FROM @extschema@.cache_scan(cur, pat, cnt) AS s;
$$;

-- Every partition.
CREATE FUNCTION fastpgcache_router.dbsize() RETURNS SETOF bigint
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON ALL;
    SELECT @extschema@.cache_dbsize() AS n;
$$;

CREATE FUNCTION fastpgcache_router.flush(ro boolean) RETURNS SETOF bigint
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON ALL;
    SELECT CASE WHEN NOT ro OR pg_catalog.set_config('transaction_read_only', 'on', true) = 'on'
                THEN @extschema@.cache_flush() END AS n;
$$;

CREATE FUNCTION fastpgcache_router.cleanup(ro boolean) RETURNS SETOF integer
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON ALL;
    SELECT CASE WHEN NOT ro OR pg_catalog.set_config('transaction_read_only', 'on', true) = 'on'
                THEN @extschema@.cache_cleanup() END AS n;
$$;

CREATE FUNCTION fastpgcache_router.stats_reset() RETURNS SETOF boolean
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON ALL;
    SELECT @extschema@.cache_stats_reset() AS r;
$$;

CREATE FUNCTION fastpgcache_router.stats(
    OUT shared_memory boolean, OUT hits bigint, OUT misses bigint, OUT sets bigint, OUT deletes bigint,
    OUT expired_by_worker bigint, OUT removed_by_cleanup bigint, OUT worker_cycles bigint,
    OUT worker_passes bigint, OUT last_cycle_ms double precision, OUT last_cycle_rows bigint,
    OUT last_pass_ms double precision, OUT entries_estimate bigint, OUT table_bytes bigint,
    OUT index_bytes bigint, OUT stats_reset timestamptz, OUT evicted bigint, OUT expired_by_eviction bigint,
    OUT entries bigint, OUT data_bytes bigint) RETURNS SETOF record
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON ALL;
    SELECT * FROM @extschema@.cache_stats();
$$;

-- What set_shards and cache_router_check ask a partition.
CREATE FUNCTION fastpgcache_router.probe(route integer, OUT encoding text, OUT version text, OUT schema text)
RETURNS SETOF record
LANGUAGE plproxy VOLATILE AS $$
    CLUSTER 'fastpgcache'; RUN ON route;
    SELECT pg_catalog.getdatabaseencoding()::text AS encoding,
           (SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname = 'fastpgcache')::text AS version,
           (SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
             WHERE e.extname = 'fastpgcache')::text AS schema;
$$;

-- The PL/Proxy functions are internal; their rights come from the cluster:
-- a role needs USAGE on the foreign server "fastpgcache" (PL/Proxy checks).

-- ------------------------------------------------- the API: one key each
-- Reads: STRICT (a NULL key reads as NULL), as in the extension.

CREATE FUNCTION @extschema@.cache_get(key text) RETURNS text
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN
    RETURN fastpgcache_router.get(key, fastpgcache_router.key_route(key));
END $fn$;

CREATE FUNCTION @extschema@.cache_get_json(key text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN
    RETURN fastpgcache_router.get_json(key, fastpgcache_router.key_route(key));
END $fn$;

CREATE FUNCTION @extschema@.cache_get_bytes(key text) RETURNS bytea
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN
    RETURN fastpgcache_router.get_bytes(key, fastpgcache_router.key_route(key));
END $fn$;

CREATE FUNCTION @extschema@.cache_exists(key text) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN
    RETURN fastpgcache_router.exists_key(key, fastpgcache_router.key_route(key));
END $fn$;

CREATE FUNCTION @extschema@.cache_ttl(key text) RETURNS integer
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN
    RETURN fastpgcache_router.ttl(key, fastpgcache_router.key_route(key));
END $fn$;

CREATE FUNCTION @extschema@.cache_strlen(key text) RETURNS integer
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN
    RETURN fastpgcache_router.strlen(key, fastpgcache_router.key_route(key));
END $fn$;

CREATE FUNCTION @extschema@.cache_pttl(key text) RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN
    RETURN fastpgcache_router.pttl(key, fastpgcache_router.key_route(key));
END $fn$;

CREATE FUNCTION @extschema@.cache_type(key text) RETURNS text
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN
    RETURN fastpgcache_router.type(key, fastpgcache_router.key_route(key));
END $fn$;

-- Writes: not STRICT (a NULL argument is the shard's error, 22004; a NULL key
-- goes to partition 0 for that).

CREATE FUNCTION @extschema@.cache_delete(key text) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN
    RETURN fastpgcache_router.delete_key(key, coalesce(fastpgcache_router.key_route(key), 0), fastpgcache_router.read_only());
END $fn$;

CREATE FUNCTION @extschema@.cache_set(key text, value text, ttl integer DEFAULT NULL,
                                      nx boolean DEFAULT false, xx boolean DEFAULT false,
                                      keepttl boolean DEFAULT false) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN
    RETURN fastpgcache_router.set_text(key, value, ttl, nx, xx, keepttl,
        coalesce(fastpgcache_router.key_route(key), 0), fastpgcache_router.read_only());
END $fn$;

CREATE FUNCTION @extschema@.cache_set(key text, value jsonb, ttl integer DEFAULT NULL,
                                      nx boolean DEFAULT false, xx boolean DEFAULT false,
                                      keepttl boolean DEFAULT false) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN
    RETURN fastpgcache_router.set_jsonb(key, value, ttl, nx, xx, keepttl,
        coalesce(fastpgcache_router.key_route(key), 0), fastpgcache_router.read_only());
END $fn$;

CREATE FUNCTION @extschema@.cache_set(key text, value bytea, ttl integer DEFAULT NULL,
                                      nx boolean DEFAULT false, xx boolean DEFAULT false,
                                      keepttl boolean DEFAULT false) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN
    RETURN fastpgcache_router.set_bytea(key, value, ttl, nx, xx, keepttl,
        coalesce(fastpgcache_router.key_route(key), 0), fastpgcache_router.read_only());
END $fn$;

CREATE FUNCTION @extschema@.cache_getset(key text, value text, ttl integer DEFAULT NULL) RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN
    RETURN fastpgcache_router.getset(key, value, ttl, coalesce(fastpgcache_router.key_route(key), 0),
        fastpgcache_router.read_only());
END $fn$;

CREATE FUNCTION @extschema@.cache_incr(key text, by bigint DEFAULT 1, ttl integer DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN
    RETURN fastpgcache_router.incr(key, by, ttl, coalesce(fastpgcache_router.key_route(key), 0),
        fastpgcache_router.read_only());
END $fn$;

CREATE FUNCTION @extschema@.cache_decr(key text, by bigint DEFAULT 1) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN
    RETURN fastpgcache_router.decr(key, by, coalesce(fastpgcache_router.key_route(key), 0), fastpgcache_router.read_only());
END $fn$;

CREATE FUNCTION @extschema@.cache_incrbyfloat(key text, by double precision) RETURNS double precision
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN
    RETURN fastpgcache_router.incrbyfloat(key, by, coalesce(fastpgcache_router.key_route(key), 0),
        fastpgcache_router.read_only());
END $fn$;

CREATE FUNCTION @extschema@.cache_append(key text, value text) RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN
    RETURN fastpgcache_router.append(key, value, coalesce(fastpgcache_router.key_route(key), 0),
        fastpgcache_router.read_only());
END $fn$;

CREATE FUNCTION @extschema@.cache_expire(key text, ttl integer) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN
    RETURN fastpgcache_router.expire(key, ttl, coalesce(fastpgcache_router.key_route(key), 0), fastpgcache_router.read_only());
END $fn$;

CREATE FUNCTION @extschema@.cache_pexpire(key text, ttl_ms bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN
    RETURN fastpgcache_router.pexpire(key, ttl_ms, coalesce(fastpgcache_router.key_route(key), 0),
        fastpgcache_router.read_only());
END $fn$;

CREATE FUNCTION @extschema@.cache_expireat(key text, at timestamptz) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN
    RETURN fastpgcache_router.expireat(key, at, coalesce(fastpgcache_router.key_route(key), 0),
        fastpgcache_router.read_only());
END $fn$;

CREATE FUNCTION @extschema@.cache_persist(key text) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN
    RETURN fastpgcache_router.persist(key, coalesce(fastpgcache_router.key_route(key), 0), fastpgcache_router.read_only());
END $fn$;

CREATE FUNCTION @extschema@.cache_getdel(key text) RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN
    RETURN fastpgcache_router.getdel(key, coalesce(fastpgcache_router.key_route(key), 0), fastpgcache_router.read_only());
END $fn$;

CREATE FUNCTION @extschema@.cache_getex(key text, ttl integer DEFAULT NULL, persist boolean DEFAULT false) RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN
    RETURN fastpgcache_router.getex(key, ttl, persist, coalesce(fastpgcache_router.key_route(key), 0),
        fastpgcache_router.read_only());
END $fn$;

-- ---------------------------------------------- the API: batches (SPLIT)
-- A bad batch is refused before any shard is called (nothing written), with
-- the extension's SQLSTATEs. An empty write batch still goes to partition 0,
-- which refuses it in a read-only transaction as the extension does.

-- One row per key, in the caller's order. Each partition reads its share
-- under one snapshot; the partitions are read at slightly different moments.
CREATE FUNCTION @extschema@.cache_mget(keys text[]) RETURNS TABLE(key text, value text)
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE COST 1 ROWS 10
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    routes integer[] := fastpgcache_router.batch_routes($1, true);
BEGIN
    IF cardinality($1) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT m.key, m.value
                   FROM fastpgcache_router.mget($1, fastpgcache_router.ordinals($1), routes) AS m
                  ORDER BY m.o;
END
$fn$;

-- Each partition writes its pairs in one statement; partitions commit
-- independently (not atomic across partitions).
CREATE FUNCTION @extschema@.cache_mset(keys text[], "values" text[], ttl integer DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM fastpgcache_router.check_pairs($1, $2, $3);
    IF cardinality($1) = 0 THEN
        RETURN fastpgcache_router.mset_on($1, $2, $3, 0, fastpgcache_router.read_only());
    END IF;
    RETURN (SELECT sum(n)
              FROM fastpgcache_router.mset($1, $2, $3, fastpgcache_router.batch_routes($1, false),
                                           fastpgcache_router.read_only()) AS n);
END
$fn$;

CREATE FUNCTION @extschema@.cache_delete(keys text[]) RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    routes integer[];
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'cache keys must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    routes := fastpgcache_router.batch_routes($1, false);
    IF cardinality($1) = 0 THEN
        RETURN fastpgcache_router.delete_keys_on($1, 0, fastpgcache_router.read_only());
    END IF;
    RETURN (SELECT sum(n) FROM fastpgcache_router.delete_keys($1, routes, fastpgcache_router.read_only()) AS n);
END
$fn$;

-- How many are live (a key listed twice counts twice). Each partition counts
-- its share under one snapshot.
CREATE FUNCTION @extschema@.cache_exists(keys text[]) RETURNS integer
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    routes integer[] := fastpgcache_router.batch_routes($1, false);
BEGIN
    IF cardinality($1) = 0 THEN
        RETURN 0;
    END IF;
    RETURN (SELECT sum(n) FROM fastpgcache_router.exists_keys($1, routes) AS n);
END
$fn$;

-- MSETNX is atomic on one server only: keys on one partition go to its
-- shard's cache_msetnx (atomic there); keys on two or more partitions are
-- refused (0A000) and nothing is written, as Redis Cluster refuses a
-- multi-key command across hash slots (CROSSSLOT).
CREATE FUNCTION @extschema@.cache_msetnx(keys text[], "values" text[], ttl integer DEFAULT NULL) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE COST 1
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    n integer;
    bits integer;
    parts integer[];
BEGIN
    PERFORM fastpgcache_router.check_pairs($1, $2, $3);
    IF cardinality($1) = 0 THEN
        RETURN fastpgcache_router.msetnx($1, $2, $3, 0, fastpgcache_router.read_only());
    END IF;
    n := fastpgcache_router.partition_count();
    bits := fastpgcache_router.log2(n);
    parts := ARRAY(SELECT DISTINCT fastpgcache_router.key_top16(k) >> (16 - bits) FROM unnest($1) AS k ORDER BY 1);
    IF cardinality(parts) > 1 THEN
        RAISE EXCEPTION 'cache_msetnx(): the keys are on % partitions (%), and MSETNX cannot be atomic across partitions',
                        cardinality(parts), array_to_string(parts, ', ')
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'Nothing was written.',
                  HINT = 'Give cache_msetnx() keys of one partition (cache_router_partition(key)), or use cache_set(key, value, nx => true) per key.';
    END IF;
    RETURN fastpgcache_router.msetnx($1, $2, $3, fastpgcache_router.key_route($1[array_lower($1, 1)]),
                                     fastpgcache_router.read_only());
END
$fn$;

-- ----------------------------------------- the API: every partition (RUN ON ALL)

CREATE FUNCTION @extschema@.cache_keys(pattern text DEFAULT '*') RETURNS SETOF text
LANGUAGE plproxy VOLATILE STRICT PARALLEL UNSAFE COST 1 ROWS 100 AS $$
    CLUSTER 'fastpgcache'; RUN ON ALL;
$$;

CREATE FUNCTION @extschema@.cache_dbsize() RETURNS bigint
LANGUAGE sql VOLATILE PARALLEL UNSAFE COST 1
BEGIN ATOMIC
    SELECT coalesce(sum(n), 0)::bigint FROM fastpgcache_router.dbsize() AS n;
END;

-- Not transactional across the router: each shard commits its own flush.
CREATE FUNCTION @extschema@.cache_flush() RETURNS bigint
LANGUAGE sql VOLATILE PARALLEL UNSAFE COST 1
BEGIN ATOMIC
    SELECT coalesce(sum(n), 0)::bigint FROM fastpgcache_router.flush(fastpgcache_router.read_only()) AS n;
END;

CREATE FUNCTION @extschema@.cache_cleanup() RETURNS integer
LANGUAGE sql VOLATILE PARALLEL UNSAFE COST 1
BEGIN ATOMIC
    SELECT coalesce(sum(n), 0)::integer FROM fastpgcache_router.cleanup(fastpgcache_router.read_only()) AS n;
END;

-- The shards' counters added up; shared_memory is true only if every shard
-- has it (otherwise the counters are NULL, as on one server without it);
-- last_cycle_ms and last_pass_ms are the slowest shard's, stats_reset the
-- earliest reset (the sums count from then at the latest); entries and
-- data_bytes are NULL unless every shard has counted its own.
CREATE FUNCTION @extschema@.cache_stats(
    OUT shared_memory boolean, OUT hits bigint, OUT misses bigint, OUT sets bigint, OUT deletes bigint,
    OUT expired_by_worker bigint, OUT removed_by_cleanup bigint, OUT worker_cycles bigint,
    OUT worker_passes bigint, OUT last_cycle_ms double precision, OUT last_cycle_rows bigint,
    OUT last_pass_ms double precision, OUT entries_estimate bigint, OUT table_bytes bigint,
    OUT index_bytes bigint, OUT stats_reset timestamptz, OUT evicted bigint, OUT expired_by_eviction bigint,
    OUT entries bigint, OUT data_bytes bigint) RETURNS record
LANGUAGE sql VOLATILE PARALLEL UNSAFE COST 1
BEGIN ATOMIC
    SELECT bool_and(s.shared_memory),
           CASE WHEN bool_and(s.shared_memory) THEN sum(s.hits)::bigint END,
           CASE WHEN bool_and(s.shared_memory) THEN sum(s.misses)::bigint END,
           CASE WHEN bool_and(s.shared_memory) THEN sum(s.sets)::bigint END,
           CASE WHEN bool_and(s.shared_memory) THEN sum(s.deletes)::bigint END,
           CASE WHEN bool_and(s.shared_memory) THEN sum(s.expired_by_worker)::bigint END,
           CASE WHEN bool_and(s.shared_memory) THEN sum(s.removed_by_cleanup)::bigint END,
           CASE WHEN bool_and(s.shared_memory) THEN sum(s.worker_cycles)::bigint END,
           CASE WHEN bool_and(s.shared_memory) THEN sum(s.worker_passes)::bigint END,
           CASE WHEN bool_and(s.shared_memory) THEN max(s.last_cycle_ms) END,
           CASE WHEN bool_and(s.shared_memory) THEN sum(s.last_cycle_rows)::bigint END,
           CASE WHEN bool_and(s.shared_memory) THEN max(s.last_pass_ms) END,
           sum(s.entries_estimate)::bigint,
           sum(s.table_bytes)::bigint,
           sum(s.index_bytes)::bigint,
           CASE WHEN bool_and(s.shared_memory) THEN min(s.stats_reset) END,
           CASE WHEN bool_and(s.shared_memory) THEN sum(s.evicted)::bigint END,
           CASE WHEN bool_and(s.shared_memory) THEN sum(s.expired_by_eviction)::bigint END,
           CASE WHEN bool_and(s.entries IS NOT NULL) THEN sum(s.entries)::bigint END,
           CASE WHEN bool_and(s.data_bytes IS NOT NULL) THEN sum(s.data_bytes)::bigint END
      FROM fastpgcache_router.stats() AS s;
END;

-- Only roles granted EXECUTE on cache_stats_reset() may reset the shards'
-- counters: the PL/Proxy function behind it is not executable by PUBLIC (else
-- any role could call it directly and reset them as the mapped shard user),
-- so cache_stats_reset() reaches it as the extension's owner.
CREATE FUNCTION @extschema@.cache_stats_reset() RETURNS boolean
LANGUAGE sql VOLATILE PARALLEL UNSAFE COST 1 SECURITY DEFINER SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT bool_and(r) FROM fastpgcache_router.stats_reset() AS r;
END;
REVOKE ALL ON FUNCTION @extschema@.cache_stats_reset() FROM PUBLIC;
REVOKE ALL ON FUNCTION fastpgcache_router.stats_reset() FROM PUBLIC;

-- SCAN over the partitions in turn. The cursor is the shards' own cursor (the
-- first 63 bits of a key_hash): its first k bits are the partition, so it
-- names the partition and the position in it. A partition's step returns
-- next_cursor = its shard's, or the first cursor of the next partition when
-- the shard has passed the partition's end (0 after the last one). Keys a
-- shard holds outside its partition's range (left by a resharding) are not
-- returned: the router would not find them.
CREATE FUNCTION @extschema@.cache_scan(cursor bigint DEFAULT 0, pattern text DEFAULT '*', count integer DEFAULT 100)
RETURNS TABLE(next_cursor bigint, keys text[])
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE COST 1 ROWS 1
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    cur ALIAS FOR $1;
    pat ALIAS FOR $2;
    cnt ALIAS FOR $3;
    n integer;
    bits integer;
    part integer;
    stop bigint;          -- the first cursor of the next partition; NULL after the last
    step_next bigint;
    step_keys text[];
BEGIN
    IF cur < 0 THEN
        RAISE EXCEPTION 'invalid cursor %', cur USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF cnt < 1 THEN
        RAISE EXCEPTION 'count must be at least 1, not %', cnt USING ERRCODE = 'invalid_parameter_value';
    END IF;
    n := fastpgcache_router.partition_count();
    bits := fastpgcache_router.log2(n);
    part := CASE WHEN bits = 0 THEN 0 ELSE (cur >> (63 - bits))::integer END;
    stop := CASE WHEN part = n - 1 THEN NULL ELSE (part + 1)::bigint << (63 - bits) END;
    SELECT s.next_cursor, s.keys INTO step_next, step_keys
      FROM fastpgcache_router.scan(cur, pat, cnt, fastpgcache_router.slot(part, bits)) AS s;
    IF bits > 0 THEN
        step_keys := ARRAY(SELECT k FROM unnest(step_keys) WITH ORDINALITY AS u(k, o)
                            WHERE fastpgcache_router.key_top16(k) >> (16 - bits) = part ORDER BY o);
    END IF;
    IF step_next = 0 OR step_next >= stop THEN
        step_next := coalesce(stop, 0);
    END IF;
    next_cursor := step_next;
    keys := step_keys;
    RETURN NEXT;
END
$fn$;

-- ------------------------------------------------------- administration

-- The keywords of a keyword=value conninfo (libpq's syntax: values quoted
-- with '...', backslash escapes). Error messages never repeat the conninfo.
CREATE FUNCTION fastpgcache_router.conninfo_keywords(conninfo text, part integer) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    len integer := length(conninfo);
    pos integer := 1;
    kw text;
    ch text;
    result text[] := '{}';
BEGIN
    IF conninfo ~* '^\s*postgres(ql)?://' THEN
        RAISE EXCEPTION 'the conninfo of partition % is a URI', part USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Use the keyword=value form (host=... port=... dbname=...): PL/Proxy appends keywords to it.';
    END IF;
    LOOP
        WHILE pos <= len AND substr(conninfo, pos, 1) ~ '\s' LOOP pos := pos + 1; END LOOP;
        EXIT WHEN pos > len;
        kw := substring(substr(conninfo, pos) FROM '^[A-Za-z_][A-Za-z0-9_]*');
        IF kw IS NULL THEN
            RAISE EXCEPTION 'the conninfo of partition % is not a list of keyword=value pairs (character %)', part, pos
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        pos := pos + length(kw);
        WHILE pos <= len AND substr(conninfo, pos, 1) ~ '\s' LOOP pos := pos + 1; END LOOP;
        IF substr(conninfo, pos, 1) <> '=' OR pos > len THEN
            RAISE EXCEPTION 'the conninfo of partition % is not a list of keyword=value pairs (character %)', part, pos
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        pos := pos + 1;
        WHILE pos <= len AND substr(conninfo, pos, 1) ~ '\s' LOOP pos := pos + 1; END LOOP;
        IF substr(conninfo, pos, 1) = '''' THEN
            pos := pos + 1;
            LOOP
                IF pos > len THEN
                    RAISE EXCEPTION 'the conninfo of partition % has an unterminated quoted value', part
                        USING ERRCODE = 'invalid_parameter_value';
                END IF;
                ch := substr(conninfo, pos, 1);
                pos := pos + CASE WHEN ch = '\' THEN 2 ELSE 1 END;
                EXIT WHEN ch = '''';
            END LOOP;
        ELSE
            WHILE pos <= len AND substr(conninfo, pos, 1) !~ '\s' LOOP
                pos := pos + CASE WHEN substr(conninfo, pos, 1) = '\' THEN 2 ELSE 1 END;
            END LOOP;
        END IF;
        result := result || lower(kw);
    END LOOP;
    RETURN result;
END
$fn$;

-- Defines the cluster: shards[p + 1] is the conninfo (keyword=value, without
-- user or password) of partition p; their number is a power of two. Creates
-- or replaces the foreign server "fastpgcache" (its other options, such as
-- connection_lifetime, and its grants are kept) and the PUBLIC user mapping
-- (user shard_user, or the router session's user when NULL; password the
-- first line of the server-side file password_file, if given: the password
-- itself never appears in SQL text, so neither in pg_stat_activity nor in the
-- server log). With check_shards, every partition is asked for its encoding
-- (UTF8), its fastpgcache extension (1.1 or later) and that extension's
-- schema (the router's); any failure names the partition and undoes it all.
-- Returns the number of partitions.
CREATE FUNCTION @extschema@.cache_router_set_shards(shards text[], shard_user text DEFAULT NULL,
                                                    password_file text DEFAULT NULL,
                                                    check_shards boolean DEFAULT true) RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    n integer;
    bits integer;
    p integer;
    kws text[];
    pw text;
    opts text;
    um_opts text[] := '{}';
    st text;
    msg text;
    probe record;
    ext_schema text := '@extschema@';
BEGIN
    IF shards IS NULL THEN
        RAISE EXCEPTION 'shards must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF check_shards IS NULL THEN
        RAISE EXCEPTION 'check_shards must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF array_ndims(shards) > 1 THEN
        RAISE EXCEPTION 'shards must be a one-dimensional array' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    n := coalesce(cardinality(shards), 0);
    IF n = 0 OR n > 65536 OR (n & (n - 1)) <> 0 THEN
        RAISE EXCEPTION 'the number of shards must be a power of two from 1 to 65536, not %', n
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'PL/Proxy picks a partition with the low bits of a hash; several partitions may share one server.';
    END IF;
    bits := fastpgcache_router.log2(n);
    shards := ARRAY(SELECT s FROM unnest(shards) WITH ORDINALITY AS u(s, o) ORDER BY o);  -- subscripts from 1
    FOR p IN 0 .. n - 1 LOOP
        IF shards[p + 1] IS NULL THEN
            RAISE EXCEPTION 'the conninfo of partition % is NULL', p USING ERRCODE = 'null_value_not_allowed';
        END IF;
        kws := fastpgcache_router.conninfo_keywords(shards[p + 1], p);
        IF cardinality(kws) = 0 THEN
            RAISE EXCEPTION 'the conninfo of partition % is empty', p USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF 'password' = ANY (kws) THEN
            RAISE EXCEPTION 'the conninfo of partition % contains a password', p
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'A password written in SQL shows in pg_stat_activity and in the server log.',
                      HINT = 'Write it in a file the server can read and pass password_file => ''/path''.';
        END IF;
        IF 'user' = ANY (kws) THEN
            RAISE EXCEPTION 'the conninfo of partition % names a user', p
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Pass the shards'' role as shard_user: one user mapping serves every partition.';
        END IF;
    END LOOP;
    IF shard_user IS NOT NULL THEN
        IF shard_user = '' OR shard_user ~ '[''\\\s]' THEN
            RAISE EXCEPTION 'shard_user must be a role name without quotes, backslashes or spaces'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        um_opts := um_opts || format('user %L', shard_user);
    END IF;
    IF password_file IS NOT NULL THEN
        pw := rtrim(split_part(pg_read_file(password_file), E'\n', 1), E'\r');
        IF pw = '' THEN
            RAISE EXCEPTION 'the first line of password_file % is empty', password_file
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF pw ~ '[''\\]' THEN
            RAISE EXCEPTION 'the password in password_file % contains a quote or a backslash', password_file
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'PL/Proxy passes the password to libpq between single quotes, without escaping.';
        END IF;
    END IF;

    -- The foreign server: partition p's conninfo in PL/Proxy's slot reverse_k(p).
    SELECT string_agg(format('p%s %L', fastpgcache_router.slot(q, bits), shards[q + 1]), ', '
                      ORDER BY fastpgcache_router.slot(q, bits))
      INTO opts FROM generate_series(0, n - 1) AS q;
    IF NOT EXISTS (SELECT FROM pg_foreign_server WHERE srvname = 'fastpgcache') THEN
        EXECUTE format('CREATE SERVER fastpgcache FOREIGN DATA WRAPPER plproxy OPTIONS (%s)', opts);
    ELSE
        SELECT string_agg(format('DROP %I', split_part(o, '=', 1)), ', ') || ', '
          INTO msg
          FROM pg_foreign_server s, unnest(s.srvoptions) AS o
         WHERE s.srvname = 'fastpgcache' AND o ~ '^(p|partition_)[0-9]+=';
        opts := coalesce(msg, '') || regexp_replace(opts, '(^|, )p', '\1ADD p', 'g');
        EXECUTE format('ALTER SERVER fastpgcache OPTIONS (%s)', opts);
    END IF;

    -- The user mapping. Its statement holds the password: an error must not
    -- show it (CONTEXT would), so it is raised again without the statement.
    EXECUTE 'DROP USER MAPPING IF EXISTS FOR PUBLIC SERVER fastpgcache';
    BEGIN
        IF pw IS NOT NULL THEN
            um_opts := um_opts || format('password %L', pw);
        END IF;
        IF cardinality(um_opts) = 0 THEN
            EXECUTE 'CREATE USER MAPPING FOR PUBLIC SERVER fastpgcache';
        ELSE
            EXECUTE format('CREATE USER MAPPING FOR PUBLIC SERVER fastpgcache OPTIONS (%s)', array_to_string(um_opts, ', '));
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
        RAISE EXCEPTION 'could not create the user mapping: %', msg USING ERRCODE = st;
    END;
    um_opts := NULL;
    pw := NULL;

    IF check_shards THEN
        FOR p IN 0 .. n - 1 LOOP
            BEGIN
                SELECT * INTO probe FROM fastpgcache_router.probe(fastpgcache_router.slot(p, bits));
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
                RAISE EXCEPTION 'partition % (%) cannot be used: %', p, shards[p + 1], msg
                    USING ERRCODE = st, HINT = 'Nothing was changed. Fix the shard or its conninfo, or pass check_shards => false.';
            END;
            IF probe.version IS NULL THEN
                RAISE EXCEPTION 'partition % (%): the fastpgcache extension is not installed in that database', p, shards[p + 1]
                    USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Nothing was changed.';
            END IF;
            IF string_to_array(probe.version, '.')::integer[] < ARRAY[1, 1] THEN
                RAISE EXCEPTION 'partition % (%): fastpgcache % is older than 1.1', p, shards[p + 1], probe.version
                    USING ERRCODE = 'object_not_in_prerequisite_state',
                          HINT = 'ALTER EXTENSION fastpgcache UPDATE on that shard. Nothing was changed.';
            END IF;
            IF probe.schema <> ext_schema THEN
                RAISE EXCEPTION 'partition % (%): fastpgcache is in schema %, and the router calls it in schema %',
                                p, shards[p + 1], probe.schema, ext_schema
                    USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Nothing was changed.';
            END IF;
            IF probe.encoding <> 'UTF8' THEN
                RAISE EXCEPTION 'partition % (%): the database encoding is %, not UTF8', p, shards[p + 1], probe.encoding
                    USING ERRCODE = 'object_not_in_prerequisite_state',
                          DETAIL = 'The router places keys by SHA-256 of their UTF-8 bytes, the key_hash of a UTF8 shard.',
                          HINT = 'Nothing was changed.';
            END IF;
        END LOOP;
    END IF;
    RETURN n;
END
$fn$;
REVOKE ALL ON FUNCTION @extschema@.cache_router_set_shards(text[], text, text, boolean) FROM PUBLIC;

-- The partitions in order: conninfo (as stored: never a password) and the
-- first SCAN cursor of each.
CREATE FUNCTION @extschema@.cache_router_shards() RETURNS TABLE(partition integer, conninfo text, first_cursor bigint)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    n integer := fastpgcache_router.partition_count();
    bits integer := fastpgcache_router.log2(n);
BEGIN
    RETURN QUERY
    SELECT fastpgcache_router.slot(substring(o FROM '^(?:p|partition_)([0-9]+)=')::integer, bits),
           substr(o, position('=' IN o) + 1),
           CASE WHEN bits = 0 THEN 0::bigint
                ELSE fastpgcache_router.slot(substring(o FROM '^(?:p|partition_)([0-9]+)=')::integer, bits)::bigint
                     << (63 - bits) END
      FROM pg_foreign_server s, unnest(s.srvoptions) AS o
     WHERE s.srvname = 'fastpgcache' AND o ~ '^(p|partition_)[0-9]+='
     ORDER BY 1;
END
$fn$;

-- The partition of a key: the first k bits of SHA-256 of its UTF-8 bytes,
-- for 2^k partitions. Any client can compute it.
CREATE FUNCTION @extschema@.cache_router_partition(key text) RETURNS integer
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN fastpgcache_router.key_top16(key) >> (16 - fastpgcache_router.log2(fastpgcache_router.partition_count()));
END
$fn$;

-- Asks every partition whether it can serve: one row per partition, with the
-- error (connection refused, no extension ...) of those that cannot.
CREATE FUNCTION @extschema@.cache_router_check()
RETURNS TABLE(partition integer, conninfo text, ok boolean, fastpgcache_version text, error text)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    s record;
    probe record;
    bits integer := fastpgcache_router.log2(fastpgcache_router.partition_count());
    msg text;
BEGIN
    FOR s IN SELECT * FROM @extschema@.cache_router_shards() LOOP
        partition := s.partition;
        conninfo := s.conninfo;
        BEGIN
            SELECT * INTO probe FROM fastpgcache_router.probe(fastpgcache_router.slot(s.partition, bits));
            fastpgcache_version := probe.version;
            ok := probe.version IS NOT NULL AND probe.schema = '@extschema@' AND probe.encoding = 'UTF8';
            error := CASE WHEN probe.version IS NULL THEN 'fastpgcache is not installed'
                          WHEN probe.schema <> '@extschema@' THEN 'fastpgcache is in schema ' || probe.schema
                          WHEN probe.encoding <> 'UTF8' THEN 'database encoding ' || probe.encoding END;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
            ok := false;
            fastpgcache_version := NULL;
            error := msg;
        END;
        RETURN NEXT;
    END LOOP;
END
$fn$;
