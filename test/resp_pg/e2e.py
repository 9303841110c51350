"""Shared helpers of the Redis-protocol end-to-end suite (test/resp_pg).

Every check runs against a real PostgreSQL cluster started by run.sh (with
shared_preload_libraries = 'fastpgcache' and fastpgcache.resp_port set) and,
where Redis is the reference, a real redis-server: never the in-memory test
double of test/resp.

Environment (set by run.sh):
  RESP_PORT     the cluster's fastpgcache.resp_port
  RESP_UNIX     its fastpgcache.resp_unix_socket (optional)
  REDIS_PORT    a private redis-server (optional)
  PGHOST PGPORT PGUSER PGDATABASE   the cluster, as the bootstrap superuser
  SERVER_LOG    the cluster's server log
The roles and passwords are the ones run.sh creates (ROLES below).

Each script prints "ok - ..." / "not ok - ..." lines and ends with
"N passed, N failed".
"""
import os
import socket
import sys
import time

import psycopg2
import redis

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'resp'))
from resplib import Conn, RespError, Verbatim, encode  # noqa: E402,F401  (re-exported)

RESP_PORT = int(os.environ.get('RESP_PORT', '0'))
RESP_UNIX = os.environ.get('RESP_UNIX') or None
REDIS_PORT = int(os.environ.get('REDIS_PORT', '0') or 0)
SERVER_LOG = os.environ.get('SERVER_LOG', '')

# role -> password (run.sh creates them; see its comments)
ROLES = {
    'app': 'app-secret-1',          # SELECT, INSERT, UPDATE, DELETE on cache_entries
    'reader': 'reader-secret-2',    # SELECT only
    'noconn': 'noconn-secret-3',    # no CONNECT on the database
    'su': 'su-secret-4',            # a superuser with a password
    'nologin': 'nologin-secret-5',  # NOLOGIN
    'expired': 'expired-secret-6',  # VALID UNTIL in the past
    'md5user': 'md5-secret-7',      # an MD5 secret instead of SCRAM
}
DEFAULT_USER = 'app'                # fastpgcache.resp_default_user

_passed = 0
_failed = 0


def check(name, cond, detail=''):
    """Records one assertion."""
    global _passed, _failed
    if cond:
        _passed += 1
        print('ok - %s' % name, flush=True)
    else:
        _failed += 1
        print('not ok - %s' % name, flush=True)
        if detail:
            for line in str(detail).splitlines():
                print('#   %s' % line, flush=True)
    return cond


def eq(name, got, want):
    return check(name, got == want, 'expected %r\ngot      %r' % (want, got))


def note(text):
    print('# %s' % text, flush=True)


def finish():
    print('%d passed, %d failed' % (_passed, _failed), flush=True)
    sys.exit(1 if _failed else 0)


def error_text(fn):
    """Runs fn; returns the text of the redis error it raised, or None."""
    try:
        fn()
    except redis.exceptions.RedisError as e:
        return str(e)
    return None


# ---- PostgreSQL ----------------------------------------------------------

def pg(user=None, dbname=None):
    c = psycopg2.connect(user=user or os.environ.get('PGUSER', 'postgres'),
                         dbname=dbname or os.environ.get('PGDATABASE', 'postgres'))
    c.autocommit = True
    return c


_pg = None


def sql(query, params=(), dbname=None):
    """One value (first column of the first row) from the bootstrap superuser's session."""
    global _pg
    if dbname is not None:
        c = pg(dbname=dbname)
        try:
            cur = c.cursor()
            cur.execute(query, params)
            return cur.fetchone()[0] if cur.description else None
        finally:
            c.close()
    if _pg is None or _pg.closed:
        _pg = pg()
    cur = _pg.cursor()
    try:
        cur.execute(query, params)
    except psycopg2.OperationalError:
        _pg = pg()          # after a crash-restart
        cur = _pg.cursor()
        cur.execute(query, params)
    return cur.fetchone()[0] if cur.description else None


