#!/usr/bin/python3
"""Random calls of every function of the fastpgcache extension.

The functions and their argument types come from the catalog (pg_depend on
the extension, pg_proc), so functions added later are covered without
changing this file. Arguments are random but seeded: NULLs, empty strings,
huge keys and values (1 MB+), invalid UTF-8 bytea, text holding every
character U+0001..U+00FF, negative, zero and huge ttls, arrays with NULLs and
duplicates, empty, multi-dimensional and non-1-based arrays, arrays of
mismatched lengths, jsonb edge cases.

Every call must end in a result or a clear ERROR (a SQLSTATE class listed in
reltest.CLEAR_CLASSES); an XX000 internal error, an unaccepted SQLSTATE, a
lost connection (crash) or text that is not valid UTF-8 is a failure, printed
with a reproducer. Besides:
  * every call is tried inside BEGIN READ ONLY too (at random): a call that
    writes must fail with 25006 there, never write;
  * a non-STRICT function given a NULL key must raise an error, not return
    quietly (issue 9: bad input gets an error, never a silent NULL);
  * a model of the documented functions (cache_set/get/get_bytes/exists/ttl/
    delete/mset/mget) checks that what was written reads back.

usage: random_calls.py DSN [--seed N] [--calls N] [--seconds S]
Without --seed the seed is random; it is printed either way so that a failure
can be replayed with --seed.
"""

import argparse
import random
import sys
import time

import psycopg2
import psycopg2.extensions

import reltest
from reltest import Raw, run

T = reltest.Checks()
MB = 1024 * 1024
STATEMENT_TIMEOUT = "20s"


def new_conn(dsn):
    conn = reltest.connect(dsn)
    # Text comes back as bytes: this checker validates UTF-8 itself instead of
    # failing in the client's decoder.
    for caster in (psycopg2.extensions.BYTES, psycopg2.extensions.BYTESARRAY):
        psycopg2.extensions.register_type(caster, conn)
    with conn.cursor() as cur:
        cur.execute("SET statement_timeout = %s", (STATEMENT_TIMEOUT,))
        cur.execute("SET client_min_messages = warning")
    return conn


