// Tests of include/fastpgcache/client.hpp against a real PostgreSQL cluster
// and a fake Databricks workspace (test/client/fake_databricks.py).
// Driven by test/client/run.sh through environment variables:
//   client_tests api         FPC_HOST FPC_PORT FPC_DB FPC_USER FPC_PASSWORD
//                            FPC_EXPECT_BACKEND (extension|fallback) FPC_USE_EXTENSION (0|1)
//                            FPC_SUPER_CONNINFO (superuser, for pg_terminate_backend)
//   client_tests upgrade     FPC_HOST FPC_PORT FPC_SUPER_CONNINFO FPC_SUPER_PASSWORD FPC_APP_PASSWORD
//                            FPC_EXT_AVAILABLE (0|1) FPC_FALLBACK10 (test/client/fallback-1.0.sql)
//                            FPC_FALLBACK11 (fallback/fastpgcache_fallback.sql):
//                            fastpgcache 1.0 on the server (fallback, extension): the 1.1
//                            commands' 42883 messages, setup() upgrading a 1.0 fallback
//   client_tests misc        FPC_HOST FPC_PORT FPC_SUPER_CONNINFO FPC_SUPER_PASSWORD FPC_APP_PASSWORD
//                            FPC_EXT_AVAILABLE (0|1): connection strings, TLS defaults,
//                            extension schemas, a hijacked fallback table
//                            TLS: FPC_RECORDER_PORT FPC_RECORD_FILE FPC_TLS_CA FPC_TLS_HOSTNAME
//                            FPC_TLS_USER FPC_TLS_PASSWORD; German server: FPC_DE_PORT
//                            FPC_DE_USER FPC_DE_PASSWORD
//   client_tests databricks  FPC_HOST FPC_PORT FPC_DB FPC_USER FPC_SUPER_CONNINFO
//                            FPC_DBX_URL FPC_DBX_PAT FPC_DBX_CLIENT_ID FPC_DBX_CLIENT_SECRET
//                            FPC_DBX_INSTANCE FPC_DBX_ENDPOINT FPC_FAKE_CLI_DIR FPC_SOAK_SECONDS FPC_TMP
//   client_tests freeze      api variables + FPC_PGDATA: SIGSTOPs the cluster (deadlines)
//   client_tests restart     api variables + FPC_RESTART_CMD (crash restart of the server)
// api also uses FPC_REDIS_PORT (a reference redis-server: the commands are compared with its answers).
// Prints TAP-like lines and a final "RESULT <passed> <failed>".
#include <fastpgcache/client.hpp>

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <future>
#include <iostream>
#include <iterator>
#include <limits>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
using fastpgcache::Backend;
using fastpgcache::FastPgCache;
using fastpgcache::Options;
using nlohmann::json;

