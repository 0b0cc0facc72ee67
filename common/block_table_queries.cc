// BlockTable's queries: what the table knows, read without changing it
// (block_table.h has the contract; block_table.cc the recording).
//
// Each query walks the groups in order and holds one stripe at a time, so
// it runs beside the requests.  Its answer is a snapshot group by group,
// not of the whole table at one instant: a group recorded after the walk
// passed it is not in the answer.  That is what every caller wants:
// - unknown_ranges(): the filter reads what is missing, and anything that
//   becomes known meanwhile only makes the read unnecessary, never wrong;
// - map(): asked at a report, and it also returns the root of the leaves
//   it saw, so the caller can tell a table that changed meanwhile;
// - counts(): statistics for the report and the tests.
// Folded groups are known and have no leaves any more: unknown_ranges()
// starts at the fold front, and map() has nothing to give once anything
// is folded.

#include <algorithm>
#include <bit>

#include "block_map.h"
#include "block_table.h"

namespace blkhash {

bool BlockTable::add_unknown_locked(Stripe& stripe, uint64_t g,
                                    const Group* group,
                                    ByteRangeList& list) const {
  const uint64_t first_block = g * kGroupBlocks;
  const unsigned n = layout_.blocks_in_group(g);
  if (!group)
    return list.add(layout_.block_offset(first_block),
                    layout_.block_end(first_block + n - 1) -
                        layout_.block_offset(first_block));
  for (unsigned bit = 0; bit < n; bit++) {
    const uint64_t block = first_block + bit;
    const uint64_t start = layout_.block_offset(block);
    if ((group->partial >> bit) & 1) {
      for (const ByteRange& gap : store_.partial_locked(stripe, block).missing())
        if (!list.add(start + gap.offset, gap.length)) return false;
    } else if (!(((group->data | group->zero) >> bit) & 1)) {
      if (!list.add(start, layout_.block_length(block))) return false;
    }
  }
  return true;
}

std::vector<ByteRange> BlockTable::unknown_ranges(uint64_t start,
                                                  size_t max_ranges) const {
  if (start >= layout_.length() || max_ranges == 0) return {};
  ByteRangeList list(start, layout_.length(), max_ranges);
  const uint64_t first_group = std::max(
      start / layout_.block_size() / kGroupBlocks, folded_.front());
  for (uint64_t g = first_group; g < layout_.group_count(); g++) {
    Stripe& stripe = store_.stripe_of(g);
    MutexLock lock(stripe.mutex);
    if (folded_.is_folded(g)) continue;  // folded since we started
    const Group* group = store_.find(stripe, g);
    if (!group && g % BlockLayout::kRegionGroups == 0) {
      // A whole untouched region: one range, then skip past it.
      const uint64_t first_block = g * kGroupBlocks;
      const uint64_t end_block = std::min(
          first_block + BlockLayout::kRegionBlocks, layout_.block_count());
      if (!list.add(layout_.block_offset(first_block),
                    layout_.block_end(end_block - 1) -
                        layout_.block_offset(first_block)))
        break;
      g += BlockLayout::kRegionGroups - 1;
      continue;
    }
    if (!add_unknown_locked(stripe, g, group, list)) break;
  }
  return list.take();
}

std::optional<std::string> BlockTable::map(DigestValue* root) const {
  if (folded_.front() > 0) return std::nullopt;  // folded leaves are gone
  BlockMapWriter writer(parameters_, layout_.length());
  std::vector<uint8_t> leaves;
  const size_t d = parameters_.digest_size();
  for (uint64_t g = 0; g < layout_.group_count(); g++) {
    const unsigned n = layout_.blocks_in_group(g);
    Stripe& stripe = store_.stripe_of(g);
    MutexLock lock(stripe.mutex);
    if (folded_.is_folded(g)) return std::nullopt;
    const Group* group = store_.find(stripe, g);
    if (!group || !store_.known_locked(g, *group)) return std::nullopt;
    if ((group->data & low_bits(n)) == 0) {
      writer.add_zero_blocks(n);  // the writer applies the leaf rule
      continue;
    }
    hasher_.group_leaves(g * kGroupBlocks, n, group->data,
                         group->digests.get(), leaves);
    for (unsigned i = 0; i < n; i++) writer.add_leaf(leaves.data() + i * d);
  }
  std::string bytes = writer.finish();
  if (root) *root = writer.root();
  return bytes;
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
    Stripe& stripe = store_.stripe_of(g);
    MutexLock lock(stripe.mutex);
    if (folded_.is_folded(g)) {
      counts.folded += n;
      continue;
    }
    const Group* group = store_.find(stripe, g);
    if (!group) {
      counts.unknown += n;
      continue;
    }
    counts.data += std::popcount(group->data);
    counts.zero += std::popcount(group->zero);
    counts.partial += std::popcount(group->partial);
    counts.unknown +=
        n - std::popcount(group->data | group->zero | group->partial);
  }
  return counts;
}

}  // namespace blkhash
