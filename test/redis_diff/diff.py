#!/usr/bin/python3
"""Differential test: FastPgCache's SQL API against a real redis-server.

A seeded random sequence of commands over a small key space (so keys
collide), with short and long TTLs, runs against redis-server and against
the SQL functions of a PostgreSQL database (the extension or the pure-SQL
fallback); every reply is compared, one by one: values, counts, booleans,
TTLs within a tolerance, errors as errors (a Redis error reply maps to the
SQLSTATE the spec gives that error, and must be exactly the SQLSTATE
PostgreSQL raised). KEYS and full SCAN iterations are compared as sets.

Expiry races. Both servers run on this machine's wall clock, but a command
reaches Redis and PostgreSQL a little apart, so a key's expiry instant
differs between them by up to the duration of the command that set it. The
test never compares across an expiry instant:
  * after every command that writes, it reads the PTTL of the keys it
    touched from both servers (timed), which bounds the instant at which
    each key expires on either side: the key's expiry window;
  * before a command, any key it touches (every key, for KEYS, SCAN,
    DBSIZE, FLUSHDB, MSET...) whose window begins within the next 40 ms or
    has not yet ended makes the test sleep until 5 ms past the window: the
    command then runs where the key is live on both sides or expired on both;
  * after the command, if it nevertheless overlapped a window (a stall of
    the machine), its replies are not compared: the touched keys are deleted
    on both sides and the command is counted as "straddled" (more than 2% of
    the commands straddling fails the run).
So TTLs are either long (100 s and more) or short (20-900 ms) and allowed
to pass, and both outcomes (live, expired) are compared.

Deliberate differences (test/redis_diff/README.md) are not generated, or
are compared as such: INCRBYFLOAT's reply is compared as a number, and the
text it stored too: Redis adds in long double and prints 17 decimals, so a
sum that is not exact in binary shows its rounding, where the fallback's
exact numeric sum does not ("1234.56000000000000005" against "1234.56");
when the two texts are the same number, both sides are given Redis's text
(counted as "float text differs"), otherwise it is a mismatch. No NaN
increment (Redis: "not a valid float", the spec: 22003), no GETEX EX 0
(Redis checks it only for an existing key), no NUL byte (PostgreSQL text
cannot hold one), only text values (TYPE "string" is compared with
cache_type "text"). TTL in seconds
rounds to the nearest second in Redis and up in FastPgCache: compared
within one second. Redis's DBSIZE counts expired keys not yet reclaimed:
the test first touches every key of the key space with EXISTS (which
reclaims them) before DBSIZE and FLUSHDB.

Usage:
  diff.py --redis-port PORT --dbname DB [--seed N] [--ops N] [--keep-going]
PostgreSQL connection parameters come from the PG* environment variables.
CI runs a few thousand operations with a fixed seed; by hand, e.g.
  diff.py --redis-port 6379 --dbname mydb --ops 1000000 --seed $RANDOM
prints the seed, and on a mismatch the command, both replies and the
commands before it.
"""
import argparse
import collections
import random
import sys
import time

import psycopg2
import redis

KEYS = ['k0', 'k1', 'k2', 'k3', 'k4', 'é', 'ключ', 'a*b', '[x]', 'u:1', 'u:10', 'h?llo']
VALUES_INT = ['0', '1', '-5', '42', '9223372036854775807', '-9223372036854775808', '9223372036854775806', '100']
VALUES_BAD_INT = ['+1', ' 1', '1 ', '01', '-0', '1.5', '', 'abc', '9223372036854775808', '١']
VALUES_FLOAT = ['1.5', '.5', '5.', '1e3', '0x10', '-0x1p3', 'inf', '-inf', 'nan', ' 1.5', '1.5 ', '1e-5000',
                '2.5e-3', '-0.0', '0e9', '1e', 'infinity', '3.25']
