// Block maps: the leaves of a blkhash, published, so that each block can be
// checked on its own and the blocks that differ can be named.
//
// The format (version 1; every integer little-endian; no padding):
//
//   header
//     8 bytes   magic "BLKHMAP\0"
//     u32       format version, 1
//     u32       block size B (a power of two, 4 KiB .. 64 MiB)
//     u64       image size L in bytes
//     u8        n = length of the digest name (1 .. 64)
//     u8        d = digest size in bytes (1 .. 64)
//     n bytes   the digest name, ASCII (as blkhash names it: "sha256")
//     d bytes   the root
//   records, in block order, until they cover ceil(L / B) blocks
//     u8        type: 'D' (0x44) data run, or 'Z' (0x5A) zero run
//     u64       count of blocks in the run, at least 1
//     'D' only: count * d bytes, the leaf of each block of the run
//   end of file (nothing may follow the last record)
//
// A block of a zero run has the leaf of its length in zero bytes: H(B
// zeros), or, for a short final block, H(its length in zeros) (the leaf
// rule, parameters.h).  root = H(leaf 0 || ... || leaf n-1 || LE64(L)), as
// for every blkhash: a map is self-checking, and the reader recomputes the
// root from the leaves and rejects a map whose root does not recompute.
//
// Writers here are canonical: runs are as long as they can be, and every
// block whose leaf is its zero leaf is in a zero run (a block of zeros
// that was written counts as zero).  So two canonical maps of the same
// image are the same bytes.  Readers accept any split into runs.
//
// Size: 9 bytes per run plus d bytes per data block, whatever the image
// size: a 1 TiB image of holes is one zero run.
//
// BlockMap (a map read, checked) and BlockMapWriter are immutable after
// construction / finish(): any number of threads may read a BlockMap.

#ifndef BLKHASH_BLOCK_MAP_H
#define BLKHASH_BLOCK_MAP_H

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "digest.h"
#include "parameters.h"
#include "root.h"

namespace blkhash {

inline constexpr char kBlockMapMagic[8] = {'B', 'L', 'K', 'H', 'M', 'A', 'P', 0};
inline constexpr uint32_t kBlockMapVersion = 1;

// Thrown for a map that cannot be read or is not valid: its message says
// why in one line.
class BlockMapError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Consecutive blocks [first, first + count).
struct BlockRange {
  uint64_t first = 0;
  uint64_t count = 0;
  uint64_t end() const { return first + count; }
  bool operator==(const BlockRange&) const = default;
};

// Block ranges added in ascending block order, adjacent ones merged, of
// which the first `max_kept` are kept; all are counted.
class BlockRangeList {
 public:
  explicit BlockRangeList(size_t max_kept = SIZE_MAX) : max_kept_(max_kept) {}
  // Adds blocks [first, first + count); first >= the end of the last.
  void add(uint64_t first, uint64_t count = 1);
  const std::vector<BlockRange>& kept() const { return kept_; }
  uint64_t range_count() const { return ranges_; }
  uint64_t block_count() const { return blocks_; }
  bool empty() const { return ranges_ == 0; }
  // "3-5,9" (block numbers, ranges inclusive), then ",... (N ranges)" when
  // some were not kept.
  std::string text() const;

 private:
  size_t max_kept_;
  std::vector<BlockRange> kept_;
  uint64_t ranges_ = 0;
  uint64_t blocks_ = 0;
  uint64_t last_end_ = 0;
};

// A map read from bytes and checked.
class BlockMap {
 public:
  // Parses `bytes` and checks that the root recomputes from the leaves,
  // and, if `expected_root` is given, that it is that root.  Throws
  // BlockMapError (or UnknownDigest, InvalidBlockSize).
  static BlockMap parse(std::span<const uint8_t> bytes,
                        const std::optional<DigestValue>& expected_root = {});
  // Reads the file at `path` and parses it.
  static BlockMap load(const std::string& path,
                       const std::optional<DigestValue>& expected_root = {});

  const Parameters& parameters() const { return *parameters_; }
  const std::string& digest_name() const { return digest_name_; }
  uint32_t block_size() const { return parameters_->block_size(); }
  uint64_t image_size() const { return image_size_; }
  uint64_t block_count() const { return block_count_; }
  const DigestValue& root() const { return root_; }

  // Whether `block`'s leaf is `leaf` (digest size bytes).
  bool leaf_equals(uint64_t block, const uint8_t* leaf) const;
  // The leaf of `block` (< block_count()).
  DigestValue leaf(uint64_t block) const;
  // The leaf of a block of zeros at `block` (the leaf rule).
  const DigestValue& zero_leaf(uint64_t block) const;

  // The blocks where the two maps' leaves differ.  Throws BlockMapError if
  // they are not of the same digest, block size and image size.
  static BlockRangeList diff(const BlockMap& a, const BlockMap& b,
                             size_t max_kept = SIZE_MAX);

 private:
  struct Run {
    uint64_t first;   // first block
    uint64_t count;
    bool zero;
    size_t leaves;    // data runs: offset of its first leaf in leaves_
    uint64_t end() const { return first + count; }
  };
  BlockMap() = default;
  const Run& run_of(uint64_t block) const;

  std::unique_ptr<Parameters> parameters_;
  std::string digest_name_;
  uint64_t image_size_ = 0;
  uint64_t block_count_ = 0;
  DigestValue root_;
  DigestValue short_zero_leaf_;  // of the short final block, if any
  std::vector<Run> runs_;
  std::vector<uint8_t> leaves_;
};

// Writes a canonical map: leaves are added in block order, then finish()
// computes the root from them and returns the file's bytes.
class BlockMapWriter {
 public:
  // `parameters` must outlive the writer.
  BlockMapWriter(const Parameters& parameters, uint64_t image_size);

  // The leaf of the next block.
  void add_leaf(const uint8_t* leaf);
  // The next `count` blocks are zeros.
  void add_zero_blocks(uint64_t count);
  uint64_t blocks_added() const { return added_; }

  // Throws std::logic_error unless every block was added.
  std::string finish();
  // After finish(): the root written.
  const DigestValue& root() const { return root_; }

 private:
  void start_run(bool zero);
  void end_run();

  const Parameters& parameters_;
  const uint64_t image_size_;
  const uint64_t block_count_;
  DigestValue short_zero_leaf_;
  RootBuilder outer_;
  std::string body_;           // the records so far
  uint64_t added_ = 0;
  bool in_run_ = false;
  bool run_zero_ = false;
  size_t run_count_at_ = 0;    // offset of the open run's count in body_
  uint64_t run_count_ = 0;
  DigestValue root_;
};

}  // namespace blkhash

#endif  // BLKHASH_BLOCK_MAP_H
