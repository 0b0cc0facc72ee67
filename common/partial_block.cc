// See partial_block.h.
//
// Invariant: known_ is sorted by begin, runs are non-empty, and between
// two runs there is at least one unknown byte.

#include "partial_block.h"

#include <algorithm>
#include <cstring>

namespace blkhash {

PartialBlock::PartialBlock(uint32_t length, bool known_zero)
    : length_(length),
      bytes_(std::make_unique_for_overwrite<uint8_t[]>(length)) {
  if (known_zero) {
    std::memset(bytes_.get(), 0, length);
    if (length > 0) known_.push_back({0, length});
  }
}

void PartialBlock::copy_in(uint32_t offset, uint32_t n, const uint8_t* data,
                           uint32_t data_base) {
  // data points at the byte for block offset data_base.
  if (data)
    std::memcpy(bytes_.get() + offset, data + (offset - data_base), n);
  else
    std::memset(bytes_.get() + offset, 0, n);
}

void PartialBlock::mark_known(uint32_t begin, uint32_t end) {
  if (begin >= end) return;
  // Merge with every run that overlaps or touches [begin, end).
  auto first = std::lower_bound(
      known_.begin(), known_.end(), begin,
      [](const Run& run, uint32_t value) { return run.end < value; });
  auto last = first;
  while (last != known_.end() && last->begin <= end) {
    begin = std::min(begin, last->begin);
    end = std::max(end, last->end);
    ++last;
  }
  first = known_.erase(first, last);
  known_.insert(first, Run{begin, end});
}

void PartialBlock::put(uint32_t offset, uint32_t n, const uint8_t* data) {
  seen_ = true;
  copy_in(offset, n, data, offset);
  mark_known(offset, offset + n);
}

void PartialBlock::fill(uint32_t offset, uint32_t n, const uint8_t* data) {
  if (data) seen_ = true;
  const uint32_t end = offset + n;
  uint32_t cursor = offset;
  for (const Run& run : known_) {
    if (run.end <= cursor) continue;
    if (run.begin >= end) break;
    if (run.begin > cursor) copy_in(cursor, run.begin - cursor, data, offset);
    cursor = std::max(cursor, run.end);
    if (cursor >= end) break;
  }
  if (cursor < end) copy_in(cursor, end - cursor, data, offset);
  mark_known(offset, end);
}

void PartialBlock::forget(uint32_t offset, uint32_t n) {
  const uint32_t end = offset + n;
  std::vector<Run> kept;
  kept.reserve(known_.size() + 1);
  for (const Run& run : known_) {
    if (run.end <= offset || run.begin >= end) {
      kept.push_back(run);
      continue;
    }
    if (run.begin < offset) kept.push_back({run.begin, offset});
    if (run.end > end) kept.push_back({end, run.end});
  }
  known_ = std::move(kept);
}

bool PartialBlock::complete() const {
  return known_.size() == 1 && known_[0].begin == 0 &&
         known_[0].end == length_;
}

std::vector<ByteRange> PartialBlock::missing() const {
  std::vector<ByteRange> gaps;
  uint32_t cursor = 0;
  for (const Run& run : known_) {
    if (run.begin > cursor) gaps.push_back({cursor, run.begin - cursor});
    cursor = run.end;
  }
  if (cursor < length_) gaps.push_back({cursor, length_ - cursor});
  return gaps;
}

size_t PartialBlock::memory_bytes() const {
  return sizeof(*this) + length_ + known_.capacity() * sizeof(Run);
}

}  // namespace blkhash
