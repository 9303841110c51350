-- The SQL fallback as released at version 1.0 (fallback/fastpgcache_fallback.sql at commit 3cea64f),
-- kept for the client's upgrade tests (client_tests upgrade): a 1.0 fallback that setup() upgrades.
-- FastPgCache pure-SQL fallback (version 1.0)
--
-- Same function names, signatures, semantics and SQLSTATEs as the
-- fastpgcache extension, for servers that cannot load it (managed
-- PostgreSQL such as Databricks Lakebase or RDS).  The C++ client's setup()
-- runs this file when CREATE EXTENSION fastpgcache is not possible; it can
-- also be run by hand:  psql -v ON_ERROR_STOP=1 -f fastpgcache_fallback.sql
--
-- Properties:
--  * idempotent: CREATE ... IF NOT EXISTS / CREATE OR REPLACE, so running it
--    again upgrades the functions in place and keeps the data;
--  * safe against search_path hijacking: the script itself runs with
--    search_path = pg_catalog, pg_temp; read functions use SQL-standard
--    bodies (BEGIN ATOMIC), which are parsed and bound to objects when they
--    are created, and the PL/pgSQL write functions carry
--    SET search_path = pg_catalog, pg_temp; the table is always referenced
--    as public.cache_entries;
--  * concurrent runs serialize on an advisory lock.
--
-- Storage: one UNLOGGED row per key.  The primary key is key_hash, the first
-- 16 bytes of SHA-256 of the key's bytes (so 1 MB keys never reach the
-- btree); lookups compare the full key as well.  Two keys whose hashes
-- collide share one slot, as in the extension: a write takes the slot over
-- (the row gets the new key) and the keys evict each other; a read never
-- returns another key's value.  The table has the same
-- shape as the extension's: the value is kept as bytes (text and JSON in the
-- database encoding) with kind = 't' text, 'j' jsonb (its text form),
-- 'b' bytea.  expires_at is NULL for "no expiry" and is compared with
-- clock_timestamp() (wall clock, not transaction time); it is not indexed,
-- so overwrites are HOT updates.

BEGIN;
SET LOCAL search_path = pg_catalog, pg_temp;
SET LOCAL client_min_messages = warning;
SELECT pg_catalog.pg_advisory_xact_lock(7262830174416203313);

CREATE UNLOGGED TABLE IF NOT EXISTS public.cache_entries (
    key_hash   uuid             NOT NULL,
    expires_at timestamptz,
    kind       "char"           NOT NULL,
    key        text COLLATE "C" NOT NULL,
    value      bytea            NOT NULL,
    CONSTRAINT cache_entries_pkey PRIMARY KEY (key_hash),
    CONSTRAINT cache_entries_kind_check CHECK (kind IN ('t', 'j', 'b'))
) WITH (fillfactor = 90);

-- CREATE TABLE IF NOT EXISTS adopts a table someone else made: where public
-- is writable by others, another role may have pre-created it (and set the
-- comment below).  Refuse anything but a plain table owned by the current
-- user; the transaction then installs nothing.
DO $check$
DECLARE
    owner_name name;
    kind "char";
BEGIN
    SELECT c.relowner::regrole::name, c.relkind INTO owner_name, kind
      FROM pg_catalog.pg_class AS c
     WHERE c.oid = 'public.cache_entries'::regclass;
    IF kind IS DISTINCT FROM 'r' THEN
        RAISE EXCEPTION 'public.cache_entries exists but is not a plain table (relkind %): not installing the fastpgcache fallback', kind
            USING ERRCODE = '42809';
    END IF;
    IF owner_name IS DISTINCT FROM current_user THEN
        RAISE EXCEPTION 'public.cache_entries exists and is owned by role %, not by the current user %: not installing the fastpgcache fallback on top of it',
            owner_name, current_user
            USING ERRCODE = '42501',
                  HINT = 'Drop or rename that table, or run this as its owner if it is a fastpgcache fallback table.';
    END IF;
END
$check$;

REVOKE ALL ON TABLE public.cache_entries FROM PUBLIC;

COMMENT ON TABLE public.cache_entries IS 'fastpgcache fallback 1.0';

