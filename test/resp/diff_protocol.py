#!/usr/bin/env python3
"""Differential test of the RESP request parser: raw byte streams (valid,
malformed, oversized, split) sent to redis-server and to the FastPgCache RESP
harness; the replies and whether the connection was closed must be identical.

Usage: diff_protocol.py REDIS_PORT HARNESS_PORT
Only PING/ECHO/unknown commands are used, so replies do not depend on data.
"""
import random
import socket
import sys
import time


def exchange(port, chunks, wait=0.25):
    s = socket.create_connection(("127.0.0.1", port))
    for c in chunks:
        try:
            s.sendall(c)
        except (BrokenPipeError, ConnectionResetError):
            break  # the server already gave up on this connection
        if len(chunks) > 1:
            time.sleep(0.002)
    s.settimeout(wait)
    out = b""
    closed = False
    try:
        while True:
            d = s.recv(1 << 16)
            if not d:
                closed = True
                break
            out += d
    except (socket.timeout, TimeoutError):
        pass
    except ConnectionResetError:
        closed = True
    s.close()
    return out, closed


def corpus():
    c = []
    ping = b"*1\r\n$4\r\nPING\r\n"
    c += [ping, ping * 3, b"PING\r\n", b"PING\n", b"ping\r\nPING\r\n", b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n"]
    # multibulk count
    for n in [b"", b"x", b"-1", b"0", b"-0", b"01", b"+1", b" 1", b"1 ", b"2147483647", b"2147483648", b"9223372036854775807",
              b"9223372036854775808", b"-9223372036854775808", b"1\x00", b"12345678901234567890123"]:
        c.append(b"*" + n + b"\r\n" + ping)
    # bulk length
    for n in [b"", b"x", b"-1", b"-0", b"04", b"+4", b" 4", b"4 ", b"536870912", b"536870913", b"99999999999999999999", b"4\x00"]:
        c.append(b"*1\r\n$" + n + b"\r\nPING\r\n" + ping)
    # wrong type bytes
    for b in [b"x", b"+", b":", b"*", b"\r", b"\n", b" ", b"\xff", b"\x00", b"$"]:
        c.append(b"*1\r\n" + b + b"4\r\nPING\r\n")
    # terminators not checked
    c += [b"*1\r\n$4\r\nPINGxx" + ping, b"*1\rx$4\r\nPING\r\n", b"*1\r\n$4\rxPING\r\n", b"*2\r\n$4\r\nECHO\r\n$3\r\na\r\nb\r\n"]
    # inline quirks
    c += [b"   \r\n" + ping, b"\r\n\r\n\n" + ping, b"ECHO \"a b\"\r\n", b"ECHO 'a b'\r\n", b"ECHO \"a\\x41\\n\\t\\\\\"\r\n",
          b"ECHO 'a\\'b'\r\n", b"ECHO \"a\"b\r\n", b"ECHO 'a'b\r\n", b"ECHO \"abc\r\n", b"ECHO 'abc\r\n", b"ECHO a\"b c\"\r\n",
          b"ECHO \"\\x4g\"\r\n", b"ECHO \"\\xZZ\"\r\n", b"ECHO \"\\\r\n", b"\x0bECHO\x0cx\r\n", b"ECHO\ta\r\n", b"ECHO a\x0bb\r\n",
          b"PI\x00NG\r\n" + ping, b"\x00\r\n", b"ECHO \"\"\r\n", b"ECHO ''\r\n", b"ECHO \"a\"\r\n", b"ECHO a b c\r\n",
          b"FOO a b\r\n", b"foo \"x\r\ny\"\r\n", b"ECHO \xff\xfe\r\n"]
    # unknown command texts
    c += [b"*3\r\n$3\r\nFOO\r\n$3\r\na\r\nb\r\n$0\r\n\r\n", b"*2\r\n$5\r\nGET\x00x\r\n$1\r\nk\r\n", b"*1\r\n$0\r\n\r\n",
          b"FOO " + b"x" * 200 + b"\r\n", b"FOO " + b" ".join([b"abcdefghij"] * 30) + b"\r\n",
          b"*2\r\n$3\r\nFOO\r\n$3\r\na\x00b\r\n", b"*2\r\n$300\r\n" + b"y" * 300 + b"\r\n$1\r\nz\r\n"]
    # empty multibulk between commands
    c += [b"*0\r\n" + ping, b"*-1\r\n*-5\r\n" + ping]
    # big inline / header lines (under, at and over 64 KB)
    for n in [65535]:
        c.append(b"ECHO " + b"a" * (n - 5) + b"\r\n")
    c.append(b"x" * 70000)
    c.append(b"*" + b"1" * 70000)
    c.append(b"*1\r\n$" + b"1" * 70000)
    return c


# Deliberate differences (documented in src/resp/protocol.hpp): an inline line
# of more than 64 KB is refused whatever the TCP segmentation; Redis accepts it
# when the newline comes in the same read. Checked: FastPgCache refuses it.
DELIBERATE = [
    (b"ECHO " + b"a" * 65531 + b"\r\n", (b"-ERR Protocol error: too big inline request\r\n", True)),
    (b"ECHO " + b"a" * 65532 + b"\r\n", (b"-ERR Protocol error: too big inline request\r\n", True)),
]


def short(x):
    r = repr(x)
    return r if len(r) < 300 else r[:300] + "..."


def main():
    redis_port, harness_port = int(sys.argv[1]), int(sys.argv[2])
    rnd = random.Random(42)
    cases = corpus()
    failures = 0
    compared = 0
    for case in cases:
        variants = [[case]]
        if len(case) < 300:
            # The same bytes split at random points must give the same result.
            cut = sorted(rnd.sample(range(1, len(case)), min(3, len(case) - 1))) if len(case) > 1 else []
            parts, prev = [], 0
            for x in cut + [len(case)]:
                parts.append(case[prev:x])
                prev = x
            variants.append(parts)
        for chunks in variants:
            want = exchange(redis_port, chunks)
            got = exchange(harness_port, chunks)
            compared += 1
            if want != got:
                failures += 1
                print("MISMATCH for %s (%d chunks)\n  redis:   %s\n  harness: %s" % (short(case[:80]), len(chunks), short(want), short(got)))
    deliberate = 0
    for case, expected in DELIBERATE:
        want = exchange(redis_port, [case])
        got = exchange(harness_port, [case])
        deliberate += 1
        if got != expected or want == got:
            failures += 1
            print("DELIBERATE DIFFERENCE not as documented for %s\n  redis: %s\n  harness: %s" % (short(case[:40]), short(want), short(got)))
    print("diff_protocol: %d byte streams compared, %d deliberate differences checked, %d mismatches" % (compared, deliberate, failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
