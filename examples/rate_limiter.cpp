// rate_limiter: a fixed-window rate limiter, one atomic call per request.
//   FASTPGCACHE_URL=postgresql://user:password@localhost:5432/mydb ./rate_limiter
//
// incr(key, ttl) adds 1 to the counter and, when this call creates it, gives
// it the ttl: the first request of a window starts the window, and the key
// expires with it.  Concurrent requests (threads, processes, servers) count
// exactly: the increment is one statement on the server.  Needs fastpgcache
// 1.1 (the extension or the SQL fallback; setup() upgrades a 1.0 fallback).
#include <fastpgcache/client.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>

namespace {

// At most `limit` requests per `window` for `who`.
bool allow(fastpgcache::FastPgCache& cache, const std::string& who, long long limit, std::chrono::seconds window) {
    const long long n = cache.incr("example:ratelimit:" + who, window);
    return n <= limit;
}

}  // namespace

int main() {
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
        cache.setup();
        cache.del({"example:ratelimit:alice", "example:ratelimit:bob"});  // a fresh window for the demonstration

        const long long limit = 5;
        const auto window = std::chrono::seconds(60);
        int allowed = 0;
        for (int request = 1; request <= 8; ++request) {
            const bool ok = allow(cache, "alice", limit, window);
            allowed += ok;
            std::cout << "alice request " << request << ": " << (ok ? "allowed" : "rate limited") << "\n";
        }
        std::cout << "bob request 1: " << (allow(cache, "bob", limit, window) ? "allowed" : "rate limited") << "\n";
        // The window ends when the key expires: ttl() says when.
        std::cout << "alice's window ends in " << cache.ttl("example:ratelimit:alice") << " s\n";
        cache.del({"example:ratelimit:alice", "example:ratelimit:bob"});
        if (allowed != limit) {
            std::cerr << "expected " << limit << " requests allowed, got " << allowed << "\n";
            return 1;
        }
    } catch (const fastpgcache::Error& e) {
        std::cerr << "error [" << e.sqlstate() << "]: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
