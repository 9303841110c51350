-- From 1.0: cache_set gains nx, xx and keepttl. The three-argument
-- functions go (with defaults, the six-argument ones would make every call
-- ambiguous) and are created again below with the rest of the command set.
DROP FUNCTION @extschema@.cache_set(text, text, integer);
DROP FUNCTION @extschema@.cache_set(text, jsonb, integer);
DROP FUNCTION @extschema@.cache_set(text, bytea, integer);
-- A test-only function that early 1.0 installs carried.
DROP FUNCTION IF EXISTS @extschema@.fastpgcache_selftest(text);
