-- Expiry: cache_expire / cache_pexpire / cache_expireat / cache_persist /
-- cache_pttl (EXPIRE, PEXPIRE, EXPIREAT, PERSIST, PTTL); an expired key is
-- absent for every command; millisecond TTLs are honoured to the
-- millisecond. Uses only the public API.
BEGIN;
SELECT plan(82);

-- EXPIRE
SELECT is(cache_expire('missing', 100), false, 'expire of a missing key is false');
SELECT is(cache_exists('missing'), false, 'and creates nothing');
SELECT cache_set('e', 'v');
SELECT is(cache_expire('e', 100), true, 'expire of a live key is true');
SELECT ok(cache_ttl('e') BETWEEN 98 AND 100, 'and sets the ttl');
SELECT is(cache_get('e'), 'v', 'the value is untouched');
SELECT is(cache_expire('e', 2147483647) AND cache_ttl('e') = 2147483647, true, 'the largest ttl');
SELECT is(cache_expire('e', 0), true, 'expire 0 of a live key is true');
SELECT is(cache_exists('e'), false, 'and deletes it');
SELECT is(cache_expire('e', 0), false, 'expire 0 of a missing key is false');
SELECT cache_set('e', 'v', 10);
SELECT is(cache_expire('e', -5), true, 'a negative ttl deletes a live key too');
SELECT is(cache_get('e'), NULL, 'gone');
SELECT throws_ok($$SELECT cache_expire(NULL, 10)$$, '22004', NULL, 'expire with a NULL key: 22004');
SELECT throws_ok($$SELECT cache_expire('e', NULL)$$, '22004', NULL, 'expire with a NULL ttl: 22004');

-- PEXPIRE
SELECT is(cache_pexpire('missing', 1000), false, 'pexpire of a missing key is false');
SELECT cache_set('p', 'v');
SELECT is(cache_pexpire('p', 1500), true, 'pexpire of a live key is true');
SELECT ok(cache_pttl('p') BETWEEN 1000 AND 1500, 'pttl after pexpire 1500');
SELECT is(cache_pexpire('p', 1500) AND cache_ttl('p') = 2, true, 'ttl rounds 1.5 s up to 2');
SELECT is(cache_pexpire('p', 0), true, 'pexpire 0 of a live key is true');
SELECT is(cache_exists('p'), false, 'and deletes it');
SELECT cache_set('p', 'v');
SELECT is(cache_pexpire('p', -1), true, 'a negative pexpire deletes a live key');
SELECT cache_set('p', 'v');
SELECT throws_ok($$SELECT cache_pexpire('p', 9223372036854775807)$$, '22008', NULL, 'an expiry beyond timestamptz: 22008');
SELECT throws_ok($$SELECT cache_pexpire('p:missing', 9223372036854775807)$$, '22008', NULL, 'even for a missing key');
SELECT throws_ok($$SELECT cache_pexpire('p', 10000000000000000)$$, '22008', NULL, '317,000 years: 22008');
SELECT is(cache_ttl('p'), -1, 'the failed pexpire left the key alone');
SELECT is(cache_pexpire('p', 3000000000000) AND cache_pttl('p') BETWEEN 2999999000000 AND 3000000000000, true, 'a pexpire of 95 years');
SELECT is(cache_ttl('p'), 2147483647, 'cache_ttl of an expiry beyond 2^31 seconds reads as the largest integer');
SELECT throws_ok($$SELECT cache_pexpire(NULL, 10)$$, '22004', NULL, 'pexpire with a NULL key: 22004');
SELECT throws_ok($$SELECT cache_pexpire('p', NULL)$$, '22004', NULL, 'pexpire with a NULL ttl: 22004');

-- EXPIREAT
SELECT is(cache_expireat('missing', clock_timestamp() + interval '1 hour'), false, 'expireat of a missing key is false');
SELECT cache_set('at', 'v');
SELECT is(cache_expireat('at', clock_timestamp() + interval '1 hour'), true, 'expireat in the future is true');
SELECT ok(cache_ttl('at') BETWEEN 3598 AND 3600, 'and sets the expiry');
SELECT is(cache_expireat('at', '2100-01-01 00:00:00+00') AND cache_pttl('at') -
          ceil(extract(epoch FROM '2100-01-01 00:00:00+00'::timestamptz - clock_timestamp()) * 1000)::bigint BETWEEN 0 AND 50, true,
          'expireat sets that exact instant');
