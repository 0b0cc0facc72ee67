// See parameters.h.

#include "parameters.h"

#include <algorithm>
#include <bit>
#include <vector>

#include "zero.h"

namespace blkhash {

InvalidBlockSize::InvalidBlockSize(uint64_t block_size)
    : std::invalid_argument(
          "block size " + std::to_string(block_size) +
          " is not a power of two from 4K to 64M") {}

bool is_valid_block_size(uint64_t block_size) {
  return block_size >= kMinBlockSize && block_size <= kMaxBlockSize &&
         std::has_single_bit(block_size);
}

std::string format_block_size(uint32_t block_size) {
  if (block_size % (1u << 20) == 0)
    return std::to_string(block_size >> 20) + "M";
  if (block_size % (1u << 10) == 0)
    return std::to_string(block_size >> 10) + "K";
  return std::to_string(block_size);
}

Parameters::Parameters(std::shared_ptr<const DigestAlgorithm> digest,
                       uint32_t block_size)
    : digest_(std::move(digest)), block_size_(block_size) {
  if (!is_valid_block_size(block_size)) throw InvalidBlockSize(block_size);
  zero_leaf_ = zero_leaf(block_size);
}

DigestValue Parameters::zero_leaf(uint32_t length) const {
  if (length == block_size_ && zero_leaf_.size() != 0) return zero_leaf_;
  std::vector<uint8_t> zeros(length);
  return digest_->hash(zeros);
}

void Parameters::leaf(std::span<const uint8_t> block, uint8_t* out) const {
  // A short block is hashed as it is: for zeros, that is zero_leaf(length)
  // without building the zeros again.
  if (block.size() == block_size_ && is_zero(block.data(), block.size())) {
    std::copy_n(zero_leaf_.data(), zero_leaf_.size(), out);
    return;
  }
  digest_->hash(block.data(), block.size(), out);
}

std::string Parameters::label() const {
  return digest_->name() + "/" + format_block_size(block_size_);
}

}  // namespace blkhash
