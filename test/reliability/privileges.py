#!/usr/bin/python3
"""Privileges and search_path attacks, for every function of the extension
(listed from the catalog, so new functions are covered).

usage: privileges.py SUPERUSER_DSN

 * fpc_nobody (no grants): every function fails with 42501, except the ones
   that do not touch cache_entries and whose EXECUTE is PUBLIC (cache_stats).
 * fpc_reader (GRANT SELECT): functions that read work; functions that write
   (observed: they take a transaction id when a superuser runs them) and
   functions without EXECUTE fail with 42501.
 * fpc_app (SELECT, INSERT, UPDATE, DELETE): everything that touches the
   table works.
 * SECURITY DEFINER: a wrapper owned by fpc_app, called by fpc_nobody, works
   (the definer's rights); a wrapper owned by fpc_nobody, called by a
   superuser, fails with 42501 (not the caller's rights); a wrapper owned by
   fpc_reader of a writing function, called by fpc_app, fails with 42501.
 * search_path: with search_path = evil, pg_catalog, public, where evil holds
   a shadow cache_entries table with other values, logging shadow operators
   (= <> < <= > >= for uuid, text, timestamptz, tid, bytea, "char", int4,
   int8, arrays) and logging shadow functions (now, clock_timestamp, unnest,
   sha256, convert_to, length, ...), every function gives the same result as
   with a clean search_path, no shadow object runs, the shadow table is
   untouched. As a superuser and as fpc_app, through the direct paths and
   through SQL, with plans prepared under the hostile search_path.
Each checked for the direct paths and for the SQL paths
(fastpgcache.index_scan_reads / direct_writes off).
"""

import sys

import reltest
from reltest import run

T = reltest.Checks()
KEY, KEY2 = "priv:k", "priv:k2"
SQL_PATHS = "-c fastpgcache.index_scan_reads=off -c fastpgcache.direct_writes=off"


def dsn_for(base, user, options=""):
    parts = [p for p in base.split() if not p.startswith("user=")]
    parts.append("user=" + user)
    if options:
        parts.append("options='%s'" % options)
    return " ".join(parts)


def reset_keys(su):
    # '7': valid text, JSON, integer and float, so that every function
    # (cache_get_json, cache_incr, cache_incrbyfloat ...) succeeds on it.
    run(su, "SELECT cache_set(%s, '7'), cache_set(%s, 'w0')", (KEY, KEY2))
    run(su, "INSERT INTO cache_entries (key_hash, key, value, kind, expires_at) VALUES (%s, 'priv:old', "
            "'v'::bytea, 't', now() - interval '1 hour') ON CONFLICT DO NOTHING" % reltest.key_hash_sql("'priv:old'"))


