#!/usr/bin/env python3
"""Differential test of command resolution and argument parsing: a corpus of
valid and malformed commands (hand-written cases plus seeded random ones) run
against redis-server and against the FastPgCache RESP harness.

For every command:
  - if redis-server answers an error, the harness must answer the same error
    text (these are the errors of ResolveCommand/ParseRequest/the server);
  - if redis-server succeeds, the harness must succeed too, and for commands
    whose reply is deterministic the replies must be equal.
Each command runs after FLUSHALL and the same small data set, on both servers.

Usage: diff_commands.py REDIS_PORT HARNESS_PORT [RANDOM_COUNT]
"""
import random
import sys

from resplib import Conn, RespError

SETUP = [("SET", "k", "10"), ("SET", "s", "abc"), ("SET", "f", "1.5"), ("SET", "t", "v", "EX", "1000"),
         ("SET", "big", "9223372036854775807")]

# Replies compared exactly (others: error/success only).
DETERMINISTIC = set("""get set setnx setex psetex mget mset msetnx del unlink exists ttl expire pexpire expireat
pexpireat persist incr incrby decr decrby incrbyfloat append strlen getdel getex getset type keys dbsize flushdb
flushall ping echo select auth watch unwatch discard exec""".split())

TOKENS = ["k", "s", "f", "t", "big", "missing", "NX", "XX", "GT", "LT", "EX", "PX", "EXAT", "PXAT", "KEEPTTL", "GET",
          "PERSIST", "MATCH", "COUNT", "TYPE", "ASYNC", "SYNC", "10", "-1", "0", "1", "abc", "1.5", "-1.5e3", "inf",
          "nan", "0x10", " 1", "1 ", "+1", "01", "9223372036854775807", "-9223372036854775808",
          "9223372036854775808", "9223372036854775", "99999999999999", "", "nx\x00junk", "*", "a*", "[a-", "\\",
          "1e400", "3.0e-4950", "string", "none", "ex", "px", "nX"]

COMMANDS = ["GET", "SET", "SETNX", "SETEX", "PSETEX", "MGET", "MSET", "MSETNX", "DEL", "UNLINK", "EXISTS", "TTL",
            "PTTL", "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT", "PERSIST", "INCR", "INCRBY", "DECR", "DECRBY",
            "INCRBYFLOAT", "APPEND", "STRLEN", "GETDEL", "GETEX", "GETSET", "TYPE", "KEYS", "SCAN", "DBSIZE",
            "FLUSHDB", "FLUSHALL", "PING", "ECHO", "SELECT", "CLIENT", "COMMAND", "CONFIG", "AUTH", "WATCH",
            "UNWATCH", "DISCARD", "EXEC", "INFO"]


