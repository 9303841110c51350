-- router: skip file: it grants and revokes on the cache_entries table, which a router database does not have (the shards do; the router checks EXECUTE and read-only transactions in test/router/run.sh)
-- The 1.1 functions under a caller without privileges (42501), in a
-- read-only transaction (25006 for writes, reads work) and under a hostile
-- search_path (they still use the cache's own table and pg_catalog). Uses
-- only the public API.
BEGIN;
SELECT plan(52);

-- Runs q with one setting changed, in a block that is always rolled back
-- (so neither its writes nor the setting survive); returns 'ok' or the
-- SQLSTATE it raised.
CREATE FUNCTION pg_temp.sqlstate_under(setting text, val text, q text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        PERFORM set_config(setting, val, true);
        EXECUTE q;
        RAISE EXCEPTION 'done' USING ERRCODE = 'P0099';
    EXCEPTION WHEN OTHERS THEN
        RETURN CASE WHEN SQLSTATE = 'P0099' THEN 'ok' ELSE SQLSTATE END;
    END;
END
$$;
-- Runs the one-value query q with search_path set to sp, keeps its writes,
-- and returns its value as text.
CREATE FUNCTION pg_temp.value_under_path(sp text, q text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    old text := current_setting('search_path');
    v text;
BEGIN
    PERFORM set_config('search_path', sp, true);
    EXECUTE q INTO v;
    PERFORM set_config('search_path', old, true);
    RETURN v;
END
$$;

SELECT cache_set('acc', '5', 100), cache_set('acc:bin', '\xff'::bytea);

-- A role with no privilege on the table: every function refuses with 42501
CREATE ROLE fpc_t13_none;
CREATE ROLE fpc_t13_reader;
GRANT SELECT ON cache_entries TO fpc_t13_reader;
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_none', $$SELECT cache_set('acc', 'v', nx => true)$$), '42501', 'no privilege: set nx');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_none', $$SELECT cache_incr('acc')$$), '42501', 'no privilege: incr');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_none', $$SELECT cache_getset('acc', 'v')$$), '42501', 'no privilege: getset');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_none', $$SELECT cache_pttl('acc')$$), '42501', 'no privilege: pttl');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_none', $$SELECT cache_type('acc')$$), '42501', 'no privilege: type');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_none', $$SELECT cache_strlen('acc')$$), '42501', 'no privilege: strlen');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_none', $$SELECT cache_exists(ARRAY['acc'])$$), '42501', 'no privilege: exists(array)');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_none', $$SELECT count(*) FROM cache_keys()$$), '42501', 'no privilege: keys');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_none', $$SELECT * FROM cache_scan(0)$$), '42501', 'no privilege: scan');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_none', $$SELECT cache_dbsize()$$), '42501', 'no privilege: dbsize');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_none', $$SELECT cache_getex('acc')$$), '42501', 'no privilege: getex');

-- A role that may only read: reads work, writes refuse with 42501
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_reader', $$SELECT cache_pttl('acc'), cache_type('acc'), cache_strlen('acc'),
                                                               cache_exists(ARRAY['acc']), cache_dbsize(), cache_getex('acc')$$),
          'ok', 'a reader can pttl, type, strlen, exists, dbsize and getex without options');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_reader', $$SELECT count(*) FROM cache_keys('*'), cache_scan(0, 'a*', 5)$$),
          'ok', 'a reader can list keys and scan');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_reader', $$SELECT cache_set('acc', 'v', xx => true)$$), '42501', 'reader: set xx');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_reader', $$SELECT cache_set('acc', 'v', keepttl => true)$$), '42501', 'reader: set keepttl');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_reader', $$SELECT cache_incr('acc')$$), '42501', 'reader: incr');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_reader', $$SELECT cache_decr('acc')$$), '42501', 'reader: decr');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_reader', $$SELECT cache_incrbyfloat('acc', 1)$$), '42501', 'reader: incrbyfloat');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_reader', $$SELECT cache_append('acc', 'x')$$), '42501', 'reader: append');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_reader', $$SELECT cache_expire('acc', 10)$$), '42501', 'reader: expire');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_reader', $$SELECT cache_persist('acc')$$), '42501', 'reader: persist');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_reader', $$SELECT cache_getdel('acc')$$), '42501', 'reader: getdel');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_reader', $$SELECT cache_getex('acc', 10)$$), '42501', 'reader: getex with a ttl');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_reader', $$SELECT cache_delete(ARRAY['acc'])$$), '42501', 'reader: delete(array)');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_reader', $$SELECT cache_msetnx(ARRAY['acc:new'], ARRAY['v'])$$), '42501', 'reader: msetnx');
