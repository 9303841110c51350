#!/usr/bin/python3
"""python3-redis (Debian's redis-py 4.3) against the RESP workers of a real
PostgreSQL cluster: every command of issue 13's list, pipelines, MULTI/EXEC,
RESP3 (redis-py 4.3 has no protocol=3: raw HELLO 3 over a socket), connection
pools, the unix socket, and reconnects after the worker process is killed.

The command checks also run against redis-server first (target "redis"): they
state Redis's behaviour, and the few places where FastPgCache differs on
purpose are marked fpc (see README.md, "Deliberate differences").
"""
import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import e2e
from e2e import Conn, RespError, Verbatim, check, error_text, note, sql


def every_command(r, fpc, tag, raw):
    """Every data and connection command, through redis-py's own methods (raw:
    a resplib.Conn on the same server, for replies that redis-py would convert)."""
    def c(name, cond, detail=''):
        return check('%s: %s' % (tag, name), cond, detail)

    r.flushall()
    c('PING', r.ping() is True)
    c('PING msg', raw.call('PING', 'hello') == b'hello')
    c('ECHO', r.echo('hi there') == 'hi there')
    c('SELECT 0', raw.call('SELECT', '0') == 'OK')
    c('SELECT 1 refused', 'DB index is out of range' in (error_text(lambda: r.execute_command('SELECT', 1)) or '')
      if fpc else True)
    # SET and its options
    c('SET/GET', r.set('a', '1') is True and r.get('a') == '1')
    c('SET NX on a live key', r.set('a', '2', nx=True) is None and r.get('a') == '1')
    c('SET NX on a new key', r.set('nx', 'v', nx=True) is True)
    c('SET XX on a live key', r.set('a', '3', xx=True) is True and r.get('a') == '3')
    c('SET XX on a missing key', r.set('missing', 'v', xx=True) is None and r.exists('missing') == 0)
    c('SET EX', r.set('e', 'v', ex=100) and r.ttl('e') in (99, 100))
    c('SET PX', r.set('p', 'v', px=100000) and 99000 <= r.pttl('p') <= 100000)
    c('SET EXAT', r.set('x', 'v', exat=int(time.time()) + 50) and 48 <= r.ttl('x') <= 50)
    c('SET PXAT', r.set('y', 'v', pxat=int(time.time() * 1000) + 50000) and 48000 <= r.pttl('y') <= 50000)
    c('SET KEEPTTL', r.set('e', 'w', keepttl=True) and r.ttl('e') > 90 and r.get('e') == 'w')
    c('SET without KEEPTTL clears the ttl', r.set('e', 'w2') and r.ttl('e') == -1)
    c('SET GET', r.set('a', '4', get=True) == '3' and r.get('a') == '4')
    c('SET GET on a missing key', r.set('sg', 'v', get=True) is None and r.get('sg') == 'v')
    c('SET NX GET', raw.call('SET', 'a', 'z', 'NX', 'GET') == b'4' and r.get('a') == '4')
    c('SET EX 0 refused', 'invalid expire time' in (error_text(lambda: r.set('k', 'v', ex=0)) or ''))
    c('SET NX XX refused', 'syntax error' in (error_text(lambda: r.execute_command('SET', 'k', 'v', 'NX', 'XX')) or ''))
    c('SET KEEPTTL EX refused', 'syntax error' in (error_text(
        lambda: r.execute_command('SET', 'k', 'v', 'KEEPTTL', 'EX', '5')) or ''))
    c('SETNX', r.setnx('n', '1') is True and r.setnx('n', '2') is False and r.get('n') == '1')
    c('SETEX', r.setex('sx', 10, 'v') and r.ttl('sx') == 10 and r.get('sx') == 'v')
    c('SETEX 0 refused', 'invalid expire time in \'setex\' command' in (error_text(lambda: r.setex('sx', 0, 'v')) or ''))
    c('PSETEX', r.psetex('px', 10000, 'v') and 9000 < r.pttl('px') <= 10000)
    # multi-key
    c('MSET/MGET', r.mset({'m1': '1', 'm2': '2'}) and r.mget('m1', 'm2', 'none') == ['1', '2', None])
    c('MSET odd arguments', 'wrong number of arguments' in (error_text(
        lambda: r.execute_command('MSET', 'a', '1', 'b')) or ''))
    c('MSETNX blocked by a live key', r.msetnx({'m1': 'x', 'm3': '3'}) is False and r.get('m3') is None
      and r.get('m1') == '1')
    c('MSETNX', r.msetnx({'m4': '4', 'm5': '5'}) is True and r.mget('m4', 'm5') == ['4', '5'])
    c('EXISTS counts repeats', r.exists('m1', 'm1', 'none') == 2)
    c('DEL', r.delete('m1', 'm2', 'none') == 2 and r.exists('m1', 'm2') == 0)
    c('DEL a key listed twice', r.set('d', '1') and r.delete('d', 'd') == 1)
    c('UNLINK', r.unlink('m4', 'n', 'none') == 2)
    # expiry
    c('EXPIRE', r.expire('a', 100) is True and r.ttl('a') == 100)
    c('EXPIRE missing', r.expire('none', 100) is False)
    c('EXPIRE NX', r.expire('a', 50, nx=True) is False and r.ttl('a') == 100)
    c('EXPIRE XX', r.expire('a', 90, xx=True) is True and r.ttl('a') == 90)
    c('EXPIRE GT', r.expire('a', 50, gt=True) is False and r.expire('a', 200, gt=True) is True)
    c('EXPIRE LT', r.expire('a', 150, lt=True) is True and r.ttl('a') == 150)
    c('EXPIRE NX GT refused', 'NX and XX, GT or LT options at the same time are not compatible' in (
        error_text(lambda: r.execute_command('EXPIRE', 'a', '5', 'NX', 'GT')) or ''))
    c('PEXPIRE', r.pexpire('a', 100000) is True and 99000 < r.pttl('a') <= 100000)
    c('EXPIREAT', r.expireat('a', int(time.time()) + 30) is True and 28 <= r.ttl('a') <= 30)
    c('PEXPIREAT', r.pexpireat('a', int(time.time() * 1000) + 30000) is True and 28000 <= r.pttl('a') <= 30000)
    c('PERSIST', r.persist('a') is True and r.ttl('a') == -1 and r.persist('a') is False)
    c('TTL/PTTL missing', r.ttl('none') == -2 and r.pttl('none') == -2)
    c('TTL without expiry', r.ttl('a') == -1 and r.pttl('a') == -1)
    c('EXPIRE in the past deletes', r.expire('a', -1) is True and r.exists('a') == 0)
    c('PEXPIREAT in the past deletes', r.set('a', '1') and r.pexpireat('a', 1000) is True and r.get('a') is None)
    c('EXPIRE not an integer', 'value is not an integer or out of range' in (
        error_text(lambda: r.execute_command('EXPIRE', 'a', 'soon')) or ''))
    c('a PX key expires', r.set('short', 'v', px=150) and r.get('short') == 'v' and
      (time.sleep(0.3) or True) and r.get('short') is None and r.exists('short') == 0)
    # counters
    c('INCR/INCRBY/DECR/DECRBY', r.incr('c') == 1 and r.incrby('c', 10) == 11 and r.decr('c') == 10
      and r.decrby('c', 5) == 5 and r.get('c') == '5')
    c('INCR keeps the ttl', r.expire('c', 100) and r.incr('c') == 6 and r.ttl('c') == 100)
    c('INCR of a non-integer', 'value is not an integer or out of range' in (
        error_text(lambda: (r.set('s', 'abc'), r.incr('s'))) or '') and r.get('s') == 'abc')
    c('INCR overflow', r.set('big', '9223372036854775807') and 'increment or decrement would overflow' in (
        error_text(lambda: r.incr('big')) or '') and r.get('big') == '9223372036854775807')
    c('DECRBY of INT64_MIN', 'decrement would overflow' in (
        error_text(lambda: r.execute_command('DECRBY', 'c', '-9223372036854775808')) or ''))
    c('INCRBYFLOAT', r.incrbyfloat('fl', 1.5) == 1.5 and r.get('fl') == '1.5')
    c('INCRBYFLOAT text', r.incrbyfloat('fl', 0.1) == 1.6 and r.get('fl') == '1.6')
    c('INCRBYFLOAT exponent', raw.call('INCRBYFLOAT', 'fl2', '5.0e3') == b'5000' and r.get('fl2') == '5000')
    c('INCRBYFLOAT of text', 'value is not a valid float' in (error_text(lambda: r.incrbyfloat('s', 1)) or ''))
    c('INCRBYFLOAT inf', 'increment would produce NaN or Infinity' in (
        error_text(lambda: r.execute_command('INCRBYFLOAT', 'fl', 'inf')) or ''))
    c('INCR of a float', 'value is not an integer or out of range' in (error_text(lambda: r.incr('fl')) or ''))
    # strings
    c('APPEND/STRLEN', r.append('s2', 'ab') == 2 and r.append('s2', 'cd') == 4 and r.strlen('s2') == 4
      and r.get('s2') == 'abcd' and r.strlen('none') == 0)
    c('APPEND keeps the ttl', r.expire('s2', 100) and r.append('s2', 'e') == 5 and r.ttl('s2') == 100)
    c('GETDEL', r.getdel('s2') == 'abcde' and r.exists('s2') == 0 and r.getdel('s2') is None)
    r.set('g', 'v')
    c('GETEX', r.getex('g') == 'v' and r.ttl('g') == -1)
    c('GETEX EX', r.getex('g', ex=60) == 'v' and r.ttl('g') == 60)
    c('GETEX PX', r.getex('g', px=60000) == 'v' and 59000 <= r.pttl('g') <= 60000)
    c('GETEX EXAT', r.getex('g', exat=int(time.time()) + 40) == 'v' and 38 <= r.ttl('g') <= 40)
    c('GETEX PXAT', r.getex('g', pxat=int(time.time() * 1000) + 40000) == 'v' and 38000 <= r.pttl('g') <= 40000)
    c('GETEX PERSIST', r.getex('g', persist=True) == 'v' and r.ttl('g') == -1)
    c('GETEX missing', r.getex('none', ex=5) is None)
    c('GETEX EX 0 missing is nil', r.execute_command('GETEX', 'none', 'EX', '0') is None)
    c('GETEX EX 0 live is an error', 'invalid expire time in \'getex\' command' in (
        error_text(lambda: r.execute_command('GETEX', 'g', 'EX', '0')) or ''))
    c('GETSET', r.getset('g', 'w') == 'v' and r.get('g') == 'w' and r.getset('gnew', 'x') is None)
    c('GETSET clears the ttl', r.expire('g', 100) and r.getset('g', 'y') == 'w' and r.ttl('g') == -1)
    c('TYPE', r.type('g') == 'string' and r.type('none') == 'none')
    # keyspace
    r.flushdb()
    for i in range(50):
        r.set('user:%d' % i, i)
    r.set('other', 1)
    c('KEYS', sorted(r.keys('user:?')) == sorted('user:%d' % i for i in range(10)))
    c('KEYS *', len(r.keys('*')) == 51)
    c('KEYS class', sorted(r.keys('user:[1-2]')) == ['user:1', 'user:2'])
    c('SCAN MATCH COUNT', sorted(r.scan_iter(match='user:*', count=7)) == sorted('user:%d' % i for i in range(50)))
    c('SCAN all', sorted(r.scan_iter()) == sorted(['other'] + ['user:%d' % i for i in range(50)]))
    cur, keys = r.scan(0, count=5)
    c('SCAN one step', isinstance(cur, int) and isinstance(keys, list))
    c('SCAN bad cursor', 'invalid cursor' in (error_text(lambda: r.execute_command('SCAN', 'x')) or ''))
    c('DBSIZE', r.dbsize() == 51)
    info = r.info()
    c('INFO (all sections)', 'redis_version' in info and 'connected_clients' in info
      and 'total_commands_processed' in info and info.get('db0', {}).get('keys') == 51)
    c('INFO server', 'redis_version' in r.info('server') and 'connected_clients' not in r.info('server'))
    c('INFO clients', r.info('clients').get('connected_clients', 0) >= 1)
    c('INFO stats', 'total_connections_received' in r.info('stats'))
    c('INFO keyspace', r.info('keyspace').get('db0', {}).get('keys') == 51)
    c('FLUSHDB', r.flushdb() is True and r.dbsize() == 0)
    r.set('f', 1)
    c('FLUSHALL', r.flushall() is True and r.dbsize() == 0 and r.info('keyspace') == {})
    c('FLUSHALL ASYNC', r.set('f', 1) and r.flushall(asynchronous=True) and r.dbsize() == 0)
    # connection commands
    c('CONFIG GET', r.config_get('databases').get('databases') in ('1', '16'))
    c('CONFIG GET glob', 'maxclients' in r.config_get('max*'))
    c('CLIENT SETNAME/GETNAME', r.client_setname('py') and r.client_getname() == 'py')
    c('CLIENT ID', isinstance(r.client_id(), int) and r.client_id() > 0)
    c('CLIENT LIST', any(x.get('name') == 'py' for x in r.client_list()))
    c('CLIENT INFO', r.client_info().get('name') == 'py')
    c('CLIENT SETNAME with a space', 'Client names cannot contain spaces' in (
        error_text(lambda: r.client_setname('a b')) or ''))
    if fpc:  # Redis 7.2's; this redis-server is 7.0
        c('CLIENT SETINFO', r.execute_command('CLIENT', 'SETINFO', 'lib-name', 'redis-py') == 'OK'
          and 'lib-name=redis-py' in r.execute_command('CLIENT', 'INFO'))
    c('CLIENT unknown subcommand', 'unknown subcommand' in (error_text(lambda: r.execute_command('CLIENT', 'NOPE')) or ''))
    n = r.command_count()
    c('COMMAND COUNT', isinstance(n, int) and n > 30)
    info = raw.call('COMMAND', 'INFO', 'get', 'set', 'nosuchcommand')
    c('COMMAND INFO', isinstance(info, list) and len(info) == 3 and info[0][0] == b'get' and info[0][1] == 2
      and info[1][0] == b'set' and info[1][1] == -3 and info[2] is None, repr(info)[:300])
    docs = raw.call('COMMAND', 'DOCS', 'get')
    c('COMMAND DOCS', isinstance(docs, list) and docs[0] == b'get' and b'summary' in docs[1], repr(docs)[:300])
    c('COMMAND', len(raw.call('COMMAND')) == n)
    c('unknown command', "unknown command 'NOPE', with args beginning with: 'x'" in (
        error_text(lambda: r.execute_command('NOPE', 'x')) or ''))
    c('wrong arity', "wrong number of arguments for 'get' command" in (error_text(lambda: r.execute_command('GET')) or ''))
    if fpc:
        c('WATCH refused', 'WATCH is not supported' in (error_text(lambda: r.execute_command('WATCH', 'k')) or ''))
        c('UNWATCH', raw.call('UNWATCH') == 'OK')
    # RESET and QUIT on a raw connection of their own
    c('DISCARD without MULTI', 'DISCARD without MULTI' in (error_text(lambda: r.execute_command('DISCARD')) or ''))


