// See readback.h.

#include "readback.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace blkhash::filter {

namespace {

constexpr uint64_t kReadChunk = 2u << 20;
constexpr uint64_t kExtentsChunk = 1u << 30;  // extents count is 32-bit

// Read buffers are page aligned: the kernel copies from the page cache
// into a misaligned buffer several times slower (measured: 4x).
struct AlignedFree {
  void operator()(uint8_t* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<uint8_t[], AlignedFree>;

AlignedBuffer aligned_buffer(size_t size) {
  constexpr size_t kPage = 4096;
  size = (size + kPage - 1) / kPage * kPage;
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(kPage, size));
  if (!p) throw std::bad_alloc();
  return AlignedBuffer(p);
}

struct ExtentsFree {
  void operator()(struct nbdkit_extents* extents) const {
    nbdkit_extents_free(extents);
  }
};

}  // namespace

ReadBack::ReadBack(nbdkit_next* next, BlockTable& table, RangeLock& ranges,
                   unsigned readers)
    : next_(next), table_(table), ranges_(ranges),
      readers_(std::max(readers, 1u)),
      chunk_size_(std::max<uint64_t>(kReadChunk,
                                     table.parameters().block_size())) {}

bool ReadBack::map_and_queue(std::vector<ByteRange>* chunks) {
  const uint64_t chunk_size = chunk_size_;
  auto queue = [&](uint64_t offset, uint64_t length) {
    for (uint64_t end = offset + length; offset < end;) {
      uint64_t n = std::min(chunk_size, end - offset);
      chunks->push_back({offset, n});
      offset += n;
    }
  };

  const bool can_extents = next_->can_extents(next_) == 1;
  for (uint64_t position = 0;;) {
    auto unknown = table_.unknown_ranges(position, 4096);
    if (unknown.empty()) return true;
    position = unknown.back().end();
    for (const ByteRange& range : unknown) {
      if (!can_extents) {
        queue(range.offset, range.length);
        continue;
      }
      for (uint64_t offset = range.offset; offset < range.end();) {
        uint64_t n = std::min(kExtentsChunk, range.end() - offset);
        int err = 0;
        std::unique_ptr<struct nbdkit_extents, ExtentsFree> extents(
            nbdkit_extents_full(next_, static_cast<uint32_t>(n), offset, 0,
                                &err));
        if (!extents) {
          queue(offset, n);  // no map: read it all
        } else {
          for (size_t i = 0; i < nbdkit_extents_count(extents.get()); i++) {
            struct nbdkit_extent e = nbdkit_get_extent(extents.get(), i);
            uint64_t lo = std::max(e.offset, offset);
            uint64_t hi = std::min(e.offset + e.length, offset + n);
            if (lo >= hi) continue;
            if (e.type & NBDKIT_EXTENT_ZERO) {
              auto held = ranges_.lock_shared(lo, hi - lo);
              table_.fill_zero(lo, hi - lo);
            } else {
              queue(lo, hi - lo);
            }
          }
        }
        offset += n;
      }
    }
  }
}

void ReadBack::read_chunks(const std::vector<ByteRange>& chunks) {
  std::atomic<size_t> next_chunk{0};
  std::atomic<uint64_t> bytes_read{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;  // guards error_

  auto fail = [&](const std::string& message) {
    std::lock_guard lock(error_mutex);
    if (!failed.exchange(true)) error_ = message;
  };
  // Runs on its own threads: nothing may escape it.
  auto reader = [&] {
    try {
    AlignedBuffer buffer = aligned_buffer(chunk_size_);
    for (;;) {
      size_t i = next_chunk++;
      if (i >= chunks.size() || failed) return;
      const ByteRange& chunk = chunks[i];
      int err = 0;
      auto held = ranges_.lock_shared(chunk.offset, chunk.length);
      if (next_->pread(next_, buffer.get(),
                       static_cast<uint32_t>(chunk.length), chunk.offset, 0,
                       &err) == -1) {
        fail("reading " + std::to_string(chunk.length) + " bytes at offset " +
             std::to_string(chunk.offset) + " failed: " + std::strerror(err));
        return;
      }
      table_.fill_data(chunk.offset, {buffer.get(), chunk.length});
      bytes_read += chunk.length;
    }
    } catch (const std::exception& e) {
      fail(e.what());
    }
  };

  const unsigned threads = static_cast<unsigned>(
      std::min<size_t>(readers_, chunks.size()));
  std::vector<std::thread> helpers;
  for (unsigned t = 1; t < threads; t++) helpers.emplace_back(reader);
  reader();  // the calling thread reads too
  for (auto& helper : helpers) helper.join();
  bytes_read_ += bytes_read;
}

bool ReadBack::complete() {
  std::vector<ByteRange> chunks;
  if (!map_and_queue(&chunks)) return false;
  read_chunks(chunks);
  return error_.empty();
}

}  // namespace blkhash::filter
