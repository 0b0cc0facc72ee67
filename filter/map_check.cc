// See map_check.h.

#include "map_check.h"

#include <algorithm>
#include <vector>

namespace blkhash::filter {

namespace {

// The bad blocks the current request of this thread completed.
thread_local std::vector<uint64_t> bad_blocks;

// Ranges kept in an error message; the rest are counted.
constexpr size_t kRangesShown = 8;

}  // namespace

void MapChecker::leaf_known(uint64_t block, const uint8_t* leaf) {
  const bool bad = !map_->leaf_equals(block, leaf);
  if (bad) bad_blocks.push_back(block);
  std::lock_guard lock(mutex_);
  if (bad)
    bad_.insert(block);
  else if (!bad_.empty())
    bad_.erase(block);
}

bool MapChecker::any_bad(uint64_t first, uint64_t end) const {
  std::lock_guard lock(mutex_);
  auto it = bad_.lower_bound(first);
  return it != bad_.end() && *it < end;
}

void MapChecker::begin_request() { bad_blocks.clear(); }

std::string MapChecker::take_bad_blocks() {
  if (bad_blocks.empty()) return {};
  std::sort(bad_blocks.begin(), bad_blocks.end());
  bad_blocks.erase(std::unique(bad_blocks.begin(), bad_blocks.end()),
                   bad_blocks.end());
  BlockRangeList ranges(kRangesShown);
  for (uint64_t block : bad_blocks) ranges.add(block);
  bad_blocks.clear();
  return ranges.text();
}

}  // namespace blkhash::filter
