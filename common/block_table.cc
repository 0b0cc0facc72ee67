// BlockTable's recording: see block_table.h for the states and the
// guarantees, block_table_queries.cc for what is read back out.
//
// The table routes; the rooms it routes to keep the state and its
// invariants: GroupStore (group_store.cc) the masks, digests and partial
// blocks, FoldedPrefix (folded_prefix.cc) the fold, LeafHasher the leaves.
// What is decided here:
// - a write replaces what was known of the blocks it touches; a piece of
//   a zero block keeps the zeros around it, a piece of a data block makes
//   the rest of that block unknown (only its digest is left);
// - an observation (a read or a zero extent) sets only unknown bytes, and
//   a zero extent never completes a block a client wrote or read part of;
// - a partial block is hashed the moment its last byte is known;
// - every change to a group is recorded with its stripe locked, after
//   may_record_locked(): a write into a folded group unfolds it first, an
//   observation of one is dropped.

#include "block_table.h"

#include <algorithm>
#include <bit>

namespace blkhash {

BlockTable::BlockTable(const Parameters& parameters, uint64_t length,
                       HashPool* pool, Fold fold, LeafObserver* observer)
    : parameters_(parameters),
      layout_(parameters.block_size(), length),
      hasher_(parameters, layout_, pool),
      store_(layout_, parameters.digest_size()),
      folded_(parameters, layout_, store_, hasher_,
              fold == Fold::kSettledPrefix),
      observer_(observer) {}

size_t BlockTable::memory_bytes() const {
  return sizeof(*this) + store_.memory_bytes() + folded_.memory_bytes();
}

uint64_t BlockTable::folded_blocks() const {
  return std::min(folded_.front() * kGroupBlocks, layout_.block_count());
}

// --- Recording a change to a group --------------------------------------------

bool BlockTable::may_record_locked(uint64_t g, Source source,
                                   Stripe& stripe) {
  while (folded_.is_folded(g)) {
    if (source == Source::kObserved) return false;  // folded blocks are known
    stripe.mutex.unlock();
    folded_.unfold(g);
    stripe.mutex.lock();
  }
  return true;
}

void BlockTable::update_locked(Stripe& stripe, uint64_t g, Group& group,
                               const BlockUpdate& update) {
  store_.update_locked(stripe, g, group, update);
  folded_.note_change_locked(g, group);
  if (!observer_) return;
  const uint64_t first_block = g * kGroupBlocks;
  for (uint64_t bits = update.data | update.zero; bits; bits &= bits - 1) {
    const unsigned b = static_cast<unsigned>(std::countr_zero(bits));
    observer_->leaf_known(first_block + b,
                          (update.data >> b) & 1
                              ? update.leaves[b]
                              : hasher_.zero_leaf(first_block + b).data());
  }
}

void BlockTable::complete_partial_locked(Stripe& stripe, uint64_t g,
                                         Group& group, uint64_t block,
                                         const PartialBlock& partial) {
  std::array<uint8_t, kMaxDigestSize> leaf;
  BlockUpdate update;
  if (hasher_.hash_block(partial.bytes(), leaf.data())) {
    update.data = block_bit(block);
    update.leaves[block % kGroupBlocks] = leaf.data();
  } else {
    update.zero = block_bit(block);
  }
  // Erases `partial`: do not touch it after this.
  update_locked(stripe, g, group, update);
}

// --- Ranges ------------------------------------------------------------------

template <typename Piece, typename Whole>
void BlockTable::split(uint64_t offset, uint64_t length, Piece piece,
                       Whole whole) const {
  layout_.check_range(offset, length);
  if (length == 0) return;
  const uint64_t end = offset + length;
  const uint64_t first = offset / layout_.block_size();
  const uint64_t last = (end - 1) / layout_.block_size();
  auto covered = [&](uint64_t block) {
    return offset <= layout_.block_offset(block) &&
           end >= layout_.block_end(block);
  };
  auto piece_of = [&](uint64_t block) {
    const uint64_t lo = std::max(offset, layout_.block_offset(block));
    const uint64_t hi = std::min(end, layout_.block_end(block));
    piece(block, static_cast<uint32_t>(lo - layout_.block_offset(block)),
          static_cast<uint32_t>(hi - lo), lo - offset);
  };
  if (!covered(first)) piece_of(first);
  if (last != first && !covered(last)) piece_of(last);
  const uint64_t whole_first = covered(first) ? first : first + 1;
  const uint64_t whole_end = covered(last) ? last + 1 : last;
  if (whole_first < whole_end)
    whole(whole_first, whole_end - whole_first,
          layout_.block_offset(whole_first) - offset);
}

template <typename Fn>
void BlockTable::for_each_group(uint64_t first, uint64_t count, Fn fn) {
  const uint64_t end = first + count;
  for (uint64_t g = first / kGroupBlocks; g * kGroupBlocks < end; g++) {
    const uint64_t group_first = g * kGroupBlocks;
    const auto from =
        static_cast<unsigned>(std::max(first, group_first) - group_first);
    const auto to = static_cast<unsigned>(
        std::min<uint64_t>(end, group_first + kGroupBlocks) - group_first);
    fn(g, bit_range(from, to));
  }
}

void BlockTable::record(uint64_t offset, uint64_t length,
                        const uint8_t* data, Source source) {
  auto at = [&](uint64_t position) {
    return data ? data + position : nullptr;
  };
  split(
      offset, length,
      [&](uint64_t block, uint32_t in_block, uint32_t n, uint64_t position) {
        apply_piece(block, in_block, n, at(position), source);
      },
      [&](uint64_t first, uint64_t count, uint64_t position) {
        store_full_blocks(first, count, at(position), source);
      });
  folded_.fold_if_wanted();
}

void BlockTable::forget(uint64_t offset, uint64_t length) {
  split(
      offset, length,
      [&](uint64_t block, uint32_t in_block, uint32_t n, uint64_t) {
        forget_piece(block, in_block, n);
      },
      [&](uint64_t first, uint64_t count, uint64_t) {
        for_each_group(first, count, [&](uint64_t g, uint64_t mask) {
          set_group_masks(g, 0, mask, Source::kWrite);
        });
      });
  folded_.fold_if_wanted();
}

// --- Pieces of blocks ---------------------------------------------------------

void BlockTable::apply_piece(uint64_t block, uint32_t offset, uint32_t n,
                             const uint8_t* data, Source source) {
  const uint64_t g = block / kGroupBlocks;
  const uint64_t bit = block_bit(block);
  Stripe& stripe = store_.stripe_of(g);
  MutexLock lock(stripe.mutex);
  if (!may_record_locked(g, source, stripe)) return;
  Group& group = store_.get(stripe, g);

  PartialBlock* partial;
  if (group.partial & bit) {
    partial = &store_.partial_locked(stripe, block);
    if (source == Source::kObserved && !data && partial->seen())
      return;  // completed by reading, never from zero extents
  } else {
    if (source == Source::kObserved && ((group.data | group.zero) & bit))
      return;  // already known: an observation never overrides
    // A zero block keeps its zeros around the new piece; a data block has
    // only its digest, so the rest of its bytes become unknown.
    const bool known_zero = (group.zero & bit) != 0;
    partial = &store_.make_partial_locked(stripe, g, group, block, known_zero);
  }
  store_.change_partial_locked(*partial, [&](PartialBlock& p) {
    if (source == Source::kWrite)
      p.put(offset, n, data);
    else
      p.fill(offset, n, data);
  });
  if (partial->complete())
    complete_partial_locked(stripe, g, group, block, *partial);
}

void BlockTable::forget_piece(uint64_t block, uint32_t offset, uint32_t n) {
  const uint64_t g = block / kGroupBlocks;
  const uint64_t bit = block_bit(block);
  Stripe& stripe = store_.stripe_of(g);
  MutexLock lock(stripe.mutex);
  may_record_locked(g, Source::kWrite, stripe);  // always true
  Group* group = store_.find(stripe, g);
  if (!group) return;  // never touched: unknown already

  BlockUpdate unknown;
  unknown.unknown = bit;
  if (group->data & bit) {
    update_locked(stripe, g, *group, unknown);
  } else if (group->zero & bit) {
    PartialBlock& partial =
        store_.make_partial_locked(stripe, g, *group, block, true);
    store_.change_partial_locked(partial,
                                 [&](PartialBlock& p) { p.forget(offset, n); });
  } else if (group->partial & bit) {
    PartialBlock& partial = store_.partial_locked(stripe, block);
    store_.change_partial_locked(partial,
                                 [&](PartialBlock& p) { p.forget(offset, n); });
    if (partial.nothing_known()) update_locked(stripe, g, *group, unknown);
  }
}

// --- Whole blocks --------------------------------------------------------------

void BlockTable::set_group_masks(uint64_t g, uint64_t zero, uint64_t unknown,
                                 Source source) {
  Stripe& stripe = store_.stripe_of(g);
  MutexLock lock(stripe.mutex);
  if (!may_record_locked(g, source, stripe)) return;
  Group* group = zero ? &store_.get(stripe, g) : store_.find(stripe, g);
  if (!group) return;  // forgetting blocks never touched

  if (source == Source::kObserved) {
    fill_zero_partials_locked(stripe, g, *group, zero);
    zero &= ~(group->data | group->zero | group->partial);
  }
  BlockUpdate update;
  update.zero = zero;
  update.unknown = unknown;
  update_locked(stripe, g, *group, update);
}

void BlockTable::fill_zero_partials_locked(Stripe& stripe, uint64_t g,
                                           Group& group, uint64_t zero) {
  // Partial blocks that only zero extents filled get zeros where unknown,
  // which completes them; those a client wrote or read part of are
  // completed by reading, never from zero extents.
  const uint64_t first_block = g * kGroupBlocks;
  for (uint64_t bits = group.partial & zero; bits; bits &= bits - 1) {
    const uint64_t block = first_block + std::countr_zero(bits);
    PartialBlock& partial = store_.partial_locked(stripe, block);
    if (partial.seen()) continue;
    store_.change_partial_locked(
        partial, [](PartialBlock& p) { p.fill(0, p.length(), nullptr); });
    complete_partial_locked(stripe, g, group, block, partial);
  }
}

void BlockTable::store_full_blocks(uint64_t first, uint64_t count,
                                   const uint8_t* data, Source source) {
  if (!data) {
    for_each_group(first, count, [&](uint64_t g, uint64_t mask) {
      set_group_masks(g, mask, 0, source);
    });
    return;
  }
  std::vector<uint64_t> blocks;
  if (source == Source::kWrite) {
    blocks.resize(count);
    for (uint64_t i = 0; i < count; i++) blocks[i] = first + i;
  } else {
    blocks = blocks_to_fill(first, count, data);
  }
  if (blocks.empty()) return;
  // Hashed with no lock held.
  const LeafHasher::Leaves leaves = hasher_.hash_blocks(blocks, data, first);
  store_leaves(blocks, leaves, source);
}

std::vector<uint64_t> BlockTable::blocks_to_fill(uint64_t first,
                                                 uint64_t count,
                                                 const uint8_t* data) {
  std::vector<uint64_t> blocks;
  blocks.reserve(count);
  for_each_group(first, count, [&](uint64_t g, uint64_t mask) {
    Stripe& stripe = store_.stripe_of(g);
    MutexLock lock(stripe.mutex);
    if (!may_record_locked(g, Source::kObserved, stripe)) return;
    Group& group = store_.get(stripe, g);
    for (uint64_t bits = mask; bits; bits &= bits - 1) {
      const uint64_t b = g * kGroupBlocks + std::countr_zero(bits);
      const uint64_t bit = block_bit(b);
      if (group.partial & bit) {
        PartialBlock& partial = store_.partial_locked(stripe, b);
        const uint8_t* bytes = data + (b - first) * layout_.block_size();
        store_.change_partial_locked(partial, [&](PartialBlock& p) {
          p.fill(0, p.length(), bytes);
        });
        complete_partial_locked(stripe, g, group, b, partial);
      } else if (!((group.data | group.zero) & bit)) {
        blocks.push_back(b);
      }
    }
  });
  return blocks;
}

void BlockTable::store_leaves(std::span<const uint64_t> blocks,
                              const LeafHasher::Leaves& leaves,
                              Source source) {
  size_t i = 0;
  while (i < blocks.size()) {
    const uint64_t g = blocks[i] / kGroupBlocks;
    size_t group_end = i;
    while (group_end < blocks.size() && blocks[group_end] / kGroupBlocks == g)
      group_end++;
    Stripe& stripe = store_.stripe_of(g);
    MutexLock lock(stripe.mutex);
    if (!may_record_locked(g, source, stripe)) {
      i = group_end;  // an observation of blocks folded since
      continue;
    }
    Group& group = store_.get(stripe, g);
    BlockUpdate update;
    for (; i < group_end; i++) {
      const unsigned b = blocks[i] % kGroupBlocks;
      const uint64_t bit = uint64_t{1} << b;
      // An observation stores only into blocks still unknown: a write may
      // have landed while we hashed.
      if (source == Source::kObserved &&
          ((group.data | group.zero | group.partial) & bit))
        continue;
      if (leaves.is_zero(i)) {
        update.zero |= bit;
      } else {
        update.data |= bit;
        update.leaves[b] = leaves.leaf(i);
      }
    }
    update_locked(stripe, g, group, update);
  }
}

}  // namespace blkhash
