// 16-lane multi-buffer SHA-256 with AVX-512F on 512-bit vectors;
// compiled with -mavx512f -mavx512vl.  The schedule is loaded as two
// 8x8 transposes (lanes 0-7 and 8-15) joined into 512-bit vectors.
// GCC 12 warns that the "undefined" pass-through operand inside the
// 512-bit intrinsics (ror, srli, inserti64x4) may be used uninitialized:
// a false positive in its own header.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "transpose8.inc"

namespace {
struct Ops {
  using V = __m512i;
  static constexpr int kLanes = 16;
  static V add(V a, V b) { return _mm512_add_epi32(a, b); }
  static V xor3(V a, V b, V c) { return _mm512_ternarylogic_epi32(a, b, c, 0x96); }
  template <int n> static V ror(V x) { return _mm512_ror_epi32(x, n); }
  template <int n> static V shr(V x) { return _mm512_srli_epi32(x, n); }
  static V ch(V e, V f, V g) { return _mm512_ternarylogic_epi32(e, f, g, 0xCA); }
  static V maj(V a, V b, V c) { return _mm512_ternarylogic_epi32(a, b, c, 0xE8); }
  static V set1(uint32_t k) { return _mm512_set1_epi32((int)k); }
  static void load(const uint8_t* const* p, size_t offset, V w[16]) {
    __m256i lo[16], hi[16];
    load8(p, offset, lo);
    load8(p + 8, offset, hi);
    for (int i = 0; i < 16; i++)
      w[i] = _mm512_inserti64x4(_mm512_zextsi256_si512(lo[i]), hi[i], 1);
  }
};
}  // namespace

#include "sha256_mb.inc"

void bench_sha256_avx512_x16(const uint8_t* const* msgs, size_t length, uint8_t* const* outs) {
  mb_sha256(msgs, length, outs);
}