def pipelines(r, fpc, tag, port, user):
    def c(name, cond, detail=''):
        return check('%s: %s' % (tag, name), cond, detail)

    r.flushall()
    p = r.pipeline(transaction=False)
    for i in range(1000):
        p.set('k%d' % i, i)
        p.incr('counter')
    res = p.execute()
    c('pipeline of 2,000 (transaction=False)', len(res) == 2000 and res[-1] == 1000 and all(res[0::2]))
    p = r.pipeline(transaction=False)
    p.get('k5').incr('k5').get('nope').incr('counter').set('k6', 'x').incr('k6').get('k6')
    res = p.execute(raise_on_error=False)
    c('pipeline with an error in the middle: the others apply',
      res[:6] == ['5', 6, None, 1001, True, res[5]] and isinstance(res[5], redis.ResponseError) and res[6] == 'x',
      repr(res))
    if fpc:
        # A write acknowledged over RESP is committed: SQL sees it at once.
        c('pipelined writes are visible to SQL', sql("SELECT cache_get('k999')") == '999'
          and sql("SELECT cache_get('counter')") == '1001')
    p = r.pipeline(transaction=True)
    p.set('t', 1).incr('t').get('t')
    c('MULTI/EXEC', p.execute() == [True, 2, '2'])
    # A command that fails while EXEC runs.
    r.set('t2', 'before')
    p = r.pipeline(transaction=True)
    p.set('t2', 'x').incr('t2').set('t2b', 'y')
    if fpc:
        # ours: all or nothing, the whole block is rolled back (deliberate difference)
        err = error_text(p.execute)
        c('EXEC with a failing command rolls the whole block back (fpc)',
          err is not None and 'Transaction rolled back' in err and 'value is not an integer or out of range' in err
          and r.get('t2') == 'before' and r.exists('t2b') == 0, '%r %r %r' % (err, r.get('t2'), r.get('t2b')))
    else:
        res = p.execute(raise_on_error=False)
        c('EXEC with a failing command applies the others (redis)',
          res[0] is True and isinstance(res[1], redis.ResponseError) and res[2] is True and r.get('t2') == 'x')
    # A queueing error aborts EXEC, as in Redis.
    p = r.pipeline(transaction=True)
    p.set('t3', 1)
    p.execute_command('GET')
    c('EXEC after a failed queueing is aborted', 'wrong number of arguments' in (error_text(p.execute) or '')
      and r.get('t3') is None)
    conn = Conn(port=port)
    if user:
        conn.call('AUTH', user, e2e.ROLES[user])
    res = conn.pipeline([('MULTI',), ('SET', 't3', '1'), ('GET',), ('EXEC',), ('GET', 't3')])
    c('raw EXECABORT', res[3] == RespError('EXECABORT Transaction discarded because of previous errors.')
      and res[4] is None, repr(res))
    res = conn.pipeline([('MULTI',), ('SET', 't4', '1'), ('DISCARD',), ('GET', 't4'), ('EXEC',)])
    c('DISCARD', res == ['OK', 'QUEUED', 'OK', None, RespError('ERR EXEC without MULTI')], repr(res))
    res = conn.pipeline([('MULTI',), ('MULTI',), ('EXEC',)])
    c('nested MULTI', res[1] == RespError('ERR MULTI calls can not be nested') and res[2] == [], repr(res))
    res = conn.pipeline([('MULTI',), ('INCR', 'mx'), ('PING',), ('INCRBY', 'mx', '5'), ('GET', 'mx'), ('EXEC',)])
    c('EXEC mixes data and connection commands', res[-1] == [1, 'PONG', 6, b'6'], repr(res))
    conn.close()


