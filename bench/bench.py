#!/usr/bin/env python3
"""FastPgCache benchmark driver. Started by bench/run.sh, which has already
started a throwaway PostgreSQL and redis-server on 127.0.0.1; this script
loads the data, runs every phase, and writes the markdown report.

Standard library only. Every phase raises BenchError on a pgbench error,
an SQL error or a redis-benchmark failure; speed is reported, never asserted.
"""

import argparse
import datetime
import glob
import math
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
VALUE = "x" * 100  # every value is 100 bytes, in PostgreSQL and in Redis


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------

MODES = {
    # dur: seconds per pgbench run; rounds: each workload runs this many
    # times, interleaved with the others, and the best run is reported
    # (the machine is shared, and interference only ever slows a run down).
    "smoke": dict(dur=1, rounds=1, clients=[2], pipe_clients=[2], keys=100_000,
                  scale=[1_000, 10_000], scale_clients=2, churn=20_000,
                  churn_clients=2, batch_clients=2, redis_dur=1,
                  profile_n=(100, 600)),
    "quick": dict(dur=3, rounds=1, clients=[8], pipe_clients=[8], keys=100_000,
                  scale=[10_000, 100_000], scale_clients=8, churn=200_000,
                  churn_clients=8, batch_clients=8, redis_dur=2,
                  profile_n=(200, 2_000)),
    "full": dict(dur=5, rounds=2, clients=[1, 8, 32], pipe_clients=[1, 8, 32],
                 keys=100_000, scale=[10_000, 100_000, 1_000_000],
                 scale_clients=8, churn=2_000_000, churn_clients=8,
                 batch_clients=8, redis_dur=3, profile_n=(300, 3_000)),
}

# --------------------------------------------------------------------------
# Workloads. :id is a random key number, :val the 100-byte value.
# --------------------------------------------------------------------------

KEY = "'key:' || :id"
HASH = ("encode(substring(sha256(convert_to('key:' || :id, 'UTF8')) FROM 1 FOR 16),"
        " 'hex')::uuid")
LIVE = "(expires_at IS NULL OR expires_at > now())"

STMT = {
    ("select1", "get"): "SELECT 1;",
    ("ext", "get"): f"SELECT cache_get({KEY});",
    ("ext", "set"): f"SELECT cache_set({KEY}, :val::text);",
    ("ext", "exists"): f"SELECT cache_exists({KEY});",
    ("fallback", "get"): f"SELECT cache_get({KEY});",
    ("fallback", "set"): f"SELECT cache_set({KEY}, :val::text);",
    ("fallback", "exists"): f"SELECT cache_exists({KEY});",
    # The Redis command set (1.1): INCR on a counter per key, SET NX.
    ("ext", "incr"): "SELECT cache_incr('counter:' || :id);",
    ("ext", "setnx"): "SELECT cache_set('nx:' || :id, :val::text, nx => true);",
    ("fallback", "incr"): "SELECT cache_incr('counter:' || :id);",
    ("fallback", "setnx"): "SELECT cache_set('nx:' || :id, :val::text, nx => true);",
    ("plain", "get"): (f"SELECT value FROM cache_entries WHERE key_hash = {HASH}"
                       f" AND key = {KEY} AND {LIVE};"),
    ("plain", "set"): ("INSERT INTO cache_entries AS e (key_hash, key, value, kind, expires_at)"
                       f" VALUES ({HASH}, {KEY}, convert_to(:val, 'UTF8'), 't', NULL)"
                       " ON CONFLICT (key_hash) DO UPDATE SET key = EXCLUDED.key,"
                       " value = EXCLUDED.value, kind = EXCLUDED.kind,"
                       " expires_at = EXCLUDED.expires_at;"),
    ("plain", "exists"): (f"SELECT EXISTS (SELECT 1 FROM cache_entries WHERE key_hash = {HASH}"
                          f" AND key = {KEY} AND {LIVE});"),
}

DB = {"select1": "bench_ext", "ext": "bench_ext", "fallback": "bench_fb", "plain": "bench_ext"}
LABEL = {
    "select1": "SELECT 1",
    "ext": "extension",
    "fallback": "PL/pgSQL fallback",
    "plain": "plain SQL",
    "redis": "Redis",
}
OPS = ["get", "set", "mix", "exists", "incr", "setnx"]
PIPE_OPS = [("select1", "get"), ("ext", "get"), ("ext", "set"), ("fallback", "get"),
            ("fallback", "set"), ("plain", "get"), ("plain", "set"), ]
PIPE = 10


def op_label(impl, op):
    if impl == "select1":
        return "round trip"
    return {"get": "get", "set": "set", "mix": "90% get / 10% set", "exists": "exists", "incr": "incr",
            "setnx": "set nx"}[op]


# --------------------------------------------------------------------------
# Processes and /proc
# --------------------------------------------------------------------------

def run(cmd, check=True, input=None, timeout=None):
    p = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise BenchError(f"command failed ({p.returncode}): {' '.join(map(str, cmd))[:300]}\n"
                         f"{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return p


def as_pg(cmd):
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


def proc_stat(pid):
    """(ppid, state, utime+stime+cutime+cstime in ticks) or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = s[s.rindex(")") + 2:].split()
    # rest[0] = state (field 3); utime is field 14 -> rest[11]
    return int(rest[1]), rest[0], sum(int(x) for x in rest[11:15])


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st and st[0] == pid:
                out.append(int(d))
    return out


def tree_ticks(pid):
    """CPU ticks of a postmaster and its children, live or reaped."""
    st = proc_stat(pid)
    if st is None:
        return 0
    total = st[2]
    for c in children(pid):
        cs = proc_stat(c)
        if cs:
            total += cs[2]
    return total


def machine_busy_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice:
    # time charged to processes only (loopback networking in softirq is
    # part of the benchmark's own cost, not someone else's)
    return v[0] + v[1] + v[2]


def client_backends(pm):
    """Children of the postmaster that are client backends, or that have
    exited and are not reaped yet (zombies: their CPU time is about to move
    into the postmaster's cutime, and a snapshot taken meanwhile can count
    it twice or not at all)."""
    n = 0
    for c in children(pm):
        st = proc_stat(c)
        if st and st[1] in ("Z", "X"):
            n += 1
            continue
        try:
            with open(f"/proc/{c}/cmdline", "rb") as f:
                if b"127.0.0.1(" in f.read():
                    n += 1
        except OSError:
            pass
    return n


class Meter:
    """CPU used by the server (postmaster tree), Redis, this script's
    children (the benchmark clients) and everything else on the machine."""

    def __init__(self, cfg):
        self.cfg = cfg

    def snap(self):
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        # read until two readings agree: a child reaped between reading the
        # postmaster and reading its children would be missed or doubled
        pg = tree_ticks(self.cfg.postmaster_pid)
        for _ in range(20):
            again = tree_ticks(self.cfg.postmaster_pid)
            if again == pg:
                break
            pg = again
        return dict(t=time.monotonic(), pg=pg,
                    redis=proc_stat(self.cfg.redis_pid)[2] if proc_stat(self.cfg.redis_pid) else 0,
                    client=ru.ru_utime + ru.ru_stime, busy=machine_busy_ticks())

    def wait_idle(self):
        """Waits until the benchmark's backends have exited (so that their
        CPU time has been added to the postmaster's)."""
        end = time.monotonic() + 10
        while time.monotonic() < end and client_backends(self.cfg.postmaster_pid) > 0:
            time.sleep(0.02)

    def delta(self, a, b, server):
        wall = b["t"] - a["t"]
        srv = (b[server] - a[server]) / CLK_TCK
        client = b["client"] - a["client"]
        busy = (b["busy"] - a["busy"]) / CLK_TCK
        ours = (b["pg"] - a["pg"] + b["redis"] - a["redis"]) / CLK_TCK + client
        ncpu = os.cpu_count() or 1
        other = max(0.0, busy - ours) / (wall * ncpu) * 100 if wall > 0 else 0.0
        return dict(server_cpu_s=srv, client_cpu_s=client, other_pct=other)


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------

class Cfg:
    pass


def psql(cfg, db, sql, timeout=None):
    cmd = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
           "-p", str(cfg.pg_port), "-U", "postgres", "-d", db]
    p = run(cmd, input=sql, check=False, timeout=timeout)
    if p.returncode != 0 or "ERROR:" in p.stderr:
        raise BenchError(f"SQL failed in {db}: {sql[:300]}\n{p.stderr[-2000:]}")
    return p.stdout.strip()


