# FastPgCache: PostgreSQL extension (C++), built with PGXS.

EXTENSION = fastpgcache
MODULE_big = fastpgcache
OBJS = src/module.o src/guc.o src/pg_bridge.o src/key_hash.o src/stats.o \
       src/plans.o src/table_shape.o src/read_path.o src/write_path.o src/sql_api.o \
       src/worker/main.o src/worker/sweep.o src/worker/control.o
DATA = fastpgcache--1.0.sql
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
REGRESS = basic json_bytes errors transactions limits batch writes security boundary plans schema_drift read_only nested

# The C++ runtime must be linked in: link the module with the C++ compiler.
override COMPILER = $(CXX) $(CXXFLAGS)

# No LLVM bitcode for JIT inlining: PGXS would compile the C++ sources with
# clang but without PG_CXXFLAGS, and the cache functions gain nothing from it.
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