class Gen:
    """Seeded generators of argument values by type."""

    ALL_CHARS = "".join(chr(c) for c in range(1, 256))

    def __init__(self, rng):
        self.r = rng
        self.pool = (["k%d" % i for i in range(40)] +
                     ["", " ", "unicode \u2713 \U0001f511", self.ALL_CHARS, "x" * (MB + 7), "json", "bytes",
                      "expired:0", "expired:1", "badutf8", "badtext", "k'quote", "k\\backslash", "%s", "k\n"])

    def chance(self, p):
        return self.r.random() < p

    def key(self):
        if self.chance(0.04):
            return None
        if self.chance(0.75):
            return self.r.choice(self.pool)
        return self.text()

    def text(self):
        r = self.r.random()
        if r < 0.05:
            return None
        if r < 0.12:
            return ""
        if r < 0.20:
            return self.ALL_CHARS
        if r < 0.23:
            return "v" * (MB + self.r.randint(0, 1000))  # 1 MB+
        if r < 0.30:
            return self.r.choice(['{"a": 1}', "null", "[1,2", "42", "-1", "true", '"s"'])
        if r < 0.36:
            return "".join(chr(self.r.choice([0x41, 0xe9, 0x2713, 0x1f511, 0x7f, 0x1])) for _ in range(20))
        n = self.r.choice([1, 3, 10, 100, 5000])
        return "".join(self.r.choice("abcxyz019 :_-'\"\\%{}[]") for _ in range(n))

    def bytea(self):
        r = self.r.random()
        if r < 0.05:
            return None
        if r < 0.12:
            return b""
        if r < 0.25:
            return self.r.choice([b"\xff\xfe\x80", b"\xc3\x28", b"\xed\xa0\x80", b"a\x00b", b"\x00", b"\xf8\x88\x80\x80\x80"])
        if r < 0.35:
            return bytes(range(256))
        if r < 0.38:
            return bytes(self.r.getrandbits(8) for _ in range(64)) * (MB // 64 + 1)  # 1 MB+
        if r < 0.50:
            return "valid \u2713".encode()
        return bytes(self.r.getrandbits(8) for _ in range(self.r.choice([1, 16, 300])))

    def jsonb(self):
        r = self.r.random()
        if r < 0.05:
            return None
        choices = ['null', '"s"', '0', '-0', '1e308', '1e-308', '123456789012345678901234567890.5', '[]', '{}',
                   '{"a": [1, 2, {"b": null}]}', '{"a": 1, "a": 2}', '"\\u00e9\\ud83d\\udd11"', '"\\u0000"',
                   '[' * 200 + ']' * 200, '[' * 20000 + ']' * 20000, '{"k": "' + "x" * (MB + 3) + '"}',
                   'true', '"' + "\u2713" * 100 + '"', '[1,2', '']
        return self.r.choice(choices)

    def integer(self, bits=32):
        r = self.r.random()
        if r < 0.08:
            return None
        lim = 2 ** (bits - 1)
        choices = [0, -1, 1, 2, 5, 60, 3600, lim - 1, -lim, 2 ** 30, 86400 * 365 * 68, self.r.randint(-lim, lim - 1)]
        if bits > 32:
            choices += [2 ** 31, -(2 ** 31) - 1]
        return self.r.choice(choices)

    def ttl(self):
        # mostly long enough to be checked, sometimes the edge cases
        r = self.r.random()
        if r < 0.35:
            return None
        if r < 0.65:
            return self.r.choice([30, 600, 3600])
        return self.integer()

    def text_array(self):
        r = self.r.random()
        if r < 0.05:
            return None
        if r < 0.12:
            return []
        if r < 0.18:
            return [None]
        if r < 0.25:
            k = self.r.choice(self.pool[:10])
            return [k, k, k]
        if r < 0.32:
            return ["a", None, "b"]
        if r < 0.38:
            return Raw("ARRAY[['k1','k2'],['k3','k4']]")
        if r < 0.42:
            return Raw("'[0:1]={k1,k2}'::text[]")
        if r < 0.45:
            return Raw("'{}'::text[]")
        if r < 0.48:
            return ["x" * (MB + 1), "k1"]
        if r < 0.51:
            return ["k%d" % (i % 200) for i in range(2000)]
        n = self.r.randint(1, 12)
        return [self.key() if not self.chance(0.1) else None for _ in range(n)]

    def for_type(self, typ, argname=""):
        name = (argname or "").lower()
        if typ == "text":
            if name in ("key", "k", "pattern", "cursor") or name.endswith("key"):
                return self.key()
            return self.text()
        if typ == "bytea":
            return self.bytea()
        if typ == "jsonb" or typ == "json":
            return self.jsonb()
        if typ == "integer":
            return self.ttl() if "ttl" in name or "sec" in name else self.integer()
        if typ == "bigint":
            return self.integer(64)
        if typ == "smallint":
            return self.integer(16)
        if typ in ("double precision", "real", "numeric"):
            return self.r.choice([None, 0, -1.5, 1e300, "NaN", "Infinity", "-Infinity", 3])
        if typ == "boolean":
            return self.r.choice([None, True, False])
        if typ in ("timestamp with time zone", "timestamp without time zone"):
            return self.r.choice([None, "infinity", "-infinity", "2000-01-01", "now", "294276-12-31"])
        if typ == "interval":
            return self.r.choice([None, "1 second", "-1 day", "0", "178000000 years"])
        if typ == "text[]":
            return self.text_array()
        if typ == "bytea[]":
            return self.r.choice([None, [], [b"\xff"], [None]])
        if typ == '"char"':
            return self.r.choice([None, "t", "b", "j", "z"])
        # A type this file does not know: NULL, or text the type may reject.
        return self.r.choice([None, None, self.text()])


def adapt(value):
    if isinstance(value, (bytes, bytearray)):
        return psycopg2.Binary(bytes(value))
    return value


def build_call(fn, args):
    """(sql, params) for a call of fn with args (Raw values inlined)."""
    parts, params = [], []
    for v, t in zip(args, fn.argtypes):
        if isinstance(v, Raw):
            parts.append("(%s)::%s" % (v.sql, t))
        else:
            parts.append("%%s::%s" % t)
            params.append(adapt(v))
    sql = "SELECT * FROM %s.%s(%s)" % (reltest.quote_ident(fn.schema), fn.name, ", ".join(parts))
    return sql, params


def text_ok(value):
    """Every text in a result must be valid UTF-8 (the database encoding)."""
    if isinstance(value, memoryview):
        return True  # bytea
    if isinstance(value, (bytes, bytearray)):  # text (see new_conn)
        try:
            bytes(value).decode("utf-8")
            return True
        except UnicodeDecodeError:
            return False
    if isinstance(value, (list, tuple)):
        return all(text_ok(v) for v in value)
    return True


def populate(conn):
    """A populated cache: text, json, bytes, expired and live entries, an
    invalid UTF-8 bytea, and a row written by hand as text whose bytes are not
    valid UTF-8 (issue 9, defect 7)."""
    stmts = [
        "SELECT count(cache_set('k' || g, 'value ' || g, CASE WHEN g % 3 = 0 THEN 3600 END)) FROM generate_series(0, 39) g",
        "SELECT cache_set('json', '{\"a\": [1, 2, 3]}'::jsonb)",
        "SELECT cache_set('bytes', '\\x00ff10'::bytea)",
        "SELECT cache_set('badutf8', '\\xfffe80'::bytea)",
        "SELECT cache_set('unicode \u2713 \U0001f511', 'v')",
        "INSERT INTO cache_entries (key_hash, key, value, kind, expires_at) VALUES "
        "(%s, 'expired:0', 'old'::bytea, 't', now() - interval '1 hour'), "
        "(%s, 'expired:1', 'old'::bytea, 'b', now() - interval '1 second') ON CONFLICT DO NOTHING"
        % (reltest.key_hash_sql("'expired:0'"), reltest.key_hash_sql("'expired:1'")),
        "INSERT INTO cache_entries (key_hash, key, value, kind) VALUES (%s, 'badtext', '\\xfffe41'::bytea, 't') "
        "ON CONFLICT (key_hash) DO UPDATE SET value = EXCLUDED.value, kind = 't', expires_at = NULL"
        % reltest.key_hash_sql("'badtext'"),
    ]
    for s in stmts:
        o = run(conn, s)
        if o.error:
            raise RuntimeError("populating the cache failed: %s: %s" % (s[:80], o.describe()))


class Model:
    """What the documented functions must read back. Entries whose state this
    model cannot know (short ttls, functions it does not model, crashes) are
    'unknown' and not checked."""

    UNKNOWN = object()

    def __init__(self):
        self.entries = {}  # key -> (kind, bytes) or None (absent) or UNKNOWN
        self.all_unknown = True  # until the first flush to a known state

    def forget(self, key=None):
        if key is None:
            self.entries.clear()
            self.all_unknown = True
        else:
            self.entries[key] = Model.UNKNOWN

    def state(self, key):
        if key in self.entries:
            return self.entries[key]
        return Model.UNKNOWN if self.all_unknown else None

    def known_after_populate(self):
        """The state populate() leaves (after its cleanup)."""
        self.entries = {"k%d" % g: ("t", ("value %d" % g).encode()) for g in range(40)}
        self.entries.update({"json": ("j", None), "bytes": ("b", b"\x00\xff\x10"),
                             "badutf8": ("b", b"\xff\xfe\x80"), "unicode \u2713 \U0001f511": ("t", b"v"),
                             "expired:0": None, "expired:1": None, "badtext": Model.UNKNOWN})
        self.all_unknown = False

    def set(self, key, kind, value, ttl):
        if ttl is not None and ttl < 86400:
            self.entries[key] = Model.UNKNOWN  # may expire before the run ends
        else:
            self.entries[key] = (kind, value)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dsn")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--calls", type=int, default=4000)
    ap.add_argument("--seconds", type=float, default=90)
    ap.add_argument("--read-only-share", type=float, default=0.15)
    opts = ap.parse_args()
    seed = opts.seed if opts.seed is not None else random.SystemRandom().randint(1, 2 ** 31 - 1)
    T.note("seed %d (replay: random_calls.py DSN --seed %d --calls %d, or FPC_SEED=%d bash test/reliability/random_calls.sh)"
           % (seed, seed, opts.calls, seed))
    rng = random.Random(seed)
    gen = Gen(rng)
    dsn = opts.dsn
    with reltest.connect(dsn) as plain:
        fns = reltest.extension_functions(plain)
    conn = new_conn(dsn)

    # The worker's start/stop are part of the API too, but stopping and
    # starting workers at random measures nothing about argument handling;
    # they are called (rarely) all the same.
    T.note("functions under test (from pg_depend): " + ", ".join(f.signature for f in fns))
    T.check("the catalog lists the extension's functions", True, len(fns) >= 10, "found %d" % len(fns))

    read_only_per_function(dsn, fns)

    populate(conn)
    run(conn, "SELECT cache_cleanup()")  # a known state: expired rows gone...
    populate(conn)                        # ...and back
    model = Model()
    model.known_after_populate()

    # Failures, grouped: (function, what) -> [count, first reproducer, detail].
    failures = {}
    counts = {"calls": 0, "results": 0, "clear_errors": 0, "read_only": 0, "crashes": 0}
    per_fn = {}
    states = {}
    recent = []

    def fail(fn, what, repro, detail):
        k = (fn.signature, what)
        if k not in failures:
            failures[k] = [0, repro, detail, list(recent[-5:])]
        elif len(repro) < len(failures[k][1]) and not what.startswith("server crashed"):
            failures[k][1:3] = [repro, detail]  # keep the shortest reproducer
        failures[k][0] += 1

    deadline = time.time() + opts.seconds
    i = 0
    while i < opts.calls and time.time() < deadline:
        i += 1
        fn = rng.choice(fns)
        if fn.name in ("cache_start_worker", "cache_stop_worker") and not gen.chance(0.05):
            continue
        nargs = fn.nargs - (rng.randint(0, fn.ndefaults) if fn.ndefaults and gen.chance(0.3) else 0)
        args = [gen.for_type(t, fn.argnames[j] if j < len(fn.argnames) else "")
                for j, t in enumerate(fn.argtypes[:nargs])]
        # mismatched array lengths and pool keys for two-array functions
        if fn.argtypes[:2] == ["text[]", "text[]"] and gen.chance(0.5) and isinstance(args[0], list):
            n = len(args[0]) + rng.choice([0, 0, 0, -1, 1])
            args[1] = [gen.text() if not gen.chance(0.05) else None for _ in range(max(n, 0))]
        sub = type("F", (), {})()
        sub.__dict__.update(fn.__dict__)
        sub.argtypes = fn.argtypes[:nargs]
        sql, params = build_call(sub, args)
        repro = reltest.Function.literal_sql(sub, args)
        read_only = gen.chance(opts.read_only_share)
        counts["calls"] += 1
        per_fn.setdefault(fn.signature, 0)
        per_fn[fn.signature] += 1
        recent.append(repro if len(repro) < 300 else repro[:300] + "...")

        if read_only:
            counts["read_only"] += 1
            run(conn, "BEGIN READ ONLY")
            o = run(conn, sql, params)
            xid = None
            if not o.error:
                x = run(conn, "SELECT pg_current_xact_id_if_assigned()::text")
                xid = x.rows[0][0] if x.rows else None
            run(conn, "ROLLBACK")
            if not o.lost and not o.error and xid is not None:
                fail(fn, "wrote inside a READ ONLY transaction (no 25006)",
                     "BEGIN READ ONLY; " + repro + " SELECT pg_current_xact_id_if_assigned(); -- not NULL", "")
        else:
            o = run(conn, sql, params)

        if o.lost:
            counts["crashes"] += 1
            fail(fn, "server crashed (connection lost)", repro, o.describe())
            if not reltest.wait_for_server(dsn, 60):
                T.not_ok("server came back after a crash", "it did not within 60 s")
                break
            time.sleep(0.5)
            reltest.wait_for_server(dsn, 60)
            conn = new_conn(dsn)
            populate(conn)
            model.known_after_populate()  # a crash-restart emptied the cache
            continue
        if o.sqlstate:
            states[o.sqlstate] = states.get(o.sqlstate, 0) + 1
            if not o.clear:
                fail(fn, "unclear error %s" % o.sqlstate, ("BEGIN READ ONLY; " if read_only else "") + repro,
                     (o.message or "").strip())
            else:
                counts["clear_errors"] += 1
            continue
        counts["results"] += 1
        if not text_ok(o.rows):
            fail(fn, "returned text that is not valid UTF-8", repro, reltest.shorten(o.rows))
        key_named = fn.argnames[:1] in (["key"], ["keys"])
        if key_named and not fn.strict and args and args[0] is None:
            fail(fn, "NULL key accepted without an error", repro, "result %s" % reltest.shorten(o.rows))
        if read_only:
            continue
        check_model(fn, args, o.rows, model, fail, repro)

    # Deterministic edge checks on the hand-written rows (defect 7).
    conn = new_conn(dsn)
    populate(conn)
    for sql, want in [
        ("SELECT cache_get('badtext')", "22021"),
        ("SELECT value FROM cache_mget(ARRAY['badtext'])", "22021"),
        ("SELECT cache_get('badutf8')", "22021"),
    ]:
        o = run(conn, sql)
        got = o.sqlstate if o.error else "result %s" % reltest.shorten(o.rows)
        T.check("%s: a stored value that is not valid UTF-8 is refused as text (22021)" % sql, want, got,
                "setup: INSERT INTO cache_entries (key_hash, key, value, kind) VALUES "
                "(<hash of key>, 'badtext', '\\xfffe41', 't')" if "badtext" in sql else "")

    T.note("calls: %(calls)d (%(read_only)d inside READ ONLY), results: %(results)d, clear errors: "
           "%(clear_errors)d, crashes: %(crashes)d" % counts)
    T.note("calls per function: " + ", ".join("%s %d" % kv for kv in sorted(per_fn.items())))
    T.note("SQLSTATEs seen: " + ", ".join("%s x%d" % kv for kv in sorted(states.items())))
    untested = [f.signature for f in fns if per_fn.get(f.signature, 0) == 0]
    T.check("every function of the extension was called", [], untested)
    T.check("no server crash in %d random calls (seed %d)" % (counts["calls"], seed), 0, counts["crashes"])
    for (sig, what), (n, repro, detail, before) in sorted(failures.items()):
        if what.startswith("server crashed"):
            T.not_ok("%s: %s (%d times, seed %d)" % (sig, what, n, seed), "reproducer: " + repro,
                     "calls just before (state may matter):", *before)
        else:
            T.not_ok("%s: %s (%d times, seed %d)" % (sig, what, n, seed), "reproducer: " + repro, detail)
    if not failures:
        T.ok("every call ended in a result or a clear error (seed %d)" % seed)
    return T.finish()


