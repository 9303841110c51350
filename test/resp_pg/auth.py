#!/usr/bin/python3
"""AUTH and privileges over the real worker: NOAUTH before AUTH for every
command but AUTH/HELLO/PING/QUIT/RESET (PING is allowed before AUTH on
purpose), WRONGPASS, a superuser refused, a role without CONNECT refused, a
SELECT-only role can GET but SET gives -NOPERM, HELLO 3 AUTH user pass
SETNAME, fastpgcache.resp_default_user with AUTH <password>, MD5 and SCRAM
secrets, one client's NOPERM never undoes another's write in the same batch.
"""
import threading

import redis

import e2e
from e2e import Conn, RespError, check, eq, error_text, sql

NOAUTH = RespError('NOAUTH Authentication required.')
WRONGPASS = RespError('WRONGPASS invalid username-password pair or user is disabled.')
SUPERUSER = RespError('NOPERM superuser roles may not log in over the Redis protocol; use an application role')
NOCONNECT = RespError('NOPERM the role has no CONNECT privilege on this database')
HELLO_NOAUTH = RespError('NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO '
                         'AUTH <user> <pass> option can be used to authenticate the client and select the RESP '
                         'protocol version at the same time')

# a minimal valid request for every command and subcommand of the table
SAMPLE_ARGS = {
    'get': ['k'], 'set': ['k', 'v'], 'setnx': ['k', 'v'], 'setex': ['k', '10', 'v'], 'psetex': ['k', '10', 'v'],
    'mget': ['k'], 'mset': ['k', 'v'], 'msetnx': ['k', 'v'], 'del': ['k'], 'unlink': ['k'], 'exists': ['k'],
    'ttl': ['k'], 'pttl': ['k'], 'expire': ['k', '10'], 'pexpire': ['k', '10'], 'expireat': ['k', '10'],
    'pexpireat': ['k', '10'], 'persist': ['k'], 'incr': ['k'], 'incrby': ['k', '1'], 'decr': ['k'],
    'decrby': ['k', '1'], 'incrbyfloat': ['k', '1'], 'append': ['k', 'v'], 'strlen': ['k'], 'getdel': ['k'],
    'getex': ['k'], 'getset': ['k', 'v'], 'type': ['k'], 'keys': ['*'], 'scan': ['0'], 'dbsize': [],
    'flushdb': [], 'flushall': [], 'info': [], 'echo': ['x'], 'select': ['0'], 'multi': [], 'exec': [],
    'discard': [], 'watch': ['k'], 'unwatch': [], 'client': ['ID'], 'command': ['COUNT'], 'config': ['GET', 'port'],
}
ALLOWED_BEFORE_AUTH = {'auth', 'hello', 'ping', 'quit', 'reset'}


def before_auth():
    names = [n.decode() for n in e2e.raw('app').call('COMMAND', 'LIST')]
    check('COMMAND LIST names the commands', 'get' in names and 'hello' in names, names)
    for name in sorted(names):
        if name in ALLOWED_BEFORE_AUTH:
            continue
        c = Conn(port=e2e.RESP_PORT)
        args = SAMPLE_ARGS.get(name)
        if args is None:
            check('a sample request for %s' % name, False, 'add it to SAMPLE_ARGS')
            continue
        got = c.call(name.upper(), *args)
        want = RespError('EXECABORT Transaction discarded because of: NOAUTH Authentication required.') \
            if name == 'exec' else NOAUTH
        eq('before AUTH: %s is refused with NOAUTH' % name.upper(), got, want)
        c.close()
    c = Conn(port=e2e.RESP_PORT)
    eq('before AUTH: PING answers (deliberate: health checks)', c.call('PING'), 'PONG')
    eq('before AUTH: PING msg answers', c.call('PING', 'hi'), b'hi')
    eq('before AUTH: HELLO without AUTH', c.call('HELLO', '3'), HELLO_NOAUTH)
    eq('before AUTH: RESET', c.call('RESET'), 'RESET')
    eq('before AUTH: an unknown command is still unknown (as Redis)', c.call('NOPE'),
       RespError("ERR unknown command 'NOPE', with args beginning with: "))
    eq('before AUTH: MULTI refused, then EXEC', (c.call('MULTI'), c.call('EXEC')),
       (NOAUTH, RespError('EXECABORT Transaction discarded because of: NOAUTH Authentication required.')))
    eq('before AUTH: QUIT', c.call('QUIT'), 'OK')
    check('... and the connection is closed', c.closed())
    # Redis's limits for unauthenticated requests (CVE-2021-32675)
    c = Conn(port=e2e.RESP_PORT)
    c.send_raw(b'*11\r\n')
    eq('before AUTH: more than 10 arguments is a protocol error', c.read(),
       RespError('ERR Protocol error: unauthenticated multibulk length'))
    check('... and the connection is closed', c.closed())
    c = Conn(port=e2e.RESP_PORT)
    c.send_raw(b'*2\r\n$4\r\nAUTH\r\n$16385\r\n')
    eq('before AUTH: a bulk over 16 KB is a protocol error', c.read(),
       RespError('ERR Protocol error: unauthenticated bulk length'))
    check('... and the connection is closed', c.closed())


