-- JSON and binary values.
SELECT cache_set('doc', '{"name": "Alice", "tags": ["a", "b"], "n": 1.50}'::jsonb, 60);
SELECT cache_get_json('doc');
SELECT cache_get_json('doc') -> 'tags' ->> 1 AS second_tag;
SELECT cache_get('doc');

-- A stored JSON null is not a miss.
SELECT cache_set('jnull', 'null'::jsonb);
SELECT cache_get_json('jnull') IS NULL AS sql_null, cache_get_json('jnull') = 'null'::jsonb AS json_null;
SELECT cache_get_json('missing') IS NULL AS miss;

-- Scalars keep their JSON type; a text value that is JSON parses.
SELECT cache_set('jstr', '"123"'::jsonb), cache_set('jnum', '123'::jsonb), cache_set('txt', '123');
SELECT jsonb_typeof(cache_get_json('jstr')) AS jstr, jsonb_typeof(cache_get_json('jnum')) AS jnum,
       cache_get('txt') AS txt, jsonb_typeof(cache_get_json('txt')) AS txt_as_json;

-- Binary values round-trip any byte, NUL included.
SELECT cache_set('bin', '\x00ff00fe0a0d00'::bytea);
SELECT cache_get_bytes('bin');
SELECT cache_set('allbytes', (SELECT string_agg(set_byte('\x00'::bytea, 0, b), ''::bytea) FROM generate_series(0, 255) b));
SELECT length(cache_get_bytes('allbytes')) AS len,
       cache_get_bytes('allbytes') = (SELECT string_agg(set_byte('\x00'::bytea, 0, b), ''::bytea) FROM generate_series(0, 255) b) AS same;

-- Text values read as bytes give their encoded bytes.
SELECT cache_set('utf', 'é');
SELECT cache_get_bytes('utf');

-- Bytes that are valid text in the database encoding read as text.
SELECT cache_set('bintext', convert_to('héllo', 'UTF8'));
SELECT cache_get('bintext');

-- A row written by hand with kind 't' (text) but bytes that are not valid in
-- the database encoding: cache_get validates on read, whatever the kind.
INSERT INTO cache_entries (key_hash, kind, key, value)
  VALUES (encode(substring(sha256('handmade'::bytea) FROM 1 FOR 16), 'hex')::uuid, 't', 'handmade', '\xc328ff'::bytea);
SELECT cache_get('handmade');
SELECT * FROM cache_mget(ARRAY['handmade']);
SELECT cache_get_json('handmade');
SELECT cache_get_bytes('handmade');
SET fastpgcache.index_scan_reads = off;
SELECT cache_get('handmade');
RESET fastpgcache.index_scan_reads;
SELECT cache_delete('handmade');

-- Kinds recorded per value.
SELECT key, kind FROM cache_entries WHERE key IN ('doc', 'txt', 'bin') ORDER BY key;
