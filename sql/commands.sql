-- The Redis command set's read-modify-write step (mutate.cpp) on each path:
-- the direct one on a plain table, SQL when the table has a trigger, row
-- level security, an extra column, or direct writes are off; and the slot
-- cases no real key reaches (another key's row under the same key_hash).
-- The semantics of every command are in the pgTAP suite (t/).
\set SHOW_CONTEXT never
CREATE FUNCTION pg_temp.sqlstate_of(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE query;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE FUNCTION pg_temp.battery(tag text) RETURNS TABLE(step text, ok boolean) LANGUAGE plpgsql AS $$
BEGIN
  PERFORM cache_delete(ARRAY[tag || ':n', tag || ':s', tag || ':e', tag || ':x']);
  RETURN QUERY VALUES
    ('incr creates', cache_incr(tag || ':n') = 1),
    ('incr adds', cache_incr(tag || ':n', 41) = 42),
    ('decr', cache_decr(tag || ':n', 2) = 40),
    ('nx refuses a live key', NOT cache_set(tag || ':n', 'x', nx => true)),
    ('xx overwrites', cache_set(tag || ':n', '7', 100, xx => true)),
    ('keepttl keeps it', cache_set(tag || ':n', '8', keepttl => true) AND cache_ttl(tag || ':n') BETWEEN 99 AND 100),
    ('incr keeps the ttl', cache_incr(tag || ':n') = 9 AND cache_ttl(tag || ':n') BETWEEN 99 AND 100),
    ('append', cache_append(tag || ':s', 'ab') = 2 AND cache_append(tag || ':s', 'cd') = 4),
    ('getset', cache_getset(tag || ':s', 'new') = 'abcd'),
    ('expire', cache_expire(tag || ':s', 50) AND cache_pttl(tag || ':s') BETWEEN 49000 AND 50000),
    ('persist', cache_persist(tag || ':s') AND cache_ttl(tag || ':s') = -1),
    ('getex ttl', cache_getex(tag || ':s', 30) = 'new' AND cache_ttl(tag || ':s') BETWEEN 29 AND 30),
    ('getdel', cache_getdel(tag || ':s') = 'new' AND NOT cache_exists(tag || ':s')),
    ('expire 0 deletes', cache_set(tag || ':e', 'v') AND cache_expire(tag || ':e', 0) AND NOT cache_exists(tag || ':e')),
    ('incrbyfloat', cache_incrbyfloat(tag || ':x', 10.5) = 10.5 AND cache_incrbyfloat(tag || ':x', 0.1) = 10.6
                    AND cache_get(tag || ':x') = '10.6');
END $$;

-- A plain table: the direct path.
SELECT * FROM pg_temp.battery('direct');
-- Direct writes off: the SQL path.
SET fastpgcache.direct_writes = off;
SELECT * FROM pg_temp.battery('sql');
RESET fastpgcache.direct_writes;

-- A trigger: SQL, and the trigger sees every change.
CREATE TEMP TABLE regress_changes (op text, key text, value text);
CREATE FUNCTION regress_log_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO regress_changes VALUES (TG_OP, OLD.key, convert_from(OLD.value, 'UTF8'));
    RETURN OLD;
  END IF;
  INSERT INTO regress_changes VALUES (TG_OP, NEW.key, convert_from(NEW.value, 'UTF8'));
  RETURN NEW;
END $$;
CREATE TRIGGER regress_log_change BEFORE INSERT OR UPDATE OR DELETE ON cache_entries
  FOR EACH ROW EXECUTE FUNCTION regress_log_change();
SELECT cache_incr('trig:n'), cache_incr('trig:n'), cache_getdel('trig:n');
SELECT op, key, value FROM regress_changes ORDER BY ctid;
DROP TRIGGER regress_log_change ON cache_entries;
DROP FUNCTION regress_log_change();

-- An extra column: SQL, and the column keeps its value.
ALTER TABLE cache_entries ADD COLUMN regress_note text;
SELECT cache_incr('extra:n');
UPDATE cache_entries SET regress_note = 'kept' WHERE key = 'extra:n';
SELECT cache_incr('extra:n'), cache_expire('extra:n', 100), cache_append('extra:n', '0');
SELECT key, convert_from(value, 'UTF8') AS value, regress_note FROM cache_entries WHERE key = 'extra:n';
ALTER TABLE cache_entries DROP COLUMN regress_note;

-- Row level security: a role that may only see and change its own keys.
CREATE ROLE regress_tenant;
GRANT SELECT, INSERT, UPDATE, DELETE ON cache_entries TO regress_tenant;
SELECT cache_set('tenant:a', '1'), cache_set('other:a', '1');
ALTER TABLE cache_entries ENABLE ROW LEVEL SECURITY;
CREATE POLICY regress_tenant_rows ON cache_entries TO regress_tenant USING (key LIKE 'tenant:%') WITH CHECK (key LIKE 'tenant:%');
SET ROLE regress_tenant;
SELECT cache_incr('tenant:a') AS own_key;
SELECT cache_set('other:a', 'x', xx => true) AS xx_on_a_hidden_key;
SELECT pg_temp.sqlstate_of($$SELECT cache_incr('other:b')$$) AS create_outside_the_policy;
RESET ROLE;
ALTER TABLE cache_entries DISABLE ROW LEVEL SECURITY;
DROP POLICY regress_tenant_rows ON cache_entries;
SELECT cache_get('tenant:a'), cache_get('other:a'), cache_exists('other:b');
REVOKE ALL ON cache_entries FROM regress_tenant;
DROP ROLE regress_tenant;

-- Another key's row in the slot (a key_hash collision, made by hand): the
-- key is absent for every command, and a write takes the slot over.
INSERT INTO cache_entries (key_hash, kind, key, value)
  VALUES (encode(substring(sha256('slot:mine'::bytea) FROM 1 FOR 16), 'hex')::uuid, 't', 'slot:theirs', 'x');
SELECT cache_exists('slot:mine'), cache_set('slot:mine', 'v', xx => true) AS xx, cache_persist('slot:mine') AS persist,
       cache_expire('slot:mine', 10) AS expire, cache_getdel('slot:mine') AS getdel;
SELECT key, convert_from(value, 'UTF8') AS value FROM cache_entries WHERE key LIKE 'slot:%';
SELECT cache_incr('slot:mine') AS incr_takes_the_slot;
SELECT key, convert_from(value, 'UTF8') AS value FROM cache_entries WHERE key LIKE 'slot:%';

-- An expired row of the key: absent, and taken over.
INSERT INTO cache_entries (key_hash, kind, key, value, expires_at)
  VALUES (encode(substring(sha256('old:k'::bytea) FROM 1 FOR 16), 'hex')::uuid, 't', 'old:k', '41', now() - interval '1 second');
SELECT cache_set('old:k', 'v', xx => true) AS xx, cache_incr('old:k') AS incr_starts_over, cache_ttl('old:k') AS ttl;

-- Errors leave the value as it was.
SELECT cache_set('err:n', 'nope');
SELECT pg_temp.sqlstate_of($$SELECT cache_incr('err:n')$$) AS not_an_integer,
       pg_temp.sqlstate_of($$SELECT cache_incrbyfloat('err:n', 1)$$) AS not_a_float,
       pg_temp.sqlstate_of($$SELECT cache_set('err:n', '9223372036854775807') AND cache_incr('err:n') > 0$$) AS overflow,
       pg_temp.sqlstate_of($$SELECT cache_decr('err:n', -9223372036854775808)$$) AS decr_min;
SELECT cache_get('err:n');
