#!/usr/bin/python3
"""Summarises perf reports of a RESP worker (bench/resp/run.sh --profile):
self time grouped into categories (by symbol name and DSO), the top symbols,
and the inclusive time of the entry points that bound each phase of a batch.

Usage: profile.py SELF_REPORT CHILDREN_REPORT
  SELF_REPORT:     perf report --no-children --sort symbol,dso --stdio -g none
  CHILDREN_REPORT: perf report --children --sort symbol --stdio -g none
Symbols of PostgreSQL's static functions are attributed by perf to the
nearest exported symbol (Debian's postgres has no debug symbols here): read
the categories as approximate.
"""
import re
import sys

CATEGORIES = [
    ('syscalls and kernel (network, epoll)', r'^\[k\]|kernel|^entry_SYSCALL|^__x64_sys|^tcp_|^__sys_|^sock_|^epoll|'
     r'^__libc_(recv|send|read|write)|^(recv|send|read|write|epoll_wait|epoll_ctl)$|syscall|^__GI___(recv|send|read|write)'),
    ('transaction start/commit (xact, CLOG, WAL, resource owners)',
     r'Transaction|^AtEOXact|^AtCommit|^AtStart|^AtAbort|^PreCommit|^ProcArrayEndTransaction|^CallXactCallbacks|'
     r'^ResourceOwner|^XLog|^XactLog|^RecordTransaction|^SimpleLru|^ExtendCLOG|^TransactionId|^xact|^pgstat_|'
     r'^SetCurrentStatementStartTimestamp|^GetCurrentTransaction|^AssignTransactionId|^MarkCurrentTransaction'),
    ('snapshot', r'Snapshot|^GetSnapshotData|^XidInMVCCSnapshot|^SnapshotResetXmin'),
    ('tuple visibility', r'^HeapTupleSatisfies|^HeapTupleHeader|^TransactionIdIsInProgress|^TransactionIdDidCommit'),
    ('locking (heavyweight, LWLock, spinlocks)', r'^Lock(Acquire|Release|Relation|Tag|Check|Held)|^LWLock|^s_lock|'
     r'^SetupLockInTable|^GrantLock|^FastPath|^Unlock|^XactLockTable|^heap_acquire_tuplock|^LockBuffer|'
     r'^ConditionalLock|^LockReleaseAll|^proclock|^LockAcquireExtended'),
    ('index probe (btree) and buffers', r'^_bt_|^bt[a-z]|^index_|^heapam_index|^heap_hot_search|^ReadBuffer|'
     r'^ReleaseBuffer|^PinBuffer|^UnpinBuffer|^BufTable|^BufferGet|^IncrBufferRefCount|^MarkBuffer|^hash_search|'
     r'^hash_bytes|^IndexScan|^heap_fetch|^heapgettup|^ItemPointer'),
    ('heap writes', r'^heap_(update|insert|delete|page_prune|prepare|form|fill|compute)|^RelationGetBufferForTuple|'
     r'^PageAddItem|^PageRepair|^heapam_tuple|^table_tuple|^ExecInsert|^toast|^simple_heap|^log_heap|^CacheInvalidate'),
    ('catalog, relcache, syscache, invalidation', r'^RelationIdGetRelation|^relation_|^table_(open|close)|'
     r'^RelationClose|^SearchSysCache|^SearchCatCache|^ReleaseSysCache|^ReleaseCatCache|^get_role_oid|^CatalogCache|'
     r'^AcceptInvalidationMessages|^Relation[A-Z]|^systable_|^get_namespace|^LookupExplicit|^RangeVar'),
    ('SHA-256 of keys (libcrypto)', r'libcrypto|^sha256|^SHA256|^EVP_|^ossl_'),
    ('memory (palloc, malloc, memcpy)', r'^palloc|^pfree|^AllocSet|^MemoryContext|^malloc|^free$|^_int_|^cfree|'
     r'^operator new|^operator delete|^__memcpy|^__memset|^__memmove|^memcpy|^memset|^repalloc|^GenerationAlloc|'
     r'^SlabAlloc|^realloc|^__libc_malloc|^__libc_free'),
    ('RESP server: parsing, dispatch, replies', r'fastpgcache::resp::'),
    ('cache core and executor (fastpgcache)', r'fastpgcache::|^fastpgcache_'),
    ('text/encoding checks', r'^pg_verify|^pg_utf|^pg_encoding|^pg_mb|^text_to|^cstring_to|^pg_detoast|^detoast'),
    ('timers, signals, latches', r'^enable_timeout|^disable_timeout|^schedule_alarm|^setitimer|^WaitEventSet|'
     r'^WaitLatch|^SetLatch|^ResetLatch|^handle_sig|^pqsignal|^GetCurrentTimestamp|^clock_gettime|^__clock_gettime|'
     r'^ProcessInterrupts|^CHECK_FOR'),
    ('user switching', r'^SetUserIdAndSecContext|^GetUserIdAndSecContext|^superuser'),
]
COMPILED = [(name, re.compile(rx)) for name, rx in CATEGORIES]

