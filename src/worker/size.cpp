// The worker's part in bounded size (see eviction/eviction.hpp for the
// whole picture): after each expiry cycle, while the cache is over
// fastpgcache.max_entries or max_size, the worker runs eviction steps from
// its hand (one transaction each, as the table's owner in a
// security-restricted operation, like its deletes of expired rows), within
// the cycle's time cap. It also
//  * recounts the entries and their bytes once a minute (and at start), which
//    absorbs rows written by plain SQL and corrects the estimates of the SQL
//    paths (accounting.cpp);
//  * keeps the expiry floor (accounting.cpp) that tells writers whether an
//    expired entry may exist: while a limit is set, each pass of the expiry
//    sweep (sweep.cpp) also reports the earliest expiry it kept. A pass
//    counts only if it began once every transaction older than it had ended
//    (it waits up to 200 ms for them: BeginFloorPass);
//  * runs VACUUM on the table (SKIP_LOCKED) when evictions and expiries
//    since the last one (writers' included) reach a tenth of the entries,
//    ten times the last VACUUM's duration apart (0.5 to 5 s; 0.5 s while
//    the table on disk is over 1.25 times max_size), so that the space of
//    deleted rows is reused and the table stops growing;
//    VACUUM runs as the table's owner (PostgreSQL switches to it);
//  * restarts itself (exit status 1) when ALTER DATABASE ... SET changed a
//    limit of its database: a session reads database settings when it
//    starts.
// Without shared memory there is no worker state to share: the worker does
// nothing here, and writers evict as they go (evictor.cpp).

#include "worker/worker.hpp"

extern "C" {
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/vacuum.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_node.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"
}

#include <algorithm>
#include <string>

#include "eviction/eviction.hpp"
#include "guc.hpp"
#include "stats.hpp"

