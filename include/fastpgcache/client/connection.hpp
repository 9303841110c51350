// fastpgcache/client/connection.hpp - one libpq connection: connecting and
// running statements with a deadline, prepared statements, connection
// parameters (TLS, keepalives).
// Part of the C++ client; include <fastpgcache/client.hpp>.
//
// Every statement is sent with libpq's asynchronous API on a non-blocking
// socket, and the client waits for the socket with poll() until the
// operation's deadline.  When the deadline passes, a cancel request is sent
// from a short-lived background thread (PQcancel blocks) and the connection
// is closed: the caller never waits for the server past its deadline.
#pragma once

#include <fastpgcache/client/errors.hpp>
#include <fastpgcache/client/options.hpp>
#include <fastpgcache/client/util.hpp>

#include <libpq-fe.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <poll.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<fastpgcache/fallback_sql.hpp>)
#include <fastpgcache/fallback_sql.hpp>
#define FASTPGCACHE_HAVE_EMBEDDED_FALLBACK 1
#endif
#endif

namespace fastpgcache {

namespace detail {

struct PGconnDeleter {
    void operator()(PGconn* c) const { PQfinish(c); }
};
struct PGresultDeleter {
    void operator()(PGresult* r) const { PQclear(r); }
};
using ConnPtr = std::unique_ptr<PGconn, PGconnDeleter>;
using ResultPtr = std::unique_ptr<PGresult, PGresultDeleter>;

constexpr Oid kTextOid = 25, kInt4Oid = 23, kInt8Oid = 20, kBoolOid = 16, kFloat8Oid = 701, kTimestamptzOid = 1184,
              kJsonbOid = 3802, kByteaOid = 17, kTextArrayOid = 1009;

/// The prepared statements.  To add an operation: a row here, a function in
/// operations.hpp, and a method in Commands.  The statements after
/// kExistsMany call functions of fastpgcache 1.1 (extension or fallback).
enum Stmt : unsigned {
    kSetText, kSetJson, kSetBytes, kGet, kGetJson, kGetBytes, kDelete, kExists, kTtl, kCleanup, kMGet, kMSet,
    kDelMany, kExistsMany,
    // 1.1
    kSetTextOpt, kSetJsonOpt, kSetBytesOpt, kGetSet, kIncr, kDecr, kIncrByFloat, kAppend, kStrlen, kExpire,
    kPExpire, kExpireAt, kPersist, kPTtl, kGetDel, kGetEx, kType, kKeys, kScan, kFlush, kDbSize, kMSetNx,
    kStmtCount
};
static_assert(kStmtCount <= 64, "Conn::prepared has one bit per statement");

constexpr int kMaxStmtParams = 6;

struct StmtDef {
    const char* name;
    const char* sql;  ///< "@S@" stands for the (quoted) schema of the cache functions
    int nparams;
    Oid types[kMaxStmtParams];
};

inline const StmtDef& stmt_def(Stmt s) {
    static constexpr StmtDef defs[kStmtCount] = {
        {"fpc_set_text", "SELECT @S@.cache_set($1, $2, $3)", 3, {kTextOid, kTextOid, kInt4Oid}},
        {"fpc_set_json", "SELECT @S@.cache_set($1, $2, $3)", 3, {kTextOid, kJsonbOid, kInt4Oid}},
        {"fpc_set_bytes", "SELECT @S@.cache_set($1, $2, $3)", 3, {kTextOid, kByteaOid, kInt4Oid}},
        {"fpc_get", "SELECT @S@.cache_get($1)", 1, {kTextOid, 0, 0}},
        {"fpc_get_json", "SELECT @S@.cache_get_json($1)", 1, {kTextOid, 0, 0}},
        {"fpc_get_bytes", "SELECT @S@.cache_get_bytes($1)", 1, {kTextOid, 0, 0}},
        {"fpc_delete", "SELECT @S@.cache_delete($1)", 1, {kTextOid, 0, 0}},
        {"fpc_exists", "SELECT @S@.cache_exists($1)", 1, {kTextOid, 0, 0}},
        {"fpc_ttl", "SELECT @S@.cache_ttl($1)", 1, {kTextOid, 0, 0}},
        {"fpc_cleanup", "SELECT @S@.cache_cleanup()", 0, {0, 0, 0}},
        {"fpc_mget",
         "SELECT m.value FROM @S@.cache_mget($1) WITH ORDINALITY AS m(key, value, ord) ORDER BY m.ord", 1,
         {kTextArrayOid, 0, 0}},
        {"fpc_mset", "SELECT @S@.cache_mset($1, $2, $3)", 3, {kTextArrayOid, kTextArrayOid, kInt4Oid}},
        // Redis DEL k1 k2 ...: keys deleted, in order (a repeated key counts once).
        {"fpc_del_many",
         "SELECT count(*) FILTER (WHERE @S@.cache_delete(u.k)) FROM unnest($1) AS u(k)", 1,
         {kTextArrayOid, 0, 0}},
        // Redis EXISTS k1 k2 ...: a repeated existing key counts each time.
        {"fpc_exists_many",
         "SELECT count(*) FILTER (WHERE @S@.cache_exists(u.k)) FROM unnest($1) AS u(k)", 1, {kTextArrayOid, 0, 0}},
        // -- 1.1 ------------------------------------------------------------
        // SET key value [EX ttl | KEEPTTL] [NX | XX]
        {"fpc_set_text_opt", "SELECT @S@.cache_set($1, $2, $3, $4, $5, $6)", 6,
         {kTextOid, kTextOid, kInt4Oid, kBoolOid, kBoolOid, kBoolOid}},
        {"fpc_set_json_opt", "SELECT @S@.cache_set($1, $2, $3, $4, $5, $6)", 6,
         {kTextOid, kJsonbOid, kInt4Oid, kBoolOid, kBoolOid, kBoolOid}},
        {"fpc_set_bytes_opt", "SELECT @S@.cache_set($1, $2, $3, $4, $5, $6)", 6,
         {kTextOid, kByteaOid, kInt4Oid, kBoolOid, kBoolOid, kBoolOid}},
        {"fpc_getset", "SELECT @S@.cache_getset($1, $2, $3)", 3, {kTextOid, kTextOid, kInt4Oid}},
        {"fpc_incr", "SELECT @S@.cache_incr($1, $2, $3)", 3, {kTextOid, kInt8Oid, kInt4Oid}},
        {"fpc_decr", "SELECT @S@.cache_decr($1, $2)", 2, {kTextOid, kInt8Oid}},
        {"fpc_incrbyfloat", "SELECT @S@.cache_incrbyfloat($1, $2)", 2, {kTextOid, kFloat8Oid}},
        {"fpc_append", "SELECT @S@.cache_append($1, $2)", 2, {kTextOid, kTextOid}},
        {"fpc_strlen", "SELECT @S@.cache_strlen($1)", 1, {kTextOid}},
        {"fpc_expire", "SELECT @S@.cache_expire($1, $2)", 2, {kTextOid, kInt4Oid}},
        {"fpc_pexpire", "SELECT @S@.cache_pexpire($1, $2)", 2, {kTextOid, kInt8Oid}},
        {"fpc_expireat", "SELECT @S@.cache_expireat($1, $2)", 2, {kTextOid, kTimestamptzOid}},
        {"fpc_persist", "SELECT @S@.cache_persist($1)", 1, {kTextOid}},
        {"fpc_pttl", "SELECT @S@.cache_pttl($1)", 1, {kTextOid}},
        {"fpc_getdel", "SELECT @S@.cache_getdel($1)", 1, {kTextOid}},
        {"fpc_getex", "SELECT @S@.cache_getex($1, $2, $3)", 3, {kTextOid, kInt4Oid, kBoolOid}},
        {"fpc_type", "SELECT @S@.cache_type($1)", 1, {kTextOid}},
        {"fpc_keys", "SELECT k FROM @S@.cache_keys($1) AS k", 1, {kTextOid}},
        // One row per key of the batch (one row with a NULL key when it is
        // empty), each carrying the next cursor.
        {"fpc_scan",
         "SELECT s.next_cursor, u.k FROM @S@.cache_scan($1, $2, $3) AS s "
         "LEFT JOIN LATERAL unnest(s.keys) WITH ORDINALITY AS u(k, ord) ON true ORDER BY u.ord",
         3, {kInt8Oid, kTextOid, kInt4Oid}},
        {"fpc_flush", "SELECT @S@.cache_flush()", 0, {}},
        {"fpc_dbsize", "SELECT @S@.cache_dbsize()", 0, {}},
        {"fpc_msetnx", "SELECT @S@.cache_msetnx($1, $2, $3)", 3, {kTextArrayOid, kTextArrayOid, kInt4Oid}},
    };
    static_assert(defs[kStmtCount - 1].name != nullptr, "a Stmt without its row in defs");
    return defs[s];
}

/// The statements' texts for one schema.  A new generation gets new
/// statement names, so connections that prepared an older one re-prepare.
struct Statements {
    std::string schema;  ///< unquoted name
    unsigned generation = 0;
    std::string name[kStmtCount];
    std::string sql[kStmtCount];
};

inline std::shared_ptr<const Statements> make_statements(const std::string& schema, const std::string& quoted,
                                                         unsigned generation) {
    auto st = std::make_shared<Statements>();
    st->schema = schema;
    st->generation = generation;
    for (unsigned i = 0; i < kStmtCount; ++i) {
        const StmtDef& d = stmt_def(static_cast<Stmt>(i));
        st->name[i] = std::string(d.name) + "_" + std::to_string(generation);
        std::string q = d.sql;
        for (std::size_t pos; (pos = q.find("@S@")) != std::string::npos;) q.replace(pos, 3, quoted);
        st->sql[i] = std::move(q);
    }
    return st;
}

/// Internal: the connection broke while in use.  sent() tells whether the
/// operation's statement may have reached the server.
class ConnectionLost : public ConnectionError {
public:
    ConnectionLost(const std::string& m, bool sent) : ConnectionError(m, "08006"), sent_(sent) {}
    bool sent() const noexcept { return sent_; }

private:
    bool sent_;
};

/// Internal: the deadline passed while waiting for the server; the
/// connection has been cancelled and must be discarded.
class DeadlineExceeded : public TimeoutError {
public:
    DeadlineExceeded(const std::string& m, bool sent) : TimeoutError(m), sent_(sent) {}
    bool sent() const noexcept { return sent_; }

private:
    bool sent_;
};

inline std::string clean_message(const char* msg) {
    std::string s = msg ? msg : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

/// Sends a cancel request for whatever `c` is running, from a detached
/// thread: PQcancel connects and waits for the server, which may be frozen
/// or gone.  At most 8 run at once (the connection is closed anyway).
inline void cancel_in_background(PGconn* c) {
    static std::atomic<int> in_flight{0};
    PGcancel* cancel = PQgetCancel(c);
    if (!cancel) return;
    if (in_flight.fetch_add(1) >= 8) {
        --in_flight;
        PQfreeCancel(cancel);
        return;
    }
    try {
        std::thread([cancel] {
            char buf[256];
            (void)PQcancel(cancel, buf, sizeof buf);
            PQfreeCancel(cancel);
            --in_flight;
        }).detach();
    } catch (...) {  // no thread: the connection is closed, which ends the query too
        --in_flight;
        PQfreeCancel(cancel);
    }
}

/// Waits until `fd` is ready for `events` or the deadline passes (false);
/// checks `*abort` at least every 100 ms when given.
inline bool wait_socket(int fd, short events, const Deadline& d, const std::atomic<bool>* abort = nullptr) {
    for (;;) {
        if (abort && abort->load()) return false;
        int ms = d.poll_ms(abort ? 100 : -1);
        if (d.is_set() && ms == 0 && d.expired()) return false;
        pollfd p{fd, events, 0};
        int rc = ::poll(&p, 1, ms);
        if (rc > 0) return true;
        if (rc < 0 && errno != EINTR) return true;  // let libpq report the socket error
        if (d.expired()) return false;
    }
}

inline void ignore_notice(void*, const char*) {}

struct Conn;

/// Where the cache functions live: the fastpgcache extension's schema
/// (pg_extension.extnamespace), or public (the SQL fallback).  Looked up on
/// first use, by setup(), again every Options::schema_check_interval (so an
/// extension created later is used), and after a statement found no
/// function (42883).  Shared by the pool's connections.
class StatementSource {
public:
    explicit StatementSource(std::chrono::milliseconds interval = std::chrono::milliseconds(0)) : interval_(interval) {}
    /// The statements for the current schema, looking the schema up over `c`
    /// when due.
    std::shared_ptr<const Statements> get(Conn& c, const Deadline& d);
    /// Sets the schema (after setup()); connections re-prepare.
    void set_schema(Conn& c, const std::string& schema);
    /// The next get() looks the schema up again.
    void invalidate() {
        std::lock_guard<std::mutex> lk(mu_);
        checked_ = std::chrono::steady_clock::time_point{};
        force_ = true;
    }
    std::string schema() const {
        std::lock_guard<std::mutex> lk(mu_);
        return current_ ? current_->schema : std::string();
    }
    /// Whether the server side has cache_mget/cache_mset (an older fallback
    /// may not): learnt on first use.
    std::atomic<bool> mget_supported{true};
    std::atomic<bool> mset_supported{true};

private:
    void install(const std::string& schema, const std::string& quoted) {
        if (current_ && current_->schema == schema) return;
        current_ = make_statements(schema, quoted, ++generation_);
    }
    mutable std::mutex mu_;
    std::shared_ptr<const Statements> current_;
    unsigned generation_ = 0;
    std::chrono::milliseconds interval_;
    std::chrono::steady_clock::time_point checked_{};
    bool checking_ = false;
    bool force_ = false;
};

/// One server connection (non-blocking socket).  Not thread-safe: the pool
/// hands it to one thread at a time.
struct Conn {
    ConnPtr pg;
    std::chrono::steady_clock::time_point created = std::chrono::steady_clock::now();
    std::shared_ptr<StatementSource> source;
    std::shared_ptr<const Statements> stmts;  ///< what `prepared` refers to
    std::uint64_t prepared = 0;  ///< bit s: statement s is prepared on this connection
    /// Set when the application had the raw PGconn (Session::native()) or a
    /// deadline cancelled a statement: the pool closes the connection
    /// instead of reusing it.
    bool discard = false;

    PGconn* get() const { return pg.get(); }
    bool bad() const { return !pg || PQstatus(pg.get()) != CONNECTION_OK; }

    /// Throws Error (server error, with SQLSTATE) or ConnectionLost.
    /// `sent`: whether a statement of the operation may have been executed.
    void check(const ResultPtr& r, ExecStatusType want, bool sent = true) const {
        if (r && PQresultStatus(r.get()) == want) return;
        if (!r || bad()) {
            std::string m = clean_message(PQerrorMessage(pg.get()));
            throw ConnectionLost("connection to the server was lost: " + (m.empty() ? std::string("no result") : m), sent);
        }
        const char* st = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
        const char* primary = PQresultErrorField(r.get(), PG_DIAG_MESSAGE_PRIMARY);
        std::string msg = primary ? primary : clean_message(PQresultErrorMessage(r.get()));
        if (msg.empty()) msg = std::string("unexpected result status ") + PQresStatus(PQresultStatus(r.get()));
        throw Error(msg, st ? st : "");
    }

    /// After a PQsend* call that returned `queued`: flushes the request and
    /// collects its results by the deadline.  Returns the first error result,
    /// else the last result.
    ResultPtr finish(bool queued, const Deadline& d, bool sent) {
        if (!queued) {
            std::string m = clean_message(PQerrorMessage(pg.get()));
            throw ConnectionLost("could not send the request: " + (m.empty() ? std::string("unknown error") : m), false);
        }
        const int fd = PQsocket(pg.get());
        for (;;) {
            int f = PQflush(pg.get());
            if (f == 0) break;
            if (f < 0) throw ConnectionLost("connection to the server was lost while sending: " + clean_message(PQerrorMessage(pg.get())), sent);
            if (!wait_socket(fd, POLLIN | POLLOUT, d)) expire(sent);
            if (!PQconsumeInput(pg.get()))
                throw ConnectionLost("connection to the server was lost: " + clean_message(PQerrorMessage(pg.get())), sent);
        }
        ResultPtr last, error;
        for (;;) {
            while (PQisBusy(pg.get())) {
                if (!wait_socket(fd, POLLIN, d)) expire(sent);
                if (!PQconsumeInput(pg.get()))
                    throw ConnectionLost("connection to the server was lost: " + clean_message(PQerrorMessage(pg.get())), sent);
            }
            ResultPtr r(PQgetResult(pg.get()));
            if (!r) break;
            ExecStatusType st = PQresultStatus(r.get());
            if ((st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE) && !error) error = std::move(r);
            else last = std::move(r);
            if (bad()) break;
        }
        return error ? std::move(error) : std::move(last);
    }

    /// The deadline passed: cancel what runs, mark the connection for
    /// closing, throw DeadlineExceeded.
    [[noreturn]] void expire(bool sent) {
        discard = true;
        cancel_in_background(pg.get());
        throw DeadlineExceeded("the operation did not complete within its deadline (the server did not answer in time); the connection was cancelled", sent);
    }

    ResultPtr exec(Stmt s, const char* const* values, const int* lengths, const int* formats, int result_format,
                   const Deadline& d) {
        auto current = source->get(*this, d);
        if (current != stmts) {
            stmts = std::move(current);
            prepared = 0;
        }
        const StmtDef& def = stmt_def(s);
        const std::uint64_t bit = std::uint64_t{1} << s;
        if (!(prepared & bit)) {
            // Nothing of the operation has run yet if this fails.
            int q = PQsendPrepare(pg.get(), stmts->name[s].c_str(), stmts->sql[s].c_str(), def.nparams, def.types);
            ResultPtr p = finish(q == 1, d, false);
            check(p, PGRES_COMMAND_OK, false);
            prepared |= bit;
        }
        int q = PQsendQueryPrepared(pg.get(), stmts->name[s].c_str(), def.nparams, values, lengths, formats, result_format);
        ResultPtr r = finish(q == 1, d, true);
        check(r, PGRES_TUPLES_OK);
        return r;
    }

    /// Runs fixed SQL text (never built from user input); may hold several
    /// statements.
    ResultPtr exec_sql(const char* sql, ExecStatusType want, const Deadline& d, bool sent = true) {
        ResultPtr r = finish(PQsendQuery(pg.get(), sql) == 1, d, sent);
        check(r, want, sent);
        return r;
    }

    /// Runs one SQL statement with text parameters.
    ResultPtr exec_params(const char* sql, const std::vector<std::string>& params, ExecStatusType want, const Deadline& d,
                          bool sent = true) {
        std::vector<const char*> vals;
        for (const auto& p : params) vals.push_back(p.c_str());
        int q = PQsendQueryParams(pg.get(), sql, static_cast<int>(vals.size()), nullptr, vals.data(), nullptr, nullptr, 0);
        ResultPtr r = finish(q == 1, d, sent);
        check(r, want, sent);
        return r;
    }

    /// The identifier quoted for SQL text (PQescapeIdentifier).
    std::string quote_ident(const std::string& ident) const {
        char* q = PQescapeIdentifier(pg.get(), ident.c_str(), ident.size());
        if (!q) throw ConnectionLost("could not quote an identifier: " + clean_message(PQerrorMessage(pg.get())), false);
        std::string out(q);
        PQfreemem(q);
        return out;
    }
};

/// The schema of the installed fastpgcache extension, if any.
inline std::optional<std::string> extension_schema(Conn& c, const Deadline& d, bool sent = true) {
    auto r = c.exec_sql(
        "SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'fastpgcache'",
        PGRES_TUPLES_OK, d, sent);
    if (PQntuples(r.get()) != 1) return std::nullopt;
    return std::string(PQgetvalue(r.get(), 0, 0));
}

inline std::shared_ptr<const Statements> StatementSource::get(Conn& c, const Deadline& d) {
    {
        std::lock_guard<std::mutex> lk(mu_);
        const auto now = std::chrono::steady_clock::now();
        const bool due = !current_ || force_ || (interval_.count() > 0 && now - checked_ >= interval_);
        if (!due || (current_ && checking_)) return current_;
        checking_ = true;
        force_ = false;
    }
    // No statement of the operation has been sent yet.
    try {
        std::string schema = extension_schema(c, d, false).value_or("public");
        std::string quoted = c.quote_ident(schema);
        std::lock_guard<std::mutex> lk(mu_);
        checking_ = false;
        checked_ = std::chrono::steady_clock::now();
        install(schema, quoted);
        return current_;
    } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        checking_ = false;
        throw;
    }
}

inline void StatementSource::set_schema(Conn& c, const std::string& schema) {
    std::string quoted = c.quote_ident(schema);
    std::lock_guard<std::mutex> lk(mu_);
    checked_ = std::chrono::steady_clock::now();
    force_ = false;
    install(schema, quoted);
}

/// Text-format array literal for a text[] parameter (the elements are data,
/// quoted and escaped per the array input syntax, and sent as a parameter).
template <class It>
std::string text_array_literal(It first, It last) {
    std::string out = "{";
    for (It it = first; it != last; ++it) {
        if (it != first) out += ',';
        out += '"';
        for (char c : std::string_view(*it)) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += '"';
    }
    out += '}';
    return out;
}
inline std::string text_array_literal(const std::vector<std::string>& items) {
    return text_array_literal(items.begin(), items.end());
}

// -- opening a connection -------------------------------------------------------

/// The SQLSTATE in a libpq error message built with PQERRORS_VERBOSE
/// ("<SEVERITY>:  <SQLSTATE>: <message>"): language-independent, unlike
/// the rest of a message the server translated.
inline std::string sqlstate_in_message(std::string_view msg) {
    for (std::size_t pos = msg.find(":  "); pos != std::string_view::npos; pos = msg.find(":  ", pos + 1)) {
        std::string_view rest = msg.substr(pos + 3);
        if (rest.size() < 7 || rest[5] != ':' || rest[6] != ' ') continue;
        bool ok = true;
        for (int i = 0; i < 5 && ok; ++i) ok = std::isdigit(static_cast<unsigned char>(rest[i])) || std::isupper(static_cast<unsigned char>(rest[i]));
        if (ok) return std::string(rest.substr(0, 5));
    }
    return {};
}

/// The lines of a verbose connection error message worth showing: those
/// naming a server error (its SQLSTATE removed) or else the first one.
inline std::string connect_message(const std::string& verbose, const std::string& sqlstate) {
    std::string out, first;
    std::istringstream in(verbose);
    for (std::string line; std::getline(in, line);) {
        if (line.empty()) continue;
        if (first.empty()) first = line;
        if (!sqlstate.empty()) {
            auto pos = line.find(":  " + sqlstate + ": ");
            if (pos == std::string::npos) continue;
            line.erase(pos + 3, sqlstate.size() + 2);
            if (!out.empty()) out += "; ";
            out += line;
        }
    }
    return out.empty() ? first : out;
}

struct ConnectAttempt {
    ConnPtr pg;
    std::string message;   ///< without the password
    std::string sqlstate;  ///< the server's, when it sent an error
    bool used_password = false;
    bool timed_out = false;
    bool aborted = false;
};

/// Opens a connection without blocking past `d` (nor past `abort`).  The
/// notice processor is installed before the first message can arrive, so
/// libpq never prints to stderr.
inline ConnectAttempt open_connection(const std::vector<std::pair<std::string, std::string>>& params, const std::string* password,
                              bool expand_dbname, const Deadline& d, const std::atomic<bool>* abort = nullptr) {
    std::vector<const char*> keys, vals;
    for (const auto& p : params) {
        keys.push_back(p.first.c_str());
        vals.push_back(p.second.c_str());
    }
    if (password) {
        keys.push_back("password");
        vals.push_back(password->c_str());
    }
    keys.push_back(nullptr);
    vals.push_back(nullptr);
    ConnectAttempt a;
    a.pg.reset(PQconnectStartParams(keys.data(), vals.data(), expand_dbname ? 1 : 0));
    if (!a.pg) {
        a.message = "out of memory opening a connection";
        return a;
    }
    PQsetNoticeProcessor(a.pg.get(), &ignore_notice, nullptr);
    PQsetErrorVerbosity(a.pg.get(), PQERRORS_VERBOSE);  // errors carry their SQLSTATE
    PostgresPollingStatusType st = PQstatus(a.pg.get()) == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        const int fd = PQsocket(a.pg.get());
        if (fd < 0) break;
        if (!wait_socket(fd, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, d, abort)) {
            a.timed_out = d.expired();
            a.aborted = !a.timed_out;
            a.message = a.timed_out ? "the server did not complete the connection within the deadline" : "the pool is closing";
            a.pg.reset();
            return a;
        }
        st = PQconnectPoll(a.pg.get());
    }
    if (st == PGRES_POLLING_OK && PQstatus(a.pg.get()) == CONNECTION_OK) {
        PQsetErrorVerbosity(a.pg.get(), PQERRORS_DEFAULT);
        if (PQsetnonblocking(a.pg.get(), 1) != 0) {
            a.message = "could not make the connection non-blocking";
            a.pg.reset();
        }
        return a;
    }
    const std::string verbose = clean_message(PQerrorMessage(a.pg.get()));
    a.sqlstate = sqlstate_in_message(verbose);
    a.message = connect_message(verbose, a.sqlstate);
    if (password) a.message = redact(a.message, *password);
    a.used_password = PQconnectionUsedPassword(a.pg.get()) != 0;
    a.pg.reset();
    return a;
}

inline std::string fallback_sql(const std::string& path_option) {
    std::string path = path_option.empty() ? getenv_str("FASTPGCACHE_FALLBACK_SQL") : path_option;
#ifdef FASTPGCACHE_HAVE_EMBEDDED_FALLBACK
    if (path.empty()) return std::string(kFallbackSql);
#endif
    if (path.empty())
        throw Error("the fastpgcache extension is not available and the SQL fallback is not compiled in: "
                    "set Options::fallback_sql_path or FASTPGCACHE_FALLBACK_SQL to fallback/fastpgcache_fallback.sql");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("cannot read the fastpgcache SQL fallback file " + path);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

/// A system CA bundle for sslrootcert (PostgreSQL 15's libpq has no
/// sslrootcert=system): Debian/Ubuntu, RHEL/Fedora, SUSE, Alpine/macOS.
inline std::string system_ca_bundle() {
    for (const char* p : {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                          "/etc/ssl/ca-bundle.pem", "/etc/ssl/cert.pem"})
        if (::access(p, R_OK) == 0) return p;
    return {};
}

inline bool sslmode_encrypts(const std::string& m) {
    return m == "require" || m == "verify-ca" || m == "verify-full";
}

/// The libpq keyword/value pairs a pool connects with (without the
/// password).  `token_auth`: the password comes from a token provider set by
/// the application, so it must travel over TLS: sslmode verify-full by
/// default (require or verify-ca when set explicitly); disable, allow and
/// prefer are a ConfigError unless every host is local.  Throws ConfigError
/// for a connection string libpq cannot parse; libpq's own message is never
/// shown, since it can quote the password.
inline std::vector<std::pair<std::string, std::string>> connection_params(const Options& opts, bool token_auth = false) {
    std::vector<std::pair<std::string, std::string>> params;
    std::string hosts, hostaddrs, sslmode;
    bool sslrootcert_given = false;
    bool has_timeout = false, has_app = false, has_keepalives = false, has_user_timeout = false;
    bool has_kidle = false, has_kint = false, has_kcount = false;
    if (!opts.connection_string.empty()) {
        char* err = nullptr;
        PQconninfoOption* parsed = PQconninfoParse(opts.connection_string.c_str(), &err);
        if (!parsed) {
            if (err) PQfreemem(err);  // may quote any part of the string, the password included
            throw ConfigError("invalid connection string: libpq could not parse it (its message is not shown because it can contain the password)");
        }
        for (PQconninfoOption* o = parsed; o->keyword; ++o) {
            if (!o->val) continue;
            const std::string kw = o->keyword;
            if (kw == "host") hosts = o->val;
            else if (kw == "hostaddr") hostaddrs = o->val;
            else if (kw == "sslmode") sslmode = o->val;
            else if (kw == "sslrootcert") sslrootcert_given = true;
            else if (kw == "connect_timeout") has_timeout = true;
            else if (kw == "application_name") has_app = true;
            else if (kw == "keepalives") has_keepalives = true;
            else if (kw == "keepalives_idle") has_kidle = true;
            else if (kw == "keepalives_interval") has_kint = true;
            else if (kw == "keepalives_count") has_kcount = true;
            else if (kw == "tcp_user_timeout") has_user_timeout = true;
        }
        PQconninfoFree(parsed);
        params.emplace_back("dbname", opts.connection_string);
    } else {
        params.emplace_back("host", opts.host);
        params.emplace_back("port", std::to_string(opts.port));
        params.emplace_back("dbname", opts.database);
        params.emplace_back("user", opts.user);
        hosts = opts.host;
    }
    if (hosts.empty() && hostaddrs.empty()) hosts = getenv_str("PGHOST");
    if (hostaddrs.empty() && hosts.empty()) hostaddrs = getenv_str("PGHOSTADDR");
    // connect_timeout is enforced by the client (libpq ignores it in the
    // asynchronous API); it is passed on for completeness.
    if (!has_timeout && opts.connect_timeout.count() > 0)
        params.emplace_back("connect_timeout", std::to_string(opts.connect_timeout.count()));
    if (!has_app && !opts.application_name.empty()) params.emplace_back("application_name", opts.application_name);
    if (!has_keepalives) params.emplace_back("keepalives", "1");
    if (!has_kidle && opts.keepalives_idle.count() > 0)
        params.emplace_back("keepalives_idle", std::to_string(opts.keepalives_idle.count()));
    if (!has_kint && opts.keepalives_interval.count() > 0)
        params.emplace_back("keepalives_interval", std::to_string(opts.keepalives_interval.count()));
    if (!has_kcount && opts.keepalives_count > 0) params.emplace_back("keepalives_count", std::to_string(opts.keepalives_count));
    if (!has_user_timeout && opts.tcp_user_timeout.count() > 0)
        params.emplace_back("tcp_user_timeout", std::to_string(opts.tcp_user_timeout.count()));

    if (!opts.sslrootcert.empty()) {
        params.emplace_back("sslrootcert", opts.sslrootcert);
        sslrootcert_given = true;
    }
    if (!getenv_str("PGSSLROOTCERT").empty()) sslrootcert_given = true;
    if (!opts.sslmode.empty()) sslmode = opts.sslmode;
    const bool from_env = sslmode.empty() && !getenv_str("PGSSLMODE").empty();
    if (from_env) sslmode = getenv_str("PGSSLMODE");
    // A host name decides, not hostaddr: host=db.example.com hostaddr=127.0.0.1
    // is treated as the remote server it names.
    const bool local = all_hosts_local(hosts.empty() ? hostaddrs : hosts);
    bool default_verify = false;
    if (token_auth && !local) {
        if (sslmode.empty()) {
            default_verify = true;
        } else if (!sslmode_encrypts(sslmode)) {
            throw ConfigError("sslmode=" + sslmode + (from_env ? " (from PGSSLMODE)" : "") +
                              " is refused with a token provider: the token would travel without TLS to " +
                              (hosts.empty() ? hostaddrs : hosts) +
                              "; use verify-full (the default), verify-ca, or require (no certificate check)");
        }
    } else if (sslmode.empty() && is_databricks_host(hosts)) {
        default_verify = true;  // Lakebase: the password is a workspace-issued token
    }
    if (default_verify) {
        // Verify the server's certificate and name, so a man in the middle
        // cannot collect the token.
        params.emplace_back("sslmode", "verify-full");
        if (!sslrootcert_given) {
            std::string bundle = system_ca_bundle();
            if (!bundle.empty()) params.emplace_back("sslrootcert", bundle);
        }
    } else if (!opts.sslmode.empty()) {
        params.emplace_back("sslmode", opts.sslmode);
    }
    if (opts.statement_timeout.count() > 0)
        params.emplace_back("options", "-c statement_timeout=" + std::to_string(opts.statement_timeout.count()));
    return params;
}

}  // namespace detail

}  // namespace fastpgcache
