// Fast detection of all-zero buffers.
//
// blkhash never hashes a full block of zeros: its leaf is the precomputed
// digest of a zero block.  Telling zeros apart must then cost next to
// nothing, so is_zero() runs at memory speed: it checks the first 16
// bytes directly, and then compares the buffer with itself shifted by 16
// bytes (memcmp is vectorised; if every byte equals the one 16 bytes
// before it and the first 16 are zero, all are zero).

#ifndef BLKHASH_ZERO_H
#define BLKHASH_ZERO_H

#include <cstddef>

namespace blkhash {

// True if all `length` bytes at `data` are zero (true for length 0).
bool is_zero(const void* data, size_t length);

}  // namespace blkhash

#endif  // BLKHASH_ZERO_H
