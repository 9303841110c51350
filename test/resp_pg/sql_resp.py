#!/usr/bin/python3
"""SQL and RESP on the same keys, in one test: what one side writes the other
reads (byte-identical), TTLs agree, writes are visible once acknowledged or
committed, and binary safety: values with every byte round-trip, keys that
are not valid UTF-8 or hold a NUL byte get a clear error (keys are the text
column: a deliberate difference from Redis).
"""
import threading
import time

import psycopg2

import e2e
from e2e import RespError, check, eq, sql, sql_error

KEY_ERROR = 'ERR invalid key: fastpgcache keys are text in the database encoding, without NUL bytes'
ALL_BYTES = bytes(range(256))


def resp_to_sql(r, raw):
    r.flushall()
    r.set('plain', 'hello')
    eq('SET over RESP, cache_get over SQL', sql("SELECT cache_get('plain')"), 'hello')
    eq('SET over RESP, cache_get_bytes over SQL', bytes(sql("SELECT cache_get_bytes('plain')")), b'hello')
    eq('a value set over RESP is kind bytes (cache_type)', sql("SELECT cache_type('plain')"), 'bytes')
    utf = 'значение ✓ é'.encode()
    r.set('utf', utf)
    eq('a UTF-8 value set over RESP reads as text', sql("SELECT cache_get('utf')"), 'значение ✓ é')
    r.set('bin', ALL_BYTES)
    eq('every byte 0..255 over RESP, cache_get_bytes byte-identical', bytes(sql("SELECT cache_get_bytes('bin')")), ALL_BYTES)
    eq('every byte 0..255 round-trips over RESP', r.get('bin'), ALL_BYTES)
    eq('bytes that are not UTF-8: cache_get is 22021', (sql_error("SELECT cache_get('bin')") or ('',))[0], '22021')
    big = bytes((i * 7 + 3) % 256 for i in range(3 * 1024 * 1024 + 17))
    r.set('big', big)
    check('a 3 MB binary value round-trips (RESP and cache_get_bytes)',
          r.get('big') == big and bytes(sql("SELECT cache_get_bytes('big')")) == big)
    r.set('empty', b'')
    check('the empty value is not a miss', r.get('empty') == b'' and sql("SELECT cache_get('empty')") == ''
          and r.strlen('empty') == 0 and r.exists('empty') == 1)
    r.mset({'m1': b'\x00\x01', 'm2': 'two'})
    eq('MSET over RESP, cache_mget over SQL', sql("SELECT array_agg(value ORDER BY ord) FROM cache_mget(ARRAY['m2','nope']) WITH ORDINALITY AS t(key, value, ord)"), ['two', None])
    eq('MSET binary, cache_get_bytes', bytes(sql("SELECT cache_get_bytes('m1')")), b'\x00\x01')
    # counters and strings written over RESP are read by SQL and the other way round
    r.incrby('n', 41)
    eq('INCRBY over RESP, cache_get', sql("SELECT cache_get('n')"), '41')
    eq('cache_incr over SQL on a RESP counter', sql("SELECT cache_incr('n')"), 42)
    eq('GET after cache_incr', r.get('n'), b'42')
    r.set('rb', b'5')
    eq('cache_incr on a value SET over RESP (bytes)', sql("SELECT cache_incr('rb', 10)"), 15)
    r.set('ap', b'\xff\x00')
    eq('cache_append (SQL) on a RESP binary value', sql("SELECT cache_append('ap', 'z')"), 3)
    eq('... the bytes are kept and it stays bytes', (r.get('ap'), sql("SELECT cache_type('ap')")), (b'\xff\x00z', 'bytes'))


def sql_to_resp(r):
    sql("SELECT cache_set('t', 'text from SQL')")
    eq('cache_set (text) over SQL, GET over RESP', r.get('t'), b'text from SQL')
    eq('... TYPE is string', r.type('t'), b'string')
    sql("SELECT cache_set('u', 'ünïcödé'::text)")
    eq('a UTF-8 text value, GET returns its bytes', r.get('u'), 'ünïcödé'.encode())
    sql("""SELECT cache_set('j', '{"b": [1, 2], "a": "x"}'::jsonb)""")
    eq('cache_set (jsonb) over SQL, GET returns jsonb\'s text form', r.get('j'), b'{"a": "x", "b": [1, 2]}')
    sql("SELECT cache_set('b', %s::bytea)", (psycopg2.Binary(ALL_BYTES),))
    eq('cache_set (bytea, every byte) over SQL, GET byte-identical', r.get('b'), ALL_BYTES)
    eq('STRLEN of a SQL value', r.strlen('u'), len('ünïcödé'.encode()))
    sql("SELECT cache_set('cnt', '10')")
    eq('INCR over RESP on a value set by SQL', r.incr('cnt'), 11)
    eq('... cache_get sees it', sql("SELECT cache_get('cnt')"), '11')
    sql("SELECT cache_mset(ARRAY['x1','x2'], ARRAY['one','two'])")
    eq('cache_mset over SQL, MGET over RESP', r.mget('x1', 'x2', 'x3'), [b'one', b'two', None])
    eq('DEL over RESP of SQL keys', r.delete('x1', 'x2', 'x3'), 2)
    eq('... cache_exists says no', sql("SELECT cache_exists('x1')"), False)
    eq('GETDEL over RESP of a SQL key', r.getdel('t'), b'text from SQL')
    eq('... gone for SQL too', sql("SELECT cache_get('t')"), None)
    sql("SELECT cache_set('ky:é', 'v')")
    eq('a UTF-8 key set by SQL is the same key over RESP', r.get('ky:é'.encode()), b'v')
    check('KEYS over RESP lists SQL keys', 'ky:é'.encode() in r.keys('ky:*'))
    eq('DBSIZE counts both', r.dbsize(), sql('SELECT cache_dbsize()'))


