// See folded_prefix.h.
//
// Invariants (with mutex_ held):
// - groups [0, front_) are folded: their leaves are in prefix_, in order,
//   and their Group, if its region still exists, is released (empty
//   masks, no digests); the store counts their blocks as known.  The
//   front only moves onto a group whose blocks are all data or zero.
// - a region all of whose groups are folded is freed.
// - checkpoints_[r] is the outer hash over the leaves of regions [0, r),
//   for r <= front_ / kRegionGroups; [0] always exists.
// - memory_bytes_ is kCheckpointBytes for prefix_ and for each checkpoint.

#include "folded_prefix.h"

#include <algorithm>
#include <bit>
#include <vector>

namespace blkhash {

FoldedPrefix::FoldedPrefix(const Parameters& parameters,
                           const BlockLayout& layout, GroupStore& store,
                           const LeafHasher& hasher, bool enabled)
    : parameters_(parameters),
      layout_(layout),
      store_(store),
      hasher_(hasher),
      enabled_(enabled) {
  if (enabled_) {
    prefix_ = std::make_unique<RootBuilder>(parameters_);
    checkpoints_.emplace(0, std::make_unique<RootBuilder>(parameters_));
    memory_bytes_ = 2 * kCheckpointBytes;
  }
}

void FoldedPrefix::note_change_locked(uint64_t g, const Group& group) {
  if (enabled_ && g == front() && store_.known_locked(g, group))
    wanted_ = true;
}

void FoldedPrefix::add_leaves_locked(RootBuilder& root, uint64_t g,
                                     const Group& group,
                                     std::vector<uint8_t>& scratch) const {
  hasher_.add_leaves(root, g * BlockLayout::kGroupBlocks,
                     layout_.blocks_in_group(g), group.data,
                     group.digests.get(), scratch);
}

void FoldedPrefix::fold_if_wanted() {
  // Whoever holds mutex_ folds; a thread that finds it taken leaves
  // wanted_ set, and the holder looks at it again after unlocking.
  while (enabled_ && wanted_.load()) {
    if (!mutex_.try_lock()) return;
    MutexLock lock(mutex_, std::adopt_lock);
    wanted_ = false;
    fold_locked();
  }
}

void FoldedPrefix::fold_locked() {
  std::vector<uint8_t> scratch;
  for (uint64_t g = front_.load(); g < layout_.group_count(); g++) {
    {
      GroupStore::Stripe& stripe = store_.stripe_of(g);
      MutexLock lock(stripe.mutex);
      Group* group = store_.find(stripe, g);
      if (!group || !store_.known_locked(g, *group)) return;
      add_leaves_locked(*prefix_, g, *group, scratch);
      // The blocks stay known, through front_ alone.
      store_.release_locked(*group);
      front_.store(g + 1, std::memory_order_release);
    }
    if ((g + 1) % BlockLayout::kRegionGroups == 0)
      finish_region_locked(g / BlockLayout::kRegionGroups);
  }
}

void FoldedPrefix::finish_region_locked(uint64_t r) {
  auto checkpoint = std::make_unique<RootBuilder>(prefix_->clone());
  // No one holds a pointer into the region: a Group is only reached with
  // its stripe locked after is_folded() said no, and folding each of
  // these groups took its stripe lock after any such holder.
  store_.free_region(r);
  const uint64_t next = r + 1;
  if (next >= layout_.region_count()) return;
  if (checkpoints_.insert_or_assign(next, std::move(checkpoint)).second)
    memory_bytes_ += kCheckpointBytes;
  // Thin out: keep the latest few, and those of regions 2^k.
  if (next >= kRecentCheckpoints) {
    const uint64_t old = next - kRecentCheckpoints;
    if (old != 0 && !std::has_single_bit(old) && checkpoints_.erase(old))
      memory_bytes_ -= kCheckpointBytes;
  }
}

void FoldedPrefix::unfold(uint64_t g) {
  MutexLock lock(mutex_);
  const uint64_t front = front_.load();
  if (g >= front) return;  // unfolded by another thread meanwhile

  auto checkpoint =
      std::prev(checkpoints_.upper_bound(g / BlockLayout::kRegionGroups));
  const uint64_t restart = checkpoint->first * BlockLayout::kRegionGroups;
  prefix_ = std::make_unique<RootBuilder>(checkpoint->second->clone());
  for (auto later = std::next(checkpoint); later != checkpoints_.end();) {
    later = checkpoints_.erase(later);
    memory_bytes_ -= kCheckpointBytes;
  }
  // The groups' state is already "unknown": empty masks, or no region.
  // No stripe lock is needed: while folded, no one changes these groups,
  // and a thread that saw one folded and now finds it unfolded only
  // loses a read's fill (a write retries).  The known count drops before
  // the front, so an update to an unfolded group counts after it.
  const uint64_t first_block = restart * BlockLayout::kGroupBlocks;
  const uint64_t end_block =
      std::min(front * BlockLayout::kGroupBlocks, layout_.block_count());
  store_.unknown_again(end_block - first_block);
  unfolded_bytes_ +=
      layout_.block_end(end_block - 1) - layout_.block_offset(first_block);
  front_.store(restart, std::memory_order_release);
}

std::optional<DigestValue> FoldedPrefix::root() const {
  // Holding mutex_ keeps the front where it is.
  MutexLock fold_lock(mutex_);
  RootBuilder root = enabled_ ? prefix_->clone() : RootBuilder(parameters_);
  std::vector<uint8_t> scratch;
  for (uint64_t g = front_.load(); g < layout_.group_count(); g++) {
    GroupStore::Stripe& stripe = store_.stripe_of(g);
    MutexLock lock(stripe.mutex);
    const Group* group = store_.find(stripe, g);
    if (!group || !store_.known_locked(g, *group)) return std::nullopt;
    add_leaves_locked(root, g, *group, scratch);
  }
  return root.finish(layout_.length());
}

}  // namespace blkhash
