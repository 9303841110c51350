// databricks_token_example: Databricks Lakebase PostgreSQL with a database
// credential that rotates (about hourly in production).
//
// The workspace login follows the Databricks SDKs: DATABRICKS_HOST plus
// DATABRICKS_TOKEN (PAT) or DATABRICKS_CLIENT_ID/DATABRICKS_CLIENT_SECRET
// (OAuth M2M), a ~/.databrickscfg profile (DATABRICKS_CONFIG_PROFILE), or the
// Databricks CLI after `databricks auth login`.  The database is a Lakebase
// Autoscaling endpoint (FASTPGCACHE_ENDPOINT=projects/P/branches/B/endpoints/E)
// or a Provisioned instance (FASTPGCACHE_INSTANCE).  The test suite points
// DATABRICKS_HOST at a local fake workspace (http://127.0.0.1:PORT).
#include <fastpgcache/client.hpp>

#include <cstdlib>
#include <iostream>

static std::string env_or(const char* name, const char* def) {
    const char* v = std::getenv(name);
    return v ? v : def;
}

int main() {
    using namespace std::chrono_literals;
    try {
        fastpgcache::DatabricksConfig dbx;
        const std::string endpoint = env_or("FASTPGCACHE_ENDPOINT", "");
        if (!endpoint.empty()) dbx.endpoint = endpoint;  // Autoscaling (new instances)
        else dbx.instance_names = {env_or("FASTPGCACHE_INSTANCE", "my_instance")};  // Provisioned
        dbx.refresh_interval = 3600s;  // refresh at least hourly...
        dbx.refresh_margin = 300s;     // ...and 5 minutes before expiration_time
        dbx.auto_refresh = true;       // in a background thread
        auto provider = std::make_shared<fastpgcache::DatabricksTokenProvider>(dbx);

        fastpgcache::Options opts;
        opts.host = env_or("FASTPGCACHE_PGHOST", "ep-example.database.cloud.databricks.com");  // with a token provider: sslmode=verify-full (system CAs)
        opts.port = std::atoi(env_or("FASTPGCACHE_PGPORT", "5432").c_str());
        opts.database = env_or("FASTPGCACHE_PGDATABASE", "databricks_postgres");
        opts.user = env_or("FASTPGCACHE_PGUSER", "user@databricks.com");
        opts.token_provider = provider;  // asked for the password on every new connection
        opts.operation_timeout = 5s;     // no call waits longer, whatever the network does
        opts.auto_setup = true;          // the extension is not available there: installs the SQL fallback

        fastpgcache::FastPgCache cache(opts);
        cache.set("key", "value", 600);
        std::cout << "backend: " << fastpgcache::to_string(cache.backend()) << "\n";
        std::cout << "key: " << cache.get("key").value_or("(miss)") << "\n";
        // ... hours later, after any number of rotations: still works.
        cache.del("key");
    } catch (const fastpgcache::ConfigError& e) {
        std::cerr << "configuration: " << e.what() << "\n";
        return 1;
    } catch (const fastpgcache::ConnectionError& e) {
        std::cerr << "cannot connect: " << e.what() << "\n";  // never contains the token
        return 1;
    } catch (const fastpgcache::Error& e) {
        std::cerr << "error [" << e.sqlstate() << "]: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