VALUES_TEXT = ['hello', 'é', 'значение', 'a b', 'x' * 40, 'Hello World', '{"a": 1}']
FLOAT_INCRS = ['0.5', '-1.25', '2.75', '0.125', '3', '-0.375', '1024.5', '-7.875', '1e3', '-2', '0', 'inf', '-inf']
PATTERNS = ['*', 'k*', 'k?', 'k[0-2]', 'k[^0-2]', 'k[2-0]', '*[x]*', r'a\*b', 'a*b', '[', '[k', '??', '?', 'u:*',
            'u:1*', 'u:?', r'h\?llo', 'h?llo', '[é]?', '??????????', '', '**', r'\[x\]', '[[]x]', '*:*', '[a-]*']
PATTERN_ALPHABET = ['k', '0', '1', '2', '*', '?', '[', ']', '^', '-', '\\', 'é', 'u', ':', 'a', 'x']

ERRORS = [  # Redis error reply (substring) -> SQLSTATE, for every command
    ('value is not an integer or out of range', '22P02'),
    ('increment or decrement would overflow', '22003'),
    ('decrement would overflow', '22003'),
    ('value is not a valid float', '22P02'),
    ('increment would produce NaN or Infinity', '22003'),
    ('syntax error', '22023'),
    ('string exceeds maximum allowed size', '54000'),
]


def redis_error_state(cmd, err):
    msg = str(err)
    if 'invalid expire time' in msg:
        # SET EX 0 / GETEX EX 0: an invalid ttl; PEXPIRE past the end of time:
        # beyond timestamptz
        return '22008' if cmd in ('PEXPIRE', 'EXPIRE', 'EXPIREAT') else '22023'
    for text, state in ERRORS:
        if text in msg:
            return state
    return 'unmapped: ' + msg


def decoded(x):
    """Redis replies as the SQL API's types: bytes -> str, lists element-wise."""
    if isinstance(x, bytes):
        return x.decode('utf-8')
    if isinstance(x, list):
        return [decoded(v) for v in x]
    return x


class Err:
    def __init__(self, state, text):
        self.state, self.text = state, text

    def __eq__(self, other):
        return isinstance(other, Err) and other.state == self.state

    def __repr__(self):
        return 'ERROR %s (%s)' % (self.state, self.text)


class Mismatch(Exception):
    pass


