// Seeded request-trace generator for the eviction study (bench/eviction).
//
//   traces OUT_DIR [--keys N] [--requests N] [--seed S]
//
// Writes, for each trace NAME in zipf0.8, zipf1.0, zipf1.2, scan:
//   OUT_DIR/NAME.trace  the requests: little-endian uint32 key ids, one per
//                       request, nothing else (file size = 4 x requests)
//   OUT_DIR/NAME.meta   one "name value" pair per line: trace, keys (hot key
//                       space), universe (largest id + 1), requests, seed,
//                       alpha, and for the scan trace scan_start, scan_end
//                       (request indexes of the scan phase, end exclusive)
//
// Key ids name keys; a replay turns id i into its own key text (the Redis
// and PostgreSQL replays use "k:%08u"). Zipf ranks are mapped to ids through
// a seeded random permutation, so hot keys are spread over the id space and
// over any hash of the id.
//
// zipfA: request i draws rank r in 1..keys with P(r) proportional to 1/r^A.
// scan:  the hot working set is Zipf 1.0 over the same keys. Requests
//        [0.4 R, 0.6 R) alternate one hot request and one request for the
//        next cold key, ids keys .. keys + 0.1 R - 1, each requested exactly
//        once (a one-time scan by a batch job while the application keeps
//        running); the rest is hot traffic only.
//
// Deterministic: the same arguments give the same bytes on any machine
// (splitmix64/xoshiro256** and integer-only scaling; the Zipf CDF uses
// double arithmetic in a fixed order).
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

