#!/usr/bin/env python3
"""The three measurements of issue 11 (bounded size), run by measure.sh.

  limit     8 pgbench clients write new keys without a ttl for --dur seconds
            with no limit, with max_entries = 100000 and with max_size = 64MB
            (1 kB values, and 4 kB values that go to TOAST); the sampler
            records the rows, cache_stats() and the table's size on disk every
            second. Preloaded cluster, default worker and autovacuum settings.
  hitratio  seeded traces replayed cache-aside at 1% and 10% of the key space:
            FastPgCache (replay_pg --mode combined, max_entries = capacity,
            allkeys-lru; preloaded, and without preloading in the full run)
            beside the simulator's exact LRU and FIFO (and SIEVE, S3-FIFO, a
            model of the built design) over the same trace, and redis-server
            allkeys-lru with maxmemory calibrated to the same number of keys.
  cost      cache_get and cache_set throughput (pgbench, 8 clients) on two
            preloaded clusters, one with max_entries = the keys loaded (full:
            every new key evicts one) and one without a limit; rounds
            alternate between them; medians and ratios.

Standard library only; PostgreSQL through psql/pgbench, clusters through
scripts/lib.sh. Writes the markdown report to --out. Speed never fails it;
a failing command does.
"""
import argparse
import csv
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--root", required=True)
ap.add_argument("--work", required=True)
ap.add_argument("--tools", required=True, help="directory of the built programs")
ap.add_argument("--traces", required=True, help="directory of the traces")
ap.add_argument("--mode", default="full", choices=["quick", "full"])
ap.add_argument("--phases", default="limit,hitratio,cost")
ap.add_argument("--dur", type=int, default=None, help="seconds of writing per limit run")
ap.add_argument("--rounds", type=int, default=None, help="rounds of the cost phase")
ap.add_argument("--round-dur", type=int, default=None, help="seconds per cost run")
ap.add_argument("--caps", default=None, help="capacities in % of the key space, e.g. 1,10")
ap.add_argument("--trace-names", default=None, help="e.g. zipf0.8,zipf1.0,zipf1.2,scan")
ap.add_argument("--degraded", default=None, choices=["yes", "no"], help="also replay without preloading")
ap.add_argument("--out", required=True)
ap.add_argument("--command", default="bash bench/eviction/measure.sh")
A = ap.parse_args()

QUICK = A.mode == "quick"
PHASES = [p for p in A.phases.split(",") if p]
DUR = A.dur or (20 if QUICK else 60)
TAIL = 10  # seconds sampled after the writers stop
ROUNDS = A.rounds or (3 if QUICK else 5)
ROUND_DUR = A.round_dur or (10 if QUICK else 20)
CAPS = [float(c) for c in (A.caps or ("1" if QUICK else "1,10")).split(",")]
TRACES = (A.trace_names or "zipf0.8,zipf1.0,zipf1.2,scan").split(",")
DEGRADED = (A.degraded or ("no" if QUICK else "yes")) == "yes"
CLIENTS, THREADS = 8, 2
ENTRIES_LIMIT = 100000
SIZE_LIMIT_MB = 64
COST_KEYS = 100000
EVICTION_MEMORY = 8 * 1024 * 1024  # fastpgcache.eviction_memory's default: counter slots

T0 = time.time()
RESULTS = {"phases": {}}


def log(msg):
    print(f"[{time.time() - T0:6.0f} s] {msg}", flush=True)


class Failed(Exception):
    pass


def run(cmd, check=True, capture=True, env=None, timeout=None):
    p = subprocess.run(cmd, stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE if capture else None,
                       text=True, env=env, timeout=timeout)
    if check and p.returncode != 0:
        raise Failed(f"{cmd if isinstance(cmd, str) else ' '.join(cmd)} failed ({p.returncode}):\n"
                     f"{(p.stdout or '')[-2000:]}{(p.stderr or '')[-2000:]}")
    return p