SELECT is(cache_expireat('at', clock_timestamp() - interval '1 second'), true, 'expireat in the past is true');
SELECT is(cache_exists('at'), false, 'and deletes the key');
SELECT cache_set('at', 'v');
SELECT throws_ok($$SELECT cache_expireat('at', 'infinity')$$, '22008', NULL, 'expireat infinity: 22008');
SELECT throws_ok($$SELECT cache_expireat('at', '-infinity')$$, '22008', NULL, 'expireat -infinity: 22008');
SELECT is(cache_ttl('at'), -1, 'the failed expireat left the key alone');
SELECT throws_ok($$SELECT cache_expireat(NULL, now())$$, '22004', NULL, 'expireat with a NULL key: 22004');
SELECT throws_ok($$SELECT cache_expireat('at', NULL)$$, '22004', NULL, 'expireat with a NULL time: 22004');

-- PERSIST
SELECT is(cache_persist('missing'), false, 'persist of a missing key is false');
SELECT cache_set('ps', 'v');
SELECT is(cache_persist('ps'), false, 'persist of a key without expiry is false');
SELECT cache_expire('ps', 100);
SELECT is(cache_persist('ps'), true, 'persist of a key with an expiry is true');
SELECT is(cache_ttl('ps'), -1, 'and removes the expiry');
SELECT is(cache_persist('ps'), false, 'a second persist is false');
SELECT throws_ok($$SELECT cache_persist(NULL)$$, '22004', NULL, 'persist(NULL): 22004');

-- PTTL
SELECT is(cache_pttl('missing'), -2::bigint, 'pttl of a missing key is -2');
SELECT is(cache_pttl('ps'), -1::bigint, 'pttl of a key without expiry is -1');
SELECT is(cache_set('pt', 'v', 100) AND cache_pttl('pt') BETWEEN 99000 AND 100000, true, 'pttl in milliseconds');
SELECT is(cache_pttl(NULL), NULL, 'pttl(NULL) is NULL');

-- An expired key is absent for every command
SELECT cache_mset(ARRAY['x:nx', 'x:xx', 'x:incr', 'x:float', 'x:append', 'x:expire', 'x:pexpire', 'x:expireat',
                        'x:persist', 'x:type', 'x:exists', 'x:keys', 'x:get', 'x:getset', 'x:getdel', 'x:getex',
                        'x:strlen', 'x:msetnx', 'x:del', 'x:delarr', 'x:ttl'],
                  ARRAY['1', '1', '41', '1.5', 'abc', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1',
                        '1', '1', '1']);
