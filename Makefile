# FastPgCache: PostgreSQL extension (C++), built with PGXS.

EXTENSION = fastpgcache
MODULE_big = fastpgcache
OBJS = src/module.o src/guc.o src/pg_bridge.o src/key_hash.o src/stats.o \
       src/plans.o src/table_shape.o src/read_path.o src/write_path.o src/mutate.o src/keyspace.o \
       src/redis_values.o src/resp/glob.o src/sql_api.o \
       src/worker/main.o src/worker/sweep.o src/worker/control.o
# The install script of the current version and the upgrade scripts are
# assembled from extension/*.sql, so that each function is written once.
DATA = fastpgcache--1.0.sql
DATA_built = fastpgcache--1.1.sql fastpgcache--1.0--1.1.sql
PGFILEDESC = "fastpgcache - Redis-style cache inside PostgreSQL"

PG_CONFIG ?= pg_config

# PostgreSQL headers as system headers: -Wextra applies to our code only.
PG_CPPFLAGS = -I$(srcdir)/src -isystem $(shell $(PG_CONFIG) --includedir-server)
PG_CXXFLAGS = -std=c++17 -Wall -Wextra
ifdef WERROR
PG_CXXFLAGS += -Werror
endif

# SHA-256 of keys: OpenSSL, which the server links too.
SHLIB_LINK += -lcrypto

# pg_regress suites: one file per feature, in sql/ with expected/.
REGRESS = basic json_bytes errors transactions limits batch writes security plans schema_drift read_only nested \
          commands
# sql/boundary.sql needs the test-only module (test/selftest), which only the
# tests' private install tree has: scripts/test.sh runs
# `make installcheck EXTRA_REGRESS=boundary`; a packaged build (pg_buildext)
# runs the rest.
REGRESS += $(EXTRA_REGRESS)

# The C++ runtime must be linked in: link the module with the C++ compiler.
override COMPILER = $(CXX) $(CXXFLAGS)

# No LLVM bitcode for JIT inlining: PGXS would compile the C++ sources with
# clang but without PG_CXXFLAGS, and the cache functions gain nothing from it.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# After PGXS, so that its "all" stays the default goal.
fastpgcache--1.1.sql: extension/base.sql extension/commands-1.1.sql
	{ printf -- '-- FastPgCache 1.1: a Redis-style key/value cache with TTL.\n-- Assembled from extension/base.sql and extension/commands-1.1.sql by the Makefile.\n\n\\echo Use "CREATE EXTENSION fastpgcache" to load this file. \\quit\n\n'; cat $^; } > $@

fastpgcache--1.0--1.1.sql: extension/upgrade-1.0-1.1.sql extension/commands-1.1.sql
	{ printf -- '-- FastPgCache 1.0 -> 1.1: the Redis command set.\n-- Assembled from extension/upgrade-1.0-1.1.sql and extension/commands-1.1.sql by the Makefile.\n\n\\echo Use "ALTER EXTENSION fastpgcache UPDATE TO '"'"'1.1'"'"'" to load this file. \\quit\n\n'; cat $^; } > $@