def main():
    base = sys.argv[1]
    su = reltest.connect(base)
    fns = reltest.extension_functions(su)
    T.note("functions: " + ", ".join(f.signature for f in fns))
    for sql in [
        "DROP ROLE IF EXISTS fpc_nobody", "DROP ROLE IF EXISTS fpc_reader", "DROP ROLE IF EXISTS fpc_app",
        "CREATE ROLE fpc_nobody LOGIN", "CREATE ROLE fpc_reader LOGIN", "CREATE ROLE fpc_app LOGIN",
        "GRANT SELECT ON cache_entries TO fpc_reader",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON cache_entries TO fpc_app",
    ]:
        o = run(su, sql)
        if o.error:
            T.not_ok("setup: " + sql, o.describe())
    reset_keys(su)

    # Which functions write: observed, not assumed.
    writes = {}
    for fn in fns:
        if fn.name in ("cache_start_worker", "cache_stop_worker"):
            writes[fn.oid] = False
            continue
        reset_keys(su)
        writes[fn.oid] = reltest.is_writer(su, fn, reltest.sample_args(fn, KEY, KEY2))
    T.note("functions that write (take a transaction id): " +
           ", ".join(f.signature for f in fns if writes[f.oid]))

    def has_execute(role, fn):
        return run(su, "SELECT has_function_privilege(%s, %s::oid, 'EXECUTE')", (role, fn.oid)).rows[0][0]

    def touches_table(fn):
        return fn.name not in reltest.NON_TABLE_FUNCTIONS

    def as_role(role, fn, expect_ok, why, options=""):
        reset_keys(su)
        conn = reltest.connect(dsn_for(base, role, options))
        args = reltest.sample_args(fn, KEY, KEY2)
        o = reltest.call(conn, fn, args)
        conn.close()
        path = "SQL paths" if options else "direct paths"
        repro = "SET ROLE %s; %s" % (role, fn.literal_sql(args))
        if options:
            repro = "SET fastpgcache.index_scan_reads = off; SET fastpgcache.direct_writes = off; " + repro
        if o.lost:
            T.not_ok("%s (%s): %s crashed the server" % (role, path, fn.signature), o.describe(), repro)
            reltest.wait_for_server(base)
            return
        if expect_ok:
            T.check("%s (%s): %s works (%s)" % (role, path, fn.signature, why), "result",
                    "result" if not o.error else o.describe(), "reproducer: " + repro)
        else:
            T.check("%s (%s): %s fails with 42501 (%s)" % (role, path, fn.signature, why), "42501",
                    o.sqlstate if o.error else "result %s" % reltest.shorten(o.rows), "reproducer: " + repro)

    for options in ("", SQL_PATHS):
        for fn in fns:
            if fn.name in ("cache_start_worker", "cache_stop_worker", "fastpgcache_selftest"):
                # Only the EXECUTE check is meaningful for these here.
                for role in ("fpc_nobody", "fpc_reader", "fpc_app"):
                    if not has_execute(role, fn):
                        as_role(role, fn, False, "EXECUTE not granted", options)
                continue
            w = writes[fn.oid]
            # fpc_nobody
            if not has_execute("fpc_nobody", fn):
                as_role("fpc_nobody", fn, False, "EXECUTE not granted", options)
            elif touches_table(fn):
                as_role("fpc_nobody", fn, False, "no privilege on cache_entries", options)
            else:
                as_role("fpc_nobody", fn, True, "public, does not touch the table", options)
            # fpc_reader
            if not has_execute("fpc_reader", fn):
                as_role("fpc_reader", fn, False, "EXECUTE not granted", options)
            elif touches_table(fn) and w:
                as_role("fpc_reader", fn, False, "writes; SELECT only", options)
            elif w is not None:
                as_role("fpc_reader", fn, True, "reads; SELECT granted", options)
            # fpc_app
            if has_execute("fpc_app", fn) and w is not None:
                as_role("fpc_app", fn, True, "SELECT, INSERT, UPDATE, DELETE granted", options)

    security_definer(su, base, fns, writes)
    search_path_attacks(su, base, fns)
    return T.finish()


def security_definer(su, base, fns, writes):
    """Wrappers (SECURITY DEFINER) around every table function."""
    setup = [
        "DROP SCHEMA IF EXISTS fpc_def CASCADE", "CREATE SCHEMA fpc_def",
        "GRANT USAGE, CREATE ON SCHEMA fpc_def TO fpc_app, fpc_nobody, fpc_reader",
    ]
    for s in setup:
        run(su, s)
    table_fns = [f for f in fns if f.name not in reltest.NON_TABLE_FUNCTIONS]
    for i, fn in enumerate(table_fns):
        args = ", ".join("$%d" % (j + 1) for j in range(fn.nargs))
        body = "SELECT pg_catalog.string_agg(r::text, ',') FROM %s.%s(%s) r" % (reltest.quote_ident(fn.schema), fn.name, args)
        params = ", ".join(fn.argtypes)
        for owner in ("fpc_app", "fpc_nobody", "fpc_reader"):
            name = "fpc_def.w_%s_%d" % (owner, i)
            o = run(su, "SET ROLE %s; CREATE FUNCTION %s(%s) RETURNS text LANGUAGE sql SECURITY DEFINER "
                        "SET search_path = pg_catalog AS $f$ %s $f$; GRANT EXECUTE ON FUNCTION %s(%s) TO PUBLIC; "
                        "RESET ROLE" % (owner, name, params, body, name, params))
            run(su, "RESET ROLE")
            if o.error:
                T.not_ok("create SECURITY DEFINER wrapper %s of %s" % (name, fn.signature), o.describe())
    for i, fn in enumerate(table_fns):
        args = reltest.sample_args(fn, KEY, KEY2)
        placeholders = ", ".join("%%s::%s" % t for t in fn.argtypes)
        params = [reltest.psycopg2.Binary(a) if isinstance(a, bytes) else a for a in args]
        cases = [("fpc_app", "fpc_nobody", True, "the definer fpc_app has the grants"),
                 ("fpc_nobody", "postgres", False, "the definer fpc_nobody has none, whoever calls"),
                 ("fpc_reader", "fpc_app", not writes.get(fn.oid), "the definer fpc_reader may only read")]
        for owner, caller, expect_ok, why in cases:
            reset_keys(su)
            conn = reltest.connect(dsn_for(base, caller))
            o = run(conn, "SELECT fpc_def.w_%s_%d(%s)" % (owner, i, placeholders), params)
            conn.close()
            desc = "SECURITY DEFINER %s (owner %s) called by %s" % (fn.signature, owner, caller)
            repro = "as %s: SELECT fpc_def.w_%s_%d(...) -- wraps %s" % (caller, owner, i, fn.literal_sql(args))
            if o.lost:
                T.not_ok(desc + ": crashed the server", o.describe(), repro)
                reltest.wait_for_server(base)
            elif expect_ok:
                T.check(desc + " works (%s)" % why, "result", "result" if not o.error else o.describe(), repro)
            else:
                T.check(desc + " fails with 42501 (%s)" % why, "42501",
                        o.sqlstate if o.error else "result %s" % reltest.shorten(o.rows), repro)


