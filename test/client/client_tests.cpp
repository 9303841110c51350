// Tests of include/fastpgcache/client.hpp against a real PostgreSQL cluster
// and a fake Databricks workspace (test/client/fake_databricks.py).
// Driven by test/client/run.sh through environment variables:
//   client_tests api         FPC_HOST FPC_PORT FPC_DB FPC_USER FPC_PASSWORD
//                            FPC_EXPECT_BACKEND (extension|fallback) FPC_USE_EXTENSION (0|1)
//                            FPC_SUPER_CONNINFO (superuser, for pg_terminate_backend)
//   client_tests misc        FPC_HOST FPC_PORT FPC_SUPER_CONNINFO FPC_SUPER_PASSWORD FPC_APP_PASSWORD
//                            FPC_EXT_AVAILABLE (0|1): connection strings, TLS defaults,
//                            extension schemas, a hijacked fallback table
//   client_tests databricks  FPC_HOST FPC_PORT FPC_DB FPC_USER FPC_SUPER_CONNINFO
//                            FPC_DBX_URL FPC_DBX_PAT FPC_DBX_CLIENT_ID FPC_DBX_CLIENT_SECRET
//                            FPC_DBX_INSTANCE FPC_SOAK_SECONDS FPC_TMP
// Prints TAP-like lines and a final "RESULT <passed> <failed>".
#include <fastpgcache/client.hpp>

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using fastpgcache::Backend;
using fastpgcache::FastPgCache;
using fastpgcache::Options;
using nlohmann::json;

namespace {

std::atomic<int> g_pass{0}, g_fail{0};
std::mutex g_out;

void report(bool ok, const std::string& name, const std::string& detail = {}) {
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
        {
            auto [w, f] = killed_during([&] { return c.set("retry:k", "v2", 60); });
            bool ok = false;
            try {
                ok = f.get();
            } catch (const std::exception&) {
            }
            CHECK(w && ok && c.get("retry:k") == std::optional<std::string>("v2"), "set (idempotent in effect) is retried");
        }
        {
            auto [w, f] = killed_during([&] { return c.del("retry:k"); });
            CHECK(w, "del was blocked on the lock when its backend was terminated");
            expect_error<fastpgcache::ConnectionError>("del is not retried once sent: a ConnectionError", "", [&] { f.get(); });
            CHECK(c.exists("retry:k"), "(the killed del did not happen, and was not repeated behind the caller's back)");
        }
        {
            auto [w, f] = killed_during([&] { return c.cleanup(); });
            expect_error<fastpgcache::ConnectionError>("cleanup is not retried once sent", "", [&] { f.get(); });
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
        else {
            std::cerr << "usage: client_tests api|misc|databricks\n";
            return 2;
        }
    } catch (const std::exception& e) {
        report(false, "test driver", e.what());
    }
    std::cout << "RESULT " << g_pass << " " << g_fail << std::endl;
    curl_global_cleanup();
    return g_fail == 0 ? 0 : 1;
}