def wrong_passwords():
    def auth(*args):
        c = Conn(port=e2e.RESP_PORT)
        try:
            got = c.call('AUTH', *args)
            after = c.call('GET', 'k')
            return got, after
        finally:
            c.close()
    eq('AUTH app with a wrong password: WRONGPASS, still NOAUTH', auth('app', 'nope'), (WRONGPASS, NOAUTH))
    eq('AUTH of a role that does not exist: WRONGPASS', auth('nosuchrole', 'x'), (WRONGPASS, NOAUTH))
    eq('AUTH of a NOLOGIN role: WRONGPASS', auth('nologin', e2e.ROLES['nologin']), (WRONGPASS, NOAUTH))
    eq('AUTH of a role whose password expired (VALID UNTIL): WRONGPASS', auth('expired', e2e.ROLES['expired']),
       (WRONGPASS, NOAUTH))
    eq('AUTH of a role without a password: WRONGPASS', auth('nopw', ''), (WRONGPASS, NOAUTH))
    eq('AUTH of a superuser: refused', auth('su', e2e.ROLES['su']), (SUPERUSER, NOAUTH))
    eq('AUTH of a superuser with a wrong password: WRONGPASS (says nothing about the role)', auth('su', 'x'),
       (WRONGPASS, NOAUTH))
    eq('AUTH of a role without CONNECT: refused', auth('noconn', e2e.ROLES['noconn']), (NOCONNECT, NOAUTH))
    eq('AUTH of a role without CONNECT, wrong password: WRONGPASS', auth('noconn', 'x'), (WRONGPASS, NOAUTH))
    eq('AUTH with the password of another role: WRONGPASS', auth('app', e2e.ROLES['reader']), (WRONGPASS, NOAUTH))
    eq('AUTH with too many arguments', auth('a', 'b', 'c'), (RespError('ERR syntax error'), NOAUTH))
    eq('AUTH of a role with an MD5 secret', auth('md5user', e2e.ROLES['md5user'])[0], 'OK')
    eq('AUTH of a role with a SCRAM secret', auth('app', e2e.ROLES['app'])[0], 'OK')
    # redis-py 4.3 raises ResponseError for WRONGPASS (as against redis-server)
    eq('redis-py: a wrong password raises WRONGPASS',
       str(_exc(lambda: e2e.client('app', password='bad').ping())), WRONGPASS)


def _exc(fn):
    try:
        fn()
    except redis.RedisError as e:
        return e
    return None


def default_user():
    c = Conn(port=e2e.RESP_PORT)
    eq('AUTH <password> logs in as fastpgcache.resp_default_user', c.call('AUTH', e2e.ROLES['app']), 'OK')
    check('... as that role', 'user=app' in c.call('CLIENT', 'INFO').decode())
    eq('... and may write', c.call('SET', 'du', 'v'), 'OK')
    eq('AUTH <wrong password> on the default user: WRONGPASS', Conn(port=e2e.RESP_PORT).call('AUTH', 'bad'), WRONGPASS)
    eq('AUTH default <password> is the default user too', Conn(port=e2e.RESP_PORT).call('AUTH', 'default', e2e.ROLES['app']), 'OK')
    r = redis.Redis(port=e2e.RESP_PORT, password=e2e.ROLES['app'])
    eq('redis-py with a password only', (r.set('du2', 'x'), r.get('du2')), (True, b'x'))