SELECT is(pg_temp.sqlstate_under('role', 'fpc_t13_reader', $$SELECT cache_flush()$$), '42501', 'reader: flush');
SELECT is(cache_get('acc') || ' ' || cache_ttl('acc'), '5 100', 'nothing was changed by the refused calls');

-- Read-only transaction: writes raise 25006, reads work
SELECT is(pg_temp.sqlstate_under('transaction_read_only', 'on', $$SELECT cache_set('ro:new', 'v', nx => true)$$), '25006', 'read-only: set nx of a missing key');
SELECT is(pg_temp.sqlstate_under('transaction_read_only', 'on', $$SELECT cache_getset('acc', 'v')$$), '25006', 'read-only: getset');
SELECT is(pg_temp.sqlstate_under('transaction_read_only', 'on', $$SELECT cache_incr('acc')$$), '25006', 'read-only: incr');
SELECT is(pg_temp.sqlstate_under('transaction_read_only', 'on', $$SELECT cache_incrbyfloat('acc', 1)$$), '25006', 'read-only: incrbyfloat');
SELECT is(pg_temp.sqlstate_under('transaction_read_only', 'on', $$SELECT cache_append('acc', 'x')$$), '25006', 'read-only: append');
SELECT is(pg_temp.sqlstate_under('transaction_read_only', 'on', $$SELECT cache_pexpire('acc', 10)$$), '25006', 'read-only: pexpire');
SELECT is(pg_temp.sqlstate_under('transaction_read_only', 'on', $$SELECT cache_expireat('acc', clock_timestamp() + interval '1 day')$$), '25006', 'read-only: expireat');
SELECT is(pg_temp.sqlstate_under('transaction_read_only', 'on', $$SELECT cache_getdel('acc')$$), '25006', 'read-only: getdel');
SELECT is(pg_temp.sqlstate_under('transaction_read_only', 'on', $$SELECT cache_getex('acc', persist => true)$$), '25006', 'read-only: getex persist');
SELECT is(pg_temp.sqlstate_under('transaction_read_only', 'on', $$SELECT cache_delete(ARRAY['acc'])$$), '25006', 'read-only: delete(array)');
SELECT is(pg_temp.sqlstate_under('transaction_read_only', 'on', $$SELECT cache_msetnx(ARRAY['ro'], ARRAY['v'])$$), '25006', 'read-only: msetnx');
SELECT is(pg_temp.sqlstate_under('transaction_read_only', 'on', $$SELECT cache_flush()$$), '25006', 'read-only: flush');
SELECT is(pg_temp.sqlstate_under('transaction_read_only', 'on',
                                 $$SELECT cache_pttl('acc'), cache_type('acc'), cache_strlen('acc'), cache_exists(ARRAY['acc', 'acc']),
                                          cache_dbsize(), cache_getex('acc'), (SELECT count(*) FROM cache_keys('a*')),
                                          (SELECT keys FROM cache_scan(0, '*', 3))$$),
          'ok', 'read-only: the reads work');