def lib(func, *args):
    """A function of scripts/lib.sh (cluster_start, cluster_stop, free_port)."""
    script = f'source "{A.root}/scripts/lib.sh"; {func} "$@"'
    return run(["bash", "-c", script, "lib", *args]).stdout.strip()


class Cluster:
    def __init__(self, name, preload):
        self.name, self.preload = name, preload
        self.dir = os.path.join(A.work, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = None
        self.conf = {}

    def lines(self):
        out = ["log_line_prefix = '%m [%p] '"]
        if self.preload:
            out.append("shared_preload_libraries = 'fastpgcache'")
        for k, v in self.conf.items():
            out.append(f"{k} = {v}")
        return out

    def start(self, conf=None):
        """Starts (or restarts) the cluster with these fastpgcache settings."""
        self.conf = dict(conf or {})
        for attempt in range(5):
            if self.port is None:
                self.port = lib("free_port")
            try:
                lib("cluster_start", self.dir, self.port, *self.lines())
                return
            except Failed as e:
                if "Address already in use" not in str(e) or attempt == 4:
                    raise
                self.port = None  # taken meanwhile by someone else's test

    def stop(self):
        if os.path.exists(os.path.join(self.dir, "data", "postmaster.pid")):
            lib("cluster_stop", self.dir)

    @property
    def sock(self):
        return os.path.join(self.dir, "sock")

    def conninfo(self, db="postgres"):
        return f"host={self.sock} port={self.port} user=postgres dbname={db}"

    def q(self, sql, db="postgres"):
        p = run(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-h", self.sock, "-p", str(self.port), "-U", "postgres",
                 "-d", db, "-c", sql])
        return p.stdout.strip()

    def row(self, sql):
        return self.q(sql).split("|")

    def fresh_extension(self):
        """A new, empty cache table (DROP/CREATE EXTENSION). Call before
        start(): the restart then resets shared memory (access counters, the
        counts) and the worker counts the new table at once."""
        self.q("DROP EXTENSION IF EXISTS fastpgcache; CREATE EXTENSION fastpgcache")

    def wait_counted(self, entries=0, timeout=30):
        """With a limit set, the worker counts the entries when it starts:
        waits until cache_stats() shows the count."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.q("SELECT coalesce(entries, -1) FROM cache_stats()") == str(entries):
                return
            time.sleep(0.2)
        raise Failed(f"{self.name}: the worker did not count {entries} entries within {timeout} s")

    def stats(self):
        cols = ["hits", "misses", "sets", "evicted", "expired_by_eviction", "entries", "data_bytes"]
        vals = self.row(f"SELECT {', '.join(f'coalesce({c}, -1)' for c in cols)} FROM cache_stats()")
        return dict(zip(cols, (int(v) for v in vals)))

    def table(self):
        cols = ["rows", "total_bytes", "heap_bytes", "n_tup_upd", "n_tup_del", "vacuum_count", "autovacuum_count"]
        vals = self.row("SELECT (SELECT count(*) FROM cache_entries), pg_total_relation_size('cache_entries'),"
                        " pg_relation_size('cache_entries'), n_tup_upd, n_tup_del, vacuum_count, autovacuum_count"
                        " FROM pg_stat_user_tables WHERE relname = 'cache_entries'")
        return dict(zip(cols, (int(v) for v in vals)))

    def pgbench(self, script, dur, name):
        path = os.path.join(A.work, f"{name}.pgbench")
        with open(path, "w") as f:
            f.write(script)
        p = run(["pgbench", "-n", "-M", "prepared", "-h", self.sock, "-p", str(self.port), "-U", "postgres",
                 "-c", str(CLIENTS), "-j", str(THREADS), "-T", str(dur), "-f", path, "postgres"])
        out = p.stdout
        m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
        n = re.search(r"number of transactions actually processed: (\d+)", out)
        failed = re.search(r"number of failed transactions: (\d+)", out)
        if not m or not n:
            raise Failed(f"cannot parse pgbench output:\n{out[-1500:]}")
        if failed and int(failed.group(1)) > 0:
            raise Failed(f"pgbench: {failed.group(1)} failed transactions:\n{out[-1500:]}\n{p.stderr[-1500:]}")
        return {"tps": float(m.group(1)), "transactions": int(n.group(1))}


CLUSTERS = []


def cluster(name, preload):
    c = Cluster(name, preload)
    CLUSTERS.append(c)
    return c


def stop_all():
    for c in CLUSTERS:
        try:
            c.stop()
        except Exception as e:  # noqa: BLE001 - best effort on the way out
            print(f"stopping {c.name}: {e}", file=sys.stderr)


def other_cpu():
    """Load average of the last minute: to tell a noisy run from a slow one."""
    return os.getloadavg()[0]


# ------------------------------------------------------------------ limit

VALUES = {
    "100 B": "repeat('v', 100)",
    "1 kB": "repeat('v', 1000)",
    # 4 kB that pglz cannot compress: stored out of line in TOAST.
    "4 kB": "encode(gen_random_bytes(1024) || gen_random_bytes(1024) || gen_random_bytes(1024), 'base64')",
}


def write_script(value_sql):
    return ("\\set k random(1, 2000000000)\n"
            f"SELECT cache_set('w' || :client_id || ':' || :k, {value_sql});\n")


def read_samples(path):
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            rows.append({k: (float(v) if v not in ("", None) else None) for k, v in r.items()})
    return rows


def phase_limit():
    cl = cluster("limit", preload=True)
    cl.start()
    cl.q("CREATE EXTENSION IF NOT EXISTS pgcrypto")
    size_limit = SIZE_LIMIT_MB * 1024 * 1024
    runs = [
        ("no limit", {}, "100 B"),
        ("max_entries = 100000", {"fastpgcache.max_entries": ENTRIES_LIMIT}, "100 B"),
        ("no limit", {}, "1 kB"),
        (f"max_size = {SIZE_LIMIT_MB}MB", {"fastpgcache.max_size": f"'{SIZE_LIMIT_MB}MB'"}, "1 kB"),
        ("no limit", {}, "4 kB"),
        (f"max_size = {SIZE_LIMIT_MB}MB", {"fastpgcache.max_size": f"'{SIZE_LIMIT_MB}MB'"}, "4 kB"),
    ]
    out = []
    for i, (label, conf, value) in enumerate(runs):
        log(f"limit: {label}, {value} values, {CLIENTS} writers for {DUR} s")
        cl.fresh_extension()
        cl.start(conf)
        limited = bool(conf)
        if limited:
            cl.wait_counted(0)
        csv_path = os.path.join(A.work, f"limit-{i}.csv")
        cmd = [os.path.join(A.tools, "sampler"), "--conninfo", cl.conninfo(), "--duration", str(DUR + TAIL + 2)]
        if limited:
            cmd.append("--count")  # count(*) of a table of millions of rows would load the baseline
        sampler = subprocess.Popen(cmd + [csv_path])
        time.sleep(1.0)
        load0 = other_cpu()
        bench = cl.pgbench(write_script(VALUES[value]), DUR, f"limit-{i}")
        load1 = other_cpu()
        if sampler.wait(timeout=DUR + TAIL + 60) != 0:
            raise Failed("sampler failed")
        samples = read_samples(csv_path)
        st, tb = cl.stats(), cl.table()
        out.append({"label": label, "conf": conf, "value": value, "limited": limited, "bench": bench,
                    "samples": samples, "stats": st, "table": tb, "load": [load0, load1],
                    "entries_limit": ENTRIES_LIMIT if "fastpgcache.max_entries" in conf else None,
                    "size_limit": size_limit if "fastpgcache.max_size" in conf else None})
        log(f"    {bench['tps']:.0f} sets/s; rows {tb['rows']}, total size {tb['total_bytes'] / 1048576:.1f} MB,"
            f" evicted {st['evicted']}, vacuums {tb['vacuum_count']} + autovacuum {tb['autovacuum_count']}")
    cl.stop()
    RESULTS["phases"]["limit"] = out


# --------------------------------------------------------------- hitratio

def sim_lines(trace, cap, specs):
    p = run(["nice", "-n", "10", os.path.join(A.tools, "sim"), os.path.join(A.traces, trace), "--cap", str(cap), *specs])
    res = {}
    for r in csv.reader(p.stdout.splitlines()):
        res[r[2]] = {"hit_ratio": float(r[5]), "hits": int(r[4]), "requests": int(r[3])}
    return res


def start_redis():
    port = lib("free_port")
    d = os.path.join(A.work, "redis")
    os.makedirs(d, exist_ok=True)
    proc = subprocess.Popen(["redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", d, "--logfile", os.path.join(d, "redis.log"), "--daemonize", "no"])
    for _ in range(100):
        if run(["redis-cli", "-p", port, "ping"], check=False).stdout.strip() == "PONG":
            return proc, port
        time.sleep(0.1)
    proc.kill()
    raise Failed("redis-server did not start")


def replay_pg(cl, trace, cap):
    p = run(["nice", "-n", "10", os.path.join(A.tools, "replay_pg"), "--conninfo", cl.conninfo(), "--mode", "combined",
             "--cap", str(cap), os.path.join(A.traces, trace)])
    r = p.stdout.strip().split(",")
    return {"hits": int(r[3]), "hit_ratio": float(r[4]), "sets": int(r[5]), "seconds": float(r[6]),
            "rate": float(r[7]), "rows_mean": float(r[8]), "rows_max": int(r[9]), "rows_end": int(r[10])}


def phase_hitratio():
    meta = {}
    for line in open(os.path.join(A.traces, "zipf1.0.meta")):
        k, v = line.split()
        meta[k] = v
    keys, requests = int(meta["keys"]), int(meta["requests"])
    caps = [int(keys * c / 100) for c in CAPS]
    pre = cluster("hitratio", preload=True)
    pre.start()
    deg = None
    if DEGRADED:
        deg = cluster("hitratio-deg", preload=False)
        deg.start()
    redis, rport = start_redis()
    rversion = run(["redis-server", "--version"]).stdout.split(" sha=")[0].strip()
    out = []
    try:
        for trace in TRACES:
            for cap in caps:
                f = max(1, EVICTION_MEMORY // cap)
                model = f"fpc/bits=2/tag=6/f={f}/place=pgfsm"
                row = {"trace": trace, "cap": cap, "model_spec": model}
                row["sim"] = sim_lines(trace, cap, ["lru", "fifo", "sieve", "s3fifo", model])
                log(f"hitratio: {trace} cap {cap}: simulator LRU {100 * row['sim']['lru']['hit_ratio']:.2f}%")
                r = run(["nice", "-n", "10", os.path.join(A.tools, "replay_redis"), "--port", rport, "--cap", str(cap),
                         "--samples", "5", os.path.join(A.traces, trace)]).stdout.strip().split(",")
                row["redis"] = {"hit_ratio": float(r[5]), "mean": float(r[6]), "end": int(r[7]),
                                "maxmemory": int(r[8]), "seconds": float(r[10])}
                log(f"    Redis {100 * row['redis']['hit_ratio']:.2f}% (mean DBSIZE {row['redis']['mean']:.0f})")
                pre.fresh_extension()
                pre.start({"fastpgcache.max_entries": cap})
                pre.wait_counted(0)
                row["pg"] = replay_pg(pre, trace, cap)
                row["pg"].update(pre.stats())
                log(f"    FastPgCache {100 * row['pg']['hit_ratio']:.2f}% (mean {row['pg']['rows_mean']:.0f} entries,"
                    f" {row['pg']['rate']:.0f} requests/s)")
                if deg is not None:
                    deg.fresh_extension()
                    deg.start({"fastpgcache.max_entries": cap})
                    row["deg"] = replay_pg(deg, trace, cap)
                    log(f"    without preloading {100 * row['deg']['hit_ratio']:.2f}% (mean {row['deg']['rows_mean']:.0f})")
                # Exact LRU holding as many entries as each cache did on average.
                sizes = {round(row["pg"]["rows_mean"]), round(row["redis"]["mean"])}
                if deg is not None:
                    sizes.add(round(row["deg"]["rows_mean"]))
                row["lru_at"] = {}
                for n in sorted(sizes):
                    row["lru_at"][n] = sim_lines(trace, n, ["lru"])["lru"]["hit_ratio"]
                out.append(row)
    finally:
        redis.terminate()
        redis.wait()
    pre.stop()
    if deg is not None:
        deg.stop()
    RESULTS["phases"]["hitratio"] = {"rows": out, "keys": keys, "requests": requests, "redis_version": rversion}


# ------------------------------------------------------------------- cost

def phase_cost():
    off = cluster("cost-off", preload=True)
    on = cluster("cost-on", preload=True)
    off.start()
    on.start({"fastpgcache.max_entries": COST_KEYS})
    load = (f"SELECT count(cache_set('key:' || g, repeat('v', 100))) FROM generate_series(1, {COST_KEYS}) g")
    for c in (off, on):
        c.q("CREATE EXTENSION fastpgcache")
        c.q(load)
        c.q("VACUUM ANALYZE cache_entries")
    on.wait_counted(COST_KEYS)
    get = f"\\set k random(1, {COST_KEYS})\nSELECT cache_get('key:' || :k);\n"
    setnew = ("\\set k random(1, 2000000000)\n"
              "SELECT cache_set('new' || :client_id || ':' || :k, repeat('v', 100));\n")
    out = {"get": {"off": [], "on": []}, "set": {"off": [], "on": []}}
    for workload, script in (("get", get), ("set", setnew)):
        for r in range(ROUNDS):
            order = [("off", off), ("on", on)] if r % 2 == 0 else [("on", on), ("off", off)]
            for label, c in order:
                s0, t0 = c.stats(), c.table()
                load0 = other_cpu()
                b = c.pgbench(script, ROUND_DUR, f"cost-{workload}-{label}")
                s1, t1 = c.stats(), c.table()
                rec = {"tps": b["tps"], "round": r, "load": [load0, other_cpu()],
                       "hits": s1["hits"] - s0["hits"], "misses": s1["misses"] - s0["misses"],
                       "evicted": s1["evicted"] - s0["evicted"], "n_tup_upd": t1["n_tup_upd"] - t0["n_tup_upd"],
                       "rows": t1["rows"], "total_bytes": t1["total_bytes"]}
                out[workload][label].append(rec)
                log(f"cost: {workload} round {r + 1}/{ROUNDS} {label}: {b['tps']:.0f}/s"
                    f" (hits {rec['hits']}, misses {rec['misses']}, evicted {rec['evicted']}, rows {rec['rows']})")
    off.stop()
    on.stop()
    RESULTS["phases"]["cost"] = out


# ----------------------------------------------------------------- report

def pct(v):
    return "-" if v is None else f"{100 * v:.2f}"


def pts(v):
    return "-" if v is None else f"{100 * v:+.2f}"


def mb(v):
    return "-" if v is None else f"{v / 1048576:.1f}"


def report():
    L = []
    p = L.append
    today = datetime.date.today().isoformat()
    p(f"# Bounded size and eviction: the measurements of issue 11 ({A.mode} run, {today})")
    p("")
    p(f"Made by `{A.command}` on {platform.node() or 'this machine'} ({os.cpu_count()} cores; other jobs were running:"
      f" the load average is given per run), {int(time.time() - T0)} s in all. PostgreSQL "
      f"{run(['psql', '--version']).stdout.split()[2]}, the extension built from this checkout"
      f" (`git describe`: {GIT}), `pgbench -M prepared -c {CLIENTS} -j {THREADS}` over the Unix socket.")
    p("")
    lim = RESULTS["phases"].get("limit")
    if lim:
        report_limit(p, lim)
    hr = RESULTS["phases"].get("hitratio")
    if hr:
        report_hitratio(p, hr)
    cost = RESULTS["phases"].get("cost")
    if cost:
        report_cost(p, cost)
    return "\n".join(L) + "\n"


def window(samples, lo, hi):
    return [s for s in samples if lo <= s["t"] < hi]


def report_limit(p, runs):
    p("## 1. The limit holds under a write flood")
    p("")
    p(f"{CLIENTS} clients write new keys without a ttl (`cache_set('w<client>:<random>', value)`) as fast as they can"
      f" for {DUR} s; `sampler` reads the table every second over its own connection. One preloaded cluster with the"
      " default worker settings (`cleanup_interval` 1 s, `cleanup_max_time` 100 ms: the worker evicts after each"
      " cycle and runs VACUUM itself) and autovacuum at its defaults; each run starts from a new, empty table"
      " and a restarted server.")
    p("")
    p("| run | values | sets/s | vs no limit | rows at the end | max rows / limit | samples > 1.05 x limit |"
      " max data_bytes / limit | max size on disk | max size / limit | evicted | VACUUM worker + auto | load avg |")
    p("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    base = {}
    for r in runs:
        if not r["limited"]:
            base[r["value"]] = r["bench"]["tps"]
    for r in runs:
        ws = window(r["samples"], 1.0, 1.0 + DUR)
        tps = r["bench"]["tps"]
        ratio = "-" if not r["limited"] or r["value"] not in base else f"{tps / base[r['value']]:.2f}x"
        max_rows = over = "-"
        if r["entries_limit"]:
            counts = [s["rows"] for s in ws if s["rows"] is not None]
            lim = r["entries_limit"]
            full = [c for c in counts]
            max_rows = f"{max(counts) / lim:.3f}"
            over = f"{sum(1 for c in full if c > 1.05 * lim)} of {len(full)}"
        sizes = [s["total_bytes"] for s in ws]
        max_size = max(sizes) if sizes else None
        size_ratio = f"{max_size / r['size_limit']:.2f}" if r["size_limit"] and max_size else "-"
        data = [s["data_bytes"] for s in ws if s["data_bytes"] is not None]
        data_ratio = f"{max(data) / r['size_limit']:.3f}" if r["size_limit"] and data else "-"
        p(f"| {r['label']} | {r['value']} | {tps:,.0f} | {ratio} | {r['table']['rows']:,} | {max_rows} | {over} |"
          f" {data_ratio} | {mb(max_size)} MB | {size_ratio} | {r['stats']['evicted']:,} | {r['table']['vacuum_count']} +"
          f" {r['table']['autovacuum_count']} | {r['load'][0]:.1f}-{r['load'][1]:.1f} |")
    p("")
    p("Size on disk is `pg_total_relation_size('cache_entries')`: heap, TOAST table and index, the primary key index,"
      " free space and visibility maps. Rows are `count(*)` (only sampled in the limited runs: on the millions of"
      " rows of the unlimited ones it would load the baseline).")
    p("")
    # Time series: every 5 s (rows, entries, size).
    for r in runs:
        if not r["limited"]:
            continue
        ws = window(r["samples"], 0.0, 1.0 + DUR + TAIL)
        p(f"**{r['label']}, {r['value']} values**, every 5 s (writers from 1 s to {1 + DUR} s):")
        p("")
        p("| t (s) | rows | cache_stats entries | data_bytes (MB) | size on disk (MB) | heap | TOAST | index |"
          " dead rows (stats) | VACUUM worker + auto |")
        p("|---|---|---|---|---|---|---|---|---|---|")
        last = None
        for s in ws:
            t = s["t"]
            if last is not None and int(t) // 5 == int(last) // 5 and s is not ws[-1]:
                continue
            last = t
            def g(k):
                v = s[k]
                return "-" if v is None else f"{v:,.0f}"
            p(f"| {t:.0f} | {g('rows')} | {g('entries')} | {mb(s['data_bytes'])} | {mb(s['total_bytes'])} |"
              f" {mb(s['heap_bytes'])} | {mb(s['toast_bytes'])} | {mb(s['index_bytes'])} | {g('n_dead_tup')} |"
              f" {g('vacuum_count')} + {g('autovacuum_count')} |")
        p("")
        sizes = [(s["t"], s["total_bytes"]) for s in window(r["samples"], 1.0, 1.0 + DUR)]
        if r["size_limit"] and len(sizes) > 4:
            half = [v for t, v in sizes if t >= 1.0 + DUR / 2]
            first = [v for t, v in sizes if t < 1.0 + DUR / 2]
            p(f"Levelling off: the largest size in the first half of the run {mb(max(first))} MB, in the second half"
              f" {mb(max(half))} MB; at the end {mb(sizes[-1][1])} MB ({sizes[-1][1] / r['size_limit']:.2f} x the"
              " limit).")
            p("")


def report_hitratio(p, hr):
    rows = hr["rows"]
    p("## 2. Hit ratio")
    p("")
    p(f"Seeded traces of `traces.cpp` (seed 42), {hr['keys']:,} keys, {hr['requests']:,} requests each, replayed"
      " cache-aside (GET, and SET on a miss); hit ratios in percent over the whole trace, cold start included."
      " FastPgCache: `replay_pg --mode combined` (one statement per request, so the replay is exactly sequential,"
      " eviction included) against a preloaded server with `max_entries` = capacity and `allkeys-lru`, defaults"
      " otherwise (the worker evicts after each 1 s cycle, writers help when the cache is more than 1% over). "
      "\"mean\" is the entries it held, `count(*)` every 1% of the trace once it reached 95% of the capacity"
      " (replay_pg --cap). LRU, FIFO, SIEVE, S3-FIFO: the simulator (`sim.cpp`) over the same trace at exactly the"
      f" capacity. Redis: {hr['redis_version']}, `allkeys-lru`, `maxmemory-samples 5`, maxmemory calibrated to hold"
      " the capacity (`replay_redis`; mean DBSIZE given).")
    p("")
    has_deg = any("deg" in r for r in rows)
    head = "| trace | capacity | exact LRU | FIFO | FastPgCache | mean entries | vs LRU | vs FIFO | Redis | Redis mean | vs Redis |"
    sep = "|---|---|---|---|---|---|---|---|---|---|---|"
    if has_deg:
        head += " no preload | its mean |"
        sep += "---|---|"
    p(head)
    p(sep)
    for r in rows:
        lru, fifo = r["sim"]["lru"]["hit_ratio"], r["sim"]["fifo"]["hit_ratio"]
        pg, red = r["pg"]["hit_ratio"], r["redis"]["hit_ratio"]
        line = (f"| {r['trace']} | {r['cap']:,} | {pct(lru)} | {pct(fifo)} | **{pct(pg)}** | {r['pg']['rows_mean']:,.0f} |"
                f" {pts(pg - lru)} | {pts(pg - fifo)} | {pct(red)} | {r['redis']['mean']:,.0f} | {pts(pg - red)} |")
        if has_deg:
            line += f" {pct(r['deg']['hit_ratio'])} | {r['deg']['rows_mean']:,.0f} |" if "deg" in r else " - | - |"
        p(line)
    p("")
    p("Context: the other policies of the simulator over the same traces, the simulator's model of the design as"
      " built (2-bit counters with 6-bit tags, as many counter slots as `eviction_memory` gives, the hand alone,"
      " PostgreSQL-like placement of new rows: `fpc/bits=2/tag=6/f=N/place=pgfsm`), exact LRU at the mean number of"
      " entries each cache actually held, and what the replays cost:")
    p("")
    head = ("| trace | capacity | SIEVE | S3-FIFO | model of the design | LRU at FastPgCache's mean | LRU at Redis's mean |"
            " FastPgCache max entries | evicted | FastPgCache requests/s | Redis s |")
    sep = "|---|---|---|---|---|---|---|---|---|---|---|"
    if has_deg:
        head += " no preload: max entries | requests/s |"
        sep += "---|---|"
    p(head)
    p(sep)
    for r in rows:
        la = r["lru_at"]
        line = (f"| {r['trace']} | {r['cap']:,} | {pct(r['sim']['sieve']['hit_ratio'])} |"
                f" {pct(r['sim']['s3fifo']['hit_ratio'])} | {pct(r['sim'][r['model_spec']]['hit_ratio'])} |"
                f" {pct(la.get(round(r['pg']['rows_mean'])))} | {pct(la.get(round(r['redis']['mean'])))} |"
                f" {r['pg']['rows_max']:,} | {r['pg']['evicted']:,} | {r['pg']['rate']:,.0f} |"
                f" {r['redis']['seconds']:.0f} |")
        if has_deg:
            line += f" {r['deg']['rows_max']:,} | {r['deg']['rate']:,.0f} |" if "deg" in r else " - | - |"
        p(line)
    p("")


def med(xs):
    return statistics.median(xs) if xs else None


def report_cost(p, cost):
    p("## 3. Cost: throughput with eviction on and the cache full, against no limit")
    p("")
    p(f"Two preloaded clusters on the same binaries, each loaded with {COST_KEYS:,} keys (100-byte values):"
      f" \"on\" has `max_entries = {COST_KEYS}` (full: every new key evicts one), \"off\" has no limit."
      f" {ROUNDS} rounds of {ROUND_DUR} s per workload, alternating which cluster goes first; all get rounds"
      " first (the cache holds exactly the keys read: every get hits on both), then the set rounds (new keys:"
      " \"on\" evicts, \"off\" grows).")
    p("")
    p("| workload | no limit: median ops/s | eviction on: median ops/s | ratio of medians | per-round ratios |"
      " rounds (off / on) | hits / misses (on) | rows written by reads (on) | evicted (on) | rows at the end (off / on) |")
    p("|---|---|---|---|---|---|---|---|---|---|")
    for workload, what in (("get", "cache_get (random loaded key)"), ("set", "cache_set (new key)")):
        off, on = cost[workload]["off"], cost[workload]["on"]
        mo, mn = med([x["tps"] for x in off]), med([x["tps"] for x in on])
        per = [b["tps"] / a["tps"] for a, b in zip(off, on)]
        hits = sum(x["hits"] for x in on)
        misses = sum(x["misses"] for x in on)
        upd = sum(x["n_tup_upd"] for x in on) if workload == "get" else None
        per_s = ", ".join(f"{v:.3f}" for v in per)
        rounds = " ".join(f"{x['tps']:,.0f}" for x in off) + " / " + " ".join(f"{x['tps']:,.0f}" for x in on)
        upd_s = "-" if upd is None else f"{upd:,}"
        evicted = sum(x["evicted"] for x in on)
        p(f"| {what} | {mo:,.0f} | {mn:,.0f} | **{mn / mo:.3f}** | {per_s} | {rounds} | {hits:,} / {misses:,} |"
          f" {upd_s} | {evicted:,} | {off[-1]['rows']:,} / {on[-1]['rows']:,} |")
    p("")
    loads = [x["load"][0] for w in cost.values() for side in w.values() for x in side]
    p(f"Load average during the rounds: {min(loads):.1f} to {max(loads):.1f} (2 cores; other jobs were running).")
    p("")


GIT = run(["git", "-C", A.root, "describe", "--always", "--dirty"], check=False).stdout.strip() or "?"


def main():
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(130))
    try:
        for ph in PHASES:
            {"limit": phase_limit, "hitratio": phase_hitratio, "cost": phase_cost}[ph]()
    finally:
        stop_all()
        with open(os.path.join(A.work, "results.json"), "w") as f:
            json.dump(RESULTS, f, default=str)
    text = report()
    with open(A.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    try:
        main()
    except Failed as e:
        print(f"measure.py: {e}", file=sys.stderr)
        sys.exit(1)
