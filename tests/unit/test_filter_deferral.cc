// Deferral (blkhash-defer): recording after the reply keeps the semantics
// of recording inline.  A randomized model: threads play clients that
// write, zero and read a shared "storage" under the range lock, as the
// filter's requests do, and hand the recording to a Deferral (taken or
// not).  The storage is the truth; the table's root must be the blkhash
// of the final storage, as the streaming construction (proven against
// the vectors) computes it.  A job that let go of its range before it
// had recorded would let a later write be recorded first, and the older
// bytes win: the root would differ.  Under ThreadSanitizer in
// scripts/test (filter-deferral).

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <mutex>
#include <random>
#include <thread>

#include "catch.h"

#include "block_table.h"
#include "deferral.h"
#include "range_lock.h"
#include "support.h"

namespace blkhash::filter {
namespace {

using test::make_parameters;
using test::stream_hex;
using test::table_hex;

constexpr uint32_t kBlock = 4096;

struct Model {
  explicit Model(uint64_t size) : storage(size) {}
  std::vector<uint8_t> storage;  // what the plugin holds; under the range lock
};

// Hands `bytes` to the deferral with `held`, or records them inline if the
// job is not taken, as ExportState::defer() does.
void record_later(Deferral& deferral, std::optional<RangeLock::Guard>& held,
                  std::span<const uint8_t> bytes,
                  std::function<void(std::span<const uint8_t>)> record,
                  std::atomic<unsigned>& pending) {
  pending++;
  if (!deferral.submit(held, bytes, record, [&pending] { pending--; })) {
    pending--;
    record(bytes);
  }
}

// One client's requests: like ExportState's, the plugin call and the
// hand-over to the deferral happen with the range held.
void client(unsigned seed, Model& model, RangeLock& ranges, BlockTable& table,
            Deferral& deferral, std::atomic<unsigned>& pending,
            std::atomic<uint64_t>& peak, int requests) {
  std::mt19937_64 random(seed);
  const uint64_t size = model.storage.size();
  for (int i = 0; i < requests; i++) {
    const uint64_t length = 1 + random() % (3 * kBlock);
    const uint64_t offset = random() % (size - length + 1);
    const unsigned kind = random() % 10;
    std::optional<RangeLock::Guard> held;
    if (kind < 6) {  // a write
      held.emplace(ranges.lock_exclusive(offset, length));
      std::vector<uint8_t> bytes(length);
      for (auto& b : bytes) b = static_cast<uint8_t>(random());
      std::memcpy(model.storage.data() + offset, bytes.data(), length);
      record_later(deferral, held, bytes,
                   [&table, offset](std::span<const uint8_t> copy) {
                     table.put_data(offset, copy);
                   },
                   pending);
    } else if (kind < 8) {  // a write of zeroes: always inline
      held.emplace(ranges.lock_exclusive(offset, length));
      std::fill_n(model.storage.begin() + offset, length, 0);
      table.put_zero(offset, length);
    } else {  // a read: fills only what is unknown
      held.emplace(ranges.lock_shared(offset, length));
      std::vector<uint8_t> bytes(model.storage.begin() + offset,
                                 model.storage.begin() + offset + length);
      record_later(deferral, held, bytes,
                   [&table, offset](std::span<const uint8_t> copy) {
                     table.fill_data(offset, copy);
                   },
                   pending);
    }
    const uint64_t in_use = deferral.bytes_in_use();
    uint64_t seen = peak.load();
    while (in_use > seen && !peak.compare_exchange_weak(seen, in_use)) {
    }
  }
}

TEST_CASE("deferred records: last writer wins, reads never fill over a "
          "pending write", "[deferral]") {
  const char* digest = GENERATE("sha256", "xxh128");
  const auto mode = GENERATE(Deferral::Mode::kAlways, Deferral::Mode::kAuto,
                             Deferral::Mode::kNever);
  auto parameters = make_parameters(digest, kBlock);
  const uint64_t size = 64 * kBlock + 1234;
  for (unsigned round = 0; round < 4; round++) {
    INFO("digest " << digest << ", mode " << static_cast<int>(mode)
                   << ", round " << round);
    Model model(size);
    RangeLock ranges(kBlock);
    BlockTable table(parameters, size);
    std::atomic<unsigned> pending{0};
    std::atomic<uint64_t> peak{0};
    // A small budget, so that some jobs are refused and recorded inline.
    const uint64_t budget = 24 * 1024;
    {
      Deferral deferral(mode, 2, budget);
      std::vector<std::thread> threads;
      for (unsigned t = 0; t < 4; t++)
        threads.emplace_back([&, t] {
          client(round * 16 + t, model, ranges, table, deferral, pending,
                 peak, 300);
        });
      for (auto& thread : threads) thread.join();
    }  // the destructor runs what is queued
    // (Catch's CHECK is not for other threads: the clients only count.)
    CHECK(pending == 0);
    CHECK(peak <= budget);
    if (mode == Deferral::Mode::kNever) CHECK(peak == 0);
    // What no client touched is unknown: read it from the storage.
    for (const ByteRange& gap : table.unknown_ranges())
      table.fill_data(gap.offset,
                      {model.storage.data() + gap.offset, gap.length});
    CHECK(table_hex(table) == stream_hex(parameters, model.storage));
  }
}

TEST_CASE("a deferred job holds its range until it has recorded",
          "[deferral]") {
  RangeLock ranges(kBlock);
  Deferral deferral(Deferral::Mode::kAlways, 1, 1 << 20);
  std::mutex gate;
  std::unique_lock closed(gate);  // the job's record waits on this
  std::atomic<bool> recorded{false};
  std::atomic<bool> done{false};
  std::atomic<bool> copy_ok{false};
  std::optional<RangeLock::Guard> held;
  held.emplace(ranges.lock_exclusive(0, kBlock));
  const std::vector<uint8_t> bytes(kBlock, 7);
  REQUIRE(deferral.submit(
      held, bytes,
      [&](std::span<const uint8_t> copy) {
        std::lock_guard wait(gate);
        copy_ok = copy.size() == kBlock && copy[0] == 7;
        recorded = true;
      },
      [&] { done = true; }));
  CHECK(!held);  // taken over
  std::atomic<bool> got{false};
  std::atomic<bool> recorded_first{false};
  std::thread later([&] {
    auto guard = ranges.lock_shared(100, 10);
    recorded_first = recorded.load();  // granted only after the record
    got = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(!got);
  closed.unlock();
  later.join();
  CHECK(got);
  CHECK(recorded_first);
  CHECK(copy_ok);
  // done() runs before the budget is given back: wait for both.
  for (int i = 0; i < 2000 && (!done || deferral.bytes_in_use() != 0); i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(done);
  CHECK(deferral.bytes_in_use() == 0);
}

}  // namespace
}  // namespace blkhash::filter
