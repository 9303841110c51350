#!/usr/bin/env python3
"""Differential test of GlobMatch (src/resp/glob.cpp) against redis-server's
stringmatchlen: the same keys are stored in both servers, then KEYS runs with
hand-written odd patterns and seeded random ones; the sorted key lists must be
equal.

Usage: diff_glob.py REDIS_PORT HARNESS_PORT [RANDOM_PATTERNS]
"""
import random
import sys

from resplib import Conn

KEYS = ["", "a", "b", "ab", "ba", "abc", "aXc", "a*c", "a?c", "a[c", "a]c", "a\\c", "a-c", "^", "-", "]", "[",
        "\\", "*", "?", "hello", "hallo", "hxllo", "hllo", "heeeello", "h\xe9llo", "user:1", "user:10", "user:2",
        "USER:1", "a\x00b", "\x00", "\xff", "\xfe\xff", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "z", "Z", "zz", "{a}", "a b", "a\nb", "abcabc", "x" * 1200, "a" * 1100]

PATTERNS = ["*", "", "?", "??", "a*", "*c", "a?c", "a*c", "h?llo", "h*llo", "h[ae]llo", "h[^e]llo", "h[a-b]llo",
            "h[b-a]llo", "[", "[a", "[^", "[^a", "a[", "a[]c", "a[]]c", "a[\\]]c", "a[\\", "a\\", "\\", "\\*", "\\?",
            "a\\*c", "a\\?c", "a\\[c", "a[*]c", "a[?]c", "a[-]c", "a[a-]c", "a[-c]c", "[a-c]*", "[z-a]", "[]",
            "[]a", "[^]", "[^]a]", "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", "*a*a*a*a*a*a*a*a*a*a*a*a*c", "a**b",
            "**", "***a", "user:?", "user:*", "user:[0-9]", "user:[0-9][0-9]", "USER:*", "[uU]ser:*", "a\x00b", "a?b",
            "*\x00*", "\xff", "[\xfe-\xff]", "[\x00-\x7f]", "[^\x00-\x7f]*", "a b", "a\nb", "{a}", "x*", "x" * 1200,
            "*x" * 600, "?" * 1200, "[a-z][a-z]", "[a-z]*[a-z]", "*[", "*[a", "*\\", "[\\a-c]bc", "[a-\\c]",
            "[---]", "[a-c-e]", "[!a]*", "h[e-e]llo", "*ab*", "*abc*abc*", "a*" * 999, "a*" * 1050]


def random_pattern(rnd):
    alphabet = ["a", "b", "c", "*", "?", "[", "]", "^", "-", "\\", "x", "h", "l", "o", "e"]
    return "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 10)))


def main():
    redis_port, harness_port = int(sys.argv[1]), int(sys.argv[2])
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    redis, harness = Conn(port=redis_port), Conn(port=harness_port)
    rnd = random.Random(7)
    patterns = PATTERNS + [random_pattern(rnd) for _ in range(count)]
    for c in (redis, harness):
        c.call("FLUSHALL")
        args = ["MSET"]
        for k in KEYS:
            args += [k, "1"]
        c.call(*args)
    failures = 0
    for p in patterns:
        want = sorted(redis.call("KEYS", p))
        got = sorted(harness.call("KEYS", p))
        if want != got:
            failures += 1
            if failures <= 20:
                print("MISMATCH pattern %r\n  only in redis:   %r\n  only in harness: %r" % (
                    p[:60], [k[:40] for k in want if k not in got], [k[:40] for k in got if k not in want]))
    print("diff_glob: %d keys x %d patterns compared, %d mismatches" % (len(KEYS), len(patterns), failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
