// key_scan: walking the keys that match a pattern without reading them all
// at once (SCAN), and the other keyspace commands.
//   FASTPGCACHE_URL=postgresql://user:password@localhost:5432/mydb ./key_scan
//
// Patterns are Redis globs: * ? [abc] [^a] [a-z] and \ to escape.  A SCAN
// iteration returns every key that exists during the whole iteration at
// least once (a key may come twice: collect into a set if that matters),
// while other clients keep writing.  Needs fastpgcache 1.1.
#include <fastpgcache/client.hpp>

#include <cstdlib>
#include <iostream>
#include <iterator>
#include <string>
#include <unordered_set>
#include <vector>

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

        std::vector<std::pair<std::string, std::string>> products;
        for (int i = 1; i <= 25; ++i) products.emplace_back("example:product:" + std::to_string(i), "{\"id\": " + std::to_string(i) + "}");
        cache.mset(products, 3600);
        cache.set("example:session:42", "abc");

        // 1. A range-for over the matching keys, fetched 10 entries at a time.
        std::size_t seen = 0;
        for (const std::string& key : cache.scan_keys("example:product:*", 10)) {
            if (seen++ < 3) std::cout << "found " << key << "\n";
        }
        std::cout << "scan_keys saw " << seen << " keys\n";

        // 2. The cursor loop, as with redis-plus-plus: collect into a set.
        std::unordered_set<std::string> keys;
        long long cursor = 0;
        do {
            cursor = cache.scan(cursor, "example:product:*", 10, std::inserter(keys, keys.end()));
        } while (cursor != 0);
        std::cout << "the cursor loop found " << keys.size() << " distinct keys\n";

        // 3. keys(pattern) for small key sets; type(); dbsize().
        std::cout << "example:product:1? matches " << cache.keys("example:product:1?").size() << " keys\n";  // example:product:10 .. 19
        std::cout << "example:session:42 is " << cache.type("example:session:42").value_or("absent") << "\n";
        std::cout << cache.dbsize() << " live keys in the cache\n";

        // Delete what the scan found (DEL over an iterator range).
        const long long deleted = cache.del(keys.begin(), keys.end());
        std::cout << "deleted " << deleted << " product keys\n";
        cache.del("example:session:42");
        if (keys.size() < 25 || deleted < 25) {
            std::cerr << "expected the 25 product keys\n";
            return 1;
        }
    } catch (const fastpgcache::Error& e) {
        std::cerr << "error [" << e.sqlstate() << "]: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
