// SHA-256 (FIPS 180-4), used to derive the fixed-size index key of a cache
// entry from a key of any length. Pure C++: no PostgreSQL headers here.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace fastpgcache {

using Sha256Digest = std::array<std::uint8_t, 32>;

// Digest of len bytes at data. Never throws, never allocates.
Sha256Digest Sha256(const void *data, std::size_t len) noexcept;

}  // namespace fastpgcache