def ttls(r):
    r.set('ex', 'v', ex=100)
    eq('SET EX 100 over RESP, cache_ttl', sql("SELECT cache_ttl('ex')"), 100)
    p = sql("SELECT cache_pttl('ex')")
    check('SET EX 100 over RESP, cache_pttl in (99000, 100000]', 99000 < p <= 100000, p)
    r.set('px', 'v', px=2500)
    p = sql("SELECT cache_pttl('px')")
    check('SET PX 2500 over RESP, cache_pttl in (2000, 2500]', 2000 < p <= 2500, p)
    eq('... cache_ttl rounds up', sql("SELECT cache_ttl('px')"), 3)
    at = int(time.time()) + 1000
    r.set('exat', 'v', exat=at)
    eq('SET EXAT over RESP, the stored expiry is that instant',
       sql("SELECT extract(epoch FROM expires_at)::bigint FROM cache_entries WHERE key = 'exat'"), at)
    atms = int(time.time() * 1000) + 777777
    r.set('pxat', 'v', pxat=atms)
    eq('SET PXAT over RESP, the stored expiry to the millisecond',
       sql("SELECT (extract(epoch FROM expires_at) * 1000)::bigint FROM cache_entries WHERE key = 'pxat'"), atms)
    sql("SELECT cache_set('sq', 'v', 50)")
    eq('cache_set with ttl 50 over SQL, TTL over RESP', r.ttl('sq'), 50)
    p = r.pttl('sq')
    check('cache_set with ttl 50 over SQL, PTTL over RESP in (49000, 50000]', 49000 < p <= 50000, p)
    eq('cache_set without ttl, TTL -1', (sql("SELECT cache_set('sq2', 'v')"), r.ttl('sq2'), r.pttl('sq2')), (True, -1, -1))
    eq('missing: TTL -2 and cache_ttl -2', (r.ttl('nope'), sql("SELECT cache_ttl('nope')")), (-2, -2))
    r.expire('sq2', 300)
    eq('EXPIRE over RESP, cache_ttl', sql("SELECT cache_ttl('sq2')"), 300)
    sql("SELECT cache_expire('sq2', 200)")
    eq('cache_expire over SQL, TTL over RESP', r.ttl('sq2'), 200)
    r.persist('sq2')
    eq('PERSIST over RESP, cache_ttl -1', sql("SELECT cache_ttl('sq2')"), -1)
    sql("SELECT cache_pexpire('sq2', 1500)")
    p = r.pttl('sq2')
    check('cache_pexpire 1500 over SQL, PTTL over RESP in (1000, 1500]', 1000 < p <= 1500, p)
    r.set('gx', 'v')
    r.getex('gx', ex=77)
    eq('GETEX EX over RESP, cache_ttl', sql("SELECT cache_ttl('gx')"), 77)
    sql("SELECT cache_set('kt', 'v', 60)")
    r.set('kt', 'w', keepttl=True)
    eq('SET KEEPTTL over RESP keeps the ttl cache_set gave', sql("SELECT cache_ttl('kt')"), 60)
    # expiry seen by both sides
    r.set('short', 'v', px=300)
    sql("SELECT cache_set('short2', 'v', 1)")
    check('live before expiry', r.get('short') == b'v' and sql("SELECT cache_get('short2')") == 'v')
    time.sleep(1.1)
    check('after expiry: gone for SQL and RESP, whoever set it',
          r.get('short') is None and sql("SELECT cache_get('short')") is None and r.get('short2') is None
          and r.exists('short', 'short2') == 0 and r.ttl('short2') == -2)


