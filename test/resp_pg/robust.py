#!/usr/bin/python3
"""Robustness of the real RESP worker: malformed requests (compared byte for
byte with redis-server), huge declared lengths, a slow client sending a byte
at a time while others are served, clients that disconnect mid-pipeline or
leave replies unread, many idle connections (1,000 in CI; RESP_IDLE_CONNECTIONS
= 10000 by hand), random requests through the executor. The worker answers or
drops that client, never crashes (no 'terminated by signal' in the server
log, the postmaster start time unchanged, no worker restarted) and keeps
serving the others.

Environment knobs: RESP_IDLE_CONNECTIONS (1000), RESP_SLOW_SECONDS (3),
RESP_FUZZ_REQUESTS (3000).
"""
import os
import random
import resource
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import e2e
from e2e import RespError, check, eq, note
import diff_protocol  # test/resp: the malformed-stream corpus (e2e puts it on sys.path)

AUTH = e2e.encode('AUTH', 'app', e2e.ROLES['app'])
PING = b'*1\r\n$4\r\nPING\r\n'


def exchange(port, first, chunks, wait=0.3):
    """Sends `first` (AUTH or PING), reads its one-line reply, then the chunks;
    returns (the rest of what the server sent, whether it closed)."""
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    s.sendall(first)
    buf = b''
    while b'\r\n' not in buf:
        d = s.recv(65536)
        if not d:
            return b'<closed before the first reply>', True
        buf += d
    buf = buf.split(b'\r\n', 1)[1]
    for c in chunks:
        try:
            s.sendall(c)
        except (BrokenPipeError, ConnectionResetError):
            break
        if len(chunks) > 1:
            time.sleep(0.002)
    s.settimeout(wait)
    closed = False
    try:
        while True:
            d = s.recv(1 << 16)
            if not d:
                closed = True
                break
            buf += d
    except (socket.timeout, TimeoutError):
        pass
    except ConnectionResetError:
        closed = True
    s.close()
    return buf, closed


def malformed():
    rnd = random.Random(42)
    cases = []
    for case in diff_protocol.corpus():
        cases.append([case])
        if 1 < len(case) < 300:
            cut = sorted(rnd.sample(range(1, len(case)), min(3, len(case) - 1)))
            parts, prev = [], 0
            for x in cut + [len(case)]:
                parts.append(case[prev:x])
                prev = x
            cases.append(parts)

    def one(chunks):
        return (exchange(e2e.REDIS_PORT, PING, chunks), exchange(e2e.RESP_PORT, AUTH, chunks))
    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(one, cases))
    bad = [(c, w, g) for c, (w, g) in zip(cases, results) if w != g]
    check('%d malformed and odd byte streams (test/resp corpus, split at random points) after AUTH: the worker '
          'answers and closes exactly as redis-server' % len(cases), not bad,
          '\n'.join('%r\n  redis: %r\n  fpc:   %r' % (b''.join(c)[:80], w, g) for c, w, g in bad[:5]))
    for case, expected in diff_protocol.DELIBERATE:
        eq('deliberate difference: %d-byte inline request refused' % len(case),
           exchange(e2e.RESP_PORT, AUTH, [case]), (expected[0], expected[1]))


