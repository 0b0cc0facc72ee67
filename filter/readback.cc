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

#include "interrupt.h"

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

void ReadBack::record_zero_extents() {
  if (next_->can_extents(next_) != 1) return;
  for (uint64_t position = 0; !reports_interrupted();) {
    auto unknown = table_.unknown_ranges(position, 4096);
    if (unknown.empty()) return;
    position = unknown.back().end();
    for (const ByteRange& range : unknown) {
      for (uint64_t offset = range.offset; offset < range.end();) {
        const uint64_t n = std::min(kExtentsChunk, range.end() - offset);
        // Looked up and recorded under one hold of the range: a write
        // through another export name cannot land in between and be
        // taken for zeros.
        auto held = ranges_.lock_shared(offset, n);
        int err = 0;
        std::unique_ptr<struct nbdkit_extents, ExtentsFree> extents(
            nbdkit_extents_full(next_, static_cast<uint32_t>(n), offset, 0,
                                &err));
        for (size_t i = 0; extents && i < nbdkit_extents_count(extents.get());
             i++) {
          struct nbdkit_extent e = nbdkit_get_extent(extents.get(), i);
          uint64_t lo = std::max(e.offset, offset);
          uint64_t hi = std::min(e.offset + e.length, offset + n);
          if (lo < hi && (e.type & NBDKIT_EXTENT_ZERO))
            table_.fill_zero(lo, hi - lo);
        }
        offset += n;
      }
    }
  }
}

std::vector<ByteRange> ReadBack::chunks_to_read() const {
  std::vector<ByteRange> chunks;
  for (uint64_t position = 0;;) {
    auto unknown = table_.unknown_ranges(position, 4096);
    if (unknown.empty()) return chunks;
    position = unknown.back().end();
    for (const ByteRange& range : unknown) {
      for (uint64_t offset = range.offset; offset < range.end();) {
        uint64_t n = std::min(chunk_size_, range.end() - offset);
        chunks.push_back({offset, n});
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
  // Reads chunks until none is left or one fails.
  auto read_some = [&] {
    AlignedBuffer buffer = aligned_buffer(chunk_size_);
    for (;;) {
      size_t i = next_chunk++;
      if (i >= chunks.size() || failed) return;
      if (reports_interrupted()) {
        fail("interrupted by a second SIGTERM or SIGINT");
        return;
      }
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
  };
  // Runs on its own threads: nothing may escape it.
  auto reader = [&] {
    try {
      read_some();
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
  // Zero extents first: zeros need no reading.  What they leave unknown
  // (data, and blocks partly seen, which extents never complete) is read.
  record_zero_extents();
  read_chunks(chunks_to_read());
  if (error_.empty() && reports_interrupted())
    error_ = "interrupted by a second SIGTERM or SIGINT";
  return error_.empty();
}

}  // namespace blkhash::filter
