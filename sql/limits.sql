-- Long keys and large values.

-- A 1 MB key: the btree indexes a 16-byte hash, never the key itself.
SELECT cache_set(repeat('k', 1024 * 1024), 'big key', 60);
SELECT cache_get(repeat('k', 1024 * 1024)), cache_exists(repeat('k', 1024 * 1024));
-- Keys that differ only in their last byte stay apart.
SELECT cache_set(repeat('k', 1024 * 1024 - 1) || 'x', 'neighbour');
SELECT cache_get(repeat('k', 1024 * 1024)), cache_get(repeat('k', 1024 * 1024 - 1) || 'x');
SELECT cache_delete(repeat('k', 1024 * 1024)), cache_get(repeat('k', 1024 * 1024 - 1) || 'x');

-- Keys around the btree's ~2.7 kB entry limit, incompressible.
SELECT count(*) FILTER (WHERE cache_set(k, md5(k))) AS set,
       count(*) FILTER (WHERE cache_get(k) = md5(k)) AS got
FROM (SELECT string_agg(md5(n::text || i::text), '') AS k
      FROM generate_series(80, 100) n, generate_series(1, n) i GROUP BY n) keys;

-- A 64 MB value.
SELECT cache_set('big value', repeat('0123456789abcdef', 4 * 1024 * 1024));
SELECT length(cache_get('big value')) AS len,
       md5(cache_get('big value')) = md5(repeat('0123456789abcdef', 4 * 1024 * 1024)) AS same;
SELECT octet_length(cache_get_bytes('big value')) AS bytes;
SELECT cache_delete('big value');

-- key_hash is the first 16 bytes of SHA-256 of the key, as PostgreSQL's
-- sha256() computes it, across the padding boundaries of the algorithm.
SELECT count(*) FILTER (WHERE cache_set(k, 'v')) AS keys FROM
  (SELECT repeat('a', n) AS k FROM generate_series(0, 300) n) s;
SELECT count(*) AS rows,
       count(*) FILTER (WHERE key_hash = encode(substring(sha256(convert_to(key, 'UTF8')) FROM 1 FOR 16), 'hex')::uuid) AS matching
FROM cache_entries;
