-- Test-only helpers for sql/boundary.sql.

\echo Use "CREATE EXTENSION fastpgcache_selftest" to load this file. \quit

-- fastpgcache_selftest(mode): each failing mode raises its error while a C++
-- object with a destructor is alive; 'destructors' returns how many of those
-- objects this backend has destroyed.
CREATE FUNCTION fastpgcache_selftest(mode text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'fastpgcache_selftest'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION fastpgcache_selftest(text) FROM PUBLIC;