class Diff:
    def __init__(self, args):
        self.args = args
        self.rnd = random.Random(args.seed)
        self.r = redis.Redis(host='127.0.0.1', port=args.redis_port)
        self.pg = psycopg2.connect(dbname=args.dbname)
        self.pg.autocommit = True
        self.cur = self.pg.cursor()
        self.windows = {}        # key -> (lo, hi): wall-clock range of its expiry instant on either side
        self.history = collections.deque(maxlen=args.history)
        self.counts = collections.Counter()
        self.straddled = 0
        self.mismatches = 0
        self.compared = 0
        self.post = None         # a command's follow-up after the comparison

    # -- the two servers -------------------------------------------------
    def sql(self, query, params=()):
        # (bigint parameters are passed as text: psycopg2 inlines parameters,
        # and -9223372036854775808::bigint does not parse)
        try:
            self.cur.execute(query, params)
            return self.cur.fetchone()[0]
        except psycopg2.Error as e:
            return Err(e.pgcode, (e.pgerror or '').strip().split('\n')[0])

    def sql_rows(self, query, params=()):
        try:
            self.cur.execute(query, params)
            return [row[0] for row in self.cur.fetchall()]
        except psycopg2.Error as e:
            return Err(e.pgcode, (e.pgerror or '').strip().split('\n')[0])

    def red(self, cmd, fn):
        try:
            return decoded(fn())
        except redis.ResponseError as e:
            return Err(redis_error_state(cmd, e), str(e))

    # -- expiry windows --------------------------------------------------
    def probe(self, keys):
        """Reads both sides' PTTL of keys (timed) and records their expiry windows."""
        for k in set(keys):
            t0 = time.time()
            rp = self.r.pttl(k.encode())
            t1 = time.time()
            pp = self.sql('SELECT cache_pttl(%s::text)', (k,))
            t2 = time.time()
            lo, hi = [], []
            if isinstance(rp, int) and rp >= 0:
                lo.append(t0 + rp / 1000.0 - 0.002)
                hi.append(t1 + rp / 1000.0 + 0.002)
            if isinstance(pp, int) and pp >= 0:
                lo.append(t1 + (pp - 1) / 1000.0 - 0.001)
                hi.append(t2 + pp / 1000.0 + 0.001)
            if lo:
                self.windows[k] = (min(lo), max(hi))
            else:
                self.windows.pop(k, None)

    def guard(self, keys):
        """Sleeps until no key's expiry window is near."""
        while True:
            now = time.time()
            until = None
            for k in keys:
                w = self.windows.get(k)
                if w is None:
                    continue
                if now > w[1] + 0.005:
                    del self.windows[k]          # expired on both sides
                elif now + 0.040 >= w[0]:
                    until = max(until or 0, w[1] + 0.006)
            if until is None:
                return
            self.counts['(guard sleeps)'] += 1
            time.sleep(max(0.0, until - now))

    def straddles(self, keys, t_start, t_end):
        return [k for k in keys if k in self.windows
                and t_start <= self.windows[k][1] + 0.001 and t_end >= self.windows[k][0] - 0.001]

    # -- generators ------------------------------------------------------
    def key(self):
        return self.rnd.choice(KEYS)

    def value(self):
        pool = self.rnd.choices([VALUES_INT, VALUES_BAD_INT, VALUES_FLOAT, VALUES_TEXT], weights=[5, 2, 2, 3])[0]
        return self.rnd.choice(pool)

    def ttl_s(self):
        return self.rnd.choice([1, 100, 1000, 100000]) if self.rnd.random() < 0.8 else self.rnd.choice([0, -1])

    def short_or_long_ms(self):
        if self.rnd.random() < 0.5:
            return self.rnd.randint(20, 900)
        return self.rnd.randint(100000, 10000000)

    def pattern(self):
        if self.rnd.random() < 0.6:
            return self.rnd.choice(PATTERNS)
        return ''.join(self.rnd.choice(PATTERN_ALPHABET) for _ in range(self.rnd.randint(1, 6)))

    def by(self):
        r = self.rnd.random()
        if r < 0.7:
            return self.rnd.randint(-100, 100)
        if r < 0.85:
            return self.rnd.choice([9223372036854775807, -9223372036854775808, 9223372036854775806, -9223372036854775807])
        return self.rnd.randint(-10**12, 10**12)

    # -- commands: each returns (name, description, keys touched, writes, redis thunk, pg thunk, comparison)
    def op_set(self):
        k, v = self.key(), self.value()
        nx = self.rnd.random() < 0.25
        xx = self.rnd.random() < 0.2
        keepttl = self.rnd.random() < 0.15
        get = not (nx or xx or keepttl) and self.rnd.random() < 0.25
        # PX maps to cache_set + cache_pexpire: not with GET (cache_getset) or KEEPTTL
        mode = self.rnd.choice(['none', 'ex', 'ex'] + ([] if get or keepttl else ['px', 'px']))
        if keepttl and mode == 'ex' and self.rnd.random() < 0.7:
            mode = 'none'       # mostly valid; KEEPTTL with EX is a syntax error (22023)
        ex = px = None
        opts = []
        if mode == 'ex':
            ex = self.ttl_s()
            opts += ['EX', ex]
        elif mode == 'px':
            px = self.short_or_long_ms()
            opts += ['PX', px]
        if nx:
            opts.append('NX')
        if xx:
            opts.append('XX')
        if keepttl:
            opts.append('KEEPTTL')
        if get:
            opts.append('GET')
        desc = 'SET %r %r %s' % (k, v, ' '.join(map(str, opts)))

        def rd():
            # get=True makes redis-py return the old value rather than a boolean
            return self.r.execute_command('SET', k.encode(), v.encode(), *[str(o).encode() for o in opts],
                                          **({'get': True} if get else {}))

        def pgf():
            if get:
                return self.sql('SELECT cache_getset(%s::text, %s::text, %s::integer)', (k, v, ex))
            if px is not None:
                if nx and xx:
                    return self.sql('SELECT cache_set(%s::text, %s::text, NULL::integer, %s, %s, %s)', (k, v, nx, xx, keepttl))
                return self.sql('SELECT CASE WHEN cache_set(%s::text, %s::text, NULL::integer, %s, %s, %s) '
                                'THEN cache_pexpire(%s::text, %s::bigint) ELSE false END', (k, v, nx, xx, keepttl, k, str(px)))
            return self.sql('SELECT cache_set(%s::text, %s::text, %s::integer, %s, %s, %s)', (k, v, ex, nx, xx, keepttl))

        def norm_r(x):
            if isinstance(x, Err) or get:
                return x
            return x is not None and x is not False

        return 'SET', desc, [k], True, lambda: norm_r(self.red('SET', rd)), pgf, 'exact'

    def op_get(self):
        k = self.key()
        return 'GET', 'GET %r' % k, [k], False, lambda: self.red('GET', lambda: self.r.get(k.encode())), \
            lambda: self.sql('SELECT cache_get(%s::text)', (k,)), 'exact'

    def op_getset(self):
        k, v = self.key(), self.value()
        return 'GETSET', 'GETSET %r %r' % (k, v), [k], True, \
            lambda: self.red('GETSET', lambda: self.r.getset(k.encode(), v.encode())), \
            lambda: self.sql('SELECT cache_getset(%s::text, %s::text)', (k, v)), 'exact'

    def op_incr(self):
        k = self.key()
        kind = self.rnd.choice(['INCR', 'DECR', 'INCRBY', 'DECRBY', 'INCRBY', 'INCRBY_TTL'])
        by = 1 if kind in ('INCR', 'DECR') else self.by()
        if kind == 'INCR':
            return kind, 'INCR %r' % k, [k], True, lambda: self.red(kind, lambda: self.r.incr(k.encode())), \
                lambda: self.sql('SELECT cache_incr(%s::text)', (k,)), 'exact'
        if kind == 'DECR':
            return kind, 'DECR %r' % k, [k], True, lambda: self.red(kind, lambda: self.r.decr(k.encode())), \
                lambda: self.sql('SELECT cache_decr(%s::text)', (k,)), 'exact'
        if kind == 'DECRBY':
            return kind, 'DECRBY %r %d' % (k, by), [k], True, \
                lambda: self.red(kind, lambda: self.r.execute_command('DECRBY', k.encode(), str(by).encode())), \
                lambda: self.sql('SELECT cache_decr(%s::text, %s::bigint)', (k, str(by))), 'exact'
        if kind == 'INCRBY':
            return kind, 'INCRBY %r %d' % (k, by), [k], True, \
                lambda: self.red(kind, lambda: self.r.execute_command('INCRBY', k.encode(), str(by).encode())), \
                lambda: self.sql('SELECT cache_incr(%s::text, %s::bigint)', (k, str(by))), 'exact'
        ttl = self.rnd.choice([1, 100, 5000])

        def rd():  # the Redis idiom for cache_incr(key, by, ttl): MULTI; SET k 0 NX EX ttl; INCRBY k by; EXEC
            p = self.r.pipeline(transaction=True)
            p.set(k.encode(), b'0', nx=True, ex=ttl)
            p.incrby(k.encode(), by)
            res = p.execute(raise_on_error=False)[1]
            if isinstance(res, redis.ResponseError):
                return Err(redis_error_state('INCRBY', res), str(res))
            return res

        return 'INCRBY+TTL', 'MULTI SET %r 0 NX EX %d; INCRBY %r %d; EXEC' % (k, ttl, k, by), [k], True, rd, \
            lambda: self.sql('SELECT cache_incr(%s::text, %s::bigint, %s::integer)', (k, str(by), ttl)), 'exact'

    def op_incrbyfloat(self):
        k, f = self.key(), self.rnd.choice(FLOAT_INCRS)
        pg_f = {'inf': 'Infinity', '-inf': '-Infinity'}.get(f, f)

        def norm_r(x):
            return x if isinstance(x, Err) else float(x)

        def resync(a, b):
            # Redis adds in long double and prints 17 decimals, so a sum that
            # is not exact in binary shows its rounding (1234 + 0.56 is
            # "1234.56000000000000005"); the fallback adds exactly in numeric
            # ("1234.56"): a deliberate difference (README). When the stored
            # texts differ but are the same number, both sides get Redis's
            # text; if they are not the same number, it is a mismatch.
            if isinstance(a, Err) or isinstance(b, Err):
                return
            rt = self.r.get(k.encode()).decode()
            pt = self.sql('SELECT cache_get(%s::text)', (k,))
            if rt == pt:
                return
            if not isinstance(pt, str) or abs(float(rt) - float(pt)) > 1e-15 * max(abs(float(rt)), 1.0):
                raise Mismatch('INCRBYFLOAT stored %r in Redis and %r in SQL' % (rt, pt))
            self.r.execute_command('SET', k.encode(), rt.encode(), b'KEEPTTL')
            self.sql('SELECT cache_set(%s::text, %s::text, keepttl => true)', (k, rt))
            self.counts['(float text differs)'] += 1

        self.post = resync
        return 'INCRBYFLOAT', 'INCRBYFLOAT %r %s' % (k, f), [k], True, \
            lambda: norm_r(self.red('INCRBYFLOAT', lambda: self.r.execute_command('INCRBYFLOAT', k.encode(), f.encode()))), \
            lambda: self.sql('SELECT cache_incrbyfloat(%s::text, %s::double precision)', (k, pg_f)), 'float'

    def op_append(self):
        k, v = self.key(), self.rnd.choice(['x', 'é', '12', '', 'abc'])
        return 'APPEND', 'APPEND %r %r' % (k, v), [k], True, \
            lambda: self.red('APPEND', lambda: self.r.append(k.encode(), v.encode())), \
            lambda: self.sql('SELECT cache_append(%s::text, %s::text)', (k, v)), 'exact'

    def op_strlen(self):
        k = self.key()
        return 'STRLEN', 'STRLEN %r' % k, [k], False, lambda: self.red('STRLEN', lambda: self.r.strlen(k.encode())), \
            lambda: self.sql('SELECT cache_strlen(%s::text)', (k,)), 'exact'

    def op_expire(self):
        k = self.key()
        kind = self.rnd.choice(['EXPIRE', 'PEXPIRE', 'PEXPIRE', 'EXPIREAT', 'PERSIST'])
        if kind == 'EXPIRE':
            s = self.rnd.choice([1, 100, 100000, 0, -3])
            return kind, 'EXPIRE %r %d' % (k, s), [k], True, \
                lambda: self.red(kind, lambda: bool(self.r.execute_command('EXPIRE', k.encode(), str(s).encode()))), \
                lambda: self.sql('SELECT cache_expire(%s::text, %s::integer)', (k, s)), 'exact'
        if kind == 'PEXPIRE':
            ms = self.short_or_long_ms() if self.rnd.random() < 0.9 else self.rnd.choice([0, -1, 9223372036854775807])
            return kind, 'PEXPIRE %r %d' % (k, ms), [k], True, \
                lambda: self.red(kind, lambda: bool(self.r.execute_command('PEXPIRE', k.encode(), str(ms).encode()))), \
                lambda: self.sql('SELECT cache_pexpire(%s::text, %s::bigint)', (k, str(ms))), 'exact'
        if kind == 'EXPIREAT':
            delta = self.rnd.choice([-100, -1, 1, 2, 1000, 100000])
            at = [None]

            def rd():
                at[0] = int(time.time()) + delta
                return bool(self.r.execute_command('EXPIREAT', k.encode(), str(at[0]).encode()))

            return kind, 'EXPIREAT %r now%+d' % (k, delta), [k], True, lambda: self.red(kind, rd), \
                lambda: self.sql('SELECT cache_expireat(%s::text, to_timestamp(%s))', (k, at[0])), 'exact'
        return kind, 'PERSIST %r' % k, [k], True, lambda: self.red(kind, lambda: bool(self.r.persist(k.encode()))), \
            lambda: self.sql('SELECT cache_persist(%s::text)', (k,)), 'exact'

    def op_ttl(self):
        k = self.key()
        if self.rnd.random() < 0.5:
            return 'TTL', 'TTL %r' % k, [k], False, lambda: self.red('TTL', lambda: self.r.ttl(k.encode())), \
                lambda: self.sql('SELECT cache_ttl(%s::text)', (k,)), 'ttl'
        return 'PTTL', 'PTTL %r' % k, [k], False, lambda: self.red('PTTL', lambda: self.r.pttl(k.encode())), \
            lambda: self.sql('SELECT cache_pttl(%s::text)', (k,)), 'pttl'

    def op_getdel(self):
        k = self.key()
        return 'GETDEL', 'GETDEL %r' % k, [k], True, lambda: self.red('GETDEL', lambda: self.r.getdel(k.encode())), \
            lambda: self.sql('SELECT cache_getdel(%s::text)', (k,)), 'exact'

    def op_getex(self):
        k = self.key()
        mode = self.rnd.choice(['none', 'ex', 'ex', 'persist', 'bad'])
        if mode == 'none':
            args, ttl, persist = [], None, False
        elif mode == 'ex':
            # not EX 0: Redis checks GETEX's ttl only when the key exists
            # (nil for a missing key); the spec refuses it first (22023)
            ttl = self.rnd.choice([1, 100, 1000, 100000])
            args, persist = ['EX', str(ttl)], False
        elif mode == 'persist':
            args, ttl, persist = ['PERSIST'], None, True
        else:
            ttl = 10
            args, persist = ['EX', '10', 'PERSIST'], True
        return 'GETEX', 'GETEX %r %s' % (k, ' '.join(args)), [k], True, \
            lambda: self.red('GETEX', lambda: self.r.execute_command('GETEX', k.encode(), *[a.encode() for a in args])), \
            lambda: self.sql('SELECT cache_getex(%s::text, %s::integer, %s::boolean)', (k, ttl, persist)), 'exact'

    def some_keys(self):
        return [self.key() for _ in range(self.rnd.randint(1, 5))]

    def op_del_exists(self):
        ks = self.some_keys()
        if self.rnd.random() < 0.5:
            return 'DEL', 'DEL %r' % ks, ks, True, lambda: self.red('DEL', lambda: self.r.delete(*[k.encode() for k in ks])), \
                lambda: self.sql('SELECT cache_delete(%s::text[])', (ks,)), 'exact'
        return 'EXISTS', 'EXISTS %r' % ks, ks, False, lambda: self.red('EXISTS', lambda: self.r.exists(*[k.encode() for k in ks])), \
            lambda: self.sql('SELECT cache_exists(%s::text[])', (ks,)), 'exact'

    def op_type(self):
        k = self.key()

        def norm_r(x):
            return x if isinstance(x, Err) else {'string': 'text', 'none': None}.get(x, x)

        return 'TYPE', 'TYPE %r' % k, [k], False, lambda: norm_r(self.red('TYPE', lambda: self.r.type(k.encode()))), \
            lambda: self.sql('SELECT cache_type(%s::text)', (k,)), 'exact'

    def op_multi(self):
        ks = self.some_keys()
        kind = self.rnd.choice(['MSET', 'MGET', 'MGET', 'MSETNX'])
        if kind == 'MGET':
            return kind, 'MGET %r' % ks, ks, False, lambda: self.red(kind, lambda: self.r.mget([k.encode() for k in ks])), \
                lambda: self.sql_rows('SELECT value FROM cache_mget(%s::text[])', (ks,)), 'exact'
        vs = [self.value() for _ in ks]
        pairs = [x for kv in zip(ks, vs) for x in (kv[0].encode(), kv[1].encode())]
        if kind == 'MSET':
            return kind, 'MSET %r' % list(zip(ks, vs)), ks, True, \
                lambda: self.red(kind, lambda: bool(self.r.execute_command('MSET', *pairs))), \
                lambda: (lambda n: n if isinstance(n, Err) else n == len(ks))(self.sql('SELECT cache_mset(%s::text[], %s::text[])', (ks, vs))), 'exact'
        return kind, 'MSETNX %r' % list(zip(ks, vs)), ks, True, \
            lambda: self.red(kind, lambda: bool(self.r.execute_command('MSETNX', *pairs))), \
            lambda: self.sql('SELECT cache_msetnx(%s::text[], %s::text[])', (ks, vs)), 'exact'

    def op_keys(self):
        p = self.pattern()

        def norm_r(x):
            return x if isinstance(x, Err) else sorted(x)

        return 'KEYS', 'KEYS %r' % p, KEYS, False, lambda: norm_r(self.red('KEYS', lambda: self.r.keys(p.encode()))), \
            lambda: (lambda x: x if isinstance(x, Err) else sorted(x))(self.sql_rows('SELECT k FROM cache_keys(%s::text) AS k', (p,))), 'exact'

    def op_scan(self):
        p = self.pattern() if self.rnd.random() < 0.5 else '*'
        count = self.rnd.randint(1, 6)

        def rd():
            return sorted(set(decoded(list(self.r.scan_iter(match=p.encode(), count=count)))))

        def pgf():
            seen, cursor, calls = set(), 0, 0
            while True:
                try:
                    self.cur.execute('SELECT next_cursor, keys FROM cache_scan(%s::bigint, %s::text, %s::integer)', (cursor, p, count))
                except psycopg2.Error as e:
                    return Err(e.pgcode, e.pgerror)
                cursor, keys = self.cur.fetchone()
                seen.update(keys)
                calls += 1
                if cursor == 0 or calls > 10000:
                    return sorted(seen)

        return 'SCAN', 'SCAN (full) MATCH %r COUNT %d' % (p, count), KEYS, False, lambda: self.red('SCAN', rd), pgf, 'exact'

    def touch_all(self):
        # Redis's DBSIZE counts keys that have expired but were not reclaimed
        # yet: EXISTS on each key of the key space reclaims them first.
        p = self.r.pipeline(transaction=False)
        for k in KEYS:
            p.exists(k.encode())
        p.execute()

    def op_dbsize(self):
        def rd():
            self.touch_all()
            return self.r.dbsize()
        return 'DBSIZE', 'DBSIZE', KEYS, False, lambda: self.red('DBSIZE', rd), lambda: self.sql('SELECT cache_dbsize()'), 'exact'

    def op_flush(self):
        def rd():
            self.touch_all()
            n = self.r.dbsize()
            self.r.flushdb()
            return n
        return 'FLUSHDB', 'FLUSHDB', KEYS, True, lambda: self.red('FLUSHDB', rd), lambda: self.sql('SELECT cache_flush()'), 'exact'

    def op_sleep(self):
        ms = self.rnd.randint(50, 400)
        return 'SLEEP', 'sleep %d ms' % ms, [], False, lambda: time.sleep(ms / 1000.0), lambda: None, 'none'

    OPS = [(op_set, 14), (op_get, 10), (op_getset, 3), (op_incr, 12), (op_incrbyfloat, 5), (op_append, 4),
           (op_strlen, 3), (op_expire, 8), (op_ttl, 6), (op_getdel, 3), (op_getex, 4), (op_del_exists, 6),
           (op_type, 3), (op_multi, 6), (op_keys, 4), (op_scan, 2), (op_dbsize, 2), (op_flush, 0.4), (op_sleep, 0.6)]

    # -- comparison --------------------------------------------------------
    def same(self, how, a, b, gap):
        if how == 'none':
            return True
        if how == 'exact' or isinstance(a, Err) or isinstance(b, Err):
            return a == b
        if a == b:
            return True
        if how == 'float':
            return isinstance(a, float) and isinstance(b, float) and abs(a - b) <= 1e-15 * max(abs(a), abs(b))
        if not (isinstance(a, int) and isinstance(b, int)) or a < 0 or b < 0:
            return False
        if how == 'ttl':   # Redis rounds to the nearest second, FastPgCache up
            return abs(a - b) <= 1
        # pttl: the two reads are gap seconds apart, and the two expiry
        # instants lie within the key's window
        return abs(a - b) <= 2 + 1000 * gap

    def run(self):
        self.r.flushdb()
        self.sql('SELECT cache_flush()')
        funcs = [f for f, _ in self.OPS]
        weights = [w for _, w in self.OPS]
        start = time.time()
        for i in range(self.args.ops):
            op = self.rnd.choices(funcs, weights=weights)[0]
            self.post = None
            name, desc, keys, writes, rd, pgf, how = op(self)
            self.guard(keys)
            t0 = time.time()
            a = rd()
            t1 = time.time()
            b = pgf()
            t2 = time.time()
            self.history.append('#%d %s -> redis %r, sql %r' % (i, desc, a, b))
            hit = self.straddles(keys, t0, t2)
            if hit:
                self.straddled += 1
                self.counts['(straddled)'] += 1
                for k in hit:  # unknown which side saw the key live: start it afresh on both
                    self.r.delete(k.encode())
                    self.sql('SELECT cache_delete(%s::text)', (k,))
                    self.windows.pop(k, None)
            else:
                self.counts[name] += 1
                self.compared += 1
                gap = t2 - t0 + sum(self.windows[k][1] - self.windows[k][0] for k in keys if k in self.windows)
                if not self.same(how, a, b, gap):
                    self.mismatches += 1
                    print('MISMATCH at operation #%d (seed %d): %s' % (i, self.args.seed, desc))
                    print('  redis: %r' % (a,))
                    print('  sql:   %r' % (b,))
                    print('  history (oldest first):')
                    for line in self.history:
                        print('    ' + line)
                    if not self.args.keep_going:
                        return False
                    # carry on from a common state
                    for k in keys:
                        self.r.delete(k.encode())
                        self.sql('SELECT cache_delete(%s::text)', (k,))
                        self.windows.pop(k, None)
            if self.post and not hit:
                try:
                    self.post(a, b)
                except Mismatch as e:
                    self.mismatches += 1
                    print('MISMATCH after operation #%d (seed %d): %s' % (i, self.args.seed, e))
                    for line in self.history:
                        print('    ' + line)
                    if not self.args.keep_going:
                        return False
            if writes and keys:
                self.probe(keys if name != 'FLUSHDB' else [])
                if name == 'FLUSHDB':
                    self.windows.clear()
            if self.args.progress and (i + 1) % self.args.progress == 0:
                print('  %d operations, %.0f s' % (i + 1, time.time() - start), flush=True)
        return self.mismatches == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--redis-port', type=int, required=True)
    ap.add_argument('--dbname', required=True)
    ap.add_argument('--seed', type=int, default=20261127)
    ap.add_argument('--ops', type=int, default=4000)
    ap.add_argument('--history', type=int, default=25)
    ap.add_argument('--keep-going', action='store_true', help='count every mismatch instead of stopping at the first')
    ap.add_argument('--progress', type=int, default=0, help='print progress every N operations')
    args = ap.parse_args()
    print('redis_diff: seed %d, %d operations, database %s, redis port %d' % (args.seed, args.ops, args.dbname, args.redis_port))
    d = Diff(args)
    t = time.time()
    ok = d.run()
    elapsed = time.time() - t
    print('redis_diff: %d operations compared, %d mismatches, %d straddled an expiry (not compared), %.1f s' %
          (d.compared, d.mismatches, d.straddled, elapsed))
    print('  by command: ' + ', '.join('%s %d' % kv for kv in sorted(d.counts.items())))
    if ok and d.straddled > 0.02 * max(1, args.ops):
        print('redis_diff: too many commands straddled an expiry (the machine stalled?)')
        ok = False
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