def handwritten():
    c = []
    for name in COMMANDS:
        for n in range(0, 5):
            c.append((name,) + ("k",) * n)
    c += [("get",), ("GeT", "k"), ("FOO",), ("FOO", "a", "b"), ("", "x"), ("GET\x00", "k"), ("CLIENT", "FOO"),
          ("CLIENT", "SETNAME", "a b"), ("CLIENT", "SETNAME", "ok"), ("CLIENT", "SETNAME", "\xe9"),
          ("CLIENT", "GETNAME"), ("CLIENT", "SETNAME", ""), ("CLIENT", "ID", "x"), ("CLIENT", "LIST", "TYPE", "bogus"),
          ("CLIENT", "LIST", "x"), ("CLIENT", "LIST", "ID", "abc"), ("CLIENT", "LIST", "TYPE", "pubsub"),
          ("CONFIG", "GET"), ("CONFIG", "FOO"), ("COMMAND", "FOO"), ("COMMAND", "COUNT", "x"), ("COMMAND", "INFO"),
          ("SELECT", "0"), ("SELECT", "1"), ("SELECT", "-1"), ("SELECT", "x"), ("SELECT", "2147483648"),
          ("PING", "a"), ("PING", "a", "b"), ("ECHO", ""), ("HELLO", "x"), ("HELLO", "1"), ("HELLO", "4"),
          ("HELLO", "2", "FOO"), ("HELLO", "2", "SETNAME"), ("HELLO", "2", "SETNAME", "a b"), ("HELLO", "2", "AUTH", "u"),
          ("HELLO", "2", "SETNAME", "a b", "FOO"), ("HELLO", "2", "\r\nx\r\n"), ("HELLO", "-1"), ("HELLO", "02"),
          ("AUTH", "a", "b", "c"), ("AUTH", "pw"), ("AUTH", "default", "pw"), ("WATCH", "k"), ("EXEC",), ("DISCARD",),
          ("SET", "k", "v", "EX", "10", "PX", "10"), ("SET", "k", "v", "EX", "10", "EX", "20"), ("SET", "k", "v", "NX", "XX"),
          ("SET", "k", "v", "XX", "NX"), ("SET", "k", "v", "KEEPTTL", "EX", "1"), ("SET", "k", "v", "EX", "1", "KEEPTTL"),
          ("SET", "k", "v", "EX"), ("SET", "k", "v", "EX", "0"), ("SET", "k", "v", "EX", "-5"), ("SET", "k", "v", "PX", "abc"),
          ("SET", "k", "v", "EXAT", "1"), ("SET", "k", "v", "PXAT", "9223372036854775807"),
          ("SET", "k", "v", "EX", "9223372036854775"), ("SET", "k", "v", "EX", "9223372036854776"),
          ("SET", "k", "v", "PX", "9223372036854775807"), ("SET", "k", "v", "GET"), ("SET", "k", "v", "NX", "GET"),
          ("SET", "new", "v", "XX", "GET"), ("SET", "k", "v", "PERSIST"), ("SET", "k", "v", "nx\x00junk"),
          ("SET", "k", "v", "FOO"), ("SETEX", "k", "0", "v"), ("SETEX", "k", "-1", "v"), ("SETEX", "k", "x", "v"),
          ("PSETEX", "k", "0", "v"), ("PSETEX", "k", "9223372036854775807", "v"), ("SETEX", "k", "100", "v"),
          ("GETEX", "k", "EX", "10"), ("GETEX", "k", "PERSIST"), ("GETEX", "k", "PERSIST", "EX", "1"),
          ("GETEX", "k", "EX", "1", "PERSIST"), ("GETEX", "k", "KEEPTTL"), ("GETEX", "k", "NX"), ("GETEX", "k", "EX", "0"),
          ("GETEX", "missing", "EX", "0"), ("GETEX", "missing", "EX", "abc"), ("GETEX", "k", "EX", "abc"),
          ("GETEX", "k", "PXAT", "1"), ("GETEX", "k", "EX"), ("GETEX", "k", "FOO"),
          ("EXPIRE", "k", "10", "NX", "XX"), ("EXPIRE", "k", "10", "GT", "LT"), ("EXPIRE", "k", "10", "XX", "GT"),
          ("EXPIRE", "k", "10", "FOO"), ("EXPIRE", "k", "x", "FOO"), ("EXPIRE", "k", "x", "NX", "XX"),
          ("EXPIRE", "k", "9223372036854776"), ("EXPIRE", "k", "-9223372036854776"), ("EXPIRE", "k", "-1"),
          ("PEXPIRE", "k", "9223372036854775807"), ("EXPIREAT", "k", "9223372036854775807"),
          ("PEXPIREAT", "k", "9223372036854775807"), ("EXPIRE", "t", "10", "LT"), ("EXPIRE", "t", "10", "GT"),
          ("EXPIRE", "k", "10", "GT"), ("EXPIRE", "k", "10", "LT"), ("EXPIRE", "k", "10", "XX"),
          ("EXPIRE", "t", "100000", "NX"), ("EXPIRE", "k", "10", "\r\nfoo\r\n"), ("EXPIRE", "k", "10", "a\x00b"),
          ("INCRBY", "k", "9223372036854775807"), ("INCRBY", "big", "1"), ("DECRBY", "k", "-9223372036854775808"),
          ("DECRBY", "k", "9223372036854775807"), ("INCR", "s"), ("INCR", "f"), ("INCRBY", "k", "1.5"),
          ("INCRBYFLOAT", "k", "1.5"), ("INCRBYFLOAT", "k", "abc"), ("INCRBYFLOAT", "k", "inf"), ("INCRBYFLOAT", "k", "nan"),
          ("INCRBYFLOAT", "k", " 1"), ("INCRBYFLOAT", "k", "1 "), ("INCRBYFLOAT", "k", "0x10"), ("INCRBYFLOAT", "k", "1e400"),
          ("INCRBYFLOAT", "k", ""), ("INCRBYFLOAT", "s", "1"), ("INCRBYFLOAT", "f", "-1.5"), ("INCRBYFLOAT", "f", "0.1"),
          ("INCRBYFLOAT", "n", "3.0e3"), ("INCRBYFLOAT", "n", "1e-5"), ("INCRBYFLOAT", "n", "-0"), ("INCRBYFLOAT", "n", "1.0e20"),
          ("MSET", "a", "1", "b"), ("MSET", "a", "1", "b", "2"), ("MSETNX", "a", "1", "k", "2"), ("MSETNX", "a", "1", "b"),
          ("SCAN", "x"), ("SCAN", ""), ("SCAN", "-1"), ("SCAN", " 1"), ("SCAN", "18446744073709551616"), ("SCAN", "+0"),
          ("SCAN", "0", "COUNT"), ("SCAN", "0", "COUNT", "0"), ("SCAN", "0", "COUNT", "x"), ("SCAN", "0", "MATCH"),
          ("SCAN", "0", "FOO", "1"), ("SCAN", "0", "TYPE", "string"), ("SCAN", "0", "COUNT", "-1"), ("SCAN", "0\x00x"),
          ("FLUSHDB", "ASYNC"), ("FLUSHDB", "SYNC"), ("FLUSHDB", "x"), ("FLUSHALL", "ASYNC", "x"), ("FLUSHDB", "async\x00"),
          ("KEYS", "*"), ("KEYS", "[a-z]*"), ("KEYS", "?"), ("EXISTS", "k", "k", "missing"), ("DEL", "k", "k"),
          ("APPEND", "s", "def"), ("GETSET", "k", "x"), ("TYPE", "k"), ("TYPE", "missing"), ("TTL", "t"), ("TTL", "k"),
          ("TTL", "missing"), ("PERSIST", "t"), ("STRLEN", "s"), ("GETDEL", "s"), ("GETDEL", "missing")]
    return c