def read_only_per_function(dsn, fns):
    """Issue 9, defect 3: inside BEGIN READ ONLY every call that writes must
    raise 25006 (read_only_sql_transaction) and write nothing, through the
    direct paths and through SQL; a call that only reads must work. Whether a
    call writes is observed, not assumed: run normally in a rolled-back
    transaction, does it take a transaction id?"""
    conn = reltest.connect(dsn)
    for mode, gucs in (("direct paths", ""), ("SQL paths", "SET fastpgcache.index_scan_reads = off; "
                                                              "SET fastpgcache.direct_writes = off")):
        if gucs:
            run(conn, gucs)
        for fn in fns:
            if fn.name in ("cache_start_worker", "cache_stop_worker", "fastpgcache_selftest"):
                continue
            args = reltest.sample_args(fn, key="ro:k", key2="ro:k2")
            # The key holds JSON text (so cache_get_json reads it too), and an
            # expired row waits (so that cache_cleanup has something to do).
            run(conn, "SELECT cache_set('ro:k', '\"before\"'), cache_set('ro:k2', 'before')")
            run(conn, "INSERT INTO cache_entries (key_hash, key, value, kind, expires_at) VALUES (%s, 'ro:old', "
                      "'v'::bytea, 't', now() - interval '1 hour') ON CONFLICT DO NOTHING"
                      % reltest.key_hash_sql("'ro:old'"))
            writer = reltest.is_writer(conn, fn, args)
            repro = "SELECT cache_set('ro:k', '\"before\"'); %sBEGIN READ ONLY; %s" % (
                gucs + "; " if gucs else "", fn.literal_sql(args))
            run(conn, "BEGIN READ ONLY")
            o = reltest.call(conn, fn, args)
            x = None if o.error else run(conn, "SELECT pg_current_xact_id_if_assigned() IS NOT NULL").rows[0][0]
            run(conn, "ROLLBACK")
            if o.lost:
                T.not_ok("READ ONLY (%s): %s crashed the server" % (mode, fn.signature), o.describe(),
                         "reproducer: " + repro)
                reltest.wait_for_server(dsn)
                conn = reltest.connect(dsn)
                continue
            after = run(conn, "SELECT cache_get('ro:k')").rows
            if writer is None:
                T.note("READ ONLY (%s): %s: the sample call fails outside READ ONLY too (%s)" %
                       (mode, fn.signature, o.describe()))
            elif writer:
                T.check("READ ONLY (%s): %s writes, so it raises 25006 inside READ ONLY" % (mode, fn.signature),
                        "25006", o.sqlstate if o.error else "result %s, wrote: %s" % (reltest.shorten(o.rows), x),
                        "reproducer: " + repro)
            else:
                T.check("READ ONLY (%s): %s only reads, so it works inside READ ONLY" % (mode, fn.signature),
                        "result", "result" if not o.error else o.describe(), "reproducer: " + repro)
            T.check("READ ONLY (%s): %s left ro:k unchanged" % (mode, fn.signature), [('"before"',)], after, "reproducer: " + repro)
    conn.close()


