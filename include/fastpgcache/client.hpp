// fastpgcache/client.hpp - C++17 client for FastPgCache (Redis-style cache in PostgreSQL)
//
// Single header.  Link with -lpq, and -lcurl for DatabricksTokenProvider.
// Needs nlohmann/json (Debian: nlohmann-json3-dev).
//
//   fastpgcache::FastPgCache cache("postgresql://user:pw@localhost/db");
//   cache.setup();                       // CREATE EXTENSION, or the pure-SQL fallback
//   cache.set("user:1", nlohmann::json{{"name", "Alice"}}, std::chrono::hours(1));
//   auto user = cache.get_json("user:1"); // std::optional<nlohmann::json>
//
// Design notes
//  * Every value reaches the server as a bound parameter of a statement that is
//    prepared once per connection; no SQL text is ever built from user input.
//  * RAII everywhere: PGconn/PGresult/CURL are owned by std::unique_ptr with
//    PQfinish/PQclear/curl_easy_cleanup deleters; the FastPgCache destructor
//    closes the pool (the Python library's context manager).
//  * Passwords and tokens never appear in exception messages or log lines.
//  * The pool asks the TokenProvider for a password every time it opens a
//    connection; when the server refuses it (28P01/28000 or libpq's
//    "authentication failed"), the provider is told, a fresh token is fetched
//    and the connection attempt is retried once.  Connections in use are never
//    closed because a credential rotated: PostgreSQL checks the password only
//    when a session starts.
//
// The pure-SQL fallback used by setup() when the extension cannot be created
// is fallback/fastpgcache_fallback.sql.  If <fastpgcache/fallback_sql.hpp> is
// on the include path (generate it with fallback/embed.sh) it is compiled in;
// otherwise setup() reads the file named by Options::fallback_sql_path or the
#pragma once

#include <fastpgcache/client/errors.hpp>
#include <fastpgcache/client/token_provider.hpp>
#include <fastpgcache/client/options.hpp>

#if !defined(FASTPGCACHE_NO_CURL)
#include <fastpgcache/client/databricks.hpp>
#endif

#include <fastpgcache/client/connection.hpp>
#include <fastpgcache/client/operations.hpp>
#include <fastpgcache/client/pool.hpp>
#include <fastpgcache/client/session.hpp>
#include <fastpgcache/client/cache.hpp>
