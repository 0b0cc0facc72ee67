// The streaming front door: blkhash of data that arrives in order.
//
// update() and zero() append to the image; final() returns the root.
// Full blocks are hashed straight from the caller's buffer when aligned;
// only a block split across calls is copied into the one block-sized
// buffer.  Full zero blocks are never hashed (Parameters::leaf).

#ifndef BLKHASH_STREAMING_H
#define BLKHASH_STREAMING_H

#include <cstdint>
#include <span>
#include <vector>

#include "root.h"

namespace blkhash {

class StreamingBlkhash {
 public:
  explicit StreamingBlkhash(const Parameters& parameters);

  // Appends bytes.
  void update(std::span<const uint8_t> data);

  // Appends `length` zero bytes without hashing full zero blocks.
  void zero(uint64_t length);

  // The root of everything appended.  Call once.
  DigestValue final();

  uint64_t length() const { return length_; }

 private:
  void add_leaf_of(std::span<const uint8_t> block);

  const Parameters& parameters_;
  RootBuilder root_;
  std::vector<uint8_t> pending_;  // bytes of the current, incomplete block
  uint64_t length_ = 0;
};

}  // namespace blkhash

#endif  // BLKHASH_STREAMING_H
