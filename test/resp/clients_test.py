#!/usr/bin/env python3
"""Protocol compatibility with Debian's python3-redis (redis-py 4.3) and raw
RESP3: every command, pipelines, MULTI/EXEC, connection pools, reconnects,
AUTH, unix socket. Run against the FastPgCache RESP harness (--target
fastpgcache) and, to prove the expectations are Redis's, against redis-server
(--target redis): the few FastPgCache-specific checks are marked.

Usage: clients_test.py --port P [--auth-port P2] [--unix PATH] --target fastpgcache|redis
Prints "N passed, N failed".
"""
import argparse
import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from resplib import Conn, RespError, Verbatim

passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL %s %s" % (name, detail))


def raises(fn, text):
    try:
        fn()
    except redis.exceptions.RedisError as e:
        return text in str(e)
    return False


def commands(r, fpc):
    r.flushall()
    check("ping", r.ping() is True)
    check("echo", r.echo("hi") == "hi")
    check("set/get", r.set("a", "1") and r.get("a") == "1")
    check("set nx blocked", r.set("a", "2", nx=True) is None and r.get("a") == "1")
    check("set xx", r.set("a", "3", xx=True) and r.get("a") == "3")
    check("set ex", r.set("e", "v", ex=100) and 99 <= r.ttl("e") <= 100)
    check("set px", r.set("p", "v", px=100000) and 99000 <= r.pttl("p") <= 100000)
    check("set keepttl", r.set("e", "w", keepttl=True) and r.ttl("e") > 0)
    check("set get", r.set("a", "4", get=True) == "3")
    check("set exat", r.set("x", "v", exat=int(time.time()) + 50) and 45 <= r.ttl("x") <= 50)
    check("setnx", r.setnx("n", "1") is True and r.setnx("n", "2") is False)
    check("setex", r.setex("sx", 10, "v") and r.ttl("sx") == 10)
    check("psetex", r.psetex("px", 10000, "v") and r.pttl("px") > 9000)
    check("mset/mget", r.mset({"m1": "1", "m2": "2"}) and r.mget("m1", "m2", "none") == ["1", "2", None])
    check("msetnx", r.msetnx({"m1": "x", "m3": "3"}) is False and r.get("m3") is None)
    check("exists dup", r.exists("m1", "m1", "none") == 2)
    check("delete", r.delete("m1", "m2", "none") == 2)
    check("unlink", r.unlink("m3", "n") == 1)
    check("expire", r.expire("a", 100) is True and r.ttl("a") == 100)
    check("expire nx", r.expire("a", 50, nx=True) is False)
    check("expire gt", r.expire("a", 50, gt=True) is False and r.expire("a", 200, gt=True) is True)
    check("expire lt", r.expire("a", 150, lt=True) is True)
    check("pexpire", r.pexpire("a", 100000) is True and r.pttl("a") > 99000)
    check("expireat", r.expireat("a", int(time.time()) + 30) is True and 25 <= r.ttl("a") <= 30)
    check("pexpireat", r.pexpireat("a", int(time.time() * 1000) + 30000) is True)
    check("persist", r.persist("a") is True and r.ttl("a") == -1 and r.persist("a") is False)
    check("ttl missing", r.ttl("none") == -2 and r.pttl("none") == -2)
    check("expire past deletes", r.expire("a", -1) is True and r.exists("a") == 0)
    check("incr", r.incr("c") == 1 and r.incrby("c", 10) == 11 and r.decr("c") == 10 and r.decrby("c", 5) == 5)
    check("incrbyfloat", r.incrbyfloat("fl", 1.5) == 1.5 and r.get("fl") == "1.5")
    check("incrbyfloat text", r.incrbyfloat("fl", 0.1) == 1.6 and r.get("fl") == "1.6")
    check("incr error", raises(lambda: r.incr("fl"), "value is not an integer or out of range"))
    check("incr overflow", r.set("big", "9223372036854775807") and raises(lambda: r.incr("big"), "increment or decrement would overflow"))
    check("append/strlen", r.append("s", "ab") == 2 and r.append("s", "cd") == 4 and r.strlen("s") == 4)
    check("getdel", r.getdel("s") == "abcd" and r.exists("s") == 0)
    r.set("g", "v")
    check("getex ex", r.getex("g", ex=60) == "v" and r.ttl("g") == 60)
    check("getex persist", r.getex("g", persist=True) == "v" and r.ttl("g") == -1)
    check("getset", r.getset("g", "w") == "v" and r.get("g") == "w")
    check("type", r.type("g") == "string" and r.type("none") == "none")
    r.flushdb()
    for i in range(50):
        r.set("user:%d" % i, i)
    r.set("other", 1)
    check("keys", sorted(r.keys("user:?")) == sorted("user:%d" % i for i in range(10)))
    check("scan_iter", sorted(r.scan_iter(match="user:*", count=7)) == sorted("user:%d" % i for i in range(50)))
    check("dbsize", r.dbsize() == 51)
    check("info", "redis_version" in r.info("server") and r.info("keyspace").get("db0", {}).get("keys") == 51)
    check("flushall", r.flushall() and r.dbsize() == 0)
    check("config get", r.config_get("databases").get("databases") in ("1", "16"))
    check("client setname", r.client_setname("py") and r.client_getname() == "py")
    check("client id", isinstance(r.client_id(), int))
    check("client list", any(c.get("name") == "py" for c in r.client_list()))
    check("client info", r.client_info().get("name") == "py")
    check("command count", r.command_count() > 0)
    check("unknown command", raises(lambda: r.execute_command("NOPE", "x"), "unknown command 'NOPE'"))
    check("wrong arity", raises(lambda: r.execute_command("GET"), "wrong number of arguments for 'get' command"))
    check("syntax", raises(lambda: r.execute_command("SET", "k", "v", "NX", "XX"), "syntax error"))
    check("expire time", raises(lambda: r.execute_command("SET", "k", "v", "EX", "0"), "invalid expire time in 'set' command"))
    check("float", raises(lambda: r.execute_command("INCRBYFLOAT", "k", "x"), "value is not a valid float"))
    check("select other db", raises(lambda: r.execute_command("SELECT", "1"), "DB index is out of range") if fpc else True)
    if fpc:
        check("watch refused", raises(lambda: r.execute_command("WATCH", "k"), "WATCH is not supported"))
        check("client setinfo", r.execute_command("CLIENT", "SETINFO", "lib-name", "redis-py") == "OK")


