// fastpgcache/client/connection.hpp - one libpq connection, its prepared statements, connection parameters
// Part of the C++ client; include <fastpgcache/client.hpp>.
#pragma once

#include <fastpgcache/client/errors.hpp>
#include <fastpgcache/client/options.hpp>
#include <fastpgcache/client/util.hpp>

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

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

constexpr Oid kTextOid = 25, kInt4Oid = 23, kJsonbOid = 3802, kByteaOid = 17, kTextArrayOid = 1009;

enum Stmt : unsigned {
    kSetText, kSetJson, kSetBytes, kGet, kGetJson, kGetBytes, kDelete, kExists, kTtl, kCleanup, kMGet, kMSet, kStmtCount
};

struct StmtDef {
    const char* name;
    const char* sql;  ///< "@S@" stands for the (quoted) schema of the cache functions
    int nparams;
    Oid types[3];
};

inline const StmtDef& stmt_def(Stmt s) {
    static const StmtDef defs[kStmtCount] = {
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
    };
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
/// operation's statement may have reached the server (then only idempotent
/// operations are retried).
class ConnectionLost : public ConnectionError {
public:
    ConnectionLost(const std::string& m, bool sent) : ConnectionError(m, "08006"), sent_(sent) {}
    bool sent() const noexcept { return sent_; }

private:
    bool sent_;
};

inline std::string clean_message(const char* msg) {
    std::string s = msg ? msg : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

struct Conn;

/// Where the cache functions live: the fastpgcache extension's schema
/// (pg_extension.extnamespace), or public (the SQL fallback).  Looked up once
/// per pool on first use, and again by setup().  Shared by the pool's
/// connections.
class StatementSource {
public:
    /// The statements for the current schema, looking the schema up over `c`
    /// the first time.
    std::shared_ptr<const Statements> get(Conn& c);
    /// Sets the schema (after setup()); connections re-prepare.
    void set_schema(Conn& c, const std::string& schema);
    std::string schema() const {
        std::lock_guard<std::mutex> lk(mu_);
        return current_ ? current_->schema : std::string();
    }

private:
    mutable std::mutex mu_;
    std::shared_ptr<const Statements> current_;
    unsigned generation_ = 0;
};

struct Conn {
    ConnPtr pg;
    std::chrono::steady_clock::time_point created = std::chrono::steady_clock::now();
    std::shared_ptr<StatementSource> source;
    std::shared_ptr<const Statements> stmts;  ///< what `prepared` refers to
    std::uint32_t prepared = 0;
    /// Set when the application had the raw PGconn (Session::native()): its
    /// session state (SET ROLE, search_path, ...) is unknown, so the pool
    /// closes the connection instead of reusing it.
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

    ResultPtr exec(Stmt s, const char* const* values, const int* lengths, const int* formats, int result_format) {
        auto current = source->get(*this);
        if (current != stmts) {
            stmts = std::move(current);
            prepared = 0;
        }
        const StmtDef& d = stmt_def(s);
        if (!(prepared & (1u << s))) {
            // Nothing of the operation has run yet if the connection breaks here.
            ResultPtr p(PQprepare(pg.get(), stmts->name[s].c_str(), stmts->sql[s].c_str(), d.nparams, d.types));
            check(p, PGRES_COMMAND_OK, false);
            prepared |= 1u << s;
        }
        ResultPtr r(PQexecPrepared(pg.get(), stmts->name[s].c_str(), d.nparams, values, lengths, formats, result_format));
        check(r, PGRES_TUPLES_OK);
        return r;
    }

    /// Runs fixed SQL text (never built from user input).
    ResultPtr exec_sql(const char* sql, ExecStatusType want, bool sent = true) {
        ResultPtr r(PQexec(pg.get(), sql));
        check(r, want, sent);
        return r;
    }

    /// Runs SQL with text parameters.
    ResultPtr exec_params(const char* sql, const std::vector<std::string>& params, ExecStatusType want, bool sent = true) {
        std::vector<const char*> vals;
        for (const auto& p : params) vals.push_back(p.c_str());
        ResultPtr r(PQexecParams(pg.get(), sql, static_cast<int>(vals.size()), nullptr, vals.data(), nullptr, nullptr, 0));
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
inline std::optional<std::string> extension_schema(Conn& c, bool sent = true) {
    auto r = c.exec_sql(
        "SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'fastpgcache'",
        PGRES_TUPLES_OK, sent);
    if (PQntuples(r.get()) != 1) return std::nullopt;
    return std::string(PQgetvalue(r.get(), 0, 0));
}

inline std::shared_ptr<const Statements> StatementSource::get(Conn& c) {
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (current_) return current_;
    }
    // First use: no statement of the operation has been sent yet.
    std::string schema = extension_schema(c, false).value_or("public");
    std::string quoted = c.quote_ident(schema);
    std::lock_guard<std::mutex> lk(mu_);
    if (!current_) current_ = make_statements(schema, quoted, ++generation_);
    return current_;
}

inline void StatementSource::set_schema(Conn& c, const std::string& schema) {
    std::string quoted = c.quote_ident(schema);
    std::lock_guard<std::mutex> lk(mu_);
    if (current_ && current_->schema == schema) return;
    current_ = make_statements(schema, quoted, ++generation_);
}

inline void ignore_notice(void*, const char*) {}

/// Text-format array literal for a text[] parameter (the elements are data,
/// quoted and escaped per the array input syntax, and sent as a parameter).
inline std::string text_array_literal(const std::vector<std::string>& items) {
    std::string out = "{";
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += ',';
        out += '"';
        for (char c : items[i]) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += '"';
    }
    out += '}';
    return out;
}

}  // namespace detail

namespace detail {

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

/// The libpq keyword/value pairs a pool connects with (without the
/// password).  Throws ConfigError for a connection string libpq cannot parse;
/// libpq's own message is never shown, since it can quote the password.
inline std::vector<std::pair<std::string, std::string>> connection_params(const Options& opts) {
    std::vector<std::pair<std::string, std::string>> params;
    std::string host_for_ssl;
    bool sslmode_given = false, sslrootcert_given = false;
    if (!opts.connection_string.empty()) {
        char* err = nullptr;
        PQconninfoOption* parsed = PQconninfoParse(opts.connection_string.c_str(), &err);
        if (!parsed) {
            if (err) PQfreemem(err);  // may quote any part of the string, the password included
            throw ConfigError("invalid connection string: libpq could not parse it (its message is not shown because it can contain the password)");
        }
        bool has_timeout = false, has_app = false;
        for (PQconninfoOption* o = parsed; o->keyword; ++o) {
            if (!o->val) continue;
            std::string kw = o->keyword;
            if (kw == "host" || kw == "hostaddr") host_for_ssl += std::string(o->val) + ",";
            if (kw == "sslmode") sslmode_given = true;
            if (kw == "sslrootcert") sslrootcert_given = true;
            if (kw == "connect_timeout") has_timeout = true;
            if (kw == "application_name") has_app = true;
        }
        PQconninfoFree(parsed);
        params.emplace_back("dbname", opts.connection_string);
        if (!has_timeout && opts.connect_timeout.count() > 0)
            params.emplace_back("connect_timeout", std::to_string(opts.connect_timeout.count()));
        if (!has_app && !opts.application_name.empty()) params.emplace_back("application_name", opts.application_name);
    } else {
        params.emplace_back("host", opts.host);
        params.emplace_back("port", std::to_string(opts.port));
        params.emplace_back("dbname", opts.database);
        params.emplace_back("user", opts.user);
        host_for_ssl = opts.host;
        if (opts.connect_timeout.count() > 0)
            params.emplace_back("connect_timeout", std::to_string(opts.connect_timeout.count()));
        if (!opts.application_name.empty()) params.emplace_back("application_name", opts.application_name);
    }
    if (host_for_ssl.empty()) host_for_ssl = getenv_str("PGHOST");
    if (!opts.sslrootcert.empty()) {
        params.emplace_back("sslrootcert", opts.sslrootcert);
        sslrootcert_given = true;
    }
    if (!getenv_str("PGSSLROOTCERT").empty()) sslrootcert_given = true;
    if (!opts.sslmode.empty()) {
        params.emplace_back("sslmode", opts.sslmode);
    } else if (!sslmode_given && getenv_str("PGSSLMODE").empty() && is_databricks_host(host_for_ssl)) {
        // The password is a workspace-issued token: verify the server's
        // certificate and name, so a man in the middle cannot collect it.
        params.emplace_back("sslmode", "verify-full");
        if (!sslrootcert_given) {
            std::string bundle = system_ca_bundle();
            if (!bundle.empty()) params.emplace_back("sslrootcert", bundle);
        }
    }
    if (opts.statement_timeout.count() > 0)
        params.emplace_back("options", "-c statement_timeout=" + std::to_string(opts.statement_timeout.count()));
    return params;
}

}  // namespace detail

}  // namespace fastpgcache
