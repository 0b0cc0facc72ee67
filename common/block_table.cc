// See block_table.h for the states and the guarantees.
//
// Invariants (for every allocated group, under its stripe's lock):
// - group.data, group.zero and group.partial are disjoint; bits past the
//   last block of the image are never set.
// - group.digests holds exactly popcount(group.data) digests, in block
//   order (null when there are none).
// - group.partial has bit i set iff the stripe's `partials` has an entry
//   for block (group start + i); such an entry is never complete: a
//   partial block is hashed and turned into data or zero the moment its
//   last byte is known.
// - known_blocks_ is the number of data and zero bits over all groups.
// - memory_bytes_ equals the sum of what the table allocated: the object,
//   the segment directory, segments, digest arrays, partial blocks, and
//   kCheckpointBytes for prefix_ and each checkpoint.
// Folding (with fold_mutex_ held):
// - groups [0, folded_groups_) are folded: their leaves are in prefix_, in
//   order, and their Group, if its segment still exists, has empty masks
//   and no digests; known_blocks_ counts their blocks.  The fold front
//   only moves onto a group whose blocks are all data or zero.
// - a segment all of whose groups are folded is freed.
// - checkpoints_[s] is the outer hash over the leaves of segments [0, s),
//   for s <= folded_groups_ / kSegmentGroups; [0] always exists.

#include "block_table.h"

#include <algorithm>
#include <bit>
#include <cstring>


