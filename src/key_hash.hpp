// The index key of a cache entry: the first 16 bytes of the SHA-256 of the
// key's bytes, so that keys of any length fit the btree (key_hash uuid).
// Pure C++: no PostgreSQL headers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fastpgcache {

constexpr std::size_t kKeyHashLen = 16;

// Writes the first 16 bytes of SHA-256(data[0..len)) to out. Uses OpenSSL's
// SHA-256 (the library the server itself links; it uses the CPU's SHA
// instructions where there are some). False only if OpenSSL fails (out of
// memory); never throws.
bool KeyHashBytes(const void *data, std::size_t len, std::uint8_t out[kKeyHashLen]) noexcept;

}  // namespace fastpgcache
