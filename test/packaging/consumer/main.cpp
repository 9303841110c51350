// Uses the installed C++ client: setup() (the fallback compiled in from the
// installed <fastpgcache/fallback_sql.hpp>), set, get, mget, del.
//   consumer "host=... port=... dbname=... user=..."
#include <fastpgcache/client.hpp>

#include <iostream>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: consumer CONNINFO\n";
        return 2;
    }
    try {
        fastpgcache::Options o;
        o.use_extension = false;  // the fallback compiled into the installed headers
        fastpgcache::FastPgCache cache(argv[1], o);
        cache.setup();
        cache.set("consumer:k", nlohmann::json{{"from", "installed client"}}, 60);
        auto v = cache.get_json("consumer:k");
        auto m = cache.mget({"consumer:k", "consumer:missing"});
        const bool ok = v && (*v)["from"] == "installed client" && m.size() == 2 && m[0] && !m[1] &&
                        cache.del({"consumer:k"}) == 1 && cache.ping() == "PONG";
#ifdef FASTPGCACHE_NO_CURL
        const char* dbx = "without Databricks";
#else
        const char* dbx = "with Databricks";
#endif
        std::cout << (ok ? "consumer ok " : "consumer FAILED ") << fastpgcache::to_string(cache.backend()) << " " << dbx << "\n";
        return ok ? 0 : 1;
    } catch (const fastpgcache::Error& e) {
        std::cerr << "error [" << e.sqlstate() << "]: " << e.what() << "\n";
        return 1;
    }
}
