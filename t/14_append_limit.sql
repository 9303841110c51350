-- cache_append past PostgreSQL's largest value (about 1 GB): 54000 and the
-- value unchanged. It writes a 600 MB value and passes a 500 MB argument
-- (about 20 s and 2 GB of memory on a small machine), so it only runs when
-- asked for:  PGOPTIONS='-c fpc_test.big=on' pg_prove -d DB t/14_append_limit.sql
-- Otherwise its tests are skipped. Uses only the public API.
BEGIN;
SELECT plan(3);

-- lz4 (where the server has it) stores the 600 MB faster than pglz
DO $$
BEGIN
    IF current_setting('fpc_test.big', true) = 'on' THEN
        BEGIN
            SET LOCAL default_toast_compression = 'lz4';
        EXCEPTION WHEN invalid_parameter_value THEN
            NULL;
        END;
    END IF;
END
$$;
SELECT CASE WHEN current_setting('fpc_test.big', true) = 'on'
            THEN cache_set('big', repeat('x', 600 * 1024 * 1024)) END;
SELECT CASE WHEN current_setting('fpc_test.big', true) = 'on' THEN
    throws_ok($$SELECT cache_append('big', repeat('y', 500 * 1024 * 1024))$$, '54000', NULL,
              'an append past 1 GB: 54000')
ELSE skip('set fpc_test.big = on to append past 1 GB', 1) END;
SELECT CASE WHEN current_setting('fpc_test.big', true) = 'on' THEN
    is(cache_strlen('big'), 600 * 1024 * 1024, 'the value keeps its length')
ELSE skip('set fpc_test.big = on to append past 1 GB', 1) END;
SELECT CASE WHEN current_setting('fpc_test.big', true) = 'on' THEN
    is(cache_append('big', 'z'), 600 * 1024 * 1024 + 1::bigint, 'and can still be appended to')
ELSE skip('set fpc_test.big = on to append past 1 GB', 1) END;

SELECT * FROM finish();
ROLLBACK;
