"""Shared helpers of the reliability suite's Python checkers.

Checkers print "ok - ..." / "not ok - ..." lines, "# ..." notes, and
"N passed, M failed" last (see lib.sh: py_checks). They talk to a real
PostgreSQL server through psycopg2 (Debian's python3-psycopg2, run with
/usr/bin/python3).
"""

import sys
import time

import psycopg2
import psycopg2.extensions

# SQLSTATE classes (first two characters) that count as a clear error: the
# caller gave bad input, lacks a privilege, is in the wrong state, or ran into
# a documented limit. Anything else (XX internal error, 58 system error such
# as 58P01 "could not open file", a lost connection, ...) is a failure.
CLEAR_CLASSES = {
    "22": "data exception (bad input value)",
    "23": "integrity constraint violation",
    "25": "invalid transaction state (25006 read-only transaction)",
    "40": "transaction rollback (serialization failure, deadlock)",
    "42": "syntax error or access rule violation (42501 privilege, 42883 no such function)",
    "53": "insufficient resources (53200 out of memory)",
    "54": "program limit exceeded (1 GB value, stack depth)",
    "55": "object not in prerequisite state (55P03 lock not available, 55000)",
    "0A": "feature not supported",
    "2B": "dependent privilege descriptors still exist",
    "44": "WITH CHECK OPTION violation",
}
# Single SQLSTATEs accepted from otherwise unaccepted classes.
CLEAR_CODES = {
    "57014": "query_canceled (statement_timeout)",
}
# A connection that ends with one of these means the server crashed or was
# restarted under us.
CRASH_CODES = {"57P01", "57P02", "57P03", "08000", "08003", "08006"}


def is_clear(sqlstate):
    if not sqlstate:
        return False
    return sqlstate[:2] in CLEAR_CLASSES or sqlstate in CLEAR_CODES


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, desc):
        self.passed += 1
        print("ok - " + desc, flush=True)

    def not_ok(self, desc, *details):
        self.failed += 1
        print("not ok - " + desc, flush=True)
        for d in details:
            for line in str(d).splitlines():
                print("#   " + line, flush=True)

    def check(self, desc, want, got, *details):
        if want == got:
            self.ok(desc)
        else:
            self.not_ok(desc, "expected %r, got %r" % (want, got), *details)

    def note(self, msg):
        for line in str(msg).splitlines():
            print("# " + line, flush=True)

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        return 0 if self.failed == 0 else 1


def connect(dsn, autocommit=True, **kw):
    conn = psycopg2.connect(dsn, **kw)
    conn.autocommit = autocommit
    return conn


