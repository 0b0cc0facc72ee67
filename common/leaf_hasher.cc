// See leaf_hasher.h.

#include "leaf_hasher.h"

#include <algorithm>
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

void LeafHasher::hash_group(std::span<const uint64_t> blocks,
                            const uint8_t* data, uint64_t first, size_t begin,
                            size_t count, Leaves& out) {
  // The group's data blocks; only a short final block (the last) can
  // differ in length from the others.
  const uint8_t* msgs[kMaxLanes];
  uint8_t* leaves[kMaxLanes];
  size_t lengths[kMaxLanes];
  size_t n = 0;
  for (size_t i = begin; i < begin + count; i++) {
    const uint8_t* bytes = data + (blocks[i] - first) * layout_.block_size();
    const size_t length = layout_.block_length(blocks[i]);
    out.zero_[i] = is_zero(bytes, length);
    if (out.zero_[i]) continue;
    msgs[n] = bytes;
    lengths[n] = length;
    leaves[n] = out.digests_.data() + i * digest_size_;
    n++;
  }
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && lengths[j] == lengths[i]) j++;
    parameters_.digest().hash_many(msgs + i, j - i, lengths[i], leaves + i);
    bytes_hashed_ += (j - i) * uint64_t{lengths[i]};
    i = j;
  }
}

LeafHasher::Leaves LeafHasher::hash_blocks(std::span<const uint64_t> blocks,
                                           const uint8_t* data,
                                           uint64_t first) {
  Leaves out(blocks.size(), digest_size_);
  // Handing work to another thread costs a wake-up (microseconds): worth
  // it for a large request (qemu-img's 2 MiB), not for a small one, whose
  // client has many more in flight on the other cores anyway (nbdcopy),
  // nor with a digest that hashes 2 MiB in about that time (xxh128:
  // qemu-img 0.93 of no filter with the pool, 0.99 without).
  const uint64_t bytes = uint64_t{blocks.size()} * layout_.block_size();
  const bool parallel =
      pool_ && bytes >= kPoolMinBytes && !parameters_.digest().is_fast();
  size_t group = parameters_.digest().lanes();
  if (parallel) {
    // Threads before lanes: 4 lanes are ~1.1x 2 lanes, 2 threads ~2x.
    const size_t per_thread =
        (blocks.size() + pool_->threads() - 1) / pool_->threads();
    group = std::clamp<size_t>(per_thread, 1, group);
  }
  const size_t groups = (blocks.size() + group - 1) / group;
  auto task = [&](size_t g) {
    const size_t begin = g * group;
    hash_group(blocks, data, first, begin,
               std::min(group, blocks.size() - begin), out);
  };
  if (parallel)
    pool_->parallel_for(groups, task);
  else
    for (size_t g = 0; g < groups; g++) task(g);
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