LINE = re.compile(r'^\s*([0-9.]+)%\s+(?:([0-9.]+)%\s+)?\[(.)\]\s+(.*)$')


def fields(line):
    """(first %, kind, symbol, dso) of a perf report line, or None. Columns are
    padded to the widest symbol; C++ symbols hold single spaces."""
    m = LINE.match(line)
    if not m:
        return None
    parts = re.split(r'\s{2,}', m.group(4).strip())
    return float(m.group(1)), m.group(3), parts[0], parts[1] if len(parts) > 1 else '-'


def parse_self(path):
    return [f for f in (fields(l) for l in open(path, errors='replace') if not l.startswith('#')) if f]


def parse_children(path):
    out = {}
    for line in open(path, errors='replace'):
        f = None if line.startswith('#') else fields(line)
        if f:
            out[f[2]] = f[0]
    return out


def category(kind, sym, dso):
    if kind == 'k' or 'kernel' in dso:
        return CATEGORIES[0][0]
    key = sym if 'libcrypto' not in dso else 'libcrypto ' + sym
    for name, rx in COMPILED:
        if rx.search(key):
            return name
    if sym.startswith('0x'):
        return 'unresolved (%s)' % dso
    return 'other PostgreSQL/libc'


def main():
    rows = parse_self(sys.argv[1])
    total = sum(r[0] for r in rows) or 1.0
    cats = {}
    for pct, kind, sym, dso in rows:
        c = category(kind, sym, dso)
        cats[c] = cats.get(c, 0.0) + pct
    print()
    print('| where the worker\'s CPU time goes (self time) | share |')
    print('|---|--:|')
    for c, v in sorted(cats.items(), key=lambda kv: -kv[1]):
        print('| %s | %.1f%% |' % (c, 100.0 * v / total))
    print()
    print('Top symbols (self): ' + '; '.join('%s %.1f%%' % (sym if len(sym) < 60 else sym[:57] + '...', pct)
                                            for pct, _, sym, _ in rows[:18]))
    children = parse_children(sys.argv[2]) if len(sys.argv) > 2 else {}
    entry = ['StartTransactionCommand', 'CommitTransactionCommand', 'AbortCurrentTransaction', 'GetTransactionSnapshot',
             'index_fetch_heap', 'heap_page_prune_opt', 'heap_page_prune', 'ReadBufferExtended', 'heap_hot_search_buffer',
             'sha256_block_data_order_avx2', 'SHA256_Final', '__libc_recv', '__send', '__GI___libc_read', 'read', 'send',
             'setitimer', '__setitimer',
             'PushActiveSnapshot', 'PopActiveSnapshot', 'RegisterSnapshot', 'GetSnapshotData',
             'BeginInternalSubTransaction', 'SetUserIdAndSecContext', 'get_role_oid', 'pg_verifymbstr',
             'enable_timeout_after', 'disable_timeout', 'index_getnext_slot', 'index_beginscan', 'index_endscan',
             '_bt_first', 'heap_update', 'heap_insert', 'LockRelationOid', 'table_open', 'epoll_wait', 'WaitEventSetWait']
    found = [(e, children[e]) for e in entry if e in children]
    found += sorted(((k, v) for k, v in children.items() if 'fastpgcache::' in k and v >= 1.0), key=lambda kv: -kv[1])[:14]
    if found:
        print()
        print('Inclusive time (callers include callees; frame-pointer call graphs, so approximate): ' +
              '; '.join('%s %.1f%%' % (k if len(k) < 70 else k[:67] + '...', v) for k, v in found))


if __name__ == '__main__':
    main()