namespace blkhash {


BlockTable::BlockTable(const Parameters& parameters, uint64_t length,
                       HashPool* pool, Fold fold)
    : parameters_(parameters),
      layout_(parameters.block_size(), length),
      digest_size_(parameters.digest_size()),
      hasher_(parameters, layout_, pool),
      fold_(fold == Fold::kSettledPrefix),
      segments_(layout_.region_count()),
      owned_segments_(segments_.size()) {
  memory_bytes_ = sizeof(*this) + segments_.size() * (sizeof(segments_[0]) +
                                                      sizeof(owned_segments_[0]));
  if (fold_) {
    prefix_ = std::make_unique<RootBuilder>(parameters_);
    checkpoints_.emplace(0, std::make_unique<RootBuilder>(parameters_));
    memory_bytes_ += 2 * kCheckpointBytes;
  }
}

BlockTable::~BlockTable() = default;

BlockTable::Stripe& BlockTable::stripe_of(uint64_t group) const {
  return stripes_[group % kStripes];
}

bool BlockTable::is_folded(uint64_t group) const {
  return group < folded_groups_.load(std::memory_order_acquire);
}

bool BlockTable::group_known_locked(uint64_t group,
                                    const Group& group_state) const {
  const uint64_t all = low_bits(layout_.blocks_in_group(group));
  return ((group_state.data | group_state.zero) & all) == all;
}

BlockTable::Group* BlockTable::find_group(uint64_t group) const {
  Segment* segment =
      segments_[group / kSegmentGroups].load(std::memory_order_acquire);
  return segment ? &segment->groups[group % kSegmentGroups] : nullptr;
}

BlockTable::Group& BlockTable::get_group(uint64_t group) {
  auto& slot = segments_[group / kSegmentGroups];
  Segment* segment = slot.load(std::memory_order_acquire);
  if (!segment) {
    std::lock_guard lock(segment_alloc_mutex_);
    segment = slot.load(std::memory_order_acquire);
    if (!segment) {
      auto& owned = owned_segments_[group / kSegmentGroups];
      owned = std::make_unique<Segment>();
      segment = owned.get();
      memory_bytes_ += sizeof(Segment);
      slot.store(segment, std::memory_order_release);
    }
  }
  return segment->groups[group % kSegmentGroups];
}

// --- Updates of one group, stripe locked -------------------------------------

void BlockTable::erase_partial_locked(Stripe& stripe, uint64_t block) {
  auto it = stripe.partials.find(block);
  if (it == stripe.partials.end()) return;
  memory_bytes_ -= it->second->memory_bytes();
  stripe.partials.erase(it);
}

void BlockTable::update_group_locked(Stripe& stripe, uint64_t group_index,
                                     Group& group,
                                     const BlockUpdate& update) {
  const uint64_t touched = update.zero | update.unknown | update.data;
  const uint64_t first_block = group_index * kGroupBlocks;

  for (uint64_t bits = group.partial & touched; bits; bits &= bits - 1)
    erase_partial_locked(stripe, first_block + std::countr_zero(bits));
  group.partial &= ~touched;

  const uint64_t old_data = group.data;
  const uint64_t new_data = (old_data & ~touched) | update.data;
  if (new_data == old_data) {
    // Same blocks have digests: overwrite in place.
    for (uint64_t bits = update.data; bits; bits &= bits - 1) {
      unsigned bit = std::countr_zero(bits);
      std::memcpy(group.digests.get() + rank(old_data, bit) * digest_size_,
                  update.leaves[bit], digest_size_);
    }
  } else {
    const size_t new_count = std::popcount(new_data);
    std::unique_ptr<uint8_t[]> digests;
    if (new_count > 0)
      digests = std::make_unique_for_overwrite<uint8_t[]>(new_count *
                                                          digest_size_);
    size_t slot = 0;
    for (uint64_t bits = new_data; bits; bits &= bits - 1, slot++) {
      unsigned bit = std::countr_zero(bits);
      const uint8_t* source =
          (update.data >> bit) & 1
              ? update.leaves[bit]
              : group.digests.get() + rank(old_data, bit) * digest_size_;
      std::memcpy(digests.get() + slot * digest_size_, source, digest_size_);
    }
    memory_bytes_ += new_count * digest_size_;
    memory_bytes_ -= std::popcount(old_data) * digest_size_;
    group.digests = std::move(digests);
  }
  const int known_before = std::popcount(group.data | group.zero);
  group.data = new_data;
  group.zero = (group.zero & ~touched) | update.zero;
  const int known_after = std::popcount(group.data | group.zero);
  if (known_after > known_before) {
    uint64_t added = static_cast<uint64_t>(known_after - known_before);
    if (known_blocks_.fetch_add(added) + added == layout_.block_count()) completions_++;
  } else if (known_after < known_before) {
    known_blocks_ -= static_cast<uint64_t>(known_before - known_after);
  }
  if (fold_ && group_index == folded_groups_.load(std::memory_order_acquire) &&
      group_known_locked(group_index, group))
    fold_wanted_ = true;
}

void BlockTable::complete_partial_locked(Stripe& stripe, uint64_t group_index,
                                         Group& group, uint64_t block,
                                         const PartialBlock& partial) {
  std::array<uint8_t, kMaxDigestSize> leaf;
  BlockUpdate update;
  const uint64_t bit = block_bit(block);
  if (hasher_.hash_block(partial.bytes(), leaf.data())) {
    update.data = bit;
    update.leaves[block % kGroupBlocks] = leaf.data();
  } else {
    update.zero = bit;
  }
  // Erases `partial`: do not touch it after this.
  update_group_locked(stripe, group_index, group, update);
}

template <typename Change>
void BlockTable::change_partial_locked(PartialBlock& partial, Change change) {
  const size_t before = partial.memory_bytes();
  change(partial);
  memory_bytes_ += partial.memory_bytes();
  memory_bytes_ -= before;
}

// --- Folded groups ------------------------------------------------------------

std::unique_lock<std::mutex> BlockTable::lock_unfolded(uint64_t group,
                                                      Mode mode) {
  std::unique_lock lock(stripe_of(group).mutex);
  while (is_folded(group)) {
    lock.unlock();
    if (mode == Mode::kFill) break;  // folded blocks are known
    unfold(group);
    lock.lock();
  }
  return lock;
}

// --- Pieces of blocks ---------------------------------------------------------

void BlockTable::apply_piece(uint64_t block, uint32_t offset, uint32_t n,
                             const uint8_t* data, Mode mode) {
  const uint64_t group_index = block / kGroupBlocks;
  const uint64_t bit = uint64_t{1} << (block % kGroupBlocks);
  Stripe& stripe = stripe_of(group_index);
  auto lock = lock_unfolded(group_index, mode);
  if (!lock.owns_lock()) return;
  Group& group = get_group(group_index);

  PartialBlock* partial;
  if (group.partial & bit) {
    partial = stripe.partials.at(block).get();
    if (mode == Mode::kFill && !data && partial->seen())
      return;  // completed by reading, never from zero extents
  } else {
    if (mode == Mode::kFill && ((group.data | group.zero) & bit))
      return;  // already known: a read never overrides
    // A zero block keeps its zeros around the new piece; a data block has
    // only its digest, so the rest of its bytes become unknown.
    bool known_zero = (group.zero & bit) != 0;
    BlockUpdate unknown;
    unknown.unknown = bit;
    update_group_locked(stripe, group_index, group, unknown);
    auto created = std::make_unique<PartialBlock>(layout_.block_length(block),
                                                  known_zero);
    partial = created.get();
    memory_bytes_ += created->memory_bytes();
    stripe.partials.emplace(block, std::move(created));
    group.partial |= bit;
  }

  change_partial_locked(*partial, [&](PartialBlock& p) {
    if (mode == Mode::kPut)
      p.put(offset, n, data);
    else
      p.fill(offset, n, data);
  });

  if (partial->complete())
    complete_partial_locked(stripe, group_index, group, block, *partial);
}

void BlockTable::forget_piece(uint64_t block, uint32_t offset, uint32_t n) {
  const uint64_t group_index = block / kGroupBlocks;
  const uint64_t bit = uint64_t{1} << (block % kGroupBlocks);
  Stripe& stripe = stripe_of(group_index);
  auto lock = lock_unfolded(group_index, Mode::kPut);
  Group* group = find_group(group_index);
  if (!group) return;  // never touched: unknown already

  BlockUpdate unknown;
  unknown.unknown = bit;
  if (group->data & bit) {
    update_group_locked(stripe, group_index, *group, unknown);
  } else if (group->zero & bit) {
    auto partial = std::make_unique<PartialBlock>(layout_.block_length(block), true);
    partial->forget(offset, n);
    update_group_locked(stripe, group_index, *group, unknown);
    memory_bytes_ += partial->memory_bytes();
    stripe.partials.emplace(block, std::move(partial));
    group->partial |= bit;
  } else if (group->partial & bit) {
    PartialBlock& partial = *stripe.partials.at(block);
    change_partial_locked(partial,
                          [&](PartialBlock& p) { p.forget(offset, n); });
    if (partial.nothing_known())
      update_group_locked(stripe, group_index, *group, unknown);
  }
}

// --- Whole blocks --------------------------------------------------------------

void BlockTable::set_group_masks(uint64_t group_index, uint64_t zero,
                                 uint64_t unknown, Mode mode) {
  Stripe& stripe = stripe_of(group_index);
  auto lock = lock_unfolded(group_index, mode);
  if (!lock.owns_lock()) return;
  Group* group =
      zero ? &get_group(group_index) : find_group(group_index);
  if (!group) return;  // forgetting blocks never touched

  if (mode == Mode::kFill) {
    // Partial blocks that only zero extents filled get zeros where
    // unknown, which completes them; those a client wrote or read part of
    // are completed by reading, never from zero extents.
    const uint64_t first_block = group_index * kGroupBlocks;
    for (uint64_t bits = group->partial & zero; bits; bits &= bits - 1) {
      uint64_t block = first_block + std::countr_zero(bits);
      PartialBlock& partial = *stripe.partials.at(block);
      if (partial.seen()) continue;
      change_partial_locked(partial, [](PartialBlock& p) {
        p.fill(0, p.length(), nullptr);
      });
      complete_partial_locked(stripe, group_index, *group, block, partial);
    }
    zero &= ~(group->data | group->zero | group->partial);
  }
  BlockUpdate update;
  update.zero = zero;
  update.unknown = unknown;
  update_group_locked(stripe, group_index, *group, update);
}

void BlockTable::store_full_blocks(uint64_t first, uint64_t count,
                                   const uint8_t* data, Mode mode) {
  const uint64_t end = first + count;
  if (!data) {
    for (uint64_t g = first / kGroupBlocks; g * kGroupBlocks < end; g++) {
      const uint64_t group_first = g * kGroupBlocks;
      const auto from = static_cast<unsigned>(std::max(first, group_first) -
                                              group_first);
      const auto to = static_cast<unsigned>(
          std::min<uint64_t>(end, group_first + kGroupBlocks) - group_first);
      set_group_masks(g, bit_range(from, to), 0, mode);
    }
    return;
  }
  std::vector<uint64_t> blocks;
  if (mode == Mode::kPut) {
    blocks.resize(count);
    for (uint64_t i = 0; i < count; i++) blocks[i] = first + i;
  } else {
    blocks = blocks_to_fill(first, count, data);
  }
  if (blocks.empty()) return;
  // Hashed with no lock held.
  const LeafHasher::Leaves leaves = hasher_.hash_blocks(blocks, data, first);
  store_leaves(blocks, leaves, mode);
}

std::vector<uint64_t> BlockTable::blocks_to_fill(uint64_t first,
                                                 uint64_t count,
                                                 const uint8_t* data) {
  const uint64_t end = first + count;
  std::vector<uint64_t> blocks;
  blocks.reserve(count);
  for (uint64_t g = first / kGroupBlocks; g * kGroupBlocks < end; g++) {
    Stripe& stripe = stripe_of(g);
    auto lock = lock_unfolded(g, Mode::kFill);
    if (!lock.owns_lock()) continue;
    Group& group = get_group(g);
    const uint64_t to = std::min(end, (g + 1) * kGroupBlocks);
    for (uint64_t b = std::max(first, g * kGroupBlocks); b < to; b++) {
      const uint64_t bit = block_bit(b);
      if (group.partial & bit) {
        PartialBlock& partial = *stripe.partials.at(b);
        const uint8_t* bytes = data + (b - first) * layout_.block_size();
        change_partial_locked(partial, [&](PartialBlock& p) {
          p.fill(0, p.length(), bytes);
        });
        complete_partial_locked(stripe, g, group, b, partial);
      } else if (!((group.data | group.zero) & bit)) {
        blocks.push_back(b);
      }
    }
  }
  return blocks;
}

void BlockTable::store_leaves(std::span<const uint64_t> blocks,
                              const LeafHasher::Leaves& leaves, Mode mode) {
  size_t i = 0;
  while (i < blocks.size()) {
    const uint64_t g = blocks[i] / kGroupBlocks;
    size_t group_end = i;
    while (group_end < blocks.size() && blocks[group_end] / kGroupBlocks == g)
      group_end++;
    Stripe& stripe = stripe_of(g);
    auto lock = lock_unfolded(g, mode);
    if (!lock.owns_lock()) {  // a read of blocks folded since
      i = group_end;
      continue;
    }
    Group& group = get_group(g);
    BlockUpdate update;
    for (; i < group_end; i++) {
      const unsigned b = blocks[i] % kGroupBlocks;
      const uint64_t bit = uint64_t{1} << b;
      // A read stores only into blocks still unknown: a write may have
      // landed while we hashed.
      if (mode == Mode::kFill &&
          ((group.data | group.zero | group.partial) & bit))
        continue;
      if (leaves.is_zero(i)) {
        update.zero |= bit;
      } else {
        update.data |= bit;
        update.leaves[b] = leaves.leaf(i);
      }
    }
    update_group_locked(stripe, g, group, update);
  }
}

// --- Ranges ------------------------------------------------------------------

void BlockTable::apply(uint64_t offset, uint64_t length, const uint8_t* data,
                       Mode mode) {
  layout_.check_range(offset, length);
  if (length == 0) return;
  const uint64_t end = offset + length;
  const uint32_t block_size = parameters_.block_size();
  const uint64_t first = offset / block_size;
  const uint64_t last = (end - 1) / block_size;

  auto covered = [&](uint64_t block) {
    return offset <= layout_.block_offset(block) &&
           end >= layout_.block_offset(block) + layout_.block_length(block);
  };
  auto piece = [&](uint64_t block) {
    uint64_t lo = std::max(offset, layout_.block_offset(block));
    uint64_t hi = std::min(end, layout_.block_offset(block) + layout_.block_length(block));
    apply_piece(block, static_cast<uint32_t>(lo - layout_.block_offset(block)),
                static_cast<uint32_t>(hi - lo),
                data ? data + (lo - offset) : nullptr, mode);
  };

  if (!covered(first)) piece(first);
  if (last != first && !covered(last)) piece(last);
  uint64_t full_first = covered(first) ? first : first + 1;
  uint64_t full_end = covered(last) ? last + 1 : last;
  if (full_first < full_end)
    store_full_blocks(full_first, full_end - full_first,
                      data ? data + (layout_.block_offset(full_first) - offset)
                           : nullptr,
                      mode);
  fold_if_wanted();
}

void BlockTable::put_data(uint64_t offset, std::span<const uint8_t> data) {
  apply(offset, data.size(), data.data(), Mode::kPut);
}

void BlockTable::put_zero(uint64_t offset, uint64_t length) {
  apply(offset, length, nullptr, Mode::kPut);
}

void BlockTable::fill_data(uint64_t offset, std::span<const uint8_t> data) {
  apply(offset, data.size(), data.data(), Mode::kFill);
}

void BlockTable::fill_zero(uint64_t offset, uint64_t length) {
  apply(offset, length, nullptr, Mode::kFill);
}

void BlockTable::forget(uint64_t offset, uint64_t length) {
  layout_.check_range(offset, length);
  if (length == 0) return;
  const uint64_t end = offset + length;
  const uint32_t block_size = parameters_.block_size();
  const uint64_t first = offset / block_size;
  const uint64_t last = (end - 1) / block_size;

  for (uint64_t g = first / kGroupBlocks; g <= last / kGroupBlocks; g++) {
    uint64_t mask = 0;
    uint64_t from = std::max(first, g * kGroupBlocks);
    uint64_t to = std::min(last + 1, (g + 1) * kGroupBlocks);
    for (uint64_t b = from; b < to; b++) {
      uint64_t lo = std::max(offset, layout_.block_offset(b));
      uint64_t hi = std::min(end, layout_.block_offset(b) + layout_.block_length(b));
      if (lo == layout_.block_offset(b) && hi == layout_.block_offset(b) + layout_.block_length(b))
        mask |= uint64_t{1} << (b % kGroupBlocks);
      else
        forget_piece(b, static_cast<uint32_t>(lo - layout_.block_offset(b)),
                     static_cast<uint32_t>(hi - lo));
    }
    if (mask) set_group_masks(g, 0, mask, Mode::kPut);
  }
  fold_if_wanted();
}

// --- Folding -----------------------------------------------------------------

void BlockTable::add_group_leaves_locked(RootBuilder& root, uint64_t group,
                                         const Group& group_state,
                                         std::vector<uint8_t>& batch) const {
  hasher_.add_leaves(root, group * kGroupBlocks, layout_.blocks_in_group(group),
                     group_state.data, group_state.digests.get(), batch);
}

void BlockTable::fold_if_wanted() {
  // Whoever holds fold_mutex_ folds; a thread that finds it taken leaves
  // fold_wanted_ set, and the holder looks at it again after unlocking.
  while (fold_ && fold_wanted_.load()) {
    std::unique_lock lock(fold_mutex_, std::try_to_lock);
    if (!lock) return;
    fold_wanted_ = false;
    fold_locked();
  }
}

void BlockTable::fold_locked() {
  std::vector<uint8_t> batch;
  for (uint64_t g = folded_groups_.load(); g < layout_.group_count(); g++) {
    {
      Stripe& stripe = stripe_of(g);
      std::lock_guard lock(stripe.mutex);
      Group* group = find_group(g);
      if (!group || !group_known_locked(g, *group)) return;
      add_group_leaves_locked(*prefix_, g, *group, batch);
      // The blocks stay known, through folded_groups_ alone.
      memory_bytes_ -= std::popcount(group->data) * digest_size_;
      group->digests.reset();
      group->data = 0;
      group->zero = 0;
      folded_groups_.store(g + 1, std::memory_order_release);
    }
    if ((g + 1) % kSegmentGroups == 0)
      finish_segment_locked((g + 1) / kSegmentGroups);
  }
}

void BlockTable::finish_segment_locked(uint64_t next_segment) {
  const uint64_t segment = next_segment - 1;
  auto checkpoint = std::make_unique<RootBuilder>(prefix_->clone());
  {
    // No one holds a pointer into the segment: a Group is only reached
    // with its stripe locked after is_folded() said no, and folding each
    // of these groups took its stripe lock after any such holder.
    std::lock_guard alloc_lock(segment_alloc_mutex_);
    segments_[segment].store(nullptr, std::memory_order_release);
    if (owned_segments_[segment]) memory_bytes_ -= sizeof(Segment);
    owned_segments_[segment].reset();
  }
  if (next_segment < segments_.size()) {
    if (checkpoints_.insert_or_assign(next_segment, std::move(checkpoint))
            .second)
      memory_bytes_ += kCheckpointBytes;
    // Thin out: keep the latest few, and those of segments 2^k.
    if (next_segment >= kRecentCheckpoints) {
      const uint64_t old = next_segment - kRecentCheckpoints;
      if (old != 0 && !std::has_single_bit(old) && checkpoints_.erase(old))
        memory_bytes_ -= kCheckpointBytes;
    }
  }
}

void BlockTable::unfold(uint64_t group) {
  std::lock_guard fold_lock(fold_mutex_);
  const uint64_t front = folded_groups_.load();
  if (group >= front) return;  // unfolded by another thread meanwhile

  auto checkpoint = std::prev(checkpoints_.upper_bound(group / kSegmentGroups));
  const uint64_t restart = checkpoint->first * kSegmentGroups;
  prefix_ = std::make_unique<RootBuilder>(checkpoint->second->clone());
  for (auto later = std::next(checkpoint); later != checkpoints_.end();) {
    later = checkpoints_.erase(later);
    memory_bytes_ -= kCheckpointBytes;
  }
  // The groups' state is already "unknown": empty masks, or no segment.
  // No stripe lock is needed: while folded, no one changes these groups,
  // and a thread that saw one folded and now finds it unfolded only
  // loses a read's fill (a write retries).  known_blocks_ drops before
  // the front, so an update to an unfolded group counts after it.
  const uint64_t first_block = restart * kGroupBlocks;
  const uint64_t end_block = std::min(front * kGroupBlocks, layout_.block_count());
  known_blocks_ -= end_block - first_block;
  unfolded_bytes_ += layout_.block_offset(end_block - 1) + layout_.block_length(end_block - 1) -
                     layout_.block_offset(first_block);
  folded_groups_.store(restart, std::memory_order_release);
}

uint64_t BlockTable::folded_blocks() const {
  return std::min(folded_groups_.load() * kGroupBlocks, layout_.block_count());
}

// --- Queries -----------------------------------------------------------------

std::optional<DigestValue> BlockTable::root() const {
  // Holding fold_mutex_ keeps the fold front where it is.
  std::lock_guard fold_lock(fold_mutex_);
  RootBuilder root = fold_ ? prefix_->clone() : RootBuilder(parameters_);
  std::vector<uint8_t> batch;
  for (uint64_t g = folded_groups_.load(); g < layout_.group_count(); g++) {
    Stripe& stripe = stripe_of(g);
    std::lock_guard lock(stripe.mutex);
    const Group* group = find_group(g);
    if (!group || !group_known_locked(g, *group)) return std::nullopt;
    add_group_leaves_locked(root, g, *group, batch);
  }
  return root.finish(layout_.length());
}

std::vector<ByteRange> BlockTable::unknown_ranges(uint64_t start,
                                                  size_t max_ranges) const {
  std::vector<ByteRange> ranges;
  if (start >= layout_.length() || max_ranges == 0) return ranges;

  // Adds [offset, offset + n) clipped to [start, layout_.length()); false when
  // the list is full.
  auto add = [&](uint64_t offset, uint64_t n) {
    uint64_t end = std::min(offset + n, layout_.length());
    offset = std::max(offset, start);
    if (offset >= end) return true;
    if (!ranges.empty() && ranges.back().end() == offset) {
      ranges.back().length += end - offset;
      return true;
    }
    if (ranges.size() == max_ranges) return false;
    ranges.push_back({offset, end - offset});
    return true;
  };

  const uint64_t first_group =
      std::max(start / parameters_.block_size() / kGroupBlocks,
               folded_groups_.load());
  for (uint64_t g = first_group; g < layout_.group_count(); g++) {
    const uint64_t first_block = g * kGroupBlocks;
    const unsigned n = layout_.blocks_in_group(g);
    Stripe& stripe = stripe_of(g);
    std::lock_guard lock(stripe.mutex);
    if (is_folded(g)) continue;  // folded since we started
    const Group* group_state = find_group(g);
    if (!group_state && g % kSegmentGroups == 0) {
      // A whole untouched segment: one range, then skip past it.
      uint64_t segment_end_group = g + kSegmentGroups;
      uint64_t end_block = std::min(segment_end_group * kGroupBlocks,
                                    layout_.block_count());
      if (!add(layout_.block_offset(first_block),
               layout_.block_offset(end_block) - layout_.block_offset(first_block)))
        return ranges;
      g = segment_end_group - 1;
      continue;
    }
    if (!group_state) {
      if (!add(layout_.block_offset(first_block),
               layout_.block_offset(first_block + n - 1) +
                   layout_.block_length(first_block + n - 1) -
                   layout_.block_offset(first_block)))
        return ranges;
      continue;
    }
    const Group& group = *group_state;
    for (unsigned bit = 0; bit < n; bit++) {
      const uint64_t block = first_block + bit;
      if ((group.partial >> bit) & 1) {
        for (const ByteRange& gap : stripe.partials.at(block)->missing())
          if (!add(layout_.block_offset(block) + gap.offset, gap.length))
            return ranges;
      } else if (!(((group.data | group.zero) >> bit) & 1)) {
        if (!add(layout_.block_offset(block), layout_.block_length(block))) return ranges;
      }
    }
  }
  return ranges;
}

uint64_t BlockTable::unknown_bytes() const {
  uint64_t total = 0;
  for (const ByteRange& range : unknown_ranges()) total += range.length;
  return total;
}

BlockTable::Counts BlockTable::counts() const {
  Counts counts;
  for (uint64_t g = 0; g < layout_.group_count(); g++) {
    const unsigned n = layout_.blocks_in_group(g);
    Stripe& stripe = stripe_of(g);
    std::lock_guard lock(stripe.mutex);
    if (is_folded(g)) {
      counts.folded += n;
      continue;
    }
    const Group* group = find_group(g);
    if (!group) {
      counts.unknown += n;
      continue;
    }
    counts.data += std::popcount(group->data);
    counts.zero += std::popcount(group->zero);
    counts.partial += std::popcount(group->partial);
    counts.unknown += n - std::popcount(group->data | group->zero |
                                        group->partial);
  }
  return counts;
}

}  // namespace blkhash
