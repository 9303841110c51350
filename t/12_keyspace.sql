-- The key space: cache_keys (KEYS with Redis glob patterns), cache_scan
-- (SCAN), cache_dbsize (DBSIZE), cache_flush (FLUSHDB). Uses only the
-- public API.
BEGIN;
SELECT plan(71);

-- Start from an empty cache (the whole file is rolled back at the end).
SELECT cache_flush();

-- KEYS: the expected lists are what redis-server 7.0 answered for the same
-- keys and patterns (byte-wise: '?' is one byte, 'é' is two).
SELECT cache_mset(ARRAY['hello', 'hallo', 'hxllo', 'hllo', 'heeeello', 'h*llo', 'user:1', 'user:2', 'user:10', 'User:3',
                        'é', 'a]', ']', '^', '_', '\', 'a-b', '[x]', 'x', 'a', 'b', '`', ''],
                  array_fill('v'::text, ARRAY[23]));
SELECT is(ARRAY(SELECT k FROM cache_keys('*') AS k ORDER BY k COLLATE "C"), ARRAY['', 'User:3', '[x]', '\', ']', '^', '_', '`', 'a', 'a-b', 'a]', 'b', 'h*llo', 'hallo', 'heeeello', 'hello', 'hllo', 'hxllo', 'user:1', 'user:10', 'user:2', 'x', 'é']::text[], 'keys ' || '*');
SELECT is(ARRAY(SELECT k FROM cache_keys('**') AS k ORDER BY k COLLATE "C"), ARRAY['User:3', '[x]', '\', ']', '^', '_', '`', 'a', 'a-b', 'a]', 'b', 'h*llo', 'hallo', 'heeeello', 'hello', 'hllo', 'hxllo', 'user:1', 'user:10', 'user:2', 'x', 'é']::text[], 'keys ' || '**');
SELECT is(ARRAY(SELECT k FROM cache_keys('') AS k ORDER BY k COLLATE "C"), ARRAY['']::text[], 'keys ' || '');
SELECT is(ARRAY(SELECT k FROM cache_keys('h?llo') AS k ORDER BY k COLLATE "C"), ARRAY['h*llo', 'hallo', 'hello', 'hxllo']::text[], 'keys ' || 'h?llo');
SELECT is(ARRAY(SELECT k FROM cache_keys('h*llo') AS k ORDER BY k COLLATE "C"), ARRAY['h*llo', 'hallo', 'heeeello', 'hello', 'hllo', 'hxllo']::text[], 'keys ' || 'h*llo');
SELECT is(ARRAY(SELECT k FROM cache_keys('h[ae]llo') AS k ORDER BY k COLLATE "C"), ARRAY['hallo', 'hello']::text[], 'keys ' || 'h[ae]llo');
SELECT is(ARRAY(SELECT k FROM cache_keys('h[^e]llo') AS k ORDER BY k COLLATE "C"), ARRAY['h*llo', 'hallo', 'hxllo']::text[], 'keys ' || 'h[^e]llo');
SELECT is(ARRAY(SELECT k FROM cache_keys('h[a-b]llo') AS k ORDER BY k COLLATE "C"), ARRAY['hallo']::text[], 'keys ' || 'h[a-b]llo');
SELECT is(ARRAY(SELECT k FROM cache_keys('h\*llo') AS k ORDER BY k COLLATE "C"), ARRAY['h*llo']::text[], 'keys ' || 'h\*llo');
SELECT is(ARRAY(SELECT k FROM cache_keys('user:?') AS k ORDER BY k COLLATE "C"), ARRAY['user:1', 'user:2']::text[], 'keys ' || 'user:?');
SELECT is(ARRAY(SELECT k FROM cache_keys('user:[12]') AS k ORDER BY k COLLATE "C"), ARRAY['user:1', 'user:2']::text[], 'keys ' || 'user:[12]');
SELECT is(ARRAY(SELECT k FROM cache_keys('user:[2-1]') AS k ORDER BY k COLLATE "C"), ARRAY['user:1', 'user:2']::text[], 'keys ' || 'user:[2-1]');
SELECT is(ARRAY(SELECT k FROM cache_keys('user:[^1]*') AS k ORDER BY k COLLATE "C"), ARRAY['user:2']::text[], 'keys ' || 'user:[^1]*');
SELECT is(ARRAY(SELECT k FROM cache_keys('user:*') AS k ORDER BY k COLLATE "C"), ARRAY['user:1', 'user:10', 'user:2']::text[], 'keys ' || 'user:*');
SELECT is(ARRAY(SELECT k FROM cache_keys('USER:*') AS k ORDER BY k COLLATE "C"), '{}'::text[], 'keys ' || 'USER:*');
SELECT is(ARRAY(SELECT k FROM cache_keys('[') AS k ORDER BY k COLLATE "C"), '{}'::text[], 'keys ' || '[');
SELECT is(ARRAY(SELECT k FROM cache_keys('[abc') AS k ORDER BY k COLLATE "C"), ARRAY['a', 'b']::text[], 'keys ' || '[abc');
SELECT is(ARRAY(SELECT k FROM cache_keys('[a-') AS k ORDER BY k COLLATE "C"), ARRAY['a']::text[], 'keys ' || '[a-');
SELECT is(ARRAY(SELECT k FROM cache_keys('a\') AS k ORDER BY k COLLATE "C"), '{}'::text[], 'keys ' || 'a\');
SELECT is(ARRAY(SELECT k FROM cache_keys('[]') AS k ORDER BY k COLLATE "C"), '{}'::text[], 'keys ' || '[]');
SELECT is(ARRAY(SELECT k FROM cache_keys('[^]') AS k ORDER BY k COLLATE "C"), ARRAY['\', ']', '^', '_', '`', 'a', 'b', 'x']::text[], 'keys ' || '[^]');
SELECT is(ARRAY(SELECT k FROM cache_keys('?') AS k ORDER BY k COLLATE "C"), ARRAY['\', ']', '^', '_', '`', 'a', 'b', 'x']::text[], 'keys ' || '?');
SELECT is(ARRAY(SELECT k FROM cache_keys('??') AS k ORDER BY k COLLATE "C"), ARRAY['a]', 'é']::text[], 'keys ' || '??');
SELECT is(ARRAY(SELECT k FROM cache_keys('[é][é]') AS k ORDER BY k COLLATE "C"), ARRAY['é']::text[], 'keys ' || '[é][é]');
SELECT is(ARRAY(SELECT k FROM cache_keys('[a-]') AS k ORDER BY k COLLATE "C"), ARRAY[']', '^', '_', '`', 'a']::text[], 'keys ' || '[a-]');
SELECT is(ARRAY(SELECT k FROM cache_keys('[a-]]') AS k ORDER BY k COLLATE "C"), ARRAY[']', '^', '_', '`', 'a']::text[], 'keys ' || '[a-]]');
SELECT is(ARRAY(SELECT k FROM cache_keys('[\]]') AS k ORDER BY k COLLATE "C"), ARRAY[']']::text[], 'keys ' || '[\]]');
SELECT is(ARRAY(SELECT k FROM cache_keys('\[x\]') AS k ORDER BY k COLLATE "C"), ARRAY['[x]']::text[], 'keys ' || '\[x\]');
SELECT is(ARRAY(SELECT k FROM cache_keys('[[]x]') AS k ORDER BY k COLLATE "C"), ARRAY['[x]']::text[], 'keys ' || '[[]x]');
SELECT is(ARRAY(SELECT k FROM cache_keys('[^a-z]') AS k ORDER BY k COLLATE "C"), ARRAY['\', ']', '^', '_', '`']::text[], 'keys ' || '[^a-z]');
SELECT is(ARRAY(SELECT k FROM cache_keys('*b') AS k ORDER BY k COLLATE "C"), ARRAY['a-b', 'b']::text[], 'keys ' || '*b');
SELECT is(ARRAY(SELECT k FROM cache_keys('a*') AS k ORDER BY k COLLATE "C"), ARRAY['a', 'a-b', 'a]']::text[], 'keys ' || 'a*');
SELECT is(ARRAY(SELECT k FROM cache_keys('[a-é]?') AS k ORDER BY k COLLATE "C"), ARRAY['a]', 'é']::text[], 'keys ' || '[a-é]?');
SELECT is(ARRAY(SELECT k FROM cache_keys('[\') AS k ORDER BY k COLLATE "C"), ARRAY['\']::text[], 'keys ' || '[\');
SELECT is(ARRAY(SELECT k FROM cache_keys('h*l*o') AS k ORDER BY k COLLATE "C"), ARRAY['h*llo', 'hallo', 'heeeello', 'hello', 'hllo', 'hxllo']::text[], 'keys ' || 'h*l*o');
SELECT is(ARRAY(SELECT k FROM cache_keys('*l*l*') AS k ORDER BY k COLLATE "C"), ARRAY['h*llo', 'hallo', 'heeeello', 'hello', 'hllo', 'hxllo']::text[], 'keys ' || '*l*l*');
SELECT is(ARRAY(SELECT k FROM cache_keys() AS k ORDER BY k COLLATE "C"),
          ARRAY(SELECT k FROM cache_keys('*') AS k ORDER BY k COLLATE "C"), 'cache_keys() lists every key');
SELECT is((SELECT count(*) FROM cache_keys(NULL)), 0::bigint, 'keys(NULL) lists nothing');
SELECT cache_pexpire('hello', 20), cache_pexpire('', 20);
SELECT pg_sleep(0.06);
SELECT is(ARRAY(SELECT k FROM cache_keys('h?llo') AS k ORDER BY k COLLATE "C"), ARRAY['h*llo', 'hallo', 'hxllo'],
          'keys does not list an expired key');
SELECT is((SELECT count(*) FROM cache_keys('')), 0::bigint, 'nor the expired empty key');

-- DBSIZE
SELECT is(cache_dbsize(), 21::bigint, 'dbsize counts the live keys only');
SELECT cache_delete(ARRAY['a', 'b']);
SELECT is(cache_dbsize(), 19::bigint, 'dbsize after a delete');

-- SCAN, with nobody else writing: a full iteration returns exactly the live keys
SELECT is((SELECT count(*) FROM cache_scan(0)), 1::bigint, 'scan returns one row');
CREATE TEMP TABLE scan_runs (count integer, calls integer, keys text[], max_batch integer);
DO $$
DECLARE
    c integer;
    cur bigint;
    r record;
    calls integer;
    got text[];
    biggest integer;
BEGIN
    FOREACH c IN ARRAY ARRAY[1, 2, 3, 7, 100] LOOP
        cur := 0; calls := 0; got := '{}'; biggest := 0;
        LOOP
            SELECT * INTO r FROM cache_scan(cur, '*', c);
            calls := calls + 1;
            got := got || r.keys;
            biggest := greatest(biggest, cardinality(r.keys));
            cur := r.next_cursor;
            EXIT WHEN cur = 0 OR calls > 1000;
        END LOOP;
        INSERT INTO scan_runs VALUES (c, calls, got, biggest);
    END LOOP;
END
$$;
SELECT is((SELECT count(*) FROM scan_runs
            WHERE ARRAY(SELECT DISTINCT k COLLATE "C" FROM unnest(keys) AS k ORDER BY 1)
                  = ARRAY(SELECT k FROM cache_keys() AS k ORDER BY k COLLATE "C")), 5::bigint,
          'full scans with count 1, 2, 3, 7 and 100 return exactly the live keys');
SELECT is((SELECT count(*) FROM scan_runs WHERE cardinality(keys) <> 19), 0::bigint, 'with nobody writing, each key once');
SELECT is((SELECT count(*) FROM scan_runs WHERE max_batch > count), 0::bigint, 'no call returns more keys than its count');
-- router: skip: through the router one call covers at most one partition
SELECT is((SELECT count(*) FROM scan_runs WHERE calls NOT BETWEEN ceil(21.0 / count) AND ceil(21.0 / count) + 1), 0::bigint,
          'count bounds the work: about 21 rows / count calls (the 2 expired rows count too)');
-- router: skip: through the router one call covers at most one partition
SELECT is((SELECT calls FROM scan_runs WHERE count = 100), 1, 'count 100 covers the table in one call');
-- router: skip: through the router one call covers at most one partition
SELECT is(ARRAY(SELECT k FROM cache_scan(0, 'user:*', 1000) AS s, unnest(s.keys) AS k ORDER BY k COLLATE "C"),
          ARRAY['user:1', 'user:10', 'user:2'], 'scan with a pattern');
-- router: skip: through the router one call covers at most one partition
SELECT is((SELECT keys FROM cache_scan(0, 'h[ae]llo', 1000)), ARRAY['hallo'], 'scan matches like keys (hello has expired)');
SELECT throws_ok($$SELECT * FROM cache_scan(-1)$$, '22023', NULL, 'a negative cursor: 22023');
SELECT throws_ok($$SELECT * FROM cache_scan(0, '*', 0)$$, '22023', NULL, 'count 0: 22023');
SELECT throws_ok($$SELECT * FROM cache_scan(0, '*', -5)$$, '22023', NULL, 'a negative count: 22023');
SELECT is((SELECT count(*) FROM cache_scan(NULL)), 0::bigint, 'scan(NULL) returns no row');
SELECT is((SELECT next_cursor FROM cache_scan(9223372036854775807, '*', 10)), 0::bigint, 'a cursor past every key ends the iteration');

-- Expired rows are examined but not returned: with count 1, calls over them
-- come back empty with a cursor that goes on.
SAVEPOINT expired_scan;
SELECT cache_flush();
SELECT cache_mset(ARRAY(SELECT 'e:' || i FROM generate_series(1, 20) i), array_fill('v'::text, ARRAY[20]));
SELECT count(cache_pexpire('e:' || i, 20)) FROM generate_series(1, 19) i;
SELECT pg_sleep(0.06);
CREATE TEMP TABLE expired_calls AS
WITH RECURSIVE it(n, cur, keys) AS (
    SELECT 1, s.next_cursor, s.keys FROM cache_scan(0, '*', 1) AS s
    UNION ALL
    SELECT it.n + 1, s.next_cursor, s.keys FROM it, cache_scan(it.cur, '*', 1) AS s WHERE it.cur <> 0 AND it.n < 100)
SELECT * FROM it;
SELECT ok((SELECT count(*) FROM expired_calls) BETWEEN 20 AND 21, 'count 1 over 20 rows: 20 calls (21 with a last empty one)');
SELECT cmp_ok((SELECT count(*) FROM expired_calls WHERE keys = '{}' AND cur <> 0), '>=', 17::bigint,
          'calls that examined only an expired row return no key and a non-zero cursor');
SELECT is(ARRAY(SELECT k FROM expired_calls, unnest(keys) AS k), ARRAY['e:20'], 'only the live key is returned');
ROLLBACK TO SAVEPOINT expired_scan;

-- SCAN's guarantee: a key that exists for the whole iteration is returned
-- at least once, while keys around it are inserted and deleted between
-- calls.
SAVEPOINT churn;
SELECT cache_mset(ARRAY(SELECT 'stable:' || i FROM generate_series(1, 300) i), array_fill('s'::text, ARRAY[300]));
SELECT cache_mset(ARRAY(SELECT 'churn:' || i FROM generate_series(1, 300) i), array_fill('c'::text, ARRAY[300]));
SELECT cache_set('deleted-before', 'x');
SELECT cache_delete('deleted-before');
CREATE TEMP TABLE churn_seen (k text);
CREATE TEMP TABLE churn_stats (calls integer, inserted integer, deleted integer);
DO $$
DECLARE
    cur bigint := 0;
    r record;
    calls integer := 0;
    ins integer := 0;
    del integer := 0;
    i integer;
BEGIN
    LOOP
        SELECT * INTO r FROM cache_scan(cur, '*', 7);
        INSERT INTO churn_seen SELECT unnest(r.keys);
        calls := calls + 1;
        -- between calls: delete 3 churn keys and insert 3 new ones
        FOR i IN 1 .. 3 LOOP
            del := del + cache_delete(ARRAY['churn:' || (calls * 3 + i)]);
            PERFORM cache_set('new:' || calls || ':' || i, 'n');
            ins := ins + 1;
        END LOOP;
        cur := r.next_cursor;
        EXIT WHEN cur = 0 OR calls > 10000;
    END LOOP;
    INSERT INTO churn_stats VALUES (calls, ins, del);
END
$$;
SELECT cmp_ok((SELECT calls FROM churn_stats), '<', 10000, 'the iteration under churn ends');
SELECT cmp_ok((SELECT deleted FROM churn_stats), '>', 100, 'keys were deleted during the iteration');
SELECT is((SELECT count(DISTINCT k) FROM churn_seen WHERE k LIKE 'stable:%'), 300::bigint,
          'every key present for the whole iteration was returned');
SELECT is((SELECT count(*) FROM churn_seen WHERE k = 'deleted-before'), 0::bigint, 'a key deleted before the iteration is not returned');
SELECT is((SELECT count(*) FROM churn_seen WHERE k NOT LIKE 'stable:%' AND k NOT LIKE 'churn:%' AND k NOT LIKE 'new:%'
                                              AND k NOT IN (SELECT cache_keys())), 0::bigint,
          'every key returned existed at some point of the iteration');
ROLLBACK TO SAVEPOINT churn;

-- FLUSHDB
SELECT cache_set('fl:live', 'v'), cache_set('fl:dying', 'v');
SELECT cache_pexpire('fl:dying', 20);
SELECT pg_sleep(0.06);
-- router: skip: the writes rolled back above remain on the shards
SELECT is(cache_dbsize(), 20::bigint, 'before the flush: 20 live entries and an expired one');
CREATE TEMP TABLE live_before_flush AS SELECT cache_dbsize() AS n;
SAVEPOINT flush;
SELECT is(cache_flush(), (SELECT n FROM live_before_flush), 'flush returns the number of live entries removed (not the expired one)');
SELECT is(cache_dbsize(), 0::bigint, 'the cache is empty');
SELECT is((SELECT count(*) FROM cache_keys()), 0::bigint, 'keys lists nothing');
SELECT is(cache_flush(), 0::bigint, 'a second flush removes nothing');
ROLLBACK TO SAVEPOINT flush;
-- router: skip: ROLLBACK TO SAVEPOINT cannot undo a shard write
SELECT is(cache_dbsize(), 20::bigint, 'a rolled-back flush removed nothing');
-- router: skip: ROLLBACK TO SAVEPOINT cannot undo a shard write
SELECT is(cache_get('fl:live'), 'v', 'the values are back');
-- router: skip: ROLLBACK TO SAVEPOINT cannot undo a shard write
SELECT is(cache_set('x', 'w', xx => true) AND cache_get('x') = 'w', true, 'and writable');

SELECT * FROM finish();
ROLLBACK;
