// connection_string: one line to connect, auto_setup, use.
//   FASTPGCACHE_URL=postgresql://user:password@localhost:5432/mydb ./connection_string
#include <fastpgcache/client.hpp>

#include <cstdlib>
#include <iostream>

int main() {
    const char* env = std::getenv("FASTPGCACHE_URL");
    std::string url = env ? env : "postgresql://user:password@localhost:5432/mydb";
    try {
        fastpgcache::Options opts;
        opts.auto_setup = true;  // runs setup() in the constructor
        fastpgcache::FastPgCache cache(url, opts);

        cache.set("key", "value", 300);
        std::cout << cache.get("key").value_or("(miss)") << "\n";

        // key=value connection strings work too:
        //   fastpgcache::FastPgCache c("host=localhost dbname=mydb user=me password=secret");
        cache.del("key");
    } catch (const fastpgcache::ConnectionError& e) {
        std::cerr << "cannot connect: " << e.what() << "\n";
        return 1;
    } catch (const fastpgcache::Error& e) {
        std::cerr << "error [" << e.sqlstate() << "]: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
