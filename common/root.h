// The parameters of a blkhash computation, and the fold of leaves into
// the root.
//
// blkhash (see README.md, "The checksum"):
//   leaf i = H(block i)            block i = bytes [i*B, min((i+1)*B, L))
//   root   = H(leaf 0 || ... || leaf n-1 || LE64(L))
//
// Parameters holds H and B and the precomputed leaf of a full zero block,
// which is all that differs between one computation and another.
// RootBuilder is the outer hash: leaves go in strictly in block order.

#ifndef BLKHASH_ROOT_H
#define BLKHASH_ROOT_H

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

  // The leaf of a block's bytes.  A full block of zeros takes the
  // precomputed zero leaf; a short block is always hashed, zeros or not.
  void leaf(std::span<const uint8_t> block, uint8_t* out) const;

  // The leaf of `length` zero bytes (a full or a short final block).
  DigestValue zero_leaf(uint32_t length) const;

  // "sha256/64K".
  std::string label() const;

 private:
  std::shared_ptr<const DigestAlgorithm> digest_;
  uint32_t block_size_;
  DigestValue zero_leaf_;
};

// Folds leaves, given in block order, and the image length into the root.
class RootBuilder {
 public:
  explicit RootBuilder(const Parameters& parameters);

  void add_leaf(const uint8_t* leaf);

  // Adds `count` leaves stored back to back.
  void add_leaves(const uint8_t* leaves, uint64_t count);

  // Adds the zero-block leaf `count` times.
  void add_zero_leaves(uint64_t count);

  // Appends LE64(image_length) and returns the root.  Call once.
  DigestValue finish(uint64_t image_length);

  // A builder holding the same leaves, which then goes on independently:
  // a checkpoint to return to, or the root so far without ending this one.
  RootBuilder clone() const;

 private:
  RootBuilder(const Parameters& parameters, std::unique_ptr<Hasher> outer);

  const Parameters& parameters_;
  std::unique_ptr<Hasher> outer_;
};

}  // namespace blkhash

#endif  // BLKHASH_ROOT_H
