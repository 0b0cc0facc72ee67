// The parameters of a blkhash computation, and the leaf rule.
//
// blkhash (see README.md, "The checksum"):
//   leaf i = H(block i)            block i = bytes [i*B, min((i+1)*B, L))
//   root   = H(leaf 0 || ... || leaf n-1 || LE64(L))
//
// Parameters holds H and B and the precomputed leaf of a full zero block,
// which is all that differs between one computation and another.
//
// The leaf rule: a block is hashed at its real length.  Every block but
// the last is B bytes; the last may be shorter, and a short final block of
// zeros has its own leaf, H(its length in zeros), not the full zero leaf.
// zero_leaf(length) is that rule; leaf() applies it to a block's bytes.
// The block table applies it through LeafHasher (leaf_hasher.h).

#ifndef BLKHASH_PARAMETERS_H
#define BLKHASH_PARAMETERS_H

#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>

#include "digest.h"

namespace blkhash {

inline constexpr uint32_t kMinBlockSize = 4096;
inline constexpr uint32_t kMaxBlockSize = 64u << 20;
inline constexpr uint32_t kDefaultBlockSize = 64u << 10;
inline constexpr const char* kDefaultDigest = "sha256";

// Thrown for a block size that is not a power of two in [4K, 64M].
class InvalidBlockSize : public std::invalid_argument {
 public:
  explicit InvalidBlockSize(uint64_t block_size);
};

// True if `block_size` is a power of two from 4 KiB to 64 MiB.
bool is_valid_block_size(uint64_t block_size);

// "64K", "1M": the block size as nbdkit and nbdcopy users write it.
std::string format_block_size(uint32_t block_size);

// The digest and block size of a blkhash computation.  Immutable.
class Parameters {
 public:
  // Throws InvalidBlockSize.
  Parameters(std::shared_ptr<const DigestAlgorithm> digest,
             uint32_t block_size);

  const DigestAlgorithm& digest() const { return *digest_; }
  uint32_t block_size() const { return block_size_; }
  size_t digest_size() const { return digest_->size(); }

  // H(block_size zero bytes).
  const DigestValue& zero_leaf() const { return zero_leaf_; }

  // The leaf of `length` zero bytes (a full or a short final block).
  DigestValue zero_leaf(uint32_t length) const;

  // The leaf of a block's bytes.  A full block of zeros takes the
  // precomputed zero leaf; a short block is always hashed, zeros or not.
  void leaf(std::span<const uint8_t> block, uint8_t* out) const;

  // "sha256/64K".
  std::string label() const;

 private:
  std::shared_ptr<const DigestAlgorithm> digest_;
  uint32_t block_size_;
  DigestValue zero_leaf_;
};

}  // namespace blkhash

#endif  // BLKHASH_PARAMETERS_H