uint64_t SplitMix(uint64_t &s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

struct Rng {
  uint64_t s[4];
  explicit Rng(uint64_t seed) {
    for (auto &x : s) x = SplitMix(seed);
  }
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t Next() {
    uint64_t r = Rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = Rotl(s[3], 45);
    return r;
  }
  // Uniform in [0, n).
  uint64_t Below(uint64_t n) { return static_cast<uint64_t>((static_cast<__uint128_t>(Next()) * n) >> 64); }
  // Uniform in [0, 1) with 53 bits.
  double Unit() { return static_cast<double>(Next() >> 11) * (1.0 / 9007199254740992.0); }
};

struct Zipf {
  std::vector<double> cdf;
  std::vector<uint32_t> id_of_rank;
  Zipf(uint32_t keys, double alpha, Rng &perm_rng) : cdf(keys), id_of_rank(keys) {
    double sum = 0;
    for (uint32_t r = 0; r < keys; r++) {
      sum += 1.0 / std::pow(static_cast<double>(r + 1), alpha);
      cdf[r] = sum;
    }
    for (auto &c : cdf) c /= sum;
    cdf[keys - 1] = 1.0;
    for (uint32_t i = 0; i < keys; i++) id_of_rank[i] = i;
    for (uint32_t i = keys - 1; i > 0; i--) std::swap(id_of_rank[i], id_of_rank[perm_rng.Below(i + 1)]);
  }
  uint32_t Draw(Rng &rng) const {
    double u = rng.Unit();
    size_t r = static_cast<size_t>(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
    if (r >= cdf.size()) r = cdf.size() - 1;
    return id_of_rank[r];
  }
};

bool WriteAll(const std::string &path, const std::vector<uint32_t> &v) {
  FILE *f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  // Little-endian on disk; this program only builds on little-endian hosts.
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian host expected");
  bool ok = std::fwrite(v.data(), sizeof(uint32_t), v.size(), f) == v.size();
  return std::fclose(f) == 0 && ok;
}

bool WriteMeta(const std::string &path, const std::string &text) {
  FILE *f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  bool ok = std::fputs(text.c_str(), f) >= 0;
  return std::fclose(f) == 0 && ok;
}

uint64_t ParseU64(const char *s, const char *what) {
  char *end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0') {
    std::fprintf(stderr, "traces: bad %s: %s\n", what, s);
    std::exit(2);
  }
  return v;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: traces OUT_DIR [--keys N] [--requests N] [--seed S]\n");
    return 2;
  }
  std::string out = argv[1];
  uint64_t keys = 1000000, requests = 10000000, seed = 42;
  for (int i = 2; i < argc; i++) {
    if (i + 1 >= argc) {
      std::fprintf(stderr, "traces: %s needs a value\n", argv[i]);
      return 2;
    }
    if (std::strcmp(argv[i], "--keys") == 0) keys = ParseU64(argv[++i], "--keys");
    else if (std::strcmp(argv[i], "--requests") == 0) requests = ParseU64(argv[++i], "--requests");
    else if (std::strcmp(argv[i], "--seed") == 0) seed = ParseU64(argv[++i], "--seed");
    else {
      std::fprintf(stderr, "traces: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (keys < 2 || keys > 100000000 || requests < 10 || requests > 1000000000) {
    std::fprintf(stderr, "traces: keys must be in 2..1e8 and requests in 10..1e9\n");
    return 2;
  }

  const double alphas[] = {0.8, 1.0, 1.2};
  for (double a : alphas) {
    char name[32];
    std::snprintf(name, sizeof name, "zipf%.1f", a);
    Rng perm(seed * 1000 + static_cast<uint64_t>(a * 10));
    Zipf z(static_cast<uint32_t>(keys), a, perm);
    Rng rng(seed * 1000 + 500 + static_cast<uint64_t>(a * 10));
    std::vector<uint32_t> v(requests);
    for (auto &x : v) x = z.Draw(rng);
    char meta[512];
    std::snprintf(meta, sizeof meta,
                  "trace %s\nkeys %llu\nuniverse %llu\nrequests %llu\nseed %llu\nalpha %.1f\n", name,
                  static_cast<unsigned long long>(keys), static_cast<unsigned long long>(keys),
                  static_cast<unsigned long long>(requests), static_cast<unsigned long long>(seed), a);
    if (!WriteAll(out + "/" + name + ".trace", v) || !WriteMeta(out + "/" + name + ".meta", meta)) {
      std::fprintf(stderr, "traces: cannot write %s/%s.*\n", out.c_str(), name);
      return 1;
    }
    std::printf("%s: %llu requests over %llu keys\n", name, static_cast<unsigned long long>(requests),
                static_cast<unsigned long long>(keys));
  }

  {
    Rng perm(seed * 1000 + 900);
    Zipf z(static_cast<uint32_t>(keys), 1.0, perm);
    Rng rng(seed * 1000 + 901);
    uint64_t s0 = requests * 4 / 10, s1 = requests * 6 / 10;
    std::vector<uint32_t> v(requests);
    uint64_t next_cold = keys;
    for (uint64_t i = 0; i < requests; i++) {
      bool cold = i >= s0 && i < s1 && ((i - s0) & 1) == 1;
      v[i] = cold ? static_cast<uint32_t>(next_cold++) : z.Draw(rng);
    }
    char meta[512];
    std::snprintf(meta, sizeof meta,
                  "trace scan\nkeys %llu\nuniverse %llu\nrequests %llu\nseed %llu\nalpha 1.0\n"
                  "scan_start %llu\nscan_end %llu\ncold_keys %llu\n",
                  static_cast<unsigned long long>(keys), static_cast<unsigned long long>(next_cold),
                  static_cast<unsigned long long>(requests), static_cast<unsigned long long>(seed),
                  static_cast<unsigned long long>(s0), static_cast<unsigned long long>(s1),
                  static_cast<unsigned long long>(next_cold - keys));
    if (!WriteAll(out + "/scan.trace", v) || !WriteMeta(out + "/scan.meta", meta)) {
      std::fprintf(stderr, "traces: cannot write %s/scan.*\n", out.c_str());
      return 1;
    }
    std::printf("scan: %llu requests, %llu cold keys scanned once in [%llu, %llu)\n",
                static_cast<unsigned long long>(requests), static_cast<unsigned long long>(next_cold - keys),
                static_cast<unsigned long long>(s0), static_cast<unsigned long long>(s1));
  }
  return 0;
}
