-- router: skip file: it relies on ROLLBACK, which cannot undo a shard write (test/router/t/10_router_semantics.sql)
-- The cache follows transactions like any table write.
BEGIN;
SELECT plan(9);

SAVEPOINT a;
SELECT cache_set('tx', 'inside');
SELECT is(cache_get('tx'), 'inside', 'a set is visible later in the same transaction');
ROLLBACK TO SAVEPOINT a;
SELECT is(cache_get('tx'), NULL, 'a rolled-back set is not visible');

SELECT cache_set('tx', 'v1');
SAVEPOINT b;
SELECT cache_set('tx', 'v2');
SELECT cache_delete('tx');
SELECT is(cache_exists('tx'), false, 'a delete is visible at once');
ROLLBACK TO SAVEPOINT b;
SELECT is(cache_get('tx'), 'v1', 'a rolled-back overwrite and delete leave the earlier value');

SELECT is((SELECT cache_set('same', 'statement') AND cache_get('same') = 'statement'), true,
          'a get sees a set made earlier in the same statement');

-- An error in a nested block rolls back that block only.
SELECT lives_ok($$
  DO $do$
  BEGIN
    PERFORM cache_set('blk', 'kept');
    BEGIN
      PERFORM cache_set('blk', 'lost');
      PERFORM cache_set(NULL, 'boom');
    EXCEPTION WHEN null_value_not_allowed THEN
      NULL;
    END;
  END $do$
$$, 'an error caught in PL/pgSQL');
SELECT is(cache_get('blk'), 'kept', 'the failed block''s set was rolled back');

-- Many writes in one transaction, then read back.
SELECT is((SELECT count(*) FROM generate_series(1, 500) i WHERE cache_set('bulk:' || i, i::text, 600))::int, 500,
          '500 sets in one statement');
SELECT is((SELECT count(*) FROM generate_series(1, 500) i WHERE cache_get('bulk:' || i) = i::text)::int, 500,
          'all 500 read back');

SELECT * FROM finish();
ROLLBACK;