namespace fastpgcache {
namespace worker {
namespace {

constexpr long kRecountMs = 60 * 1000;
constexpr long kVacuumMinGapMs = 500;
constexpr long kVacuumMaxGapMs = 5 * 1000;
constexpr long kVacuumDutyFactor = 10;  // VACUUM takes at most a tenth of the worker's time
constexpr double kDiskSlack = 1.25;     // the table on disk over max_size by more: VACUUM as soon as it may
constexpr long kSettingsCheckMs = 10 * 1000;
constexpr long kPassWaitMs = 200;
constexpr int64 kVacuumMinDeleted = 1000;

// Plain data: constant-initialised.
struct SizeState {
  TimestampTz last_recount;
  TimestampTz last_vacuum;
  long vacuum_gap_ms;         // until the next VACUUM may run: 10 times the last one's duration
  int64 swept_since_vacuum;   // expired rows the sweep deleted since the last VACUUM
  uint64 evicted_at_vacuum;   // the evictor's total deletions at the last VACUUM
  bool pass_trusted;     // the sweep's pass began after every older transaction had ended
  TimestampTz last_settings_check;
  bool settings_known;
  char settings[1024];   // this database's eviction settings when the worker started
};
SizeState g_size = {};

bool Elapsed(TimestampTz since, long ms) {
  return since == 0 || TimestampDifferenceExceeds(since, GetCurrentTimestamp(), static_cast<int>(ms));
}

// The table the worker works on in this transaction: looked up and locked
// without waiting, as RunBatch does.
struct Table {
  Oid nsp;
  Oid relid;
  Oid owner;
};

// Starts a transaction (with a snapshot and SPI) and finds and locks the
// table. False (the transaction is left open: End() it) when the extension
// is not installed, the table is locked by someone else, or deleting would
// run untrusted code with a superuser's rights. PostgreSQL calls only.
bool Begin(Table *t) {
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  PushActiveSnapshot(GetTransactionSnapshot());
  pgstat_report_activity(STATE_RUNNING, "fastpgcache: keeping the cache within its size");
  t->nsp = ExtensionSchema();
  t->relid = OidIsValid(t->nsp) ? get_relname_relid("cache_entries", t->nsp) : InvalidOid;
  if (!OidIsValid(t->relid) || !ConditionalLockRelationOid(t->relid, RowExclusiveLock) ||
      !ConditionalLockRelationOid(t->relid, RowShareLock))
    return false;
  AcceptInvalidationMessages();
  if (ExtensionSchema() != t->nsp || get_relname_relid("cache_entries", t->nsp) != t->relid) return false;
  Relation rel = try_table_open(t->relid, NoLock);
  if (rel == nullptr) return false;
  t->owner = rel->rd_rel->relowner;
  // The sweep logs the refusal (sweep.cpp); eviction just does not run.
  bool refused = superuser_arg(t->owner) && UntrustedTrigger(rel) != nullptr;
  table_close(rel, NoLock);
  return !refused;
}

void End() {
  PopActiveSnapshot();
  CommitTransactionCommand();
  pgstat_report_activity(STATE_IDLE, nullptr);
}

// Runs f() in one transaction on the table, as its owner in a
// security-restricted operation with search_path = pg_catalog, pg_temp.
// False if the table was not available. f may throw: the caller's abort
// restores the user, the security context and the settings.
template <typename F>
bool OnTable(F &&f) {
  Table t{};
  bool ok = Guarded([&] { return Begin(&t); });
  if (ok) {
    Oid saved_user;
    int saved_context;
    int nest_level = 0;
    Guarded([&] {
      GetUserIdAndSecContext(&saved_user, &saved_context);
      SetUserIdAndSecContext(t.owner, saved_context | SECURITY_RESTRICTED_OPERATION);
      nest_level = NewGUCNestLevel();
      (void)set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
                              true, 0, false);
    });
    f(t);
    Guarded([&] {
      AtEOXact_GUC(false, nest_level);
      SetUserIdAndSecContext(saved_user, saved_context);
    });
  }
  Guarded([] { End(); });
  return ok;
}

// The eviction settings of this database (ALTER DATABASE ... SET), as one
// string; empty if none. PostgreSQL calls only.
void ReadDatabaseSettings(char *out, std::size_t size) {
  out[0] = '\0';
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  PushActiveSnapshot(GetTransactionSnapshot());
  if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "fastpgcache worker: SPI_connect failed");
  Oid argtypes[1] = {OIDOID};
  Datum args[1] = {ObjectIdGetDatum(MyDatabaseId)};
  int rc = SPI_execute_with_args(
      "SELECT pg_catalog.string_agg(s, ',' ORDER BY s) FROM pg_catalog.pg_db_role_setting,"
      " pg_catalog.unnest(setconfig) AS s WHERE setdatabase OPERATOR(pg_catalog.=) $1"
      " AND setrole OPERATOR(pg_catalog.=) 0 AND (s LIKE 'fastpgcache.max\\_%' OR s LIKE 'fastpgcache.eviction\\_policy=%')",
      1, argtypes, args, nullptr, true, 1);
  if (rc == SPI_OK_SELECT && SPI_processed == 1) {
    char *value = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
    if (value != nullptr) strlcpy(out, value, size);
  }
  SPI_finish();
  PopActiveSnapshot();
  CommitTransactionCommand();
}

// True when this database's eviction settings differ from those the worker
// started with.
bool DatabaseSettingsChanged() {
  if (g_size.settings_known && !Elapsed(g_size.last_settings_check, kSettingsCheckMs)) return false;
  g_size.last_settings_check = GetCurrentTimestamp();
  char now[sizeof g_size.settings];
  Guarded([&] { ReadDatabaseSettings(now, sizeof now); });
  if (!g_size.settings_known) {
    strlcpy(g_size.settings, now, sizeof g_size.settings);
    g_size.settings_known = true;
    return false;
  }
  return strcmp(now, g_size.settings) != 0;
}

}  // namespace

void BeginFloorPass() {
  eviction::PassStarted();
  g_size.pass_trusted = false;
  TransactionId next = Guarded([] { return XidFromFullTransactionId(ReadNextFullTransactionId()); });
  TimestampTz started = GetCurrentTimestamp();
  for (;;) {
    TransactionId xmin = Guarded([] {
      StartTransactionCommand();
      TransactionId x = GetTransactionSnapshot()->xmin;
      CommitTransactionCommand();
      return x;
    });
    if (TransactionIdFollowsOrEquals(xmin, next)) {
      g_size.pass_trusted = true;
      return;
    }
    if (Elapsed(started, kPassWaitMs)) return;
    Guarded([] {
      (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 5, PG_WAIT_EXTENSION);
      ResetLatch(MyLatch);
      CHECK_FOR_INTERRUPTS();
    });
  }
}

void EndFloorPass(TimestampTz pass_min) { eviction::PassEnded(pass_min, g_size.pass_trusted); }

