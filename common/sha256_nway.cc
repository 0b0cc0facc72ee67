// SHA-256 (FIPS 180-4) of 1 to 4 equal-length messages, rounds
// interleaved: one compress<N>() per lane count, the lanes' instructions
// issued side by side for every pair of rounds.
//
// State layout for the SHA-NI instructions: sha256rnds2 takes the working
// variables as two registers, ABEF (A in the top 32-bit lane, F in the
// bottom) and CDGH, and does two rounds with two W[t]+K[t] values from
// the low 64 bits of its third operand.  The message schedule for
// W[t..t+3] (t >= 16) is
//   sha256msg2(sha256msg1(W[t-16..t-13], W[t-12..t-9]) + W[t-7..t-4],
//              W[t-4..t-1])
// where msg1 adds sigma0 terms and msg2 adds the sigma1 terms.
//
// The functions using the instructions carry target attributes; nothing
// here runs unless sha256_nway_supported().

#include "sha256_nway.h"

#include <cpuid.h>
#include <immintrin.h>

#include <cstring>

namespace blkhash {

namespace {

alignas(16) constexpr uint32_t kRound[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

constexpr uint32_t kInitial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
                                  0xa54ff53a, 0x510e527f, 0x9b05688c,
                                  0x1f83d9ab, 0x5be0cd19};

// Working state of one message, in the SHA-NI layout.
struct Lane {
  __m128i abef;
  __m128i cdgh;
};

__attribute__((target("sha,sse4.1,ssse3"))) Lane initial_lane() {
  __m128i abcd = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kInitial));
  __m128i efgh =
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(kInitial + 4));
  __m128i badc = _mm_shuffle_epi32(abcd, 0xB1);  // lanes b a d c
  __m128i hgfe = _mm_shuffle_epi32(efgh, 0x1B);  // lanes h g f e
  return {_mm_alignr_epi8(badc, hgfe, 8),        // f e b a
          _mm_blend_epi16(hgfe, badc, 0xF0)};    // h g d c
}

__attribute__((target("sha,sse4.1,ssse3"))) void store_lane(const Lane& lane,
                                                            uint8_t* out) {
  __m128i abef = _mm_shuffle_epi32(lane.abef, 0x1B);  // a b e f
  __m128i cdgh = _mm_shuffle_epi32(lane.cdgh, 0xB1);  // g h c d
  __m128i abcd = _mm_blend_epi16(abef, cdgh, 0xF0);   // a b c d
  __m128i efgh = _mm_alignr_epi8(cdgh, abef, 8);      // e f g h
  // Digest bytes are the state words big-endian.
  const __m128i swap =
      _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out),
                   _mm_shuffle_epi8(abcd, swap));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16),
                   _mm_shuffle_epi8(efgh, swap));
}