namespace {

std::atomic<int> g_pass{0}, g_fail{0};
std::mutex g_out;

std::string one_line(std::string s) {
    for (char& c : s)
        if (c == '\n' || c == '\r') c = ' ';
    return s;
}

void report(bool ok, const std::string& raw_name, const std::string& raw_detail = {}) {
    const std::string name = one_line(raw_name), detail = one_line(raw_detail);
    std::lock_guard<std::mutex> lk(g_out);
    if (ok) {
        ++g_pass;
        std::cout << "ok - " << name << "\n";
    } else {
        ++g_fail;
        std::cout << "not ok - " << name << (detail.empty() ? "" : ": " + detail) << "\n";
    }
    std::cout.flush();
}

#define CHECK(cond, name) report(static_cast<bool>(cond), name, #cond)

template <class F>
void test(const std::string& name, F&& fn) {
    try {
        fn();
    } catch (const fastpgcache::Error& e) {
        report(false, name, std::string("unexpected fastpgcache::Error [") + e.sqlstate() + "] " + e.what());
    } catch (const std::exception& e) {
        report(false, name, std::string("unexpected exception: ") + e.what());
    }
}

// Runs fn, expects an exception of type E with the given SQLSTATE (if non-empty).
template <class E, class F>
void expect_error(const std::string& name, const std::string& sqlstate, F&& fn, std::string* what_out = nullptr) {
    try {
        fn();
        report(false, name, "no exception");
    } catch (const E& e) {
        if (what_out) *what_out = e.what();
        if (!sqlstate.empty() && e.sqlstate() != sqlstate)
            report(false, name, "SQLSTATE " + e.sqlstate() + " (expected " + sqlstate + "): " + e.what());
        else
            report(true, name);
    } catch (const std::exception& e) {
        report(false, name, std::string("wrong exception type: ") + e.what());
    }
}

std::string env(const char* name, const std::string& def = {}) {
    const char* v = std::getenv(name);
    return v ? std::string(v) : def;
}

// Runs fn on another thread; if it has not finished within `limit` (a
// deadlock, a spin), reports the failure and ends the process.
template <class F>
void within(std::chrono::seconds limit, const std::string& name, F&& fn) {
    auto done = std::make_shared<std::promise<void>>();
    auto fut = done->get_future();
    std::thread([done, &fn] {
        try {
            fn();
            done->set_value();
        } catch (...) {
            done->set_exception(std::current_exception());
        }
    }).detach();
    if (fut.wait_for(limit) != std::future_status::ready) {
        report(false, name, "did not finish within " + std::to_string(limit.count()) + " s (deadlock or spin)");
        std::cout << "RESULT " << g_pass << " " << g_fail << std::endl;
        std::_Exit(1);
    }
    fut.get();  // rethrows
}

// ttl() read right after a set with `ttl` seconds: it rounds up, so it is
// `ttl` unless a second boundary passed; under load (ASan, a busy machine)
// allow the seconds that really elapsed, measured around the calls.
bool ttl_ok(long long got, long long ttl, std::chrono::steady_clock::time_point since) {
    auto elapsed = std::chrono::steady_clock::now() - since;
    long long slack = std::chrono::ceil<std::chrono::seconds>(elapsed).count();
    return got <= ttl && got >= std::max<long long>(1, ttl - slack);
}

// Superuser connection over the unix socket (test control only).
struct Super {
    fastpgcache::detail::ConnPtr conn;
    explicit Super(const std::string& dbname = {})
        : conn(PQconnectdb((env("FPC_SUPER_CONNINFO") + (dbname.empty() ? "" : " dbname=" + dbname)).c_str())) {
        if (PQstatus(conn.get()) != CONNECTION_OK) throw std::runtime_error("superuser connection failed");
    }
    void exec(const std::string& sql) {
        fastpgcache::detail::ResultPtr r(PQexec(conn.get(), sql.c_str()));
        auto st = PQresultStatus(r.get());
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
            throw std::runtime_error("super: " + sql.substr(0, 60) + ": " + PQerrorMessage(conn.get()));
    }
    std::string value(const std::string& sql, const std::vector<std::string>& params = {}) {
        std::vector<const char*> vals;
        for (auto& p : params) vals.push_back(p.c_str());
        fastpgcache::detail::ResultPtr r(
            PQexecParams(conn.get(), sql.c_str(), static_cast<int>(vals.size()), nullptr, vals.data(), nullptr, nullptr, 0));
        if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) throw std::runtime_error(PQerrorMessage(conn.get()));
        return PQntuples(r.get()) > 0 && !PQgetisnull(r.get(), 0, 0) ? PQgetvalue(r.get(), 0, 0) : "";
    }
    long long scalar_ll(const std::string& sql, const std::string& param) {
        const char* vals[1] = {param.c_str()};
        fastpgcache::detail::ResultPtr r(PQexecParams(conn.get(), sql.c_str(), 1, nullptr, vals, nullptr, nullptr, 0));
        if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) throw std::runtime_error(PQerrorMessage(conn.get()));
        return std::atoll(PQgetvalue(r.get(), 0, 0));
    }
    // Terminates every backend with this application_name; returns how many.
    long long terminate(const std::string& app) {
        long long n = scalar_ll(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", app);
        std::this_thread::sleep_for(300ms);
        return n;
    }
    long long count(const std::string& app) {
        return scalar_ll("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app);
    }
};

std::string ms(std::chrono::steady_clock::duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

// The table the cache functions use in the current database (extension
// schema or public).
template <class S>
std::string cache_table(S& db) {
    const std::string schema = db.value(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relname = 'cache_entries' ORDER BY n.nspname = 'public' LIMIT 1");
    return "\"" + schema + "\".cache_entries";
}

// Runs a redis-cli command against the reference redis-server
// (FPC_REDIS_PORT); returns its output without the trailing newline.
std::string redis(const std::string& cmd) {
    const std::string port = env("FPC_REDIS_PORT");
    if (port.empty()) throw std::runtime_error("FPC_REDIS_PORT is not set: no reference redis-server");
    std::string full = "redis-cli -p " + port + " " + cmd + " 2>&1";
    FILE* p = popen(full.c_str(), "r");
    if (!p) throw std::runtime_error("popen redis-cli failed");
    std::string out;
    char buf[256];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
}
long long redis_int(const std::string& cmd) {
    std::string out = redis(cmd);
    if (out.rfind("(integer) ", 0) == 0) out = out.substr(10);
    return std::stoll(out);
}

// Runs fn with file descriptor 2 redirected to a file; returns what was written.
template <class F>
std::string capture_stderr(F&& fn) {
    std::fflush(stderr);
    std::string path = env("FPC_TMP", "/tmp") + "/stderr-capture." + std::to_string(getpid());
    int saved = dup(2);
    int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600);
    dup2(fd, 2);
    ::close(fd);
    try {
        fn();
    } catch (...) {
        std::fflush(stderr);
        dup2(saved, 2);
        ::close(saved);
        throw;
    }
    std::fflush(stderr);
    dup2(saved, 2);
    ::close(saved);
    std::ifstream in(path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::remove(path.c_str());
    return text;
}

Options base_options(const std::string& app) {
    Options o;
    o.host = env("FPC_HOST", "127.0.0.1");
    o.port = std::atoi(env("FPC_PORT", "5432").c_str());
    o.database = env("FPC_DB", "postgres");
    o.user = env("FPC_USER", "postgres");
    o.password = env("FPC_PASSWORD");
    o.application_name = app;
    o.use_extension = env("FPC_USE_EXTENSION", "1") == "1";
    o.connect_timeout = 5s;
    return o;
}

// ---------------------------------------------------------------------------
// The reference redis-server, through redis-cli (arguments passed verbatim)
// ---------------------------------------------------------------------------

std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') out += "'\\''";
        else out += c;
    }
    return out + "'";
}

std::string redis_cli(const std::vector<std::string>& args, bool raw) {
    const std::string port = env("FPC_REDIS_PORT");
    if (port.empty()) throw std::runtime_error("FPC_REDIS_PORT is not set: no reference redis-server");
    std::string cmd = "redis-cli -p " + port + (raw ? " --raw" : " --no-raw");
    for (const auto& a : args) cmd += " " + shell_quote(a);
    cmd += " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) throw std::runtime_error("popen redis-cli failed");
    std::string out;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
}

// One reply of redis-cli --no-raw.
struct RedisReply {
    enum Kind { Nil, Integer, String, Status, Err } kind = Status;
    std::string text;  // the string (unescaped), the integer, the status or the error message
    bool ok() const { return kind == Status && text == "OK"; }
    long long integer() const {
        if (kind != Integer) throw std::runtime_error("redis: not an integer reply: " + text);
        return std::stoll(text);
    }
    std::optional<std::string> optional() const {
        if (kind == Nil) return std::nullopt;
        if (kind != String) throw std::runtime_error("redis: not a string reply: " + text);
        return text;
    }
    // The SQLSTATE our API gives for the same failure.
    std::string sqlstate() const {
        if (kind != Err) return {};
        if (text.find("overflow") != std::string::npos || text.find("NaN or Infinity") != std::string::npos) return "22003";
        if (text.find("not an integer") != std::string::npos || text.find("not a valid float") != std::string::npos) return "22P02";
        if (text.find("invalid expire time") != std::string::npos) return "22023";
        return "redis:" + text;
    }
};

RedisReply rcall(const std::vector<std::string>& args) {
    const std::string out = redis_cli(args, false);
    RedisReply r;
    if (out == "(nil)") {
        r.kind = RedisReply::Nil;
    } else if (out.rfind("(integer) ", 0) == 0) {
        r.kind = RedisReply::Integer;
        r.text = out.substr(10);
    } else if (out.rfind("(error) ", 0) == 0) {
        r.kind = RedisReply::Err;
        r.text = out.substr(8);
    } else if (out.size() >= 2 && out.front() == '"' && out.back() == '"') {
        r.kind = RedisReply::String;
        for (std::size_t i = 1; i + 1 < out.size(); ++i) {
            char c = out[i];
            if (c == '\\' && i + 2 < out.size()) {
                char e = out[++i];
                if (e == 'n') r.text += '\n';
                else if (e == 'r') r.text += '\r';
                else if (e == 't') r.text += '\t';
                else if (e == 'x' && i + 2 < out.size()) {
                    r.text += static_cast<char>(std::stoi(out.substr(i + 1, 2), nullptr, 16));
                    i += 2;
                } else r.text += e;
            } else {
                r.text += c;
            }
        }
    } else {
        r.kind = RedisReply::Status;
        r.text = out;
    }
    return r;
}

// A multi-bulk reply (KEYS), one element per line (--raw).
std::set<std::string> rset_of(const std::vector<std::string>& args) {
    std::set<std::string> out;
    std::istringstream in(redis_cli(args, true));
    for (std::string line; std::getline(in, line);) out.insert(line);
    return out;
}

std::string show(const std::optional<std::string>& v) { return v ? "\"" + *v + "\"" : std::string("nil"); }
std::string show(long long v) { return std::to_string(v); }
std::string show(bool v) { return v ? "true" : "false"; }
std::string show(const std::set<std::string>& s) {
    std::string out = "{";
    for (const auto& k : s) out += (out.size() > 1 ? "," : "") + k;
    return out + "}";
}

// ours == redis's, reported with both values.
template <class T>
void same(const T& ours, const T& theirs, const std::string& name) {
    report(ours == theirs, name, "fastpgcache " + show(ours) + ", redis-server " + show(theirs));
}

// The SQLSTATE fn raises (empty: none).
template <class F>
std::string sqlstate_of(F&& fn, std::string* what = nullptr) {
    try {
        fn();
    } catch (const fastpgcache::Error& e) {
        if (what) *what = e.what();
        return e.sqlstate().empty() ? std::string("<none>") : e.sqlstate();
    }
    return {};
}

// ---------------------------------------------------------------------------
// The commands of fastpgcache 1.1 (extension and fallback), each compared
// with what redis-server answers to the same sequence
// ---------------------------------------------------------------------------

// Runs op while the cache table is locked, terminates the backend that waits
// for the lock (the statement was sent), then releases the lock.
template <class Op>
auto killed_during(Super& su, Super& lock, const std::string& table, const std::string& app, Op op) {
    lock.exec("BEGIN");
    lock.exec("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE");
    auto fut = std::async(std::launch::async, op);
    bool waiting = false;
    for (int i = 0; i < 200 && !waiting; ++i) {
        waiting = su.value("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
                           {app}) == "1";
        if (!waiting) std::this_thread::sleep_for(50ms);
    }
    su.terminate(app);
    lock.exec("ROLLBACK");
    return std::make_pair(waiting, std::move(fut));
}

void commands11_tests(FastPgCache& cache) {
    using fastpgcache::UpdateType;
    using fastpgcache::keep_ttl;
    const std::string nk("c11:nul\0key", 11), nv("nul\0value", 9);

    test("reference redis-server is empty", [&] { CHECK(rcall({"FLUSHALL"}).ok(), "FLUSHALL"); });

    test("SET NX / XX / KEEPTTL like redis-server", [&] {
        const std::string k = "c11:set";
        cache.del({k, "c11:xx", "c11:kt"});
        same(cache.set(k, "1", {}, UpdateType::NotExist), rcall({"SET", k, "1", "NX"}).ok(), "SET NX of an absent key writes");
        same(cache.set(k, "2", {}, UpdateType::NotExist), rcall({"SET", k, "2", "NX"}).ok(), "SET NX of a live key does not");
        same(cache.get(k), rcall({"GET", k}).optional(), "the value is the first one");
        same(cache.set("c11:xx", "1", 100, UpdateType::Exist), rcall({"SET", "c11:xx", "1", "EX", "100", "XX"}).ok(),
             "SET XX of an absent key does not write");
        same(cache.exists("c11:xx") ? 1LL : 0LL, rcall({"EXISTS", "c11:xx"}).integer(), "and creates nothing");
        same(cache.set(k, std::string("3"), 100, UpdateType::Exist), rcall({"SET", k, "3", "EX", "100", "XX"}).ok(),
             "SET XX of a live key writes");
        same(cache.get(k), rcall({"GET", k}).optional(), "the value is the new one");
        auto t0 = std::chrono::steady_clock::now();
        same(cache.set(k, "4", keep_ttl), rcall({"SET", k, "4", "KEEPTTL"}).ok(), "SET KEEPTTL");
        const long long ttl = cache.ttl(k), rttl = rcall({"TTL", k}).integer();
        report(ttl_ok(ttl, 100, t0) && ttl_ok(rttl, 100, t0), "KEEPTTL keeps the expiry",
               "fastpgcache " + show(ttl) + ", redis-server " + show(rttl));
        same(cache.set(k, "5"), rcall({"SET", k, "5"}).ok(), "a plain SET");
        same(cache.ttl(k), rcall({"TTL", k}).integer(), "a plain SET clears the expiry");
        same(cache.set("c11:kt", "1", keep_ttl, UpdateType::Exist), rcall({"SET", "c11:kt", "1", "KEEPTTL", "XX"}).ok(),
             "SET KEEPTTL XX of an absent key");
        same(cache.set("c11:kt", "1", keep_ttl, UpdateType::NotExist), rcall({"SET", "c11:kt", "1", "KEEPTTL", "NX"}).ok(),
             "SET KEEPTTL NX of an absent key");
        same(cache.ttl("c11:kt"), rcall({"TTL", "c11:kt"}).integer(), "KEEPTTL of an absent key: no expiry");
        // An expired key is absent for NX and XX.
        cache.set(k, "old", 100);
        rcall({"SET", k, "old", "EX", "100"});
        CHECK(cache.pexpire(k, 1) && rcall({"PEXPIRE", k, "1"}).integer() == 1, "(expire in 1 ms)");
        std::this_thread::sleep_for(20ms);
        same(cache.set(k, "x", {}, UpdateType::Exist), rcall({"SET", k, "x", "XX"}).ok(), "SET XX of an expired key");
        same(cache.set(k, "new", {}, UpdateType::NotExist), rcall({"SET", k, "new", "NX"}).ok(), "SET NX of an expired key");
        same(cache.ttl(k), rcall({"TTL", k}).integer(), "it has no expiry");
    });

    test("SET options on JSON and bytes values", [&] {
        const json a = {{"a", 1}}, b = {{"b", 2}};
        cache.del({"c11:j", "c11:y"});
        auto t0 = std::chrono::steady_clock::now();
        CHECK(cache.set("c11:j", a, 100, UpdateType::NotExist), "set(json, NX) of an absent key");
        CHECK(!cache.set("c11:j", b, {}, UpdateType::NotExist), "set(json, NX) of a live key: false");
        CHECK(cache.set("c11:j", b, keep_ttl, UpdateType::Exist), "set(json, KEEPTTL, XX)");
        CHECK(cache.get_json("c11:j") == b && ttl_ok(cache.ttl("c11:j"), 100, t0), "the JSON value with the expiry kept");
        CHECK(cache.type("c11:j") == std::optional<std::string>("json"), "type() is json");
        const std::string bin("\x00\xff\x01", 3);
        CHECK(!cache.set_bytes("c11:y", bin, 50, UpdateType::Exist), "set_bytes(XX) of an absent key: false");
        CHECK(cache.set_bytes("c11:y", bin, 50, UpdateType::NotExist), "set_bytes(NX)");
        t0 = std::chrono::steady_clock::now();
        CHECK(cache.set_bytes("c11:y", "raw", keep_ttl), "set_bytes(KEEPTTL)");
        CHECK(cache.get_bytes("c11:y") == std::optional<std::string>("raw") && ttl_ok(cache.ttl("c11:y"), 50, t0) &&
                  cache.type("c11:y") == std::optional<std::string>("bytes"),
              "bytes with the expiry kept, type bytes");
        expect_error<fastpgcache::Error>("set(NUL in the key, NX): 22021", "22021", [&] { cache.set(nk, "v", {}, UpdateType::NotExist); });
        expect_error<fastpgcache::Error>("set(NUL in the value, KEEPTTL): 22021", "22021", [&] { cache.set("c11:nulv", nv, keep_ttl); });
        expect_error<fastpgcache::Error>("set(ttl 0, XX): 22023", "22023", [&] { cache.set("c11:j", "v", 0, UpdateType::Exist); });
        const char* null_value = nullptr;
        expect_error<fastpgcache::Error>("set(nullptr, KEEPTTL): 22004", "22004", [&] { cache.set("c11:j", null_value, keep_ttl); });
        CHECK(!cache.exists("c11:nulv"), "nothing was written");
    });

    test("SET NX: 8 threads on one fresh key, exactly one writes", [&] {
        cache.del("c11:nxrace");
        std::atomic<int> wins{0}, errors{0};
        std::vector<std::thread> ts;
        for (int t = 0; t < 8; ++t)
            ts.emplace_back([&, t] {
                try {
                    if (cache.set("c11:nxrace", std::to_string(t), {}, UpdateType::NotExist)) ++wins;
                } catch (const std::exception&) {
                    ++errors;
                }
            });
        for (auto& t : ts) t.join();
        CHECK(wins == 1 && errors == 0, "one true, seven false (" + std::to_string(wins) + " true, " + std::to_string(errors) + " errors)");
    });

    test("GETSET like redis-server", [&] {
        const std::string k = "c11:getset";
        cache.del(k);
        same(cache.getset(k, "a"), rcall({"SET", k, "a", "GET"}).optional(), "GETSET of an absent key: nil");
        same(cache.getset(k, "b", 100), rcall({"SET", k, "b", "EX", "100", "GET"}).optional(), "GETSET returns the old value");
        same(cache.ttl(k) > 90, rcall({"TTL", k}).integer() > 90, "with EX: the new expiry");
        same(cache.getset(k, "c"), rcall({"SET", k, "c", "GET"}).optional(), "GETSET again");
        same(cache.ttl(k), rcall({"TTL", k}).integer(), "without a ttl: no expiry");
        same(cache.get(k), rcall({"GET", k}).optional(), "the value");
        cache.set_bytes("c11:gsb", std::string("\xff\xfe", 2));
        expect_error<fastpgcache::Error>("GETSET of a bytes value that is not text: 22021", "22021",
                                         [&] { cache.getset("c11:gsb", "x"); });
        CHECK(cache.get_bytes("c11:gsb") == std::string("\xff\xfe", 2), "and nothing was written");
        expect_error<fastpgcache::Error>("getset: ttl 0 is 22023", "22023", [&] { cache.getset(k, "x", 0); });
        expect_error<fastpgcache::Error>("getset: NUL in the key", "22021", [&] { cache.getset(nk, "x"); });
        expect_error<fastpgcache::Error>("getset: NUL in the value", "22021", [&] { cache.getset(k, nv); });
        CHECK(cache.get(k) == std::optional<std::string>("c"), "the refused calls changed nothing");
    });

    test("INCR / INCRBY / DECR / DECRBY like redis-server", [&] {
        const std::string k = "c11:n";
        cache.del(k);
        same(cache.incr(k), rcall({"INCR", k}).integer(), "INCR of an absent key");
        same(cache.incrby(k, 10), rcall({"INCRBY", k, "10"}).integer(), "INCRBY 10");
        same(cache.decr(k), rcall({"DECR", k}).integer(), "DECR");
        same(cache.decrby(k, 20), rcall({"DECRBY", k, "20"}).integer(), "DECRBY 20");
        same(cache.incrby(k, -5), rcall({"INCRBY", k, "-5"}).integer(), "INCRBY -5");
        same(cache.decrby("c11:n2", -7), rcall({"DECRBY", "c11:n2", "-7"}).integer(), "DECRBY of an absent key");
        same(cache.get(k), rcall({"GET", k}).optional(), "the stored text");
        // Redis's strict integer form: the same values are refused (22P02 for
        // "not an integer", 22003 for overflow) and left unchanged.
        for (const std::string v : {"abc", " 1", "1 ", "+1", "01", "-0", "", "1.5", "1e3", "00", "0x10", "9223372036854775808",
                                    "-9223372036854775809", "9223372036854775807", "-9223372036854775808", "0", "-1"}) {
            cache.set("c11:v", v);
            rcall({"SET", "c11:v", v});
            long long got = 0;
            const std::string st = sqlstate_of([&] { got = cache.incr("c11:v"); });
            const RedisReply r = rcall({"INCR", "c11:v"});
            report(st == r.sqlstate() && (!st.empty() || got == r.integer()), "INCR of \"" + v + "\"",
                   "fastpgcache [" + st + "] " + show(got) + ", redis-server " + r.text);
            if (!st.empty()) CHECK(cache.get("c11:v") == std::optional<std::string>(v), "  the refused INCR left \"" + v + "\" unchanged");
        }
        cache.set("c11:v", "9223372036854775000");
        rcall({"SET", "c11:v", "9223372036854775000"});
        same(sqlstate_of([&] { cache.incrby("c11:v", 1000); }), rcall({"INCRBY", "c11:v", "1000"}).sqlstate(),
             "INCRBY past INT64_MAX: 22003 like redis's overflow error");
        cache.set("c11:v", "-1");
        rcall({"SET", "c11:v", "-1"});
        same(sqlstate_of([&] { cache.decrby("c11:v", std::numeric_limits<long long>::min()); }),
             rcall({"DECRBY", "c11:v", "-9223372036854775808"}).sqlstate(), "DECRBY INT64_MIN: 22003 like redis");
        same(cache.decrby("c11:v", std::numeric_limits<long long>::max()),
             rcall({"DECRBY", "c11:v", "9223372036854775807"}).integer(), "DECRBY INT64_MAX of -1: INT64_MIN");
        same(sqlstate_of([&] { cache.decr("c11:v"); }), rcall({"DECR", "c11:v"}).sqlstate(), "DECR of INT64_MIN: 22003 like redis");
        cache.set_bytes("c11:nb", std::string("\xff", 1));
        expect_error<fastpgcache::Error>("INCR of a bytes value: 22P02", "22P02", [&] { cache.incr("c11:nb"); });
        expect_error<fastpgcache::Error>("incr: NUL in the key", "22021", [&] { cache.incr(nk); });
        expect_error<fastpgcache::Error>("decr: NUL in the key", "22021", [&] { cache.decr(nk); });
        expect_error<fastpgcache::Error>("incr: ttl 0 is 22023", "22023", [&] { cache.incr("c11:n3", 0); });
        CHECK(!cache.exists("c11:n3"), "and nothing was created");
    });

    test("INCR with a ttl: the expiry starts with the key (a fixed window)", [&] {
        const std::string k = "c11:rl";
        cache.del(k);
        auto t0 = std::chrono::steady_clock::now();
        CHECK(cache.incr(k, 60s) == 1 && ttl_ok(cache.ttl(k), 60, t0), "the first incr creates the key with the ttl");
        CHECK(cache.incr(k, 5) == 2 && ttl_ok(cache.ttl(k), 60, t0), "a live key keeps its expiry (the ttl is ignored)");
        CHECK(cache.incrby(k, 3, 5) == 5, "incrby with a ttl");
        cache.set("c11:rl2", "7");
        CHECK(cache.incr("c11:rl2", 30) == 8 && cache.ttl("c11:rl2") == -1, "a live key without expiry keeps none");
        CHECK(cache.pexpire(k, 1), "(expire the window)");
        std::this_thread::sleep_for(20ms);
        t0 = std::chrono::steady_clock::now();
        CHECK(cache.incr(k, 30) == 1 && ttl_ok(cache.ttl(k), 30, t0), "after the window expired: 1 and a new window");
    });

    test("INCRBYFLOAT like redis-server", [&] {
        const std::string k = "c11:f";
        cache.del(k);
        for (const char* by : {"10.5", "0.25", "-3.75", "5.0e3", "-5007", "3e2", "-0.125"}) {
            const double ours = cache.incrbyfloat(k, std::strtod(by, nullptr));
            const RedisReply r = rcall({"INCRBYFLOAT", k, by});
            report(r.kind == RedisReply::String && ours == std::strtod(r.text.c_str(), nullptr),
                   std::string("INCRBYFLOAT ") + by, "fastpgcache " + std::to_string(ours) + ", redis-server " + r.text);
            same(cache.get(k), rcall({"GET", k}).optional(), std::string("  the stored text after INCRBYFLOAT ") + by);
        }
        for (const std::string v : {"abc", " 1", "1 ", "", "1e2", ".5", "-.5e1", "nan", "inf", "7"}) {
            cache.set("c11:fv", v);
            rcall({"SET", "c11:fv", v});
            double got = 0;
            const std::string st = sqlstate_of([&] { got = cache.incrbyfloat("c11:fv", 1.0); });
            const RedisReply r = rcall({"INCRBYFLOAT", "c11:fv", "1"});
            report(st == r.sqlstate() && (!st.empty() || got == std::strtod(r.text.c_str(), nullptr)),
                   "INCRBYFLOAT 1 of \"" + v + "\"", "fastpgcache [" + st + "] " + std::to_string(got) + ", redis-server " + r.text);
            if (st.empty()) same(cache.get("c11:fv"), rcall({"GET", "c11:fv"}).optional(), "  the stored text");
            else CHECK(cache.get("c11:fv") == std::optional<std::string>(v), "  the refused INCRBYFLOAT left \"" + v + "\" unchanged");
        }
        cache.set("c11:fv", "1");
        rcall({"SET", "c11:fv", "1"});
        same(sqlstate_of([&] { cache.incrbyfloat("c11:fv", std::numeric_limits<double>::infinity()); }),
             rcall({"INCRBYFLOAT", "c11:fv", "inf"}).sqlstate(), "INCRBYFLOAT inf: 22003 like redis");
        expect_error<fastpgcache::Error>("INCRBYFLOAT NaN: 22003", "22003",
                                         [&] { cache.incrbyfloat("c11:fv", std::numeric_limits<double>::quiet_NaN()); });
        CHECK(cache.get("c11:fv") == std::optional<std::string>("1"), "the value is unchanged");
        auto t0 = std::chrono::steady_clock::now();
        cache.set("c11:fe", "2.5", 100);
        CHECK(cache.incrbyfloat("c11:fe", 0.5) == 3.0 && ttl_ok(cache.ttl("c11:fe"), 100, t0), "the key keeps its expiry");
        rcall({"SET", "c11:fe", "3"});
        const double r01 = cache.incrbyfloat("c11:fe", 0.1);
        const RedisReply rr = rcall({"INCRBYFLOAT", "c11:fe", "0.1"});
        report(r01 == std::strtod(rr.text.c_str(), nullptr), "INCRBYFLOAT 0.1 of 3: the same double as redis-server",
               "fastpgcache " + std::to_string(r01) + ", redis-server " + rr.text);
        expect_error<fastpgcache::Error>("incrbyfloat: NUL in the key", "22021", [&] { cache.incrbyfloat(nk, 1); });
    });

    test("APPEND / STRLEN like redis-server", [&] {
        const std::string k = "c11:app";
        cache.del(k);
        same(cache.strlen(k), rcall({"STRLEN", k}).integer(), "STRLEN of an absent key");
        same(cache.append(k, "Hello"), rcall({"APPEND", k, "Hello"}).integer(), "APPEND creates the key");
        same(cache.append(k, " Wörld ✓"), rcall({"APPEND", k, " Wörld ✓"}).integer(), "APPEND returns the length in bytes");
        same(cache.append(k, ""), rcall({"APPEND", k, ""}).integer(), "APPEND of nothing");
        same(cache.strlen(k), rcall({"STRLEN", k}).integer(), "STRLEN in bytes");
        same(cache.get(k), rcall({"GET", k}).optional(), "the value");
        same(cache.ttl(k), rcall({"TTL", k}).integer(), "created without expiry");
        auto t0 = std::chrono::steady_clock::now();
        cache.expire(k, 100);
        cache.append(k, "!");
        CHECK(ttl_ok(cache.ttl(k), 100, t0), "APPEND keeps the expiry");
        cache.set_bytes("c11:appb", std::string("a\0b", 3));
        CHECK(cache.append("c11:appb", "c") == 4 && cache.get_bytes("c11:appb") == std::string("a\0bc", 4) &&
                  cache.type("c11:appb") == std::optional<std::string>("bytes"),
              "APPEND to bytes: stays bytes; STRLEN counts the NUL");
        CHECK(cache.strlen("c11:appb") == 4, "strlen of a bytes value");
        cache.set("c11:appj", json{{"a", 1}});
        cache.append("c11:appj", "x");
        CHECK(cache.type("c11:appj") == std::optional<std::string>("text"), "APPEND to JSON: the value becomes text");
        expect_error<fastpgcache::Error>("append: NUL in the value", "22021", [&] { cache.append(k, nv); });
        expect_error<fastpgcache::Error>("append: NUL in the key", "22021", [&] { cache.append(nk, "x"); });
        expect_error<fastpgcache::Error>("strlen: NUL in the key", "22021", [&] { cache.strlen(nk); });
    });

    test("EXPIRE / PEXPIRE / EXPIREAT / PERSIST / PTTL like redis-server", [&] {
        const std::string k = "c11:exp";
        cache.del(k);
        same(cache.expire(k, 100), rcall({"EXPIRE", k, "100"}).integer() == 1, "EXPIRE of an absent key: false");
        same(cache.pttl(k), rcall({"PTTL", k}).integer(), "PTTL of an absent key: -2");
        cache.set(k, "v");
        rcall({"SET", k, "v"});
        same(cache.pttl(k), rcall({"PTTL", k}).integer(), "PTTL without expiry: -1");
        same(cache.persist(k), rcall({"PERSIST", k}).integer() == 1, "PERSIST without expiry: false");
        auto t0 = std::chrono::steady_clock::now();
        same(cache.expire(k, 100), rcall({"EXPIRE", k, "100"}).integer() == 1, "EXPIRE 100");
        const long long p = cache.pttl(k), rp = rcall({"PTTL", k}).integer();
        report(p > 95000 && p <= 100000 && rp > 95000 && rp <= 100000 && ttl_ok(cache.ttl(k), 100, t0), "PTTL after EXPIRE 100",
               "fastpgcache " + show(p) + ", redis-server " + show(rp));
        same(cache.persist(k), rcall({"PERSIST", k}).integer() == 1, "PERSIST removes the expiry");
        same(cache.ttl(k), rcall({"TTL", k}).integer(), "TTL after PERSIST");
        same(cache.expire(k, std::chrono::minutes(2)), rcall({"EXPIRE", k, "120"}).integer() == 1, "EXPIRE with std::chrono");
        same(cache.pexpire(k, 1500ms), rcall({"PEXPIRE", k, "1500"}).integer() == 1, "PEXPIRE 1500");
        const long long p2 = cache.pttl(k);
        CHECK(p2 > 0 && p2 <= 1500, "PTTL counts milliseconds (" + show(p2) + ")");
        same(cache.expire(k, 0), rcall({"EXPIRE", k, "0"}).integer() == 1, "EXPIRE 0 deletes the key (true)");
        same(cache.exists(k) ? 1LL : 0LL, rcall({"EXISTS", k}).integer(), "it is gone");
        cache.set(k, "v");
        rcall({"SET", k, "v"});
        same(cache.pexpire(k, -5), rcall({"PEXPIRE", k, "-5"}).integer() == 1, "PEXPIRE -5 deletes the key");
        same(cache.exists(k) ? 1LL : 0LL, rcall({"EXISTS", k}).integer(), "it is gone");

        cache.set(k, "v");
        rcall({"SET", k, "v"});
        const long long at = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count() + 200;
        same(cache.expireat(k, at), rcall({"EXPIREAT", k, std::to_string(at)}).integer() == 1, "EXPIREAT unix seconds");
        const long long t = cache.ttl(k), rt = rcall({"TTL", k}).integer();
        report(t >= 195 && t <= 200 && std::llabs(t - rt) <= 1, "the same expiry", "fastpgcache " + show(t) + ", redis-server " + show(rt));
        same(cache.expireat(k, at - 1000), rcall({"EXPIREAT", k, std::to_string(at - 1000)}).integer() == 1,
             "EXPIREAT in the past deletes the key (true)");
        same(cache.exists(k) ? 1LL : 0LL, rcall({"EXISTS", k}).integer(), "it is gone");
        same(cache.expireat(k, at), rcall({"EXPIREAT", k, std::to_string(at)}).integer() == 1, "EXPIREAT of an absent key: false");

        cache.set(k, "v");
        CHECK(cache.expireat(k, std::chrono::system_clock::now() + 1234ms), "expireat(time_point)");
        const long long p3 = cache.pttl(k);
        CHECK(p3 > 900 && p3 <= 1234, "microsecond time points: PTTL " + show(p3) + " <= 1234");
        CHECK(cache.expireat(k, std::chrono::time_point<std::chrono::system_clock, std::chrono::seconds>(
                                   std::chrono::seconds(-70000000000LL))) &&
                  !cache.exists(k),
              "a time before year 1 (written with BC) is in the past: deleted");
        cache.set(k, "v");
        CHECK(cache.expireat(k, std::chrono::time_point<std::chrono::system_clock, std::chrono::seconds>(
                                   std::chrono::seconds(1LL << 43))) &&
                  cache.ttl(k) == 2147483647,
              "a time in year 280000 is accepted (TTL beyond 2^31-1 s reads as 2147483647)");
        expect_error<fastpgcache::Error>("expireat beyond PostgreSQL's timestamps: 22008", "22008", [&] {
            cache.expireat(k, std::chrono::time_point<std::chrono::system_clock, std::chrono::seconds>(std::chrono::seconds(1LL << 44)));
        });
        expect_error<fastpgcache::Error>("pexpire past timestamptz's range: 22008", "22008", [&] { cache.pexpire(k, 1LL << 62); });
        expect_error<fastpgcache::Error>("expire of more than 2^31-1 seconds: 22003", "22003", [&] { cache.expire(k, 1LL << 40); });
        CHECK(cache.ttl(k) == 2147483647, "the refused calls changed nothing");

        cache.set(k, "v");
        CHECK(cache.pexpire(k, 150), "pexpire 150 ms");
        std::this_thread::sleep_for(250ms);
        CHECK(!cache.get(k) && !cache.exists(k) && cache.pttl(k) == -2 && !cache.persist(k) && !cache.expire(k, 10),
              "a millisecond expiry is honoured: absent for get/exists/pttl/persist/expire");
        for (auto* name : {"expire", "pexpire", "expireat", "persist", "pttl"}) {
            expect_error<fastpgcache::Error>(std::string(name) + ": NUL in the key", "22021", [&] {
                const std::string n = name;
                if (n == "expire") cache.expire(nk, 10);
                else if (n == "pexpire") cache.pexpire(nk, 10);
                else if (n == "expireat") cache.expireat(nk, std::chrono::system_clock::now());
                else if (n == "persist") cache.persist(nk);
                else cache.pttl(nk);
            });
        }
    });

    test("GETDEL / GETEX like redis-server", [&] {
        const std::string k = "c11:gd";
        cache.del(k);
        same(cache.getdel(k), rcall({"GETDEL", k}).optional(), "GETDEL of an absent key: nil");
        cache.set(k, "v", 100);
        rcall({"SET", k, "v", "EX", "100"});
        same(cache.getdel(k), rcall({"GETDEL", k}).optional(), "GETDEL returns the value");
        same(cache.exists(k) ? 1LL : 0LL, rcall({"EXISTS", k}).integer(), "and deletes the key");
        same(cache.getex(k), rcall({"GETEX", k}).optional(), "GETEX of an absent key: nil");
        cache.set(k, "w");
        rcall({"SET", k, "w"});
        same(cache.getex(k), rcall({"GETEX", k}).optional(), "GETEX without options");
        same(cache.ttl(k), rcall({"TTL", k}).integer(), "changes nothing");
        auto t0 = std::chrono::steady_clock::now();
        same(cache.getex(k, 100), rcall({"GETEX", k, "EX", "100"}).optional(), "GETEX EX 100");
        const long long t = cache.ttl(k), rt = rcall({"TTL", k}).integer();
        report(ttl_ok(t, 100, t0) && ttl_ok(rt, 100, t0), "sets the expiry", "fastpgcache " + show(t) + ", redis-server " + show(rt));
        same(cache.getex(k, fastpgcache::persist), rcall({"GETEX", k, "PERSIST"}).optional(), "GETEX PERSIST");
        same(cache.ttl(k), rcall({"TTL", k}).integer(), "removes the expiry");
        same(sqlstate_of([&] { cache.getex(k, 0); }), rcall({"GETEX", k, "EX", "0"}).sqlstate(), "GETEX EX 0: 22023 like redis");
        cache.set("c11:gdj", json{{"a", 1}});
        CHECK(cache.getdel("c11:gdj") == std::optional<std::string>(R"({"a": 1})"), "GETDEL of JSON returns its text");
        cache.set_bytes("c11:gdb", std::string("\xff", 1), 100);
        expect_error<fastpgcache::Error>("GETDEL of bytes that are not text: 22021", "22021", [&] { cache.getdel("c11:gdb"); });
        CHECK(cache.exists("c11:gdb"), "and the key is not deleted");
        expect_error<fastpgcache::Error>("GETEX PERSIST of bytes that are not text: 22021", "22021",
                                         [&] { cache.getex("c11:gdb", fastpgcache::persist); });
        CHECK(cache.ttl("c11:gdb") > 0, "and the expiry is not changed");
        expect_error<fastpgcache::Error>("getdel: NUL in the key", "22021", [&] { cache.getdel(nk); });
        expect_error<fastpgcache::Error>("getex: NUL in the key", "22021", [&] { cache.getex(nk, 10); });
    });

    test("TYPE", [&] {
        cache.set("c11:tt", "t");
        cache.set("c11:tj", json::array({1, 2}));
        cache.set_bytes("c11:tb", "b");
        cache.del("c11:tnone");
        CHECK(cache.type("c11:tt") == std::optional<std::string>("text") && cache.type("c11:tj") == std::optional<std::string>("json") &&
                  cache.type("c11:tb") == std::optional<std::string>("bytes"),
              "text, json, bytes");
        same(cache.type("c11:tnone").has_value(), rcall({"TYPE", "c11:tnone"}).text != "none", "an absent key has no type (redis: none)");
        cache.pexpire("c11:tt", 1);
        std::this_thread::sleep_for(20ms);
        CHECK(!cache.type("c11:tt"), "nor an expired one");
        expect_error<fastpgcache::Error>("type: NUL in the key", "22021", [&] { cache.type(nk); });
    });

    test("MSETNX like redis-server", [&] {
        cache.del({"c11:m1", "c11:m2", "c11:m3", "c11:md"});
        same(cache.msetnx({{"c11:m1", "1"}, {"c11:m2", "2"}}), rcall({"MSETNX", "c11:m1", "1", "c11:m2", "2"}).integer() == 1,
             "MSETNX of absent keys sets them");
        same(cache.msetnx({{"c11:m2", "x"}, {"c11:m3", "3"}}), rcall({"MSETNX", "c11:m2", "x", "c11:m3", "3"}).integer() == 1,
             "MSETNX with one live key sets nothing");
        same(cache.get("c11:m2"), rcall({"GET", "c11:m2"}).optional(), "the live key is unchanged");
        same(cache.exists("c11:m3") ? 1LL : 0LL, rcall({"EXISTS", "c11:m3"}).integer(), "the absent one was not created");
        same(cache.msetnx({{"c11:md", "1"}, {"c11:md", "2"}}), rcall({"MSETNX", "c11:md", "1", "c11:md", "2"}).integer() == 1,
             "MSETNX with a key given twice");
        same(cache.get("c11:md"), rcall({"GET", "c11:md"}).optional(), "the last value wins");
        auto t0 = std::chrono::steady_clock::now();
        std::map<std::string, std::string> m = {{"c11:mt1", "a"}, {"c11:mt2", "b"}};
        cache.del({"c11:mt1", "c11:mt2"});
        CHECK(cache.msetnx(m.begin(), m.end(), 100) && ttl_ok(cache.ttl("c11:mt2"), 100, t0), "over a std::map, with a ttl");
        CHECK(cache.msetnx(std::vector<std::pair<std::string, std::string>>{}), "no pairs: true (nothing to refuse)");
        expect_error<fastpgcache::Error>("msetnx: NUL in a key", "22021", [&] { cache.msetnx({{"c11:mn", "v"}, {nk, "v"}}); });
        expect_error<fastpgcache::Error>("msetnx: NUL in a value", "22021", [&] { cache.msetnx({{"c11:mn", nv}}); });
        expect_error<fastpgcache::Error>("msetnx: ttl 0 is 22023", "22023", [&] { cache.msetnx({{"c11:mn", "v"}}, 0); });
        CHECK(!cache.exists("c11:mn"), "the refused calls wrote nothing");
        // Racing msetnx calls with a key in common: one wins, entirely.
        cache.del({"c11:race"});
        std::atomic<int> wins{0}, errors{0}, winner{-1};
        std::vector<std::thread> ts;
        for (int t = 0; t < 8; ++t)
            ts.emplace_back([&, t] {
                try {
                    if (cache.msetnx({{"c11:race", std::to_string(t)}, {"c11:race:" + std::to_string(t), "x"}})) {
                        ++wins;
                        winner = t;
                    }
                } catch (const std::exception&) {
                    ++errors;
                }
            });
        for (auto& t : ts) t.join();
        int others = 0;
        for (int t = 0; t < 8; ++t) others += t != winner && cache.exists("c11:race:" + std::to_string(t));
        CHECK(wins == 1 && errors == 0 && cache.get("c11:race") == std::optional<std::string>(std::to_string(winner)) && others == 0,
              "8 racing msetnx with a key in common: exactly one sets its keys, the others nothing");
    });

    test("KEYS / SCAN / DBSIZE / FLUSHDB like redis-server", [&] {
        const long long before = cache.dbsize();
        const long long flushed = cache.flushdb();
        CHECK(flushed == before && flushed > 0, "FLUSHDB returns the number of live entries removed (" + show(flushed) + ")");
        CHECK(rcall({"FLUSHDB"}).ok(), "(FLUSHDB the reference)");
        same(cache.dbsize(), rcall({"DBSIZE"}).integer(), "DBSIZE of an empty cache");
        same(cache.flushdb(), 0LL, "FLUSHDB of an empty cache: 0");
        std::vector<std::string> names = {"kp:a", "kp:b", "kp:ab", "kp:abc", "kp:*lit", "kp:?q", "kp:[x]", "kp:\\back", "kp:héllo",
                                          "kp:-", "kp:]", "kp:A", "kp:", "kp:a b", "other:1", "x"};
        for (int i = 0; i < 50; ++i) names.push_back("sc:" + std::to_string(i));
        std::vector<std::pair<std::string, std::string>> items;
        std::vector<std::string> margs = {"MSET"};
        for (const auto& n : names) {
            items.emplace_back(n, "v");
            margs.push_back(n);
            margs.push_back("v");
        }
        CHECK(cache.mset(items) == static_cast<long long>(names.size()) && rcall(margs).ok(), "(the same keys in both)");
        cache.set("kp:expired", "v");
        cache.pexpire("kp:expired", 1);
        std::this_thread::sleep_for(20ms);
        same(cache.dbsize(), rcall({"DBSIZE"}).integer(), "DBSIZE (an expired entry is not counted)");
        for (const std::string pattern : {"*", "kp:*", "kp:?", "kp:??", "kp:[ab]*", "kp:[^a]*", "kp:[a-c]", "kp:[c-a]", "kp:\\*lit",
                                          "kp:*lit", "kp:[", "kp:[a", "kp:\\", "kp:[\\]]", "kp:*[x]*", "kp:h?llo", "kp:h??llo",
                                          "KP:*", "kp:[!a]*", "kp:a\\ b", "kp:a?b", "sc:1*", "nomatch*", "", "kp:", "*:*", "[kx]*"}) {
            auto ours = cache.keys(pattern);
            std::set<std::string> got(ours.begin(), ours.end());
            same(got, rset_of({"KEYS", pattern}), "KEYS '" + pattern + "'");
            CHECK(got.size() == ours.size(), "  each key once");
        }
        std::set<std::string> via_output;
        cache.keys("sc:*", std::inserter(via_output, via_output.end()));
        same(via_output, rset_of({"KEYS", "sc:*"}), "keys(pattern, output iterator)");

        // A full SCAN, redis-plus-plus style.
        std::set<std::string> scanned;
        long long cursor = 0;
        int calls = 0;
        do {
            cursor = cache.scan(cursor, "sc:*", 7, std::inserter(scanned, scanned.end()));
            ++calls;
            CHECK(cursor >= 0, "  the cursor is never negative");
        } while (cursor != 0 && calls < 1000);
        same(scanned, rset_of({"KEYS", "sc:*"}), "a SCAN iteration (MATCH sc:* COUNT 7) returns the keys KEYS does");
        CHECK(calls > 5, "in several steps (" + std::to_string(calls) + ")");
        std::vector<std::string> all;
        cursor = 0;
        calls = 0;
        do {
            cursor = cache.scan(cursor, std::back_inserter(all));
        } while (cursor != 0 && ++calls < 1000);
        same(std::set<std::string>(all.begin(), all.end()), rset_of({"KEYS", "*"}), "scan(cursor, output) covers every key");
        std::vector<std::string> one;
        const long long c1 = cache.scan(0, 1, std::back_inserter(one));
        CHECK(c1 > 0 && one.size() <= 2, "COUNT 1: one entry examined, a cursor to go on");
        std::vector<std::string> none;
        cursor = 0;
        do cursor = cache.scan(cursor, "nomatch*", std::back_inserter(none));
        while (cursor != 0);
        CHECK(none.empty(), "a pattern nothing matches: an iteration with no keys");

        // The range helper.
        std::set<std::string> ranged;
        std::size_t n = 0;
        for (const std::string& key : cache.scan_keys("kp:*", 3)) {
            ranged.insert(key);
            ++n;
        }
        same(ranged, rset_of({"KEYS", "kp:*"}), "for (key : scan_keys(\"kp:*\", 3))");
        CHECK(n >= ranged.size(), "(every key at least once)");
        auto empty_range = cache.scan_keys("nomatch*");
        CHECK(empty_range.begin() == empty_range.end(), "scan_keys with no match: an empty range");
        {
            auto s = cache.session();
            auto r = s.scan_keys("sc:*", 10);
            std::set<std::string> via_session(r.begin(), r.end());
            same(via_session, rset_of({"KEYS", "sc:*"}), "scan_keys on a Session");
        }
        std::set<std::string> bounded;
        for (const auto& key : cache.with_timeout(30s).scan_keys("sc:*", 20)) bounded.insert(key);
        same(bounded, rset_of({"KEYS", "sc:*"}), "scan_keys through with_timeout() (the range keeps the view)");
        auto it_range = cache.scan_keys("sc:1*", 2);
        auto it = it_range.begin();
        std::set<std::string> post;
        while (it != it_range.end()) post.insert(*it++);
        same(post, rset_of({"KEYS", "sc:1*"}), "it++ / *it++ on the range's iterator");

        // Keys that exist for the whole iteration are returned while others write.
        std::atomic<bool> stop{false};
        std::thread churn([&] {
            for (int i = 0; !stop; ++i) {
                try {
                    cache.set("churn:" + std::to_string(i % 200), "v");
                    if (i % 3 == 0) cache.del("churn:" + std::to_string((i * 7) % 200));
                } catch (const std::exception&) {
                }
            }
        });
        std::set<std::string> under_churn;
        for (const auto& key : cache.scan_keys("sc:*", 4)) under_churn.insert(key);
        stop = true;
        churn.join();
        same(under_churn, rset_of({"KEYS", "sc:*"}), "SCAN while another thread writes and deletes: every stable key");
        std::vector<std::string> churned;
        for (int i = 0; i < 200; ++i) churned.push_back("churn:" + std::to_string(i));
        cache.del(churned);

        expect_error<fastpgcache::Error>("scan: a negative cursor is 22023", "22023", [&] { cache.scan(-1, std::back_inserter(none)); });
        expect_error<fastpgcache::Error>("scan: COUNT 0 is 22023", "22023", [&] { cache.scan(0, 0, std::back_inserter(none)); });
        expect_error<fastpgcache::Error>("scan: a COUNT beyond int4 is 22003", "22003",
                                         [&] { cache.scan(0, 1LL << 40, std::back_inserter(none)); });
        expect_error<fastpgcache::Error>("scan: NUL in the pattern", "22021", [&] { cache.scan(0, nk, std::back_inserter(none)); });
        expect_error<fastpgcache::Error>("keys: NUL in the pattern", "22021", [&] { cache.keys(nk); });
        expect_error<fastpgcache::Error>("scan_keys: an error surfaces from begin()", "22023", [&] { cache.scan_keys("*", 0).begin(); });

        // FLUSHDB is transactional.
        const long long live = cache.dbsize();
        same(live, rcall({"DBSIZE"}).integer(), "DBSIZE");
        {
            auto s = cache.session();
            s.begin();
            CHECK(s.flushdb() == live && s.dbsize() == 0, "FLUSHDB inside a transaction");
            s.rollback();
        }
        CHECK(cache.dbsize() == live, "a rolled-back FLUSHDB removed nothing");
        CHECK(cache.flushdb() == live && cache.dbsize() == 0 && cache.keys().empty(), "FLUSHDB: empty");
        rcall({"FLUSHDB"});
    });

    test("1.1 writes are never re-sent once sent; reads are retried", [&] {
        Super su;
        Super lock(env("FPC_DB"));
        const std::string table = cache_table(lock);
        Options p = base_options("fpc-retry11");
        p.minconn = 1;
        p.maxconn = 1;
        FastPgCache c(p);
        c.set("r11:n", "5");
        c.set("r11:s", "abc", 1000);
        // Each write: OutcomeUnknownError, and it did not run (nor twice).
        auto unknown = [&](const std::string& name, auto op) {
            auto res = killed_during(su, lock, table, "fpc-retry11", op);
            auto& f = res.second;
            expect_error<fastpgcache::OutcomeUnknownError>(name + " is not re-sent once sent: OutcomeUnknownError", "08007",
                                                           [&] { f.get(); });
            if (!res.first) report(false, name + ": it was blocked on the lock when its backend was terminated");
        };
        unknown("incr", [&] { return c.incr("r11:n"); });
        unknown("incrby with a ttl", [&] { return c.incrby("r11:n", 3, 60); });
        unknown("decrby", [&] { return c.decrby("r11:n", 2); });
        unknown("incrbyfloat", [&] { return c.incrbyfloat("r11:n", 1.5); });
        CHECK(c.get("r11:n") == std::optional<std::string>("5"), "the counter is unchanged: no increment ran, none twice");
        unknown("append", [&] { return c.append("r11:s", "d"); });
        unknown("set NX", [&] { return c.set("r11:new", "v", {}, fastpgcache::UpdateType::NotExist); });
        unknown("set KEEPTTL", [&] { return c.set("r11:s", "x", fastpgcache::keep_ttl); });
        unknown("getset", [&] { return c.getset("r11:s", "y"); });
        unknown("expire", [&] { return c.expire("r11:s", 5); });
        unknown("pexpire", [&] { return c.pexpire("r11:s", 5000); });
        unknown("expireat", [&] { return c.expireat("r11:s", std::chrono::system_clock::now() + 5s); });
        unknown("persist", [&] { return c.persist("r11:s"); });
        unknown("getdel", [&] { return c.getdel("r11:s"); });
        unknown("getex with a ttl", [&] { return c.getex("r11:s", 5); });
        unknown("getex persist", [&] { return c.getex("r11:s", fastpgcache::persist); });
        unknown("msetnx", [&] { return c.msetnx({{"r11:m", "v"}}); });
        unknown("flushdb", [&] { return c.flushdb(); });
        CHECK(c.get("r11:s") == std::optional<std::string>("abc") && c.ttl("r11:s") > 900 && !c.exists("r11:new") &&
                  !c.exists("r11:m"),
              "none of them happened");
        // Reads are retried on a new connection.
        auto retried = [&](const std::string& name, auto op, auto want) {
            auto res = killed_during(su, lock, table, "fpc-retry11", op);
            bool ok = false;
            std::string why;
            try {
                ok = res.second.get() == want;
            } catch (const std::exception& e) {
                why = e.what();
            }
            report(res.first && ok, name + " (a read) is retried after its connection was lost", why);
        };
        retried("strlen", [&] { return c.strlen("r11:s"); }, 3LL);
        retried("pttl", [&] { return c.pttl("r11:n"); }, -1LL);
        retried("type", [&] { return c.type("r11:s"); }, std::optional<std::string>("text"));
        retried("getex without options", [&] { return c.getex("r11:s"); }, std::optional<std::string>("abc"));
        retried("dbsize", [&] { return c.dbsize() >= 2; }, true);
        retried("keys", [&] { return c.keys("r11:*").size(); }, std::size_t{2});
        retried("scan", [&] {
            std::vector<std::string> ks;
            long long cur = 0;
            do cur = c.scan(cur, "r11:*", 1000, std::back_inserter(ks));
            while (cur != 0);
            return ks.size();
        }, std::size_t{2});
    });

    test("metrics: each 1.1 command reports its name and whether it writes", [&] {
        auto recs = std::make_shared<std::vector<std::pair<std::string, bool>>>();
        auto mu = std::make_shared<std::mutex>();
        Options p = base_options("fpc-metrics11");
        p.minconn = 1;
        p.on_operation = [recs, mu](const fastpgcache::OperationMetrics& m) {
            std::lock_guard<std::mutex> lk(*mu);
            recs->emplace_back(std::string(m.operation), m.write);
        };
        FastPgCache c(p);
        c.set("m11:k", "1", {}, UpdateType::NotExist);
        c.set("m11:k", "2", keep_ttl);
        c.getset("m11:k", "3");
        c.incr("m11:k");
        c.incrby("m11:k", 2);
        c.decr("m11:k");
        c.decrby("m11:k", 2);
        c.incrbyfloat("m11:k", 1);
        c.append("m11:k", "0");
        c.strlen("m11:k");
        c.expire("m11:k", 100);
        c.pexpire("m11:k", 100000);
        c.expireat("m11:k", std::chrono::system_clock::now() + 100s);
        c.persist("m11:k");
        c.pttl("m11:k");
        c.getex("m11:k");
        c.getex("m11:k", 100);
        c.getex("m11:k", fastpgcache::persist);
        c.type("m11:k");
        c.keys("m11:*");
        std::vector<std::string> out;
        c.scan(0, "m11:*", 10, std::back_inserter(out));
        c.dbsize();
        c.msetnx({{"m11:n", "1"}});
        c.getdel("m11:k");
        const std::vector<std::pair<std::string, bool>> want = {
            {"set", true},      {"set", true},     {"getset", true},   {"incr", true},     {"incrby", true},
            {"decr", true},     {"decrby", true},  {"incrbyfloat", true}, {"append", true}, {"strlen", false},
            {"expire", true},   {"pexpire", true}, {"expireat", true}, {"persist", true},  {"pttl", false},
            {"getex", false},   {"getex", true},   {"getex", true},    {"type", false},    {"keys", false},
            {"scan", false},    {"dbsize", false}, {"msetnx", true},   {"getdel", true}};
        std::lock_guard<std::mutex> lk(*mu);
        std::string got;
        for (const auto& r : *recs) got += r.first + (r.second ? "(w) " : "(r) ");
        CHECK(*recs == want, "names and read/write flags: " + got);
    });
}

// ---------------------------------------------------------------------------
// API semantics (extension and fallback)
// ---------------------------------------------------------------------------

void api_tests() {
    const std::string expect = env("FPC_EXPECT_BACKEND");
    const std::string password = env("FPC_PASSWORD");
    Options o = base_options("fpc-api");
    o.minconn = 2;
    o.maxconn = 4;
    FastPgCache cache(o);

    test("setup", [&] {
        Backend b = cache.setup();
        report(expect.empty() || expect == fastpgcache::to_string(b), std::string("setup() picks the ") + expect,
               std::string("got ") + fastpgcache::to_string(b));
        CHECK(cache.setup() == b, "setup() is idempotent");
        CHECK(cache.backend() == b, "backend() reports what setup() did");
    });

    test("set/get/exists/ttl/del", [&] {
        CHECK(cache.set("user:123", "Alice"), "set returns true");
        CHECK(cache.get("user:123") == std::optional<std::string>("Alice"), "get returns the value");
        CHECK(!cache.get("user:999").has_value(), "get of a missing key is nullopt");
        CHECK(cache.exists("user:123"), "exists: live key");
        CHECK(!cache.exists("user:999"), "exists: missing key");
        CHECK(cache.ttl("user:123") == -1, "ttl -1 without expiry");
        CHECK(cache.ttl("user:999") == -2, "ttl -2 when missing");
        auto t0 = std::chrono::steady_clock::now();
        cache.set("user:123", std::string("Bob"), 100);
        CHECK(ttl_ok(cache.ttl("user:123"), 100, t0), "ttl as int");
        t0 = std::chrono::steady_clock::now();
        cache.set("user:123", "Carol", std::chrono::minutes(2));
        CHECK(ttl_ok(cache.ttl("user:123"), 120, t0), "ttl as std::chrono duration");
        t0 = std::chrono::steady_clock::now();
        cache.set("user:123", std::string_view("Dave"), std::chrono::milliseconds(1500));
        long long t15 = cache.ttl("user:123");
        CHECK(ttl_ok(t15, 2, t0), "sub-second durations round up (1.5 s -> 2)");
        cache.set("user:123", "Eve");
        CHECK(cache.ttl("user:123") == -1, "a set without ttl clears the expiry");
        CHECK(cache.del("user:123"), "del of a live key is true");
        CHECK(!cache.del("user:123"), "del of a missing key is false");
        CHECK(!cache.exists("user:123"), "deleted key does not exist");
    });

    test("values", [&] {
        cache.set("empty", "");
        CHECK(cache.get("empty") == std::optional<std::string>(""), "empty string round-trips as empty, not a miss");
        cache.set("ключ:日本語:🐘", "значение ✓ 値 🚀");
        CHECK(cache.get("ключ:日本語:🐘") == std::optional<std::string>("значение ✓ 値 🚀"), "unicode round-trips");
        std::string big_key(1 << 20, 'k');
        big_key += "end";
        std::string big_val(8 << 20, 'v');
        CHECK(cache.set(big_key, big_val), "1 MB key with an 8 MB value");
        CHECK(cache.get(big_key) == big_val, "1 MB key reads back");
        CHECK(cache.del(big_key), "1 MB key deletes");
        std::string bin("\x00\xff\x01\"\\'\x80", 7);
        cache.set_bytes("bin", bin);
        CHECK(cache.get_bytes("bin") == bin, "bytes round-trip (NUL, 0xff, quotes)");
        expect_error<fastpgcache::Error>("get() of non-text bytes raises 22021", "22021", [&] { cache.get("bin"); });
        CHECK(cache.get_bytes("empty") == std::optional<std::string>(""), "get_bytes of a text value");
    });

    test("json", [&] {
        json user = {{"name", "Alice"}, {"email", "alice@example.com"}, {"tags", {1, 2, 3}}};
        cache.set("user:json", user, 3600);
        auto back = cache.get_json("user:json");
        CHECK(back.has_value() && *back == user, "JSON object round-trips");
        CHECK(cache.get("user:json").has_value(), "get() returns a JSON value as text");
        cache.set("jnull", json(nullptr));
        auto n = cache.get_json("jnull");
        CHECK(n.has_value() && n->is_null(), "a stored JSON null is a json null, not a miss");
        CHECK(!cache.get_json("no-such-key").has_value(), "get_json miss is nullopt");
        cache.set("str123", "123");
        CHECK(cache.get("str123") == std::optional<std::string>("123"), "string \"123\" stays the string \"123\"");
        cache.set("jstr", json("123"));
        auto js = cache.get_json("jstr");
        CHECK(js.has_value() && js->is_string() && js->get<std::string>() == "123", "JSON string \"123\" stays a JSON string");
        cache.set("num", 42);
        auto num = cache.get_json("num");
        CHECK(num.has_value() && num->is_number_integer() && *num == 42, "a number is stored as JSON");
        cache.set("notjson", "plain text");
        expect_error<fastpgcache::Error>("get_json of non-JSON text raises 22P02", "22P02", [&] { cache.get_json("notjson"); });
    });

    test("errors carry SQLSTATE", [&] {
        expect_error<fastpgcache::Error>("ttl=0 raises 22023", "22023", [&] { cache.set("k", "v", 0); });
        expect_error<fastpgcache::Error>("ttl<0 raises 22023", "22023", [&] { cache.set("k", "v", -5s); });
        CHECK(cache.get("after-error") == std::nullopt, "the pool is usable after an error");
    });

    test("expiry", [&] {
        auto t0 = std::chrono::steady_clock::now();
        cache.set("short", "v", 1);
        cache.set("short2", "v", 1);
        long long t1 = cache.ttl("short");
        bool slow = std::chrono::steady_clock::now() - t0 >= 1s;  // then it may already be gone
        CHECK(t1 == 1 || (slow && t1 == -2), "ttl 1 right after set");
        std::this_thread::sleep_for(1200ms);
        CHECK(!cache.get("short").has_value(), "expired key reads as a miss");
        CHECK(!cache.exists("short"), "expired key does not exist");
        CHECK(cache.ttl("short") == -2, "expired key ttl -2");
        CHECK(cache.cleanup() >= 1, "cleanup removes expired entries");
        CHECK(cache.cleanup() == 0, "second cleanup finds nothing");
    });

    test("mget/mset", [&] {
        auto t0 = std::chrono::steady_clock::now();
        int n = cache.mset({{"m:a", "1"}, {"m:b", "two"}, {"m:c", ""}}, 300);
        CHECK(n == 3, "mset returns the count");
        auto vals = cache.mget({"m:a", "m:missing", "m:b", "m:c"});
        CHECK(vals.size() == 4, "mget returns one result per key");
        if (vals.size() == 4) {
            CHECK(vals[0] == std::optional<std::string>("1") && !vals[1].has_value() &&
                      vals[2] == std::optional<std::string>("two") && vals[3] == std::optional<std::string>(""),
                  "mget keeps input order and reports misses");
        }
        CHECK(ttl_ok(cache.ttl("m:b"), 300, t0), "mset applies the ttl");
        CHECK(cache.mget({}).empty(), "mget of no keys");
        std::vector<std::string> keys;
        for (int i = 0; i < 100; ++i) keys.push_back("quote\"back\\slash{,}" + std::to_string(i));
        std::vector<std::pair<std::string, std::string>> items;
        for (auto& k : keys) items.emplace_back(k, "v" + k);
        CHECK(cache.mset(items) == 100, "mset with quotes/backslashes/braces in keys");
        auto back = cache.mget(keys);
        bool all = back.size() == keys.size();
        for (std::size_t i = 0; all && i < keys.size(); ++i) all = back[i] == "v" + keys[i];
        CHECK(all, "mget reads them back");
    });

    test("transactions", [&] {
        try {
            cache.transaction([](fastpgcache::Session& s) {
                s.set("tx:rolled", "v");
                throw std::runtime_error("abort");
            });
        } catch (const std::runtime_error&) {
        }
        CHECK(!cache.exists("tx:rolled"), "a throwing transaction rolls back");
        int r = cache.transaction([](fastpgcache::Session& s) {
            s.set("tx:a", "1");
            s.set("tx:b", json{{"x", 1}});
            return s.get("tx:a") ? 1 : 0;
        });
        CHECK(r == 1 && cache.get("tx:a") && cache.get_json("tx:b"), "a transaction commits and sees its own writes");
    });

    test("concurrency", [&] {
        std::atomic<int> failures{0}, ops{0};
        std::vector<std::thread> ts;
        for (int t = 0; t < 8; ++t) {
            ts.emplace_back([&, t] {
                for (int i = 0; i < 100; ++i) {
                    try {
                        std::string k = "conc:" + std::to_string(t) + ":" + std::to_string(i % 10);
                        std::string v = std::to_string(i);
                        cache.set(k, v, 60);
                        if (cache.get(k) != v) ++failures;
                        ops += 2;
                    } catch (const std::exception&) {
                        ++failures;
                    }
                }
            });
        }
        for (auto& th : ts) th.join();
        CHECK(failures == 0 && ops == 1600, "8 threads share one FastPgCache (maxconn 4)");
        auto st = cache.pool_stats();
        CHECK(st.open <= 4 && st.open >= 2, "pool stays within minconn..maxconn");
    });

    test("pool exhaustion", [&] {
        Options p = base_options("fpc-pool");
        p.minconn = 1;
        p.maxconn = 2;
        p.pool_timeout = 300ms;
        FastPgCache small(p);
        {
            auto s1 = small.session();
            auto s2 = small.session();
            auto t0 = std::chrono::steady_clock::now();
            expect_error<fastpgcache::PoolTimeoutError>("an exhausted pool times out", "", [&] { small.get("x"); });
            auto waited = std::chrono::steady_clock::now() - t0;
            CHECK(waited >= 280ms && waited < 10s, "it waited about pool_timeout");
            std::thread releaser;
            {
                auto s3 = std::make_unique<fastpgcache::Session>(std::move(s1));
                releaser = std::thread([s = std::move(s3)]() mutable {
                    std::this_thread::sleep_for(100ms);
                    s.reset();
                });
            }
            bool ok = false;
            try {
                small.set("pool:x", "1");
                ok = true;
            } catch (const std::exception&) {
            }
            releaser.join();
            CHECK(ok, "a waiting operation proceeds when a connection is returned");
        }
        CHECK(small.pool_stats().open <= 2, "never more than maxconn connections");
    });

    test("broken connections are discarded", [&] {
        Super su;
        Options p = base_options("fpc-broken");
        p.minconn = 3;
        p.maxconn = 3;
        FastPgCache c(p);
        c.set("broken:k", "v");
        CHECK(su.count("fpc-broken") == 3, "minconn connections are open");
        CHECK(su.terminate("fpc-broken") == 3, "terminated all pool backends");
        CHECK(c.get("broken:k") == std::optional<std::string>("v"), "the next operation succeeds on a new connection");
        auto st = c.pool_stats();
        CHECK(st.discarded >= 1, "dead connections were discarded");
        for (int i = 0; i < 5; ++i) c.get("broken:k");
        CHECK(su.count("fpc-broken") >= 1, "the pool reconnected");
        // Terminate while in use (inside a session): the error is a ConnectionError.
        {
            auto s = c.session();
            su.terminate("fpc-broken");
            expect_error<fastpgcache::ConnectionError>("a connection lost mid-session is a ConnectionError", "", [&] { s.get("broken:k"); });
        }
        CHECK(c.get("broken:k") == std::optional<std::string>("v"), "the pool recovers afterwards");
    });

    test("connection string and authentication errors", [&] {
        std::string url = "postgresql://" + env("FPC_USER") + "@" + env("FPC_HOST") + ":" + env("FPC_PORT") + "/" + env("FPC_DB") +
                          "?application_name=fpc-url";
        Options po;
        po.password = password;
        FastPgCache byurl(url, po);
        CHECK(byurl.set("url:k", "v") && byurl.get("url:k") == std::optional<std::string>("v"), "connection string URL works");
        std::string kv = "host=" + env("FPC_HOST") + " port=" + env("FPC_PORT") + " dbname=" + env("FPC_DB") + " user=" +
                         env("FPC_USER") + " password=" + password;
        FastPgCache bykv(kv);
        CHECK(bykv.get("url:k") == std::optional<std::string>("v"), "key=value connection string works");

        Options bad = base_options("fpc-badpw");
        const std::string wrong = "wrong-password-Zq8uT5";
        bad.password = wrong;
        std::string what;
        expect_error<fastpgcache::AuthenticationError>("a wrong password is an AuthenticationError (28P01)", "28P01",
                                                       [&] { FastPgCache c(bad); }, &what);
        CHECK(what.find(wrong) == std::string::npos && !what.empty(), "the password is not in what()");
        Options down = base_options("fpc-down");
        down.port = 1;  // nothing listens there
        expect_error<fastpgcache::ConnectionError>("an unreachable server is a ConnectionError", "08001", [&] { FastPgCache c(down); });
    });

    test("NUL bytes in keys and text values are refused", [&] {
        const std::string nk("nul:a\0b", 7), nv("val\0ue", 6);
        std::string what;
        expect_error<fastpgcache::Error>("set: NUL in a key (22021)", "22021", [&] { cache.set(nk, "v"); }, &what);
        CHECK(what.find("set_bytes") != std::string::npos, "the message points to set_bytes");
        CHECK(!cache.exists("nul:a"), "nothing was written under the truncated key");
        expect_error<fastpgcache::Error>("set: NUL in a text value (22021)", "22021", [&] { cache.set("nul:k", nv); });
        CHECK(!cache.exists("nul:k"), "nothing was written for the truncated value");
        expect_error<fastpgcache::Error>("set(json)/set_bytes: NUL in a key (22021)", "22021", [&] { cache.set_bytes(nk, "x"); });
        expect_error<fastpgcache::Error>("get: NUL in a key", "22021", [&] { cache.get(nk); });
        expect_error<fastpgcache::Error>("get_json: NUL in a key", "22021", [&] { cache.get_json(nk); });
        expect_error<fastpgcache::Error>("get_bytes: NUL in a key", "22021", [&] { cache.get_bytes(nk); });
        expect_error<fastpgcache::Error>("del: NUL in a key", "22021", [&] { cache.del(nk); });
        expect_error<fastpgcache::Error>("exists: NUL in a key", "22021", [&] { cache.exists(nk); });
        expect_error<fastpgcache::Error>("ttl: NUL in a key", "22021", [&] { cache.ttl(nk); });
        expect_error<fastpgcache::Error>("mget: NUL in a key", "22021", [&] { cache.mget({"nul:ok", nk}); });
        expect_error<fastpgcache::Error>("mset: NUL in a key", "22021", [&] { cache.mset({{"nul:ok", "v"}, {nk, "v"}}); });
        expect_error<fastpgcache::Error>("mset: NUL in a value", "22021", [&] { cache.mset({{"nul:ok", nv}}); });
        CHECK(!cache.exists("nul:ok"), "a refused mset writes nothing");
        CHECK(cache.set_bytes("nul:bytes", nv) && cache.get_bytes("nul:bytes") == nv, "set_bytes stores the NUL");
    });

    test("retries after a lost connection only where it is safe", [&] {
        Super su;
        Super lock(env("FPC_DB"));
        const std::string schema = lock.value(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = 'cache_entries' ORDER BY n.nspname = 'public' DESC LIMIT 1");
        const std::string table = "\"" + schema + "\".cache_entries";
        Options p = base_options("fpc-retry");
        p.minconn = 1;
        p.maxconn = 1;
        FastPgCache c(p);
        c.set("retry:k", "v");
        // Runs op while the table is locked, kills the backend executing it,
        // then releases the lock.  The statement was sent when it died.
        auto killed_during = [&](auto op) {
            lock.exec("BEGIN");
            lock.exec("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE");
            auto fut = std::async(std::launch::async, op);
            bool waiting = false;
            for (int i = 0; i < 200 && !waiting; ++i) {
                waiting = su.value("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fpc-retry' "
                                   "AND wait_event_type = 'Lock'") == "1";
                if (!waiting) std::this_thread::sleep_for(50ms);
            }
            su.terminate("fpc-retry");
            lock.exec("ROLLBACK");
            return std::make_pair(waiting, std::move(fut));
        };
        {
            auto [w, f] = killed_during([&] { return c.get("retry:k"); });
            CHECK(w, "get was blocked on the lock when its backend was terminated");
            std::optional<std::string> got;
            try {
                got = f.get();
            } catch (const std::exception&) {
            }
            CHECK(got == std::optional<std::string>("v"), "get (idempotent) is retried on a new connection");
        }
        // Writes are never re-sent once they may have reached the server:
        // the caller gets OutcomeUnknownError (08007) and decides.
        {
            auto [w, f] = killed_during([&] { return c.set("retry:k", "v2", 60); });
            CHECK(w, "set was blocked on the lock when its backend was terminated");
            expect_error<fastpgcache::OutcomeUnknownError>("set is not re-sent once sent: OutcomeUnknownError", "08007",
                                                           [&] { f.get(); });
            CHECK(c.get("retry:k") == std::optional<std::string>("v"), "the killed set did not happen and was not repeated");
        }
        {
            auto [w, f] = killed_during([&] { return c.set_bytes("retry:k", "b2"); });
            expect_error<fastpgcache::OutcomeUnknownError>("set_bytes is not re-sent once sent", "08007", [&] { f.get(); });
        }
        {
            auto [w, f] = killed_during([&] { return c.mset({{"retry:k", "m2"}, {"retry:k2", "m2"}}); });
            expect_error<fastpgcache::OutcomeUnknownError>("mset is not re-sent once sent", "08007", [&] { f.get(); });
            CHECK(c.get("retry:k") == std::optional<std::string>("v") && !c.exists("retry:k2"), "and it did not happen");
        }
        {
            auto [w, f] = killed_during([&] { return c.del("retry:k"); });
            CHECK(w, "del was blocked on the lock when its backend was terminated");
            std::string what;
            expect_error<fastpgcache::OutcomeUnknownError>("del is not re-sent once sent: OutcomeUnknownError", "08007",
                                                           [&] { f.get(); }, &what);
            CHECK(what.find("may or may not") != std::string::npos, "the message says the outcome is unknown: " + what);
            CHECK(c.exists("retry:k"), "(the killed del did not happen, and was not repeated behind the caller's back)");
        }
        {
            auto [w, f] = killed_during([&] { return c.cleanup(); });
            expect_error<fastpgcache::OutcomeUnknownError>("cleanup is not re-sent once sent", "08007", [&] { f.get(); });
        }
        {
            auto [w, f] = killed_during([&] { return c.exists({"retry:k", "retry:k"}); });
            long long n = -1;
            try {
                n = f.get();
            } catch (const std::exception&) {
            }
            CHECK(w && n == 2, "exists (a read) over several keys is retried");
        }
        // Dead at checkout: never sent, so even del goes through on a new connection.
        CHECK(c.exists("retry:k"), "(a pooled connection again)");
        CHECK(su.terminate("fpc-retry") == 1, "idle pooled backend terminated");
        CHECK(c.del("retry:k"), "del on a connection found dead at checkout runs on a new one");
    });

    test("native() connections do not go back to the pool", [&] {
        Options p = base_options("fpc-native");
        p.minconn = 1;
        p.maxconn = 1;
        FastPgCache c(p);
        c.set("native:k", "v");
        const auto d0 = c.pool_stats().discarded;
        int pid1 = 0;
        {
            auto s = c.session();
            PGconn* pg = s.native();
            pid1 = PQbackendPID(pg);
            PQclear(PQexec(pg, "SET work_mem = '123kB'"));
            PQclear(PQexec(pg, "SET search_path = pg_catalog"));
            PQclear(PQexec(pg, "PREPARE fpc_user_stmt AS SELECT 1"));
        }
        CHECK(c.pool_stats().discarded == d0 + 1, "the connection was closed after native()");
        {
            auto s = c.session();
            PGconn* pg = s.native();
            CHECK(PQbackendPID(pg) != pid1, "the next session gets another backend");
            fastpgcache::detail::ResultPtr r(PQexec(pg, "SHOW work_mem"));
            CHECK(PQresultStatus(r.get()) == PGRES_TUPLES_OK && std::string(PQgetvalue(r.get(), 0, 0)) != "123kB",
                  "SET from the earlier native() user did not leak");
            CHECK(s.get("native:k") == std::optional<std::string>("v"), "cache calls work in the session");
        }
        CHECK(c.get("native:k") == std::optional<std::string>("v"), "the pool works afterwards");
        const auto d1 = c.pool_stats().discarded;
        {
            auto s = c.session();
            s.get("native:k");
        }
        CHECK(c.pool_stats().discarded == d1, "a session that did not use native() returns its connection to the pool");
    });

    test("a retry after a broken connection uses a new connection, not another pooled one", [&] {
        Super su;
        Super lock(env("FPC_DB"));
        const std::string table = cache_table(lock);
        Options p = base_options("fpc-fresh");
        p.minconn = 2;
        p.maxconn = 2;
        FastPgCache c(p);
        c.set("fresh:k", "v");
        for (int i = 0; i < 100 && c.pool_stats().idle < 2; ++i) std::this_thread::sleep_for(50ms);
        CHECK(c.pool_stats().idle == 2, "two idle connections");
        const auto opened0 = c.pool_stats().opened;
        lock.exec("BEGIN");
        lock.exec("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE");
        auto fut = std::async(std::launch::async, [&] { return c.get("fresh:k"); });
        std::string pid;
        for (int i = 0; i < 200 && pid.empty(); ++i) {
            pid = su.value("SELECT pid::text FROM pg_stat_activity WHERE application_name = 'fpc-fresh' AND wait_event_type = 'Lock'");
            if (pid.empty()) std::this_thread::sleep_for(50ms);
        }
        CHECK(!pid.empty(), "the get waits on the lock");
        su.value("SELECT pg_terminate_backend($1::int)", {pid});
        std::this_thread::sleep_for(200ms);
        lock.exec("ROLLBACK");
        std::optional<std::string> got;
        try {
            got = fut.get();
        } catch (const std::exception&) {
        }
        CHECK(got == std::optional<std::string>("v"), "the read is retried");
        CHECK(c.pool_stats().opened >= opened0 + 1, "on a newly opened connection (opened " + std::to_string(opened0) +
                                                        " -> " + std::to_string(c.pool_stats().opened) + ")");
    });

    test("Redis multi-key DEL/EXISTS/MGET over ranges and initializer lists", [&] {
        cache.mset({{"rk:a", "1"}, {"rk:b", "2"}, {"rk:c", "3"}});
        redis("MSET rk:a 1 rk:b 2 rk:c 3");
        CHECK(cache.exists({"rk:a", "rk:a", "rk:missing", "rk:b"}) == redis_int("EXISTS rk:a rk:a rk:missing rk:b"),
              "EXISTS counts a repeated key each time, like redis-server");
        std::vector<std::string> ks = {"rk:a", "rk:b", "rk:c", "rk:missing"};
        std::list<std::string> as_list(ks.begin(), ks.end());
        auto vals = cache.mget(as_list.begin(), as_list.end());
        CHECK(vals.size() == 4 && vals[0] == std::optional<std::string>("1") && !vals[3], "mget over an iterator range (std::list)");
        std::set<std::string_view> sv = {"rk:a", "rk:b"};
        CHECK(cache.exists(sv.begin(), sv.end()) == 2, "exists over a range of string_view");
        std::map<std::string, std::string> m = {{"rk:m1", "x"}, {"rk:m2", "y"}};
        CHECK(cache.mset(m.begin(), m.end(), 60) == 2 && cache.get("rk:m2") == std::optional<std::string>("y"),
              "mset over a std::map");
        CHECK(cache.del({"rk:a", "rk:a", "rk:missing"}) == redis_int("DEL rk:a rk:a rk:missing"),
              "DEL counts a repeated key once, like redis-server");
        CHECK(cache.del(ks.begin(), ks.end()) == redis_int("DEL rk:a rk:b rk:c rk:missing"), "DEL over an iterator range");
        CHECK(cache.del(std::vector<std::string>{}) == 0 && cache.exists(std::vector<std::string>{}) == 0, "empty key lists");
        const std::string nk("rk:\0x", 5);
        expect_error<fastpgcache::Error>("a NUL in one key of a list is refused (22021)", "22021", [&] { cache.del({"rk:m1", nk}); });
        CHECK(cache.exists("rk:m1"), "and nothing was deleted");
        cache.del({"rk:m1", "rk:m2"});
    });

    test("ping", [&] {
        CHECK(cache.ping() == "PONG", "ping() returns PONG");
        CHECK(cache.ping("hello ✓") == "hello ✓", "ping(message) echoes the message through the server");
    });

    test("FastPgCache is movable", [&] {
        FastPgCache a(base_options("fpc-move"));
        a.set("mv:k", "v");
        FastPgCache b(std::move(a));
        CHECK(b.get("mv:k") == std::optional<std::string>("v"), "the moved-to object works");
        expect_error<fastpgcache::Error>("the moved-from object throws Error", "", [&] { a.get("mv:k"); });
        expect_error<fastpgcache::Error>("setup() on the moved-from object throws Error (no crash)", "", [&] { a.setup(); });
        std::vector<FastPgCache> v;
        v.push_back(std::move(b));
        CHECK(v[0].exists("mv:k"), "it can live in a std::vector");
        FastPgCache c2(base_options("fpc-move2"));
        c2 = std::move(v[0]);
        CHECK(c2.del("mv:k"), "move assignment");
    });

    test("lazy connection", [&] {
        Super su;
        Options lz = base_options("fpc-lazy");
        lz.lazy_connect = true;
        lz.minconn = 2;
        lz.auto_setup = true;
        FastPgCache c(lz);
        CHECK(c.pool_stats().open == 0 && su.count("fpc-lazy") == 0, "nothing is opened by the constructor");
        CHECK(c.backend() == Backend::Unknown, "auto_setup waits for the first operation");
        CHECK(c.set("lazy:k", "v"), "the first operation connects");
        CHECK(c.backend() != Backend::Unknown, "and ran setup() first");
        for (int i = 0; i < 100 && su.count("fpc-lazy") < 2; ++i) std::this_thread::sleep_for(50ms);
        CHECK(su.count("fpc-lazy") == 2, "then minconn connections are kept open");
        Options down = base_options("fpc-lazy-down");
        down.port = 1;
        down.lazy_connect = true;
        bool constructed = false;
        try {
            FastPgCache d(down);
            constructed = true;
            expect_error<fastpgcache::ConnectionError>("an unreachable server: the first operation fails", "08001", [&] { d.get("x"); });
        } catch (const std::exception&) {
        }
        CHECK(constructed, "lazy: the constructor does not throw for an unreachable server");
    });

    test("per-call deadlines: a statement stuck on a lock is cancelled", [&] {
        Super su;
        Super lock(env("FPC_DB"));
        const std::string table = cache_table(lock);
        Options p = base_options("fpc-deadline");
        p.minconn = 2;
        FastPgCache c(p);
        c.set("dl:k", "v");
        // Each short-deadline call below discards its connection; the next
        // one gets an idle connection refilled in the background.
        auto idle = [&c] {
            for (int i = 0; i < 100 && c.pool_stats().idle < 1; ++i) std::this_thread::sleep_for(50ms);
        };
        idle();
        lock.exec("BEGIN");
        lock.exec("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE");
        auto t0 = std::chrono::steady_clock::now();
        expect_error<fastpgcache::TimeoutError>("a read past its deadline: TimeoutError (57014)", "57014",
                                                [&] { c.with_timeout(300ms).get("dl:k"); });
        auto took = std::chrono::steady_clock::now() - t0;
        CHECK(took >= 290ms && took < 5s, "it returned at its deadline (" + ms(took) + ")");
        idle();
        std::string what;
        try {
            c.with_timeout(300ms).set("dl:k", "v2");
            report(false, "a sent write past its deadline: OutcomeUnknownError", "no exception");
        } catch (const fastpgcache::OutcomeUnknownError& e) {
            report(e.timed_out() && e.sqlstate() == "08007", "a sent write past its deadline: OutcomeUnknownError, timed_out()");
        }
        bool cancelled = false;
        for (int i = 0; i < 100 && !cancelled; ++i) {
            cancelled = su.value("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fpc-deadline' AND wait_event_type = 'Lock'") == "0";
            if (!cancelled) std::this_thread::sleep_for(50ms);
        }
        CHECK(cancelled, "the server-side statements were cancelled (PQcancel), not left waiting");
        lock.exec("ROLLBACK");
        CHECK(c.get("dl:k") == std::optional<std::string>("v"), "the cancelled set did not run; the pool works afterwards");
        auto until = std::chrono::steady_clock::now() + 2s;
        CHECK(c.with_deadline(until).get("dl:k").has_value(), "with_deadline(time_point)");
        CHECK(c.pool_stats().timeouts >= 2, "pool_stats().timeouts counts them");
        Options q = base_options("fpc-deadline2");
        q.operation_timeout = 300ms;
        FastPgCache c3(q);
        lock.exec("BEGIN");
        lock.exec("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE");
        expect_error<fastpgcache::TimeoutError>("Options::operation_timeout applies to every call", "57014", [&] { c3.exists("dl:k"); });
        lock.exec("ROLLBACK");
        auto s = c.session();
        s.set_timeout(300ms);
        lock.exec("BEGIN");
        lock.exec("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE");
        expect_error<fastpgcache::TimeoutError>("a Session's operations have deadlines too", "57014", [&] { s.get("dl:k"); });
        lock.exec("ROLLBACK");
    });

    test("metrics hook", [&] {
        struct Rec {
            std::string op, sqlstate;
            bool ok, write;
            int retries;
            std::chrono::nanoseconds latency, pool_wait;
        };
        auto recs = std::make_shared<std::vector<Rec>>();
        auto mu = std::make_shared<std::mutex>();
        Options p = base_options("fpc-metrics");
        p.minconn = 1;
        p.maxconn = 1;
        p.on_operation = [recs, mu](const fastpgcache::OperationMetrics& m) {
            std::lock_guard<std::mutex> lk(*mu);
            recs->push_back({std::string(m.operation), std::string(m.sqlstate), m.ok, m.write, m.retries, m.latency, m.pool_wait});
            if (m.operation == "ping") throw std::runtime_error("a throwing hook is ignored");
        };
        FastPgCache c(p);
        c.set("mt:k", "v");
        c.get("mt:k");
        try {
            c.set("mt:k", "v", 0);
        } catch (const fastpgcache::Error&) {
        }
        CHECK(c.ping() == "PONG", "an exception from the hook is ignored");
        {
            auto s = c.session();
            std::thread t([&] { std::this_thread::sleep_for(200ms); });
            auto fut = std::async(std::launch::async, [&] { return c.get("mt:k"); });  // waits for the session's connection
            std::this_thread::sleep_for(300ms);
            t.join();
            s.get("mt:k");
            (void)fut;
            { auto drop = std::move(s); }
            fut.get();
        }
        Super su;
        su.terminate("fpc-metrics");
        c.get("mt:k");  // found dead at checkout, or retried
        std::lock_guard<std::mutex> lk(*mu);
        bool shape = recs->size() >= 6 && (*recs)[0].op == "set" && (*recs)[0].write && (*recs)[0].ok &&
                     (*recs)[1].op == "get" && !(*recs)[1].write && (*recs)[2].op == "set" && !(*recs)[2].ok &&
                     (*recs)[2].sqlstate == "22023" && (*recs)[3].op == "ping";
        CHECK(shape, "one record per operation: name, read/write, ok, SQLSTATE of the error");
        bool waited = false, latency_ok = true;
        for (auto& r : *recs) {
            waited = waited || (r.op == "get" && r.pool_wait >= 150ms);
            latency_ok = latency_ok && r.latency >= r.pool_wait && r.latency.count() > 0;
        }
        CHECK(waited, "pool_wait shows the wait for a busy pool");
        CHECK(latency_ok, "latency covers the pool wait");
    });

    test("smaller defects: null value, Ttl overflow, unrepresentable JSON, lifetime, refill, notices", [&] {
        const char* null_value = nullptr;
        expect_error<fastpgcache::Error>("set(key, nullptr) is an Error (22004), not a crash", "22004",
                                         [&] { cache.set("nullv", null_value); });
        expect_error<fastpgcache::Error>("set(key, nullptr literal) too", "22004", [&] { cache.set("nullv", nullptr); });
        expect_error<fastpgcache::Error>("a ttl beyond 32 bits is an Error (22023), not std::out_of_range", "22023",
                                         [&] { cache.set("k", "v", 1LL << 40); });
        {
            Super db(env("FPC_DB"));
            const std::string schema = db.value("SELECT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                                                "WHERE p.proname = 'cache_set' ORDER BY n.nspname = 'public' LIMIT 1");
            db.value("SELECT \"" + schema + "\".cache_set('json:huge', '1e400'::jsonb)");
        }
        expect_error<fastpgcache::Error>("a JSON number nlohmann cannot hold is an Error (22003), not nlohmann's out_of_range",
                                         "22003", [&] { cache.get_json("json:huge"); });
        CHECK(cache.get("json:huge").has_value(), "(the text is still readable)");
        cache.del("json:huge");

        Super su;
        Options lt = base_options("fpc-lifetime");
        lt.minconn = 1;
        lt.maxconn = 1;
        lt.max_connection_lifetime = 800ms;
        FastPgCache c(lt);
        c.set("lt:k", "v");
        const std::string pid1 = su.value("SELECT pid::text FROM pg_stat_activity WHERE application_name = 'fpc-lifetime'");
        std::this_thread::sleep_for(1200ms);
        std::string pid2;
        {
            auto s = c.session();  // the backend this checkout got (native() then closes it)
            pid2 = std::to_string(PQbackendPID(s.native()));
        }
        CHECK(!pid1.empty() && pid2 != pid1,
              "max_connection_lifetime is checked when an idle connection is handed out (backend " + pid1 + " -> " + pid2 + ")");

        Options rf = base_options("fpc-refill");
        rf.minconn = 3;
        rf.maxconn = 4;
        FastPgCache r(rf);
        CHECK(su.count("fpc-refill") == 3, "minconn connections open");
        CHECK(su.terminate("fpc-refill") == 3, "all terminated (as by a server restart)");
        CHECK(r.get("lt:k").has_value(), "the next operation works");
        bool refilled = false;
        for (int i = 0; i < 100 && !refilled; ++i) {
            refilled = su.count("fpc-refill") == 3 && r.pool_stats().open == 3;
            if (!refilled) std::this_thread::sleep_for(100ms);
        }
        CHECK(refilled, "the pool refills minconn in the background");

        // Startup messages (here DEBUG lines, a FATAL during startup in the
        // field) must not reach stderr: the notice handler is installed
        // before the connection starts.
        Options nz = base_options("fpc-noisy");
        nz.connection_string = "host=" + env("FPC_HOST") + " port=" + env("FPC_PORT") + " dbname=" + env("FPC_DB") + " user=" +
                               env("FPC_USER") + " options='-c client_min_messages=debug5'";
        const std::string captured = capture_stderr([&] {
            FastPgCache n(nz);
            n.get("lt:k");
        });
        CHECK(captured.find("DEBUG") == std::string::npos, "libpq printed nothing to stderr while connecting: [" +
                                                             captured.substr(0, 200) + "]");
    });

    commands11_tests(cache);

    if (expect == "fallback") {
        test("a key_hash collision overwrites, like the extension", [&] {
            Super db(env("FPC_DB"));
            const std::string hash = "encode(substring(sha256(convert_to($1, getdatabaseencoding())) FROM 1 FOR 16), 'hex')::uuid";
            auto plant = [&](const std::string& key, const std::string& impostor) {
                db.value("INSERT INTO public.cache_entries AS e (key_hash, key, kind, value) VALUES (" + hash +
                             ", $2, 't', '\\x6f6c64') ON CONFLICT (key_hash) DO UPDATE SET key = EXCLUDED.key RETURNING 1",
                         {key, impostor});
            };
            // Which key occupies the slot (key_hash) of `key`.
            auto slot = [&](const std::string& key) {
                return db.value("SELECT key FROM public.cache_entries WHERE key_hash = " + hash, {key});
            };
            plant("coll:a", "coll:impostor-a");
            CHECK(slot("coll:a") == "coll:impostor-a", "(a row of another key in coll:a's slot)");
            CHECK(!cache.get("coll:a").has_value() && !cache.exists("coll:a") && cache.ttl("coll:a") == -2,
                  "reads compare the full key: the other key's value is not returned");
            CHECK(cache.set("coll:a", "A"), "cache_set into a colliding slot succeeds (no 23505)");
            CHECK(cache.get("coll:a") == std::optional<std::string>("A") && slot("coll:a") == "coll:a",
                  "the slot now holds the new key and value (the other key is evicted)");
            plant("coll:b", "coll:impostor-b");
            CHECK(cache.mset({{"coll:b", "B"}, {"coll:c", "C"}}) == 2, "cache_mset into a colliding slot");
            CHECK(cache.get("coll:b") == std::optional<std::string>("B") && slot("coll:b") == "coll:b",
                  "cache_mset overwrites the colliding row instead of skipping it");
            plant("coll:j", "coll:impostor-j");
            cache.set("coll:j", json{{"j", 1}});
            plant("coll:y", "coll:impostor-y");
            cache.set_bytes("coll:y", "raw");
            const json want = {{"j", 1}};
            CHECK(cache.get_json("coll:j") == want && cache.get_bytes("coll:y") == std::optional<std::string>("raw"),
                  "jsonb and bytea overloads overwrite a colliding row too");
        });
    }

    test("RAII close", [&] {
        Super su;
        {
            Options p = base_options("fpc-raii");
            p.minconn = 2;
            FastPgCache c(p);
            CHECK(su.count("fpc-raii") == 2, "connections open while in scope");
        }
        // The backends exit asynchronously: wait for them (up to 10 s).
        for (int i = 0; i < 100 && su.count("fpc-raii") != 0; ++i) std::this_thread::sleep_for(100ms);
        CHECK(su.count("fpc-raii") == 0, "destructor closes the pool");
        Options p = base_options("fpc-close");
        FastPgCache c(p);
        c.close();
        expect_error<fastpgcache::Error>("operations after close() throw", "", [&] { c.get("x"); });
    });
}

// ---------------------------------------------------------------------------
// Connection strings, TLS defaults, extension schemas, a hijacked fallback
// ---------------------------------------------------------------------------

std::string param(const std::vector<std::pair<std::string, std::string>>& ps, const std::string& k) {
    std::string v = "<unset>";
    for (const auto& p : ps)
        if (p.first == k) v = p.second;
    return v;
}

void misc_tests() {
    test("a connection string libpq cannot parse", [&] {
        for (const std::string& cs : {std::string("postgresql://u:s3cr%ZZet@h/db"), std::string("host=h password='s3cr%ZZet")}) {
            std::string what;
            expect_error<fastpgcache::ConfigError>("unparsable connection string is a ConfigError: " + cs.substr(0, 14), "",
                                                   [&] { FastPgCache c(cs); }, &what);
            CHECK(what.find("s3cr") == std::string::npos && what.find("ZZet") == std::string::npos && !what.empty(),
                  "the message does not quote the password");
        }
    });

    test("TLS defaults for Databricks hosts", [&] {
        unsetenv("PGSSLMODE");
        unsetenv("PGSSLROOTCERT");
        const std::string bundle = fastpgcache::detail::system_ca_bundle();
        CHECK(!bundle.empty(), "a system CA bundle is found (" + bundle + ")");
        Options o;
        o.host = "my-instance.database.cloud.databricks.com";
        auto ps = fastpgcache::detail::connection_params(o);
        CHECK(param(ps, "sslmode") == "verify-full", "Databricks host: sslmode=verify-full by default");
        CHECK(param(ps, "sslrootcert") == bundle, "with sslrootcert = the system CA bundle");
        if (access("/etc/ssl/certs/ca-certificates.crt", R_OK) == 0)
            CHECK(bundle == "/etc/ssl/certs/ca-certificates.crt", "on Debian: /etc/ssl/certs/ca-certificates.crt");
        o.host = "adb-1.azuredatabricks.net";
        CHECK(param(fastpgcache::detail::connection_params(o), "sslmode") == "verify-full", "Azure Databricks host too");
        Options u;
        u.connection_string = "postgresql://me@my-instance.database.cloud.databricks.com/databricks_postgres";
        CHECK(param(fastpgcache::detail::connection_params(u), "sslmode") == "verify-full", "a URL to a Databricks host too");
        u.connection_string += "?sslmode=require";
        ps = fastpgcache::detail::connection_params(u);
        CHECK(param(ps, "sslmode") == "<unset>" && param(ps, "sslrootcert") == "<unset>",
              "an sslmode in the connection string is left alone");
        Options r = o;
        r.sslmode = "require";
        ps = fastpgcache::detail::connection_params(r);
        CHECK(param(ps, "sslmode") == "require" && param(ps, "sslrootcert") == "<unset>", "an explicit Options::sslmode wins");
        Options c = o;
        c.sslrootcert = "/opt/my-ca.pem";
        CHECK(param(fastpgcache::detail::connection_params(c), "sslrootcert") == "/opt/my-ca.pem", "Options::sslrootcert wins");
        setenv("PGSSLMODE", "disable", 1);
        CHECK(param(fastpgcache::detail::connection_params(o), "sslmode") == "<unset>", "PGSSLMODE is respected");
        unsetenv("PGSSLMODE");
        Options l;
        l.host = "db.example.com";
        CHECK(param(fastpgcache::detail::connection_params(l), "sslmode") == "<unset>", "other hosts: libpq's default");
    });

    test("a token provider's token travels only over TLS", [&] {
        unsetenv("PGSSLMODE");
        unsetenv("PGSSLROOTCERT");
        const std::string bundle = fastpgcache::detail::system_ca_bundle();
        auto tp = std::make_shared<fastpgcache::StaticTokenProvider>("tok-123456");
        auto params = [&](Options o, bool token) {
            if (token) o.token_provider = tp;
            return fastpgcache::detail::connection_params(o, token);
        };
        Options o;
        o.host = "10.1.2.3";  // never contacted: only the parameters are computed
        auto ps = params(o, true);
        CHECK(param(ps, "sslmode") == "verify-full" && param(ps, "sslrootcert") == bundle,
              "an IP address: verify-full with the system CA bundle by default");
        o.host = "pg.internal";
        CHECK(param(params(o, true), "sslmode") == "verify-full", "a private DNS name: verify-full");
        CHECK(param(params(o, false), "sslmode") == "<unset>", "(a plain password keeps libpq's default)");
        for (const char* mode : {"disable", "allow", "prefer"}) {
            Options m = o;
            m.sslmode = mode;
            expect_error<fastpgcache::ConfigError>(std::string("sslmode=") + mode + " with a token provider is a ConfigError", "",
                                                   [&] { params(m, true); });
        }
        Options r = o;
        r.sslmode = "require";
        CHECK(param(params(r, true), "sslmode") == "require", "require: the explicit opt-out of certificate checks");
        Options cs;
        cs.connection_string = "postgresql://me@pg.internal/db?sslmode=prefer";
        expect_error<fastpgcache::ConfigError>("sslmode=prefer in the connection string too", "", [&] { params(cs, true); });
        cs.connection_string = "host=pg.internal hostaddr=127.0.0.1 dbname=db";
        CHECK(param(params(cs, true), "sslmode") == "verify-full", "host=name hostaddr=127.0.0.1: the name decides");
        setenv("PGSSLMODE", "disable", 1);
        expect_error<fastpgcache::ConfigError>("PGSSLMODE=disable with a token provider is a ConfigError", "", [&] { params(o, true); });
        unsetenv("PGSSLMODE");
        for (const char* local : {"127.0.0.1", "localhost", "::1", "/var/run/postgresql", "127.0.0.2"}) {
            Options l;
            l.host = local;
            l.sslmode = "disable";
            bool ok = true;
            try {
                params(l, true);
            } catch (const std::exception&) {
                ok = false;
            }
            CHECK(ok, std::string("a local host (") + local + ") may use any sslmode");
        }
        Options lb;
        lb.host = "127.0.0.1,db.example.com";
        CHECK(param(params(lb, true), "sslmode") == "verify-full", "a host list with one remote host: verify-full");
        Options k;
        auto kp = params(k, false);
        CHECK(param(kp, "keepalives") == "1" && param(kp, "keepalives_idle") == "30" && param(kp, "keepalives_interval") == "10" &&
                  param(kp, "keepalives_count") == "3" && param(kp, "tcp_user_timeout") == "30000",
              "TCP keepalives and tcp_user_timeout are set");
        Options kc;
        kc.connection_string = "host=h keepalives_idle=7 tcp_user_timeout=1234";
        auto kcp = params(kc, false);
        CHECK(param(kcp, "keepalives_idle") == "<unset>" && param(kcp, "tcp_user_timeout") == "<unset>",
              "a connection string's own keepalive settings win");

        // A man in the middle that answers "no SSL" to libpq's SSLRequest: with
        // libpq's default (prefer) the token would then go out in clear text
        // (the role uses password authentication).
        const std::string rec_port = env("FPC_RECORDER_PORT");
        const std::string token = env("FPC_TLS_PASSWORD");
        if (rec_port.empty() || token.empty()) {
            report(false, "TLS scenario", "FPC_RECORDER_PORT/FPC_TLS_PASSWORD not set by run.sh");
            return;
        }
        auto read_record = [] {
            std::ifstream in(env("FPC_RECORD_FILE"), std::ios::binary);
            return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        };
        {
            Options plain;
            plain.connection_string = "host=" + env("FPC_TLS_HOSTNAME") + " hostaddr=127.0.0.1 port=" + rec_port +
                                      " dbname=postgres user=" + env("FPC_TLS_USER");
            plain.password = token;
            plain.sslmode = "prefer";
            FastPgCache c(plain);
            CHECK(c.ping() == "PONG" && read_record().find(token) != std::string::npos,
                  "(control: a plain password with sslmode=prefer goes through the relay in clear text)");
        }
        const std::size_t before = read_record().size();
        Options tok;
        tok.connection_string = "host=" + env("FPC_TLS_HOSTNAME") + " hostaddr=127.0.0.1 port=" + rec_port +
                                " dbname=postgres user=" + env("FPC_TLS_USER");
        tok.token_provider = std::make_shared<fastpgcache::StaticTokenProvider>(token);
        tok.sslrootcert = env("FPC_TLS_CA");
        std::string what;
        expect_error<fastpgcache::ConnectionError>("a token provider through a relay that refuses TLS: the connection fails", "",
                                                   [&] { FastPgCache c(tok); }, &what);
        CHECK(read_record().substr(before).find(token) == std::string::npos, "the token never went out in clear text");
        CHECK(what.find(token) == std::string::npos, "nor into the error message: " + what.substr(0, 160));
        // The real server (TLS, certificate for FPC_TLS_HOSTNAME from the test CA).
        tok.connection_string = "host=" + env("FPC_TLS_HOSTNAME") + " hostaddr=127.0.0.1 port=" + env("FPC_PORT") +
                                " dbname=postgres user=" + env("FPC_TLS_USER") + " application_name=fpc-tls";
        FastPgCache ok(tok);
        Super su;
        CHECK(ok.ping() == "PONG" && su.value("SELECT bool_and(s.ssl)::text FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                                              "WHERE a.application_name = 'fpc-tls'") == "true",
              "verify-full against the real server works, over TLS");
        Options wrongca = tok;
        wrongca.sslrootcert = bundle;  // the system CAs did not sign the test certificate
        expect_error<fastpgcache::ConnectionError>("verify-full refuses a certificate the CA bundle did not sign", "",
                                                   [&] { FastPgCache c(wrongca); });
    });

    test("authentication failures are recognised whatever the server's language (lc_messages)", [&] {
        const std::string port = env("FPC_DE_PORT");
        if (port.empty()) {
            report(false, "German server", "FPC_DE_PORT not set by run.sh (no de_DE locale?)");
            return;
        }
        const std::string right = env("FPC_DE_PASSWORD");
        fastpgcache::detail::ConnPtr probe(PQconnectdb(("host=127.0.0.1 port=" + port + " dbname=postgres user=" +
                                                        env("FPC_DE_USER") + " password=wrong-xyz").c_str()));
        const std::string msg = PQerrorMessage(probe.get());
        CHECK(msg.find("Passwort") != std::string::npos && msg.find("password") == std::string::npos,
              "(the server answers in German: " + msg.substr(0, 120) + ")");
        // A provider whose first token was revoked: the retry with a fresh one
        // must happen although the server's message is German.
        struct Rotating : fastpgcache::TokenProvider {
            std::string good;
            std::atomic<int> calls{0}, invalidated{0};
            bool stale = true;
            std::mutex mu;
            std::string get_token() override {
                ++calls;
                std::lock_guard<std::mutex> lk(mu);
                return stale ? std::string("revoked-token-1") : good;
            }
            void invalidate_token(const std::string& t) override {
                ++invalidated;
                std::lock_guard<std::mutex> lk(mu);
                if (t == "revoked-token-1") stale = false;
            }
        };
        auto tp = std::make_shared<Rotating>();
        tp->good = right;
        Options o;
        o.host = "127.0.0.1";
        o.port = std::atoi(port.c_str());
        o.user = env("FPC_DE_USER");
        o.token_provider = tp;
        o.use_extension = false;
        try {
            FastPgCache c(o);
            CHECK(c.ping() == "PONG" && tp->invalidated == 1 && c.pool_stats().auth_retries == 1,
                  "the rejected token was invalidated and the retry with a fresh one connected");
        } catch (const std::exception& e) {
            report(false, "the rejected token was invalidated and the retry with a fresh one connected", e.what());
        }
        Options bad = o;
        bad.token_provider.reset();
        bad.password = "wrong-xyz";
        expect_error<fastpgcache::AuthenticationError>("a wrong password is an AuthenticationError with SQLSTATE 28P01", "28P01",
                                                       [&] { FastPgCache c(bad); });
    });

    test("replies that are not what the API expects are Errors, not std:: exceptions", [&] {
        Super s;
        s.exec("DROP DATABASE IF EXISTS fpc_oddreply");
        s.exec("CREATE DATABASE fpc_oddreply");
        {
            Super d("fpc_oddreply");
            d.exec("CREATE FUNCTION public.cache_ttl(text) RETURNS numeric LANGUAGE sql AS $$ SELECT 1e30 $$");
            d.exec("CREATE FUNCTION public.cache_cleanup() RETURNS text LANGUAGE sql AS $$ SELECT 'many' $$");
            d.exec("CREATE FUNCTION public.cache_incr(text, bigint, integer) RETURNS numeric LANGUAGE sql AS $$ SELECT 1e30 $$");
            d.exec("CREATE FUNCTION public.cache_pttl(text) RETURNS text LANGUAGE sql AS $$ SELECT '12ms' $$");
            d.exec("CREATE FUNCTION public.cache_incrbyfloat(text, double precision) RETURNS real LANGUAGE sql AS $$ SELECT 1.5::real $$");
            d.exec("CREATE FUNCTION public.cache_scan(bigint, text, integer) RETURNS TABLE(next_cursor bigint, keys text[]) "
                   "LANGUAGE sql AS $$ SELECT 1::bigint, '{}'::text[] WHERE false $$");
        }
        Options o = base_options("fpc-odd");
        o.database = "fpc_oddreply";
        o.user = "postgres";
        o.password = env("FPC_SUPER_PASSWORD");
        o.use_extension = false;
        FastPgCache c(o);
        expect_error<fastpgcache::Error>("an integer reply out of range: Error 22003 (was std::out_of_range)", "22003", [&] { c.ttl("k"); });
        expect_error<fastpgcache::Error>("a reply that is not an integer: Error XX000 (was std::invalid_argument)", "XX000",
                                         [&] { c.cleanup(); });
        expect_error<fastpgcache::Error>("incr: an integer reply out of range: 22003", "22003", [&] { c.incr("k"); });
        expect_error<fastpgcache::Error>("pttl: a reply that is not an integer: XX000", "XX000", [&] { c.pttl("k"); });
        expect_error<fastpgcache::Error>("incrbyfloat: a reply that is not a double precision value: XX000", "XX000",
                                         [&] { c.incrbyfloat("k", 1); });
        std::vector<std::string> ks;
        expect_error<fastpgcache::Error>("scan: a reply without a row (no cursor): XX000", "XX000",
                                         [&] { c.scan(0, std::back_inserter(ks)); });
    });

    Options su = base_options("fpc-misc");
    su.user = "postgres";
    su.password = env("FPC_SUPER_PASSWORD");
    su.use_extension = true;

    if (env("FPC_EXT_AVAILABLE") == "1") {
        test("extension installed in a schema other than public", [&] {
            Super s;
            s.exec("DROP DATABASE IF EXISTS fpc_extschema");
            s.exec("CREATE DATABASE fpc_extschema");
            {
                Super d("fpc_extschema");
                d.exec("CREATE SCHEMA \"Cache-X\"");
                d.exec("CREATE EXTENSION fastpgcache SCHEMA \"Cache-X\"");
            }
            Options o = su;
            o.database = "fpc_extschema";
            FastPgCache c(o);
            CHECK(c.set("xs:k", "v") && c.get("xs:k") == std::optional<std::string>("v"),
                  "works before setup(): statements use the extension's schema");
            CHECK(c.setup() == Backend::Extension, "setup() finds the extension");
            CHECK(c.mset({{"xs:a", "1"}}) == 1 && c.mget({"xs:a"}).at(0) == std::optional<std::string>("1") && c.del("xs:k"),
                  "all operations work");
            Super d("fpc_extschema");
            CHECK(d.value("SELECT count(*) FROM \"Cache-X\".cache_entries") == "1", "the data is in \"Cache-X\".cache_entries");
            CHECK(d.value("SELECT to_regclass('public.cache_entries') IS NULL") == "t", "nothing was created in public");
        });
        test("an extension created after the pool started is used", [&] {
            Super s;
            s.exec("DROP DATABASE IF EXISTS fpc_latext");
            s.exec("CREATE DATABASE fpc_latext");
            Options o = su;
            o.database = "fpc_latext";
            o.use_extension = false;
            o.schema_check_interval = 500ms;
            FastPgCache c(o);
            CHECK(c.setup() == Backend::Fallback && c.set("le:a", "1"), "the fallback is used first");
            {
                Super d("fpc_latext");
                d.exec("CREATE SCHEMA later");
                d.exec("CREATE EXTENSION fastpgcache SCHEMA later");
            }
            std::this_thread::sleep_for(700ms);
            CHECK(c.set("le:b", "2"), "a set after schema_check_interval");
            Super d("fpc_latext");
            CHECK(d.value("SELECT count(*) FROM later.cache_entries WHERE key = 'le:b'") == "1",
                  "went to the extension created meanwhile (later.cache_entries)");
        });
        test("setup() installs the extension into the first schema on search_path", [&] {
            Super s;
            s.exec("DROP DATABASE IF EXISTS fpc_extpath");
            s.exec("CREATE DATABASE fpc_extpath");
            {
                Super d("fpc_extpath");
                d.exec("CREATE SCHEMA cachey");
                d.exec("ALTER DATABASE fpc_extpath SET search_path = cachey, public");
            }
            Options o = su;
            o.database = "fpc_extpath";
            FastPgCache c(o);
            expect_error<fastpgcache::Error>("before setup(), there are no cache functions (42883)", "42883", [&] { c.get("k"); });
            CHECK(c.setup() == Backend::Extension, "setup() creates the extension");
            CHECK(c.set("xp:k", "v") && c.get("xp:k") == std::optional<std::string>("v"),
                  "the same pool re-prepares its statements for the extension's schema");
            Super d("fpc_extpath");
            CHECK(d.value("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'fastpgcache'") == "cachey",
                  "the extension is in cachey");
            FastPgCache c2(o);
            CHECK(c2.get("xp:k") == std::optional<std::string>("v"), "a new pool finds it there without setup()");
        });
    }

    test("a cache_entries table pre-created by another role is refused", [&] {
        Super s;
        s.exec("DROP DATABASE IF EXISTS fpc_hijack");
        s.exec("CREATE DATABASE fpc_hijack");
        s.exec("DO $$ BEGIN CREATE ROLE mallory; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
        {
            Super d("fpc_hijack");
            d.exec("GRANT CREATE ON SCHEMA public TO PUBLIC");  // as in PostgreSQL 14 and older
            d.exec("SET ROLE mallory");
            d.exec("CREATE UNLOGGED TABLE public.cache_entries (key_hash uuid PRIMARY KEY, expires_at timestamptz, "
                   "kind \"char\" NOT NULL, key text NOT NULL, value bytea NOT NULL)");
            d.exec("COMMENT ON TABLE public.cache_entries IS 'fastpgcache fallback 1.0'");
            d.exec("GRANT ALL ON public.cache_entries TO PUBLIC");
            d.exec("RESET ROLE");
        }
        auto no_functions = [] {
            Super d("fpc_hijack");
            return d.value("SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND proname LIKE 'cache%'") == "0";
        };
        Options app = base_options("fpc-hijack");
        app.database = "fpc_hijack";
        app.user = "app";
        app.password = env("FPC_APP_PASSWORD");
        app.use_extension = false;
        {
            FastPgCache c(app);
            std::string what;
            expect_error<fastpgcache::Error>("an ordinary role: setup() fails (42501)", "42501", [&] { c.setup(); }, &what);
            CHECK(what.find("mallory") != std::string::npos, "the error names the table's owner: " + what);
            CHECK(no_functions(), "nothing was installed on top of it");
        }
        {
            Options o = su;
            o.database = "fpc_hijack";
            o.use_extension = false;
            FastPgCache c(o);
            std::string what;
            expect_error<fastpgcache::Error>("a superuser: setup() fails too (42501)", "42501", [&] { c.setup(); }, &what);
            CHECK(no_functions(), "nothing was installed on top of it");
        }
        {
            Super d("fpc_hijack");
            d.exec("DROP TABLE public.cache_entries");
        }
        FastPgCache c(app);
        CHECK(c.setup() == Backend::Fallback && c.set("h:k", "v") && c.get("h:k") == std::optional<std::string>("v"),
              "once the table is gone, the fallback installs normally");
    });
}

// ---------------------------------------------------------------------------
// fastpgcache 1.0 on the server: the 1.1 commands say how to upgrade;
// setup() upgrades a 1.0 fallback in place; pools opened before keep working
// ---------------------------------------------------------------------------

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Runs SQL text as role app (password authentication over TCP).
void exec_as_app(const std::string& db, const std::string& sql) {
    fastpgcache::detail::ConnPtr c(PQconnectdb(("host=" + env("FPC_HOST") + " port=" + env("FPC_PORT") + " dbname=" + db +
                                                " user=app password=" + env("FPC_APP_PASSWORD"))
                                                   .c_str()));
    if (PQstatus(c.get()) != CONNECTION_OK) throw std::runtime_error("app connection failed");
    fastpgcache::detail::ResultPtr r(PQexec(c.get(), sql.c_str()));
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK && PQresultStatus(r.get()) != PGRES_TUPLES_OK)
        throw std::runtime_error(std::string("as app: ") + PQerrorMessage(c.get()));
}

// Every command of 1.1, each expected to fail with 42883 naming its SQL
// function, on a server that has only 1.0.
void expect_upgrade_errors(FastPgCache& c, const std::string& must_mention) {
    using fastpgcache::UpdateType;
    std::vector<std::string> ks;
    const std::vector<std::pair<std::string, std::function<void()>>> calls = {
        {"cache_set", [&] { c.set("up:x", "v", {}, UpdateType::NotExist); }},
        {"cache_set", [&] { c.set("up:x", "v", fastpgcache::keep_ttl); }},
        {"cache_set", [&] { c.set_bytes("up:x", "v", 10, UpdateType::Exist); }},
        {"cache_set", [&] { c.set("up:x", json{{"a", 1}}, {}, UpdateType::Exist); }},
        {"cache_getset", [&] { c.getset("up:x", "v"); }},
        {"cache_incr", [&] { c.incr("up:n", 60); }},
        {"cache_incr", [&] { c.incrby("up:n", 2); }},
        {"cache_decr", [&] { c.decr("up:n"); }},
        {"cache_decr", [&] { c.decrby("up:n", 2); }},
        {"cache_incrbyfloat", [&] { c.incrbyfloat("up:n", 1.5); }},
        {"cache_append", [&] { c.append("up:x", "v"); }},
        {"cache_strlen", [&] { c.strlen("up:x"); }},
        {"cache_expire", [&] { c.expire("up:k", 10); }},
        {"cache_pexpire", [&] { c.pexpire("up:k", 10); }},
        {"cache_expireat", [&] { c.expireat("up:k", std::chrono::system_clock::now()); }},
        {"cache_persist", [&] { c.persist("up:k"); }},
        {"cache_pttl", [&] { c.pttl("up:k"); }},
        {"cache_getdel", [&] { c.getdel("up:k"); }},
        {"cache_getex", [&] { c.getex("up:k"); }},
        {"cache_getex", [&] { c.getex("up:k", fastpgcache::persist); }},
        {"cache_type", [&] { c.type("up:k"); }},
        {"cache_keys", [&] { c.keys("up:*"); }},
        {"cache_scan", [&] { c.scan(0, std::back_inserter(ks)); }},
        {"cache_scan", [&] { c.scan_keys().begin(); }},
        {"cache_flush", [&] { c.flushdb(); }},
        {"cache_dbsize", [&] { c.dbsize(); }},
        {"cache_msetnx", [&] { c.msetnx({{"up:m", "v"}}); }},
    };
    int i = 0;
    for (const auto& call : calls) {
        std::string what;
        const std::string st = sqlstate_of(call.second, &what);
        report(st == "42883" && what.find(call.first + "()") != std::string::npos && what.find(must_mention) != std::string::npos,
               "#" + std::to_string(++i) + " " + call.first + ": 42883 naming " + call.first + "() and \"" + must_mention + "\"",
               "[" + st + "] " + what);
    }
}

void upgrade_tests() {
    using fastpgcache::UpdateType;
    const std::string sql10 = read_file(env("FPC_FALLBACK10"));
    const bool ext_available = env("FPC_EXT_AVAILABLE") == "1";
    Super su;
    auto fresh_db = [&](const std::string& name, const std::string& owner) {
        su.exec("DROP DATABASE IF EXISTS " + name);
        su.exec("CREATE DATABASE " + name + " OWNER " + owner);
    };
    auto as_app = [](const std::string& db, const std::string& app_name) {
        Options o = base_options(app_name);
        o.database = db;
        o.user = "app";
        o.password = env("FPC_APP_PASSWORD");
        o.use_extension = true;  // the real fallback trigger: app may not create the extension
        return o;
    };
    const std::string comment_sql = "SELECT obj_description('public.cache_entries'::regclass, 'pg_class')";

    test("a 1.0 fallback: 1.1 commands fail with 42883 saying how to upgrade; setup() upgrades it; an open pool keeps working", [&] {
        fresh_db("fpc_up_fb", "app");
        exec_as_app("fpc_up_fb", sql10);
        Super d("fpc_up_fb");
        CHECK(d.value(comment_sql) == "fastpgcache fallback 1.0", "(the 1.0 fallback is installed, by role app)");
        Options o = as_app("fpc_up_fb", "fpc-up-old");
        o.minconn = 2;
        o.maxconn = 2;
        FastPgCache old(o);  // an application started before the upgrade: no setup()
        CHECK(old.set("up:k", "v", 1000) && old.get("up:k") == std::optional<std::string>("v") &&
                  old.mset({{"up:a", "1"}, {"up:b", "2"}}) == 2 && old.mget({"up:a", "up:b"}).size() == 2 && old.exists("up:a") &&
                  old.del("up:b") && old.ttl("up:k") > 900,
              "the 1.0 commands work on 1.0");
        {
            // Both connections prepare the 1.0 statements.
            auto s1 = old.session();
            auto s2 = old.session();
            CHECK(s1.set("up:s1", "1") && s2.set("up:s2", "2") && s1.get("up:s2") && s2.get("up:s1") && s1.ttl("up:s1") == -1 &&
                      s2.exists("up:s1") && s1.mget({"up:s1"}).size() == 1 && s2.mset({{"up:s3", "3"}}) == 1 && s2.del("up:s3"),
                  "(statements prepared on both connections of the pool)");
        }
        expect_upgrade_errors(old, "SQL fallback 1.0");
        std::string what;
        expect_error<fastpgcache::Error>("incr on a 1.0 fallback: 42883", "42883", [&] { old.incr("up:n"); }, &what);
        CHECK(what.find("setup()") != std::string::npos && what.find("fallback/fastpgcache_fallback.sql") != std::string::npos &&
                  what.find("kept") != std::string::npos,
              "the message says how: setup() or the script, data kept: " + what);
        {
            auto s = old.session();
            s.begin();
            expect_error<fastpgcache::Error>("in a transaction (the catalogs cannot be read after the error): 42883 too", "42883",
                                             [&] { s.incr("up:n"); }, &what);
            CHECK(what.find("ALTER EXTENSION fastpgcache UPDATE") != std::string::npos && what.find("setup()") != std::string::npos,
                  "then the message names both ways: " + what);
            s.rollback();
        }
        CHECK(old.get("up:k") == std::optional<std::string>("v") && !old.exists("up:n") && !old.exists("up:x") && !old.exists("up:m"),
              "the refused calls changed nothing");

        Options ao = as_app("fpc_up_fb", "fpc-up-admin");
        ao.minconn = 1;
        FastPgCache admin(ao);
        CHECK(admin.setup() == Backend::Fallback, "setup() (use_extension=true, a role that may not create it): the fallback");
        CHECK(d.value(comment_sql) == "fastpgcache fallback 1.1", "upgraded in place to 1.1");
        CHECK(d.value("SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND proname = 'cache_set' "
                      "AND pronargs = 3") == "0" &&
                  d.value("SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND proname = 'cache_set'") == "3",
              "the 1.0 cache_set overloads were replaced by the 1.1 ones");
        CHECK(old.get("up:k") == std::optional<std::string>("v") && old.ttl("up:k") > 900 && old.get("up:a") == std::optional<std::string>("1"),
              "the cached data and its expiry were kept");
        {
            auto s1 = old.session();
            auto s2 = old.session();
            bool ok = false;
            std::string err;
            try {
                ok = s1.set("up:s1", "x") && s2.set("up:s2", "y", 100) && s1.get("up:s2") == std::optional<std::string>("y") &&
                     s2.get("up:s1") == std::optional<std::string>("x") && s1.ttl("up:s2") > 90 && s2.exists("up:s1") &&
                     s1.mget({"up:s1", "up:s2"}).size() == 2 && s2.mset({{"up:s3", "3"}}) == 1 && s1.del("up:s3") &&
                     s2.set_bytes("up:b1", "raw") && s1.set("up:j1", json{{"j", 1}});
            } catch (const std::exception& e) {
                err = e.what();
            }
            report(ok, "both connections of the pool opened before the upgrade still run their prepared 1.0 statements", err);
        }
        CHECK(old.incr("up:n") == 1 && old.incr("up:n", 60) == 2 && old.ttl("up:n") == -1, "the same pool now has incr");
        CHECK(!old.set("up:k", "w", {}, UpdateType::NotExist) && old.set("up:k", "w", fastpgcache::keep_ttl) && old.ttl("up:k") > 900,
              "and SET NX / KEEPTTL");
        CHECK(admin.setup() == Backend::Fallback && d.value(comment_sql) == "fastpgcache fallback 1.1", "setup() again: the same");
    });

    if (ext_available) {
        test("a 1.0 fallback where the extension could be created: setup() keeps the fallback and upgrades it", [&] {
            fresh_db("fpc_up_fb2", "postgres");
            {
                Super d("fpc_up_fb2");
                d.exec(sql10);
            }
            Options o = base_options("fpc-up-super");
            o.database = "fpc_up_fb2";
            o.user = "postgres";
            o.password = env("FPC_SUPER_PASSWORD");
            o.use_extension = true;
            FastPgCache c(o);
            CHECK(c.set("up:k", "v"), "(a key in the 1.0 fallback)");
            CHECK(c.setup() == Backend::Fallback, "setup() as a superuser: the fallback");
            Super d("fpc_up_fb2");
            CHECK(d.value("SELECT count(*) FROM pg_extension WHERE extname = 'fastpgcache'") == "0", "no extension was created beside it");
            CHECK(d.value(comment_sql) == "fastpgcache fallback 1.1" && c.get("up:k") == std::optional<std::string>("v") &&
                      c.incr("up:n") == 1,
                  "upgraded to 1.1, the data kept");
        });

        test("a fallback whose 1.1 function has an overload owned by another role is not trusted", [&] {
            // setup() then does not run the fallback script over it (that
            // would fail: the script refuses functions of other owners) but
            // creates the extension, here in the first schema on search_path.
            fresh_db("fpc_up_fb3", "postgres");
            su.exec("DO $$ BEGIN CREATE ROLE mallory; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
            {
                Super d("fpc_up_fb3");
                d.exec("CREATE SCHEMA cachey");
                d.exec("ALTER DATABASE fpc_up_fb3 SET search_path = cachey, public");
                d.exec(read_file(env("FPC_FALLBACK11")));
                d.exec("GRANT CREATE ON SCHEMA public TO mallory");
                d.exec("SET ROLE mallory");
                d.exec("CREATE FUNCTION public.cache_incr(key text) RETURNS bigint LANGUAGE sql AS $$ SELECT 0::bigint $$");
                d.exec("RESET ROLE");
            }
            Options o = base_options("fpc-up-mallory");
            o.database = "fpc_up_fb3";
            o.user = "postgres";
            o.password = env("FPC_SUPER_PASSWORD");
            o.use_extension = true;
            FastPgCache c(o);
            CHECK(c.setup() == Backend::Extension, "setup() creates the extension instead of trusting that fallback");
            Super d("fpc_up_fb3");
            CHECK(d.value("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'fastpgcache'") == "cachey" &&
                      c.incr("up:n") == 1 && d.value("SELECT count(*) FROM cachey.cache_entries") == "1",
                  "and the commands use it");
        });

        test("extension 1.0: 1.1 commands say ALTER EXTENSION fastpgcache UPDATE; after it the same pool has them", [&] {
            fresh_db("fpc_up_ext", "postgres");
            Super d("fpc_up_ext");
            d.exec("CREATE EXTENSION fastpgcache VERSION '1.0'");
            Options o = base_options("fpc-up-ext");
            o.database = "fpc_up_ext";
            o.user = "postgres";
            o.password = env("FPC_SUPER_PASSWORD");
            o.minconn = 1;
            o.maxconn = 1;
            FastPgCache c(o);
            CHECK(c.setup() == Backend::Extension && c.set("up:k", "v", 1000) && c.get("up:k") == std::optional<std::string>("v") &&
                      c.mset({{"up:a", "1"}}) == 1 && c.ttl("up:k") > 900,
                  "the 1.0 commands work on extension 1.0");
            expect_upgrade_errors(c, "ALTER EXTENSION fastpgcache UPDATE");
            std::string what;
            expect_error<fastpgcache::Error>("incr on extension 1.0: 42883", "42883", [&] { c.incr("up:n"); }, &what);
            CHECK(what.find("version 1.0") != std::string::npos, "the message names the installed version: " + what);
            CHECK(d.value("SELECT extversion FROM pg_extension WHERE extname = 'fastpgcache'") == "1.0", "(setup() did not update it)");
            d.exec("ALTER EXTENSION fastpgcache UPDATE");
            CHECK(d.value("SELECT extversion FROM pg_extension WHERE extname = 'fastpgcache'") == "1.1", "ALTER EXTENSION fastpgcache UPDATE");
            bool ok = false;
            std::string err;
            try {
                ok = c.get("up:k") == std::optional<std::string>("v") && c.set("up:k", "w") && c.ttl("up:k") == -1 &&
                     c.mget({"up:a"}).at(0) == std::optional<std::string>("1");
            } catch (const std::exception& e) {
                err = e.what();
            }
            report(ok, "the pool's statements prepared on 1.0 still work", err);
            CHECK(c.incr("up:n") == 1 && !c.set("up:k", "x", {}, UpdateType::NotExist) && c.strlen("up:k") == 1,
                  "and the same pool has the 1.1 commands");
        });
    }

    test("nothing installed: 42883 says to call setup()", [&] {
        fresh_db("fpc_up_none", "app");
        FastPgCache c(as_app("fpc_up_none", "fpc-up-none"));
        std::string what;
        expect_error<fastpgcache::Error>("incr before setup(): 42883", "42883", [&] { c.incr("up:n"); }, &what);
        CHECK(what.find("not installed") != std::string::npos && what.find("setup()") != std::string::npos,
              "the message says to call setup(): " + what);
        CHECK(c.setup() == Backend::Fallback && c.incr("up:n") == 1, "after setup(), incr works");
    });
}

// ---------------------------------------------------------------------------
// A frozen server (SIGSTOP): deadlines, cancel, recovery
// ---------------------------------------------------------------------------

// The postmaster (first line of postmaster.pid) and its children.
std::vector<pid_t> cluster_pids() {
    std::vector<pid_t> pids;
    std::ifstream pidfile(env("FPC_PGDATA") + "/postmaster.pid");
    long pm = 0;
    pidfile >> pm;
    if (pm <= 0) return pids;
    pids.push_back(static_cast<pid_t>(pm));
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
        const std::string name = entry.path().filename();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream stat(entry.path() / "stat");
        std::string line;
        std::getline(stat, line);
        auto close = line.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream rest(line.substr(close + 2));
        char state;
        long ppid = 0;
        rest >> state >> ppid;
        if (ppid == pm) pids.push_back(static_cast<pid_t>(std::stol(name)));
    }
    return pids;
}

// SIGSTOPs the cluster; SIGCONTs it when destroyed (run.sh also sends
// SIGCONT after this suite, in case the process dies).
struct Freeze {
    std::vector<pid_t> pids;
    Freeze() : pids(cluster_pids()) {
        for (pid_t p : pids) ::kill(p, SIGSTOP);
    }
    void thaw() {
        for (pid_t p : pids) ::kill(p, SIGCONT);
        pids.clear();
    }
    ~Freeze() { thaw(); }
};

void freeze_tests() {
    test("a frozen server: every call returns by its deadline; the pool recovers", [&] {
        // One pool per scenario, each with one connection that has already
        // prepared the statement it will run (a statement that still had to
        // be prepared would not have been sent: TimeoutError, not unknown).
        auto pool = [](const std::string& app) {
            Options o = base_options(app);
            o.minconn = 1;
            o.maxconn = 1;
            o.operation_timeout = 1500ms;
            o.connect_timeout = 2s;
            return o;
        };
        FastPgCache reader(pool("fpc-freeze-r")), writer(pool("fpc-freeze-w")), quick(pool("fpc-freeze-q"));
        reader.setup();
        CHECK(writer.set("fz:k", "v") && reader.get("fz:k") == std::optional<std::string>("v") && quick.get("fz:k"),
              "before the freeze");
        CHECK(cluster_pids().size() >= 3, "found the postmaster and its processes");
        Freeze freeze;
        within(30s, "calls while the server is frozen", [&] {
            auto t0 = std::chrono::steady_clock::now();
            std::string what;
            expect_error<fastpgcache::TimeoutError>("a read on a frozen server: TimeoutError", "57014", [&] { reader.get("fz:k"); }, &what);
            auto took = std::chrono::steady_clock::now() - t0;
            CHECK(took >= 1400ms && took < 4s, "within the 1.5 s deadline (" + ms(took) + ")");
            CHECK(what.find("deadline") != std::string::npos, "the message says so: " + what);
            t0 = std::chrono::steady_clock::now();
            try {
                writer.set("fz:k", "v2");
                report(false, "a sent write on a frozen server: OutcomeUnknownError(timed_out)", "no exception");
            } catch (const fastpgcache::OutcomeUnknownError& e) {
                report(e.timed_out(), "a sent write on a frozen server: OutcomeUnknownError(timed_out)");
            } catch (const std::exception& e) {
                report(false, "a sent write on a frozen server: OutcomeUnknownError(timed_out)", e.what());
            }
            CHECK(std::chrono::steady_clock::now() - t0 < 4s, "also within the deadline");
            t0 = std::chrono::steady_clock::now();
            expect_error<fastpgcache::TimeoutError>("with_timeout(300ms) on a frozen server", "57014",
                                                    [&] { quick.with_timeout(300ms).get("fz:k"); });
            CHECK(std::chrono::steady_clock::now() - t0 < 2s, "a per-call deadline shorter than operation_timeout");
            Options fresh = pool("fpc-freeze-new");
            fresh.lazy_connect = true;
            FastPgCache nc(fresh);
            t0 = std::chrono::steady_clock::now();
            expect_error<fastpgcache::TimeoutError>("a new connection to a frozen server: TimeoutError", "57014", [&] { nc.exists("fz:k"); });
            CHECK(std::chrono::steady_clock::now() - t0 < 4s, "connecting is bounded by the deadline too");
            t0 = std::chrono::steady_clock::now();
            expect_error<fastpgcache::TimeoutError>("writes that could not be sent: TimeoutError, not unknown", "57014",
                                                    [&] { nc.set("fz:other", "x"); });
        });
        freeze.thaw();
        std::optional<std::string> got;
        within(30s, "recovery", [&] {
            for (int i = 0; i < 50 && !got; ++i) {
                try {
                    got = reader.get("fz:k");
                } catch (const std::exception&) {
                    std::this_thread::sleep_for(100ms);
                }
            }
        });
        CHECK(got == std::optional<std::string>("v") || got == std::optional<std::string>("v2"),
              "after the server resumes the pool works (the unknown write may or may not have run)");
        CHECK(writer.set("fz:k", "v3") && reader.get("fz:k") == std::optional<std::string>("v3"), "reads and writes again");
        CHECK(reader.pool_stats().timeouts >= 1 && writer.pool_stats().timeouts >= 1, "pool_stats().timeouts counted them");
    });
}

// ---------------------------------------------------------------------------
// A server restart (Autoscaling scale to zero): empty cache, new sessions
// ---------------------------------------------------------------------------

void restart_tests() {
    test("a restarted server: empty cache, statements prepared again, pool refilled", [&] {
        Super su;
        Options o = base_options("fpc-restart");
        o.minconn = 2;
        o.maxconn = 4;
        FastPgCache cache(o);
        const Backend b = cache.setup();
        cache.set("rs:k", "v");
        cache.mset({{"rs:a", "1"}, {"rs:b", "2"}});
        CHECK(cache.mget({"rs:a", "rs:b"}).size() == 2 && cache.ttl("rs:k") == -1, "statements prepared on the old sessions");
        const std::string cmd = env("FPC_RESTART_CMD");
        CHECK(!cmd.empty() && std::system(cmd.c_str()) == 0, "crash restart of the server (" + cmd.substr(0, 60) + ")");
        std::optional<std::string> got = std::string("?");
        try {
            got = cache.get("rs:k");
        } catch (const std::exception& e) {
            report(false, "the first read after the restart", e.what());
        }
        CHECK(!got.has_value(), "the first read after the restart answers a miss (the UNLOGGED table was emptied), no error");
        CHECK(cache.set("rs:k", "new") && cache.get("rs:k") == std::optional<std::string>("new"), "set/get on new sessions");
        auto m = cache.mget({"rs:a", "rs:k"});
        CHECK(m.size() == 2 && !m[0] && m[1] == std::optional<std::string>("new"), "mget re-prepared");
        CHECK(cache.del({"rs:k", "rs:a"}) == 1 && cache.ttl("rs:k") == -2, "del and ttl re-prepared");
        bool refilled = false;
        for (int i = 0; i < 100 && !refilled; ++i) {
            try {
                Super s2;
                refilled = s2.count("fpc-restart") >= 2 && cache.pool_stats().open >= 2;
            } catch (const std::exception&) {
            }
            if (!refilled) std::this_thread::sleep_for(100ms);
        }
        CHECK(refilled, "the pool is back to minconn connections");
        CHECK(cache.setup() == b, "setup() again finds the same backend");
        {
            auto s = cache.session();
            CHECK(s.set("rs:s", "1") && s.get("rs:s") == std::optional<std::string>("1"), "sessions work");
        }
    });
}

// ---------------------------------------------------------------------------
// Databricks token rotation against the fake workspace
// ---------------------------------------------------------------------------

json control(const std::string& path, const json& body = json::object(), bool get = false) {
    std::unique_ptr<CURL, void (*)(CURL*)> c(curl_easy_init(), curl_easy_cleanup);
    std::string url = env("FPC_DBX_URL") + path, payload = body.dump();
    std::string resp;
    curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
    if (!get) curl_easy_setopt(c.get(), CURLOPT_POSTFIELDS, payload.c_str());
    curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, +[](char* d, size_t s, size_t n, void* o) {
        static_cast<std::string*>(o)->append(d, s * n);
        return s * n;
    });
    curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c.get(), CURLOPT_TIMEOUT, 30L);
    if (curl_easy_perform(c.get()) != CURLE_OK) throw std::runtime_error("control request failed: " + path);
    return json::parse(resp);
}

std::vector<std::string> g_log;
std::mutex g_log_mu;

fastpgcache::DatabricksConfig dbx_config(bool m2m) {
    fastpgcache::DatabricksConfig d;
    d.host = env("FPC_DBX_URL");
    if (m2m) {
        d.client_id = env("FPC_DBX_CLIENT_ID");
        d.client_secret = env("FPC_DBX_CLIENT_SECRET");
    } else {
        d.token = env("FPC_DBX_PAT");
    }
    d.instance_names = {env("FPC_DBX_INSTANCE")};
    d.http_timeout = 5s;
    d.retry_backoff = 100ms;
    d.max_attempts = 2;
    d.logger = [](fastpgcache::LogLevel, const std::string& m) {
        std::lock_guard<std::mutex> lk(g_log_mu);
        g_log.push_back(m);
    };
    return d;
}

Options dbx_options(const std::string& app, std::shared_ptr<fastpgcache::TokenProvider> tp) {
    Options o = base_options(app);
    o.password.clear();
    o.token_provider = std::move(tp);
    return o;
}

void clear_dbx_env() {
    for (const char* v : {"DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET",
                          "DATABRICKS_CONFIG_PROFILE", "DATABRICKS_CONFIG_FILE"})
        unsetenv(v);
}

bool secrets_absent(const std::string& text, const std::vector<std::string>& secrets) {
    for (const auto& s : secrets)
        if (!s.empty() && text.find(s) != std::string::npos) return false;
    return true;
}

void databricks_tests() {
    clear_dbx_env();
    const std::string start_home = env("HOME"), start_path = env("PATH");
    // Each test starts from a clean environment, whatever the one before left.
    auto test = [&](const std::string& name, auto&& fn) {
        clear_dbx_env();
        setenv("HOME", start_home.c_str(), 1);
        setenv("PATH", start_path.c_str(), 1);
        ::test(name, fn);
    };
    const std::string pat = env("FPC_DBX_PAT"), secret = env("FPC_DBX_CLIENT_SECRET");

    test("PAT configuration", [&] {
        auto tp = std::make_shared<fastpgcache::DatabricksTokenProvider>(dbx_config(false));
        CHECK(tp->auth_type() == fastpgcache::DatabricksTokenProvider::AuthType::Pat, "PAT auth selected");
        Options o = dbx_options("fpc-dbx-pat", tp);
        o.auto_setup = true;
        FastPgCache cache(o);
        CHECK(cache.backend() == Backend::Fallback, "auto_setup installs the fallback for a non-superuser role");
        CHECK(cache.set("dbx:k", "v") && cache.get("dbx:k") == std::optional<std::string>("v"), "cache works with a PAT-issued credential");
        CHECK(tp->refresh_count() == 1, "one credential fetched");
        CHECK(tp->expires_at() > std::chrono::system_clock::now() + 3000s, "expiration_time parsed");
    });

    test("OAuth M2M configuration", [&] {
        auto before = control("/control/stats", {}, true);
        auto tp = std::make_shared<fastpgcache::DatabricksTokenProvider>(dbx_config(true));
        CHECK(tp->auth_type() == fastpgcache::DatabricksTokenProvider::AuthType::OAuthM2M, "M2M auth selected");
        FastPgCache cache(dbx_options("fpc-dbx-m2m", tp));
        CHECK(cache.get("dbx:k") == std::optional<std::string>("v"), "cache works with an M2M-issued credential");
        auto after = control("/control/stats", {}, true);
        CHECK(after["oauth_tokens"].get<int>() == before["oauth_tokens"].get<int>() + 1, "one OAuth token obtained");
        CHECK(after["discovery"].get<int>() > before["discovery"].get<int>(), "token endpoint discovered via .well-known");
        control("/control/config", {{"discovery", false}});
        auto tp2 = std::make_shared<fastpgcache::DatabricksTokenProvider>(dbx_config(true));
        FastPgCache cache2(dbx_options("fpc-dbx-m2m2", tp2));
        CHECK(cache2.get("dbx:k").has_value(), "falls back to /oidc/v1/token without discovery");
        control("/control/config", {{"discovery", true}});
        auto bad = dbx_config(true);
        bad.client_secret = "not-the-secret-XYZ123";
        auto tp3 = std::make_shared<fastpgcache::DatabricksTokenProvider>(bad);
        std::string what;
        expect_error<fastpgcache::TokenError>("a wrong client secret is a TokenError", "", [&] { FastPgCache c(dbx_options("fpc-dbx-bad", tp3)); }, &what);
        CHECK(secrets_absent(what, {"not-the-secret-XYZ123", secret}), "the secret is not in what()");
    });

    test("profile and environment configuration", [&] {
        std::string home = env("FPC_TMP") + "/home";
        std::string mk = "mkdir -p '" + home + "'";
        CHECK(std::system(mk.c_str()) == 0, "temp HOME");
        {
            std::ofstream f(home + "/.databrickscfg");
            f << "; test config\n[DEFAULT]\nhost = " << env("FPC_DBX_URL") << "\ntoken = " << pat << "\n\n"
              << "[sp]\nhost = " << env("FPC_DBX_URL") << "\nclient_id = " << env("FPC_DBX_CLIENT_ID")
              << "\nclient_secret = " << secret << "\n";
        }
        std::string old_home = env("HOME");
        setenv("HOME", home.c_str(), 1);
        fastpgcache::DatabricksConfig d;
        d.instance_names = {env("FPC_DBX_INSTANCE")};
        d.auto_refresh = false;
        d.logger = [](fastpgcache::LogLevel, const std::string&) {};
        {
            auto tp = std::make_shared<fastpgcache::DatabricksTokenProvider>(d);
            CHECK(tp->auth_type() == fastpgcache::DatabricksTokenProvider::AuthType::Pat, "DEFAULT profile: PAT");
            FastPgCache cache(dbx_options("fpc-dbx-prof", tp));
            CHECK(cache.get("dbx:k").has_value(), "DEFAULT profile connects");
        }
        {
            auto dp = d;
            dp.profile = "sp";
            auto tp = std::make_shared<fastpgcache::DatabricksTokenProvider>(dp);
            CHECK(tp->auth_type() == fastpgcache::DatabricksTokenProvider::AuthType::OAuthM2M, "named profile: M2M");
            FastPgCache cache(dbx_options("fpc-dbx-prof2", tp));
            CHECK(cache.get("dbx:k").has_value(), "named profile connects");
        }
        {
            setenv("DATABRICKS_CONFIG_PROFILE", "sp", 1);
            auto tp = std::make_shared<fastpgcache::DatabricksTokenProvider>(d);
            CHECK(tp->auth_type() == fastpgcache::DatabricksTokenProvider::AuthType::OAuthM2M, "DATABRICKS_CONFIG_PROFILE selects the profile");
            unsetenv("DATABRICKS_CONFIG_PROFILE");
            auto dp = d;
            dp.profile = "nope";
            expect_error<fastpgcache::ConfigError>("an unknown profile is a ConfigError", "", [&] { fastpgcache::DatabricksTokenProvider p(dp); });
        }
        setenv("HOME", (env("FPC_TMP") + "/empty-home").c_str(), 1);
        {
            setenv("DATABRICKS_HOST", env("FPC_DBX_URL").c_str(), 1);
            setenv("DATABRICKS_TOKEN", pat.c_str(), 1);
            auto tp = std::make_shared<fastpgcache::DatabricksTokenProvider>(d);
            FastPgCache cache(dbx_options("fpc-dbx-env", tp));
            CHECK(tp->auth_type() == fastpgcache::DatabricksTokenProvider::AuthType::Pat && cache.get("dbx:k").has_value(),
                  "DATABRICKS_HOST/DATABRICKS_TOKEN configuration");
            unsetenv("DATABRICKS_TOKEN");
            setenv("DATABRICKS_CLIENT_ID", env("FPC_DBX_CLIENT_ID").c_str(), 1);
            setenv("DATABRICKS_CLIENT_SECRET", secret.c_str(), 1);
            auto tp2 = std::make_shared<fastpgcache::DatabricksTokenProvider>(d);
            FastPgCache cache2(dbx_options("fpc-dbx-env2", tp2));
            CHECK(tp2->auth_type() == fastpgcache::DatabricksTokenProvider::AuthType::OAuthM2M && cache2.get("dbx:k").has_value(),
                  "DATABRICKS_CLIENT_ID/SECRET configuration");
            clear_dbx_env();
            expect_error<fastpgcache::ConfigError>("no host configured is a ConfigError", "", [&] { fastpgcache::DatabricksTokenProvider p(d); });
        }
        setenv("HOME", old_home.c_str(), 1);
    });

    test("revoked credential under a running pool", [&] {
        Super su;
        auto cfg = dbx_config(false);
        auto tp = std::make_shared<fastpgcache::DatabricksTokenProvider>(cfg);
        Options o = dbx_options("fpc-dbx-revoke", tp);
        o.minconn = 2;
        o.maxconn = 4;
        FastPgCache cache(o);
        cache.set("rv:k", "v");
        const std::string old_token = tp->get_token();
        control("/control/revoke");
        CHECK(cache.get("rv:k") == std::optional<std::string>("v"), "open connections keep working after revocation");
        CHECK(su.terminate("fpc-dbx-revoke") >= 1, "pool backends terminated (forces new connections)");
        auto before = cache.pool_stats().auth_retries;
        CHECK(cache.get("rv:k") == std::optional<std::string>("v"), "the next new connection recovers");
        CHECK(cache.pool_stats().auth_retries > before, "through the authentication retry");
        CHECK(tp->get_token() != old_token, "with a fresh credential");
    });

    test("workspace endpoint down", [&] {
        Super su;
        auto cfg = dbx_config(false);
        auto tp = std::make_shared<fastpgcache::DatabricksTokenProvider>(cfg);
        Options o = dbx_options("fpc-dbx-down", tp);
        o.minconn = 2;
        o.maxconn = 4;
        FastPgCache cache(o);
        cache.set("down:k", "v");
        const std::string tok = tp->get_token();
        control("/control/down", {{"seconds", 60}});
        bool ok = true;
        for (int i = 0; i < 20; ++i) ok = ok && cache.get("down:k") == std::optional<std::string>("v");
        CHECK(ok, "operations on open connections keep working while the workspace is down");
        CHECK(!tp->refresh(), "an explicit refresh fails while down");
        CHECK(cache.get("down:k").has_value(), "and the current credential is still used");
        control("/control/revoke");
        su.terminate("fpc-dbx-down");
        std::string what;
        expect_error<fastpgcache::ConnectionError>("a new connection without any credential is a ConnectionError", "",
                                                   [&] { cache.get("down:k"); }, &what);
        CHECK(what.find("could not obtain a database credential") != std::string::npos && what.find("503") != std::string::npos,
              "the error says why (credential endpoint HTTP 503)");
        CHECK(secrets_absent(what, {tok, pat, secret}), "no token in what()");
        {
            std::lock_guard<std::mutex> lk(g_log_mu);
            bool clean = !g_log.empty();
            for (auto& m : g_log) clean = clean && secrets_absent(m, {tok, pat, secret});
            CHECK(clean, "failures were reported to the logger, without tokens");
        }
        control("/control/down", {{"seconds", 0}});
        std::this_thread::sleep_for(1100ms);
        CHECK(cache.get("down:k") == std::optional<std::string>("v"), "recovers when the workspace is back");
    });

    test("the discovered OAuth token endpoint must be the workspace's own", [&] {
        using fastpgcache::detail::oauth_endpoint_allowed;
        const std::string ws = "https://adb-1.azuredatabricks.net";
        CHECK(oauth_endpoint_allowed(ws, ws + "/oidc/v1/token"), "https on the workspace host: allowed");
        CHECK(oauth_endpoint_allowed(ws, "https://ADB-1.azuredatabricks.net:443/oidc/v1/token"), "host compared case-insensitively, default port");
        CHECK(!oauth_endpoint_allowed(ws, "http://adb-1.azuredatabricks.net/oidc/v1/token"), "http: refused");
        CHECK(!oauth_endpoint_allowed(ws, "https://login.example.com/token"), "another host: refused");
        CHECK(!oauth_endpoint_allowed(ws, "https://adb-1.azuredatabricks.net.evil.example/t"), "a look-alike host: refused");
        CHECK(!oauth_endpoint_allowed(ws, "https://adb-1.azuredatabricks.net@evil.example/t"), "user info in the URL: refused");
        CHECK(!oauth_endpoint_allowed(ws, "https://adb-1.azuredatabricks.net:8443/t"), "another port: refused");
        CHECK(oauth_endpoint_allowed("http://127.0.0.1:8080", "http://127.0.0.1:8080/oidc/v1/token"), "http to a loopback workspace: allowed");
        CHECK(!oauth_endpoint_allowed("http://127.0.0.1:8080", "http://127.0.0.1:9090/oidc/v1/token"), "loopback, another port: refused");
        auto plain = dbx_config(false);
        plain.host = "http://workspace.example.com";
        expect_error<fastpgcache::ConfigError>("an http:// workspace that is not loopback is a ConfigError", "",
                                               [&] { fastpgcache::DatabricksTokenProvider p(plain); });

        const std::string port = env("FPC_DBX_URL").substr(env("FPC_DBX_URL").rfind(':') + 1);
        for (const std::string& evil : {"http://localhost:" + port + "/evil/token", std::string("https://attacker.invalid/evil/token")}) {
            control("/control/config", {{"token_endpoint", evil}});
            auto before = control("/control/stats", {}, true);
            {
                std::lock_guard<std::mutex> lk(g_log_mu);
                g_log.clear();
            }
            auto tp = std::make_shared<fastpgcache::DatabricksTokenProvider>(dbx_config(true));
            bool ok = false;
            try {
                ok = !tp->get_token().empty();
            } catch (const std::exception&) {
            }
            auto after = control("/control/stats", {}, true);
            CHECK(after["discovery"].get<int>() > before["discovery"].get<int>(), "discovery advertised " + evil);
            CHECK(after["evil_token"].get<int>() == 0, "the client secret was not sent to " + evil);
            CHECK(ok && after["oauth_tokens"].get<int>() == before["oauth_tokens"].get<int>() + 1,
                  "M2M falls back to the workspace's /oidc/v1/token");
            std::lock_guard<std::mutex> lk(g_log_mu);
            bool warned = false;
            for (auto& m : g_log) warned = warned || m.find("ignoring the discovered OAuth token_endpoint") != std::string::npos;
            CHECK(warned, "and says so in the log");
        }
        control("/control/config", {{"token_endpoint", nullptr}});
    });

    test("a credential that arrives already expired does not make the provider spin", [&] {
        control("/control/config", {{"expires_in", -120}});
        {
            std::lock_guard<std::mutex> lk(g_log_mu);
            g_log.clear();
        }
        auto cfg = dbx_config(false);
        cfg.auto_refresh = true;
        cfg.refresh_interval = 1s;
        auto tp = std::make_shared<fastpgcache::DatabricksTokenProvider>(cfg);
        within(60s, "expired-on-arrival credentials", [&] {
            FastPgCache cache(dbx_options("fpc-dbx-expired", tp));
            CHECK(cache.get("dbx:k") == std::optional<std::string>("v"),
                  "the credential is used (for a grace period) and the server accepts it");
            for (int i = 0; i < 100; ++i) tp->get_token();
            CHECK(tp->refresh_count() == 1, "100 get_token() calls right away: no new fetch");
            std::this_thread::sleep_for(3500ms);
            CHECK(tp->refresh_count() >= 2 && tp->refresh_count() <= 4,
                  "the background thread refreshes with growing spacing (1 s, 2 s ...), got " + std::to_string(tp->refresh_count()));
            const auto n = tp->refresh_count();
            tp->invalidate_token(tp->get_token());
            try {
                tp->get_token();
            } catch (const fastpgcache::TokenError&) {
            }
            CHECK(tp->refresh_count() <= n + 1, "a rejected credential: at most one fetch per get_token() call");
        });
        {
            std::lock_guard<std::mutex> lk(g_log_mu);
            bool warned = false;
            for (auto& m : g_log) warned = warned || m.find("in the past") != std::string::npos;
            CHECK(warned, "the past expiration_time is reported");
        }
        control("/control/config", {{"expires_in", 3600}});
    });

    test("the logger may call back into the provider, and may throw", [&] {
        auto holder = std::make_shared<std::atomic<fastpgcache::DatabricksTokenProvider*>>(nullptr);
        auto calls = std::make_shared<std::atomic<int>>(0);
        auto cfg = dbx_config(false);
        cfg.auto_refresh = false;
        cfg.logger = [holder, calls](fastpgcache::LogLevel, const std::string&) {
            if (auto* p = holder->load()) {
                (void)p->expires_at();
                (void)p->last_error();
                ++*calls;
            }
        };
        auto tp = std::make_shared<fastpgcache::DatabricksTokenProvider>(cfg);
        holder->store(tp.get());
        within(60s, "re-entrant logger", [&] {
            const std::string t = tp->get_token();  // Info: refreshed
            tp->invalidate_token(t);                // Warning: rejected
            control("/control/down", {{"seconds", 60}});
            CHECK(!tp->refresh(), "a failing refresh reports (attempt warnings, then the error)");
            control("/control/down", {{"seconds", 0}});
            CHECK(tp->refresh(), "and recovers");
        });
        CHECK(*calls >= 5, "the logger ran " + std::to_string(calls->load()) + " times, calling expires_at()/last_error()");
        holder->store(nullptr);

        auto cfg2 = dbx_config(false);
        cfg2.auto_refresh = true;
        cfg2.refresh_interval = 1s;
        auto thrown = std::make_shared<std::atomic<int>>(0);
        cfg2.logger = [thrown](fastpgcache::LogLevel, const std::string&) {
            ++*thrown;
            throw std::runtime_error("logger failure");
        };
        auto tp2 = std::make_shared<fastpgcache::DatabricksTokenProvider>(cfg2);
        within(60s, "throwing logger", [&] {
            const std::string t = tp2->get_token();
            std::this_thread::sleep_for(2500ms);  // background refreshes, each logging
            tp2->invalidate_token(t);
            CHECK(tp2->refresh_count() >= 2, "the background thread survives a throwing logger");
        });
        CHECK(*thrown >= 3, "the logger threw " + std::to_string(thrown->load()) + " times, and nothing terminated");
    });

    test("Lakebase Autoscaling: POST /api/2.0/postgres/credentials with the endpoint", [&] {
        auto cfg = dbx_config(false);
        cfg.instance_names.clear();
        cfg.endpoint = env("FPC_DBX_ENDPOINT");
        cfg.auto_refresh = false;
        auto tp = std::make_shared<fastpgcache::DatabricksTokenProvider>(cfg);
        CHECK(tp->api() == fastpgcache::DatabricksTokenProvider::Api::Autoscaling, "endpoint selects the Autoscaling API");
        FastPgCache cache(dbx_options("fpc-dbx-as", tp));
        CHECK(cache.get("dbx:k") == std::optional<std::string>("v"), "the credential connects");
        auto st = control("/control/stats", {}, true);
        CHECK(st["last_postgres_body"] == json({{"endpoint", env("FPC_DBX_ENDPOINT")}}),
              "the request body is exactly {\"endpoint\": ...} (no request_id): " + st["last_postgres_body"].dump());
        const auto exp = tp->expires_at() - std::chrono::system_clock::now();
        CHECK(exp > 3500s && exp < 3700s, "expire_time parsed");
        for (int digits = 0; digits <= 9; ++digits) {
            control("/control/config", {{"frac_digits", digits}});
            bool ok = tp->refresh();
            const auto e = tp->expires_at() - std::chrono::system_clock::now();
            CHECK(ok && e > 3500s && e < 3700s, "expire_time with " + std::to_string(digits) + " fractional digits");
        }
        control("/control/config", {{"frac_digits", 6}});
        auto t = cfg;
        t.credential_ttl = 900s;
        auto tp2 = std::make_shared<fastpgcache::DatabricksTokenProvider>(t);
        tp2->get_token();
        st = control("/control/stats", {}, true);
        const auto e2 = tp2->expires_at() - std::chrono::system_clock::now();
        CHECK(st["last_postgres_body"] == json({{"endpoint", env("FPC_DBX_ENDPOINT")}, {"ttl", "900s"}}) && e2 > 800s && e2 < 1000s,
              "credential_ttl is sent as ttl \"900s\" and honoured");
        auto bad = cfg;
        bad.endpoint = "projects/x/branches/y/endpoints/nope";
        auto tp3 = std::make_shared<fastpgcache::DatabricksTokenProvider>(bad);
        std::string what;
        expect_error<fastpgcache::TokenError>("an unknown endpoint is a TokenError", "", [&] { tp3->get_token(); }, &what);
        CHECK(what.find("404") != std::string::npos, "saying HTTP 404: " + what);
        auto both = cfg;
        both.instance_names = {"x"};
        expect_error<fastpgcache::ConfigError>("endpoint and instance_names together: ConfigError", "",
                                               [&] { fastpgcache::DatabricksTokenProvider p(both); });
        auto none = cfg;
        none.endpoint.clear();
        expect_error<fastpgcache::ConfigError>("neither endpoint nor instance_names: ConfigError", "",
                                               [&] { fastpgcache::DatabricksTokenProvider p(none); });
        using fastpgcache::detail::parse_rfc3339;
        auto base = parse_rfc3339("2025-10-12T17:00:00Z");
        CHECK(base && parse_rfc3339("2025-10-12T17:00:00.123456789Z") &&
                  *parse_rfc3339("2025-10-12T19:00:00.5+02:00") - *base == 500ms &&
                  *parse_rfc3339("2025-10-12t17:00:00z") == *base && !parse_rfc3339("2025-10-12T17:00:00"),
              "RFC 3339: 0-9 fractional digits, offsets, lower case; no zone is refused");
    });

    test("unified auth order: explicit, DATABRICKS_* environment, ~/.databrickscfg", [&] {
        const std::string home = env("FPC_TMP") + "/home-order";
        std::filesystem::create_directories(home);
        {
            std::ofstream f(home + "/.databrickscfg");
            f << "[DEFAULT]\nhost = " << env("FPC_DBX_URL") << "\ntoken = profile-token-not-valid\n"
              << "[both]\nhost = " << env("FPC_DBX_URL") << "\ntoken = " << pat << "\nclient_id = " << env("FPC_DBX_CLIENT_ID")
              << "\nclient_secret = " << secret << "\n"
              << "[both-pat]\nhost = " << env("FPC_DBX_URL") << "\nauth_type = pat\ntoken = " << pat
              << "\nclient_id = x\nclient_secret = y\n";
        }
        const std::string old_home = env("HOME");
        setenv("HOME", home.c_str(), 1);
        fastpgcache::DatabricksConfig d;
        d.instance_names = {env("FPC_DBX_INSTANCE")};
        d.auto_refresh = false;
        d.logger = [](fastpgcache::LogLevel, const std::string&) {};
        auto works = [](fastpgcache::DatabricksConfig c) {
            try {
                fastpgcache::DatabricksTokenProvider p(c);
                return !p.get_token().empty();
            } catch (const std::exception&) {
                return false;
            }
        };
        CHECK(!works(d), "(the DEFAULT profile's token is not valid)");
        auto named = d;
        named.profile = "DEFAULT";  // a named profile is read even when a credential is set
        setenv("DATABRICKS_TOKEN", pat.c_str(), 1);
        CHECK(works(named), "DATABRICKS_TOKEN wins over the profile's token (the profile gives the host)");
        unsetenv("DATABRICKS_TOKEN");
        {
            setenv("DATABRICKS_HOST", env("FPC_DBX_URL").c_str(), 1);
            setenv("DATABRICKS_TOKEN", pat.c_str(), 1);
            fastpgcache::DatabricksTokenProvider p(d);
            CHECK(!p.get_token().empty(), "with no profile named and a credential in the environment, the profile is not read");
            unsetenv("DATABRICKS_HOST");
        }
        setenv("DATABRICKS_TOKEN", "env-token-not-valid", 1);
        auto e = named;
        e.token = pat;
        CHECK(works(e), "an explicit token wins over DATABRICKS_TOKEN");
        unsetenv("DATABRICKS_TOKEN");
        setenv("DATABRICKS_HOST", "http://127.0.0.1:1", 1);
        auto h = d;
        h.host = env("FPC_DBX_URL");
        h.token = pat;
        CHECK(works(h), "an explicit host wins over DATABRICKS_HOST");
        unsetenv("DATABRICKS_HOST");
        auto m = d;
        m.host = env("FPC_DBX_URL");
        m.token = pat;
        setenv("DATABRICKS_CLIENT_ID", env("FPC_DBX_CLIENT_ID").c_str(), 1);
        setenv("DATABRICKS_CLIENT_SECRET", secret.c_str(), 1);
        std::string what;
        expect_error<fastpgcache::ConfigError>("a token and a client secret without auth_type: ConfigError", "",
                                               [&] { fastpgcache::DatabricksTokenProvider p(m); }, &what);
        CHECK(what.find("more than one authorization method") != std::string::npos, "as the SDKs say it: " + what);
        m.auth_type = "oauth-m2m";
        {
            fastpgcache::DatabricksTokenProvider p(m);
            CHECK(p.auth_type() == fastpgcache::DatabricksTokenProvider::AuthType::OAuthM2M && !p.get_token().empty(),
                  "auth_type chooses one");
        }
        setenv("DATABRICKS_AUTH_TYPE", "pat", 1);
        m.auth_type.clear();
        {
            fastpgcache::DatabricksTokenProvider p(m);
            CHECK(p.auth_type() == fastpgcache::DatabricksTokenProvider::AuthType::Pat, "DATABRICKS_AUTH_TYPE chooses too");
        }
        unsetenv("DATABRICKS_AUTH_TYPE");
        unsetenv("DATABRICKS_CLIENT_ID");
        unsetenv("DATABRICKS_CLIENT_SECRET");
        auto b = d;
        b.profile = "both";
        expect_error<fastpgcache::ConfigError>("a profile with two methods and no auth_type: ConfigError", "",
                                               [&] { fastpgcache::DatabricksTokenProvider p(b); });
        b.profile = "both-pat";
        CHECK(works(b), "auth_type in the profile chooses");
        auto u = d;
        u.auth_type = "magic";
        u.token = pat;
        expect_error<fastpgcache::ConfigError>("an unknown auth_type: ConfigError", "", [&] { fastpgcache::DatabricksTokenProvider p(u); });
        setenv("HOME", old_home.c_str(), 1);
    });

    test("auth_type databricks-cli: the token of `databricks auth token`", [&] {
        const std::string home = env("FPC_TMP") + "/home-cli";
        std::filesystem::create_directories(home);
        {
            std::ofstream f(home + "/.databrickscfg");
            f << "[dev]\nhost = " << env("FPC_DBX_URL") << "\nauth_type = databricks-cli\n";
        }
        const std::string old_home = env("HOME"), old_path = env("PATH");
        setenv("HOME", home.c_str(), 1);
        const std::string log = env("FPC_TMP") + "/cli.log";
        setenv("FPC_FAKE_CLI_LOG", log.c_str(), 1);
        setenv("FPC_FAKE_CLI_WORKSPACE", env("FPC_DBX_URL").c_str(), 1);
        fastpgcache::DatabricksConfig d;
        d.instance_names = {env("FPC_DBX_INSTANCE")};
        d.auto_refresh = false;
        d.logger = [](fastpgcache::LogLevel, const std::string&) {};
        auto nocli = d;
        nocli.profile = "dev";
        setenv("PATH", "/usr/bin:/bin", 1);
        expect_error<fastpgcache::ConfigError>("databricks-cli without the CLI on PATH: ConfigError", "",
                                               [&] { fastpgcache::DatabricksTokenProvider p(nocli); });
        setenv("PATH", (env("FPC_FAKE_CLI_DIR") + ":" + old_path).c_str(), 1);
        auto before = control("/control/stats", {}, true);
        {
            auto p = d;
            p.profile = "dev";
            auto tp = std::make_shared<fastpgcache::DatabricksTokenProvider>(p);
            CHECK(tp->auth_type() == fastpgcache::DatabricksTokenProvider::AuthType::DatabricksCli, "auth_type = databricks-cli in the profile");
            FastPgCache cache(dbx_options("fpc-dbx-cli", tp));
            CHECK(cache.get("dbx:k") == std::optional<std::string>("v"), "the workspace accepts the CLI's token; the credential connects");
            std::ifstream in(log);
            std::string line;
            std::getline(in, line);
            CHECK(line == "[\"auth\", \"token\", \"--profile\", \"dev\"]", "ran `databricks auth token --profile dev`: " + line);
        }
        auto after = control("/control/stats", {}, true);
        CHECK(after["cli_tokens"].get<int>() == before["cli_tokens"].get<int>() + 1, "once");
        {
            auto nohome = d;
            nohome.host = env("FPC_DBX_URL");
            setenv("HOME", (env("FPC_TMP") + "/empty-home").c_str(), 1);
            std::remove(log.c_str());
            fastpgcache::DatabricksTokenProvider p(nohome);
            CHECK(p.auth_type() == fastpgcache::DatabricksTokenProvider::AuthType::DatabricksCli && !p.get_token().empty(),
                  "no token or client secret configured, the CLI on PATH: databricks-cli is chosen");
            std::ifstream in(log);
            std::string line;
            std::getline(in, line);
            CHECK(line == "[\"auth\", \"token\", \"--host\", \"" + env("FPC_DBX_URL") + "\"]", "with --host: " + line);
            setenv("FPC_FAKE_CLI_FAIL", "1", 1);
            fastpgcache::DatabricksTokenProvider q(nohome);
            std::string what;
            expect_error<fastpgcache::TokenError>("a failing CLI: TokenError", "", [&] { q.get_token(); }, &what);
            CHECK(what.find("databricks auth login") != std::string::npos, "telling to log in again: " + what);
            unsetenv("FPC_FAKE_CLI_FAIL");
            setenv("FPC_FAKE_CLI_SLEEP", "30", 1);
            fastpgcache::DatabricksTokenProvider slow(nohome);
            auto t0 = std::chrono::steady_clock::now();
            expect_error<fastpgcache::TokenError>("a CLI that hangs: TokenError at the caller's deadline", "",
                                                  [&] { slow.get_token(std::chrono::steady_clock::now() + 1s); });
            CHECK(std::chrono::steady_clock::now() - t0 < 4s, "bounded by the deadline (" + ms(std::chrono::steady_clock::now() - t0) + ")");
            unsetenv("FPC_FAKE_CLI_SLEEP");
        }
        setenv("HOME", old_home.c_str(), 1);
        setenv("PATH", old_path.c_str(), 1);
    });

    test("a fresh token that is refused too: bounded, jittered backoff, no tight loop", [&] {
        auto cfg = dbx_config(false);
        cfg.auto_refresh = false;
        auto tp = std::make_shared<fastpgcache::DatabricksTokenProvider>(cfg);
        Options o = dbx_options("fpc-dbx-bogus", tp);
        o.lazy_connect = true;
        o.minconn = 0;
        FastPgCache cache(o);
        control("/control/config", {{"bogus", true}});
        const int fetched0 = control("/control/stats", {}, true)["credentials"].get<int>();
        int auth_errors = 0, attempts = 0;
        std::string last;
        const auto end = std::chrono::steady_clock::now() + 1500ms;
        while (std::chrono::steady_clock::now() < end) {
            ++attempts;
            try {
                cache.get("dbx:k");
            } catch (const fastpgcache::AuthenticationError& e) {
                ++auth_errors;
                last = e.what();
            } catch (const std::exception& e) {
                last = e.what();
            }
            std::this_thread::sleep_for(20ms);
        }
        const int fetched = control("/control/stats", {}, true)["credentials"].get<int>() - fetched0;
        CHECK(auth_errors == attempts, "every attempt is an AuthenticationError (" + std::to_string(auth_errors) + "/" +
                                           std::to_string(attempts) + "): " + last.substr(0, 200));
        CHECK(fetched <= 6, std::to_string(fetched) + " credentials fetched for " + std::to_string(attempts) +
                                " attempts in 1.5 s (no tight loop)");
        CHECK(last.find("no new attempt for another") != std::string::npos, "the error says it is backing off");
        control("/control/config", {{"bogus", false}});
        bool recovered = false;
        for (int i = 0; i < 100 && !recovered; ++i) {
            try {
                recovered = cache.get("dbx:k").has_value();
            } catch (const std::exception&) {
                std::this_thread::sleep_for(200ms);
            }
        }
        CHECK(recovered, "recovers once the role accepts the credentials again");
    });

    test("every wait is bounded by the caller's deadline; shutdown aborts HTTP", [&] {
        auto cfg = dbx_config(false);
        cfg.auto_refresh = false;
        cfg.http_timeout = 15s;
        auto tp = std::make_shared<fastpgcache::DatabricksTokenProvider>(cfg);
        Options o = dbx_options("fpc-dbx-hang", tp);
        o.lazy_connect = true;
        o.operation_timeout = 2s;
        FastPgCache cache(o);
        control("/control/config", {{"hang_seconds", 20}});
        auto t0 = std::chrono::steady_clock::now();
        within(30s, "token fetch against a hanging workspace", [&] {
            expect_error<fastpgcache::ConnectionError>("a hanging workspace: the operation fails", "", [&] { cache.get("dbx:k"); });
        });
        auto took = std::chrono::steady_clock::now() - t0;
        CHECK(took < 5s, "at the 2 s operation deadline, not after http_timeout (" + ms(took) + ")");
        control("/control/config", {{"hang_seconds", 0}});
        auto bg = dbx_config(false);
        bg.http_timeout = 15s;
        bg.auto_refresh = true;
        bg.refresh_interval = 1s;
        auto p = std::make_unique<fastpgcache::DatabricksTokenProvider>(bg);
        p->get_token();
        control("/control/config", {{"hang_seconds", 20}});
        std::this_thread::sleep_for(2500ms);  // the background refresh is now waiting for HTTP
        t0 = std::chrono::steady_clock::now();
        within(30s, "destructor during a hanging refresh", [&] { p.reset(); });
        took = std::chrono::steady_clock::now() - t0;
        CHECK(took < 4s, "the destructor aborts the HTTP request (" + ms(took) + ")");
        control("/control/config", {{"hang_seconds", 0}});
    });

    test("a logger that calls get_token()/refresh() during a refresh does not deadlock", [&] {
        auto holder = std::make_shared<std::atomic<fastpgcache::DatabricksTokenProvider*>>(nullptr);
        auto inner = std::make_shared<std::atomic<int>>(0);
        auto cfg = dbx_config(false);
        cfg.auto_refresh = false;
        cfg.logger = [holder, inner](fastpgcache::LogLevel, const std::string&) {
            if (auto* p = holder->load()) {
                try {
                    (void)p->get_token();
                } catch (const fastpgcache::TokenError&) {
                }
                (void)p->refresh();
                ++*inner;
            }
        };
        auto tp = std::make_shared<fastpgcache::DatabricksTokenProvider>(cfg);
        holder->store(tp.get());
        control("/control/down", {{"seconds", 60}});
        within(30s, "logger calling back during the first fetch", [&] {
            expect_error<fastpgcache::TokenError>("the failing first fetch reports (and the logger re-enters)", "",
                                                  [&] { tp->get_token(); });
        });
        control("/control/down", {{"seconds", 0}});
        std::this_thread::sleep_for(1100ms);
        within(30s, "logger calling back after a successful fetch", [&] { CHECK(!tp->get_token().empty(), "recovers"); });
        CHECK(*inner >= 2, "the logger re-entered " + std::to_string(inner->load()) + " times");
        holder->store(nullptr);
    });

    test("soak: 32 threads while the credential rotates", [&] {
        const int seconds = std::atoi(env("FPC_SOAK_SECONDS", "60").c_str());
        auto cfg = dbx_config(true);
        cfg.refresh_interval = 3s;  // a new credential (and the old one revoked) every 3 s
        cfg.auto_refresh = true;
        auto tp = std::make_shared<fastpgcache::DatabricksTokenProvider>(cfg);
        Options o = dbx_options("fpc-dbx-soak", tp);
        o.minconn = 2;
        o.maxconn = 8;
        o.max_connection_lifetime = 1500ms;  // churn: new connections all the time
        o.pool_timeout = 30s;
        FastPgCache cache(o);
        const auto refreshes0 = tp->refresh_count();
        std::atomic<bool> stop{false};
        std::atomic<long> ops{0}, failures{0};
        std::string first_failure;
        std::mutex ff;
        std::vector<std::thread> ts;
        for (int t = 0; t < 32; ++t) {
            ts.emplace_back([&, t] {
                long i = 0;
                while (!stop) {
                    std::string k = "soak:" + std::to_string(t) + ":" + std::to_string(i % 50);
                    std::string v = std::to_string(i);
                    try {
                        cache.set(k, v, 300);
                        auto got = cache.get(k);
                        if (got != v) throw std::runtime_error("read back a different value");
                        ops += 2;
                    } catch (const std::exception& e) {
                        if (++failures == 1) {
                            std::lock_guard<std::mutex> lk(ff);
                            first_failure = e.what();
                        }
                    }
                    ++i;
                }
            });
        }
        // Extra server-side revocations the provider does not know about.
        std::thread revoker([&] {
            auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
            while (std::chrono::steady_clock::now() + 7s < end) {
                std::this_thread::sleep_for(7s);
                control("/control/revoke");
            }
        });
        std::this_thread::sleep_for(std::chrono::seconds(seconds));
        stop = true;
        for (auto& th : ts) th.join();
        revoker.join();
        auto st = cache.pool_stats();
        std::cout << "# soak " << seconds << " s: " << ops << " ops, " << failures << " failures, "
                  << (tp->refresh_count() - refreshes0) << " credential refreshes, " << st.opened << " connections opened, "
                  << st.auth_retries << " auth retries\n";
        report(failures == 0, "zero failed operations", first_failure);
        CHECK(ops > 1000, "operations made progress");
        CHECK(tp->refresh_count() - refreshes0 >= static_cast<std::uint64_t>(seconds / 3 - 1), "the credential rotated every few seconds");
        CHECK(st.opened > 8, "new connections were opened during rotation");
    });
}

}  // namespace

int main(int argc, char** argv) {
    std::string what = argc > 1 ? argv[1] : "api";
    curl_global_init(CURL_GLOBAL_DEFAULT);
    try {
        if (what == "api") api_tests();
        else if (what == "misc") misc_tests();
        else if (what == "databricks") databricks_tests();
        else if (what == "freeze") freeze_tests();
        else if (what == "restart") restart_tests();
        else if (what == "upgrade") upgrade_tests();
        else {
            std::cerr << "usage: client_tests api|misc|upgrade|databricks|freeze|restart\n";
            return 2;
        }
    } catch (const std::exception& e) {
        report(false, "test driver", e.what());
    }
    std::cout << "RESULT " << g_pass << " " << g_fail << std::endl;
    curl_global_cleanup();
    return g_fail == 0 ? 0 : 1;
}
