// A byte range [offset, offset + length): how the engine names the bytes
// of an image (or of a block) that are unknown, and how callers name the
// bytes they read or write.  A plain value: no invariant beyond
// offset + length not overflowing, which its users ensure.

#ifndef BLKHASH_BYTE_RANGE_H
#define BLKHASH_BYTE_RANGE_H

#include <cstdint>

namespace blkhash {

struct ByteRange {
  uint64_t offset;
  uint64_t length;
  uint64_t end() const { return offset + length; }
  bool operator==(const ByteRange&) const = default;
};

}  // namespace blkhash

#endif  // BLKHASH_BYTE_RANGE_H
