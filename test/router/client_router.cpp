// The C++ client, unchanged, against a router database (fastpgcache_router):
// a pool of connections to the router; set/get/mget/mset/del/exists/ttl
// through the pool, INCR through a leased session. Keys are spread over the
// partitions. Usage: client_router "host=... port=... dbname=router user=..."
// Prints TAP-like lines and "N passed, M failed"; exits 1 on a failure.
#include <fastpgcache/client.hpp>

#include <iostream>
#include <string>
#include <vector>

namespace {

int passed = 0;
int failed = 0;

void check(bool ok, const std::string &what) {
  std::cout << (ok ? "ok - " : "not ok - ") << what << "\n";
  (ok ? passed : failed)++;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::cerr << "usage: client_router CONNINFO\n";
    return 2;
  }
  try {
    fastpgcache::Options options;
    options.connection_string = argv[1];
    options.minconn = 2;
    options.maxconn = 4;
    fastpgcache::FastPgCache cache(options);  // no setup(): the router is set up by its administrator

    std::vector<std::string> keys;
    for (int i = 0; i < 40; ++i) keys.push_back("client:" + std::to_string(i));
    bool all_set = true;
    for (const auto &k : keys) all_set = cache.set(k, "value of " + k, std::chrono::seconds(300)) && all_set;
    check(all_set, "40 sets through the pool");
    check(cache.get("client:7").value_or("") == "value of client:7", "get");
    check(!cache.get("client:missing").has_value(), "get of a missing key");
    check(cache.ttl("client:3") > 290 && cache.ttl("client:3") <= 300, "ttl");

    auto values = cache.mget({"client:39", "client:missing", "client:0", "client:21", "client:39"});
    check(values.size() == 5 && values[0].value_or("") == "value of client:39" && !values[1].has_value() &&
              values[2].value_or("") == "value of client:0" && values[3].value_or("") == "value of client:21" &&
              values[4].value_or("") == "value of client:39",
          "mget across partitions, in order");

    std::vector<std::pair<std::string, std::string>> items;
    for (int i = 0; i < 30; ++i) items.emplace_back("batch:" + std::to_string(i), std::to_string(i * i));
    check(cache.mset(items) == 30, "mset of 30 pairs");
    check(cache.get("batch:12").value_or("") == "144", "a key written by mset");

    nlohmann::json doc = {{"name", "Alice"}, {"tags", {"a", "b"}}};
    cache.set("client:json", doc);
    check(cache.get_json("client:json").value_or(nlohmann::json()) == doc, "JSON round trip");
    std::string bytes("\x00\xff\x01", 3);
    cache.set_bytes("client:bytes", bytes);
    check(cache.get_bytes("client:bytes").value_or("") == bytes, "bytes round trip");

    {
      auto session = cache.session();
      const char *params[2] = {"client:counter", "5"};
      long long last = 0;
      for (int i = 0; i < 3; ++i) {
        PGresult *r = PQexecParams(session.native(), "SELECT cache_incr($1, $2::bigint)", 2, nullptr, params,
                                   nullptr, nullptr, 0);
        if (PQresultStatus(r) == PGRES_TUPLES_OK) last = std::stoll(PQgetvalue(r, 0, 0));
        PQclear(r);
      }
      check(last == 15, "cache_incr through a leased session (3 x 5)");
    }

    check(cache.del("client:7"), "del of a live key");
    check(!cache.del("client:7"), "del of a deleted key");
    check(!cache.exists("client:7") && cache.exists("client:8"), "exists");
    try {
      cache.set("", "v", std::chrono::seconds(0));
      check(false, "a ttl of 0 is refused");
    } catch (const fastpgcache::Error &e) {
      check(e.sqlstate() == "22023", "a ttl of 0 is refused with the shard's SQLSTATE (22023)");
    }
  } catch (const std::exception &e) {
    check(false, std::string("unexpected exception: ") + e.what());
  }
  std::cout << passed << " passed, " << failed << " failed\n";
  return failed == 0 ? 0 : 1;
}
