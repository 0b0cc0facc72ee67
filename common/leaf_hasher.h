// How the block table turns blocks into leaves: the leaf rule for the
// blocks of one image, and the hashing policy.  Nothing else in the table
// hashes a block or chooses a zero block's leaf.
//
// The leaf rule (parameters.h): a block is hashed at its real length.  A
// block of zeros is never hashed: its leaf is the precomputed zero leaf,
// or, for a short final block, the leaf of its own length in zeros,
// computed once here.  add_leaves() applies it to a group's leaves.
//
// The hashing policy, for a batch of whole blocks (a request's):
//   - zero blocks are detected (is_zero, at memory speed) and not hashed;
//   - the blocks go in groups of DigestAlgorithm::lanes() (4 for SHA-256
//     with SHA-NI, else 1), and the data blocks of the same length in a
//     group are hashed at once (DigestAlgorithm::hash_many);
//   - the groups of a batch of at least kPoolMinBytes go to the HashPool,
//     unless the digest is fast (DigestAlgorithm::is_fast(): xxh128
//     hashes such a batch in about what waking a worker costs); then
//     groups shrink (down to one block) until there are as many as the
//     pool has threads: a 4 MiB request of 1 MiB blocks is 4 blocks on
//     two threads, two lanes each, not 4 lanes on one thread.
//
// Thread safe: any number of threads may hash at once.  The only state
// that changes is the count of bytes hashed (atomic).

#ifndef BLKHASH_LEAF_HASHER_H
#define BLKHASH_LEAF_HASHER_H

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "block_layout.h"
#include "hash_pool.h"
#include "parameters.h"
#include "root.h"

namespace blkhash {

class LeafHasher {
 public:
  // Hash on the pool only batches of at least this many bytes.
  static constexpr uint64_t kPoolMinBytes = 1u << 20;

  // The leaves of a batch of blocks, by position in the batch.
  class Leaves {
   public:
    bool is_zero(size_t i) const { return zero_[i] != 0; }
    // The leaf of a block that is not zero.
    const uint8_t* leaf(size_t i) const {
      return digests_.data() + i * digest_size_;
    }

   private:
    friend class LeafHasher;
    Leaves(size_t count, size_t digest_size);
    size_t digest_size_;
    std::vector<uint8_t> digests_;
    std::vector<uint8_t> zero_;  // one flag per block
  };

  // `parameters` and `pool` (if any) must outlive the hasher.
  LeafHasher(const Parameters& parameters, const BlockLayout& layout,
             HashPool* pool);

  // Hashes blocks[i] (ascending, whole blocks), whose bytes are at
  // data + (blocks[i] - first) * block size, with the policy above.
  Leaves hash_blocks(std::span<const uint64_t> blocks, const uint8_t* data,
                     uint64_t first);

  // Hashes one block's bytes into `leaf`; returns false, and writes
  // nothing, if they are all zero.
  bool hash_block(std::span<const uint8_t> bytes, uint8_t* leaf);

  // Appends to `root` the leaves of the n blocks from `first`, all known:
  // the blocks whose bit is set in `data` take their digest from
  // `digests` (one per set bit, in block order), the others are zero
  // blocks.  `scratch` is reused across calls.
  void add_leaves(RootBuilder& root, uint64_t first, unsigned n,
                  uint64_t data, const uint8_t* digests,
                  std::vector<uint8_t>& scratch) const;
  // The same leaves, written back to back to `out` (resized to n leaves).
  void group_leaves(uint64_t first, unsigned n, uint64_t data,
                    const uint8_t* digests, std::vector<uint8_t>& out) const;

  // The leaf of `block` if all its bytes are zero.
  const DigestValue& zero_leaf(uint64_t block) const;

  // Bytes hashed into leaves so far (zero blocks are not hashed).
  uint64_t bytes_hashed() const { return bytes_hashed_.load(); }

 private:
  // Hashes bytes known not to be all zero.
  void hash_data(std::span<const uint8_t> bytes, uint8_t* leaf);
  // Hashes blocks[begin .. begin + count) of a batch, count <= kMaxLanes.
  void hash_group(std::span<const uint64_t> blocks, const uint8_t* data,
                  uint64_t first, size_t begin, size_t count, Leaves& out);

  const Parameters& parameters_;
  const BlockLayout layout_;
  const size_t digest_size_;
  HashPool* const pool_;
  const DigestValue short_final_zero_leaf_;  // empty if no short final block
  std::atomic<uint64_t> bytes_hashed_{0};
};

}  // namespace blkhash

#endif  // BLKHASH_LEAF_HASHER_H
