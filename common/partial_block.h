// A block of which only some bytes are known yet.
//
// Writes, reads and zero extents that cover part of a block fill a
// block-sized buffer here until every byte is known; the block table then
// hashes it and frees the buffer.  Known bytes are kept as a sorted list
// of disjoint, non-adjacent byte ranges, so a block filled by a few
// unaligned pieces costs a few entries, not a bitmap.
//
// Two ways to add bytes: put() overwrites (a write: the newest data wins)
// and fill() only sets bytes not known yet (a read or a zero extent:
// what is already known came from a write and is at least as new).
// The block remembers whether any byte it knows was seen in a write or a
// read, rather than only inferred from zero extents: the block table does
// not complete such a block from extents (see block_table.h).

#ifndef BLKHASH_PARTIAL_BLOCK_H
#define BLKHASH_PARTIAL_BLOCK_H

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "byte_range.h"

namespace blkhash {

class PartialBlock {
 public:
  // A block of `length` bytes, none known.  If `known_zero`, all of
  // them are known and zero instead.
  PartialBlock(uint32_t length, bool known_zero);

  uint32_t length() const { return length_; }

  // Sets bytes [offset, offset + n) from data, or zeros if data is null.
  void put(uint32_t offset, uint32_t n, const uint8_t* data);

  // Like put(), but only for the bytes in the range not known yet.
  void fill(uint32_t offset, uint32_t n, const uint8_t* data);

  // Bytes [offset, offset + n) become unknown.
  void forget(uint32_t offset, uint32_t n);

  bool complete() const;
  bool nothing_known() const { return known_.empty(); }

  // Some known byte came from put() or from fill() with data (a client's
  // write or read), not only from zero fills or the constructor.
  bool seen() const { return seen_; }

  // The block's bytes; only meaningful where known.
  std::span<const uint8_t> bytes() const { return {bytes_.get(), length_}; }

  // The unknown byte ranges, relative to the block start, in order.
  std::vector<ByteRange> missing() const;

  // Heap bytes this block holds.
  size_t memory_bytes() const;

 private:
  struct Run {
    uint32_t begin;
    uint32_t end;
  };

  void copy_in(uint32_t offset, uint32_t n, const uint8_t* data,
               uint32_t data_base);
  void mark_known(uint32_t begin, uint32_t end);

  uint32_t length_;
  std::unique_ptr<uint8_t[]> bytes_;
  std::vector<Run> known_;  // sorted, disjoint, non-adjacent
  bool seen_ = false;
};

}  // namespace blkhash

#endif  // BLKHASH_PARTIAL_BLOCK_H
