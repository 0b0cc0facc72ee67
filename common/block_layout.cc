// See block_layout.h.

#include "block_layout.h"

#include <string>

namespace blkhash {

namespace {

uint64_t checked_block_count(uint64_t length, uint32_t block_size) {
  uint64_t blocks = length / block_size + (length % block_size != 0);
  if (blocks > BlockLayout::kMaxBlocks) throw ImageTooLarge(length, block_size);
  return blocks;
}

}  // namespace

ImageTooLarge::ImageTooLarge(uint64_t length, uint32_t block_size)
    : std::length_error("image of " + std::to_string(length) +
                        " bytes has more than 2^32 blocks of " +
                        std::to_string(block_size) +
                        " bytes: too large to hash") {}

BlockLayout::BlockLayout(uint32_t block_size, uint64_t length)
    : block_size_(block_size),
      length_(length),
      block_count_(checked_block_count(length, block_size)) {}

void BlockLayout::check_range(uint64_t offset, uint64_t length) const {
  if (offset > length_ || length > length_ - offset)
    throw std::out_of_range("range " + std::to_string(offset) + "+" +
                            std::to_string(length) + " beyond image of " +
                            std::to_string(length_) + " bytes");
}

}  // namespace blkhash