def wait_for_server(dsn, seconds=60):
    """Waits until the server accepts connections again (after a crash)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            c = psycopg2.connect(dsn, connect_timeout=2)
            c.close()
            return True
        except psycopg2.Error:
            time.sleep(0.2)
    return False


class Outcome:
    """What one statement did: a result, a clear error, or a failure."""

    def __init__(self, rows=None, sqlstate=None, message=None, lost=False, seconds=0.0):
        self.rows = rows
        self.sqlstate = sqlstate
        self.message = message
        self.lost = lost  # the connection broke: a crash or restart
        self.seconds = seconds

    @property
    def error(self):
        return self.sqlstate is not None or self.lost

    @property
    def clear(self):
        return not self.lost and is_clear(self.sqlstate)

    def describe(self):
        if self.lost:
            return "connection lost (%s): %s" % (self.sqlstate, (self.message or "").strip())
        if self.sqlstate:
            return "ERROR %s: %s" % (self.sqlstate, (self.message or "").strip().splitlines()[0:1])
        return "result %r" % (shorten(self.rows),)


def _plain(value):
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def shorten(value, limit=200):
    s = repr(_plain(value))
    return s if len(s) <= limit else s[:limit] + "...(%d chars)" % len(s)


def run(conn, sql, args=None):
    """Runs one statement; never raises for server errors."""
    t0 = time.time()
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            rows = cur.fetchall() if cur.description is not None else None
        return Outcome(rows=rows, seconds=time.time() - t0)
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
        code = getattr(e, "pgcode", None)
        if conn.closed or code in CRASH_CODES or code is None:
            return Outcome(sqlstate=code or "08006", message=str(e), lost=True, seconds=time.time() - t0)
        _rollback(conn)
        return Outcome(sqlstate=code, message=_message(e), seconds=time.time() - t0)
    except psycopg2.Error as e:
        _rollback(conn)
        return Outcome(sqlstate=e.pgcode, message=_message(e), seconds=time.time() - t0)


def _message(e):
    diag = getattr(e, "diag", None)
    parts = []
    if diag is not None:
        for attr in ("message_primary", "message_detail", "message_hint"):
            v = getattr(diag, attr, None)
            if v:
                parts.append(v)
    return "\n".join(parts) if parts else str(e)


def _rollback(conn):
    try:
        if not conn.closed and not conn.autocommit:
            conn.rollback()
    except psycopg2.Error:
        pass


def extension_functions(conn, extname="fastpgcache"):
    """Every function of the extension, from the catalog (pg_depend), with
    its argument types, defaults, strictness and result shape: functions added
    later are covered without touching the tests."""
    sql = """
        SELECT p.oid, n.nspname, p.proname, p.pronargs, p.pronargdefaults, p.proisstrict, p.proretset,
               p.prorettype::regtype::text,
               coalesce(array(SELECT t::regtype::text FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(t, i)
                              ORDER BY i), '{}'),
               coalesce(p.proargnames, '{}'),
               pg_catalog.pg_get_function_identity_arguments(p.oid),
               p.provolatile, p.prosecdef
        FROM pg_catalog.pg_depend d
        JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid AND d.refclassid = 'pg_catalog.pg_extension'::regclass
        JOIN pg_catalog.pg_proc p ON p.oid = d.objid AND d.classid = 'pg_catalog.pg_proc'::regclass
        JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
        WHERE e.extname = %s AND d.deptype = 'e' AND p.prokind = 'f'
        ORDER BY p.proname, p.oid"""
    with conn.cursor() as cur:
        cur.execute(sql, (extname,))
        out = []
        for row in cur.fetchall():
            (oid, nsp, name, nargs, ndefaults, strict, retset, rettype, argtypes, argnames, identity,
             volatile, secdef) = row
            # In-only argument names: proargnames covers OUT columns too.
            argnames = list(argnames)[:nargs] if argnames else []
            out.append(Function(oid, nsp, name, nargs, ndefaults, strict, retset, rettype, list(argtypes),
                                argnames, identity))
        return out


class Function:
    def __init__(self, oid, schema, name, nargs, ndefaults, strict, retset, rettype, argtypes, argnames,
                 identity):
        self.oid = oid
        self.schema = schema
        self.name = name
        self.nargs = nargs
        self.ndefaults = ndefaults
        self.strict = strict
        self.retset = retset
        self.rettype = rettype
        self.argtypes = argtypes
        self.argnames = argnames
        self.identity = identity

    @property
    def signature(self):
        args = [a for a in self.identity.split(", ") if a and not a.startswith("OUT ")]
        return "%s(%s)" % (self.name, ", ".join(args))

    def call_sql(self, nargs=None, schema=True):
        """SELECT statement calling the function with nargs %s placeholders,
        each cast to its declared type (so overloads resolve exactly)."""
        n = self.nargs if nargs is None else nargs
        args = ", ".join("%%s::%s" % t for t in self.argtypes[:n])
        name = ('%s.%s' % (quote_ident(self.schema), self.name)) if schema else self.name
        return "SELECT * FROM %s(%s)" % (name, args)

    def literal_sql(self, args, schema=True):
        """The same call as a self-contained SQL text (for reproducers)."""
        parts = [sql_literal(v, t) for v, t in zip(args, self.argtypes)]
        name = ('%s.%s' % (quote_ident(self.schema), self.name)) if schema else self.name
        return "SELECT * FROM %s(%s);" % (name, ", ".join(parts))


def quote_ident(s):
    if s.replace("_", "a").isalnum() and s.lower() == s and not s[0].isdigit():
        return s
    return '"' + s.replace('"', '""') + '"'


def sql_literal(value, typ):
    """A SQL literal of value cast to typ, for a reproducer (huge values are
    written as an expression that builds them)."""
    if value is None:
        return "NULL::%s" % typ
    if isinstance(value, (bytes, bytearray, memoryview)):
        b = bytes(value)
        if len(b) > 256:
            return "(decode('%s', 'hex') || decode(repeat('%s', %d), 'hex'))::%s" % (
                b[:16].hex(), b[16:17].hex() or "00", len(b) - 16, typ)
        return "'\\x%s'::%s" % (b.hex(), typ)
    if isinstance(value, str) and len(value) > 256:
        return "(%s || repeat(%s, %d))::%s" % (pg_string(value[:32]), pg_string(value[32:33] or "x"),
                                              len(value) - 32, typ)
    if isinstance(value, Raw):
        return "(%s)::%s" % (value.sql, typ)
    if isinstance(value, list):
        return "%s::%s" % (pg_string(array_text(value)), typ)
    if isinstance(value, bool):
        return "%s::%s" % ("true" if value else "false", typ)
    if isinstance(value, (int, float)):
        return "'%s'::%s" % (value, typ)
    return "%s::%s" % (pg_string(str(value)), typ)


def pg_string(s):
    if any(ord(c) < 32 or ord(c) == 127 for c in s) or "\\" in s:
        out = []
        for c in s:
            o = ord(c)
            if c == "\\":
                out.append("\\\\")
            elif c == "'":
                out.append("\\'")
            elif o < 32 or o == 127:
                out.append("\\x%02x" % o)
            else:
                out.append(c)
        return "E'" + "".join(out) + "'"
    return "'" + s.replace("'", "''") + "'"


def array_text(values):
    """PostgreSQL array literal text for a (possibly nested) list."""
    def elem(v):
        if v is None:
            return "NULL"
        if isinstance(v, list):
            return array_text(v)
        s = str(v).replace("\\", "\\\\").replace('"', '\\"')
        return '"' + s + '"'
    return "{" + ",".join(elem(v) for v in values) + "}"


class Raw:
    """An argument passed as a SQL expression (e.g. an array with a lower
    bound other than 1), not as a parameter."""

    def __init__(self, sql):
        self.sql = sql

    def __repr__(self):
        return "Raw(%s)" % self.sql


def key_hash_sql(expr):
    """SQL computing the extension's key_hash of a text expression."""
    return ("pg_catalog.encode(pg_catalog.substr(pg_catalog.sha256(pg_catalog.convert_to(%s, 'UTF8')), "
            "1, 16), 'hex')::uuid" % expr)


