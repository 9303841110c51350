-- FastPgCache pure-SQL fallback (version 1.1)
--
-- Same function names, signatures, semantics and SQLSTATEs as the
-- fastpgcache extension 1.1, for servers that cannot load it (managed
-- PostgreSQL such as Databricks Lakebase or RDS).  The C++ client's setup()
-- runs this file when CREATE EXTENSION fastpgcache is not possible; it can
-- also be run by hand:  psql -v ON_ERROR_STOP=1 -f fastpgcache_fallback.sql
--
-- Properties:
--  * idempotent: CREATE ... IF NOT EXISTS / CREATE OR REPLACE, so running it
--    again upgrades the functions in place and keeps the data; run on a 1.0
--    fallback it drops the 3-argument cache_set overloads (the 1.1 ones take
--    nx/xx/keepttl with defaults, and both would make calls ambiguous);
--  * safe against search_path hijacking: the script itself runs with
--    search_path = pg_catalog, pg_temp; read functions use SQL-standard
--    bodies (BEGIN ATOMIC), which are parsed and bound to objects when they
--    are created, and the PL/pgSQL functions carry
--    SET search_path = pg_catalog, pg_temp; the table is always referenced
--    as public.cache_entries; every function of the API must be owned by the
--    role that runs this script (checked at the end);
--  * atomic under concurrency: a read-modify-write (incr, append, getset...)
--    is one UPDATE (incr's common case) or locks the key's row first
--    (SELECT ... FOR UPDATE) and then writes; a missing
--    row is inserted with INSERT ... ON CONFLICT DO NOTHING and the step is
--    retried if a concurrent insert won.  Under REPEATABLE READ a concurrent
--    change raises a serialization failure (40001) instead: never a lost
--    update.  Multi-key writes lock their rows in key_hash order, so they
--    cannot deadlock with each other;
--  * Redis semantics: integers are parsed as strictly as Redis does
--    (^(0|-?[1-9][0-9]*)$ within int64: no '-0'), floats like Redis's string2ld
--    (strtold of the whole string), and the glob patterns of cache_keys and
--    cache_scan match exactly what redis-server's KEYS matches (translated
--    into a regular expression over the hex of the key's bytes);
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
-- so overwrites are HOT updates.  An expired row counts as absent everywhere.
--
-- Internal helpers (not part of the API, named _fastpgcache_*): the option
-- paths of cache_set, the Redis float parser and the glob translator.

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

COMMENT ON TABLE public.cache_entries IS 'fastpgcache fallback 1.1';


-------------------------------------------------------------------------------
-- cache_set: text, jsonb and bytea overloads with NX / XX / KEEPTTL
-------------------------------------------------------------------------------

-- 1.0 had cache_set(key, value, ttl): with the 1.1 signatures below (same
-- first three arguments, more with defaults) every call would be ambiguous.
DROP FUNCTION IF EXISTS public.cache_set(text, text, integer);
DROP FUNCTION IF EXISTS public.cache_set(text, jsonb, integer);
DROP FUNCTION IF EXISTS public.cache_set(text, bytea, integer);

-- The NX / XX / KEEPTTL paths of cache_set, after the caller has validated
-- its arguments.  xx: an UPDATE of the live row only.  Otherwise one upsert:
-- with nx it leaves a live entry of the key alone (the row stays locked, so
-- of racing NX writers exactly one writes; under REPEATABLE READ a row
-- committed after the snapshot raises 40001); keepttl keeps a live entry's
-- expiry.  An expired row, or another key's row in the slot, is taken over.
CREATE OR REPLACE FUNCTION public._fastpgcache_set(key text, kind "char", value bytea, ttl integer,
                                                   nx boolean, xx boolean, keepttl boolean)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    h uuid := encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid;
    done boolean;
BEGIN
    IF $6 THEN
        UPDATE public.cache_entries AS e
           SET kind = $2, value = $3,
               expires_at = CASE WHEN $7 THEN e.expires_at
                                 WHEN $4 IS NULL THEN NULL
                                 ELSE clock_timestamp() + make_interval(secs => $4) END
         WHERE e.key_hash = h AND e.key = $1
           AND (e.expires_at IS NULL OR e.expires_at > clock_timestamp())
        RETURNING true INTO done;
        RETURN coalesce(done, false);
    END IF;
    INSERT INTO public.cache_entries AS e (key_hash, key, kind, value, expires_at)
    VALUES (h, $1, $2, $3, CASE WHEN $4 IS NULL THEN NULL ELSE clock_timestamp() + make_interval(secs => $4) END)
    ON CONFLICT (key_hash) DO UPDATE
        SET key = EXCLUDED.key, kind = EXCLUDED.kind, value = EXCLUDED.value,
            expires_at = CASE WHEN $7 AND e.key = EXCLUDED.key
                                   AND (e.expires_at IS NULL OR e.expires_at > clock_timestamp())
                              THEN e.expires_at ELSE EXCLUDED.expires_at END
      WHERE NOT ($5 AND e.key = EXCLUDED.key AND (e.expires_at IS NULL OR e.expires_at > clock_timestamp()))
    RETURNING true INTO done;
    RETURN coalesce(done, false);
END
$fn$;

CREATE OR REPLACE FUNCTION public.cache_set(key text, value text, ttl integer DEFAULT NULL,
                                            nx boolean DEFAULT false, xx boolean DEFAULT false,
                                            keepttl boolean DEFAULT false)
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
    IF $4 IS NULL THEN
        RAISE EXCEPTION 'nx must not be null' USING ERRCODE = '22004';
    END IF;
    IF $5 IS NULL THEN
        RAISE EXCEPTION 'xx must not be null' USING ERRCODE = '22004';
    END IF;
    IF $6 IS NULL THEN
        RAISE EXCEPTION 'keepttl must not be null' USING ERRCODE = '22004';
    END IF;
    IF $3 IS NOT NULL AND $3 <= 0 THEN
        RAISE EXCEPTION 'ttl must be a positive number of seconds, got %', $3
            USING ERRCODE = '22023';
    END IF;
    IF $4 AND $5 THEN
        RAISE EXCEPTION 'nx and xx cannot both be true' USING ERRCODE = '22023';
    END IF;
    IF $6 AND $3 IS NOT NULL THEN
        RAISE EXCEPTION 'keepttl and ttl cannot be used together' USING ERRCODE = '22023';
    END IF;
    IF $4 OR $5 OR $6 THEN
        RETURN public._fastpgcache_set($1, 't', convert_to($2, getdatabaseencoding()), $3, $4, $5, $6);
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

CREATE OR REPLACE FUNCTION public.cache_set(key text, value jsonb, ttl integer DEFAULT NULL,
                                            nx boolean DEFAULT false, xx boolean DEFAULT false,
                                            keepttl boolean DEFAULT false)
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
    IF $4 IS NULL THEN
        RAISE EXCEPTION 'nx must not be null' USING ERRCODE = '22004';
    END IF;
    IF $5 IS NULL THEN
        RAISE EXCEPTION 'xx must not be null' USING ERRCODE = '22004';
    END IF;
    IF $6 IS NULL THEN
        RAISE EXCEPTION 'keepttl must not be null' USING ERRCODE = '22004';
    END IF;
    IF $3 IS NOT NULL AND $3 <= 0 THEN
        RAISE EXCEPTION 'ttl must be a positive number of seconds, got %', $3
            USING ERRCODE = '22023';
    END IF;
    IF $4 AND $5 THEN
        RAISE EXCEPTION 'nx and xx cannot both be true' USING ERRCODE = '22023';
    END IF;
    IF $6 AND $3 IS NOT NULL THEN
        RAISE EXCEPTION 'keepttl and ttl cannot be used together' USING ERRCODE = '22023';
    END IF;
    IF $4 OR $5 OR $6 THEN
        RETURN public._fastpgcache_set($1, 'j', convert_to($2::text, getdatabaseencoding()), $3, $4, $5, $6);
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

CREATE OR REPLACE FUNCTION public.cache_set(key text, value bytea, ttl integer DEFAULT NULL,
                                            nx boolean DEFAULT false, xx boolean DEFAULT false,
                                            keepttl boolean DEFAULT false)
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
    IF $4 IS NULL THEN
        RAISE EXCEPTION 'nx must not be null' USING ERRCODE = '22004';
    END IF;
    IF $5 IS NULL THEN
        RAISE EXCEPTION 'xx must not be null' USING ERRCODE = '22004';
    END IF;
    IF $6 IS NULL THEN
        RAISE EXCEPTION 'keepttl must not be null' USING ERRCODE = '22004';
    END IF;
    IF $3 IS NOT NULL AND $3 <= 0 THEN
        RAISE EXCEPTION 'ttl must be a positive number of seconds, got %', $3
            USING ERRCODE = '22023';
    END IF;
    IF $4 AND $5 THEN
        RAISE EXCEPTION 'nx and xx cannot both be true' USING ERRCODE = '22023';
    END IF;
    IF $6 AND $3 IS NOT NULL THEN
        RAISE EXCEPTION 'keepttl and ttl cannot be used together' USING ERRCODE = '22023';
    END IF;
    IF $4 OR $5 OR $6 THEN
        RETURN public._fastpgcache_set($1, 'b', $2, $3, $4, $5, $6);
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

-------------------------------------------------------------------------------
-- DEL and MSET
-------------------------------------------------------------------------------

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
-- Read-modify-write commands (PL/pgSQL).  Each locks the key's row first:
--   SELECT ... FOR UPDATE      the row exists (live, expired, or another
--                              key's row in the slot): decide, then UPDATE;
--   INSERT ... DO NOTHING      no row: create it; if a concurrent insert won,
--                              go round again and lock that row.
-------------------------------------------------------------------------------

-- SET key value [EX ttl] GET: the previous live value (as text), or NULL.
CREATE OR REPLACE FUNCTION public.cache_getset(key text, value text, ttl integer DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    h uuid;
    r record;
    prev text;
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
    h := encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid;
    LOOP
        SELECT e.key, e.value, e.expires_at INTO r
          FROM public.cache_entries AS e WHERE e.key_hash = h FOR UPDATE;
        IF FOUND THEN
            IF r.key = $1 AND (r.expires_at IS NULL OR r.expires_at > clock_timestamp()) THEN
                -- 22021 here (bytes that are not text) leaves the entry as it was
                prev := convert_from(r.value, getdatabaseencoding());
            END IF;
            UPDATE public.cache_entries AS e
               SET key = $1, kind = 't', value = convert_to($2, getdatabaseencoding()),
                   expires_at = CASE WHEN $3 IS NULL THEN NULL ELSE clock_timestamp() + make_interval(secs => $3) END
             WHERE e.key_hash = h;
            RETURN prev;
        END IF;
        INSERT INTO public.cache_entries AS e (key_hash, key, kind, value, expires_at)
        VALUES (h, $1, 't', convert_to($2, getdatabaseencoding()),
                CASE WHEN $3 IS NULL THEN NULL ELSE clock_timestamp() + make_interval(secs => $3) END)
        ON CONFLICT (key_hash) DO NOTHING;
        IF FOUND THEN
            RETURN NULL;
        END IF;
    END LOOP;
END
$fn$;

-- INCRBY, plus a ttl that applies only when this call creates the key (a
-- fixed-window rate limiter in one call).  The value must be a 64-bit
-- integer in Redis's strict form; the result is stored as decimal text.
CREATE OR REPLACE FUNCTION public.cache_incr(key text, by bigint DEFAULT 1, ttl integer DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    h uuid;
    r record;
    s text;
    cur bigint;
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'cache key must not be null' USING ERRCODE = '22004';
    END IF;
    IF $2 IS NULL THEN
        RAISE EXCEPTION 'increment must not be null' USING ERRCODE = '22004';
    END IF;
    IF $3 IS NOT NULL AND $3 <= 0 THEN
        RAISE EXCEPTION 'ttl must be a positive number of seconds, got %', $3
            USING ERRCODE = '22023';
    END IF;
    h := encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid;
    -- The common case in one statement: a live integer that does not
    -- overflow.  (CASE keeps the cast behind the pattern test.)  Anything
    -- else goes the long way below, which decides and raises.
    UPDATE public.cache_entries AS e
       SET kind = 't', value = convert_to((encode(e.value, 'escape')::numeric + $2)::text, getdatabaseencoding())
     WHERE e.key_hash = h AND e.key = $1
       AND (e.expires_at IS NULL OR e.expires_at > clock_timestamp())
       AND CASE WHEN octet_length(e.value) <= 20 AND encode(e.value, 'escape') ~ '^(0|-?[1-9][0-9]*)$'
                THEN encode(e.value, 'escape')::numeric BETWEEN -9223372036854775808 AND 9223372036854775807
                     AND encode(e.value, 'escape')::numeric + $2 BETWEEN -9223372036854775808 AND 9223372036854775807
                ELSE false END
    RETURNING convert_from(e.value, getdatabaseencoding())::bigint INTO cur;
    IF FOUND THEN
        RETURN cur;
    END IF;
    LOOP
        -- Values longer than 20 bytes cannot be an int64: not even fetched.
        SELECT e.key, e.expires_at, CASE WHEN octet_length(e.value) <= 20 THEN e.value END AS value INTO r
          FROM public.cache_entries AS e WHERE e.key_hash = h FOR UPDATE;
        IF FOUND THEN
            IF r.key = $1 AND (r.expires_at IS NULL OR r.expires_at > clock_timestamp()) THEN
                -- 'escape' keeps ASCII digits and '-' and turns NUL and bytes
                -- >= 0x80 into \ooo, which the pattern refuses.
                s := encode(r.value, 'escape');
                IF s IS NULL OR s !~ '^(0|-?[1-9][0-9]*)$' THEN
                    RAISE EXCEPTION 'value is not an integer or out of range' USING ERRCODE = '22P02';
                END IF;
                IF s::numeric NOT BETWEEN -9223372036854775808 AND 9223372036854775807 THEN
                    RAISE EXCEPTION 'value is not an integer or out of range' USING ERRCODE = '22P02';
                END IF;
                cur := s::bigint;
                IF ($2 > 0 AND cur > 9223372036854775807 - $2) OR ($2 < 0 AND cur < -9223372036854775808 - $2) THEN
                    RAISE EXCEPTION 'increment or decrement would overflow' USING ERRCODE = '22003';
                END IF;
                cur := cur + $2;
                UPDATE public.cache_entries AS e
                   SET kind = 't', value = convert_to(cur::text, getdatabaseencoding())
                 WHERE e.key_hash = h;
                RETURN cur;
            END IF;
            -- expired, or another key's row: this call creates the key
            UPDATE public.cache_entries AS e
               SET key = $1, kind = 't', value = convert_to($2::text, getdatabaseencoding()),
                   expires_at = CASE WHEN $3 IS NULL THEN NULL ELSE clock_timestamp() + make_interval(secs => $3) END
             WHERE e.key_hash = h;
            RETURN $2;
        END IF;
        INSERT INTO public.cache_entries AS e (key_hash, key, kind, value, expires_at)
        VALUES (h, $1, 't', convert_to($2::text, getdatabaseencoding()),
                CASE WHEN $3 IS NULL THEN NULL ELSE clock_timestamp() + make_interval(secs => $3) END)
        ON CONFLICT (key_hash) DO NOTHING;
        IF FOUND THEN
            RETURN $2;
        END IF;
    END LOOP;
END
$fn$;

-- DECRBY.  Negating the smallest int64 would overflow, as in Redis.
CREATE OR REPLACE FUNCTION public.cache_decr(key text, by bigint DEFAULT 1)
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'cache key must not be null' USING ERRCODE = '22004';
    END IF;
    IF $2 IS NULL THEN
        RAISE EXCEPTION 'decrement must not be null' USING ERRCODE = '22004';
    END IF;
    IF $2 = -9223372036854775808 THEN
        RAISE EXCEPTION 'decrement would overflow' USING ERRCODE = '22003';
    END IF;
    RETURN public.cache_incr($1, -$2, NULL::integer);
END
$fn$;

-- Redis's string2ld: the whole string through strtold (decimal, hex
-- floats, inf/infinity; no leading space, not NaN; a NUL byte ends the
-- string as it ends C's), in long double range (overflow and underflow to
-- zero are refused, subnormals accepted).  Returns the exact value of the
-- text as numeric, or NULL when Redis would answer "not a valid float".
CREATE OR REPLACE FUNCTION public._fastpgcache_float(v bytea)
RETURNS numeric
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    s text;
    m text[];
    digits text;
    ip text;
    x numeric;
    e bigint;
    adj bigint;
    mant numeric;
    k bigint;
    nul integer;
    i integer;
BEGIN
    IF octet_length(v) = 0 OR octet_length(v) >= 5120 THEN
        RETURN NULL;
    END IF;
    nul := position('\x00'::bytea IN v);
    IF nul > 0 THEN
        v := substring(v FROM 1 FOR nul - 1);
    END IF;
    IF octet_length(v) = 0 THEN
        RETURN 0;               -- strtold("") consumes the whole (empty) C string
    END IF;
    s := encode(v, 'escape');   -- bytes >= 0x80 become \ooo: no pattern below accepts them
    IF s ~* '^[+-]?inf(inity)?$' THEN
        RETURN CASE WHEN left(s, 1) = '-' THEN '-Infinity' ELSE 'Infinity' END::numeric;
    END IF;
    m := regexp_match(s, '^([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?$');
    IF m IS NOT NULL AND (m[2] <> '' OR coalesce(m[3], '') <> '') THEN
        digits := ltrim(m[2] || coalesce(m[3], ''), '0');
        IF digits = '' THEN
            RETURN 0;
        END IF;
        IF length(ltrim(ltrim(coalesce(m[4], '0'), '+-'), '0')) > 9 THEN
            RETURN NULL;        -- |exponent| >= 10^9: overflow or underflow to zero
        END IF;
        e := coalesce(m[4], '0')::bigint;
        ip := ltrim(m[2], '0');
        -- the value lies in [10^adj, 10^(adj+1))
        IF ip <> '' THEN
            adj := e + length(ip) - 1;
        ELSE
            adj := e - (length(m[3]) - length(ltrim(m[3], '0'))) - 1;
        END IF;
        IF adj > 4932 OR adj < -4952 THEN
            RETURN NULL;
        END IF;
        x := (m[1] || coalesce(nullif(m[2], ''), '0') || coalesce('.' || nullif(m[3], ''), '') || 'e' || e::text)::numeric;
        IF adj = 4932 AND abs(x) >= power(2::numeric, 16384) - power(2::numeric, 16319) THEN
            RETURN NULL;        -- rounds to infinity (LDBL_MAX + half an ulp)
        END IF;
        IF adj <= -4951 AND abs(x) <= 1.82259976594123730126420296680970990819952540784678167186049e-4951 THEN
            RETURN NULL;        -- rounds to zero (half the smallest subnormal, 2^-16446)
        END IF;
        RETURN x;
    END IF;
    m := regexp_match(s, '^([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?[0-9]+))?$');
    IF m IS NOT NULL AND (m[2] <> '' OR coalesce(m[3], '') <> '') THEN
        digits := lower(ltrim(m[2] || coalesce(m[3], ''), '0'));
        IF digits = '' THEN
            RETURN 0;
        END IF;
        IF length(ltrim(ltrim(coalesce(m[4], '0'), '+-'), '0')) > 9 THEN
            RETURN NULL;
        END IF;
        -- value = digits (an integer) * 2^k
        k := coalesce(m[4], '0')::bigint - 4 * length(coalesce(m[3], ''));
        -- floor(log2(value)): bits of the mantissa - 1 + k
        adj := 4 * length(digits) - CASE WHEN left(digits, 1) = '1' THEN 3 WHEN left(digits, 1) IN ('2', '3') THEN 2
                                         WHEN left(digits, 1) IN ('4', '5', '6', '7') THEN 1 ELSE 0 END - 1 + k;
        IF adj >= 16384 OR adj < -16446 THEN
            RETURN NULL;
        END IF;
        mant := 0;
        FOR i IN 1 .. length(digits) LOOP
            mant := mant * 16 + position(substr(digits, i, 1) IN '0123456789abcdef') - 1;
        END LOOP;
        IF k >= 0 THEN
            x := mant * power(2::numeric, k);
        ELSIF k >= -16000 THEN
            x := mant * power(5::numeric, -k) * ('1e' || k::text)::numeric;     -- 2^k = 5^-k * 10^k, exactly
        ELSE
            x := 0;             -- below 2^-16000: invisible at 17 decimals
        END IF;
        RETURN CASE WHEN m[1] = '-' THEN -x ELSE x END;
    END IF;
    RETURN NULL;
END
$fn$;

-- INCRBYFLOAT.  The sum is computed in numeric and stored the way Redis
-- prints it (%.17Lf, trailing zeros and a trailing '.' removed): the same
-- text for ordinary decimal values (Redis computes in long double, whose
-- binary rounding shows beyond about 18 significant digits).  A result
-- beyond the range of double precision (long double goes to 1.19e4932) is
-- stored exactly and returned as +/-Infinity.
CREATE OR REPLACE FUNCTION public.cache_incrbyfloat(key text, by double precision)
RETURNS double precision
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
SET extra_float_digits = 1
AS $fn$
DECLARE
    h uuid;
    r record;
    inc numeric;
    cur numeric;
    res numeric;
    have_row boolean;
    live boolean;
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'cache key must not be null' USING ERRCODE = '22004';
    END IF;
    IF $2 IS NULL THEN
        RAISE EXCEPTION 'increment must not be null' USING ERRCODE = '22004';
    END IF;
    IF $2 = 'NaN'::double precision THEN
        RAISE EXCEPTION 'increment would produce NaN or Infinity' USING ERRCODE = '22003';
    END IF;
    inc := $2::text::numeric;   -- shortest exact text of the double (extra_float_digits = 1)
    h := encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid;
    LOOP
        SELECT e.key, e.expires_at, CASE WHEN octet_length(e.value) < 5120 THEN e.value END AS value INTO r
          FROM public.cache_entries AS e WHERE e.key_hash = h FOR UPDATE;
        have_row := FOUND;
        live := have_row AND r.key = $1 AND (r.expires_at IS NULL OR r.expires_at > clock_timestamp());
        IF live THEN
            cur := public._fastpgcache_float(r.value);
            IF cur IS NULL THEN
                RAISE EXCEPTION 'value is not a valid float' USING ERRCODE = '22P02';
            END IF;
        ELSE
            cur := 0;
        END IF;
        res := cur + inc;
        IF res IN ('NaN'::numeric, 'Infinity'::numeric, '-Infinity'::numeric)
           OR abs(res) >= 1.18973149535723176505351158982948866796625400469556721895649e4932 THEN
            RAISE EXCEPTION 'increment would produce NaN or Infinity' USING ERRCODE = '22003';
        END IF;
        res := trim_scale(round(res, 17));
        IF have_row THEN
            IF live THEN
                UPDATE public.cache_entries AS e
                   SET kind = 't', value = convert_to(res::text, getdatabaseencoding())
                 WHERE e.key_hash = h;
            ELSE
                UPDATE public.cache_entries AS e
                   SET key = $1, kind = 't', value = convert_to(res::text, getdatabaseencoding()), expires_at = NULL
                 WHERE e.key_hash = h;
            END IF;
            RETURN CASE WHEN abs(res) <= 1.7976931348623157e308 THEN res::double precision
                        ELSE sign(res) * 'Infinity'::double precision END;
        END IF;
        INSERT INTO public.cache_entries AS e (key_hash, key, kind, value, expires_at)
        VALUES (h, $1, 't', convert_to(res::text, getdatabaseencoding()), NULL)
        ON CONFLICT (key_hash) DO NOTHING;
        IF FOUND THEN
            RETURN CASE WHEN abs(res) <= 1.7976931348623157e308 THEN res::double precision
                        ELSE sign(res) * 'Infinity'::double precision END;
        END IF;
    END LOOP;
END
$fn$;

-- APPEND: the value's bytes at the end; a missing key is created (no
-- expiry), a live one keeps its expiry.  Bytes stay bytes, anything else
-- becomes text.  Returns the new length in bytes.
CREATE OR REPLACE FUNCTION public.cache_append(key text, value text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    h uuid;
    r record;
    add bytea;
    n bigint;
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'cache key must not be null' USING ERRCODE = '22004';
    END IF;
    IF $2 IS NULL THEN
        RAISE EXCEPTION 'cache value must not be null' USING ERRCODE = '22004';
    END IF;
    add := convert_to($2, getdatabaseencoding());
    h := encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid;
    LOOP
        -- octet_length of a stored value does not detoast it
        SELECT e.key, e.expires_at, octet_length(e.value)::bigint AS len INTO r
          FROM public.cache_entries AS e WHERE e.key_hash = h FOR UPDATE;
        IF FOUND THEN
            IF r.key = $1 AND (r.expires_at IS NULL OR r.expires_at > clock_timestamp()) THEN
                n := r.len + octet_length(add);
                -- the largest value a row can hold: the new row is built in
                -- memory (value and key) before it is stored, and must stay
                -- within MaxAllocSize (1 GB - 1) with its headers
                IF n > 1073741823 - 64 - octet_length($1) THEN
                    RAISE EXCEPTION 'string exceeds maximum allowed size (% bytes)', n USING ERRCODE = '54000';
                END IF;
                UPDATE public.cache_entries AS e
                   SET value = e.value || add, kind = CASE WHEN e.kind = 'b' THEN 'b' ELSE 't' END
                 WHERE e.key_hash = h;
                RETURN n;
            END IF;
            UPDATE public.cache_entries AS e
               SET key = $1, kind = 't', value = add, expires_at = NULL
             WHERE e.key_hash = h;
            RETURN octet_length(add);
        END IF;
        INSERT INTO public.cache_entries AS e (key_hash, key, kind, value, expires_at)
        VALUES (h, $1, 't', add, NULL)
        ON CONFLICT (key_hash) DO NOTHING;
        IF FOUND THEN
            RETURN octet_length(add);
        END IF;
    END LOOP;
END
$fn$;

-------------------------------------------------------------------------------
-- Expiry: EXPIRE, PEXPIRE, EXPIREAT, PERSIST (one UPDATE or DELETE each)
-------------------------------------------------------------------------------

-- true if the key is live and now expires in ttl seconds; ttl <= 0 deletes
-- it (true), as Redis does.
CREATE OR REPLACE FUNCTION public.cache_expire(key text, ttl integer)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    h uuid;
    done boolean;
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'cache key must not be null' USING ERRCODE = '22004';
    END IF;
    IF $2 IS NULL THEN
        RAISE EXCEPTION 'ttl must not be null' USING ERRCODE = '22004';
    END IF;
    h := encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid;
    IF $2 <= 0 THEN
        DELETE FROM public.cache_entries AS e
         WHERE e.key_hash = h AND e.key = $1
        RETURNING (e.expires_at IS NULL OR e.expires_at > clock_timestamp()) INTO done;
        RETURN coalesce(done, false);
    END IF;
    UPDATE public.cache_entries AS e
       SET expires_at = clock_timestamp() + make_interval(secs => $2)
     WHERE e.key_hash = h AND e.key = $1
       AND (e.expires_at IS NULL OR e.expires_at > clock_timestamp())
    RETURNING true INTO done;
    RETURN coalesce(done, false);
END
$fn$;

-- As cache_expire, in milliseconds.  An expiry beyond timestamptz: 22008.
CREATE OR REPLACE FUNCTION public.cache_pexpire(key text, ttl_ms bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    h uuid;
    at timestamptz;
    done boolean;
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'cache key must not be null' USING ERRCODE = '22004';
    END IF;
    IF $2 IS NULL THEN
        RAISE EXCEPTION 'ttl_ms must not be null' USING ERRCODE = '22004';
    END IF;
    h := encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid;
    IF $2 <= 0 THEN
        DELETE FROM public.cache_entries AS e
         WHERE e.key_hash = h AND e.key = $1
        RETURNING (e.expires_at IS NULL OR e.expires_at > clock_timestamp()) INTO done;
        RETURN coalesce(done, false);
    END IF;
    -- interval or timestamp out of range: 22008, whether or not the key exists
    at := clock_timestamp() + ($2 / 1000) * interval '1 second' + ($2 % 1000) * interval '1 millisecond';
    UPDATE public.cache_entries AS e
       SET expires_at = at
     WHERE e.key_hash = h AND e.key = $1
       AND (e.expires_at IS NULL OR e.expires_at > clock_timestamp())
    RETURNING true INTO done;
    RETURN coalesce(done, false);
END
$fn$;

-- EXPIREAT with a timestamptz: a time not in the future deletes the key.
CREATE OR REPLACE FUNCTION public.cache_expireat(key text, at timestamptz)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    h uuid;
    done boolean;
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'cache key must not be null' USING ERRCODE = '22004';
    END IF;
    IF $2 IS NULL THEN
        RAISE EXCEPTION 'expiry time must not be null' USING ERRCODE = '22004';
    END IF;
    IF NOT isfinite($2) THEN
        RAISE EXCEPTION 'expiry time out of range: %', $2 USING ERRCODE = '22008';
    END IF;
    h := encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid;
    IF $2 <= clock_timestamp() THEN
        DELETE FROM public.cache_entries AS e
         WHERE e.key_hash = h AND e.key = $1
        RETURNING (e.expires_at IS NULL OR e.expires_at > clock_timestamp()) INTO done;
        RETURN coalesce(done, false);
    END IF;
    UPDATE public.cache_entries AS e
       SET expires_at = $2
     WHERE e.key_hash = h AND e.key = $1
       AND (e.expires_at IS NULL OR e.expires_at > clock_timestamp())
    RETURNING true INTO done;
    RETURN coalesce(done, false);
END
$fn$;

-- PERSIST: true if the key is live and had an expiry, now removed.
CREATE OR REPLACE FUNCTION public.cache_persist(key text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    done boolean;
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'cache key must not be null' USING ERRCODE = '22004';
    END IF;
    UPDATE public.cache_entries AS e
       SET expires_at = NULL
     WHERE e.key_hash = encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid AND e.key = $1
       AND e.expires_at > clock_timestamp()
    RETURNING true INTO done;
    RETURN coalesce(done, false);
END
$fn$;

-------------------------------------------------------------------------------
-- GETDEL, GETEX
-------------------------------------------------------------------------------

-- The live value as text (NULL if absent), and the key is gone.  Bytes that
-- are not text: 22021, and the statement's error keeps the row.
CREATE OR REPLACE FUNCTION public.cache_getdel(key text)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v text;
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'cache key must not be null' USING ERRCODE = '22004';
    END IF;
    DELETE FROM public.cache_entries AS e
     WHERE e.key_hash = encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid AND e.key = $1
    RETURNING CASE WHEN e.expires_at IS NULL OR e.expires_at > clock_timestamp()
                   THEN convert_from(e.value, getdatabaseencoding()) END INTO v;
    RETURN v;
END
$fn$;

-- GETEX: the live value as text; ttl sets a new expiry, persist removes it,
-- neither changes nothing (and writes nothing).
CREATE OR REPLACE FUNCTION public.cache_getex(key text, ttl integer DEFAULT NULL, persist boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v text;
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'cache key must not be null' USING ERRCODE = '22004';
    END IF;
    IF $3 IS NULL THEN
        RAISE EXCEPTION 'persist must not be null' USING ERRCODE = '22004';
    END IF;
    IF $2 IS NOT NULL AND $2 <= 0 THEN
        RAISE EXCEPTION 'ttl must be a positive number of seconds, got %', $2
            USING ERRCODE = '22023';
    END IF;
    IF $2 IS NOT NULL AND $3 THEN
        RAISE EXCEPTION 'ttl and persist cannot be used together' USING ERRCODE = '22023';
    END IF;
    IF $2 IS NULL AND NOT $3 THEN
        SELECT convert_from(e.value, getdatabaseencoding()) INTO v
          FROM public.cache_entries AS e
         WHERE e.key_hash = encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid AND e.key = $1
           AND (e.expires_at IS NULL OR e.expires_at > clock_timestamp());
        RETURN v;
    END IF;
    UPDATE public.cache_entries AS e
       SET expires_at = CASE WHEN $3 THEN NULL ELSE clock_timestamp() + make_interval(secs => $2) END
     WHERE e.key_hash = encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid AND e.key = $1
       AND (e.expires_at IS NULL OR e.expires_at > clock_timestamp())
    RETURNING convert_from(e.value, getdatabaseencoding()) INTO v;
    RETURN v;
END
$fn$;

-------------------------------------------------------------------------------
-- Many keys: DEL k1 k2 ..., MSETNX, FLUSHDB
-------------------------------------------------------------------------------

-- How many of the listed keys were live and are now deleted (a key listed
-- twice counts once).  Rows are locked in key_hash order first.
CREATE OR REPLACE FUNCTION public.cache_delete(keys text[])
RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    hs uuid[];
    n integer;
BEGIN
    IF $1 IS NULL THEN
        RAISE EXCEPTION 'cache keys must not be null' USING ERRCODE = '22004';
    END IF;
    IF array_ndims($1) > 1 THEN
        RAISE EXCEPTION 'keys must be a one-dimensional array' USING ERRCODE = '22023';
    END IF;
    IF array_position($1, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'cache key must not be null' USING ERRCODE = '22004';
    END IF;
    IF cardinality($1) = 0 THEN
        RETURN 0;
    END IF;
    hs := ARRAY(SELECT encode(substring(sha256(convert_to(u.k, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid FROM unnest($1) AS u(k));
    PERFORM 1 FROM public.cache_entries AS e WHERE e.key_hash = ANY (hs) ORDER BY e.key_hash FOR UPDATE;
    WITH gone AS (
        DELETE FROM public.cache_entries AS e
         USING (SELECT DISTINCT u.k, encode(substring(sha256(convert_to(u.k, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid AS h FROM unnest($1) AS u(k)) AS d
         WHERE e.key_hash = d.h AND e.key = d.k
        RETURNING (e.expires_at IS NULL OR e.expires_at > clock_timestamp()) AS live)
    SELECT count(*) FILTER (WHERE gone.live) INTO n FROM gone;
    RETURN n;
END
$fn$;

-- MSETNX: every pair is set only if none of the keys is live; true if set.
-- Existing rows are locked in key_hash order, missing ones inserted in that
-- order with DO NOTHING; if a concurrent insert won one of them, this
-- attempt's inserts are removed and it looks again.
CREATE OR REPLACE FUNCTION public.cache_msetnx(keys text[], "values" text[], ttl integer DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    n integer;
    hs uuid[];
    ks text[];
    vs text[];
    exp timestamptz;
    locked uuid[];
    nlive integer;
    inserted uuid[];
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
        RETURN true;
    END IF;
    -- one pair per key (the last value wins), in key_hash order
    SELECT array_agg(d.h ORDER BY d.h), array_agg(d.k ORDER BY d.h), array_agg(d.v ORDER BY d.h)
      INTO hs, ks, vs
      FROM (SELECT DISTINCT ON (s.h) s.h, s.k, s.v
              FROM (SELECT encode(substring(sha256(convert_to(u.k, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid AS h, u.k, u.v, u.ord
                      FROM unnest($1, $2) WITH ORDINALITY AS u(k, v, ord)) AS s
             ORDER BY s.h, s.ord DESC) AS d;
    LOOP
        SELECT array_agg(l.key_hash), count(*) FILTER (WHERE l.key = u.k AND l.live)
          INTO locked, nlive
          FROM (SELECT e.key_hash, e.key, (e.expires_at IS NULL OR e.expires_at > clock_timestamp()) AS live
                  FROM public.cache_entries AS e
                 WHERE e.key_hash = ANY (hs)
                 ORDER BY e.key_hash
                   FOR UPDATE) AS l
          JOIN unnest(hs, ks) AS u(h, k) ON u.h = l.key_hash;
        IF nlive > 0 THEN
            RETURN false;
        END IF;
        exp := CASE WHEN $3 IS NULL THEN NULL ELSE clock_timestamp() + make_interval(secs => $3) END;
        WITH ins AS (
            INSERT INTO public.cache_entries AS e (key_hash, key, kind, value, expires_at)
            SELECT u.h, u.k, 't', convert_to(u.v, getdatabaseencoding()), exp
              FROM unnest(hs, ks, vs) AS u(h, k, v)
             WHERE u.h <> ALL (coalesce(locked, '{}'))
             ORDER BY u.h
            ON CONFLICT (key_hash) DO NOTHING
            RETURNING e.key_hash)
        SELECT coalesce(array_agg(ins.key_hash), '{}') INTO inserted FROM ins;
        IF cardinality(inserted) + coalesce(cardinality(locked), 0) = cardinality(hs) THEN
            -- the locked rows were expired or held other keys: take them over
            UPDATE public.cache_entries AS e
               SET key = u.k, kind = 't', value = convert_to(u.v, getdatabaseencoding()), expires_at = exp
              FROM unnest(hs, ks, vs) AS u(h, k, v)
             WHERE e.key_hash = u.h AND e.key_hash = ANY (coalesce(locked, '{}'));
            RETURN true;
        END IF;
        -- a concurrent writer created one of the keys meanwhile: undo, look again
        DELETE FROM public.cache_entries AS e WHERE e.key_hash = ANY (inserted);
    END LOOP;
END
$fn$;

-- FLUSHDB: deletes every entry (a DELETE: transactional, so a rolled-back
-- flush removes nothing); returns how many live entries it removed.
CREATE OR REPLACE FUNCTION public.cache_flush()
RETURNS bigint
LANGUAGE sql VOLATILE PARALLEL UNSAFE
BEGIN ATOMIC
    WITH gone AS (
        DELETE FROM public.cache_entries AS e
        RETURNING (e.expires_at IS NULL OR e.expires_at > clock_timestamp()) AS live)
    SELECT count(*) FILTER (WHERE gone.live) FROM gone;
END;

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
-- -2 = missing or expired.  An expiry more than 2^31 - 1 seconds away (68
-- years: cache_pexpire and cache_expireat can set one) reads as 2147483647,
-- as in the extension (cache_pttl has the exact figure).
CREATE OR REPLACE FUNCTION public.cache_ttl(key text)
RETURNS integer
LANGUAGE sql VOLATILE STRICT PARALLEL RESTRICTED
BEGIN ATOMIC
    SELECT coalesce(
        (SELECT CASE WHEN t.expires_at IS NULL THEN -1
                     ELSE least(2147483647, greatest(1, ceil(extract(epoch FROM t.expires_at - t.now))))::integer
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


-- Byte length of the live value, 0 if absent (STRLEN).
CREATE OR REPLACE FUNCTION public.cache_strlen(key text)
RETURNS integer
LANGUAGE sql VOLATILE STRICT PARALLEL RESTRICTED
BEGIN ATOMIC
    SELECT coalesce(
        (SELECT octet_length(e.value)
           FROM public.cache_entries AS e
          WHERE e.key_hash = encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid
            AND e.key = $1
            AND (e.expires_at IS NULL OR e.expires_at > clock_timestamp())),
        0);
END;

-- Milliseconds left, rounded up (a live key never reports 0); -1 = no
-- expiry; -2 = missing or expired (PTTL).
CREATE OR REPLACE FUNCTION public.cache_pttl(key text)
RETURNS bigint
LANGUAGE sql VOLATILE STRICT PARALLEL RESTRICTED
BEGIN ATOMIC
    SELECT coalesce(
        (SELECT CASE WHEN t.expires_at IS NULL THEN -1
                     ELSE ceil(extract(epoch FROM t.expires_at - t.now) * 1000)::bigint
                END
           FROM (SELECT e.expires_at, clock_timestamp() AS now
                   FROM public.cache_entries AS e
                  WHERE e.key_hash = encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid
                    AND e.key = $1) AS t
          WHERE t.expires_at IS NULL OR t.expires_at > t.now),
        -2);
END;

-- 'text', 'json' or 'bytes' (any other kind reads as text); NULL if absent.
CREATE OR REPLACE FUNCTION public.cache_type(key text)
RETURNS text
LANGUAGE sql VOLATILE STRICT PARALLEL RESTRICTED
BEGIN ATOMIC
    SELECT CASE e.kind WHEN 'j' THEN 'json' WHEN 'b' THEN 'bytes' ELSE 'text' END
      FROM public.cache_entries AS e
     WHERE e.key_hash = encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid
       AND e.key = $1
       AND (e.expires_at IS NULL OR e.expires_at > clock_timestamp());
END;

-- EXISTS k1 k2 ...: how many of the listed keys are live, a key listed
-- twice counting twice; one statement, so one snapshot.
CREATE OR REPLACE FUNCTION public.cache_exists(keys text[])
RETURNS integer
LANGUAGE plpgsql VOLATILE STRICT PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    n integer;
BEGIN
    IF array_ndims($1) > 1 THEN
        RAISE EXCEPTION 'keys must be a one-dimensional array' USING ERRCODE = '22023';
    END IF;
    IF array_position($1, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'cache key must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT count(*) INTO n
      FROM unnest($1) AS u(k)
     WHERE EXISTS (SELECT 1
                     FROM public.cache_entries AS e
                    WHERE e.key_hash = encode(substring(sha256(convert_to(u.k, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid
                      AND e.key = u.k
                      AND (e.expires_at IS NULL OR e.expires_at > clock_timestamp()));
    RETURN n;
END
$fn$;

-- Exact number of live entries (DBSIZE).
CREATE OR REPLACE FUNCTION public.cache_dbsize()
RETURNS bigint
LANGUAGE sql VOLATILE PARALLEL RESTRICTED
BEGIN ATOMIC
    SELECT count(*)
      FROM public.cache_entries AS e
     WHERE e.expires_at IS NULL OR e.expires_at > clock_timestamp();
END;

-- A Redis glob pattern as an anchored regular expression over the lowercase
-- hex of a key's bytes (two hex digits per byte, so matching is byte-wise
-- whatever the encoding), following redis-server's stringmatchlen():
--   *  any bytes (runs of * are one)      ?  one byte
--   [abc] [^abc] [a-z]  one byte of a set; ranges compare bytes as signed
--       char and may be given backwards; \x inside a set is x; a ']'
--       right after '[' (or '[^') closes an empty set; a set left open at
--       the end of the pattern ends there
--   \x  the byte x (a trailing \ is itself)
-- Redis never matches the empty key against anything but '*' and '': the
-- callers test that case themselves.
CREATE OR REPLACE FUNCTION public._fastpgcache_glob_regex(pattern text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    p bytea := convert_to($1, getdatabaseencoding());
    n integer := octet_length(p);
    i integer := 0;
    c integer;
    re text := '^';
    neg boolean;
    members boolean[];
    lo integer;
    hi integer;
    t integer;
    b integer;
    hn integer;
    lows text;
    alts text[];
BEGIN
    WHILE i < n LOOP
        c := get_byte(p, i);
        IF c = 42 THEN                                  -- *
            WHILE i + 1 < n AND get_byte(p, i + 1) = 42 LOOP
                i := i + 1;
            END LOOP;
            re := re || '(?:..)*';
        ELSIF c = 63 THEN                               -- ?
            re := re || '..';
        ELSIF c = 91 THEN                               -- [
            i := i + 1;
            neg := i < n AND get_byte(p, i) = 94;       -- ^
            IF neg THEN
                i := i + 1;
            END IF;
            members := array_fill(false, ARRAY[256], ARRAY[0]);
            LOOP
                IF n - i >= 2 AND get_byte(p, i) = 92 THEN              -- \x
                    i := i + 1;
                    members[get_byte(p, i)] := true;
                ELSIF i < n AND get_byte(p, i) = 93 THEN                -- ]
                    EXIT;
                ELSIF i >= n THEN                                       -- unclosed
                    i := i - 1;
                    EXIT;
                ELSIF n - i >= 3 AND get_byte(p, i + 1) = 45 THEN       -- a-z
                    lo := get_byte(p, i);
                    hi := get_byte(p, i + 2);
                    lo := CASE WHEN lo >= 128 THEN lo - 256 ELSE lo END;
                    hi := CASE WHEN hi >= 128 THEN hi - 256 ELSE hi END;
                    IF lo > hi THEN
                        t := lo; lo := hi; hi := t;
                    END IF;
                    FOR b IN lo .. hi LOOP
                        members[CASE WHEN b < 0 THEN b + 256 ELSE b END] := true;
                    END LOOP;
                    i := i + 2;
                ELSE
                    members[get_byte(p, i)] := true;
                END IF;
                i := i + 1;
            END LOOP;
            alts := '{}';
            FOR hn IN 0 .. 15 LOOP
                lows := '';
                FOR b IN 0 .. 15 LOOP
                    IF members[hn * 16 + b] <> neg THEN
                        lows := lows || to_hex(b);
                    END IF;
                END LOOP;
                IF lows = '0123456789abcdef' THEN
                    alts := alts || (to_hex(hn) || '.');
                ELSIF lows <> '' THEN
                    alts := alts || (to_hex(hn) || '[' || lows || ']');
                END IF;
            END LOOP;
            -- an empty set matches nothing: 'g' is never a hex digit
            re := re || CASE WHEN cardinality(alts) = 0 THEN 'g'
                             ELSE '(?:' || array_to_string(alts, '|') || ')' END;
        ELSIF c = 92 AND n - i >= 2 THEN                -- \x
            i := i + 1;
            re := re || lpad(to_hex(get_byte(p, i)), 2, '0');
        ELSE
            re := re || lpad(to_hex(c), 2, '0');
        END IF;
        i := i + 1;
    END LOOP;
    RETURN re || '$';
END
$fn$;

-- KEYS pattern: every live key that redis-server's KEYS would match.
CREATE OR REPLACE FUNCTION public.cache_keys(pattern text DEFAULT '*')
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE STRICT PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    re text;
BEGIN
    IF $1 = '*' THEN
        RETURN QUERY
            SELECT e.key FROM public.cache_entries AS e
             WHERE e.expires_at IS NULL OR e.expires_at > clock_timestamp();
        RETURN;
    END IF;
    re := public._fastpgcache_glob_regex($1);
    RETURN QUERY
        SELECT e.key FROM public.cache_entries AS e
         WHERE (e.expires_at IS NULL OR e.expires_at > clock_timestamp())
           AND CASE WHEN e.key = '' THEN $1 = ''
                    ELSE encode(convert_to(e.key, getdatabaseencoding()), 'hex') ~ re END;
END
$fn$;

-- SCAN.  The cursor is a position in key_hash order: the first 8 bytes of a
-- key_hash, big-endian, shifted right by one (so it is a non-negative
-- bigint).  A call examines the `count` rows from the cursor on (expired
-- and non-matching rows included), plus any later rows at the same
-- position as the last one, and returns the matching live keys among them
-- and the position after the last; 0 when no row follows.
-- Ranges of positions follow each other without gaps, so a key that exists
-- for the whole iteration is returned, whatever else is written meanwhile.
CREATE OR REPLACE FUNCTION public.cache_scan(cursor bigint DEFAULT 0, pattern text DEFAULT '*', count integer DEFAULT 100)
RETURNS TABLE(next_cursor bigint, keys text[])
LANGUAGE plpgsql VOLATILE STRICT PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    re text;
    lb uuid;
BEGIN
    IF $1 < 0 THEN
        RAISE EXCEPTION 'invalid cursor %', $1 USING ERRCODE = '22023';
    END IF;
    IF $3 < 1 THEN
        RAISE EXCEPTION 'count must be at least 1, got %', $3 USING ERRCODE = '22023';
    END IF;
    re := CASE WHEN $2 = '*' THEN NULL ELSE public._fastpgcache_glob_regex($2) END;
    lb := (lpad(to_hex(($1::bit(64) << 1)::bigint), 16, '0') || '0000000000000000')::uuid;
    RETURN QUERY
    WITH fetched AS (  -- one row more than count, to know whether any follows
        SELECT f.key_hash, f.key, f.expires_at, row_number() OVER (ORDER BY f.key_hash) AS rn
          FROM (SELECT e.key_hash, e.key, e.expires_at
                  FROM public.cache_entries AS e
                 WHERE e.key_hash >= lb
                 ORDER BY e.key_hash
                 LIMIT $3::bigint + 1) AS f),
    last AS (  -- the count-th row, and whether more rows follow it
        SELECT t.h, t.more, ('x' || left(replace(t.h::text, '-', ''), 16))::bit(64) AS head
          FROM (SELECT (SELECT f.key_hash FROM fetched AS f WHERE f.rn = $3) AS h,
                       EXISTS (SELECT 1 FROM fetched AS f WHERE f.rn > $3) AS more) AS t),
    nxt AS (  -- the position after the last examined row; NULL when nothing follows
        SELECT CASE WHEN NOT l.more OR (l.head >> 1)::bigint = 9223372036854775807 THEN NULL
                    ELSE (l.head >> 1)::bigint + 1 END AS pos,
               -- the greatest key_hash at the last row's position
               (lpad(to_hex((l.head | 1::bit(64))::bigint), 16, '0') || 'ffffffffffffffff')::uuid AS ub
          FROM last AS l),
    ties AS (  -- rows after the count-th one at its position (their first 63 bits agree)
        SELECT e.key_hash, e.key, e.expires_at
          FROM public.cache_entries AS e, last AS l, nxt
         WHERE l.more AND e.key_hash > l.h AND e.key_hash <= nxt.ub)
    SELECT coalesce(nxt.pos, 0),
           coalesce((SELECT array_agg(x.key ORDER BY x.key_hash)
                       FROM (SELECT f.key_hash, f.key, f.expires_at FROM fetched AS f WHERE f.rn <= $3
                             UNION ALL
                             SELECT * FROM ties) AS x
                      WHERE (x.expires_at IS NULL OR x.expires_at > clock_timestamp())
                        AND (re IS NULL
                             OR CASE WHEN x.key = '' THEN $2 = ''
                                     ELSE encode(convert_to(x.key, getdatabaseencoding()), 'hex') ~ re END)),
                    '{}')
      FROM nxt;
END
$fn$;

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
                         'cache_exists', 'cache_ttl', 'cache_cleanup', 'cache_mget', 'cache_mset',
                         'cache_getset', 'cache_incr', 'cache_decr', 'cache_incrbyfloat', 'cache_append',
                         'cache_strlen', 'cache_expire', 'cache_pexpire', 'cache_expireat', 'cache_persist',
                         'cache_pttl', 'cache_getdel', 'cache_getex', 'cache_type', 'cache_keys', 'cache_scan',
                         'cache_flush', 'cache_dbsize', 'cache_msetnx',
                         '_fastpgcache_set', '_fastpgcache_float', '_fastpgcache_glob_regex')
       AND p.proowner IS DISTINCT FROM (SELECT r.oid FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user);
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'fastpgcache fallback functions owned by another role: %', bad
            USING ERRCODE = '42501';
    END IF;
END
$check$;

COMMIT;
