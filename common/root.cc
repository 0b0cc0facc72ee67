// Parameters and the outer hash.  See root.h.

#include "root.h"

#include <algorithm>
#include <array>
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

void Parameters::leaf(std::span<const uint8_t> block, uint8_t* out) const {
  if (block.size() == block_size_ && is_zero(block.data(), block.size())) {
    std::copy_n(zero_leaf_.data(), zero_leaf_.size(), out);
    return;
  }
  digest_->hash(block.data(), block.size(), out);
}

DigestValue Parameters::zero_leaf(uint32_t length) const {
  if (length == block_size_ && zero_leaf_.size() != 0) return zero_leaf_;
  std::vector<uint8_t> zeros(length);
  return digest_->hash(zeros);
}

std::string Parameters::label() const {
  return digest_->name() + "/" + format_block_size(block_size_);
}

RootBuilder::RootBuilder(const Parameters& parameters)
    : parameters_(parameters), outer_(parameters.digest().new_hasher()) {}

RootBuilder::RootBuilder(const Parameters& parameters,
                         std::unique_ptr<Hasher> outer)
    : parameters_(parameters), outer_(std::move(outer)) {}

RootBuilder RootBuilder::clone() const {
  return RootBuilder(parameters_, outer_->clone());
}

void RootBuilder::add_leaf(const uint8_t* leaf) {
  outer_->update(leaf, parameters_.digest_size());
}

void RootBuilder::add_leaves(const uint8_t* leaves, uint64_t count) {
  outer_->update(leaves, count * parameters_.digest_size());
}

void RootBuilder::add_zero_leaves(uint64_t count) {
  // Feed the outer hash in batches rather than one leaf at a time.
  constexpr size_t kBatch = 256;
  const size_t digest_size = parameters_.digest_size();
  std::vector<uint8_t> batch(kBatch * digest_size);
  for (size_t i = 0; i < kBatch; i++)
    std::copy_n(parameters_.zero_leaf().data(), digest_size,
                batch.data() + i * digest_size);
  while (count > 0) {
    uint64_t n = count < kBatch ? count : kBatch;
    outer_->update(batch.data(), n * digest_size);
    count -= n;
  }
}

DigestValue RootBuilder::finish(uint64_t image_length) {
  std::array<uint8_t, 8> le64;
  for (size_t i = 0; i < 8; i++)
    le64[i] = static_cast<uint8_t>(image_length >> (8 * i));
  outer_->update(le64.data(), le64.size());
  std::array<uint8_t, kMaxDigestSize> root;
  outer_->finish(root.data());
  return DigestValue({root.data(), parameters_.digest_size()});
}

}  // namespace blkhash
