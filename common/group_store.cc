// See group_store.h.
//
// Invariants (for every allocated group, under its stripe's lock):
// - group.data, group.zero and group.partial are disjoint; bits past the
//   last block of the image are never set.
// - group.digests holds exactly popcount(group.data) digests, in block
//   order (null when there are none).
// - group.partial has bit i set iff the stripe's `partials` has an entry
//   for block (64g + i).  The block table keeps such an entry incomplete:
//   it hashes a partial block the moment its last byte is known.
// - known_blocks_ is the number of data and zero bits over all groups,
//   plus the blocks of folded groups (released, with empty masks).
// - memory_bytes_ equals the heap bytes allocated here: the directory,
//   regions, digest arrays and partial blocks.

#include "group_store.h"

#include <bit>
#include <cassert>
#include <cstring>

namespace blkhash {

GroupStore::GroupStore(const BlockLayout& layout, size_t digest_size)
    : layout_(layout),
      digest_size_(digest_size),
      regions_(layout.region_count()),
      owned_regions_(regions_.size()) {
  memory_bytes_ = regions_.size() *
                  (sizeof(regions_[0]) + sizeof(owned_regions_[0]));
}

Group* GroupStore::find(const Stripe& stripe, uint64_t g) const {
  assert(&stripe == &stripe_of(g));
  Region* region = regions_[g / BlockLayout::kRegionGroups].load(
      std::memory_order_acquire);
  return region ? &region->groups[g % BlockLayout::kRegionGroups] : nullptr;
}

Group& GroupStore::get(Stripe& stripe, uint64_t g) {
  assert(&stripe == &stripe_of(g));
  const uint64_t r = g / BlockLayout::kRegionGroups;
  Region* region = regions_[r].load(std::memory_order_acquire);
  if (!region) {
    MutexLock lock(region_alloc_mutex_);
    region = regions_[r].load(std::memory_order_acquire);
    if (!region) {
      owned_regions_[r] = std::make_unique<Region>();
      region = owned_regions_[r].get();
      memory_bytes_ += sizeof(Region);
      regions_[r].store(region, std::memory_order_release);
    }
  }
  return region->groups[g % BlockLayout::kRegionGroups];
}

bool GroupStore::known_locked(uint64_t g, const Group& group) const {
  const uint64_t all = low_bits(layout_.blocks_in_group(g));
  return ((group.data | group.zero) & all) == all;
}

void GroupStore::erase_partial_locked(Stripe& stripe, uint64_t block) {
  auto it = stripe.partials.find(block);
  if (it == stripe.partials.end()) return;
  memory_bytes_ -= it->second->memory_bytes();
  stripe.partials.erase(it);
}

void GroupStore::store_digests_locked(Group& group, uint64_t new_data,
                                      const BlockUpdate& update) {
  const uint64_t old_data = group.data;
  auto old_digest = [&](unsigned bit) {
    return group.digests.get() + rank(old_data, bit) * digest_size_;
  };
  if (new_data == old_data) {
    // Same blocks have digests: overwrite in place.
    for (uint64_t bits = update.data; bits; bits &= bits - 1) {
      const unsigned bit = std::countr_zero(bits);
      std::memcpy(old_digest(bit), update.leaves[bit], digest_size_);
    }
    return;
  }
  const size_t new_count = std::popcount(new_data);
  std::unique_ptr<uint8_t[]> digests;
  if (new_count > 0)
    digests =
        std::make_unique_for_overwrite<uint8_t[]>(new_count * digest_size_);
  size_t slot = 0;
  for (uint64_t bits = new_data; bits; bits &= bits - 1, slot++) {
    const unsigned bit = std::countr_zero(bits);
    const uint8_t* source =
        (update.data >> bit) & 1 ? update.leaves[bit] : old_digest(bit);
    std::memcpy(digests.get() + slot * digest_size_, source, digest_size_);
  }
  memory_bytes_ += new_count * digest_size_;
  memory_bytes_ -= std::popcount(old_data) * digest_size_;
  group.digests = std::move(digests);
}

void GroupStore::count_known(int before, int after) {
  if (after > before) {
    const auto added = static_cast<uint64_t>(after - before);
    if (known_blocks_.fetch_add(added) + added == layout_.block_count())
      completions_++;
  } else if (after < before) {
    known_blocks_ -= static_cast<uint64_t>(before - after);
  }
}

void GroupStore::update_locked(Stripe& stripe, uint64_t g, Group& group,
                               const BlockUpdate& update) {
  const uint64_t touched = update.zero | update.unknown | update.data;
  const uint64_t first_block = g * BlockLayout::kGroupBlocks;
  for (uint64_t bits = group.partial & touched; bits; bits &= bits - 1)
    erase_partial_locked(stripe, first_block + std::countr_zero(bits));
  group.partial &= ~touched;

  const uint64_t new_data = (group.data & ~touched) | update.data;
  store_digests_locked(group, new_data, update);
  const int known_before = std::popcount(group.data | group.zero);
  group.data = new_data;
  group.zero = (group.zero & ~touched) | update.zero;
  count_known(known_before, std::popcount(group.data | group.zero));
}

PartialBlock& GroupStore::partial_locked(Stripe& stripe,
                                         uint64_t block) const {
  return *stripe.partials.at(block);
}

PartialBlock& GroupStore::make_partial_locked(Stripe& stripe, uint64_t g,
                                              Group& group, uint64_t block,
                                              bool known_zero) {
  BlockUpdate unknown;
  unknown.unknown = block_bit(block);
  update_locked(stripe, g, group, unknown);
  auto created =
      std::make_unique<PartialBlock>(layout_.block_length(block), known_zero);
  PartialBlock& partial = *created;
  memory_bytes_ += created->memory_bytes();
  stripe.partials.emplace(block, std::move(created));
  group.partial |= block_bit(block);
  return partial;
}

void GroupStore::release_locked(Group& group) {
  memory_bytes_ -= std::popcount(group.data) * digest_size_;
  group.digests.reset();
  group.data = 0;
  group.zero = 0;
}

void GroupStore::free_region(uint64_t r) {
  MutexLock lock(region_alloc_mutex_);
  regions_[r].store(nullptr, std::memory_order_release);
  if (owned_regions_[r]) memory_bytes_ -= sizeof(Region);
  owned_regions_[r].reset();
}

}  // namespace blkhash
