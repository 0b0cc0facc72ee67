// Where the blocks of an image lie, and how the block table groups them.
//
//   block  b  bytes [b*B, min((b+1)*B, L)): only the last may be short
//   group  g  blocks [64g, 64g + 64): one 64-bit mask word of state each,
//             bit i for block 64g + i (the helpers below work on those)
//   region r  groups [1024r, 1024r + 1024), 65536 blocks: what the table
//             allocates on first use, frees once folded, and checkpoints
//
// A BlockLayout is an immutable value: the arithmetic of one image, in
// one place.  `g` names a group's index everywhere in the engine, and
// `group` its state (block_table.h).

#ifndef BLKHASH_BLOCK_LAYOUT_H
#define BLKHASH_BLOCK_LAYOUT_H

#include <algorithm>
#include <bit>
#include <cstdint>
#include <stdexcept>

namespace blkhash {

// Thrown when an image has more blocks than a table will track.
class ImageTooLarge : public std::length_error {
 public:
  ImageTooLarge(uint64_t length, uint32_t block_size);
};

class BlockLayout {
 public:
  // Most blocks a table tracks: 2^32 (256 TiB at 64K blocks).  Folding
  // more leaves than that would take hours even for an image of zeros.
  static constexpr uint64_t kMaxBlocks = uint64_t{1} << 32;
  static constexpr unsigned kGroupBlocks = 64;
  static constexpr unsigned kRegionGroups = 1024;
  static constexpr uint64_t kRegionBlocks =
      uint64_t{kGroupBlocks} * kRegionGroups;

  // Throws ImageTooLarge for more than kMaxBlocks blocks.
  BlockLayout(uint32_t block_size, uint64_t length);

  uint32_t block_size() const { return block_size_; }
  uint64_t length() const { return length_; }
  uint64_t block_count() const { return block_count_; }
  uint64_t group_count() const {
    return (block_count_ + kGroupBlocks - 1) / kGroupBlocks;
  }
  uint64_t region_count() const {
    return (block_count_ + kRegionBlocks - 1) / kRegionBlocks;
  }

  uint64_t block_offset(uint64_t block) const { return block * block_size_; }
  uint32_t block_length(uint64_t block) const {
    return static_cast<uint32_t>(
        std::min<uint64_t>(length_ - block_offset(block), block_size_));
  }
  uint64_t block_end(uint64_t block) const {
    return block_offset(block) + block_length(block);
  }
  // The final block, if it is shorter than block_size().
  bool is_short_final(uint64_t block) const {
    return block + 1 == block_count_ && block_length(block) != block_size_;
  }
  // Blocks in group g: 64, but fewer in the final group.
  unsigned blocks_in_group(uint64_t g) const {
    return static_cast<unsigned>(
        std::min<uint64_t>(kGroupBlocks, block_count_ - g * kGroupBlocks));
  }

  // Throws std::out_of_range unless [offset, offset + length) lies within
  // the image.
  void check_range(uint64_t offset, uint64_t length) const;

 private:
  uint32_t block_size_;
  uint64_t length_;
  uint64_t block_count_;
};

// --- Bits of a group's masks ---------------------------------------------------

// Bits [0, n).
inline uint64_t low_bits(unsigned n) {
  return n >= 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1;
}

// Bits [from, to).
inline uint64_t bit_range(unsigned from, unsigned to) {
  return low_bits(to) & ~low_bits(from);
}

// How many bits of `mask` lie below `bit`: the slot of that bit's entry
// in an array holding one entry per set bit, in order.
inline unsigned rank(uint64_t mask, unsigned bit) {
  return static_cast<unsigned>(std::popcount(mask & low_bits(bit)));
}

// The bit of `block` in its group's masks.
inline uint64_t block_bit(uint64_t block) {
  return uint64_t{1} << (block % BlockLayout::kGroupBlocks);
}

}  // namespace blkhash

#endif  // BLKHASH_BLOCK_LAYOUT_H
