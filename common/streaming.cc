// See streaming.h.
//
// Invariant: pending_.size() < block size between calls, and
// length_ % block size == pending_.size().

#include "streaming.h"

#include <algorithm>

namespace blkhash {

StreamingBlkhash::StreamingBlkhash(const Parameters& parameters)
    : parameters_(parameters), root_(parameters) {
  pending_.reserve(parameters.block_size());
}

void StreamingBlkhash::add_leaf_of(std::span<const uint8_t> block) {
  std::array<uint8_t, kMaxDigestSize> leaf;
  parameters_.leaf(block, leaf.data());
  root_.add_leaf(leaf.data());
}

void StreamingBlkhash::update(std::span<const uint8_t> data) {
  const size_t block_size = parameters_.block_size();
  length_ += data.size();

  if (!pending_.empty()) {
    size_t n = std::min(block_size - pending_.size(), data.size());
    pending_.insert(pending_.end(), data.begin(), data.begin() + n);
    data = data.subspan(n);
    if (pending_.size() < block_size) return;
    add_leaf_of(pending_);
    pending_.clear();
  }
  while (data.size() >= block_size) {
    add_leaf_of(data.first(block_size));
    data = data.subspan(block_size);
  }
  pending_.assign(data.begin(), data.end());
}

void StreamingBlkhash::zero(uint64_t length) {
  const size_t block_size = parameters_.block_size();
  length_ += length;

  if (!pending_.empty()) {
    size_t n = std::min<uint64_t>(block_size - pending_.size(), length);
    pending_.insert(pending_.end(), n, 0);
    length -= n;
    if (pending_.size() < block_size) return;
    add_leaf_of(pending_);
    pending_.clear();
  }
  root_.add_zero_leaves(length / block_size);
  pending_.assign(length % block_size, 0);
}

DigestValue StreamingBlkhash::final() {
  if (!pending_.empty()) {
    add_leaf_of(pending_);  // the short final block, at its real length
    pending_.clear();
  }
  return root_.finish(length_);
}

}  // namespace blkhash
