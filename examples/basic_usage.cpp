// basic_usage: the cache operations, one by one.
//   FASTPGCACHE_URL=postgresql://user:password@localhost:5432/mydb ./basic_usage
#include <fastpgcache/client.hpp>

#include <cstdlib>
#include <iostream>

int main() {
    using nlohmann::json;
    const char* url = std::getenv("FASTPGCACHE_URL");
    try {
        fastpgcache::Options opts;
        if (url) {
            opts.connection_string = url;
        } else {
            opts.host = "localhost";
            opts.database = "postgres";
            opts.user = "postgres";
            opts.password = "your_password";
        }
        fastpgcache::FastPgCache cache(opts);
        cache.setup();  // CREATE EXTENSION fastpgcache, or the pure-SQL fallback
        std::cout << "backend: " << fastpgcache::to_string(cache.backend()) << "\n";

        cache.set("user:123", json{{"name", "Alice"}, {"email", "alice@example.com"}}, 3600);
        if (auto user = cache.get_json("user:123")) std::cout << "user: " << user->dump() << "\n";

        cache.set("greeting", "hello");  // strings are stored as they are
        std::cout << "greeting: " << cache.get("greeting").value_or("(miss)") << "\n";

        if (cache.exists("user:123")) std::cout << "user is cached\n";
        std::cout << "expires in " << cache.ttl("user:123") << " s\n";    // 3600
        std::cout << "greeting ttl " << cache.ttl("greeting") << "\n";    // -1: no expiry
        std::cout << "deleted: " << std::boolalpha << cache.del("user:123") << "\n";
        std::cout << "after delete: " << (cache.get("user:123") ? "hit" : "miss") << "\n";
        std::cout << "missing ttl " << cache.ttl("user:123") << "\n";     // -2
        cache.del("greeting");
        cache.close();
    } catch (const fastpgcache::Error& e) {
        std::cerr << "error [" << e.sqlstate() << "]: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