def resp3(port, fpc, tag, user):
    def c(name, cond, detail=''):
        return check('%s: %s' % (tag, name), cond, detail)

    conn = Conn(port=port)
    if user:
        hello = conn.call('HELLO', '3', 'AUTH', user, e2e.ROLES[user], 'SETNAME', 'r3')
    else:
        hello = conn.call('HELLO', '3', 'SETNAME', 'r3')
    c('HELLO 3 map', isinstance(hello, dict) and hello.get(b'proto') == 3 and hello.get(b'server') == b'redis'
      and hello.get(b'mode') == b'standalone' and hello.get(b'role') == b'master', repr(hello))
    c('RESP3 SETNAME', conn.call('CLIENT', 'GETNAME') == b'r3')
    conn.call('FLUSHALL')
    c('RESP3 null (_)', conn.call('GET', 'nothing') is None)
    raw = e2e.raw_reply(conn, 'GET', 'nothing')
    c('RESP3 null is encoded as _', raw == b'_\r\n', repr(raw))
    raw = e2e.raw_reply(conn, 'MGET', 'nothing', 'nothing')
    c('RESP3 MGET', raw == b'*2\r\n_\r\n_\r\n', repr(raw))
    c('RESP3 SET/GET', conn.call('SET', 'r3', 'v') == 'OK' and conn.call('GET', 'r3') == b'v')
    c('RESP3 INFO is a verbatim string', isinstance(conn.call('INFO', 'server'), Verbatim))
    c('RESP3 CONFIG GET is a map', isinstance(conn.call('CONFIG', 'GET', 'timeout'), dict))
    c('RESP3 EXEC', conn.pipeline([('MULTI',), ('INCR', 'n3'), ('GET', 'none'), ('EXEC',)])[-1] == [1, None])
    raw = e2e.raw_reply(conn, 'INCRBYFLOAT', 'f3', '1.5')
    c('RESP3 INCRBYFLOAT is a bulk string', raw == b'$3\r\n1.5\r\n', repr(raw))
    c('HELLO 2 goes back to RESP2', isinstance(conn.call('HELLO', '2'), list))
    raw = e2e.raw_reply(conn, 'GET', 'nothing')
    c('RESP2 null bulk after HELLO 2', raw == b'$-1\r\n', repr(raw))
    c('HELLO 4 refused', conn.call('HELLO', '4') == RespError('NOPROTO unsupported protocol version'))
    c('RESET', conn.call('RESET') == 'RESET')
    if user:
        c('RESET forgets AUTH', conn.call('GET', 'r3') == RespError('NOAUTH Authentication required.'))
    c('QUIT', conn.call('QUIT') == 'OK' and conn.closed())


