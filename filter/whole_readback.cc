// See whole_readback.h.

#include "whole_readback.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "interrupt.h"

namespace blkhash::filter {

namespace {

constexpr uint64_t kReadChunk = 2u << 20;
constexpr uint64_t kMapChunk = 1u << 30;  // extents count is 32-bit

struct ExtentsFree {
  void operator()(struct nbdkit_extents* extents) const {
    nbdkit_extents_free(extents);
  }
};

}  // namespace

WholeReadBack::WholeReadBack(nbdkit_next* next, WholeDigest& whole,
                             BlockTable* table, RangeLock& ranges,
                             bool trust_zero_extents)
    : next_(next),
      whole_(whole),
      table_(table),
      ranges_(ranges),
      trust_zero_extents_(trust_zero_extents &&
                          next->can_extents(next) == 1) {}

bool WholeReadBack::step() {
  auto gap = whole_.claim_gap(trust_zero_extents_ ? kMapChunk : kReadChunk);
  if (!gap) return false;
  struct Release {
    WholeDigest& whole;
    ~Release() { whole.release_gap(); }
  } release{whole_};

  auto held = ranges_.lock_shared(gap->offset, gap->length);
  uint64_t length = std::min(gap->length, kReadChunk);
  if (trust_zero_extents_) {
    int err = 0;
    std::unique_ptr<struct nbdkit_extents, ExtentsFree> extents(
        nbdkit_extents_full(next_, static_cast<uint32_t>(gap->length),
                            gap->offset, 0, &err));
    if (extents && nbdkit_extents_count(extents.get()) > 0) {
      struct nbdkit_extent e = nbdkit_get_extent(extents.get(), 0);
      const uint64_t end = std::min(e.offset + e.length, gap->end());
      if (e.offset <= gap->offset && end > gap->offset) {
        if (e.type & NBDKIT_EXTENT_ZERO) {
          whole_.fill_zero(gap->offset, end - gap->offset);
          if (table_) table_->fill_zero(gap->offset, end - gap->offset);
          return true;
        }
        length = std::min(length, end - gap->offset);
      }
    }
  }
  std::vector<uint8_t> buffer(length);
  int err = 0;
  if (next_->pread(next_, buffer.data(), static_cast<uint32_t>(length),
                   gap->offset, 0, &err) == -1) {
    error_ = "reading " + std::to_string(length) + " bytes at offset " +
             std::to_string(gap->offset) + " failed: " + std::strerror(err);
    return false;
  }
  whole_.fill_data(gap->offset, buffer);
  if (table_) table_->fill_data(gap->offset, buffer);
  bytes_read_ += length;
  return true;
}

bool WholeReadBack::read_while_buffered_over(uint64_t limit) {
  while (whole_.buffered_bytes() > limit && step()) {
  }
  return error_.empty();
}

bool WholeReadBack::read_to_end() {
  while (whole_.cursor() < whole_.length()) {
    if (reports_interrupted()) {
      error_ = "interrupted by a second SIGTERM or SIGINT";
      return false;
    }
    if (!step()) {
      if (!error_.empty()) return false;
      // Nothing to claim: the cursor's piece is being hashed, or (not in
      // a report, where no client is attached) another reader holds it.
      if (whole_.stale()) {
        error_ = "changed behind the cursor";
        return false;
      }
      std::this_thread::yield();
    }
  }
  return true;
}

}  // namespace blkhash::filter