-------------------------------------------------------------------------------
-- Writes (PL/pgSQL: they validate their arguments and raise SQLSTATEs)
-------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION public.cache_set(key text, value text, ttl integer DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'cache key must not be null' USING ERRCODE = '22004';
    END IF;
    IF $2 IS NULL THEN
        RAISE EXCEPTION 'cache value must not be null' USING ERRCODE = '22004';
    END IF;
    IF $3 IS NOT NULL AND $3 <= 0 THEN
        RAISE EXCEPTION 'ttl must be a positive number of seconds, got %', $3
            USING ERRCODE = '22023';
    END IF;
    INSERT INTO public.cache_entries AS e (key_hash, key, kind, value, expires_at)
    VALUES (encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid,
            $1, 't', convert_to($2, getdatabaseencoding()),
            CASE WHEN $3 IS NULL THEN NULL ELSE clock_timestamp() + make_interval(secs => $3) END)
    ON CONFLICT (key_hash) DO UPDATE
        SET key = EXCLUDED.key, kind = EXCLUDED.kind, value = EXCLUDED.value, expires_at = EXCLUDED.expires_at;
    RETURN true;
END
$fn$;

CREATE OR REPLACE FUNCTION public.cache_set(key text, value jsonb, ttl integer DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'cache key must not be null' USING ERRCODE = '22004';
    END IF;
    IF $2 IS NULL THEN
        RAISE EXCEPTION 'cache value must not be null' USING ERRCODE = '22004';
    END IF;
    IF $3 IS NOT NULL AND $3 <= 0 THEN
        RAISE EXCEPTION 'ttl must be a positive number of seconds, got %', $3
            USING ERRCODE = '22023';
    END IF;
    INSERT INTO public.cache_entries AS e (key_hash, key, kind, value, expires_at)
    VALUES (encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid,
            $1, 'j', convert_to($2::text, getdatabaseencoding()),
            CASE WHEN $3 IS NULL THEN NULL ELSE clock_timestamp() + make_interval(secs => $3) END)
    ON CONFLICT (key_hash) DO UPDATE
        SET key = EXCLUDED.key, kind = EXCLUDED.kind, value = EXCLUDED.value, expires_at = EXCLUDED.expires_at;
    RETURN true;
END
$fn$;

CREATE OR REPLACE FUNCTION public.cache_set(key text, value bytea, ttl integer DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'cache key must not be null' USING ERRCODE = '22004';
    END IF;
    IF $2 IS NULL THEN
        RAISE EXCEPTION 'cache value must not be null' USING ERRCODE = '22004';
    END IF;
    IF $3 IS NOT NULL AND $3 <= 0 THEN
        RAISE EXCEPTION 'ttl must be a positive number of seconds, got %', $3
            USING ERRCODE = '22023';
    END IF;
    INSERT INTO public.cache_entries AS e (key_hash, key, kind, value, expires_at)
    VALUES (encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid,
            $1, 'b', $2,
            CASE WHEN $3 IS NULL THEN NULL ELSE clock_timestamp() + make_interval(secs => $3) END)
    ON CONFLICT (key_hash) DO UPDATE
        SET key = EXCLUDED.key, kind = EXCLUDED.kind, value = EXCLUDED.value, expires_at = EXCLUDED.expires_at;
    RETURN true;
END
$fn$;

CREATE OR REPLACE FUNCTION public.cache_delete(key text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    live boolean;
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'cache key must not be null' USING ERRCODE = '22004';
    END IF;
    DELETE FROM public.cache_entries AS e
     WHERE e.key_hash = encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid
       AND e.key = $1
    RETURNING (e.expires_at IS NULL OR e.expires_at > clock_timestamp()) INTO live;
    RETURN coalesce(live, false);
END
$fn$;

CREATE OR REPLACE FUNCTION public.cache_mset(keys text[], "values" text[], ttl integer DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    n integer;
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'cache keys must not be null' USING ERRCODE = '22004';
    END IF;
    IF $2 IS NULL THEN
        RAISE EXCEPTION 'cache values must not be null' USING ERRCODE = '22004';
    END IF;
    IF array_ndims($1) > 1 OR array_ndims($2) > 1 THEN
        RAISE EXCEPTION 'keys and values must be one-dimensional arrays' USING ERRCODE = '22023';
    END IF;
    n := cardinality($1);
    IF n <> cardinality($2) THEN
        RAISE EXCEPTION 'keys and values must have the same length (% keys, % values)', n, cardinality($2)
            USING ERRCODE = '22023';
    END IF;
    IF $3 IS NOT NULL AND $3 <= 0 THEN
        RAISE EXCEPTION 'ttl must be a positive number of seconds, got %', $3
            USING ERRCODE = '22023';
    END IF;
    IF array_position($1, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'cache key must not be null' USING ERRCODE = '22004';
    END IF;
    IF array_position($2, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'cache value must not be null' USING ERRCODE = '22004';
    END IF;
    IF n = 0 THEN
        RETURN 0;
    END IF;
    -- A key given twice: the last value wins (as with successive cache_set calls).
    INSERT INTO public.cache_entries AS e (key_hash, key, kind, value, expires_at)
    SELECT DISTINCT ON (s.h) s.h, s.k, 't', convert_to(s.v, getdatabaseencoding()),
           CASE WHEN $3 IS NULL THEN NULL ELSE clock_timestamp() + make_interval(secs => $3) END
      FROM (SELECT encode(substring(sha256(convert_to(u.k, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid AS h,
                   u.k, u.v, u.ord
              FROM unnest($1, $2) WITH ORDINALITY AS u(k, v, ord)) AS s
     -- Rows are upserted in key_hash order, so concurrent msets lock rows
     -- in the same order and cannot deadlock each other.
     ORDER BY s.h, s.ord DESC
    ON CONFLICT (key_hash) DO UPDATE
        SET key = EXCLUDED.key, kind = EXCLUDED.kind, value = EXCLUDED.value, expires_at = EXCLUDED.expires_at;
    RETURN n;
END
$fn$;

-------------------------------------------------------------------------------
-- Reads (SQL-standard bodies; STRICT: a NULL key reads as NULL)
-------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION public.cache_get(key text)
RETURNS text
LANGUAGE sql VOLATILE STRICT PARALLEL RESTRICTED
BEGIN ATOMIC
    SELECT convert_from(e.value, getdatabaseencoding())
      FROM public.cache_entries AS e
     WHERE e.key_hash = encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid
       AND e.key = $1
       AND (e.expires_at IS NULL OR e.expires_at > clock_timestamp());
END;

CREATE OR REPLACE FUNCTION public.cache_get_json(key text)
RETURNS jsonb
LANGUAGE sql VOLATILE STRICT PARALLEL RESTRICTED
BEGIN ATOMIC
    SELECT convert_from(e.value, getdatabaseencoding())::jsonb
      FROM public.cache_entries AS e
     WHERE e.key_hash = encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid
       AND e.key = $1
       AND (e.expires_at IS NULL OR e.expires_at > clock_timestamp());
END;

CREATE OR REPLACE FUNCTION public.cache_get_bytes(key text)
RETURNS bytea
LANGUAGE sql VOLATILE STRICT PARALLEL RESTRICTED
BEGIN ATOMIC
    SELECT e.value
      FROM public.cache_entries AS e
     WHERE e.key_hash = encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid
       AND e.key = $1
       AND (e.expires_at IS NULL OR e.expires_at > clock_timestamp());
END;

CREATE OR REPLACE FUNCTION public.cache_exists(key text)
RETURNS boolean
LANGUAGE sql VOLATILE STRICT PARALLEL RESTRICTED
BEGIN ATOMIC
    SELECT EXISTS (
        SELECT 1
          FROM public.cache_entries AS e
         WHERE e.key_hash = encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid
           AND e.key = $1
           AND (e.expires_at IS NULL OR e.expires_at > clock_timestamp()));
END;

-- Seconds left, rounded up (a live key never reports 0); -1 = no expiry;
-- -2 = missing or expired.
CREATE OR REPLACE FUNCTION public.cache_ttl(key text)
RETURNS integer
LANGUAGE sql VOLATILE STRICT PARALLEL RESTRICTED
BEGIN ATOMIC
    SELECT coalesce(
        (SELECT CASE WHEN t.expires_at IS NULL THEN -1
                     ELSE greatest(1, ceil(extract(epoch FROM t.expires_at - t.now))::integer)
                END
           FROM (SELECT e.expires_at, clock_timestamp() AS now
                   FROM public.cache_entries AS e
                  WHERE e.key_hash = encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid
                    AND e.key = $1) AS t
          WHERE t.expires_at IS NULL OR t.expires_at > t.now),
        -2);
END;

-- One row per input key, in input order; value is NULL for a miss.
CREATE OR REPLACE FUNCTION public.cache_mget(keys text[])
RETURNS TABLE(key text, value text)
LANGUAGE sql VOLATILE STRICT PARALLEL RESTRICTED
BEGIN ATOMIC
    SELECT u.k,
           (SELECT convert_from(e.value, getdatabaseencoding())
              FROM public.cache_entries AS e
             WHERE e.key_hash = encode(substring(sha256(convert_to(u.k, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid
               AND e.key = u.k
               AND (e.expires_at IS NULL OR e.expires_at > clock_timestamp()))
      FROM unnest($1) WITH ORDINALITY AS u(k, ord)
     ORDER BY u.ord;
END;

-- Deletes every expired row; returns how many.
CREATE OR REPLACE FUNCTION public.cache_cleanup()
RETURNS integer
LANGUAGE sql VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    WITH gone AS (
        DELETE FROM public.cache_entries AS e
         WHERE e.expires_at <= clock_timestamp()
        RETURNING 1)
    SELECT count(*)::integer FROM gone;
END;

-- A superuser's CREATE OR REPLACE keeps the owner of a function that already
-- existed: refuse to leave functions of the API owned by another role.
DO $check$
DECLARE
    bad text;
BEGIN
    SELECT string_agg(p.oid::regprocedure::text || ' (owner ' || p.proowner::regrole::text || ')', ', ')
      INTO bad
      FROM pg_catalog.pg_proc AS p
     WHERE p.pronamespace = 'public'::regnamespace
       AND p.proname IN ('cache_set', 'cache_get', 'cache_get_json', 'cache_get_bytes', 'cache_delete',
                         'cache_exists', 'cache_ttl', 'cache_cleanup', 'cache_mget', 'cache_mset')
       AND p.proowner IS DISTINCT FROM (SELECT r.oid FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user);
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'fastpgcache fallback functions owned by another role: %', bad
            USING ERRCODE = '42501';
    END IF;
END
$check$;

COMMIT;
