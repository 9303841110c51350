// advanced_usage: pool sizing, TTLs as durations, JSON null vs miss, bytes,
// batches, transactions, errors with SQLSTATE, threads, cleanup.
//   FASTPGCACHE_URL=postgresql://user:password@localhost:5432/mydb ./advanced_usage
#include <fastpgcache/client.hpp>

#include <cstdlib>
#include <iostream>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using nlohmann::json;

int main() {
    const char* env = std::getenv("FASTPGCACHE_URL");
    fastpgcache::Options opts;
    opts.connection_string = env ? env : "postgresql://user:password@localhost/mydb";
    opts.minconn = 2;                 // kept open
    opts.maxconn = 8;                 // opened on demand
    opts.pool_timeout = 5s;           // wait this long for a free connection
    opts.statement_timeout = 2s;      // per statement, server side
    opts.auto_setup = true;
    try {
        fastpgcache::FastPgCache cache(opts);

        cache.set("session:abc123", json{{"user_id", 123}, {"ip", "192.168.1.1"}}, 30min);
        cache.set("api:weather:NYC", json{{"temp", 72}, {"conditions", "sunny"}}, 5min);
        cache.set("config:app", json{{"theme", "dark"}, {"language", "en"}});  // no expiry
        std::cout << "session ttl: " << cache.ttl("session:abc123") << " s\n";
        std::cout << "config ttl: " << cache.ttl("config:app") << "\n";

        // A stored JSON null is a value, not a miss.
        cache.set("maybe", json(nullptr), 60);
        auto v = cache.get_json("maybe");
        std::cout << "stored null: " << (v ? (v->is_null() ? "json null" : v->dump()) : "miss") << "\n";

        // Raw bytes.
        cache.set_bytes("blob", std::string("\x00\x01\xff", 3), 60);
        std::cout << "blob size: " << cache.get_bytes("blob")->size() << "\n";

        // Batches: one round trip.
        cache.mset({{"a", "1"}, {"b", "2"}, {"c", "3"}}, 60s);
        for (const auto& x : cache.mget({"a", "b", "nope", "c"})) std::cout << x.value_or("(miss)") << " ";
        std::cout << "\n";

        // A transaction: cache writes commit or roll back with your own SQL.
        cache.transaction([](fastpgcache::Session& s) {
            s.set("order:1", json{{"status", "paid"}});
            s.set("order:1:lock", "1", 10);
        });

        // Errors carry the SQLSTATE.
        try {
            cache.set("bad", "ttl", 0);
        } catch (const fastpgcache::Error& e) {
            std::cout << "rejected: SQLSTATE " << e.sqlstate() << "\n";  // 22023
        }

        // Many threads share one FastPgCache.
        std::vector<std::thread> workers;
        for (int t = 0; t < 4; ++t)
            workers.emplace_back([&cache, t] {
                for (int i = 0; i < 25; ++i) cache.set("hits:" + std::to_string(t), std::to_string(i), 60);
            });
        for (auto& w : workers) w.join();
        auto st = cache.pool_stats();
        std::cout << "pool: " << st.open << " open, " << st.idle << " idle\n";

        std::cout << "expired entries removed: " << cache.cleanup() << "\n";
        for (const char* k : {"session:abc123", "api:weather:NYC", "config:app", "maybe", "blob", "a", "b", "c",
                              "order:1", "order:1:lock"})
            cache.del(k);
    } catch (const fastpgcache::Error& e) {
        std::cerr << "error [" << e.sqlstate() << "]: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