def visibility(r):
    # A SQL write is visible to GET after its commit, not before.
    c = e2e.pg()
    c.autocommit = False
    cur = c.cursor()
    cur.execute("SELECT cache_set('vis', 'uncommitted')")
    eq('an uncommitted SQL write is not visible over RESP', r.get('vis'), None)
    c.commit()
    eq('... visible after COMMIT', r.get('vis'), b'uncommitted')
    cur.execute("SELECT cache_set('vis', 'rolled back')")
    c.rollback()
    eq('a rolled-back SQL write is never visible', r.get('vis'), b'uncommitted')
    # a RESP write is committed when acknowledged: a new SQL snapshot sees it
    for i in range(20):
        r.set('ack%d' % i, i)
        if sql("SELECT cache_get('ack%d')" % i) != str(i):
            break
    else:
        i = None
    check('every acknowledged RESP write is visible to the next SQL statement', i is None, 'ack%s' % i)
    # A SQL transaction holds a row lock: the RESP write waits for it (up to
    # fastpgcache.resp_command_timeout) and then applies on top.
    cur.execute("SELECT cache_set('locked', 'sql')")
    done = {}

    def writer():
        done['reply'] = e2e.client('app').set('locked', 'resp')
        done['t'] = time.time()
    t = threading.Thread(target=writer)
    t0 = time.time()
    t.start()
    time.sleep(1.0)
    c.commit()
    t1 = time.time()
    t.join(10)
    check('a RESP SET waits for a SQL transaction\'s row lock, then applies',
          done.get('reply') is True and done['t'] >= t1 - 0.05 and r.get('locked') == b'resp',
          '%r after %.2f s' % (done, done.get('t', 0) - t0))
    c.close()


def bad_keys(r, raw):
    cases = [(b'\xff\xfe', 'a key that is not valid UTF-8'), (b'a\x00b', 'a key with a NUL byte'),
             (b'\xc3', 'a truncated UTF-8 sequence'), (b'\xed\xa0\x80', 'a UTF-8 surrogate')]
    for key, what in cases:
        eq('SET %s: clear error' % what, raw.call('SET', key, 'v'), RespError(KEY_ERROR))
        eq('GET %s: clear error' % what, raw.call('GET', key), RespError(KEY_ERROR))
    raw.call('DEL', 'good1', 'good2')
    eq('MSET with one bad key: error', raw.call('MSET', 'good1', 'v', b'\xff', 'v', 'good2', 'v'), RespError(KEY_ERROR))
    eq('... and nothing was written', raw.call('EXISTS', 'good1', 'good2'), 0)
    eq('MGET with one bad key: error', raw.call('MGET', 'good1', b'a\x00'), RespError(KEY_ERROR))
    eq('DEL with one bad key: error', raw.call('DEL', 'good1', b'\x80'), RespError(KEY_ERROR))
    eq('EXISTS with one bad key: error', raw.call('EXISTS', b'\x80'), RespError(KEY_ERROR))
    for cmd in (('INCR', b'\x80'), ('APPEND', b'\x80', 'x'), ('EXPIRE', b'\x80', '5'), ('TTL', b'\x80'),
                ('GETDEL', b'\x80'), ('GETEX', b'\x80'), ('GETSET', b'\x80', 'x'), ('TYPE', b'\x80'),
                ('STRLEN', b'\x80'), ('SETNX', b'\x80', 'v'), ('PERSIST', b'\x80'), ('INCRBYFLOAT', b'\x80', '1')):
        eq('%s with an invalid key: error' % cmd[0], raw.call(*cmd), RespError(KEY_ERROR))
    # the connection goes on
    eq('the connection still works after key errors', raw.call('PING'), 'PONG')
    res = raw.pipeline([('MULTI',), ('SET', 'good1', 'v'), ('SET', b'\xff', 'v'), ('EXEC',), ('EXISTS', 'good1')])
    check('a bad key inside MULTI/EXEC rolls the block back',
          isinstance(res[3], RespError) and res[3].startswith('EXECABORT Transaction rolled back') and
          'invalid key' in res[3] and res[4] == 0, repr(res))
    # NUL bytes in values are fine (they are bytea)
    eq('a value with NUL bytes is fine', (raw.call('SET', 'nulv', b'a\x00b'), raw.call('GET', 'nulv')), ('OK', b'a\x00b'))
    # patterns: KEYS/SCAN MATCH with a non-UTF-8 pattern match nothing... or refuse
    got = raw.call('KEYS', b'\xff*')
    check('KEYS with a non-UTF-8 pattern answers (an empty list or a clear error)',
          got == [] or (isinstance(got, RespError) and got.startswith('ERR')), repr(got))


def main():
    r = e2e.client('app')
    raw = e2e.raw('app')
    resp_to_sql(r, raw)
    sql_to_resp(r)
    ttls(r)
    visibility(r)
    bad_keys(r, raw)
    e2e.finish()


if __name__ == '__main__':
    main()
