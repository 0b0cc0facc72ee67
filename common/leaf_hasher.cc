// See leaf_hasher.h.

#include "leaf_hasher.h"

#include <cstring>

#include "zero.h"

namespace blkhash {

LeafHasher::Leaves::Leaves(size_t count, size_t digest_size)
    : digest_size_(digest_size), digests_(count * digest_size), zero_(count) {}

LeafHasher::LeafHasher(const Parameters& parameters, const BlockLayout& layout,
                       HashPool* pool)
    : parameters_(parameters),
      layout_(layout),
      digest_size_(parameters.digest_size()),
      pool_(pool),
      short_final_zero_leaf_(
          layout.block_count() > 0 &&
                  layout.is_short_final(layout.block_count() - 1)
              ? parameters.zero_leaf(
                    layout.block_length(layout.block_count() - 1))
              : DigestValue()) {}

const DigestValue& LeafHasher::zero_leaf(uint64_t block) const {
  return layout_.is_short_final(block) ? short_final_zero_leaf_
                                       : parameters_.zero_leaf();
}

void LeafHasher::hash_data(std::span<const uint8_t> bytes, uint8_t* leaf) {
  parameters_.digest().hash(bytes.data(), bytes.size(), leaf);
  bytes_hashed_ += bytes.size();
}

bool LeafHasher::hash_block(std::span<const uint8_t> bytes, uint8_t* leaf) {
  if (is_zero(bytes.data(), bytes.size())) return false;
  hash_data(bytes, leaf);
  return true;
}

void LeafHasher::hash_pair(std::span<const uint64_t> blocks,
                           const uint8_t* data, uint64_t first, size_t pair,
                           Leaves& out) {
  const size_t i = 2 * pair;
  const size_t j = i + 1 < blocks.size() ? i + 1 : i;  // j == i: odd one out
  auto bytes = [&](size_t k) {
    return std::span<const uint8_t>(
        data + (blocks[k] - first) * layout_.block_size(),
        layout_.block_length(blocks[k]));
  };
  const auto a = bytes(i);
  const auto b = bytes(j);
  out.zero_[i] = is_zero(a.data(), a.size());
  out.zero_[j] = is_zero(b.data(), b.size());
  uint8_t* leaf_a = out.digests_.data() + i * digest_size_;
  uint8_t* leaf_b = out.digests_.data() + j * digest_size_;
  if (j != i && !out.zero_[i] && !out.zero_[j] && a.size() == b.size()) {
    parameters_.digest().hash_pair(a.data(), b.data(), a.size(), leaf_a,
                                   leaf_b);
    bytes_hashed_ += 2 * uint64_t{a.size()};
    return;
  }
  if (!out.zero_[i]) hash_data(a, leaf_a);
  if (j != i && !out.zero_[j]) hash_data(b, leaf_b);
}

LeafHasher::Leaves LeafHasher::hash_blocks(std::span<const uint64_t> blocks,
                                           const uint8_t* data,
                                           uint64_t first) {
  Leaves out(blocks.size(), digest_size_);
  const size_t pairs = (blocks.size() + 1) / 2;
  auto task = [&](size_t pair) { hash_pair(blocks, data, first, pair, out); };
  // Handing work to another thread costs a wake-up (microseconds): worth
  // it for a large request (qemu-img's 2 MiB), not for a small one, whose
  // client has many more in flight on the other cores anyway (nbdcopy),
  // nor with a digest that hashes 2 MiB in about that time (xxh128:
  // qemu-img 0.93 of no filter with the pool, 0.99 without).
  const uint64_t bytes = uint64_t{blocks.size()} * layout_.block_size();
  if (pool_ && bytes >= kPoolMinBytes && !parameters_.digest().is_fast())
    pool_->parallel_for(pairs, task);
  else
    for (size_t p = 0; p < pairs; p++) task(p);
  return out;
}

void LeafHasher::add_leaves(RootBuilder& root, uint64_t first, unsigned n,
                            uint64_t data, const uint8_t* digests,
                            std::vector<uint8_t>& scratch) const {
  if ((data & low_bits(n)) == 0 && !layout_.is_short_final(first + n - 1)) {
    root.add_zero_leaves(n);
    return;
  }
  group_leaves(first, n, data, digests, scratch);
  root.add_leaves(scratch.data(), n);
}

void LeafHasher::group_leaves(uint64_t first, unsigned n, uint64_t data,
                              const uint8_t* digests,
                              std::vector<uint8_t>& out) const {
  out.resize(n * digest_size_);
  size_t slot = 0;
  for (unsigned bit = 0; bit < n; bit++) {
    const uint8_t* leaf = (data >> bit) & 1
                              ? digests + slot++ * digest_size_
                              : zero_leaf(first + bit).data();
    std::memcpy(out.data() + bit * digest_size_, leaf, digest_size_);
  }
}

}  // namespace blkhash
