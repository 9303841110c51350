// SHA-256 of cache keys through OpenSSL's EVP interface.
//
// The digest context and the fetched SHA-256 implementation are made once
// per backend and reused: fetching an implementation by name on every call
// (what the one-shot SHA256() does in OpenSSL 3) costs more than hashing a
// short key. Both are plain pointers, created lazily: loading the library
// runs no constructor. They live until the process exits.

#include "key_hash.hpp"

#include <openssl/evp.h>

#include <cstring>

namespace fastpgcache {
namespace {

EVP_MD *g_sha256 = nullptr;
EVP_MD_CTX *g_ctx = nullptr;

}  // namespace

bool KeyHashBytes(const void *data, std::size_t len, std::uint8_t out[kKeyHashLen]) noexcept {
  if (g_ctx == nullptr) {
    EVP_MD *md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (md == nullptr || ctx == nullptr) {
      EVP_MD_free(md);
      EVP_MD_CTX_free(ctx);
      return false;
    }
    g_sha256 = md;
    g_ctx = ctx;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  if (EVP_DigestInit_ex(g_ctx, g_sha256, nullptr) != 1 || EVP_DigestUpdate(g_ctx, data, len) != 1 ||
      EVP_DigestFinal_ex(g_ctx, digest, &digest_len) != 1 || digest_len < kKeyHashLen)
    return false;
  std::memcpy(out, digest, kKeyHashLen);
  return true;
}

}  // namespace fastpgcache
