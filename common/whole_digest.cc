// See whole_digest.h.
//
// Invariants (mutex_ held):
// - pieces_ are sorted, non-overlapping, non-empty, and all at or after
//   cursor_; buffered_ is the sum of their data bytes.
// - [0, cursor_) was pushed to hasher_, in order: hasher_.hashed() <=
//   cursor_, equal once it is idle (unless it failed).

#include "whole_digest.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace blkhash {

WholeDigest::WholeDigest(const DigestAlgorithm& digest, uint64_t length,
                         uint64_t window)
    : length_(length),
      window_(window),
      digest_size_(digest.size()),
      hasher_(digest.new_hasher()) {}

WholeDigest::~WholeDigest() = default;

void WholeDigest::check_range(uint64_t offset, uint64_t length) const {
  if (offset > length_ || length > length_ - offset)
    throw std::out_of_range("range " + std::to_string(offset) + "+" +
                            std::to_string(length) + " beyond the image (" +
                            std::to_string(length_) + " bytes)");
}

void WholeDigest::forget(uint64_t offset, uint64_t length) {
  check_range(offset, length);
  if (length == 0) return;
  MutexLock lock(mutex_);
  if (offset < cursor_) stale_ = true;
  const uint64_t from = std::max(offset, cursor_);
  if (from < offset + length) erase_locked(from, offset + length);
}

void WholeDigest::record(uint64_t offset, uint64_t length,
                         const uint8_t* data, Source source) {
  check_range(offset, length);
  if (length == 0) return;
  const uint64_t base = offset;  // data[0] is the byte at `base`
  const uint64_t end = offset + length;
  auto bytes_at = [&](uint64_t at) { return data ? data + (at - base) : nullptr; };

  {
    MutexLock lock(mutex_);
    if (!store_locked(offset, end, bytes_at, source)) return;
    advance();
  }
  // The queue of the hasher is kept within the window too.
  hasher_.wait_queued_at_most(window_);
}

template <typename BytesAt>
bool WholeDigest::store_locked(uint64_t offset, uint64_t end,
                               BytesAt bytes_at, Source source) {
  if (offset < cursor_) {
    // Already hashed: a read saw what was hashed; a write changed it.
    if (source == Source::kWrite) stale_ = true;
    offset = std::min(cursor_, end);
    if (offset == end) return false;
  }
  if (source == Source::kWrite) {
    erase_locked(offset, end);
    insert_locked(offset, end - offset, bytes_at(offset));
  } else {
    // Only the bytes no piece holds yet.
    std::vector<ByteRange> gaps;
    uint64_t at = offset;
    auto it = pieces_.upper_bound(offset);
    if (it != pieces_.begin()) --it;
    for (; it != pieces_.end() && it->first < end; ++it) {
      const uint64_t piece_end = it->first + it->second.length;
      if (piece_end <= at) continue;
      if (it->first > at) gaps.push_back({at, it->first - at});
      at = piece_end;
    }
    if (at < end) gaps.push_back({at, end - at});
    for (const ByteRange& gap : gaps)
      insert_locked(gap.offset, gap.length, bytes_at(gap.offset));
  }
  return true;
}

void WholeDigest::erase_locked(uint64_t offset, uint64_t end) {
  auto it = pieces_.lower_bound(offset);
  if (it != pieces_.begin()) {
    auto before = std::prev(it);
    if (before->first + before->second.length > offset) it = before;
  }
  while (it != pieces_.end() && it->first < end) {
    const uint64_t piece_start = it->first;
    const uint64_t piece_end = piece_start + it->second.length;
    Piece piece = std::move(it->second);
    it = pieces_.erase(it);
    buffered_ -= piece.bytes.size();
    auto part = [&](uint64_t from) {
      return piece.bytes.empty() ? nullptr
                                 : piece.bytes.data() + (from - piece_start);
    };
    // The parts outside [offset, end) stay; the tail goes after `it`,
    // where this loop no longer looks.
    if (piece_start < offset)
      insert_locked(piece_start, offset - piece_start, part(piece_start));
    if (piece_end > end) insert_locked(end, piece_end - end, part(end));
  }
}

void WholeDigest::insert_locked(uint64_t offset, uint64_t length,
                                const uint8_t* data) {
  Piece piece;
  piece.length = length;
  if (data) piece.bytes.assign(data, data + length);
  buffered_ += piece.bytes.size();
  pieces_.emplace(offset, std::move(piece));
}

void WholeDigest::advance() {
  while (!pieces_.empty() && pieces_.begin()->first == cursor_) {
    auto node = pieces_.extract(pieces_.begin());
    buffered_ -= node.mapped().bytes.size();
    cursor_ += node.mapped().length;
    hasher_.push(std::move(node.mapped()));
  }
}

uint64_t WholeDigest::cursor() const {
  MutexLock lock(mutex_);
  return cursor_;
}

bool WholeDigest::stale() const {
  MutexLock lock(mutex_);
  return stale_ || hasher_.failed();  // a failed hash missed bytes too
}

uint64_t WholeDigest::buffered_bytes() const {
  MutexLock lock(mutex_);
  return buffered_;
}

std::optional<ByteRange> WholeDigest::claim_gap(uint64_t max_length) {
  MutexLock lock(mutex_);
  if (gap_claimed_ || stale_ || cursor_ >= length_) return std::nullopt;
  const uint64_t next = pieces_.empty() ? length_ : pieces_.begin()->first;
  if (next == cursor_) return std::nullopt;  // ready: being hashed
  gap_claimed_ = true;
  return ByteRange{cursor_, std::min(next - cursor_, max_length)};
}

void WholeDigest::release_gap() {
  MutexLock lock(mutex_);
  gap_claimed_ = false;
}

std::optional<DigestValue> WholeDigest::final() {
  {
    MutexLock lock(mutex_);
    if (stale_ || cursor_ != length_) return std::nullopt;
  }
  auto digest = hasher_.finish(digest_size_);
  MutexLock lock(mutex_);
  if (stale_ || hasher_.hashed() != length_) return std::nullopt;
  return digest;
}

}  // namespace blkhash
