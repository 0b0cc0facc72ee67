// The offset-keyed front door against a trivially correct model: a byte
// array holding the image, hashed from scratch by the streaming front
// door (itself proven by the vectors and by hashlib in check_engine.py).

#include <algorithm>
#include <random>

#include "catch.h"

#include "support.h"

namespace blkhash::test {
namespace {

constexpr uint32_t kBlock = 4096;

TEST_CASE("random writes, zeroes, trims, reads agree with the model",
          "[table]") {
  const uint64_t seed = GENERATE(range(1, 61));
  std::mt19937_64 random(seed);
  const uint64_t size = (random() % 24) * kBlock + (random() % 3 == 0 ? 0 : random() % kBlock);
  auto parameters = make_parameters(seed % 2 ? "sha256" : "xxh128", kBlock);
  BlockTable table(parameters, size);
  std::vector<uint8_t> content(size, 0);
  INFO("seed " << seed << " size " << size);

  auto random_range = [&](uint64_t max_length) {
    uint64_t offset = size ? random() % size : 0;
    uint64_t length = std::min<uint64_t>(random() % max_length + 1,
                                         size - offset);
    // Often aligned, to reach full-block paths.
    if (random() % 3 == 0) offset -= offset % kBlock;
    length = std::min<uint64_t>(length, size - offset);
    return ByteRange{offset, length};
  };

  for (int op = 0; op < 150 && size > 0; op++) {
    ByteRange r = random_range(3 * kBlock + 100);
    switch (random() % 6) {
      case 0:
      case 1: {  // write
        auto bytes = random() % 4 == 0 ? std::vector<uint8_t>(r.length, 0)
                                       : random_bytes(random, r.length);
        std::copy(bytes.begin(), bytes.end(), content.begin() + r.offset);
        table.put_data(r.offset, bytes);
        break;
      }
      case 2:  // write zeroes
        std::fill_n(content.begin() + r.offset, r.length, 0);
        table.put_zero(r.offset, r.length);
        break;
      case 3: {  // trim: content becomes whatever the storage returns
        auto bytes = random_bytes(random, r.length);
        std::copy(bytes.begin(), bytes.end(), content.begin() + r.offset);
        table.forget(r.offset, r.length);
        break;
      }
      case 4:  // a read returns the current content
        table.fill_data(r.offset, {content.data() + r.offset, r.length});
        break;
      case 5:  // a zero extent, where the content is zero
        if (std::all_of(content.begin() + r.offset,
                        content.begin() + r.offset + r.length,
                        [](uint8_t b) { return b == 0; }))
          table.fill_zero(r.offset, r.length);
        break;
    }
    // root() answers exactly when nothing is unknown.
    CHECK(table.root().has_value() == table.unknown_ranges().empty());
  }
  CHECK(complete_from(table, content) == stream_hex(parameters, content));
}

TEST_CASE("the last write wins, also for partly overlapping writes",
          "[table]") {
  auto parameters = make_parameters("sha256", kBlock);
  std::mt19937_64 random(3);
  const uint64_t size = 10 * kBlock + 123;
  std::vector<uint8_t> content(size, 0);
  BlockTable table(parameters, size);
  table.put_zero(0, size);
  auto a = random_bytes(random, 3 * kBlock);
  auto b = random_bytes(random, 3 * kBlock);
  table.put_data(kBlock + 10, a);
  table.put_data(2 * kBlock + 500, b);  // overlaps the end of a
  std::copy(a.begin(), a.end(), content.begin() + kBlock + 10);
  std::copy(b.begin(), b.end(), content.begin() + 2 * kBlock + 500);
  // Block 2 was hashed whole from a; b rewrote only its end, and the table
  // keeps no bytes of hashed blocks: its first 500 bytes must be read.
  CHECK(table.unknown_ranges() == std::vector<ByteRange>{{2 * kBlock, 500}});
  CHECK(complete_from(table, content) == stream_hex(parameters, content));
  // The same write twice changes nothing.
  table.put_data(2 * kBlock + 500, b);
  CHECK(complete_from(table, content) == stream_hex(parameters, content));
}

TEST_CASE("a read never overrides what a write said", "[table]") {
  auto parameters = make_parameters("sha256", kBlock);
  std::mt19937_64 random(5);
  auto written = random_bytes(random, 2 * kBlock);
  auto stale = random_bytes(random, 2 * kBlock);
  BlockTable table(parameters, 2 * kBlock);
  table.put_data(100, {written.data() + 100, 5000});  // partial blocks
  table.fill_data(0, stale);
  // Block 0: bytes 0-99 from the read, the rest from the write; block 1:
  // 0-1003 (offset 4096..5099) from the write, the rest from the read.
  std::vector<uint8_t> expected = stale;
  std::copy_n(written.begin() + 100, 5000, expected.begin() + 100);
  CHECK(table_hex(table) == stream_hex(parameters, expected));
  table.fill_zero(0, 2 * kBlock);  // known already: no effect
  CHECK(table_hex(table) == stream_hex(parameters, expected));
}

TEST_CASE("a zero extent never completes a block partly seen", "[table]") {
  // A layer below (a writeback cache) may report a hole where it holds
  // data not written back yet: bytes of a block that a write or read
  // showed are completed by reading, never from zero extents.
  auto parameters = make_parameters("sha256", kBlock);
  BlockTable table(parameters, 3 * kBlock);
  std::vector<uint8_t> bytes(100, 7);
  table.put_data(10, bytes);                                // block 0
  table.fill_data(kBlock + 200, bytes);                     // block 1
  table.fill_zero(0, 3 * kBlock);                           // stale holes
  CHECK(table.unknown_ranges() ==
        std::vector<ByteRange>{{0, 10},
                               {110, kBlock - 110 + 200},  // merged
                               {kBlock + 300, kBlock - 300}});
  // Pieces that only zero extents filled still complete each other.
  BlockTable extents_only(parameters, 2 * kBlock);
  extents_only.fill_zero(0, 1000);
  extents_only.fill_zero(1000, 2 * kBlock - 1000);
  std::vector<uint8_t> zeros(2 * kBlock, 0);
  CHECK(table_hex(extents_only) == stream_hex(parameters, zeros));
}

TEST_CASE("unknown ranges are exact", "[table]") {
  auto parameters = make_parameters("sha256", kBlock);
  const uint64_t size = 8 * kBlock + 100;
  BlockTable table(parameters, size);
  CHECK(table.unknown_ranges() == std::vector<ByteRange>{{0, size}});
  std::vector<uint8_t> bytes(3000, 7);
  table.put_data(kBlock + 1000, bytes);  // inside block 1
  table.put_zero(2 * kBlock, 4 * kBlock);  // blocks 2-5
  CHECK(table.unknown_ranges() ==
        std::vector<ByteRange>{{0, kBlock + 1000},
                               {kBlock + 4000, 96},
                               {6 * kBlock, 2 * kBlock + 100}});
  CHECK(table.unknown_bytes() == kBlock + 1000 + 96 + 2 * kBlock + 100);
  CHECK(table.unknown_ranges(6 * kBlock + 5, 1) ==
        std::vector<ByteRange>{{6 * kBlock + 5, 2 * kBlock + 95}});
  CHECK(table.unknown_ranges(0, 2).size() == 2);
  table.forget(3 * kBlock + 10, 10);  // a hole in a zero block
  CHECK(table.unknown_ranges(2 * kBlock) ==
        std::vector<ByteRange>{{3 * kBlock + 10, 10},
                               {6 * kBlock, 2 * kBlock + 100}});
  auto counts = table.counts();
  CHECK(counts.zero == 3);
  CHECK(counts.partial == 2);
  CHECK(counts.unknown == 4);  // blocks 0, 6, 7 and the short block 8
}

TEST_CASE("a short final block of zeros is hashed at its length", "[table]") {
  auto parameters = make_parameters("sha256", kBlock);
  const uint64_t size = 3 * kBlock + 1000;
  BlockTable table(parameters, size);
  table.put_zero(0, size);
  std::vector<uint8_t> zeros(size, 0);
  CHECK(table_hex(table) == stream_hex(parameters, zeros));
  // Not the same as treating the final block as a full zero block.
  StreamingBlkhash padded(parameters);
  padded.zero(4 * kBlock);
  CHECK(table_hex(table) != padded.final().hex());
}

TEST_CASE("trim makes blocks unknown until read again", "[table]") {
  auto parameters = make_parameters("sha256", kBlock);
  std::mt19937_64 random(9);
  auto content = random_bytes(random, 4 * kBlock);
  BlockTable table(parameters, content.size());
  table.put_data(0, content);
  table.forget(kBlock, 2 * kBlock);
  CHECK(!table.root());
  CHECK(table.unknown_ranges() == std::vector<ByteRange>{{kBlock, 2 * kBlock}});
  CHECK(complete_from(table, content) == stream_hex(parameters, content));
}

TEST_CASE("ranges beyond the image are rejected", "[table]") {
  auto parameters = make_parameters("sha256", kBlock);
  BlockTable table(parameters, 10000);
  std::vector<uint8_t> bytes(10, 1);
  CHECK_THROWS_AS(table.put_data(9995, bytes), std::out_of_range);
  CHECK_THROWS_AS(table.put_zero(0, 10001), std::out_of_range);
  CHECK_NOTHROW(table.put_zero(0, 10000));
}

TEST_CASE("images with too many blocks are refused", "[table]") {
  auto parameters = make_parameters("sha256", kBlock);
  CHECK_THROWS_AS(BlockTable(parameters, uint64_t{1} << 62), ImageTooLarge);
  CHECK_NOTHROW(BlockTable(parameters, BlockTable::kMaxBlocks * kBlock));
}

}  // namespace
}  // namespace blkhash::test