def write_script(cfg, name, text):
    path = os.path.join(cfg.work, "scripts", name + ".sql")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def script_for(cfg, impl, op, pipeline=1):
    stmt = STMT[(impl, op)]
    body = "\\set id random(1, :nkeys)\n" + stmt + "\n"
    if pipeline > 1:
        body = "\\startpipeline\n" + body * pipeline + "\\endpipeline\n"
        return write_script(cfg, f"{impl}_{op}_p{pipeline}", body)
    return write_script(cfg, f"{impl}_{op}", body)


def percentile(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    k = max(0, math.ceil(p / 100 * len(sorted_vals)) - 1)
    return sorted_vals[k]


def pgbench(cfg, db, scripts, clients, dur=None, transactions=None, nkeys=None,
            ops_per_tx=1, progress=None, log=True, server="pg", max_tries=None):
    """Runs pgbench -M prepared over TCP; returns ops/s, latencies (ms) and
    CPU per op. scripts: list of (path, weight)."""
    nkeys = nkeys or cfg.keys
    prefix = os.path.join(cfg.work, "pgbench_log")
    for f in glob.glob(prefix + ".*"):
        os.unlink(f)
    cmd = ["pgbench", "-n", "-M", "prepared", "-h", "127.0.0.1", "-p", str(cfg.pg_port),
           "-U", "postgres", "-c", str(clients), "-j", str(min(clients, 2)),
           "-D", f"nkeys={nkeys}", "-D", f"val={VALUE}"]
    if dur is not None:
        cmd += ["-T", str(dur)]
    else:
        cmd += ["-t", str(max(1, transactions // clients))]
    if progress:
        cmd += ["-P", str(progress)]
    if max_tries:
        # retry deadlock and serialization failures, and count them
        cmd += ["--max-tries", str(max_tries), "--failures-detailed"]
    if log:
        cmd += ["--log", "--log-prefix", prefix]
    for path, w in scripts:
        cmd += ["-f", f"{path}@{w}"]
    cmd.append(db)
    meter = Meter(cfg)
    meter.wait_idle()
    a = meter.snap()
    p = run(cmd, check=False)
    meter.wait_idle()
    b = meter.snap()
    out = p.stdout + p.stderr
    failed = re.search(r"number of failed transactions: (\d+)", out)
    if p.returncode != 0 or (failed and int(failed.group(1)) > 0) or re.search(r"\berror\b", p.stderr, re.I):
        raise BenchError(f"pgbench failed ({p.returncode}) on {db} {[s for s, _ in scripts]}:\n"
                         f"{p.stderr[-3000:]}\n{p.stdout[-1500:]}")
    m_tx = re.search(r"number of transactions actually processed: (\d+)", out)
    m_tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    if not (m_tx and m_tps):
        raise BenchError(f"cannot parse pgbench output:\n{out[-2000:]}")
    tx = int(m_tx.group(1))
    tps = float(m_tps.group(1))
    res = dict(tx=tx, tps=tps, ops=tps * ops_per_tx, ops_per_tx=ops_per_tx)
    m_lat = re.search(r"latency average = ([\d.]+) ms", out)
    res["avg_ms"] = float(m_lat.group(1)) if m_lat else float("nan")
    if log:
        lat = []
        for f in glob.glob(prefix + ".*"):
            with open(f) as fh:
                for line in fh:
                    v = line.split()
                    if len(v) >= 3:
                        if not v[2].isdigit():
                            raise BenchError(f"pgbench logged a failed transaction: {line.strip()}")
                        lat.append(int(v[2]))
            os.unlink(f)
        lat.sort()
        if lat:
            res["avg_ms"] = sum(lat) / len(lat) / 1000
            res["p99_ms"] = percentile(lat, 99) / 1000
    res.setdefault("p99_ms", float("nan"))
    d = meter.delta(a, b, server)
    nops = tx * ops_per_tx
    res["server_us"] = d["server_cpu_s"] / nops * 1e6 if nops else float("nan")
    res["client_us"] = d["client_cpu_s"] / nops * 1e6 if nops else float("nan")
    res["other_pct"] = d["other_pct"]
    res["progress"] = [float(x) for x in re.findall(r"progress: [\d.]+ s, ([\d.]+) tps", p.stderr)]
    m = re.search(r"number of transactions retried: (\d+)", out)
    res["retried"] = int(m.group(1)) if m else 0
    m = re.search(r"total number of retries: (\d+)", out)
    res["retries"] = int(m.group(1)) if m else 0
    return res


# --------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------

def redis_cli(cfg, args, input=None):
    return run(["redis-cli", "-h", "127.0.0.1", "-p", str(cfg.redis_port)] + args, input=input)


def redis_bench(cfg, clients, command=None, test=None, pipeline=1, n=None, keys_per_cmd=1):
    """One redis-benchmark test; returns the same fields as pgbench()."""
    if n is None:
        n = getattr(cfg, "redis_n", {}).get((clients, pipeline), 20_000)
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(cfg.redis_port), "-c", str(clients),
           "-n", str(n), "-r", str(cfg.keys), "-d", "100", "--csv", "-P", str(pipeline)]
    # No --threads: in multi-thread mode redis-benchmark 7.0 measures its
    # elapsed time coarsely (rates come out as n / 0.5 s, n / 1.0 s, ...).
    if test:
        cmd += ["-t", test]
    else:
        cmd += command
    meter = Meter(cfg)
    a = meter.snap()
    p = run(cmd, check=False)
    b = meter.snap()
    rows = [l for l in p.stdout.splitlines() if l.startswith('"') and not l.startswith('"test"')]
    if p.returncode != 0 or not rows or "ERR" in p.stdout + p.stderr:
        raise BenchError(f"redis-benchmark failed: {' '.join(cmd)}\n{p.stdout[-1500:]}\n{p.stderr[-1500:]}")
    f = [x.strip('"') for x in rows[-1].split('","')]
    rps = float(f[1])
    d = meter.delta(a, b, "redis")
    nkeys = n * keys_per_cmd
    return dict(tx=n, tps=rps, ops=rps * keys_per_cmd, ops_per_tx=keys_per_cmd,
                avg_ms=float(f[2]), p99_ms=float(f[6]),
                server_us=d["server_cpu_s"] / nkeys * 1e6, client_us=d["client_cpu_s"] / nkeys * 1e6,
                other_pct=d["other_pct"])


def redis_calibrate(cfg, clients_list):
    """Chooses -n per client count so that one test lasts about redis_dur s."""
    cfg.redis_n = {}
    for c in clients_list:
        r = redis_bench(cfg, c, test="get", n=20_000)
        for pl in (1, PIPE, 100):
            cfg.redis_n[(c, pl)] = max(10_000, int(r["ops"] * cfg.redis_dur * (1 if pl == 1 else 4)))


# --------------------------------------------------------------------------
# Setup
# --------------------------------------------------------------------------

def setup(cfg, log):
    t0 = time.monotonic()
    for db in ("bench_ext", "bench_fb", "bench_scale", "bench_churn"):
        psql(cfg, "postgres", f"CREATE DATABASE {db};")
    for db in ("bench_ext", "bench_scale", "bench_churn"):
        psql(cfg, db, "CREATE EXTENSION fastpgcache;")
    fb = os.path.join(cfg.root, "fallback", "fastpgcache_fallback.sql")
    with open(fb) as f:
        psql(cfg, "bench_fb", f.read())
    cfg.ext_version = psql(cfg, "bench_ext",
                           "SELECT extversion FROM pg_extension WHERE extname = 'fastpgcache';")
    for db in ("bench_ext", "bench_fb", "bench_churn"):
        t = time.monotonic()
        preload(cfg, db, 1, cfg.keys)
        log(f"preloaded {cfg.keys} keys into {db} in {time.monotonic() - t:.1f} s")
    # Redis: the same number of keys, in redis-benchmark's key format.
    t = time.monotonic()
    resp = []
    for i in range(cfg.keys):
        k = f"key:{i:012d}"
        resp.append(f"*3\r\n$3\r\nSET\r\n${len(k)}\r\n{k}\r\n${len(VALUE)}\r\n{VALUE}\r\n")
    p = redis_cli(cfg, ["--pipe"], input="".join(resp))
    if "errors: 0" not in p.stdout:
        raise BenchError(f"redis preload failed: {p.stdout}")
    n = int(redis_cli(cfg, ["dbsize"]).stdout.strip())
    if n != cfg.keys:
        raise BenchError(f"redis has {n} keys after the preload, expected {cfg.keys}")
    log(f"preloaded {cfg.keys} keys into Redis in {time.monotonic() - t:.1f} s")
    for db in ("bench_ext", "bench_fb"):
        check_data(cfg, db)
    log(f"setup done in {time.monotonic() - t0:.1f} s")


def preload(cfg, db, lo, hi):
    step = 100_000
    for a in range(lo, hi + 1, step):
        b = min(hi, a + step - 1)
        psql(cfg, db, f"SELECT count(cache_set('key:' || i, repeat('x', 100)))"
                      f" FROM generate_series({a}, {b}) AS i;")
    psql(cfg, db, "VACUUM ANALYZE cache_entries;")


def check_data(cfg, db):
    """The preload is what the benchmark reads: check a few keys."""
    got = psql(cfg, db, f"SELECT count(*) FILTER (WHERE cache_get('key:' || i) = repeat('x', 100))"
                        f" FROM generate_series(1, {cfg.keys}, {max(1, cfg.keys // 1000)}) AS i;")
    want = len(range(1, cfg.keys + 1, max(1, cfg.keys // 1000)))
    if int(got) != want:
        raise BenchError(f"{db}: only {got} of {want} sampled keys read back after the preload")


# --------------------------------------------------------------------------
# Phases
# --------------------------------------------------------------------------

def pg_workload(cfg, impl, op, clients, pipeline=1):
    db = DB[impl]
    if op == "mix":
        scripts = [(script_for(cfg, impl, "get"), 9), (script_for(cfg, impl, "set"), 1)]
    else:
        scripts = [(script_for(cfg, impl, op, pipeline), 1)]
    return pgbench(cfg, db, scripts, clients, dur=cfg.dur, ops_per_tx=pipeline)


def phase_main(cfg, log):
    """Every implementation and operation at every client count; rounds are
    interleaved and the best round of each workload is kept."""
    results = {}  # (impl, op, clients, pipeline) -> result
    work = []
    for c in cfg.clients:
        work.append(("select1", "get", c, 1))
        for impl in ("ext", "fallback", "plain"):
            for op in OPS:
                if op == "mix" or (impl, op) in STMT:
                    work.append((impl, op, c, 1))
    for c in cfg.pipe_clients:
        for impl, op in PIPE_OPS:
            work.append((impl, op, c, PIPE))
    for rnd in range(cfg.rounds):
        for key in work:
            impl, op, c, pl = key
            r = pg_workload(cfg, impl, op, c, pl)
            r["rounds"] = [r["ops"]]
            old = results.get(key)
            if old:
                r["rounds"] = old["rounds"] + r["rounds"]
            if not old or r["ops"] > old["ops"]:
                results[key] = r
            else:
                old["rounds"] = r["rounds"]
            log(f"round {rnd + 1} {LABEL[impl]:18s} {op:6s} c={c:<2d} P={pl:<2d}"
                f" {r['ops']:10.0f} ops/s  p99 {r['p99_ms']:.3f} ms  server {r['server_us']:.1f} us/op"
                f"  other {r['other_pct']:.0f}%")
    # Redis, same client counts.
    redis_calibrate(cfg, sorted(set(cfg.clients + cfg.pipe_clients)))
    for rnd in range(cfg.rounds):
        for c in cfg.clients:
            for op, kw in (("get", dict(test="get")), ("set", dict(test="set")),
                           ("exists", dict(command=["EXISTS", "key:__rand_int__"])),
                           ("incr", dict(command=["INCR", "counter:__rand_int__"])),
                           ("setnx", dict(command=["SET", "nx:__rand_int__", "x" * 100, "NX"]))):
                keep(results, ("redis", op, c, 1), redis_bench(cfg, c, **kw))
        for c in cfg.pipe_clients:
            keep(results, ("redis", "get", c, PIPE), redis_bench(cfg, c, test="get", pipeline=PIPE))
            keep(results, ("redis", "set", c, PIPE), redis_bench(cfg, c, test="set", pipeline=PIPE))
    for c in cfg.clients:
        g, s = results[("redis", "get", c, 1)], results[("redis", "set", c, 1)]
        results[("redis", "mix", c, 1)] = dict(
            ops=1 / (0.9 / g["ops"] + 0.1 / s["ops"]),
            avg_ms=0.9 * g["avg_ms"] + 0.1 * s["avg_ms"], p99_ms=float("nan"),
            server_us=0.9 * g["server_us"] + 0.1 * s["server_us"],
            client_us=0.9 * g["client_us"] + 0.1 * s["client_us"],
            other_pct=(g["other_pct"] + s["other_pct"]) / 2, derived=True)
    for k, r in sorted(results.items()):
        if k[0] == "redis" and not r.get("derived"):
            log(f"Redis {k[1]:6s} c={k[2]:<2d} P={k[3]:<2d} {r['ops']:10.0f} ops/s  p99 {r['p99_ms']:.3f} ms"
                f"  server {r['server_us']:.1f} us/op")
    return results


def keep(results, key, r):
    old = results.get(key)
    r["rounds"] = (old["rounds"] if old else []) + [r["ops"]]
    if not old or r["ops"] > old["ops"]:
        results[key] = r
    else:
        old["rounds"] = r["rounds"]


def sizes(cfg, db):
    v = psql(cfg, db, "SELECT pg_relation_size('cache_entries'), pg_indexes_size('cache_entries'),"
                      " pg_total_relation_size('cache_entries');").split("|")
    return dict(table=int(v[0]), indexes=int(v[1]), total=int(v[2]))


def phase_plans(cfg, log):
    """EXPLAIN (ANALYZE, BUFFERS) of the plain SQL statements, as prepared
    generic plans (what pgbench -M prepared runs after five executions)."""
    out = {}
    for op in ("get", "set", "exists"):
        stmt = STMT[("plain", op)].rstrip(";").replace(":id", "$1").replace(":val", "$2")
        nargs = 2 if ":val" in STMT[("plain", op)] else 1
        types = "(text, text)" if nargs == 2 else "(text)"
        args = "('4242', '" + VALUE + "')" if nargs == 2 else "('4242')"
        sql = (f"SET plan_cache_mode = force_generic_plan; PREPARE q{types} AS {stmt};"
               f" EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE q{args};")
        if op == "set":
            sql = "BEGIN; " + sql + " ROLLBACK;"
        out[op] = psql(cfg, "bench_ext", sql)
    return out


def phase_scaling(cfg, log):
    out = []
    loaded = 0
    c = cfg.scale_clients
    for n in cfg.scale:
        t = time.monotonic()
        preload(cfg, "bench_scale", loaded + 1, n)
        load_s = time.monotonic() - t
        loaded = n
        sz = sizes(cfg, "bench_scale")
        row = dict(keys=n, load_s=load_s, **sz)
        for name, impl, op in (("get", "ext", "get"), ("set", "ext", "set"), ("plain get", "plain", "get")):
            r = pgbench(cfg, "bench_scale", [(script_for(cfg, impl, op), 1)], c, dur=cfg.dur, nkeys=n)
            row[name] = r
            log(f"scaling {n:>8d} keys  {name:9s} {r['ops']:10.0f} ops/s  p99 {r['p99_ms']:.3f} ms"
                f"  server {r['server_us']:.1f} us/op")
        out.append(row)
    psql(cfg, "postgres", "DROP DATABASE bench_scale;")
    return out


def phase_churn(cfg, log):
    db = "bench_churn"
    stat_sql = ("SELECT n_tup_upd, n_tup_hot_upd, n_dead_tup, n_live_tup, autovacuum_count"
                " FROM pg_stat_user_tables WHERE relname = 'cache_entries';")

    def stats():
        time.sleep(0.6)  # backends flush their statistics as they exit
        v = [int(x) for x in psql(cfg, db, "SELECT pg_stat_force_next_flush();" + stat_sql).split("|")]
        return dict(upd=v[0], hot=v[1], dead=v[2], live=v[3], autovacuum=v[4])

    before_sz = sizes(cfg, db)
    before = stats()
    script = write_script(cfg, "churn", "\\set id random(1, :nkeys)\n\\set ttl random(60, 86400)\n"
                                        f"SELECT cache_set({KEY}, :val::text, :ttl);\n")
    c = cfg.churn_clients
    progress = 1 if cfg.churn <= 200_000 else 5
    t = time.monotonic()
    r = pgbench(cfg, db, [(script, 1)], c, transactions=cfg.churn, progress=progress, log=False)
    wall = time.monotonic() - t
    after_sz = sizes(cfg, db)
    after = stats()
    for _ in range(20):  # statistics arrive asynchronously
        if after["upd"] - before["upd"] >= r["tx"]:
            break
        after = stats()
    upd = after["upd"] - before["upd"]
    hot = after["hot"] - before["hot"]
    prog = r["progress"][1:-1] if len(r["progress"]) > 4 else r["progress"]
    k = max(1, len(prog) // 5)
    res = dict(overwrites=r["tx"], clients=c, wall_s=wall, ops=r["ops"], server_us=r["server_us"],
               upd=upd, hot=hot, hot_ratio=hot / upd if upd else float("nan"),
               before=before_sz, after=after_sz, stats=after,
               start_tps=sum(prog[:k]) / k if prog else float("nan"),
               end_tps=sum(prog[-k:]) / k if prog else float("nan"), progress_s=progress,
               intervals=len(prog), series=r["progress"])
    log(f"churn: {r['tx']} overwrites in {wall:.1f} s, HOT {hot}/{upd} = {res['hot_ratio']:.3f},"
        f" size {before_sz['total']} -> {after_sz['total']} bytes,"
        f" {res['start_tps']:.0f} -> {res['end_tps']:.0f} ops/s")
    if upd < r["tx"] * 0.99:
        log(f"warning: pg_stat_user_tables counted {upd} updates for {r['tx']} overwrites")
    return res


def ext_functions(cfg):
    rows = psql(cfg, "bench_ext",
                "SELECT p.proname, p.pronargs, p.pronargdefaults, pg_get_function_arguments(p.oid),"
                " pg_get_function_result(p.oid)"
                " FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid"
                " JOIN pg_extension e ON e.oid = d.refobjid AND d.refclassid = 'pg_extension'::regclass"
                " WHERE e.extname = 'fastpgcache' AND p.proname IN ('cache_mget', 'cache_mset');")
    fns = {}
    for line in rows.splitlines():
        name, nargs, ndef, args, result = line.split("|")
        fns[name] = dict(nargs=int(nargs), ndef=int(ndef), args=args, result=result)
    return fns


def batch_scripts(cfg, impl, batch, fns):
    sets = "".join(f"\\set k{i} random(1, :nkeys)\n" for i in range(batch))
    keys = ", ".join(f"'key:' || :k{i}" for i in range(batch))
    vals = ", ".join(":val" for _ in range(batch))
    out = {}
    out["mget"] = write_script(cfg, f"{impl}_mget_{batch}",
                               sets + f"SELECT * FROM cache_mget(ARRAY[{keys}]);\n")
    if "cache_mset" in fns:
        f = fns["cache_mset"]
        extra = ", NULL::integer" if f["nargs"] - f["ndef"] >= 3 else ""
        out["mset"] = write_script(cfg, f"{impl}_mset_{batch}",
                                   sets + f"SELECT cache_mset(ARRAY[{keys}], ARRAY[{vals}]::text[]{extra});\n")
    return out


def phase_batch(cfg, log):
    fns = ext_functions(cfg)
    if "cache_mget" not in fns:
        log("batch: skipped: cache_mget not available")
        return dict(skipped="cache_mget not available in the extension", fns=fns)
    c = cfg.batch_clients
    if (c, 1) not in getattr(cfg, "redis_n", {}):
        redis_calibrate(cfg, [c])
    rows = []
    for b in (10, 100):
        for impl, db in (("ext", "bench_ext"), ("fallback", "bench_fb")):
            scripts = batch_scripts(cfg, impl, b, fns if impl == "ext" else
                                    dict(cache_mset=dict(nargs=3, ndef=1)))
            for op, path in scripts.items():
                # concurrent batches of random keys can deadlock unless the
                # implementation locks rows in a consistent order: retry, count
                r = pgbench(cfg, db, [(path, 1)], c, dur=cfg.dur, ops_per_tx=b, max_tries=1000)
                rows.append(dict(impl=LABEL[impl], op=f"cache_{op}", batch=b, r=r))
                log(f"batch {LABEL[impl]:18s} {op} x{b:<3d} {r['ops']:10.0f} keys/s"
                    f"  ({r['retried']} calls retried after deadlocks, {r['retries']} retries)")
        keys = ["key:__rand_int__"] * b
        pairs = []
        for _ in range(b):
            pairs += ["key:__rand_int__", VALUE]
        n = max(2000, cfg.redis_n[(c, 1)] * 8 // b)
        for op, kw in (("MGET", dict(command=["MGET"] + keys, n=n, keys_per_cmd=b)),
                       ("MSET", dict(command=["MSET"] + pairs, n=n, keys_per_cmd=b)),
                       (f"GET, pipeline of {b}", dict(test="get", pipeline=b, n=n * b)),
                       (f"SET, pipeline of {b}", dict(test="set", pipeline=b, n=n * b))):
            r = redis_bench(cfg, c, **kw)
            rows.append(dict(impl="Redis", op=op, batch=b, r=r))
            log(f"batch Redis {op} x{b:<3d} {r['ops']:10.0f} keys/s")
    return dict(rows=rows, fns=fns)


# --------------------------------------------------------------------------
# Profiling: instructions per call, counted by callgrind on the backend
# --------------------------------------------------------------------------

def callgrind_total(path):
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    return None


def is_backend(path):
    """A complete callgrind output file of a backend (one that ran PostgresMain)."""
    if callgrind_total(path) is None:
        return False
    with open(path, errors="replace") as f:
        return any("PostgresMain" in line for line in f)


def phase_profile(cfg, log):
    if not shutil.which("valgrind"):
        raise BenchError("--profile needs valgrind")
    data = os.path.join(cfg.work, "pg", "data")
    cg = os.path.join(cfg.work, "callgrind")
    os.makedirs(cg, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(cg, "postgres", "postgres")
    run(as_pg(["pg_ctl", "-D", data, "-m", "fast", "-w", "stop"]))
    pgbin = os.path.dirname(shutil.which("pg_ctl"))  # run.sh's private install, if any
    # Only what a backend does in PostgresMain is counted: not the postmaster's
    # start-up that forked children inherit, not the background processes.
    vg = subprocess.Popen(as_pg(["valgrind", "--tool=callgrind", "--trace-children=no",
                                 "--collect-atstart=no", "--toggle-collect=PostgresMain",
                                 f"--callgrind-out-file={cg}/callgrind.out.%p",
                                 os.path.join(pgbin, "postgres"), "-D", data,
                                 "-c", "autovacuum=off", "-c", "shared_buffers=256MB"]),
                          stdout=subprocess.DEVNULL, stderr=open(os.path.join(cfg.work, "valgrind.log"), "w"))
    try:
        for _ in range(600):
            if run(["pg_isready", "-h", "127.0.0.1", "-p", str(cfg.pg_port)], check=False).returncode == 0:
                break
            time.sleep(0.5)
        else:
            raise BenchError("postgres under valgrind did not start")
        for db in ("bench_ext", "bench_fb"):  # builds each database's relcache init file
            psql(cfg, db, "SELECT 1;")
        n1, n2 = cfg.profile_n
        out = []
        cases = [("select1", "get"), ("ext", "get"), ("ext", "set"), ("ext", "exists"),
                 ("fallback", "get"), ("fallback", "set"), ("plain", "get"), ("plain", "set")]
        files = {}
        for impl, op in cases:
            tot = []
            for n in (n1, n2):
                seen = set(os.listdir(cg))
                cmd = ["pgbench", "-n", "-M", "prepared", "-h", "127.0.0.1", "-p", str(cfg.pg_port),
                       "-U", "postgres", "-c", "1", "-t", str(n), "-D", f"nkeys={cfg.keys}",
                       "-D", f"val={VALUE}", "-f", script_for(cfg, impl, op), DB[impl]]
                p = run(cmd, check=False)
                if p.returncode != 0 or re.search(r"\berror\b", p.stderr, re.I):
                    raise BenchError(f"pgbench under callgrind failed: {p.stderr[-1500:]}")
                new = None
                for _ in range(600):
                    time.sleep(0.5)
                    fresh = [f for f in os.listdir(cg) if f not in seen]
                    done = [f for f in fresh if is_backend(os.path.join(cg, f))]
                    if done and len(done) == len(fresh):
                        # pgbench's backend is the last one forked
                        new = os.path.join(cg, max(done, key=lambda f: int(f.rsplit(".", 1)[1])))
                        break
                if not new:
                    raise BenchError("no callgrind output from the backend")
                tot.append(callgrind_total(new))
                files[(impl, op, n)] = new
            per_op = (tot[1] - tot[0]) / (n2 - n1)
            out.append(dict(impl=impl, op=op, ir=per_op))
            log(f"callgrind {LABEL[impl]:18s} {op:6s} {per_op:10.0f} instructions per transaction")
        annotations = {}
        for impl, op in (("ext", "get"), ("ext", "set")):
            p = run(["callgrind_annotate", "--inclusive=yes", "--threshold=99",
                     files[(impl, op, n2)]], check=False)
            annotations[f"{impl} {op} inclusive"] = top_lines(p.stdout, 30)
            p = run(["callgrind_annotate", "--threshold=99", files[(impl, op, n2)]], check=False)
            annotations[f"{impl} {op} self"] = top_lines(p.stdout, 25)
        keep_dir = os.path.join(cfg.root, "bench", "results", "callgrind")
        os.makedirs(keep_dir, exist_ok=True)
        for (impl, op, n), f in files.items():
            if n == n2:
                shutil.copy(f, os.path.join(keep_dir, f"callgrind.{impl}_{op}.out"))
        return dict(rows=out, n=(n1, n2), annotations=annotations)
    finally:
        run(as_pg(["pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "300", "stop"]), check=False)
        try:
            vg.wait(timeout=60)
        except subprocess.TimeoutExpired:
            vg.kill()


def top_lines(text, n):
    lines = text.splitlines()
    for i, l in enumerate(lines):
        if re.match(r"^-+$", l) and i + 1 < len(lines) and "file:function" in lines[i + 1]:
            body = [x for x in lines[i + 3:] if x.strip()]
            return "\n".join([lines[i + 1]] + body[:n])
    return "\n".join(lines[:n])


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

def fmt_ops(x):
    return "-" if x is None or x != x else f"{x:,.0f}"


def fmt_ms(x):
    return "-" if x is None or x != x else f"{x:.3f}"


def fmt_ratio(x):
    return "-" if x is None or x != x else f"{x:.2f}x"


def fmt_us(x):
    return "-" if x is None or x != x else f"{x:.1f}"


def spread(r):
    """How far apart the runs of one workload were: (best - worst) / best."""
    rs = r.get("rounds") or []
    if len(rs) < 2:
        return "-"
    return f"{(max(rs) - min(rs)) / max(rs) * 100:.0f}%"


def mib(b):
    return f"{b / 1048576:.1f} MiB"


def ratio(a, b):
    return a / b if a and b else float("nan")


def machine_desc():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    return f"{model}, {os.cpu_count()} CPUs, {mem // 1024} GiB RAM, Linux {platform.release()}"


def report(cfg, res):
    L = []
    w = L.append

    def details(summary, text):
        """A collapsed code block."""
        L.extend([f"<details><summary>{summary}</summary>", "", "```", text, "```", "</details>", ""])

    main = res.get("main", {})
    w(f"# FastPgCache benchmark, {cfg.started:%Y-%m-%d %H:%M} UTC ({cfg.mode} run)")
    w("")
    w(f"- Machine: {machine_desc()}; load average before the run: {cfg.load_before}, after: {cfg.load_after}.")
    w(f"- Software: {cfg.pg_version}; extension fastpgcache {getattr(cfg, 'ext_version', '?')}"
      f" built from `{cfg.git}`; {cfg.redis_version}.")
    w(f"- Data: {cfg.keys:,} keys with 100-byte values, preloaded; random keys over all of them."
      " PostgreSQL: `shared_buffers = 512MB`, `fsync = off`"
      + (", `shared_preload_libraries = 'fastpgcache'`" if cfg.preload else "")
      + ", otherwise defaults; Redis: no persistence.")
    w(f"- Clients: `pgbench -M prepared -h 127.0.0.1 -j min(clients,2)`, {cfg.dur} s per run;"
      f" `redis-benchmark -h 127.0.0.1 -d 100 -r {cfg.keys}` (single-threaded: its `--threads` mode"
      " times runs too coarsely)."
      f" Each workload ran {cfg.rounds} time(s), interleaved with the others; the best run is shown.")
    w("- Side by side: the extension is in database `bench_ext` (schema `public`); the PL/pgSQL fallback"
      " (`fallback/fastpgcache_fallback.sql`, which always uses schema `public`) is in database `bench_fb`"
      " of the same cluster; plain SQL runs prepared statements directly on the extension's"
      " `cache_entries` table in `bench_ext`, computing the key hash with `sha256()` in the statement.")
    w("- Columns: latency is per pgbench transaction / Redis request (for pipelined rows: per round trip"
      " of 10 operations); p99 from pgbench's per-transaction log. Server CPU/op: utime+stime of the"
      " postmaster and all its children from `/proc` (Redis: its process), divided by operations."
      " Client CPU/op: pgbench / redis-benchmark. Other CPU: share of the machine used by"
      " everything else during the run (other people's builds and tests), a noise indicator."
      " Spread of runs: (best - worst) / best over the runs of that workload.")
    w("")
    if main:
        sel = {c: main[("select1", "get", c, 1)]["ops"] for c in cfg.clients}
        red = {(op, c): main[("redis", op, c, 1)]["ops"] for c in cfg.clients for op in OPS}
        w("## One operation per round trip")
        w("")
        w("| implementation | operation | clients | ops/s | avg ms | p99 ms | x SELECT 1 | x Redis |"
          " server CPU us/op | client CPU us/op | other CPU % | spread of runs |")
        w("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for c in cfg.clients:
            rows = [("select1", "get")] + [(i, op) for i in ("ext", "fallback", "plain") for op in OPS] \
                + [("redis", op) for op in OPS]
            for impl, op in rows:
                r = main.get((impl, op, c, 1))
                if not r:
                    continue
                rr = red.get(("get" if impl == "select1" else op, c))
                name = LABEL[impl] + (" (derived)" if r.get("derived") else "")
                bold = "**" if impl == "ext" else ""
                w(f"| {bold}{name}{bold} | {op_label(impl, op)} | {c} | {bold}{fmt_ops(r['ops'])}{bold} |"
                  f" {fmt_ms(r['avg_ms'])} | {fmt_ms(r['p99_ms'])} | {fmt_ratio(ratio(r['ops'], sel[c]))} |"
                  f" {fmt_ratio(ratio(r['ops'], rr))} | {fmt_us(r['server_us'])} | {fmt_us(r['client_us'])} |"
                  f" {r['other_pct']:.0f} | {spread(r)} |")
        w("")
        w("Redis has no 90/10 mix in redis-benchmark: its row is derived from the GET and SET runs"
          " (harmonic mean of ops/s weighted 0.9/0.1; no p99). Redis keys are `key:%012d`, PostgreSQL keys"
          " `key:<n>`.")
        w("")
        w(f"## {PIPE} operations pipelined per round trip")
        w("")
        w("pgbench `\\startpipeline` ... `\\endpipeline` with 10 statements (prepared);"
          " `redis-benchmark -P 10`. ops/s counts operations, not round trips.")
        w("")
        w("| implementation | operation | clients | ops/s | avg ms / round trip | p99 ms | x SELECT 1 | x Redis |"
          " server CPU us/op | client CPU us/op | other CPU % | spread of runs |")
        w("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for c in cfg.pipe_clients:
            s1 = main.get(("select1", "get", c, PIPE), {}).get("ops")
            for impl, op in PIPE_OPS + [("redis", "get"), ("redis", "set")]:
                r = main.get((impl, op, c, PIPE))
                if not r:
                    continue
                rr = main.get(("redis", "get" if impl == "select1" else op, c, PIPE), {}).get("ops")
                bold = "**" if impl == "ext" else ""
                w(f"| {bold}{LABEL[impl]}{bold} | {op_label(impl, op)} | {c} | {bold}{fmt_ops(r['ops'])}{bold} |"
                  f" {fmt_ms(r['avg_ms'])} | {fmt_ms(r['p99_ms'])} | {fmt_ratio(ratio(r['ops'], s1))} |"
                  f" {fmt_ratio(ratio(r['ops'], rr))} | {fmt_us(r['server_us'])} | {fmt_us(r['client_us'])} |"
                  f" {r['other_pct']:.0f} | {spread(r)} |")
        w("")
        w("## First measurement (issue 3): cache_get / cache_set against SELECT 1 and PL/pgSQL")
        w("")
        w("| clients | SELECT 1 ops/s | cache_get ops/s (x SELECT 1) | PL/pgSQL get (x SELECT 1) |"
          " cache_set ops/s (x SELECT 1) | PL/pgSQL set (x SELECT 1) |")
        w("|--:|--:|--:|--:|--:|--:|")
        for c in cfg.clients:
            cell = lambda i, o: (f"{fmt_ops(main[(i, o, c, 1)]['ops'])} "
                                 f"({fmt_ratio(ratio(main[(i, o, c, 1)]['ops'], sel[c]))})")
            w(f"| {c} | {fmt_ops(sel[c])} | {cell('ext', 'get')} | {cell('fallback', 'get')} |"
              f" {cell('ext', 'set')} | {cell('fallback', 'set')} |")
        w("")
        w("## Targets of issue 6")
        w("")
        tc = 8 if 8 in cfg.clients else cfg.clients[-1]
        g = lambda i, o: main[(i, o, tc, 1)]["ops"]
        tg = ratio(g("ext", "get"), sel[tc])
        ts = ratio(g("ext", "set"), sel[tc])
        w(f"Throughput ratios measured at {tc} clients in this run. The CPU column is a cross-check"
          " that other people's load on the machine disturbs less: the ratio of CPU time per operation"
          " (server + client) of the two workloads, i.e. the throughput ratio a CPU-bound machine"
          " would give.")
        w("")
        w("| target | measured (throughput) | by CPU per operation | met |")
        w("|---|---|---|---|")
        yes = lambda b: "yes" if b else "**no**"
        cpu = lambda i, o: main[(i, o, tc, 1)]["server_us"] + main[(i, o, tc, 1)]["client_us"]
        cg = ratio(cpu("select1", "get"), cpu("ext", "get"))
        cs = ratio(cpu("select1", "get"), cpu("ext", "set"))
        w(f"| cache_get >= 0.7x SELECT 1 | {tg:.2f}x | {cg:.2f}x | {yes(tg >= 0.7)} |")
        w(f"| cache_set >= 0.4x SELECT 1 | {ts:.2f}x | {cs:.2f}x | {yes(ts >= 0.4)} |")
        for op in ("get", "set"):
            for other in ("fallback", "plain"):
                x = ratio(g("ext", op), g(other, op))
                xc = ratio(cpu(other, op), cpu("ext", op))
                w(f"| cache_{op} ahead of {LABEL[other]} | {x:.2f}x of it | {xc:.2f}x | {yes(x > 1)} |")
        ch = res.get("churn")
        if ch:
            w(f"| HOT ratio > 0.9 on churn | {ch['hot_ratio']:.3f} | | {yes(ch['hot_ratio'] > 0.9)} |")
            grow = ratio(ch["after"]["total"], ch["before"]["total"])
            w(f"| table + indexes <= 1.5x the size after the preload | {grow:.2f}x | | {yes(grow <= 1.5)} |")
        w("")
    if res.get("plans"):
        w("## Plans of the plain SQL statements")
        w("")
        w("`EXPLAIN (ANALYZE, BUFFERS)` of each statement as a generic prepared plan, on the preloaded table.")
        w("")
        for op, text in res["plans"].items():
            details(f"plain SQL {op}", text)
    sc = res.get("scaling")
    if sc:
        w(f"## Scaling: the same get/set at more keys ({cfg.scale_clients} clients)")
        w("")
        s1 = main.get(("select1", "get", cfg.scale_clients, 1), {}).get("ops")
        if s1:
            w(f"x SELECT 1: against `SELECT 1` at {cfg.scale_clients} clients in the main phase.")
            w("")
        w("| keys | load s | table | indexes | get ops/s | x SELECT 1 | get p99 ms | get server us/op |"
          " set ops/s | x SELECT 1 | set p99 ms | set server us/op | plain SQL get ops/s |")
        w("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for row in sc:
            gg, ss, pp = row["get"], row["set"], row["plain get"]
            w(f"| {row['keys']:,} | {row['load_s']:.1f} | {mib(row['table'])} | {mib(row['indexes'])} |"
              f" {fmt_ops(gg['ops'])} | {fmt_ratio(ratio(gg['ops'], s1))} | {fmt_ms(gg['p99_ms'])} |"
              f" {fmt_us(gg['server_us'])} |"
              f" {fmt_ops(ss['ops'])} | {fmt_ratio(ratio(ss['ops'], s1))} | {fmt_ms(ss['p99_ms'])} |"
              f" {fmt_us(ss['server_us'])} |"
              f" {fmt_ops(pp['ops'])} |")
        w("")
    ch = res.get("churn")
    if ch:
        w(f"## Churn: {ch['overwrites']:,} overwrites of {cfg.keys:,} keys with random ttls"
          f" ({ch['clients']} clients, `cache_set(key, value, ttl)`, ttl 60-86400 s)")
        w("")
        b, a = ch["before"], ch["after"]
        w("| | after preload | after churn | growth |")
        w("|---|--:|--:|--:|")
        for k, name in (("table", "table"), ("indexes", "indexes"), ("total", "total (with TOAST, FSM, VM)")):
            w(f"| {name} | {mib(b[k])} | {mib(a[k])} | {fmt_ratio(ratio(a[k], b[k]))} |")
        w("")
        st = ch["stats"]
        w(f"- HOT updates: {ch['hot']:,} of {ch['upd']:,} = **{ch['hot_ratio']:.3f}**"
          f" (`n_tup_hot_upd / n_tup_upd`); dead tuples at the end: {st['dead']:,};"
          f" autovacuum runs: {st['autovacuum']}.")
        w(f"- Throughput: {fmt_ops(ch['ops'])} ops/s overall; first fifth of the run"
          f" {fmt_ops(ch['start_tps'])} ops/s, last fifth {fmt_ops(ch['end_tps'])} ops/s"
          f" ({fmt_ratio(ratio(ch['end_tps'], ch['start_tps']))}; of {ch['intervals']} intervals of"
          f" {ch['progress_s']} s, leaving out the first and the last, when clients connect and finish);"
          f" {ch['wall_s']:.0f} s in all; server CPU {fmt_us(ch['server_us'])} us/op.")
        w(f"- ops/s per {ch['progress_s']} s interval: " + ", ".join(f"{x:,.0f}" for x in ch["series"]) + ".")
        w("")
    bt = res.get("batch")
    if bt is not None:
        w("## Batches")
        w("")
        if bt.get("skipped"):
            w(f"skipped: {bt['skipped']}.")
        else:
            w(f"{cfg.batch_clients} clients; keys per second. Extension functions found: " +
              "; ".join(f"`{n}({f['args']}) returns {f['result']}`" for n, f in bt["fns"].items()) + ".")
            w("")
            w("| implementation | operation | keys per call | keys/s | avg ms per call | p99 ms |"
              " server CPU us/key | calls retried after a deadlock |")
            w("|---|---|--:|--:|--:|--:|--:|--:|")
            for row in bt["rows"]:
                r = row["r"]
                retried = f"{r['retried']:,} of {r['tx']:,}" if "retried" in r else "-"
                w(f"| {row['impl']} | {row['op']} | {row['batch']} | {fmt_ops(r['ops'])} | {fmt_ms(r['avg_ms'])} |"
                  f" {fmt_ms(r['p99_ms'])} | {fmt_us(r['server_us'])} | {retried} |")
            w("")
            w("pgbench runs the batch calls with `--max-tries 1000`: a call that fails with a deadlock"
              " (concurrent batches locking the same keys in different orders) is retried and counted;"
              " each deadlock costs `deadlock_timeout` (1 s) of waiting.")
        w("")
    pr = res.get("profile")
    if pr:
        w("## Instructions per transaction (callgrind, one backend, pgbench -c 1 -M prepared)")
        w("")
        w(f"Difference between runs of {pr['n'][1]} and {pr['n'][0]} transactions, divided by"
          f" {pr['n'][1] - pr['n'][0]}: the steady-state cost of one transaction in the backend,"
          " protocol included, connection and plan preparation excluded.")
        w("")
        w("| implementation | operation | instructions | x SELECT 1 |")
        w("|---|---|--:|--:|")
        base = next(r["ir"] for r in pr["rows"] if r["impl"] == "select1")
        for r in pr["rows"]:
            w(f"| {LABEL[r['impl']]} | {op_label(r['impl'], r['op'])} | {r['ir']:,.0f} | {r['ir'] / base:.2f} |")
        w("")
        for name, text in pr["annotations"].items():
            details(f"callgrind_annotate: {name}", text)
    if res.get("errors"):
        w("## Errors")
        w("")
        for e in res["errors"]:
            w("```")
            w(e)
            w("```")
        w("")
    w(f"Total time: {cfg.elapsed / 60:.1f} min.")
    return "\n".join(L) + "\n"


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=MODES, default="full")
    ap.add_argument("--work", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--pg-port", type=int, required=True)
    ap.add_argument("--postmaster-pid", type=int, required=True)
    ap.add_argument("--redis-port", type=int, required=True)
    ap.add_argument("--redis-pid", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--preload", action="store_true")
    ap.add_argument("--rounds", type=int, help="override the mode's rounds per workload")
    ap.add_argument("--dur", type=int, help="override the mode's seconds per pgbench run")
    ap.add_argument("--phases", default="", help="comma-separated subset of main,scaling,churn,batch,profile")
    args = ap.parse_args()
    cfg = Cfg()
    cfg.__dict__.update(vars(args))
    cfg.__dict__.update(MODES[args.mode])
    if args.rounds:
        cfg.rounds = args.rounds
    if args.dur:
        cfg.dur = args.dur
    cfg.started = datetime.datetime.utcnow()
    cfg.load_before = open("/proc/loadavg").read().split()[:3]
    t0 = time.monotonic()

    def log(msg):
        print(f"[{time.monotonic() - t0:7.1f}s] {msg}", flush=True)

    cfg.pg_version = psql(cfg, "postgres", "SELECT version();").split(" on ")[0]
    cfg.redis_version = "Redis " + run(["redis-server", "--version"]).stdout.split()[2].replace("v=", "")
    g = run(["git", "-C", cfg.root, "describe", "--always", "--dirty"], check=False).stdout.strip()
    cfg.git = g or "?"
    res = {"errors": []}
    phases = [("setup", setup), ("plans", phase_plans), ("main", phase_main), ("scaling", phase_scaling),
              ("churn", phase_churn), ("batch", phase_batch)]
    if args.profile:
        phases.append(("profile", phase_profile))
    if args.phases:
        want = set(args.phases.split(",")) | {"setup"}
        phases = [p for p in phases if p[0] in want]
    failed = False
    for name, fn in phases:
        log(f"== phase {name}")
        try:
            r = fn(cfg, log)
            if name != "setup":
                res[name] = r
        except (BenchError, subprocess.TimeoutExpired) as e:
            failed = True
            log(f"phase {name} FAILED: {e}")
            res["errors"].append(f"phase {name}: {e}")
            if name == "setup":
                break
    cfg.elapsed = time.monotonic() - t0
    cfg.load_after = open("/proc/loadavg").read().split()[:3]
    try:
        import json
        with open(os.path.splitext(cfg.out)[0] + ".json", "w") as f:
            json.dump({"mode": cfg.mode, "results": {
                k: ({"|".join(map(str, kk)): vv for kk, vv in v.items()} if k == "main" else v)
                for k, v in res.items()}}, f, indent=1, default=str)
    except Exception as e:  # the raw numbers are a convenience, the report is what counts
        log(f"could not write the raw results: {e!r}")
    try:
        text = report(cfg, res)
    except Exception as e:  # a partial run still gets a report of its errors
        failed = True
        text = f"# FastPgCache benchmark ({cfg.mode} run): report failed: {e!r}\n\n" + \
            "\n".join(res["errors"]) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(cfg.out)), exist_ok=True)
    with open(cfg.out, "w") as f:
        f.write(text)
    print()
    print(text)
    print(f"report written to {cfg.out}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