EVIL_TYPES = ["uuid", "text", "timestamptz", "tid", "bytea", '"char"', "int4", "int8", "bool",
              "text[]", "uuid[]", "bytea[]"]
EVIL_OPS = {"=": "eq", "<>": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
EVIL_FUNCS = [  # name, arguments, result, body using pg_catalog
    ("now", "", "timestamptz", "pg_catalog.now()"),
    ("clock_timestamp", "", "timestamptz", "pg_catalog.clock_timestamp()"),
    ("statement_timestamp", "", "timestamptz", "pg_catalog.statement_timestamp()"),
    ("sha256", "bytea", "bytea", "pg_catalog.sha256($1)"),
    ("convert_to", "text, name", "bytea", "pg_catalog.convert_to($1, $2)"),
    ("convert_from", "bytea, name", "text", "pg_catalog.convert_from($1, $2)"),
    ("length", "text", "int4", "pg_catalog.length($1)"),
    ("length", "bytea", "int4", "pg_catalog.length($1)"),
    ("md5", "text", "text", "pg_catalog.md5($1)"),
    ("encode", "bytea, text", "text", "pg_catalog.encode($1, $2)"),
    ("decode", "text, text", "bytea", "pg_catalog.decode($1, $2)"),
    ("substr", "bytea, int4, int4", "bytea", "pg_catalog.substr($1, $2, $3)"),
    ("array_length", "anyarray, int4", "int4", "pg_catalog.array_length($1, $2)"),
    ("cardinality", "anyarray", "int4", "pg_catalog.cardinality($1)"),
    ("uuid", "text", "uuid", "$1::pg_catalog.uuid"),
    ("gen_random_uuid", "", "uuid", "pg_catalog.gen_random_uuid()"),
]


def search_path_attacks(su, base, fns):
    setup = [
        "DROP SCHEMA IF EXISTS evil CASCADE", "CREATE SCHEMA evil", "GRANT USAGE ON SCHEMA evil TO PUBLIC",
        "CREATE TABLE evil.hits (what text, at timestamptz DEFAULT pg_catalog.clock_timestamp())",
        "GRANT INSERT, SELECT ON evil.hits TO PUBLIC",
        "CREATE TABLE evil.cache_entries (LIKE public.cache_entries INCLUDING ALL)",
        "GRANT ALL ON evil.cache_entries TO PUBLIC",
        # The shadow table holds the same keys with other values.
        "INSERT INTO evil.cache_entries (key_hash, key, value, kind) VALUES "
        "(%s, '%s', 'EVIL'::bytea, 't'), (%s, '%s', 'EVIL'::bytea, 't')"
        % (reltest.key_hash_sql("'%s'" % KEY), KEY, reltest.key_hash_sql("'%s'" % KEY2), KEY2),
    ]
    for t in EVIL_TYPES:
        tn = t.replace('"', "").replace("[]", "_arr")
        for op, fname in EVIL_OPS.items():
            real = "pg_catalog.array_%s" % fname if t.endswith("[]") else None
            body = "SELECT $1 OPERATOR(pg_catalog.%s) $2" % op
            setup.append(
                "CREATE FUNCTION evil.%s_%s(%s, %s) RETURNS bool LANGUAGE plpgsql AS $f$ BEGIN "
                "INSERT INTO evil.hits(what) VALUES ('operator %s %s'); RETURN (%s); END $f$"
                % (tn, fname, t, t, op, t, body.replace("SELECT ", "")))
            setup.append("CREATE OPERATOR evil.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = evil.%s_%s)"
                         % (op, t, t, tn, fname))
            del real
    for name, args, res, body in EVIL_FUNCS:
        setup.append("CREATE FUNCTION evil.%s(%s) RETURNS %s LANGUAGE plpgsql AS $f$ BEGIN "
                     "INSERT INTO evil.hits(what) VALUES ('function %s(%s)'); RETURN %s; END $f$"
                     % (name, args, res, name, args, body))
    setup.append("CREATE FUNCTION evil.unnest(anyarray) RETURNS SETOF anyelement LANGUAGE plpgsql AS $f$ BEGIN "
                 "INSERT INTO evil.hits(what) VALUES ('function unnest'); RETURN QUERY SELECT pg_catalog.unnest($1); END $f$")
    setup.append("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA evil TO PUBLIC")
    for s in setup:
        o = run(su, s)
        if o.error:
            T.not_ok("search_path setup: " + s[:100], o.describe())
    # The shadow objects work (so that their silence below means something).
    o = run(su, "SET search_path = evil, pg_catalog, public; SELECT '1'::text = '1'::text, now() IS NOT NULL; "
                "RESET search_path")
    hits = run(su, "SELECT count(*) FROM evil.hits").rows[0][0]
    T.check("search_path: the shadow operator and function do run when named unqualified", True, hits >= 2,
            "hits: %s" % hits)
    run(su, "TRUNCATE evil.hits")
    evil_sum = "SELECT md5(string_agg(e::text, ',' ORDER BY key)) FROM evil.cache_entries e"
    evil_before = run(su, evil_sum).rows[0][0]

    for who in ("postgres", "fpc_app"):
        for options in ("", SQL_PATHS):
            path = "SQL paths" if options else "direct paths"
            for fn in fns:
                if fn.name in ("cache_start_worker", "cache_stop_worker", "fastpgcache_selftest"):
                    continue
                if who != "postgres" and fn.name in reltest.NON_TABLE_FUNCTIONS:
                    continue
                args = reltest.sample_args(fn, KEY, KEY2)
                # Clean search_path first, then the same from the same state
                # in a new session whose plans are prepared under the hostile
                # search_path.
                reset_keys(su)
                clean = reltest.connect(dsn_for(base, who, options))
                want = reltest.call(clean, fn, args)
                clean.close()
                reset_keys(su)
                hostile = reltest.connect(dsn_for(base, who, (options + " -c search_path=evil,pg_catalog,public").strip()))
                got = reltest.call(hostile, fn, args)
                hostile.close()
                hits = run(su, "SELECT coalesce(string_agg(DISTINCT what, '; '), '') FROM evil.hits").rows[0][0]
                run(su, "TRUNCATE evil.hits")
                desc = "search_path evil,pg_catalog,public (%s, %s): %s" % (who, path, fn.signature)
                repro = "SET search_path = evil, pg_catalog, public; %s" % fn.literal_sql(args)
                if got.lost:
                    T.not_ok(desc + ": crashed the server", got.describe(), repro)
                    reltest.wait_for_server(base)
                    continue
                volatile_result = fn.name in ("cache_stats", "cache_cleanup")
                T.check(desc + ": no shadow object ran", "", hits, "reproducer: " + repro)
                if not volatile_result:
                    T.check(desc + ": same outcome as with a clean search_path", want.describe(), got.describe(),
                            "reproducer: " + repro)
    evil_after = run(su, evil_sum).rows[0][0]
    T.check("search_path: the shadow cache_entries is untouched", evil_before, evil_after)


if __name__ == "__main__":
    reltest.main_guard(main)