def hello():
    c = Conn(port=e2e.RESP_PORT)
    got = c.call('HELLO', '3', 'AUTH', 'app', 'bad')
    eq('HELLO 3 AUTH with a wrong password: WRONGPASS', got, WRONGPASS)
    eq('... the connection stays RESP2 and unauthenticated', e2e.raw_reply(c, 'GET', 'k'), b'-NOAUTH Authentication required.\r\n')
    h = c.call('HELLO', '3', 'AUTH', 'app', e2e.ROLES['app'], 'SETNAME', 'svc-1')
    check('HELLO 3 AUTH user pass SETNAME: the map', isinstance(h, dict) and h.get(b'proto') == 3
          and h.get(b'server') == b'redis' and isinstance(h.get(b'id'), int), repr(h))
    eq('... the name is set', c.call('CLIENT', 'GETNAME'), b'svc-1')
    info = c.call('CLIENT', 'INFO').decode()
    check('... CLIENT INFO shows user and resp=3', 'user=app' in info and 'resp=3' in info and 'name=svc-1' in info, info)
    eq('... RESP3 replies (null)', e2e.raw_reply(c, 'GET', 'nothing-here'), b'_\r\n')
    eq('HELLO 3 AUTH of a superuser: refused', Conn(port=e2e.RESP_PORT).call('HELLO', '3', 'AUTH', 'su', e2e.ROLES['su']),
       SUPERUSER)
    eq('HELLO 2 AUTH of the reader', Conn(port=e2e.RESP_PORT).call('HELLO', '2', 'AUTH', 'reader', e2e.ROLES['reader'])[:2],
       [b'server', b'redis'])
    eq('AUTH inside MULTI is refused (then EXEC aborts)', e2e.raw('app').pipeline(
        [('MULTI',), ('AUTH', 'reader', 'x'), ('EXEC',)])[1:],
       [RespError('ERR Command not allowed inside a transaction'),
        RespError('EXECABORT Transaction discarded because of previous errors.')])


def reauth():
    c = e2e.raw('app')
    eq('as app: SET', c.call('SET', 'ra', '1'), 'OK')
    eq('AUTH as reader on the same connection', c.call('AUTH', 'reader', e2e.ROLES['reader']), 'OK')
    got = c.call('SET', 'ra', '2')
    check('... now SET is NOPERM', isinstance(got, RespError) and got.startswith('NOPERM'), got)
    eq('a failed AUTH keeps the previous user (as Redis)', c.call('AUTH', 'app', 'wrong'), WRONGPASS)
    eq('... still reader: GET works', c.call('GET', 'ra'), b'1')
    check('... and SET is still NOPERM', str(c.call('SET', 'ra', '3')).startswith('NOPERM'))
    # a pipeline that starts with AUTH
    c = Conn(port=e2e.RESP_PORT)
    got = c.pipeline([('GET', 'ra'), ('AUTH', 'app', e2e.ROLES['app']), ('SET', 'ra', '4'), ('GET', 'ra')])
    eq('one pipeline: GET before AUTH refused, AUTH, then the commands run as the role', got, [NOAUTH, 'OK', 'OK', b'4'])


