// The outer hash.  See root.h.

#include "root.h"

#include <algorithm>
#include <array>
#include <vector>

namespace blkhash {

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