def random_commands(count, seed=1):
    rnd = random.Random(seed)
    out = []
    for _ in range(count):
        name = rnd.choice(COMMANDS)
        if rnd.random() < 0.1:
            name = name.lower()
        args = [rnd.choice(TOKENS) for _ in range(rnd.randint(0, 6))]
        out.append(tuple([name] + args))
    return out


# Deliberate differences, checked to be what FastPgCache documents: WATCH is
# refused (MULTI/EXEC blocks run as one PostgreSQL transaction), and there is
# one database (SELECT n != 0 fails as in a Redis with "databases 1").
WATCH_ERROR = "ERR WATCH is not supported by FastPgCache (MULTI/EXEC blocks run as one PostgreSQL transaction)"


def deliberate(cmd, want, got):
    name = cmd[0].lower()
    if name == "watch" and not isinstance(want, RespError) and got == WATCH_ERROR:
        return True
    if name == "select" and want == "OK" and got == "ERR DB index is out of range":
        return True
    return False


def normalise(cmd, reply):
    if cmd[0].lower() == "keys" and isinstance(reply, list):
        return sorted(reply)
    return reply


def run(conn, cmd):
    replies = conn.pipeline([("FLUSHALL",)] + SETUP + [cmd, ("DISCARD",)])
    return replies[-2]


