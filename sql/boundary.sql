-- The C++ / PostgreSQL boundary: every failure of the C++ side becomes an
-- ordinary PostgreSQL error, after the C++ destructors have run, and the
-- backend keeps working. fastpgcache_selftest is a test-only extension
-- (test/selftest) built from the same bridge code (src/pg_bridge.cpp).
CREATE EXTENSION fastpgcache_selftest;
SELECT fastpgcache_selftest('destructors') AS destroyed_before;

SELECT fastpgcache_selftest('bad_alloc');
SELECT fastpgcache_selftest('cpp_exception');
SELECT fastpgcache_selftest('cache_error');
SELECT fastpgcache_selftest('pg_error');
SELECT fastpgcache_selftest('no such mode');
-- Copying the PostgreSQL error fails: reported as out of memory, no crash.
SELECT fastpgcache_selftest('copy_fails');
-- PostgreSQL's error stack left pointing into a dead frame: caught, restored.
SELECT fastpgcache_selftest('dead_frame');
-- ... and errors after it land where they should.
SELECT fastpgcache_selftest('pg_error');

-- Each of the eight calls above destroyed its C++ object before the error.
SELECT fastpgcache_selftest('destructors') AS destroyed_after;

-- SQLSTATEs survive the trip: the PostgreSQL error keeps its own.
CREATE FUNCTION pg_temp.sqlstate_of(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE query;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
SELECT m, pg_temp.sqlstate_of(format('SELECT fastpgcache_selftest(%L)', m))
FROM unnest(ARRAY['bad_alloc', 'cpp_exception', 'cache_error', 'pg_error', 'copy_fails', 'dead_frame']) m;

-- A real SPI error: the table is gone when the kept plans are parsed again
-- (42P01: undefined_table, raised by the parser inside SPI).
SELECT cache_set('before', 'rename');
ALTER TABLE cache_entries RENAME TO cache_entries_moved;
SELECT pg_temp.sqlstate_of($$SELECT cache_get('before')$$) AS get,
       pg_temp.sqlstate_of($$SELECT cache_set('during', 'rename')$$) AS set,
       pg_temp.sqlstate_of($$SELECT cache_delete('before')$$) AS delete;
SELECT 1 AS still_serving;
ALTER TABLE cache_entries_moved RENAME TO cache_entries;
SELECT cache_get('before');

-- The same error inside a PL/pgSQL exception block is caught, and the
-- session goes on using the cache.
ALTER TABLE cache_entries RENAME TO cache_entries_moved;
DO $$
BEGIN
  PERFORM cache_get('before');
EXCEPTION WHEN undefined_table THEN
  RAISE NOTICE 'caught undefined_table';
END $$;
ALTER TABLE cache_entries_moved RENAME TO cache_entries;
SELECT cache_get('before');
