-- The cache is a table: writes are transactional.
BEGIN;
SELECT cache_set('tx', 'in transaction');
SELECT cache_get('tx') AS visible_later_in_same_transaction;
ROLLBACK;
SELECT cache_get('tx') IS NULL AS gone_after_rollback;

BEGIN;
SELECT cache_set('tx', 'v1');
SAVEPOINT s;
SELECT cache_set('tx', 'v2');
SELECT cache_delete('tx');
ROLLBACK TO SAVEPOINT s;
SELECT cache_get('tx') AS after_rollback_to_savepoint;
COMMIT;
SELECT cache_get('tx') AS committed;

-- A set and a get in one statement: the get sees the set.
SELECT cache_set('same', 'statement') AS set, cache_get('same') AS get;

-- An error inside a PL/pgSQL exception block rolls back that block only.
DO $$
BEGIN
  PERFORM cache_set('blk', 'kept');
  BEGIN
    PERFORM cache_set('blk', 'lost');
    PERFORM cache_set(NULL, 'boom');
  EXCEPTION WHEN null_value_not_allowed THEN
    RAISE NOTICE 'caught %', SQLSTATE;
  END;
END $$;
SELECT cache_get('blk');

-- An error aborts the transaction like any other statement.
BEGIN;
SELECT cache_set('abort', 'x');
SELECT cache_set('abort', 'y', 0);
SELECT cache_get('abort');
ROLLBACK;
SELECT cache_get('abort') IS NULL AS nothing_committed;
