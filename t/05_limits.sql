-- Long keys and large values.
BEGIN;
SELECT plan(10);

SELECT lives_ok($$SELECT cache_set(repeat('k', 1024 * 1024), 'big key', 60)$$, 'a 1 MB key can be set');
SELECT is(cache_get(repeat('k', 1024 * 1024)), 'big key', 'a 1 MB key can be read');
SELECT cache_set(repeat('k', 1024 * 1024 - 1) || 'x', 'neighbour');
SELECT is(cache_get(repeat('k', 1024 * 1024)), 'big key', '1 MB keys that differ in the last byte stay apart (1)');
SELECT is(cache_get(repeat('k', 1024 * 1024 - 1) || 'x'), 'neighbour', '1 MB keys that differ in the last byte stay apart (2)');
SELECT is(cache_delete(repeat('k', 1024 * 1024)), true, 'a 1 MB key can be deleted');

-- Incompressible keys around the btree's entry size limit (~2.7 kB).
SELECT is((SELECT count(*) FROM (SELECT string_agg(md5(n::text || i::text), '') AS k
                                 FROM generate_series(80, 100) n, generate_series(1, n) i GROUP BY n) s
           WHERE cache_set(k, md5(k)) AND cache_get(k) = md5(k))::int, 21,
          'keys of 2.5 to 3.2 kB work');

SELECT lives_ok($$SELECT cache_set('big', repeat('0123456789abcdef', 4 * 1024 * 1024))$$, 'a 64 MB value can be set');
SELECT is(length(cache_get('big')), 64 * 1024 * 1024, 'a 64 MB value reads back whole');
SELECT is(md5(cache_get('big')), md5(repeat('0123456789abcdef', 4 * 1024 * 1024)), 'and unchanged');
SELECT is(octet_length(cache_get_bytes('big')), 64 * 1024 * 1024, 'and as bytes');

SELECT * FROM finish();
ROLLBACK;