def sql_error(query, params=()):
    """(SQLSTATE, message) of the error query raises, or None."""
    try:
        sql(query, params)
    except psycopg2.Error as e:
        return e.pgcode, (e.pgerror or '').strip().split('\n')[0]
    return None


def worker_pids(dbname=None):
    """pids of the running Redis-protocol workers."""
    global _pg
    if _pg is None or _pg.closed:
        _pg = pg()
    cur = _pg.cursor()
    cur.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'fastpgcache resp' ORDER BY pid")
    return [r[0] for r in cur.fetchall()]


def postmaster_start():
    return sql('SELECT pg_postmaster_start_time()')


# ---- RESP ---------------------------------------------------------------

def client(user='app', password=None, **kw):
    """A redis-py client of the RESP port, authenticated as user (None: no AUTH)."""
    if user is not None and password is None:
        password = ROLES[user]
    kw.setdefault('socket_timeout', 30)
    if user is None:
        return redis.Redis(port=RESP_PORT, **kw)
    return redis.Redis(port=RESP_PORT, username=user, password=password, **kw)


def raw(user='app', password=None, port=None, timeout=30.0):
    """A raw RESP connection (resplib.Conn), AUTHed as user unless user is None."""
    c = Conn(port=port or RESP_PORT, timeout=timeout)
    if user is not None:
        reply = c.call('AUTH', user, password or ROLES[user])
        if reply != 'OK':
            raise AssertionError('AUTH %s: %r' % (user, reply))
    return c


def port_open(port, host='127.0.0.1'):
    s = socket.socket()
    s.settimeout(1.0)
    try:
        s.connect((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_until(fn, timeout, step=0.1):
    """Polls fn() until it returns a true value (returned) or timeout seconds pass (None)."""
    deadline = time.time() + timeout
    while True:
        try:
            v = fn()
        except Exception:  # noqa: BLE001  (a server that is restarting)
            v = None
        if v:
            return v
        if time.time() >= deadline:
            return None
        time.sleep(step)


def resp_serving(port=None):
    """True when a PING over a fresh connection gets PONG."""
    try:
        c = Conn(port=port or RESP_PORT, timeout=2.0)
        try:
            return c.call('PING') == 'PONG'
        finally:
            c.close()
    except (OSError, EOFError):
        return False


# ---- the server log -------------------------------------------------------

CRASH_MARKERS = ('terminated by signal', 'terminated by exception', 'was terminated', 'PANIC:',
                 'all server processes terminated; reinitializing')


def log_size():
    return os.path.getsize(SERVER_LOG) if SERVER_LOG and os.path.exists(SERVER_LOG) else 0


def log_since(offset):
    if not SERVER_LOG:
        return ''
    with open(SERVER_LOG, 'rb') as f:
        f.seek(offset)
        return f.read().decode('utf-8', 'replace')


def crash_lines(offset):
    return [l for l in log_since(offset).splitlines() if any(m in l for m in CRASH_MARKERS)]


class NoCrash:
    """with NoCrash('what'): asserts afterwards that no backend crashed (log lines,
    postmaster start time) and that the RESP port still serves."""

    def __init__(self, what):
        self.what = what

    def __enter__(self):
        self.offset = log_size()
        self.start = postmaster_start()
        return self

    def __exit__(self, *exc):
        lines = crash_lines(self.offset)
        check('%s: no crash in the server log' % self.what, not lines, '\n'.join(lines[:10]))
        check('%s: postmaster start time unchanged' % self.what, postmaster_start() == self.start)
        check('%s: the RESP port still serves' % self.what, wait_until(resp_serving, 10))
        return False


def raw_reply(conn, *cmd):
    """Sends cmd on a resplib.Conn and returns the exact bytes of its reply."""
    conn.send_raw(encode(*cmd))
    start = conn.buf
    received = []
    fill = conn._fill  # noqa: SLF001

    def recording_fill():
        before = len(conn.buf)
        fill()
        received.append(conn.buf[before:])
    conn._fill = recording_fill  # noqa: SLF001
    try:
        conn.read()
    finally:
        del conn._fill  # noqa: SLF001
    total = start + b''.join(received)
    return total[:len(total) - len(conn.buf)]