CREATE TEMP TABLE size_before AS SELECT cache_dbsize() - 21 AS n;
SELECT count(cache_pexpire(k, 30)) FROM cache_keys('x:*') AS k;
SELECT pg_sleep(0.1);
SELECT is(cache_set('x:nx', 'new', nx => true), true, 'expired key: nx writes');
SELECT is(cache_set('x:xx', 'new', xx => true), false, 'expired key: xx does not write');
SELECT is(cache_incr('x:incr'), 1::bigint, 'expired key: incr starts from 0');
SELECT is(cache_ttl('x:incr'), -1, 'expired key: incr does not inherit the old expiry');
SELECT is(cache_incrbyfloat('x:float', 0.5), 0.5::double precision, 'expired key: incrbyfloat starts from 0');
SELECT is(cache_append('x:append', 'd'), 1::bigint, 'expired key: append starts from an empty value');
SELECT is(cache_ttl('x:append'), -1, 'expired key: append does not inherit the old expiry');
SELECT is(cache_expire('x:expire', 100), false, 'expired key: expire is false');
SELECT is(cache_pexpire('x:pexpire', 100000), false, 'expired key: pexpire is false');
SELECT is(cache_expireat('x:expireat', clock_timestamp() + interval '1 hour'), false, 'expired key: expireat is false');
SELECT is(cache_persist('x:persist'), false, 'expired key: persist is false');
SELECT is(cache_type('x:type'), NULL, 'expired key: type is NULL');
SELECT is(cache_exists('x:exists'), false, 'expired key: exists is false');
SELECT is(cache_exists(ARRAY['x:exists', 'x:exists']), 0, 'expired key: exists over many keys counts 0');
SELECT is((SELECT count(*) FROM cache_keys('x:keys')), 0::bigint, 'expired key: keys does not list it');
SELECT is((SELECT count(*) FROM cache_scan(0, 'x:keys', 1000000)), 1::bigint, 'expired key: scan returns one row');
SELECT is((SELECT keys FROM cache_scan(0, 'x:keys', 1000000)), '{}'::text[], 'expired key: scan does not list it');
SELECT is(cache_dbsize(), (SELECT n FROM size_before) + 4, 'expired keys: dbsize counts only the 4 rewritten');
SELECT is(cache_get('x:get'), NULL, 'expired key: get is NULL');
SELECT is(cache_getset('x:getset', 'new'), NULL, 'expired key: getset returns NULL');
SELECT is(cache_getdel('x:getdel'), NULL, 'expired key: getdel returns NULL');
SELECT is(cache_getex('x:getex', 100), NULL, 'expired key: getex returns NULL');
SELECT is(cache_exists('x:getex'), false, 'expired key: getex with a ttl does not bring it back');
SELECT is(cache_strlen('x:strlen'), 0, 'expired key: strlen is 0');
SELECT is(cache_pttl('x:ttl') || ' ' || cache_ttl('x:ttl'), '-2 -2', 'expired key: pttl and ttl are -2');
-- router: skip: its two keys are on two partitions, where MSETNX is refused (test/router/t/10_router_semantics.sql)
SELECT is(cache_msetnx(ARRAY['x:msetnx', 'x:msetnx:new'], ARRAY['a', 'b']), true, 'expired key: msetnx writes');
SELECT is(cache_delete('x:del'), false, 'expired key: delete is false');
SELECT is(cache_delete(ARRAY['x:delarr', 'x:delarr']), 0, 'expired key: delete over many keys counts 0');

-- Millisecond TTLs: never returned after the expiry instant, always before
-- it. The expiry instant lies between b + 200 ms and a + 200 ms (b and a
-- taken around the pexpire); reads poll for 300 ms, each timed.
CREATE TEMP TABLE ms_window AS SELECT clock_timestamp() AS b, cache_set('ms', 'v') AND cache_pexpire('ms', 200) AS ok, clock_timestamp() AS a;
CREATE TEMP TABLE ms_obs (s timestamptz, v text, ex boolean, pt bigint, sl integer, ty text, f timestamptz);
DO $$
DECLARE
    w record;
    t0 timestamptz;
BEGIN
    SELECT * INTO w FROM ms_window;
    LOOP
        t0 := clock_timestamp();
        EXIT WHEN t0 > w.a + interval '300 milliseconds';
        INSERT INTO ms_obs
        VALUES (t0, cache_get('ms'), cache_exists('ms'), cache_pttl('ms'), cache_strlen('ms'), cache_type('ms'), clock_timestamp());
    END LOOP;
END
$$;
SELECT is((SELECT count(*) FROM ms_obs, ms_window WHERE ms_obs.s > ms_window.a + interval '200 milliseconds'
             AND (v IS NOT NULL OR ex OR pt <> -2 OR sl <> 0 OR ty IS NOT NULL)), 0::bigint,
          'after the expiry instant: no get, exists, pttl, strlen or type sees the key');
SELECT is((SELECT count(*) FROM ms_obs, ms_window WHERE ms_obs.f < ms_window.b + interval '200 milliseconds'
             AND (v IS DISTINCT FROM 'v' OR NOT ex OR pt <= 0 OR sl <> 1 OR ty IS DISTINCT FROM 'text')), 0::bigint,
          'before it: every read sees the key, and pttl is never 0');
SELECT cmp_ok((SELECT count(*) FROM ms_obs, ms_window WHERE ms_obs.f < ms_window.b + interval '200 milliseconds'), '>', 0::bigint,
              'some reads ran before the expiry');
SELECT cmp_ok((SELECT count(*) FROM ms_obs, ms_window WHERE ms_obs.s > ms_window.a + interval '200 milliseconds'), '>', 0::bigint,
              'some reads ran after it');
SELECT is((SELECT bool_and(pt BETWEEN 1 AND 200) FROM ms_obs WHERE pt >= 0), true, 'pttl counts down from 200 and never reaches 0');

SELECT * FROM finish();
ROLLBACK;
