// SHA-256 of up to four messages at once, with the x86 SHA extensions.
//
// The SHA-NI round instruction has a long latency: one message keeps a
// core's SHA unit mostly idle, waiting.  Interleaving the rounds of
// independent messages (blocks of the image) fills those gaps.  On the
// AMD EPYC (Zen 4) we measured, single-threaded on 64 KiB messages
// (bench/kernels, numbers in bench/README.md): two lanes 1.87x OpenSSL's
// SHA-NI code on one message, three lanes 1.04x two, four lanes 1.06x
// two (1.09x the former two-lane-only kernel): about the SHA unit's
// throughput.  More lanes do not fit: the SHA instructions have no VEX
// form, so 16 xmm registers hold the states and schedules, and four lanes
// already spill.  Multi-buffer SHA-256 in plain AVX2 (8 lanes, 0.47x two
// SHA-NI lanes) or AVX-512 (16 lanes, 0.85x) was slower, so it is not here.
//
// sha256_nway() is used only when the CPU has SHA-NI, SSE4.1 and SSSE3
// (sha256_nway_supported()); elsewhere callers hash one message at a time
// with OpenSSL.  Tests prove it against OpenSSL for every lane count on
// random lengths, alignments and distinct messages.

#ifndef BLKHASH_SHA256_NWAY_H
#define BLKHASH_SHA256_NWAY_H

#include <cstddef>
#include <cstdint>

namespace blkhash {

inline constexpr size_t kSha256MaxLanes = 4;

bool sha256_nway_supported();

// SHA-256 of msgs[i][0..length) into outs[i][0..32), for i < n, with
// 1 <= n <= kSha256MaxLanes.  The messages may be anywhere (any
// alignment); n == 1 works but is no faster than OpenSSL.
void sha256_nway(const uint8_t* const* msgs, size_t n, size_t length,
                 uint8_t* const* outs);

}  // namespace blkhash

#endif  // BLKHASH_SHA256_NWAY_H