-- A hostile search_path: a schema first on the path with its own
-- cache_entries, clock_timestamp(), now() and sha256() changes nothing.
CREATE SCHEMA fpc_t13_evil;
CREATE TABLE fpc_t13_evil.cache_entries (LIKE cache_entries INCLUDING ALL);
INSERT INTO fpc_t13_evil.cache_entries SELECT * FROM cache_entries;
UPDATE fpc_t13_evil.cache_entries SET value = convert_to('evil', 'UTF8'), expires_at = NULL;
CREATE FUNCTION fpc_t13_evil.clock_timestamp() RETURNS timestamptz LANGUAGE sql AS $$SELECT '2000-01-01'::timestamptz$$;
CREATE FUNCTION fpc_t13_evil.now() RETURNS timestamptz LANGUAGE sql AS $$SELECT '2000-01-01'::timestamptz$$;
CREATE FUNCTION fpc_t13_evil.sha256(bytea) RETURNS bytea LANGUAGE sql AS $$SELECT '\x00000000000000000000000000000000'::bytea$$;
SELECT cache_set('hp:gone', 'v');
SELECT cache_pexpire('hp:gone', 20);
SELECT pg_sleep(0.06);
SELECT is(pg_temp.value_under_path('fpc_t13_evil, pg_catalog, public',
                                   $$SELECT coalesce(cache_getex('hp:gone'), 'absent') || ' ' || cache_pttl('hp:gone') || ' '
                                            || coalesce(cache_type('hp:gone'), 'none') || ' ' || cache_strlen('hp:gone')$$),
          'absent -2 none 0', 'hostile path: an expired key stays absent (getex, pttl, type, strlen)');
SELECT is(pg_temp.value_under_path('fpc_t13_evil, pg_catalog, public',
                                   $$SELECT (SELECT count(*) FROM cache_keys('hp:*')) || ' ' || cache_exists(ARRAY['hp:gone', 'acc'])
                                            || ' ' || cache_dbsize()$$),
          '0 1 ' || cache_dbsize(), 'hostile path: keys, exists and dbsize');
SELECT is(pg_temp.value_under_path('fpc_t13_evil, pg_catalog, public',
                                   $$SELECT (SELECT array_to_string(keys, ',') FROM cache_scan(0, 'hp:*', 1000))$$),
          '', 'hostile path: scan');
SELECT is(pg_temp.value_under_path('fpc_t13_evil, pg_catalog, public', $$SELECT cache_incr('acc', 2)::text$$), '7', 'hostile path: incr reads and writes the cache');
SELECT is(pg_temp.value_under_path('fpc_t13_evil, pg_catalog, public', $$SELECT cache_getset('acc', 'g')$$), '7', 'hostile path: getset');
SELECT is(pg_temp.value_under_path('fpc_t13_evil, pg_catalog, public', $$SELECT cache_append('acc', 'h')::text$$), '2', 'hostile path: append');
SELECT is(pg_temp.value_under_path('fpc_t13_evil, pg_catalog, public', $$SELECT cache_set('hp:nx', 'n', nx => true)::text$$), 'true', 'hostile path: set nx');
SELECT is(pg_temp.value_under_path('fpc_t13_evil, pg_catalog, public', $$SELECT cache_expire('hp:nx', 100)::text$$), 'true', 'hostile path: expire');
SELECT is(pg_temp.value_under_path('fpc_t13_evil, pg_catalog, public', $$SELECT cache_msetnx(ARRAY['hp:m'], ARRAY['m'])::text$$), 'true', 'hostile path: msetnx');
SELECT is(pg_temp.value_under_path('fpc_t13_evil, pg_catalog, public', $$SELECT cache_getdel('hp:m')$$), 'm', 'hostile path: getdel');
SELECT is(cache_get('acc') || ' ' || cache_get('hp:nx') || ' ' || cache_ttl('hp:nx') || ' ' || cache_exists('hp:m'), 'gh n 100 false',
          'the writes landed in the cache, with real expiry times');
SELECT is((SELECT string_agg(DISTINCT convert_from(value, 'UTF8'), ',') FROM fpc_t13_evil.cache_entries), 'evil',
          'and none in the impostor table');

SELECT * FROM finish();
ROLLBACK;
