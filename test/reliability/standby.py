#!/usr/bin/python3
"""Every function of the extension on a hot standby (issue 9, defect 4).

usage: standby.py STANDBY_DSN

The cache is an UNLOGGED table: it exists on the primary only. On a standby
every function must fail at once (well within a 10 s statement_timeout; the
check allows 5 s) with an error whose SQLSTATE is a clear one (reltest) and
neither 58P01 ('could not open file') nor XX000 nor 57014 (a timeout means it
blocked), and whose message, detail or hint names the cause (standby,
primary, recovery).
"""

import re
import sys
import time

import reltest
from reltest import run

T = reltest.Checks()
CAUSE = re.compile(r"standby|primary|recovery", re.I)


def main():
    dsn = sys.argv[1]
    conn = reltest.connect(dsn)
    T.check("the server is a standby (pg_is_in_recovery)", [(True,)], run(conn, "SELECT pg_is_in_recovery()").rows)
    run(conn, "SET statement_timeout = '10s'")
    fns = reltest.extension_functions(conn)
    T.note("functions: " + ", ".join(f.signature for f in fns))
    for fn in fns:
        if fn.name == "fastpgcache_selftest":
            continue  # test-only, does not touch the cache
        args = reltest.sample_args(fn, "sb:k", "sb:k2")
        t0 = time.time()
        o = reltest.call(conn, fn, args)
        secs = time.time() - t0
        repro = "on a hot standby: " + fn.literal_sql(args)
        desc = "standby: %s" % fn.signature
        if o.lost:
            T.not_ok(desc + " crashed the standby", o.describe(), repro)
            reltest.wait_for_server(dsn)
            conn = reltest.connect(dsn)
            run(conn, "SET statement_timeout = '10s'")
            continue
        if not o.error:
            T.not_ok(desc + " fails (the cache lives on the primary only)", "it returned %s" % reltest.shorten(o.rows),
                     repro)
            continue
        T.check(desc + " fails at once (under 5 s)", True, secs < 5.0, "took %.1f s: %s" % (secs, o.describe()), repro)
        bad = o.sqlstate in ("58P01", "XX000", "57014") or not o.clear
        T.check(desc + " fails with a proper SQLSTATE (not 58P01, XX000, 57014)", "proper",
                "proper" if not bad else o.sqlstate, o.describe(), repro)
        T.check(desc + " names the cause (standby/primary) in its message", True, bool(CAUSE.search(o.message or "")),
                o.describe(), repro)
    return T.finish()


if __name__ == "__main__":
    reltest.main_guard(main)