def main_guard(fn):
    try:
        sys.exit(fn())
    except SystemExit:
        raise
    except BaseException as e:  # a checker bug must not look like a pass
        import traceback
        traceback.print_exc()
        print("not ok - checker raised %s: %s" % (type(e).__name__, e), flush=True)
        print("0 passed, 1 failed", flush=True)
        sys.exit(1)


# Functions that do not read or write cache_entries (their access is
# governed by EXECUTE alone). Every other function of the extension takes
# keys or cleans the table, and a role may do through it what it may do to
# cache_entries (README, "Privileges").
NON_TABLE_FUNCTIONS = {"cache_stats", "cache_stats_reset", "cache_start_worker", "cache_stop_worker",
                       "fastpgcache_selftest"}


def sample_args(fn, key="rel:k", key2="rel:k2"):
    """Plain, valid arguments for fn, by type and parameter name: the key
    `key` (which callers make exist), a text value, a ttl of 60."""
    out = []
    for j, t in enumerate(fn.argtypes):
        name = (fn.argnames[j] if j < len(fn.argnames) else "").lower()
        if t == "text":
            out.append(key if ("key" in name or name in ("k", "pattern")) else
                       ("selftest_unknown_mode" if fn.name == "fastpgcache_selftest" else "v"))
        elif t == "jsonb":
            out.append('{"a": 1}')
        elif t == "bytea":
            out.append(b"\x00\x01")
        elif t in ("integer", "bigint", "smallint"):
            out.append(60 if "ttl" in name or "sec" in name else 1)
        elif t == "text[]":
            out.append([key, key2] if "key" in name else ["v", "w"])
        elif t == "boolean":
            # Option flags (nx, xx, keepttl, persist): off is always a valid
            # combination.
            out.append(False)
        elif t in ("double precision", "numeric", "real"):
            out.append(1)
        elif t == "timestamp with time zone":
            out.append("2100-01-01")
        elif t == "interval":
            out.append("1 minute")
        else:
            out.append(None)
    return out


def call(conn, fn, args, schema=True):
    """Runs fn(args) (a bytea given as bytes); returns the Outcome."""
    params = [psycopg2.Binary(a) if isinstance(a, (bytes, bytearray)) else a for a in args]
    return run(conn, fn.call_sql(len(args), schema=schema), params)


def is_writer(conn, fn, args):
    """True if fn(args), run by this (superuser) connection in a transaction
    that is rolled back, takes a transaction id, i.e. writes. None if the
    call failed."""
    was = conn.autocommit
    conn.autocommit = True
    try:
        run(conn, "BEGIN")
        o = call(conn, fn, args)
        x = None if o.error else run(conn, "SELECT pg_catalog.pg_current_xact_id_if_assigned() IS NOT NULL")
        run(conn, "ROLLBACK")
        if o.error:
            return None
        return bool(x.rows[0][0])
    finally:
        conn.autocommit = was