def pools(port, tag, user):
    kw = {'username': user, 'password': e2e.ROLES[user]} if user else {}
    pool = redis.ConnectionPool(port=port, max_connections=8, decode_responses=True, **kw)
    r = redis.Redis(connection_pool=pool)
    r.delete('pooled')

    def work():
        for _ in range(300):
            r.incr('pooled')
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check('%s: a pool of 8 connections, 8 threads x 300 INCR' % tag, r.get('pooled') == '2400', r.get('pooled'))
    bpool = redis.BlockingConnectionPool(port=port, max_connections=2, timeout=20, decode_responses=True, **kw)
    rb = redis.Redis(connection_pool=bpool)
    results = []

    def work2(i):
        results.append(rb.set('bp%d' % i, i) and rb.get('bp%d' % i) == str(i))
    threads = [threading.Thread(target=work2, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check('%s: a blocking pool of 2 connections shared by 6 threads' % tag, results == [True] * 6)
    pool.disconnect()
    bpool.disconnect()


def both_workers_serve():
    """Connections are spread over the two workers (SO_REUSEPORT)."""
    conns = [e2e.client('app') for _ in range(40)]
    pids = set()
    for r in conns:
        pids.add(r.info('server')['process_id'])
    workers = set(e2e.worker_pids())
    check('40 connections are served by both workers (SO_REUSEPORT)', pids == workers and len(workers) == 2,
          'served by %r, workers %r' % (pids, workers))
    for r in conns:
        r.close()


def unix_socket():
    r = redis.Redis(unix_socket_path=e2e.RESP_UNIX, username='app', password=e2e.ROLES['app'], decode_responses=True)
    check('unix socket (fastpgcache.resp_unix_socket)', r.ping() is True and r.set('u', '1') and r.get('u') == '1')
    c = Conn(unix=e2e.RESP_UNIX)
    check('unix socket: NOAUTH before AUTH', c.call('GET', 'u') == RespError('NOAUTH Authentication required.'))
    c.close()


def reconnects():
    r = e2e.client('app', decode_responses=True, retry=Retry(NoBackoff(), 3),
                   retry_on_error=[redis.ConnectionError])
    r.set('rc', 'kept')
    # QUIT closes the connection; the next command reconnects.
    conn = r.connection_pool.get_connection('PING')
    conn.send_command('QUIT')
    check('QUIT', conn.read_response() in (b'OK', 'OK', True))
    r.connection_pool.release(conn)
    check('reconnect after QUIT', r.get('rc') == 'kept')
    # Kill the worker this client is connected to.
    before = e2e.worker_pids()
    pid = r.info('server')['process_id']
    sql('SELECT pg_terminate_backend(%s)', (pid,))
    gone = e2e.wait_until(lambda: pid not in e2e.worker_pids(), 10)   # its listening socket is closed then
    check('a command after the worker was killed reconnects (the other worker serves)', gone and r.get('rc') == 'kept')
    back = e2e.wait_until(lambda: len(e2e.worker_pids()) == 2 and pid not in e2e.worker_pids(), 15)
    check('the launcher restarts the killed worker (5 s)', back, 'workers before %r, now %r' % (before, e2e.worker_pids()))
    # Kill both: the same client object works again once a worker is back
    # (redis-py 4.3 retries a command, not the connect of get_connection(),
    # so the application's loop sees ConnectionError meanwhile, and nothing
    # else).
    r2 = e2e.client('app', decode_responses=True, retry=Retry(NoBackoff(), 3),
                    retry_on_error=[redis.ConnectionError])
    check('connected', r2.get('rc') == 'kept')
    t0 = time.time()
    for p in e2e.worker_pids():
        sql('SELECT pg_terminate_backend(%s)', (p,))
    e2e.wait_until(lambda: not e2e.resp_serving(), 5)
    got, others = None, []
    while time.time() < t0 + 20:
        try:
            got = r2.get('rc')
            break
        except redis.ConnectionError:
            time.sleep(0.2)
        except redis.RedisError as e:
            others.append(e)
            time.sleep(0.2)
    note('served again %.1f s after both workers were killed' % (time.time() - t0))
    check('after both workers were killed the same client works again once they are back (ConnectionError meanwhile)',
          got == 'kept' and not others, '%r %r' % (got, others[:3]))
    check('both workers run again', e2e.wait_until(lambda: len(e2e.worker_pids()) == 2, 15))


def main():
    ref = redis.Redis(port=e2e.REDIS_PORT, decode_responses=True)
    every_command(ref, False, 'redis', Conn(port=e2e.REDIS_PORT))
    pipelines(ref, False, 'redis', e2e.REDIS_PORT, None)
    resp3(e2e.REDIS_PORT, False, 'redis', None)
    pools(e2e.REDIS_PORT, 'redis', None)

    r = e2e.client('app', decode_responses=True)
    every_command(r, True, 'fpc', e2e.raw('app'))
    pipelines(r, True, 'fpc', e2e.RESP_PORT, 'app')
    resp3(e2e.RESP_PORT, True, 'fpc', 'app')
    pools(e2e.RESP_PORT, 'fpc', 'app')
    both_workers_serve()
    unix_socket()
    reconnects()
    e2e.finish()


if __name__ == '__main__':
    main()