def binary(port):
    r = redis.Redis(port=port)
    value = bytes(range(256)) * 4 + b"\r\n\x00"
    check("binary value", r.set(b"bin\x00key", value) and r.get(b"bin\x00key") == value)


def pipelines(r):
    r.flushall()
    p = r.pipeline(transaction=False)
    for i in range(1000):
        p.set("k%d" % i, i)
        p.incr("counter")
    res = p.execute()
    check("pipeline", len(res) == 2000 and res[-1] == 1000)
    p = r.pipeline(transaction=True)
    p.set("t", 1).incr("t").get("t")
    check("multi/exec", p.execute() == [True, 2, "2"])
    p = r.pipeline(transaction=True)
    p.set("t2", "x").incr("t2").get("t2")
    res = p.execute(raise_on_error=False)
    check("exec runtime error", res[0] is True and isinstance(res[1], redis.ResponseError) and res[2] == "x")
    p = r.pipeline(transaction=True)
    p.set("t3", 1)
    p.execute_command("GET")
    # redis-py reports the queueing error (Redis answered EXECABORT to EXEC).
    check("execabort", raises(p.execute, "wrong number of arguments") and r.get("t3") is None)
    c = Conn(port=r.connection_pool.connection_kwargs["port"])
    res = c.pipeline([("MULTI",), ("SET", "t3", "1"), ("GET",), ("EXEC",)])
    check("raw execabort", res[-1] == RespError("EXECABORT Transaction discarded because of previous errors."))
    c.close()