def rss_kb(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def huge_lengths():
    c = e2e.raw('app')
    c.send_raw(b'*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870913\r\n')
    eq('a bulk over 512 MB: protocol error', c.read(), RespError('ERR Protocol error: invalid bulk length'))
    check('... and the connection is closed', c.closed())
    c = e2e.raw('app')
    c.send_raw(b'*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$99999999999999999999\r\n')
    eq('a bulk length beyond 64 bits: protocol error', c.read(), RespError('ERR Protocol error: invalid bulk length'))
    c = e2e.raw('app')
    c.send_raw(b'*2147483648\r\n')
    eq('a multibulk count over INT_MAX: protocol error', c.read(), RespError('ERR Protocol error: invalid multibulk length'))
    c = e2e.raw('app')
    c.send_raw(b'*2147483647\r\n$4\r\nPING\r\n')
    c.close()
    check('a multibulk of 2^31-1 arguments declared, then a disconnect: still serving', e2e.resp_serving())
    # Clients that declare a bulk of almost 512 MB and send a few bytes: the
    # worker holds what they sent, not what they declared.
    workers = e2e.worker_pids()
    before = {p: rss_kb(p) for p in workers}
    conns = []
    for i in range(16):
        c = e2e.raw('app')
        c.send_raw(b'*3\r\n$3\r\nSET\r\n$4\r\nhuge\r\n$536870000\r\n' + b'x' * 1000)
        conns.append(c)
    time.sleep(0.5)
    for _ in range(20):             # and trickle a little more
        for c in conns:
            c.send_raw(b'y')
        time.sleep(0.01)
    time.sleep(0.3)
    grown = sum(rss_kb(p) - before[p] for p in workers)
    note('16 clients each declared a 536,870,000-byte bulk and sent ~1 KB: the workers\' RSS grew by %d kB' % grown)
    check('16 clients declaring 512 MB bulks and sending 1 KB each cost the workers less than 64 MB '
          '(not the declared length)', grown < 64 * 1024, '%d kB' % grown)
    r = e2e.client('app')
    check('... others are served meanwhile', r.set('side', 'ok') and r.get('side') == b'ok')
    for c in conns:
        c.close()
    # A real 32 MB value, sent in one piece and in odd chunks.
    value = bytes(random.Random(7).getrandbits(8) for _ in range(1 << 16)) * 512
    check('a 32 MB value SET and GET over RESP', r.set('v32', value) and r.get('v32') == value)
    eq('... STRLEN', r.strlen('v32'), len(value))
    c = e2e.raw('app')
    req = e2e.encode('SET', 'v32b', value)
    for i in range(0, len(req), 1000003):
        c.send_raw(req[i:i + 1000003])
    eq('a 32 MB request in 1 MB chunks', c.read(), 'OK')
    eq('... stored byte for byte', e2e.sql("SELECT md5(cache_get_bytes('v32b')) = md5(cache_get_bytes('v32'))"), True)
    r.delete('v32', 'v32b')


def slow_client():
    seconds = float(os.environ.get('RESP_SLOW_SECONDS', '3'))
    req = e2e.encode('SET', 'slow', 'v' * 40)
    delay = seconds / len(req)
    slow = e2e.raw('app')
    stop = threading.Event()
    served = [0]
    errors = []

    def others():
        r = e2e.client('app')
        while not stop.is_set():
            try:
                r.set('busy', served[0])
                r.get('busy')
                served[0] += 1
            except Exception as e:  # noqa: BLE001
                errors.append(e)
                return
    threads = [threading.Thread(target=others) for _ in range(4)]
    for t in threads:
        t.start()
    t0 = time.time()
    for b in req:
        slow.send_raw(bytes([b]))
        time.sleep(delay)
    got = slow.read()
    stop.set()
    for t in threads:
        t.join()
    note('a slow client sent %d bytes one at a time over %.1f s; meanwhile 4 other clients made %d SET+GET pairs'
         % (len(req), time.time() - t0, served[0]))
    check('a slow client sending a byte at a time gets its reply', got == 'OK' and slow.call('GET', 'slow') == b'v' * 40)
    check('... while the others were served (at least 100 SET+GET pairs, no error)', served[0] >= 100 and not errors,
          '%d %r' % (served[0], errors[:2]))


def disconnects():
    r = e2e.client('app')
    r.delete('mid')
    # a pipeline of 20,000 INCR, closed right after sending (RST, replies unread)
    for linger in (False, True):
        s = socket.create_connection(('127.0.0.1', e2e.RESP_PORT))
        s.sendall(AUTH + e2e.encode('INCR', 'mid') * 20000)
        if linger:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        s.close()
    n, last, t0 = -1, -2, time.time()
    while n != last and time.time() < t0 + 20:   # until the worker is done with what it received
        last = n
        time.sleep(1.0)
        n = int(r.get('mid') or 0)
    note('clients that disconnected mid-pipeline: %d of 40,000 INCR were applied' % n)
    after = r.incr('mid')
    check('clients that disconnect mid-pipeline: the worker goes on, what ran is committed (0..40,000), INCR works',
          0 <= n <= 40000 and n < after <= 40001, 'n=%d, then INCR gave %r' % (n, after))
    # half a request, then a disconnect
    for part in (b'*3\r\n$3\r\nSET\r\n$1\r\nk', b'*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc', b'SET k "unclosed'):
        s = socket.create_connection(('127.0.0.1', e2e.RESP_PORT))
        s.sendall(AUTH + part)
        s.close()
    check('clients that disconnect in the middle of a request: still serving', r.ping())
    # a client that reads nothing while its replies pile up: disconnected at the
    # output buffer limit (fastpgcache.resp_client_output_buffer_limit = 64MB here)
    r.set('mb', b'z' * (1 << 20))
    s = socket.create_connection(('127.0.0.1', e2e.RESP_PORT))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    offset = e2e.log_size()
    s.sendall(AUTH + e2e.encode('GET', 'mb') * 150)
    closed = e2e.wait_until(lambda: 'output buffer over its limit' in e2e.log_since(offset), 20)
    check('a client that leaves 150 MB of replies unread is disconnected at the 64 MB output limit (logged)', closed)
    s.close()
    check('... others are served', r.get('mb') == b'z' * (1 << 20))
    # a client that sends a big pipeline and reads slowly: gets every reply
    c = e2e.raw('app')
    c.send_raw(e2e.encode('INCR', 'slowread') * 5000)
    time.sleep(0.5)
    got = [c.read() for _ in range(5000)]
    eq('a pipeline of 5,000 read late: every reply, in order', got, list(range(1, 5001)))
    r.delete('mb', 'mid', 'slowread')


def idle_connections():
    n = int(os.environ.get('RESP_IDLE_CONNECTIONS', '1000'))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 200
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    socks = []
    t0 = time.time()
    failures = []
    for i in range(n):
        try:
            s = socket.create_connection(('127.0.0.1', e2e.RESP_PORT), timeout=10)
            if i % 2:
                s.sendall(AUTH)   # half of them authenticated
            socks.append(s)
        except OSError as e:
            failures.append(e)
            break
    check('%d idle connections opened' % n, len(socks) == n, repr(failures[:1]))
    time.sleep(1.0)
    r = e2e.client('app')
    clients = sum(e2e.client('app').info('clients')['connected_clients'] for _ in range(1))
    note('%d idle connections in %.1f s; a worker reports connected_clients=%d' % (len(socks), time.time() - t0, clients))
    check('with %d idle connections a new client is served' % n, r.set('idle', 1) and r.incr('idle') == 2)
    # every authenticated idle one got its +OK and still works
    sample = socks[1::2][:50]
    ok = 0
    for s in sample:
        s.settimeout(10)
        buf = b''
        while not buf.endswith(b'\r\n'):
            buf += s.recv(100)
        s.sendall(PING)
        buf2 = b''
        while not buf2.endswith(b'\r\n'):
            buf2 += s.recv(100)
        ok += buf == b'+OK\r\n' and buf2 == b'+PONG\r\n'
    eq('idle authenticated connections still answer (a sample of 50)', ok, len(sample))
    for s in socks:
        s.close()
    after = e2e.wait_until(lambda: max(e2e.client('app').info('clients')['connected_clients'] for _ in range(4)) < 20, 10)
    check('after they close, the workers hold fewer than 20 clients', after)


COMMANDS = ['GET', 'SET', 'SETNX', 'SETEX', 'PSETEX', 'MGET', 'MSET', 'MSETNX', 'DEL', 'UNLINK', 'EXISTS', 'TTL',
            'PTTL', 'EXPIRE', 'PEXPIRE', 'EXPIREAT', 'PEXPIREAT', 'PERSIST', 'INCR', 'INCRBY', 'DECR', 'DECRBY',
            'INCRBYFLOAT', 'APPEND', 'STRLEN', 'GETDEL', 'GETEX', 'GETSET', 'TYPE', 'KEYS', 'SCAN', 'DBSIZE', 'INFO',
            'PING', 'ECHO', 'SELECT', 'CLIENT', 'COMMAND', 'CONFIG', 'MULTI', 'EXEC', 'DISCARD', 'WATCH', 'UNWATCH',
            'HELLO', 'AUTH', 'RESET']
WORDS = [b'EX', b'PX', b'EXAT', b'PXAT', b'NX', b'XX', b'GT', b'LT', b'KEEPTTL', b'GET', b'PERSIST', b'MATCH',
         b'COUNT', b'TYPE', b'0', b'1', b'-1', b'100', b'9223372036854775807', b'-9223372036854775808', b'1.5',
         b'inf', b'nan', b'*', b'k', b'k1', b'\xff', b'a\x00b', b'', b'3', b'GETNAME', b'SETNAME', b'INFO', b'ID',
         b'LIST', b'DOCS', b'COUNT', b'app', e2e.ROLES['app'].encode(), b'default', b'AUTH']


def random_requests():
    n = int(os.environ.get('RESP_FUZZ_REQUESTS', '3000'))
    rnd = random.Random(20261127)
    conns = [e2e.raw('app') for _ in range(4)]
    answered = 0
    for i in range(n):
        c = conns[i % 4]
        argv = [rnd.choice(COMMANDS).encode()] + [
            rnd.choice(WORDS) if rnd.random() < 0.8 else bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 12)))
            for _ in range(rnd.randint(0, 6))]
        if argv[0] in (b'FLUSHALL', b'FLUSHDB'):
            continue
        try:
            c.send_raw(e2e.encode(*argv))
            c.read()
            answered += 1
        except (EOFError, OSError):
            conns[i % 4] = e2e.raw('app')
    check('%d random requests (seeded) through the executor: each answered' % n, answered >= n - 50, answered)
    for c in conns:
        c.send_raw(b'RESET\r\n')
        c.read()
        c.call('AUTH', 'app', e2e.ROLES['app'])
        eq('... the connection still works', c.call('PING'), 'PONG')


def main():
    e2e.client('app').flushall()
    workers = e2e.worker_pids()
    with e2e.NoCrash('robustness'):
        malformed()
        huge_lengths()
        slow_client()
        disconnects()
        idle_connections()
        random_requests()
    eq('no worker exited or was restarted during the robustness tests', e2e.worker_pids(), workers)
    e2e.finish()


if __name__ == '__main__':
    main()
