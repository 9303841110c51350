// context_manager: RAII scope (the Python library's `with FastPgCache(...)`).
// The pool is closed when the object goes out of scope, also on exceptions.
//   FASTPGCACHE_URL=postgresql://user:password@localhost:5432/mydb ./context_manager
#include <fastpgcache/client.hpp>

#include <cstdlib>
#include <iostream>

int main() {
    const char* env = std::getenv("FASTPGCACHE_URL");
    std::string url = env ? env : "postgresql://user:pass@localhost/mydb";
    try {
        {
            fastpgcache::FastPgCache cache(url);
            cache.setup();
            cache.set("session:abc", nlohmann::json{{"user_id", 123}}, std::chrono::minutes(30));
            auto session = cache.get_json("session:abc");
            std::cout << (session ? session->dump() : "(miss)") << "\n";
            cache.del("session:abc");
        }  // connections closed here
        std::cout << "connections closed\n";
    } catch (const fastpgcache::Error& e) {
        std::cerr << "error [" << e.sqlstate() << "]: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