// `count` 64-byte blocks of each of N messages, from blocks[0..N).  The
// states stay in registers across blocks (as far as 16 xmm registers
// go), and the loops are unrolled so that the schedule arrays are indexed
// by constants.  Computing the schedule into memory first instead, to
// free registers, was slower (bench/kernels).
template <int N>
__attribute__((target("sha,sse4.1,ssse3"))) void compress(
    Lane* lanes, const uint8_t* const* blocks, size_t count) {
  const __m128i swap =
      _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
  Lane s[N];
  const uint8_t* p[N];
#pragma GCC unroll 4
  for (int l = 0; l < N; l++) s[l] = lanes[l], p[l] = blocks[l];
  for (size_t n = 0; n < count; n++) {
    __m128i w[N][4];  // per lane, the last 16 schedule words, 4 a register
    Lane saved[N];
#pragma GCC unroll 4
    for (int l = 0; l < N; l++) {
      saved[l] = s[l];
#pragma GCC unroll 4
      for (int i = 0; i < 4; i++)
        w[l][i] = _mm_shuffle_epi8(
            _mm_loadu_si128(
                reinterpret_cast<const __m128i*>(p[l] + 64 * n + 16 * i)),
            swap);
    }
#pragma GCC unroll 16
    for (int group = 0; group < 16; group++) {
      const int slot = group & 3;
      if (group >= 4) {
        // w[l][slot] holds W[t-16..t-13]; compute W[t..t+3] in its place.
#pragma GCC unroll 4
        for (int l = 0; l < N; l++) {
          __m128i t = _mm_sha256msg1_epu32(w[l][slot], w[l][(slot + 1) & 3]);
          t = _mm_add_epi32(
              t, _mm_alignr_epi8(w[l][(slot + 3) & 3], w[l][(slot + 2) & 3], 4));
          w[l][slot] = _mm_sha256msg2_epu32(t, w[l][(slot + 3) & 3]);
        }
      }
      const __m128i k =
          _mm_load_si128(reinterpret_cast<const __m128i*>(kRound + 4 * group));
      __m128i m[N];
#pragma GCC unroll 4
      for (int l = 0; l < N; l++) {
        m[l] = _mm_add_epi32(w[l][slot], k);
        s[l].cdgh = _mm_sha256rnds2_epu32(s[l].cdgh, s[l].abef, m[l]);
      }
#pragma GCC unroll 4
      for (int l = 0; l < N; l++) {
        m[l] = _mm_shuffle_epi32(m[l], 0x0E);
        s[l].abef = _mm_sha256rnds2_epu32(s[l].abef, s[l].cdgh, m[l]);
      }
    }
#pragma GCC unroll 4
    for (int l = 0; l < N; l++) {
      s[l].abef = _mm_add_epi32(s[l].abef, saved[l].abef);
      s[l].cdgh = _mm_add_epi32(s[l].cdgh, saved[l].cdgh);
    }
  }
#pragma GCC unroll 4
  for (int l = 0; l < N; l++) lanes[l] = s[l];
}

// The padded tail of a message of `length` bytes whose last `rest`
// (< 64) bytes are at `tail`: 1 or 2 blocks.  Returns the block count.
size_t padded_tail(const uint8_t* tail, size_t rest, uint64_t length,
                   uint8_t* out /* 128 bytes */) {
  std::memset(out, 0, 128);
  std::memcpy(out, tail, rest);
  out[rest] = 0x80;
  size_t blocks = rest + 1 + 8 <= 64 ? 1 : 2;
  uint64_t bits = length * 8;
  for (int i = 0; i < 8; i++)
    out[blocks * 64 - 1 - i] = static_cast<uint8_t>(bits >> (8 * i));
  return blocks;
}

template <int N>
void sha256_lanes(const uint8_t* const* msgs, size_t length,
                  uint8_t* const* outs) {
  Lane s[N];
  for (int l = 0; l < N; l++) s[l] = initial_lane();
  const size_t full = length / 64;
  compress<N>(s, msgs, full);

  uint8_t tails[N][128];
  const uint8_t* tail_blocks[N];
  const size_t rest = length % 64;
  size_t blocks = 0;  // the same for every lane: same length
  for (int l = 0; l < N; l++) {
    blocks = padded_tail(msgs[l] + 64 * full, rest, length, tails[l]);
    tail_blocks[l] = tails[l];
  }
  compress<N>(s, tail_blocks, blocks);

  for (int l = 0; l < N; l++) store_lane(s[l], outs[l]);
}

}  // namespace

bool sha256_nway_supported() {
  // CPUID directly: clang 14 has no __builtin_cpu_supports("sha").
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  const bool ssse3 = ecx & (1u << 9), sse41 = ecx & (1u << 19);
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  const bool sha = ebx & (1u << 29);
  return sha && ssse3 && sse41;
}

void sha256_nway(const uint8_t* const* msgs, size_t n, size_t length,
                 uint8_t* const* outs) {
  switch (n) {
    case 1: sha256_lanes<1>(msgs, length, outs); break;
    case 2: sha256_lanes<2>(msgs, length, outs); break;
    case 3: sha256_lanes<3>(msgs, length, outs); break;
    case 4: sha256_lanes<4>(msgs, length, outs); break;
    default: break;  // outside the contract
  }
}

}  // namespace blkhash
