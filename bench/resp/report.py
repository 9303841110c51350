#!/usr/bin/python3
"""Markdown tables from bench/resp/run.sh's results.csv: the median of the
rounds for each target/pipeline/test, and the ratios RESP/redis-server and
RESP/SQL (pgbench -M prepared) computed within the same run."""
import collections
import csv
import statistics
import sys

rows = collections.defaultdict(list)
by_round = collections.defaultdict(dict)
with open(sys.argv[1]) as f:
    for r in csv.DictReader(f):
        try:
            rows[(r['target'], int(r['pipeline']), r['test'])].append(
                (float(r['rps']), float(r['p50_ms']), float(r['p99_ms'])))
            by_round[r['round']][(r['target'], int(r['pipeline']), r['test'])] = float(r['rps'])
        except ValueError:
            pass


def round_ratio(a, b):
    """The median over rounds of a/b measured in the same round (the load of
    the machine changes between rounds more than within one)."""
    v = [x[a] / x[b] for x in by_round.values() if a in x and b in x and x[b]]
    return statistics.median(v) if v else None


def med(key):
    v = rows.get(key)
    if not v:
        return None
    return tuple(statistics.median(x[i] for x in v) for i in range(3))


def fmt(x, digits=0):
    return '-' if x is None else ('{:,.%df}' % digits).format(x)


targets = ['redis-server', 'resp-w1', 'resp-w2']
print('| test | pipeline | redis-server ops/s (p50/p99 ms) | RESP w=1 ops/s (p50/p99) | RESP w=2 ops/s (p50/p99) |'
      ' w=1 / redis | w=2 / redis |')
print('|---|--:|--:|--:|--:|--:|--:|')
# ratios: the median of the per-round ratios
for pipe in (1, 16):
    for test in ('get', 'set', 'incr', 'mset'):
        m = {t: med((t, pipe, test)) for t in targets}
        cells = []
        for t in targets:
            cells.append('-' if m[t] is None else '%s (%.2f/%.2f)' % (fmt(m[t][0]), m[t][1], m[t][2]))
        ratios = []
        for t in ('resp-w1', 'resp-w2'):
            q = round_ratio((t, pipe, test), ('redis-server', pipe, test))
            ratios.append('-' if q is None else '%.2f' % q)
        print('| %s | %d | %s | %s |' % (test.upper(), pipe, ' | '.join(cells), ' | '.join(ratios)))
print()
print('| SQL path (pgbench -M prepared, 50 clients) | tps | p50/p99 ms | RESP w=1 P1 / SQL | RESP w=2 P1 / SQL | RESP w=1 P16 / SQL |')
print('|---|--:|--:|--:|--:|--:|')
for test, cmd in (('get', 'cache_get'), ('set', 'cache_set')):
    s = med(('sql', 1, test))
    if s is None:
        continue
    r = [round_ratio((t, p, test), ('sql', 1, test)) for t, p in (('resp-w1', 1), ('resp-w2', 1), ('resp-w1', 16))]
    print('| %s | %s | %.2f/%.2f | %s |' % (cmd, fmt(s[0]), s[1], s[2],
                                           ' | '.join('-' if x is None else '%.2f' % x for x in r)))
print()
n = max((len(v) for v in rows.values()), default=0)
spread = []
for key, v in sorted(rows.items()):
    if len(v) > 1:
        lo, hi = min(x[0] for x in v), max(x[0] for x in v)
        spread.append((hi / lo if lo else 0, key))
if spread:
    worst = max(spread)
    print('%d rounds; ops/s are medians over rounds, ratios the medians of the ratios measured within each round; '
          'the widest spread between rounds: %.2fx (%s P%d %s): read ratios to one decimal.'
          % (n, worst[0], worst[1][0], worst[1][1], worst[1][2]))
