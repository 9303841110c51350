# The client's dependencies, found the same way when building this project
# and when a consumer calls find_package(fastpgcache) (fastpgcacheConfig.cmake
# includes this file).  Defines the imported target fastpgcache::libpq.
include(CMakeFindDependencyMacro)

if(NOT TARGET fastpgcache::libpq)
  # libpq: pkg-config first (Debian's libpq-dev ships libpq.pc; CMake's
  # FindPostgreSQL also wants the server headers), then FindPostgreSQL.
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(FASTPGCACHE_LIBPQ QUIET IMPORTED_TARGET libpq)
  endif()
  if(FASTPGCACHE_LIBPQ_FOUND)
    add_library(fastpgcache::libpq INTERFACE IMPORTED)
    set_target_properties(fastpgcache::libpq PROPERTIES INTERFACE_LINK_LIBRARIES PkgConfig::FASTPGCACHE_LIBPQ)
  else()
    find_dependency(PostgreSQL)
    add_library(fastpgcache::libpq INTERFACE IMPORTED)
    set_target_properties(fastpgcache::libpq PROPERTIES INTERFACE_LINK_LIBRARIES PostgreSQL::PostgreSQL)
  endif()
endif()

find_dependency(nlohmann_json 3)
find_dependency(Threads)
if(FASTPGCACHE_WITH_DATABRICKS)
  find_dependency(CURL)
endif()
