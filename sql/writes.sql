-- cache_set overwrites a row in place (a heap update found through the
-- index) only when nothing else has to run on an update; otherwise SQL.
\set SHOW_CONTEXT never
CREATE EXTENSION IF NOT EXISTS amcheck;
SELECT cache_cleanup() >= 0 AS clean;

-- Overwrites that cannot stay on their page (values growing past the room
-- that fillfactor leaves) are not HOT: the new version gets its own index
-- entry. amcheck then finds every heap tuple in the index.
SELECT count(*) FILTER (WHERE cache_set('grow:' || i, repeat('x', 10))) FROM generate_series(1, 200) i;
BEGIN;
SELECT count(*) FILTER (WHERE cache_set('grow:' || i, repeat(chr(64 + r), 300 * r)))
FROM generate_series(1, 5) r, LATERAL generate_series(1, 200 + r - r) i;
SELECT n_tup_upd AS updates, n_tup_upd - n_tup_hot_upd > 0 AS some_not_hot
FROM pg_stat_xact_user_tables WHERE relname = 'cache_entries';
COMMIT;
SELECT bt_index_check('cache_entries_pkey', true);
SELECT count(*) FILTER (WHERE cache_get('grow:' || i) = repeat('E', 1500)) AS overwritten FROM generate_series(1, 200) i;
SELECT count(*) AS rows FROM cache_entries WHERE key LIKE 'grow:%';

-- Overwriting a TOASTed value with another.
SELECT cache_set('toasted', repeat(md5('a'), 100000));
SELECT cache_set('toasted', repeat(md5('b'), 100000));
SELECT md5(cache_get('toasted')) = md5(repeat(md5('b'), 100000)) AS second_value;

-- A trigger on the table: sets go through SQL, so the trigger sees them.
CREATE TABLE regress_audit (key text, op text);
CREATE FUNCTION regress_audit_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO regress_audit VALUES (NEW.key, TG_OP);
  RETURN NEW;
END $$;
CREATE TRIGGER regress_audit_trg AFTER INSERT OR UPDATE ON cache_entries FOR EACH ROW EXECUTE FUNCTION regress_audit_fn();
SELECT cache_set('audited', 'one'), cache_set('audited', 'two');
SELECT * FROM regress_audit ORDER BY op;
DROP TRIGGER regress_audit_trg ON cache_entries;
DROP TABLE regress_audit;
DROP FUNCTION regress_audit_fn();

-- Another index (say, one a user added on expires_at): sets go through SQL,
-- which maintains it.
CREATE INDEX regress_expires ON cache_entries (expires_at);
SELECT count(*) FILTER (WHERE cache_set('grow:' || i, 'small', i)) FROM generate_series(1, 200) i;
SELECT bt_index_check('regress_expires', true);
SELECT count(*) AS rows_with_expiry FROM cache_entries WHERE key LIKE 'grow:%' AND expires_at IS NOT NULL;
DROP INDEX regress_expires;

-- A CHECK constraint added by hand: sets go through SQL, which enforces it.
ALTER TABLE cache_entries ADD CONSTRAINT regress_small CHECK (octet_length(value) < 100) NOT VALID;
SELECT cache_set('grow:1', 'fits');
SELECT cache_set('grow:1', repeat('x', 200));
SELECT cache_get('grow:1');
ALTER TABLE cache_entries DROP CONSTRAINT regress_small;

-- With direct writes off, the same results.
SET fastpgcache.direct_writes = off;
SELECT cache_set('grow:2', 'via SQL'), cache_get('grow:2');
RESET fastpgcache.direct_writes;
SELECT cache_set('grow:2', 'direct again'), cache_get('grow:2');
SELECT bt_index_check('cache_entries_pkey', true);