def reader_role():
    r = e2e.client('reader')
    w = e2e.client('app')
    w.set('rk', 'v')
    w.set('rn', '5')
    eq('reader: GET', r.get('rk'), b'v')
    eq('reader: MGET', r.mget('rk', 'none'), [b'v', None])
    eq('reader: EXISTS, TTL, PTTL, TYPE, STRLEN', (r.exists('rk'), r.ttl('rk'), r.pttl('rk'), r.type('rk'), r.strlen('rk')),
       (1, -1, -1, b'string', 1))
    check('reader: KEYS, SCAN, DBSIZE', b'rk' in r.keys('r*') and b'rk' in list(r.scan_iter('r*')) and r.dbsize() >= 2)
    for cmd in (('SET', 'rk', 'x'), ('SETNX', 'new', 'x'), ('SETEX', 'rk', '5', 'x'), ('MSET', 'rk', 'x'),
                ('DEL', 'rk'), ('UNLINK', 'rk'), ('INCR', 'rn'), ('DECRBY', 'rn', '2'), ('INCRBYFLOAT', 'rn', '1'),
                ('APPEND', 'rk', 'x'), ('EXPIRE', 'rk', '100'), ('PERSIST', 'rk'), ('GETDEL', 'rk'),
                ('GETEX', 'rk', 'EX', '100'), ('GETSET', 'rk', 'x'), ('FLUSHDB',), ('FLUSHALL',), ('MSETNX', 'new', 'x')):
        err = error_text(lambda: r.execute_command(*cmd)) or ''
        check('reader: %s is NOPERM' % cmd[0], err.startswith("this user has no permissions to run the '%s' command"
                                                               % cmd[0].lower()) and 'permission denied' in err, err)
    eq('reader: nothing changed', (w.get('rk'), w.get('rn'), w.ttl('rk'), w.exists('new')), (b'v', b'5', -1, 0))
    rc = e2e.raw('reader')
    got = rc.pipeline([('MULTI',), ('GET', 'rk'), ('SET', 'rk', 'y'), ('EXEC',)])[-1]
    check('reader: SET inside MULTI aborts EXEC with NOPERM', isinstance(got, RespError)
          and got.startswith('EXECABORT Transaction rolled back: NOPERM'), got)
    eq('reader: GETEX without options only reads', r.getex('rk'), b'v')
    eq('reader: raw NOPERM text', rc.call('SET', 'rk', 'z'),
       RespError("NOPERM this user has no permissions to run the 'set' command (permission denied for table cache_entries)"))


def batches_are_isolated():
    """A reader's failing SET and an app's SET in the same worker batch: the app's
    writes all apply (a unit's failure never undoes another's)."""
    apps = [e2e.raw('app') for _ in range(10)]
    readers = [e2e.raw('reader') for _ in range(10)]
    pid = {id(c): int(dict(l.split(':', 1) for l in c.call('INFO', 'server').decode().split('\r\n') if ':' in l)['process_id'])
           for c in apps + readers}
    pairs = [(a, rd) for a in apps for rd in readers if pid[id(a)] == pid[id(rd)]]
    check('an app and a reader connection on the same worker', pairs)
    if not pairs:
        return
    a, rd = pairs[0]
    a.call('DEL', 'iso')
    errors = []

    def run(conn, cmds, out):
        try:
            out.extend(conn.pipeline(cmds))
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    ra, rr = [], []
    for _ in range(5):
        ta = threading.Thread(target=run, args=(a, [('INCR', 'iso')] * 200, ra))
        tr = threading.Thread(target=run, args=(rd, [('INCR', 'iso')] * 200, rr))
        ta.start()
        tr.start()
        ta.join()
        tr.join()
    check('1,000 INCR of app interleaved with 1,000 failing INCR of reader on one worker: every app INCR applied',
          not errors and ra == list(range(1, 1001)) and a.call('GET', 'iso') == b'1000',
          '%r %r %r' % (errors, ra[-3:], a.call('GET', 'iso')))
    check('... and every reader INCR got NOPERM', len(rr) == 1000 and all(str(x).startswith('NOPERM') for x in rr))


def dropped_role():
    sql("CREATE ROLE tmprole LOGIN PASSWORD 'tmp-secret-8'")
    sql('GRANT SELECT, INSERT, UPDATE, DELETE ON cache_entries TO tmprole')
    sql('GRANT CONNECT ON DATABASE postgres TO tmprole')
    c = Conn(port=e2e.RESP_PORT)
    eq('AUTH as a role', c.call('AUTH', 'tmprole', 'tmp-secret-8'), 'OK')
    eq('... SET works', c.call('SET', 'tmp', 'v'), 'OK')
    sql('REVOKE ALL ON cache_entries FROM tmprole')
    got = c.call('SET', 'tmp', 'w')
    check('a REVOKE applies to the authenticated connection at once', str(got).startswith('NOPERM'), got)
    sql('REVOKE CONNECT ON DATABASE postgres FROM tmprole')
    sql('DROP ROLE tmprole')
    eq('the role was dropped: a clear error', c.call('GET', 'tmp'),
       RespError('ERR the role "tmprole" no longer exists'))
    eq('... PING still answers', c.call('PING'), 'PONG')


def main():
    before_auth()
    wrong_passwords()
    default_user()
    hello()
    reauth()
    reader_role()
    batches_are_isolated()
    dropped_role()
    e2e.finish()


if __name__ == '__main__':
    main()
