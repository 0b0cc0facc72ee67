// Byte ranges: how the engine names the bytes of an image (or of a block)
// that are unknown, and how callers name the bytes they read or write.
//
// ByteRange is a plain value [offset, offset + length); its users keep
// offset + length from overflowing.  ByteRangeList builds the answer to
// "which bytes from here on are unknown": ranges added in ascending
// order, clipped to a window, adjacent ones merged, up to a limit.

#ifndef BLKHASH_BYTE_RANGE_H
#define BLKHASH_BYTE_RANGE_H

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace blkhash {

struct ByteRange {
  uint64_t offset;
  uint64_t length;
  uint64_t end() const { return offset + length; }
  bool operator==(const ByteRange&) const = default;
};

class ByteRangeList {
 public:
  // Keeps the bytes in [start, end), in at most `max` ranges.
  ByteRangeList(uint64_t start, uint64_t end, size_t max)
      : start_(start), end_(end), max_(max) {}

  // Adds [offset, offset + n), which must not start before the end of
  // the last range added; false when it needs a range more than `max`.
  bool add(uint64_t offset, uint64_t n) {
    const uint64_t end = std::min(offset + n, end_);
    offset = std::max(offset, start_);
    if (offset >= end) return true;
    if (!ranges_.empty() && ranges_.back().end() == offset) {
      ranges_.back().length += end - offset;
      return true;
    }
    if (ranges_.size() == max_) return false;
    ranges_.push_back({offset, end - offset});
    return true;
  }

  std::vector<ByteRange> take() { return std::move(ranges_); }

 private:
  const uint64_t start_;
  const uint64_t end_;
  const size_t max_;
  std::vector<ByteRange> ranges_;
};

}  // namespace blkhash

#endif  // BLKHASH_BYTE_RANGE_H