def check_model(fn, args, rows, model, fail, repro):
    """Documented semantics of the functions this model knows."""
    name = fn.name
    types = fn.argtypes[:len(args)]
    if name in ("cache_stats", "cache_stats_reset", "cache_start_worker", "cache_stop_worker",
                "fastpgcache_selftest"):
        return
    if any(isinstance(a, Raw) for a in args):
        for k in ("k1", "k2", "k3", "k4"):  # the keys the Raw arrays name
            model.forget(k)
    if name == "cache_set" and args and args[0] is not None and any(a is not False for a in args[3:6]):
        model.forget(args[0])  # nx / xx / keepttl (or NULL flags): not modelled
        return
    if name == "cache_set" and args and args[0] is not None:
        ttl = args[2] if len(args) > 2 else None
        if types[1] == "text" and isinstance(args[1], str):
            model.set(args[0], "t", args[1].encode(), ttl)
        elif types[1] == "bytea" and isinstance(args[1], (bytes, bytearray)):
            model.set(args[0], "b", bytes(args[1]), ttl)
        else:
            model.set(args[0], "j", None, ttl)
        return
    if name == "cache_mset" and isinstance(args[0], list) and isinstance(args[1], list):
        ttl = args[2] if len(args) > 2 else None
        for k, v in zip(args[0], args[1]):
            model.set(k, "t", v.encode(), ttl)
        want = len(args[0])
        if rows and rows[0][0] != want:
            fail(fn, "returned a count other than the number of pairs", repro, "got %r, want %r" % (rows[0][0], want))
        return
    if name == "cache_delete" and args and isinstance(args[0], list):
        for k in args[0]:
            if isinstance(k, str):
                model.entries[k] = None
        return
    if name == "cache_delete" and args and isinstance(args[0], str):
        st = model.state(args[0])
        if st is not Model.UNKNOWN and rows:
            want = st is not None
            if rows[0][0] != want:
                fail(fn, "wrong result against the model", repro, "got %r, want %r" % (rows[0][0], want))
        model.entries[args[0]] = None
        return
    if name == "cache_cleanup":
        return  # removes only expired rows: the model holds none it is sure of
    if name in ("cache_get", "cache_get_bytes", "cache_exists", "cache_ttl") and args and isinstance(args[0], str):
        st = model.state(args[0])
        if st is Model.UNKNOWN or not rows:
            return
        got = rows[0][0]
        if name == "cache_exists":
            want = st is not None
        elif name == "cache_ttl":
            if st is None and got != -2:
                fail(fn, "wrong result against the model", repro, "got %r, want -2" % got)
            return
        elif st is None:
            want = None
        elif st[0] == "j":
            return
        elif name == "cache_get_bytes":
            want = st[1]
            got = bytes(got) if got is not None else None
        else:  # cache_get of text or of valid-UTF-8 bytes
            want = st[1]
            got = bytes(got) if got is not None else None
        if got != want:
            fail(fn, "wrong result against the model", repro, "got %s, want %s" % (reltest.shorten(got), reltest.shorten(want)))
        return
    if name == "cache_mget" and isinstance(args[0], list):
        for (k, v), key in zip(rows, args[0]):
            if key is None:
                continue
            st = model.state(key)
            if st is Model.UNKNOWN or (st is not None and st[0] == "j"):
                continue
            want = None if st is None else st[1]
            got = bytes(v) if v is not None else None
            if got != want:
                fail(fn, "wrong result against the model", repro,
                     "key %s: got %s, want %s" % (reltest.shorten(key), reltest.shorten(got), reltest.shorten(want)))
        if len(rows) != len(args[0]):
            fail(fn, "not one row per key", repro, "%d keys, %d rows" % (len(args[0]), len(rows)))
        return
    # Functions that only read.
    if name in ("cache_get", "cache_get_json", "cache_get_bytes", "cache_exists", "cache_ttl", "cache_mget",
                "cache_stats", "cache_pttl", "cache_strlen", "cache_type", "cache_keys", "cache_scan", "cache_dbsize"):
        return
    if name == "cache_getex" and len(args) > 2 and args[1] is None and args[2] is False:
        return  # GETEX without options only reads
    # A function this model does not know may change anything its first
    # argument names, or anything at all.
    if fn.argnames[:1] == ["key"] and args and args[0] is not None:
        model.forget(args[0])
    else:
        model.forget()


if __name__ == "__main__":
    reltest.main_guard(main)
