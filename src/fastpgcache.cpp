// Module entry point.

#include "fastpgcache/pg_bridge.hpp"

extern "C" {
PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);
}

void _PG_init(void) {}
