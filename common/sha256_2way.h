// SHA-256 of two messages at once, with the x86 SHA extensions.
//
// The SHA-NI round instruction has a long latency: one message keeps a
// core's SHA unit mostly idle, waiting.  Interleaving the rounds of two
// independent messages (two blocks of the image) fills those gaps, about
// 1.5x the throughput of OpenSSL's SHA-NI code on one message.
//
// sha256_2way() is used only when the CPU has SHA-NI, SSE4.1 and SSSE3
// (sha256_2way_supported()); elsewhere callers hash one message at a time
// with OpenSSL.  Tests prove it against OpenSSL on random inputs.

#ifndef BLKHASH_SHA256_2WAY_H
#define BLKHASH_SHA256_2WAY_H

#include <cstddef>
#include <cstdint>

namespace blkhash {

bool sha256_2way_supported();

// SHA-256 of a[0..length) into out_a and of b[0..length) into out_b.
void sha256_2way(const uint8_t* a, const uint8_t* b, size_t length,
                 uint8_t* out_a, uint8_t* out_b);

}  // namespace blkhash

#endif  // BLKHASH_SHA256_2WAY_H
