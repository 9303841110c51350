#!/usr/bin/python3
"""Schema drift battery: after a change to cache_entries (run by
schema_drift.sh), every cache function must give the right value or a clear
error (never a crash, never XX000), and columns the functions do not own must
keep their values across an overwrite.

usage: drift_battery.py DSN VARIANT [--no-worker]
"""

import json
import sys
import time

import reltest
from reltest import run

T = reltest.Checks()


class Crashed(Exception):
    pass


def main():
    try:
        return battery()
    except Crashed as e:
        T.note("the server crashed at step '%s': the rest of this battery is skipped (the crash-restart emptied "
               "the cache, so later checks would only repeat it)" % e)
        return T.finish()


def battery():
    dsn, variant = sys.argv[1], sys.argv[2]
    worker = "--no-worker" not in sys.argv
    conn = reltest.connect(dsn)
    label = "[%s] " % variant

    def step(desc, sql, args=None, want=None, allow_error=True, reproducer=None):
        """Runs sql. Right result: ok. Clear error: ok when allow_error (the
        change made the operation impossible), with a note. Otherwise not ok.
        Returns the Outcome."""
        nonlocal conn
        o = run(conn, sql, args)
        repro = reproducer or sql
        if o.lost:
            T.not_ok(label + desc + ": server crashed or connection lost", o.describe(), "reproducer: " + repro)
            raise Crashed(desc)
        if o.sqlstate:
            if allow_error and o.clear:
                T.ok(label + desc + " (clear error %s: %s)" % (o.sqlstate, (o.message or "").splitlines()[0]))
            else:
                T.not_ok(label + desc + ": unclear error", o.describe(), "reproducer: " + repro)
            return o
        got = o.rows[0][0] if o.rows and len(o.rows) == 1 and len(o.rows[0]) == 1 else o.rows
        if want is None or want == got or (callable(want) and want(got)):
            T.ok(label + desc)
        else:
            T.not_ok(label + desc + ": wrong result", "expected %r, got %r" % (want, got), "reproducer: " + repro)
        return o

    # Columns that are not the extension's own five (added, generated, ...).
    std = {"key_hash", "expires_at", "kind", "key", "value"}
    cols = run(conn, """SELECT attname, format_type(atttypid, atttypmod), attgenerated <> '', atthasdef
                        FROM pg_attribute WHERE attrelid = 'cache_entries'::regclass AND attnum > 0
                        AND NOT attisdropped ORDER BY attnum""").rows
    extras = [(n, t, gen, hasdef) for (n, t, gen, hasdef) in cols if n not in std]
    T.note(label + "columns: " + ", ".join("%s %s%s" % (n, t, " generated" if g else "") for n, t, g, _ in cols))

    # Text: first set (insert), overwrite (the direct path when allowed).
    ins = step("cache_set text (insert)", "SELECT cache_set('d:k', '1')", want=True)
    if ins.sqlstate == "42804":
        # The extension refuses to write to a table whose column types SQL
        # would silently convert (a bytea value stored as escaped text):
        # every write must refuse the same way, and nothing be written.
        for desc, sql in [("cache_set jsonb", "SELECT cache_set('d:j', '{\"a\": 1}'::jsonb)"),
                          ("cache_set bytea", "SELECT cache_set('d:b', '\\x00ff'::bytea)"),
                          ("cache_mset", "SELECT cache_mset(ARRAY['d:m1'], ARRAY['a'])"),
                          ("cache_set nx", "SELECT cache_set('d:n', 'v', nx => true)"),
                          ("cache_incr", "SELECT cache_incr('d:c')")]:
            o = run(conn, sql)
            T.check(label + desc + " refused too (42804)", "42804", o.sqlstate or "result %r" % (o.rows,),
                    "reproducer: " + sql)
        left = run(conn, "SELECT count(*) FROM cache_entries WHERE key LIKE 'd:%'")
        T.check(label + "no refused write left a row", [(0,)], left.rows)
        step("cache_delete still works", "SELECT cache_delete('d:none')", want=False)
        step("cache_cleanup still works", "SELECT cache_cleanup() >= 0", want=True)
        return T.finish()
    ov = step("cache_set text (overwrite)", "SELECT cache_set('d:k', '2')", want=True,
              reproducer="SELECT cache_set('d:k','1'), cache_set('d:k','2');")
    step("cache_get after overwrite", "SELECT cache_get('d:k')", want="2" if not ov.error else None)
    step("two sets in one statement", "SELECT cache_set('d:k2', 'a') AND cache_set('d:k2', 'b')", want=True)
    step("cache_get after two sets in one statement", "SELECT cache_get('d:k2')", want="b")

    # jsonb and bytea.
    step("cache_set jsonb (insert)", "SELECT cache_set('d:j', '{\"a\": 1}'::jsonb)", want=True)
    step("cache_set jsonb (overwrite)", "SELECT cache_set('d:j', '{\"a\": 2}'::jsonb)", want=True)
    step("cache_get_json", "SELECT cache_get_json('d:j')", want={"a": 2})
    step("cache_set bytea (insert)", "SELECT cache_set('d:b', '\\x00ff'::bytea)", want=True)
    step("cache_set bytea (overwrite)", "SELECT cache_set('d:b', '\\x01fe'::bytea)", want=True)
    step("cache_get_bytes", "SELECT encode(cache_get_bytes('d:b'), 'hex')", want="01fe")

    # ttl and exists.
    step("cache_set with ttl 100", "SELECT cache_set('d:t', 'v', 100)", want=True)
    step("cache_ttl about 100", "SELECT cache_ttl('d:t')", want=lambda v: v in (99, 100))
    step("cache_set without ttl clears the expiry", "SELECT cache_set('d:t', 'w')", want=True)
    step("cache_ttl -1 without expiry", "SELECT cache_ttl('d:t')", want=-1)
    step("cache_ttl -2 when missing", "SELECT cache_ttl('d:none')", want=-2)
    step("cache_exists (live)", "SELECT cache_exists('d:t')", want=True)
    step("cache_exists (missing)", "SELECT cache_exists('d:none')", want=False)

    # Batches.
    step("cache_mset with a duplicate key", "SELECT cache_mset(ARRAY['d:m1','d:m2','d:m1'], ARRAY['a','b','c'])", want=3)
    step("cache_mset overwrite", "SELECT cache_mset(ARRAY['d:m2'], ARRAY['B'], 60)", want=1)
    step("cache_mget", "SELECT array_agg(coalesce(value, '<null>') ORDER BY o) FROM cache_mget(ARRAY['d:m1','d:m2','d:none']) WITH ORDINALITY AS m(key, value, o)",
         want=["c", "B", "<null>"])

    # Delete.
    # Live only if the sets above were not refused (a clear error).
    step("cache_delete (live)", "SELECT cache_delete('d:k')", want=not (ins.error or ov.error))
    step("cache_get after delete", "SELECT cache_get('d:k') IS NULL", want=True)
    step("cache_delete (missing)", "SELECT cache_delete('d:k')", want=False)

    # Extra columns keep their values across an overwrite (direct or SQL).
    if extras:
        step("cache_set of the row whose extra columns are checked", "SELECT cache_set('d:x', 'first')", want=True)
        samples = {"text": "'keep'", "integer": "42", "bigint": "42",
                   "timestamp with time zone": "'2001-02-03 04:05:06+00'", "character varying": "'keep'"}
        settable = [(n, samples[t]) for n, t, gen, _ in extras if not gen and t in samples]
        if settable:
            step("UPDATE of the extra columns", "UPDATE cache_entries SET %s WHERE key = 'd:x' RETURNING true" %
                 ", ".join("%s = %s" % (n, v) for n, v in settable), want=True)
        before = run(conn, "SELECT row_to_json(e)::jsonb FROM cache_entries e WHERE key = 'd:x'").rows
        step("cache_set overwrite of a row with extra columns", "SELECT cache_set('d:x', 'second', 3600)", want=True)
        after = run(conn, "SELECT row_to_json(e)::jsonb FROM cache_entries e WHERE key = 'd:x'").rows
        step("cache_get after the overwrite", "SELECT cache_get('d:x')", want="second")
        if before and after:
            b, a = before[0][0], after[0][0]
            for n, t, gen, _ in extras:
                T.check(label + "extra column %s (%s%s) keeps its value across cache_set" %
                        (n, t, ", generated" if gen else ""), b.get(n), a.get(n),
                        "row before: " + json.dumps(b), "row after:  " + json.dumps(a))
            T.check(label + "key_hash unchanged across the overwrite", b.get("key_hash"), a.get("key_hash"))
        else:
            T.not_ok(label + "row d:x readable before and after the overwrite", "before %r after %r" % (before, after))
        step("cache_mset over a row with extra columns", "SELECT cache_mset(ARRAY['d:x'], ARRAY['third'])", want=1)
        after2 = run(conn, "SELECT row_to_json(e)::jsonb FROM cache_entries e WHERE key = 'd:x'").rows
        if before and after2:
            for n, t, gen, _ in extras:
                T.check(label + "extra column %s keeps its value across cache_mset" % n,
                        before[0][0].get(n), after2[0][0].get(n))

    # cache_cleanup of a row expired by hand (inserted through SQL, so that
    # the worker may race it: either way the row must end up gone).
    ins = run(conn, "INSERT INTO cache_entries (key_hash, key, value, kind, expires_at) VALUES (%s, 'd:old', "
                    "'v'::bytea, 't', now() - interval '1 hour')" % reltest.key_hash_sql("'d:old'"))
    if ins.sqlstate and not ins.lost:
        # A changed column type can refuse this INSERT (e.g. value as text):
        # set the entry through the function instead.
        run(conn, "SELECT cache_set('d:old', 'v', 1)")
        time.sleep(1.1)
    step("cache_cleanup()", "SELECT cache_cleanup() >= 0", want=True)
    step("expired row gone after cache_cleanup()", "SELECT count(*) FROM cache_entries WHERE key = 'd:old'", want=0)

    # The background worker's expiry.
    if worker:
        step("cache_set with ttl 1 for the worker", "SELECT cache_set('d:w', 'v', 1)", want=True)
        deadline = time.time() + 15
        left = None
        while time.time() < deadline:
            o = run(conn, "SELECT count(*) FROM cache_entries WHERE key = 'd:w'")
            if o.lost:
                T.not_ok(label + "server crashed while waiting for the worker", o.describe())
                raise Crashed("waiting for the worker")
            left = o.rows[0][0] if o.rows else None
            if left == 0:
                break
            time.sleep(0.2)
        T.check(label + "the worker removes the expired entry within 15 s", 0, left)
        if extras and left == 0:
            step("row with extra columns still there after worker cycles", "SELECT cache_get('d:x')", want="third")

    # Index consistent with the heap.
    step("amcheck: every index of cache_entries consistent with the heap",
         "SELECT count(bt_index_check(i.indexrelid, true)) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
         "JOIN pg_am a ON a.oid = c.relam WHERE i.indrelid = 'cache_entries'::regclass AND a.amname = 'btree'",
         want=lambda v: isinstance(v, int) and v >= 1, allow_error=False)
    return T.finish()


if __name__ == "__main__":
    reltest.main_guard(main)
