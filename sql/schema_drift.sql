-- The table changed by hand: the direct paths check the whole tuple
-- descriptor and leave the work to SQL when it is not exactly the
-- extension's, so every function keeps giving correct values (or a clear
-- error) and nothing crashes. Each block runs set/get/mset/mget/delete/
-- exists/ttl/cleanup twice, so that the second set overwrites a row.
\set SHOW_CONTEXT never
CREATE FUNCTION pg_temp.sqlstate_of(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE query;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE FUNCTION pg_temp.round_trip(tag text) RETURNS TABLE(step text, ok boolean) LANGUAGE plpgsql AS $$
BEGIN
  PERFORM cache_set(tag || ':k', 'one'), cache_set(tag || ':k', 'two');          -- insert, then overwrite
  PERFORM cache_set(tag || ':j', '{"a": 1}'::jsonb), cache_set(tag || ':j', '{"a": 2}'::jsonb, 100);
  PERFORM cache_set(tag || ':b', '\x00ff'::bytea), cache_set(tag || ':b', '\x01fe'::bytea);
  PERFORM cache_mset(ARRAY[tag || ':m1', tag || ':m2'], ARRAY['x', 'y'], 100);
  PERFORM cache_mset(ARRAY[tag || ':m1', tag || ':m2'], ARRAY['x2', 'y2']);
  PERFORM cache_set(tag || ':gone', 'soon', 1);
  PERFORM cache_set(tag || ':del', 'd');
  RETURN QUERY SELECT 'delete', cache_delete(tag || ':del') AND NOT cache_exists(tag || ':del');
  RETURN QUERY VALUES
    ('get', cache_get(tag || ':k') IS NOT DISTINCT FROM 'two'),
    ('get_json', cache_get_json(tag || ':j') IS NOT DISTINCT FROM '{"a": 2}'::jsonb),
    ('get_bytes', cache_get_bytes(tag || ':b') IS NOT DISTINCT FROM '\x01fe'::bytea),
    ('mget', (SELECT array_agg(value ORDER BY key) FROM cache_mget(ARRAY[tag || ':m1', tag || ':m2']))
             IS NOT DISTINCT FROM ARRAY['x2', 'y2']),
    ('exists', cache_exists(tag || ':k')),
    ('ttl', cache_ttl(tag || ':j') BETWEEN 99 AND 101 AND cache_ttl(tag || ':k') = -1),
    ('one row per key', (SELECT count(*) = 6 FROM cache_entries WHERE key LIKE tag || ':%'));
END $$;

-- An added text column.
ALTER TABLE cache_entries ADD COLUMN note text;
SELECT * FROM pg_temp.round_trip('added');
-- The column keeps what it was given: an overwrite must not touch it.
UPDATE cache_entries SET note = 'kept' WHERE key = 'added:k';
SELECT cache_set('added:k', 'three'), cache_get('added:k');
SELECT note FROM cache_entries WHERE key = 'added:k';

-- ... dropped again: the dropped attribute stays in the descriptor.
ALTER TABLE cache_entries DROP COLUMN note;
SELECT * FROM pg_temp.round_trip('dropped');

-- A by-value column with a default: overwrites keep its value (never zeros).
ALTER TABLE cache_entries ADD COLUMN created timestamptz NOT NULL DEFAULT '2020-01-01 00:00:00+00';
SELECT * FROM pg_temp.round_trip('defaulted');
SELECT created = '2020-01-01 00:00:00+00' AS default_kept, count(*)
FROM cache_entries WHERE key LIKE 'defaulted:%' GROUP BY 1;
ALTER TABLE cache_entries DROP COLUMN created;

-- A generated column: computed by SQL on every write.
ALTER TABLE cache_entries ADD COLUMN key_len integer GENERATED ALWAYS AS (octet_length(key)) STORED;
SELECT * FROM pg_temp.round_trip('generated');
SELECT count(*) FILTER (WHERE key_len = octet_length(key)) = count(*) AS generated_right FROM cache_entries;
ALTER TABLE cache_entries DROP COLUMN key_len;

-- A column's type changed: key to varchar works through SQL.
ALTER TABLE cache_entries ALTER COLUMN key TYPE varchar;
SELECT * FROM pg_temp.round_trip('varchar');
ALTER TABLE cache_entries ALTER COLUMN key TYPE text COLLATE "C";

-- expires_at with a typmod: SQL rounds as the column says (a ttl of 100 can
-- read 101 after rounding up to a whole second).
ALTER TABLE cache_entries ALTER COLUMN expires_at TYPE timestamptz(0);
SELECT * FROM pg_temp.round_trip('typmod');
SELECT count(*) FILTER (WHERE expires_at = date_trunc('second', expires_at) OR
                              expires_at = date_trunc('second', expires_at) + interval '1 second') = count(*)
       AS whole_seconds
FROM cache_entries WHERE expires_at IS NOT NULL;
ALTER TABLE cache_entries ALTER COLUMN expires_at TYPE timestamptz;

-- value as text: SQL would store a bytea value as its escaped text form.
-- Writes refuse with a clear error (42804) instead, and nothing is written;
-- reads still work (text and bytea are the same bytes).
SELECT cache_set('typed', 'before');
DELETE FROM cache_entries WHERE kind = 'b';
ALTER TABLE cache_entries ALTER COLUMN value TYPE text USING convert_from(value, 'UTF8');
SELECT cache_get('typed') AS get_from_text,
       pg_temp.sqlstate_of($$SELECT cache_set('typed', 'after')$$) AS set_into_text;
SELECT value FROM cache_entries WHERE key = 'typed';
ALTER TABLE cache_entries ALTER COLUMN value TYPE bytea USING convert_to(value, 'UTF8');
SELECT cache_set('typed', 'after'), cache_get('typed');
-- kind as text: refused too, rather than misread.
ALTER TABLE cache_entries ALTER COLUMN kind TYPE text;
SELECT pg_temp.sqlstate_of($$SELECT cache_get('typed')$$) AS kind_as_text;
ALTER TABLE cache_entries ALTER COLUMN kind TYPE "char";
SELECT cache_get('typed');

-- NOT NULL dropped and a NULL written by hand: an error, not a crash.
ALTER TABLE cache_entries ALTER COLUMN value DROP NOT NULL;
INSERT INTO cache_entries (key_hash, kind, key, value)
  VALUES (encode(substring(sha256('nullvalue'::bytea) FROM 1 FOR 16), 'hex')::uuid, 't', 'nullvalue', NULL);
SELECT pg_temp.sqlstate_of($$SELECT cache_get('nullvalue')$$) AS null_value,
       cache_exists('nullvalue') AS exists;
DELETE FROM cache_entries WHERE key = 'nullvalue';
ALTER TABLE cache_entries ALTER COLUMN value SET NOT NULL;

-- Back to the extension's shape: the direct paths are used again.
SELECT * FROM pg_temp.round_trip('restored');
SELECT count(*) > 0 AS expired_rows_cleaned FROM (SELECT pg_sleep(1.1)) s, LATERAL (SELECT cache_cleanup() AS n) c
WHERE n >= 0;
SELECT count(*) AS expired_left FROM cache_entries WHERE expires_at <= clock_timestamp();
