// The table's memory, by its own accounting (memory_bytes()):
//   untouched regions cost nothing, a zero or unknown block at most 1 byte,
//   a data block its digest plus at most 8 bytes, a partial block one
//   block-sized buffer only until it completes.

#include <random>

#include "catch.h"

#include "support.h"

namespace blkhash::test {
namespace {

constexpr uint64_t kTiB = uint64_t{1} << 40;

TEST_CASE("a 1 TiB table allocates nothing per block up front", "[memory]") {
  auto parameters = make_parameters("sha256", 65536);
  BlockTable table(parameters, kTiB);
  REQUIRE(table.block_count() == (uint64_t{1} << 24));
  // The directory: one pointer per 65536 blocks.
  CHECK(table.memory_bytes() < 64 * 1024);
  // Forgetting and querying untouched regions allocates nothing.
  size_t before = table.memory_bytes();
  table.forget(0, kTiB);
  CHECK(table.unknown_ranges() == std::vector<ByteRange>{{0, kTiB}});
  CHECK(table.memory_bytes() == before);
}

TEST_CASE("zero blocks cost at most 1 byte each", "[memory]") {
  auto parameters = make_parameters("sha256", 65536);
  BlockTable table(parameters, kTiB);
  size_t before = table.memory_bytes();
  table.put_zero(0, kTiB);
  CHECK(table.memory_bytes() - before <= table.block_count());
  CHECK(table.root().has_value());
}

TEST_CASE("data blocks cost their digest plus at most 8 bytes", "[memory]") {
  for (const char* digest : {"sha256", "xxh128", "sha512"}) {
    INFO(digest);
    auto parameters = make_parameters(digest, 65536);
    BlockTable table(parameters, kTiB);
    std::mt19937_64 random(1);
    std::vector<uint8_t> block = random_bytes(random, 65536);
    // Data blocks scattered over the whole image (the worst case for
    // locality), one in every 997.
    const uint64_t count = 4096;
    std::vector<uint64_t> touched;
    for (uint64_t i = 0; i < count; i++) touched.push_back(i * 997 * 3);
    size_t before = table.memory_bytes();
    for (uint64_t b : touched) {
      block[0] = static_cast<uint8_t>(b);  // not all the same
      table.put_data(b * 65536, block);
    }
    size_t used = table.memory_bytes() - before;
    // Fixed cost of the touched regions: at most 1 byte per block of each
    // touched region.
    uint64_t regions = (touched.back() / 65536) + 1;
    CHECK(used <= count * (parameters.digest_size() + 8) + regions * 65536);
    CHECK(table.counts().data == count);

    // Dense: 1024 blocks written whole, twice.  The second chunk lies in
    // the same region, so its cost is the data blocks' alone.
    BlockTable dense(parameters, 64ull << 30);
    std::vector<uint8_t> chunk = random_bytes(random, 64u << 20);  // 1024 blocks
    dense.put_data(0, chunk);
    size_t after_first = dense.memory_bytes();
    chunk[0] ^= 1;
    dense.put_data(64u << 20, chunk);
    size_t per_block = (dense.memory_bytes() - after_first) / 1024;
    CHECK(per_block <= parameters.digest_size() + 8);
  }
}

TEST_CASE("a partial block holds a buffer only until complete", "[memory]") {
  auto parameters = make_parameters("sha256", 65536);
  BlockTable table(parameters, 1 << 20);
  std::mt19937_64 random(2);
  auto block = random_bytes(random, 65536);
  table.put_zero(0, 1 << 20);
  size_t base = table.memory_bytes();
  table.put_data(65536 + 100, {block.data() + 100, 1000});  // into a zero block
  CHECK(table.counts().partial == 0);  // completed at once from the zeros
  table.forget(2 * 65536, 4096);
  CHECK(table.counts().partial == 1);
  CHECK(table.memory_bytes() >= base + 65536);
  table.put_data(2 * 65536, {block.data(), 4096});
  CHECK(table.counts().partial == 0);
  CHECK(table.memory_bytes() <= base + 2 * (32 + 8));
}

}  // namespace
}  // namespace blkhash::test
