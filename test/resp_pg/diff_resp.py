#!/usr/bin/python3
"""Differential test over RESP: the same seeded command sequence against a
real redis-server and against the RESP port of a real PostgreSQL cluster,
every reply compared byte for byte (values, integers, errors with their exact
text, nil, arrays), TTLs within the clock gap, KEYS and complete SCAN
iterations as sets.

An adapted copy of test/redis_diff/diff.py (which drives the SQL API): here
both sides receive the very same RESP request, so the generator also covers
what the SQL API has no form for (SET ... PX/EXAT/PXAT/GET combined with
NX/XX, EXPIRE NX/XX/GT/LT, GETEX PX/EXAT/PXAT, SETEX/PSETEX, UNLINK,
binary values with NUL bytes) and MULTI/EXEC blocks.

Expiry races (as in test/redis_diff): after every write the PTTL of the keys
it touched is read from both servers (timed), which bounds each key's expiry
instant on either side (its window); before a command, the test sleeps past
any window of a key it touches that begins within 40 ms; a command that
nevertheless overlapped a window is not compared (its keys are deleted on
both sides) and counted as straddled (over 2% fails the run).

Deliberate differences, compared as such:
  * MULTI/EXEC with a command that fails at run time: Redis applies the
    others and puts the error in EXEC's array; FastPgCache rolls the block
    back and answers "EXECABORT Transaction rolled back: <that error>". The
    test checks exactly that, then deletes the block's keys on both sides.
  * DBSIZE: Redis counts keys whose TTL passed but which were not reclaimed:
    the test touches every key with EXISTS on the Redis side first.
  * Keys are UTF-8 text without NUL bytes (values are any bytes): the
    generator's keys are valid text; bad keys are tested in sql_resp.py.
  * Expiry beyond timestamptz (year 294276) is not generated.

Usage: diff_resp.py [--ops N] [--seed N] [--keep-going] [--progress N]
  (REDIS_PORT, RESP_PORT from the environment; user app, see e2e.py)
"""
import argparse
import collections
import random
import sys
import time

import e2e
from e2e import Conn, RespError

KEYS = ['k0', 'k1', 'k2', 'k3', 'k4', 'é', 'ключ', 'a*b', '[x]', 'u:1', 'u:10', 'h?llo']
VALUES_INT = ['0', '1', '-5', '42', '9223372036854775807', '-9223372036854775808', '9223372036854775806', '100']
VALUES_BAD_INT = ['+1', ' 1', '1 ', '01', '-0', '1.5', '', 'abc', '9223372036854775808', '١']
VALUES_FLOAT = ['1.5', '.5', '5.', '1e3', '0x10', '-0x1p3', 'inf', '-inf', 'nan', ' 1.5', '1.5 ', '1e-5000',
                '2.5e-3', '-0.0', '0e9', '1e', 'infinity', '3.25', '1234']
VALUES_TEXT = ['hello', 'é', 'значение', 'a b', 'x' * 40, 'Hello World', '{"a": 1}']
VALUES_BIN = [b'\x00', b'a\x00b', b'\xff\xfe\x00', bytes(range(256)), b'\r\n', b'\x80' * 10]
FLOAT_INCRS = ['0.5', '-1.25', '2.75', '0.125', '3', '-0.375', '1024.5', '-7.875', '1e3', '-2', '0', 'inf', '-inf',
               '0.56', 'nan', 'abc', '1e400', '0x10', '5.']
INTS = ['1', '-1', '100', '0', '9223372036854775807', '-9223372036854775808', '1.5', 'x', '', '07']
PATTERNS = ['*', 'k*', 'k?', 'k[0-2]', 'k[^0-2]', 'k[2-0]', '*[x]*', r'a\*b', 'a*b', '[', '[k', '??', '?', 'u:*',
            'u:1*', 'u:?', r'h\?llo', 'h?llo', '[é]?', '??????????', '', '**', r'\[x\]', '[[]x]', '*:*', '[a-]*']
PATTERN_ALPHABET = ['k', '0', '1', '2', '*', '?', '[', ']', '^', '-', '\\', 'é', 'u', ':', 'a', 'x']


