// Many threads updating one table at once give the same root as a serial
// run; the hashing pool gives the same leaves as hashing in the caller.
// (The pool's own properties: test_pool.cc.)

#include <algorithm>
#include <random>
#include <thread>

#include "catch.h"

#include "hash_pool.h"
#include "support.h"

namespace blkhash::test {
namespace {

constexpr uint32_t kBlock = 65536;

TEST_CASE("threads writing different blocks in any order", "[concurrency]") {
  const char* digest = GENERATE("sha256", "xxh128");
  auto parameters = make_parameters(digest, kBlock);
  std::mt19937_64 random(42);
  const uint64_t size = 256 * kBlock + 777;
  auto content = random_bytes(random, size);
  // Some zero regions, so that zero blocks mix with data blocks.
  std::fill_n(content.begin() + 10 * kBlock, 20 * kBlock, 0);

  // Requests of 1 to 5 blocks at unaligned offsets, split so that no two
  // threads touch the same byte, in a random order per thread.
  std::vector<ByteRange> requests;
  for (uint64_t offset = 0; offset < size;) {
    uint64_t n = std::min<uint64_t>(1 + random() % (5 * kBlock), size - offset);
    requests.push_back({offset, n});
    offset += n;
  }
  std::shuffle(requests.begin(), requests.end(), random);

  HashPool pool(2);
  const auto fold = GENERATE(BlockTable::Fold::kNone,
                             BlockTable::Fold::kSettledPrefix);
  for (HashPool* maybe_pool : {static_cast<HashPool*>(nullptr), &pool}) {
    BlockTable table(parameters, size, maybe_pool, fold);
    const unsigned threads = 4;
    std::vector<std::thread> workers;
    for (unsigned t = 0; t < threads; t++) {
      workers.emplace_back([&, t] {
        for (size_t i = t; i < requests.size(); i += threads) {
          const ByteRange& r = requests[i];
          if (i % 7 == 0)  // some arrive as reads, the rest as writes
            table.fill_data(r.offset, {content.data() + r.offset, r.length});
          else
            table.put_data(r.offset, {content.data() + r.offset, r.length});
        }
      });
    }
    for (auto& w : workers) w.join();
    CHECK(table.unknown_ranges().empty());
    CHECK(table_hex(table) == stream_hex(parameters, content));

    // Again, while the threads write some requests a second time (the
    // same bytes) and read others: with folding, writes into folded
    // blocks unfold while other threads fold and read.
    workers.clear();
    for (unsigned t = 0; t < threads; t++) {
      workers.emplace_back([&, t] {
        for (size_t i = t; i < requests.size(); i += 3 * threads) {
          const ByteRange& r = requests[i];
          if (i % 2)
            table.put_data(r.offset, {content.data() + r.offset, r.length});
          else
            table.fill_data(r.offset, {content.data() + r.offset, r.length});
        }
      });
    }
    for (auto& w : workers) w.join();
    for (const ByteRange& r : table.unknown_ranges())
      table.fill_data(r.offset, {content.data() + r.offset, r.length});
    CHECK(table_hex(table) == stream_hex(parameters, content));
  }
}

}  // namespace
}  // namespace blkhash::test