SEQUENCES = [
    [("MULTI",), ("SET", "a", "1"), ("GET", "a"), ("INCR", "a"), ("EXEC",)],
    [("MULTI",), ("GET",), ("SET", "a", "1"), ("EXEC",), ("GET", "a")],
    [("MULTI",), ("FOO",), ("EXEC",)],
    [("MULTI",), ("MULTI",), ("SET", "a", "1"), ("EXEC",)],
    [("MULTI",), ("SET", "a", "1"), ("DISCARD",), ("GET", "a"), ("DISCARD",)],
    [("EXEC",), ("DISCARD",), ("MULTI",), ("EXEC",)],
    [("MULTI",), ("INCR", "s"), ("SET", "b", "2"), ("EXEC",), ("GET", "b")],
    [("MULTI",), ("SET", "k", "v", "EX", "abc"), ("SET", "k", "v", "FOO"), ("GET", "k"), ("EXEC",)],
    [("MULTI",), ("PING",), ("ECHO", "x"), ("SELECT", "0"), ("CLIENT", "SETNAME", "n"), ("EXEC",), ("CLIENT", "GETNAME")],
    [("MULTI",), ("SET", "a", "1"), ("EXEC", "x"), ("GET", "a"), ("EXEC",)],
    [("MULTI",), ("WATCH", "a"), ("SET", "a", "1"), ("EXEC",)],
    [("MULTI",), ("SET", "a", "1"), ("RESET",), ("EXEC",)],
    [("MULTI",), ("INCRBYFLOAT", "f", "abc"), ("INCRBYFLOAT", "f", "2.5"), ("DECRBY", "k", "-9223372036854775808"), ("EXEC",)],
    [("MULTI",), ("MGET", "k", "s", "missing"), ("DEL", "k", "missing"), ("EXISTS", "k"), ("EXEC",)],
]


def main():
    redis_port, harness_port = int(sys.argv[1]), int(sys.argv[2])
    random_count = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
    redis, harness = Conn(port=redis_port), Conn(port=harness_port)
    cases = handwritten() + random_commands(random_count)
    errors_compared = successes = exact = deliberates = 0
    failures = []
    for cmd in cases:
        want = run(redis, cmd)
        got = run(harness, cmd)
        if deliberate(cmd, want, got):
            deliberates += 1
            continue
        if isinstance(want, RespError):
            errors_compared += 1
            if got != want or not isinstance(got, RespError):
                failures.append((cmd, want, got))
            continue
        successes += 1
        if isinstance(got, RespError):
            failures.append((cmd, want, got))
            continue
        if cmd[0].lower() in DETERMINISTIC and not (cmd[0].lower() == "discard"):
            exact += 1
            if normalise(cmd, want) != normalise(cmd, got):
                failures.append((cmd, want, got))
    for seq in SEQUENCES:
        want = redis.pipeline([("FLUSHALL",)] + SETUP + seq)[len(SETUP) + 1:]
        got = harness.pipeline([("FLUSHALL",)] + SETUP + seq)[len(SETUP) + 1:]
        if want != got:
            failures.append((seq, want, got))
    # COMMAND INFO of every non-container command must equal redis-server's.
    names = [c.lower() for c in COMMANDS if c not in ("CLIENT", "COMMAND", "CONFIG")] + \
        ["hello", "quit", "reset", "multi"]
    info_want = redis.call("COMMAND", "INFO", *names)
    info_got = harness.call("COMMAND", "INFO", *names)
    for n, w, g in zip(names, info_want, info_got):
        if w != g:
            failures.append((("COMMAND", "INFO", n), w, g))
    for sub in ["client|id", "client|getname", "client|setname", "client|info", "client|list", "config|get",
                "command|count", "command|info", "command|docs", "command|list"]:
        w = redis.call("COMMAND", "INFO", sub)
        g = harness.call("COMMAND", "INFO", sub)
        if w != g:
            failures.append((("COMMAND", "INFO", sub), w, g))
    for cmd, want, got in failures[:40]:
        print("MISMATCH %r\n  redis:   %r\n  harness: %r" % (cmd, want, got))
    print("diff_commands: %d commands (%d redis errors compared, %d successes, %d compared exactly, "
          "%d deliberate differences), %d MULTI/EXEC sequences, %d COMMAND INFO entries, %d mismatches" % (
              len(cases), errors_compared, successes, exact, deliberates, len(SEQUENCES), len(names) + 10,
              len(failures)))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