def utf8(x):
    return x.encode('utf-8') if isinstance(x, str) else x


class Diff:
    def __init__(self, args):
        self.args = args
        self.rnd = random.Random(args.seed)
        self.red = Conn(port=e2e.REDIS_PORT)
        self.fpc = e2e.raw('app')
        self.windows = {}
        self.history = collections.deque(maxlen=args.history)
        self.counts = collections.Counter()
        self.straddled = 0
        self.mismatches = 0
        self.compared = 0

    # -- generators ----------------------------------------------------------
    def key(self):
        return self.rnd.choice(KEYS)

    def value(self):
        pool = self.rnd.choices([VALUES_INT, VALUES_BAD_INT, VALUES_FLOAT, VALUES_TEXT, VALUES_BIN],
                                weights=[5, 2, 2, 3, 2])[0]
        return self.rnd.choice(pool)

    def ttl_s(self):
        if self.rnd.random() < 0.85:
            return str(self.rnd.choice([1, 100, 1000, 100000]))
        return self.rnd.choice(['0', '-1', 'x', '9223372036854775807', '1.5'])

    def ms(self):
        r = self.rnd.random()
        if r < 0.45:
            return str(self.rnd.randint(20, 900))
        if r < 0.9:
            return str(self.rnd.randint(100000, 10000000))
        return self.rnd.choice(['0', '-5', 'abc', '9223372036854775807'])

    def abs_s(self):
        return str(int(time.time()) + self.rnd.choice([-100, -1, 1, 2, 1000, 100000]))

    def abs_ms(self):
        return str(int(time.time() * 1000) + self.rnd.choice([-5000, 300, 700, 100000, 5000000]))

    def expiry_opts(self, allow_keepttl, allow_persist=False):
        kind = self.rnd.choice(['none', 'none', 'EX', 'EX', 'PX', 'PX', 'EXAT', 'PXAT']
                               + (['KEEPTTL'] if allow_keepttl else []) + (['PERSIST'] if allow_persist else []))
        if kind == 'none':
            return []
        if kind in ('KEEPTTL', 'PERSIST'):
            return [kind]
        arg = {'EX': self.ttl_s, 'PX': self.ms, 'EXAT': self.abs_s, 'PXAT': self.abs_ms}[kind]()
        return [kind, arg]

    def pattern(self):
        if self.rnd.random() < 0.6:
            return self.rnd.choice(PATTERNS)
        return ''.join(self.rnd.choice(PATTERN_ALPHABET) for _ in range(self.rnd.randint(1, 6)))

    def some_keys(self):
        return [self.key() for _ in range(self.rnd.randint(1, 5))]

    # -- commands: each returns (name, argv, keys touched, writes, how) ----------
    def op_set(self):
        k = self.key()
        opts = self.expiry_opts(True)
        for flag, p in (('NX', 0.2), ('XX', 0.2), ('GET', 0.25), ('KEEPTTL', 0.05), ('EX', 0.03)):
            if self.rnd.random() < p:
                opts.append(flag)
        if 'EX' in opts and opts[-1] == 'EX':
            opts.append('10')
        self.rnd.shuffle(opts) if self.rnd.random() < 0.05 else None
        return 'SET', ['SET', k, self.value()] + opts, [k], True, 'exact'

    def op_setx(self):
        k = self.key()
        c = self.rnd.choice(['SETNX', 'SETEX', 'PSETEX', 'GETSET'])
        if c == 'SETEX':
            return c, [c, k, self.ttl_s(), self.value()], [k], True, 'exact'
        if c == 'PSETEX':
            return c, [c, k, self.ms(), self.value()], [k], True, 'exact'
        return c, [c, k, self.value()], [k], True, 'exact'

    def op_get(self):
        k = self.key()
        return 'GET', ['GET', k], [k], False, 'exact'

    def op_incr(self):
        k = self.key()
        c = self.rnd.choice(['INCR', 'DECR', 'INCRBY', 'DECRBY', 'INCRBY'])
        if c in ('INCR', 'DECR'):
            return c, [c, k], [k], True, 'exact'
        by = str(self.rnd.randint(-100, 100)) if self.rnd.random() < 0.7 else self.rnd.choice(INTS)
        return c, [c, k, by], [k], True, 'exact'

    def op_incrbyfloat(self):
        k = self.key()
        return 'INCRBYFLOAT', ['INCRBYFLOAT', k, self.rnd.choice(FLOAT_INCRS)], [k], True, 'exact'

    def op_append(self):
        k = self.key()
        return 'APPEND', ['APPEND', k, self.rnd.choice(['x', 'é', '12', '', 'abc', b'\x00\xff'])], [k], True, 'exact'

    def op_strlen(self):
        k = self.key()
        return 'STRLEN', ['STRLEN', k], [k], False, 'exact'

    def op_expire(self):
        k = self.key()
        c = self.rnd.choice(['EXPIRE', 'PEXPIRE', 'PEXPIRE', 'EXPIREAT', 'PEXPIREAT', 'PERSIST'])
        if c == 'PERSIST':
            return c, [c, k], [k], True, 'exact'
        arg = {'EXPIRE': self.ttl_s, 'PEXPIRE': self.ms, 'EXPIREAT': self.abs_s, 'PEXPIREAT': self.abs_ms}[c]()
        flags = [f for f, p in (('NX', 0.15), ('XX', 0.15), ('GT', 0.15), ('LT', 0.15)) if self.rnd.random() < p]
        return c, [c, k, arg] + flags, [k], True, 'exact'

    def op_ttl(self):
        k = self.key()
        if self.rnd.random() < 0.5:
            return 'TTL', ['TTL', k], [k], False, 'ttl'
        return 'PTTL', ['PTTL', k], [k], False, 'pttl'

    def op_getdel(self):
        k = self.key()
        return 'GETDEL', ['GETDEL', k], [k], True, 'exact'

    def op_getex(self):
        k = self.key()
        opts = self.expiry_opts(False, True)
        if self.rnd.random() < 0.05:
            opts += ['PERSIST']
        return 'GETEX', ['GETEX', k] + opts, [k], True, 'exact'

    def op_del_exists(self):
        ks = self.some_keys()
        c = self.rnd.choice(['DEL', 'UNLINK', 'EXISTS', 'EXISTS'])
        return c, [c] + ks, ks, c != 'EXISTS', 'exact'

    def op_type(self):
        k = self.key()
        return 'TYPE', ['TYPE', k], [k], False, 'exact'

    def op_multikey(self):
        ks = self.some_keys()
        c = self.rnd.choice(['MSET', 'MGET', 'MGET', 'MSETNX'])
        if c == 'MGET':
            return c, ['MGET'] + ks, ks, False, 'exact'
        argv = [c]
        for k in ks:
            argv += [k, self.value()]
        return c, argv, ks, True, 'exact'

    def op_keys(self):
        return 'KEYS', ['KEYS', self.pattern()], KEYS, False, 'set'

    def op_scan(self):
        argv = ['SCAN', '0']
        if self.rnd.random() < 0.6:
            argv += ['MATCH', self.pattern()]
        argv += ['COUNT', str(self.rnd.randint(1, 6))]
        if self.rnd.random() < 0.1:
            argv += ['TYPE', self.rnd.choice(['string', 'list'])]
        return 'SCAN', argv, KEYS, False, 'scan'

    def op_dbsize(self):
        return 'DBSIZE', ['DBSIZE'], KEYS, False, 'dbsize'

    def op_flush(self):
        return 'FLUSHDB', ['FLUSHDB'], KEYS, True, 'dbsize'

    def op_multi(self):
        cmds = []
        keys = []
        for _ in range(self.rnd.randint(1, 4)):
            op = self.rnd.choice([self.op_set, self.op_get, self.op_incr, self.op_append, self.op_incrbyfloat,
                                  self.op_setx, self.op_getdel, self.op_strlen])
            name, argv, ks, writes, how = op()
            cmds.append(argv)
            keys += ks
        return 'MULTI', cmds, sorted(set(keys)), True, 'multi'

    OPS = [(op_set, 14), (op_setx, 5), (op_get, 10), (op_incr, 10), (op_incrbyfloat, 5), (op_append, 4),
           (op_strlen, 3), (op_expire, 9), (op_ttl, 6), (op_getdel, 3), (op_getex, 5), (op_del_exists, 6),
           (op_type, 2), (op_multikey, 6), (op_keys, 3), (op_scan, 2), (op_dbsize, 2), (op_flush, 0.3),
           (op_multi, 4)]

    # -- running a command on both sides ---------------------------------------
    def run_on(self, conn, name, argv, how):
        argv = [utf8(x) for x in argv] if how != 'multi' else [[utf8(x) for x in c] for c in argv]
        if how == 'scan':
            seen, cursor, calls = set(), b'0', 0
            while True:
                argv[1] = cursor
                rep = conn.call(*argv)
                if isinstance(rep, RespError):
                    return rep
                cursor = rep[0]
                seen.update(rep[1])
                calls += 1
                if cursor == b'0' or calls > 10000:
                    return sorted(seen)
        if how == 'multi':
            return conn.pipeline([('MULTI',)] + [tuple(c) for c in argv] + [('EXEC',)])[-1]
        rep = conn.call(*argv)
        if how == 'set' and isinstance(rep, list):
            return sorted(rep)
        return rep

    def touch_all_redis(self):
        self.red.pipeline([('EXISTS', utf8(k)) for k in KEYS])

    # -- expiry windows (see test/redis_diff/diff.py) ----------------------------
    def probe(self, keys):
        for k in set(keys):
            t0 = time.time()
            rp = self.red.call('PTTL', utf8(k))
            t1 = time.time()
            pp = self.fpc.call('PTTL', utf8(k))
            t2 = time.time()
            lo, hi = [], []
            if isinstance(rp, int) and rp >= 0:
                lo.append(t0 + rp / 1000.0 - 0.002)
                hi.append(t1 + rp / 1000.0 + 0.002)
            if isinstance(pp, int) and pp >= 0:
                lo.append(t1 + pp / 1000.0 - 0.002)
                hi.append(t2 + (pp + 1) / 1000.0 + 0.002)
            if lo:
                self.windows[k] = (min(lo), max(hi))
            else:
                self.windows.pop(k, None)

    def guard(self, keys):
        while True:
            now = time.time()
            until = None
            for k in keys:
                w = self.windows.get(k)
                if w is None:
                    continue
                if now > w[1] + 0.005:
                    del self.windows[k]
                elif now + 0.040 >= w[0]:
                    until = max(until or 0, w[1] + 0.006)
            if until is None:
                return
            self.counts['(guard sleeps)'] += 1
            time.sleep(max(0.0, until - now))

    def straddles(self, keys, t0, t1):
        return [k for k in keys if k in self.windows
                and t0 <= self.windows[k][1] + 0.001 and t1 >= self.windows[k][0] - 0.001]

    def forget(self, keys):
        for k in keys:
            self.red.call('DEL', utf8(k))
            self.fpc.call('DEL', utf8(k))
            self.windows.pop(k, None)

    # -- comparison --------------------------------------------------------------
    def same(self, how, a, b, gap):
        if a == b:
            return True
        if isinstance(a, RespError) or isinstance(b, RespError):
            return False
        if how == 'ttl':
            return isinstance(a, int) and isinstance(b, int) and a >= 0 and b >= 0 and abs(a - b) <= 1
        if how == 'pttl':
            return isinstance(a, int) and isinstance(b, int) and a >= 0 and b >= 0 and abs(a - b) <= 2 + 1000 * gap
        return False

    def state(self, keys):
        """Our side's value and PTTL of keys (for the all-or-nothing check)."""
        return [(self.fpc.call('GET', utf8(k)), self.fpc.call('PTTL', utf8(k)) >= 0) for k in keys]

    def multi_same(self, cmds, a, b, before, keys):
        """EXEC's replies. Argument errors (found when EXEC parses the queued
        commands: syntax, invalid expire time, a bad number) are replies in
        place, as in Redis: then both arrays are equal. A command that fails
        while the block runs rolls the whole block back on our side: the
        reply is "EXECABORT Transaction rolled back: <Redis's error>" and none
        of the block's keys changed."""
        def equal(x, y, c):
            how = 'pttl' if c[0] == 'PTTL' else 'ttl' if c[0] == 'TTL' else 'exact'
            return x == y or self.same(how, x, y, 0.05)
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(equal(x, y, c) for c, x, y in zip(cmds, a, b)), False
        prefix = 'EXECABORT Transaction rolled back: '
        if isinstance(a, list) and isinstance(b, RespError) and b.startswith(prefix):
            self.counts['(EXEC rolled back)'] += 1
            errors = [x for x in a if isinstance(x, RespError)]
            unchanged = self.state(keys) == before
            return b[len(prefix):] in errors and unchanged, True
        return a == b, False

    def report(self, i, desc, a, b):
        self.mismatches += 1
        print('MISMATCH at operation #%d (seed %d): %s' % (i, self.args.seed, desc))
        print('  redis:      %r' % (a,))
        print('  fastpgcache: %r' % (b,))
        print('  history (oldest first):')
        for line in self.history:
            print('    ' + line)

    def run(self):
        self.red.call('FLUSHALL')
        self.fpc.call('FLUSHALL')
        funcs = [f for f, _ in self.OPS]
        weights = [w for _, w in self.OPS]
        start = time.time()
        for i in range(self.args.ops):
            op = self.rnd.choices(funcs, weights=weights)[0]
            name, argv, keys, writes, how = op(self)
            self.guard(keys)
            if how == 'dbsize':
                self.touch_all_redis()
            before = self.state(keys) if how == 'multi' else None
            t0 = time.time()
            a = self.run_on(self.red, name, list(argv), how)
            b = self.run_on(self.fpc, name, list(argv), how)
            t2 = time.time()
            desc = ' | '.join(' '.join(repr(x) for x in c) for c in argv) if how == 'multi' else ' '.join(repr(x) for x in argv)
            self.history.append('#%d %s -> redis %r, fpc %r' % (i, desc, a, b))
            hit = self.straddles(keys, t0, t2)
            resync = False
            if hit:
                self.straddled += 1
                self.counts['(straddled)'] += 1
                self.forget(hit)
            else:
                self.counts[name] += 1
                self.compared += 1
                gap = t2 - t0 + sum(self.windows[k][1] - self.windows[k][0] for k in keys if k in self.windows)
                if how == 'multi':
                    ok, resync = self.multi_same(argv, a, b, before, keys)
                else:
                    ok = self.same(how, a, b, gap)
                if not ok:
                    self.report(i, desc, a, b)
                    if not self.args.keep_going:
                        return False
                    resync = True
            if resync:
                self.forget(keys)
            if writes and keys and not hit:
                if name == 'FLUSHDB':
                    self.windows.clear()
                else:
                    self.probe(keys)
            if self.args.progress and (i + 1) % self.args.progress == 0:
                print('  %d operations, %.0f s' % (i + 1, time.time() - start), flush=True)
        return self.mismatches == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--seed', type=int, default=20261127)
    ap.add_argument('--ops', type=int, default=3000)
    ap.add_argument('--history', type=int, default=25)
    ap.add_argument('--keep-going', action='store_true')
    ap.add_argument('--progress', type=int, default=0)
    args = ap.parse_args()
    print('# diff_resp: seed %d, %d operations, redis-server on %d, RESP port %d' %
          (args.seed, args.ops, e2e.REDIS_PORT, e2e.RESP_PORT))
    d = Diff(args)
    t = time.time()
    with e2e.NoCrash('differential test'):
        ok = d.run()
    e2e.note('%d operations compared, %d mismatches, %d straddled an expiry (not compared), %.1f s' %
             (d.compared, d.mismatches, d.straddled, time.time() - t))
    e2e.note('by command: ' + ', '.join('%s %d' % kv for kv in sorted(d.counts.items())))
    e2e.check('%d commands: every reply of the RESP port equals redis-server\'s (seed %d)' % (args.ops, args.seed), ok)
    e2e.check('at most 2%% of the commands straddled an expiry (%d)' % d.straddled,
              d.straddled <= 0.02 * max(1, args.ops))
    e2e.finish()


if __name__ == '__main__':
    sys.exit(main())