def pools(port):
    pool = redis.ConnectionPool(port=port, max_connections=8, decode_responses=True)
    r = redis.Redis(connection_pool=pool)
    r.delete("pooled")

    def work():
        for _ in range(500):
            r.incr("pooled")
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check("pool incr", r.get("pooled") == "4000")
    # Reconnect: the server closes the connection (QUIT); the retry reconnects.
    rr = redis.Redis(port=port, decode_responses=True, retry=Retry(NoBackoff(), 3),
                     retry_on_error=[redis.ConnectionError])
    rr.set("rc", "1")
    conn = rr.connection_pool.get_connection("PING")
    conn.send_command("QUIT")
    check("quit ok", conn.read_response() in (b"OK", "OK", True))
    rr.connection_pool.release(conn)
    check("reconnect", rr.get("rc") == "1")


def auth(port, fpc):
    r = redis.Redis(port=port, decode_responses=True)
    if fpc:  # PING answers before AUTH (health checks): a deliberate difference
        check("ping before auth", r.ping() is True)
        check("noauth", raises(lambda: r.get("x"), "Authentication required"))
    else:
        check("noauth", raises(r.ping, "Authentication required"))
    check("wrongpass", raises(lambda: redis.Redis(port=port, password="bad").ping(), "invalid username-password"))
    ok = redis.Redis(port=port, password="pw", decode_responses=True)
    check("auth ok", ok.ping() is True and ok.set("x", "1") and ok.get("x") == "1")
    c = Conn(port=port)
    check("raw noauth", c.call("GET", "x") == RespError("NOAUTH Authentication required."))
    hello = c.call("HELLO", "3", "AUTH", "default", "pw", "SETNAME", "r3")
    check("hello 3 auth", isinstance(hello, dict) and hello.get(b"proto") == 3)
    check("resp3 after auth", c.call("GET", "missing") is None and c.call("CLIENT", "GETNAME") == b"r3")
    c.close()


def resp3(port, fpc):
    c = Conn(port=port)
    hello = c.call("HELLO", "3")
    check("hello map", isinstance(hello, dict) and hello.get(b"proto") == 3 and hello.get(b"mode") == b"standalone")
    c.call("SET", "r3", "v")
    check("resp3 null", c.call("GET", "nothing") is None)
    check("resp3 info verbatim", isinstance(c.call("INFO", "server"), Verbatim))
    check("resp3 config map", isinstance(c.call("CONFIG", "GET", "timeout"), dict))
    check("resp3 exec", c.pipeline([("MULTI",), ("INCR", "n3"), ("EXEC",)])[-1] == [1])
    if fpc:
        check("setinfo", c.call("CLIENT", "SETINFO", "LIB-NAME", "redis-py") == "OK")
    check("hello 2", isinstance(c.call("HELLO", "2"), list))
    check("reset", c.call("RESET") == "RESET")
    c.close()


def unix(path):
    r = redis.Redis(unix_socket_path=path, decode_responses=True)
    check("unix socket", r.ping() is True and r.set("u", "1") and r.get("u") == "1")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--auth-port", type=int)
    ap.add_argument("--unix")
    ap.add_argument("--target", choices=["fastpgcache", "redis"], required=True)
    a = ap.parse_args()
    fpc = a.target == "fastpgcache"
    r = redis.Redis(port=a.port, decode_responses=True)
    commands(r, fpc)
    binary(a.port)
    pipelines(r)
    pools(a.port)
    resp3(a.port, fpc)
    if a.auth_port:
        auth(a.auth_port, fpc)
    if a.unix:
        unix(a.unix)
    print("clients_test (%s): %d passed, %d failed" % (a.target, passed, failed))
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
