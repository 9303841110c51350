// fastpgcache/client.hpp - C++17 client for FastPgCache (Redis-style cache in PostgreSQL)
//
// Header only.  Needs libpq and nlohmann/json (Debian: libpq-dev,
// nlohmann-json3-dev); DatabricksTokenProvider also needs libcurl
// (libcurl4-openssl-dev) and is left out when <curl/curl.h> is missing or
// FASTPGCACHE_NO_CURL is defined.  With CMake:
//   find_package(fastpgcache REQUIRED)  target_link_libraries(app fastpgcache::client)
// or pkg-config: g++ app.cpp $(pkg-config --cflags --libs fastpgcache)
//
//   fastpgcache::FastPgCache cache("postgresql://user:pw@localhost/db");
//   cache.setup();                       // CREATE EXTENSION, or the pure-SQL fallback
//   cache.set("user:1", nlohmann::json{{"name", "Alice"}}, std::chrono::hours(1));
//   auto user = cache.get_json("user:1"); // std::optional<nlohmann::json>
//   cache.with_timeout(std::chrono::milliseconds(50)).get("user:1");
//   long long hits = cache.incr("hits:alice", std::chrono::minutes(1));  // a rate limiter
//   for (const std::string& key : cache.scan_keys("user:*")) { ... }
//
// The method names and shapes follow redis-plus-plus (sw::redis::Redis); each
// calls one SQL function (cache_set, cache_incr, cache_scan, ...).  The
// commands beyond set/get/del/exists/ttl/mget/mset need fastpgcache 1.1 (the
// extension or the SQL fallback); against 1.0 they raise an Error with
// SQLSTATE 42883 that says how to upgrade (ALTER EXTENSION fastpgcache
// UPDATE, or setup() / the fallback script for the fallback).
//
// The parts, each usable on its own (nlohmann/json's layout):
//   client/errors.hpp          Error and its subclasses
//   client/options.hpp         Options, Ttl, Deadline, OperationMetrics, PoolStats
//   client/token_provider.hpp  TokenProvider, StaticTokenProvider, FunctionTokenProvider
//   client/databricks.hpp      DatabricksTokenProvider (libcurl)
//   client/connection.hpp      one connection: deadlines, TLS rules, statements (detail)
//   client/pool.hpp            the pool (detail)
//   client/operations.hpp      Commands: the Redis commands (set/get/del/exists/ttl/mget/mset/
//                              ping; with fastpgcache 1.1 also SET NX/XX/KEEPTTL, getset,
//                              incr/incrby/decr/decrby/incrbyfloat, append/strlen,
//                              expire/pexpire/expireat/persist/pttl, getdel/getex, type,
//                              keys/scan/scan_keys, flushdb/dbsize, msetnx)
//   client/session.hpp         Session: one connection, transactions
//   client/cache.hpp           FastPgCache
//
// Design notes
//  * Every value reaches the server as a bound parameter of a statement that is
//    prepared once per connection; no SQL text is ever built from user input.
//  * RAII everywhere: PGconn/PGresult/CURL are owned by std::unique_ptr with
//    PQfinish/PQclear/curl_easy_cleanup deleters; the FastPgCache destructor
//    closes the pool (the Python library's context manager).
//  * Passwords and tokens never appear in exception messages or log lines, and
//    a token provider's tokens travel only over TLS.
//  * No call waits longer than its deadline (Options::operation_timeout or a
//    per-call one): socket waits with poll(), PQcancel on expiry.
//
// The pure-SQL fallback used by setup() when the extension cannot be created
// is fallback/fastpgcache_fallback.sql.  If <fastpgcache/fallback_sql.hpp> is
// on the include path (generate it with fallback/embed.sh; the CMake install
// ships it) it is compiled in; otherwise setup() reads the file named by
// Options::fallback_sql_path or the FASTPGCACHE_FALLBACK_SQL environment
// variable.
#pragma once

#include <fastpgcache/client/errors.hpp>
#include <fastpgcache/client/options.hpp>
#include <fastpgcache/client/token_provider.hpp>

#if !defined(FASTPGCACHE_NO_CURL) && defined(__has_include)
#if __has_include(<curl/curl.h>)
#include <fastpgcache/client/databricks.hpp>
#endif
#endif

#include <fastpgcache/client/connection.hpp>
#include <fastpgcache/client/operations.hpp>
#include <fastpgcache/client/pool.hpp>
#include <fastpgcache/client/session.hpp>
#include <fastpgcache/client/cache.hpp>
