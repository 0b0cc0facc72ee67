// bench-kernels: single-threaded throughput of SHA-256 kernels on
// equal-length messages (default 64 KiB, the default block size), to
// choose the kernel behind DigestAlgorithm::hash_pair (issue 15).
//
//   build/bench/bench-kernels [--length N] [--reps N] [--distinct N]
//                             [--misalign N] [--only a,b,...]
//
// Every variant hashes the same list of 48 messages (divisible by every
// lane count), drawn from --distinct buffers (default 16: 1 MiB at 64 KiB,
// about one core's L2), enough passes for ~64 MiB per sample.  Variants
// run interleaved: rep 1 of every variant, then rep 2, ...; the table is
// the median per variant and its ratio to the existing 2-lane kernel.
// Each variant's digests are checked against OpenSSL first.

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "sha256_nway.h"
#include "shani_nway.inc"

void bench_sha256_avx2_x8(const uint8_t* const*, size_t, uint8_t* const*);
void bench_sha256_avx512vl_x8(const uint8_t* const*, size_t, uint8_t* const*);
void bench_sha256_avx512_x16(const uint8_t* const*, size_t, uint8_t* const*);

namespace {

using Kernel = std::function<void(const uint8_t* const*, size_t, uint8_t* const*)>;

struct Variant {
  std::string name;
  int lanes;
  bool supported;
  Kernel kernel;
};

constexpr size_t kList = 48;

}  // namespace

int main(int argc, char** argv) {
  size_t length = 65536, reps = 15, distinct = 16, misalign = 0;
  std::string only;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) { std::fprintf(stderr, "%s needs a value\n", a.c_str()); std::exit(2); }
      return argv[++i];
    };
    if (a == "--length") length = std::stoul(value());
    else if (a == "--reps") reps = std::stoul(value());
    else if (a == "--distinct") distinct = std::stoul(value());
    else if (a == "--misalign") misalign = std::stoul(value());
    else if (a == "--only") only = "," + value() + ",";
    else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
  }

  EVP_MD* md = EVP_MD_fetch(nullptr, "SHA2-256", nullptr);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  auto openssl_one = [&](const uint8_t* m, size_t n, uint8_t* out) {
    EVP_DigestInit_ex2(ctx, md, nullptr);
    EVP_DigestUpdate(ctx, m, n);
    EVP_DigestFinal_ex(ctx, out, nullptr);
  };

  __builtin_cpu_init();
  const bool sha = blkhash::sha256_nway_supported();
  auto nway = [](size_t n) -> Kernel {
    return [n](const uint8_t* const* m, size_t len, uint8_t* const* o) {
      blkhash::sha256_nway(m, n, len, o);
    };
  };
  const bool avx2 = __builtin_cpu_supports("avx2");
  const bool avx512 = __builtin_cpu_supports("avx512f") &&
                      __builtin_cpu_supports("avx512vl");
  std::vector<Variant> variants = {
      {"openssl", 1, true,
       [&](const uint8_t* const* m, size_t n, uint8_t* const* o) { openssl_one(m[0], n, o[0]); }},
      {"nway-x1", 1, sha, nway(1)},
      {"nway-x2", 2, sha, nway(2)},
      {"nway-x3", 3, sha, nway(3)},
      {"nway-x4", 4, sha, nway(4)},
      {"shani-x2s", 2, sha, shani::sha256_scheduled<2>},
      {"shani-x3s", 3, sha, shani::sha256_scheduled<3>},
      {"shani-x4s", 4, sha, shani::sha256_scheduled<4>},
      {"avx2-x8", 8, avx2, bench_sha256_avx2_x8},
      {"avx512vl-x8", 8, avx512, bench_sha256_avx512vl_x8},
      {"avx512-x16", 16, avx512, bench_sha256_avx512_x16},
  };
  std::erase_if(variants, [&](const Variant& v) {
    return !v.supported || (!only.empty() && only.find("," + v.name + ",") == std::string::npos);
  });

  // Messages: random bytes, each at a 4 KiB boundary plus `misalign`.
  std::mt19937_64 random(15);
  const size_t stride = (length + misalign + 4095) / 4096 * 4096 + 4096;
  uint8_t* pool = static_cast<uint8_t*>(std::aligned_alloc(4096, stride * distinct));
  for (size_t i = 0; i < stride * distinct; i++) pool[i] = static_cast<uint8_t>(random());
  std::vector<const uint8_t*> list(kList);
  for (size_t i = 0; i < kList; i++) list[i] = pool + (i % distinct) * stride + misalign;
  std::vector<uint8_t> digests(kList * 32), expected(kList * 32);
  std::vector<uint8_t*> outs(kList);
  for (size_t i = 0; i < kList; i++) {
    outs[i] = digests.data() + 32 * i;
    openssl_one(list[i], length, expected.data() + 32 * i);
  }

  auto pass = [&](const Variant& v) {
    for (size_t i = 0; i < kList; i += v.lanes) v.kernel(&list[i], length, &outs[i]);
  };
  for (const auto& v : variants) {
    std::fill(digests.begin(), digests.end(), 0);
    pass(v);
    if (digests != expected) {
      std::fprintf(stderr, "%s: digests differ from OpenSSL's\n", v.name.c_str());
      return 1;
    }
  }

  const size_t passes = std::max<size_t>(1, (64u << 20) / (kList * std::max<size_t>(length, 1)));
  const double bytes = double(passes) * kList * length;
  std::vector<std::vector<double>> rates(variants.size());
  for (size_t r = 0; r < reps; r++) {
    for (size_t k = 0; k < variants.size(); k++) {
      auto start = std::chrono::steady_clock::now();
      for (size_t p = 0; p < passes; p++) pass(variants[k]);
      std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
      rates[k].push_back(bytes / elapsed.count() / 1e9);
    }
  }

  auto median = [](std::vector<double> x) {
    std::sort(x.begin(), x.end());
    size_t n = x.size();
    return n % 2 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2;
  };
  // The ratio to nway-x2 within each rep (both ran within a second
  // of each other), then its median: steadier than a ratio of medians on
  // a shared machine.
  int base = -1;
  for (size_t k = 0; k < variants.size(); k++)
    if (variants[k].name == "nway-x2") base = int(k);
  auto paired = [&](size_t k) {
    std::vector<double> x;
    for (size_t r = 0; r < reps; r++) x.push_back(rates[k][r] / rates[base][r]);
    return median(x);
  };
  std::printf("# length %zu, %zu distinct messages, misalign %zu, %zu interleaved reps of %.0f MiB\n",
              length, distinct, misalign, reps, bytes / (1 << 20));
  std::printf("| variant | lanes | GB/s median | min | max | vs nway-x2 (median of per-rep ratios) |\n");
  std::printf("|---|---:|---:|---:|---:|---:|\n");
  for (size_t k = 0; k < variants.size(); k++) {
    auto [lo, hi] = std::minmax_element(rates[k].begin(), rates[k].end());
    double m = median(rates[k]);
    std::printf("| %s | %d | %.3f | %.3f | %.3f | %s |\n", variants[k].name.c_str(),
                variants[k].lanes, m, *lo, *hi,
                base >= 0 ? std::to_string(paired(k)).substr(0, 5).c_str() : "-");
  }
  EVP_MD_CTX_free(ctx);
  EVP_MD_free(md);
  std::free(pool);
  return 0;
}