namespace {

// VACUUM (SKIP_LOCKED) of the cache table, outside any transaction block,
// as the VACUUM command runs it (it uses transactions of its own and
// switches to the table's owner). PostgreSQL calls only.
void VacuumTable() {
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  pgstat_report_activity(STATE_RUNNING, "fastpgcache: VACUUM of cache_entries");
  Oid nsp = ExtensionSchema();
  Oid relid = OidIsValid(nsp) ? get_relname_relid("cache_entries", nsp) : InvalidOid;
  if (OidIsValid(relid)) {
    VacuumStmt *stmt = makeNode(VacuumStmt);
    stmt->options = list_make1(makeDefElem(pstrdup("skip_locked"), nullptr, -1));
    stmt->rels = list_make1(makeVacuumRelation(makeRangeVar(get_namespace_name(nsp), pstrdup("cache_entries"), -1),
                                               relid, NIL));
    stmt->is_vacuumcmd = true;
    ParseState *pstate = make_parsestate(nullptr);
    ExecVacuum(pstate, stmt, true);
  }
  CommitTransactionCommand();
  pgstat_report_activity(STATE_IDLE, nullptr);
}

}  // namespace

void MaintainSize(CycleResult *out) {
  if (!eviction::Shared()) return;
  if (DatabaseSettingsChanged()) {
    out->restart = true;
    return;
  }
  eviction::Limits limits = eviction::CurrentLimits();
  if (!limits.Any()) return;
  if (!eviction::Counted() || Elapsed(g_size.last_recount, kRecountMs)) {
    if (OnTable([](Table &t) { eviction::Recount(t.nsp); })) g_size.last_recount = GetCurrentTimestamp();
  }
  if (!eviction::Counted()) return;

  // Live entries may go once no expired one may exist: this cycle's sweep
  // covered the table (or the floor says so).
  bool swept = !out->capped && !out->failed;
  TimestampTz started = GetCurrentTimestamp();
  int wraps = 0;
  for (;;) {
    eviction::Excess over = eviction::Over(eviction::Current(), limits);
    if (!over.Any()) break;
    if (Elapsed(started, guc::cleanup_max_time_ms)) {
      out->capped = true;  // still over: come back soon
      break;
    }
    eviction::StepResult step;
    bool live_allowed = swept || !eviction::MayHaveExpired(GetCurrentTimestamp());
    if (!OnTable([&](Table &t) {
          step = eviction::Step(t.nsp, over, static_cast<int>(kBlocksPerBatch), false, live_allowed);
        }))
      break;
    if (step.wrapped && ++wraps >= 2) break;  // twice round the table: nothing more it may evict
    Guarded([] {
      CHECK_FOR_INTERRUPTS();
      ReloadConfigIfAsked();
    });
  }

  // VACUUM when a tenth of the entries (at least 1,000) were deleted since
  // the last one, by the sweep or by the evictor (writers helping included),
  // and ten times the last VACUUM's duration has passed (between 0.5 and
  // 5 s): under a write flood the dead rows of evicted entries would
  // otherwise soon outnumber the live ones, and a helping writer's blocks
  // would hold only dead rows, while VACUUM takes about a tenth of the
  // worker's time. With max_size, a table whose size on disk (heap, TOAST,
  // indexes) is over 1.25 times the limit is vacuumed every 0.5 s: the space
  // of deleted rows returns only through VACUUM, and the longer the table
  // waits the bigger it grows.
  g_size.swept_since_vacuum += static_cast<int64>(out->deleted);
  uint64 evicted_total = g_size.evicted_at_vacuum;
  eviction::DeletedTotal(&evicted_total);
  int64 deleted = g_size.swept_since_vacuum + static_cast<int64>(evicted_total - g_size.evicted_at_vacuum);
  int64 entries = eviction::Current().entries;
  long gap_ms = std::clamp(g_size.vacuum_gap_ms, kVacuumMinGapMs, kVacuumMaxGapMs);
  if (limits.max_bytes > 0 && deleted >= kVacuumMinDeleted && gap_ms > kVacuumMinGapMs) {
    int64 disk = 0;
    OnTable([&](Table &t) {
      disk = Guarded([&] { return DatumGetInt64(DirectFunctionCall1(pg_total_relation_size, ObjectIdGetDatum(t.relid))); });
    });
    if (static_cast<double>(disk) > kDiskSlack * static_cast<double>(limits.max_bytes)) gap_ms = kVacuumMinGapMs;
  }
  if (deleted >= kVacuumMinDeleted && deleted >= entries / 10 &&
      Elapsed(g_size.last_vacuum, gap_ms)) {
    TimestampTz started_vacuum = GetCurrentTimestamp();
    Guarded([] { VacuumTable(); });
    g_size.last_vacuum = GetCurrentTimestamp();
    g_size.vacuum_gap_ms = static_cast<long>((g_size.last_vacuum - started_vacuum) / 1000) * kVacuumDutyFactor;
    g_size.swept_since_vacuum = 0;
    g_size.evicted_at_vacuum = evicted_total;
  }
}

}  // namespace worker
}  // namespace fastpgcache
