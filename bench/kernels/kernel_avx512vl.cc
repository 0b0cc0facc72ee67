// 8-lane multi-buffer SHA-256 with AVX-512VL on 256-bit vectors
// (vprord, vpternlogd); compiled with -mavx512f -mavx512vl.
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "transpose8.inc"

namespace {
struct Ops {
  using V = __m256i;
  static constexpr int kLanes = 8;
  static V add(V a, V b) { return _mm256_add_epi32(a, b); }
  static V xor3(V a, V b, V c) { return _mm256_ternarylogic_epi32(a, b, c, 0x96); }
  template <int n> static V ror(V x) { return _mm256_ror_epi32(x, n); }
  template <int n> static V shr(V x) { return _mm256_srli_epi32(x, n); }
  static V ch(V e, V f, V g) { return _mm256_ternarylogic_epi32(e, f, g, 0xCA); }
  static V maj(V a, V b, V c) { return _mm256_ternarylogic_epi32(a, b, c, 0xE8); }
  static V set1(uint32_t k) { return _mm256_set1_epi32((int)k); }
  static void load(const uint8_t* const* p, size_t offset, V w[16]) { load8(p, offset, w); }
};
}  // namespace

#include "sha256_mb.inc"

void bench_sha256_avx512vl_x8(const uint8_t* const* msgs, size_t length, uint8_t* const* outs) {
  mb_sha256(msgs, length, outs);
}
