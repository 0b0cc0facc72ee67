// Folding the settled prefix (BlockTable::Fold::kSettledPrefix): the root
// is the same as without folding, a copy that advances through the image
// holds only a window of leaves, and a change to a folded block unfolds
// back to a checkpoint and makes exactly those bytes unknown again.
//
// Roots are checked against the streaming front door over a model of the
// image's bytes (the streaming front door is proven by the vectors).

#include <algorithm>
#include <cstring>
#include <random>

#include "catch.h"

#include "support.h"

namespace blkhash::test {
namespace {

constexpr uint32_t kBlock = 4096;
constexpr uint64_t kGroupBytes = 64 * uint64_t{kBlock};
// Blocks of a region, the unit of freeing and of checkpoints.
constexpr uint64_t kRegionBlocks = 65536;
constexpr uint64_t kRegionBytes = kRegionBlocks * kBlock;

constexpr auto kFold = BlockTable::Fold::kSettledPrefix;

TEST_CASE("a copy advancing with rewrites behind it agrees with the model",
          "[fold]") {
  const uint64_t seed = GENERATE(range(1, 41));
  std::mt19937_64 random(seed);
  // 4 to 8 groups and a short final block, sometimes.
  const uint64_t size = (4 + random() % 5) * kGroupBytes +
                        (random() % 2 ? random() % kBlock : 0);
  auto parameters = make_parameters(seed % 2 ? "sha256" : "xxh128", kBlock);
  BlockTable table(parameters, size, nullptr, kFold);
  std::vector<uint8_t> content(size, 0);
  INFO("seed " << seed << " size " << size);

  // A cursor moves through the image like a copy; now and then a request
  // lands behind it (into what may be folded), or is a read or a trim.
  uint64_t cursor = 0;
  uint64_t max_folded = 0;
  while (cursor < size) {
    const unsigned kind = random() % 20;
    uint64_t offset = cursor;
    if (kind >= 16) offset = random() % (cursor + 1);
    uint64_t length =
        std::min<uint64_t>(1 + random() % (8 * kBlock), size - offset);
    if (random() % 2) {  // aligned, as most copies are
      offset -= offset % kBlock;
      length = std::min<uint64_t>(
          std::max<uint64_t>(length - length % kBlock, kBlock), size - offset);
    }
    if (kind == 19) {  // trim: the storage may return anything
      auto bytes = random_bytes(random, length);
      std::copy(bytes.begin(), bytes.end(), content.begin() + offset);
      table.forget(offset, length);
      if (random() % 2)  // and a read of it
        table.fill_data(offset, {content.data() + offset, length});
    } else if (kind == 18) {  // a read of the current content
      table.fill_data(offset, {content.data() + offset, length});
    } else if (kind % 5 == 0) {
      std::fill_n(content.begin() + offset, length, 0);
      table.put_zero(offset, length);
    } else {
      auto bytes = random_bytes(random, length);
      std::copy(bytes.begin(), bytes.end(), content.begin() + offset);
      table.put_data(offset, bytes);
    }
    if (offset == cursor) cursor += length;
    // Now and then read what became unknown behind the cursor, so that
    // the fold goes on after unfolding.
    if (random() % 8 == 0)
      for (const ByteRange& r : table.unknown_ranges()) {
        if (r.offset >= cursor) break;
        uint64_t n = std::min(r.length, cursor - r.offset);
        table.fill_data(r.offset, {content.data() + r.offset, n});
      }
    max_folded = std::max(max_folded, table.folded_blocks());
    CHECK(table.root().has_value() == table.unknown_ranges().empty());
  }
  CHECK(max_folded > 0);
  CHECK(complete_from(table, content) == stream_hex(parameters, content));
  // Every block known after a sequential pass ends folded.
  CHECK(table.folded_blocks() == table.block_count());
}

TEST_CASE("the same random traffic with and without folding", "[fold]") {
  const uint64_t seed = GENERATE(range(1, 21));
  std::mt19937_64 random(seed);
  const uint64_t size = 3 * kGroupBytes + random() % kBlock;
  auto parameters = make_parameters("sha256", kBlock);
  BlockTable plain(parameters, size);
  BlockTable folding(parameters, size, nullptr, kFold);
  std::vector<uint8_t> content(size, 0);
  INFO("seed " << seed);
  for (int op = 0; op < 300; op++) {
    uint64_t offset = random() % size;
    uint64_t length = std::min<uint64_t>(1 + random() % (20 * kBlock),
                                         size - offset);
    switch (random() % 4) {
      case 0:
      case 1: {
        auto bytes = random_bytes(random, length);
        std::copy(bytes.begin(), bytes.end(), content.begin() + offset);
        plain.put_data(offset, bytes);
        folding.put_data(offset, bytes);
        break;
      }
      case 2:
        std::fill_n(content.begin() + offset, length, 0);
        plain.put_zero(offset, length);
        folding.put_zero(offset, length);
        break;
      case 3:
        plain.fill_data(offset, {content.data() + offset, length});
        folding.fill_data(offset, {content.data() + offset, length});
        break;
    }
    // Folding changes what is remembered, never the answer: where both
    // know every block they agree; folding may only know less.
    auto a = plain.root();
    auto b = folding.root();
    if (a && b) CHECK(*a == *b);
    if (b) CHECK(a);
  }
  const std::string expected = stream_hex(parameters, content);
  CHECK(complete_from(plain, content) == expected);
  CHECK(complete_from(folding, content) == expected);
}

TEST_CASE("a copy with 64 requests in flight keeps a window of leaves",
          "[fold][memory]") {
  // 1.25 regions of data in 256K requests, 64 at a time, each batch in
  // a random order (nbdcopy has 64 in flight and they end in any order).
  auto parameters = make_parameters("sha256", kBlock);
  const uint64_t size = kRegionBytes + kRegionBytes / 4;
  const uint64_t request = 256 * 1024;
  BlockTable table(parameters, size, nullptr, kFold);
  const size_t base = table.memory_bytes();
  StreamingBlkhash reference(parameters);

  std::mt19937_64 random(7);
  auto pattern = random_bytes(random, request);
  auto request_bytes = [&](uint64_t offset) {
    // Distinct blocks: stamp each with its offset.
    std::vector<uint8_t> bytes = pattern;
    for (uint64_t b = 0; b < request; b += kBlock) {
      const uint64_t block_offset = offset + b;
      std::memcpy(bytes.data() + b, &block_offset, sizeof(block_offset));
    }
    return bytes;
  };

  size_t peak = 0;
  for (uint64_t batch = 0; batch < size; batch += 64 * request) {
    std::vector<uint64_t> offsets;
    for (uint64_t o = batch; o < std::min(size, batch + 64 * request);
         o += request)
      offsets.push_back(o);
    std::shuffle(offsets.begin(), offsets.end(), random);
    for (uint64_t offset : offsets) {
      table.put_data(offset, request_bytes(offset));
      peak = std::max(peak, table.memory_bytes() - base);
    }
  }
  for (uint64_t offset = 0; offset < size; offset += request)
    reference.update(request_bytes(offset));

  CHECK(table_hex(table) == reference.final().hex());
  CHECK(table.folded_blocks() == table.block_count());
  // Without folding: 32 bytes for each of 81920 blocks plus two regions
  // of groups, 2.6 MiB.  With it: the leaves of the window (64 requests
  // of 64 blocks) and at most two regions of groups at once.
  const size_t window_leaves = 64 * 64 * 32;
  const size_t regions = 2 * 32 * 1024;
  INFO("peak " << peak);
  CHECK(peak <= 2 * window_leaves + regions + 8 * 1024);
  // The first region is freed once folded.
  CHECK(table.memory_bytes() - base <= regions / 2 + 2048);
}

TEST_CASE("a write into a folded block unfolds back to a checkpoint",
          "[fold]") {
  auto parameters = make_parameters("sha256", kBlock);
  // 20 regions and a bit: checkpoints at the start of regions 0, 1, 2,
  // 4, 8, 16 and of the latest 8 (12-19).
  const uint64_t size = 20 * kRegionBytes + 100 * kBlock + 10;
  BlockTable table(parameters, size, nullptr, kFold);
  table.put_zero(0, size);
  REQUIRE(table.folded_blocks() == table.block_count());
  REQUIRE(table.root());
  CHECK(table.unfolded_bytes() == 0);

  // A write in region 13: back to its own checkpoint.
  std::vector<uint8_t> data(3 * kBlock, 0x5a);
  const uint64_t at13 = 13 * kRegionBytes + 5 * kBlock;
  table.put_data(at13, data);
  CHECK(table.unfolded_bytes() == size - 13 * kRegionBytes);
  CHECK(table.folded_blocks() == 13 * kRegionBlocks);
  CHECK(!table.root());
  CHECK(table.unknown_ranges() ==
        std::vector<ByteRange>{{13 * kRegionBytes, 5 * kBlock},
                               {at13 + data.size(), size - at13 - data.size()}});

  // A trim in region 10: back to region 8's checkpoint (9-11 thinned).
  table.forget(10 * kRegionBytes + 7, 1);
  CHECK(table.unfolded_bytes() ==
        size - 13 * kRegionBytes + 5 * kRegionBytes);
  CHECK(table.folded_blocks() == 8 * kRegionBlocks);

  // Reading the unknown ranges back (zeros, but for the write) gives the
  // root of the image, and folds it all again.
  const std::vector<uint8_t> zeros(1 << 20, 0);
  for (const ByteRange& r : table.unknown_ranges())
    for (uint64_t done = 0; done < r.length;) {
      uint64_t n = std::min<uint64_t>(zeros.size(), r.length - done);
      table.fill_data(r.offset + done, {zeros.data(), n});
      done += n;
    }
  CHECK(table.folded_blocks() == table.block_count());
  StreamingBlkhash reference(parameters);
  reference.zero(at13);
  reference.update(data);
  reference.zero(size - at13 - data.size());
  CHECK(table_hex(table) == reference.final().hex());

  // A zero write in block 0: everything unfolds.
  const uint64_t before = table.unfolded_bytes();
  table.put_zero(0, kBlock);
  CHECK(table.unfolded_bytes() == before + size);
  CHECK(table.unknown_bytes() == size - kBlock);
}

TEST_CASE("reads and zero extents never unfold", "[fold]") {
  auto parameters = make_parameters("sha256", kBlock);
  std::mt19937_64 random(11);
  auto content = random_bytes(random, 2 * kGroupBytes);
  BlockTable table(parameters, content.size(), nullptr, kFold);
  table.put_data(0, content);
  REQUIRE(table.folded_blocks() == 128);
  std::vector<uint8_t> stale(kGroupBytes, 1);
  table.fill_data(100, stale);
  table.fill_zero(0, content.size());
  CHECK(table.unfolded_bytes() == 0);
  CHECK(table_hex(table) == stream_hex(parameters, content));
  auto counts = table.counts();
  CHECK(counts.folded == 128);
  CHECK(counts.data + counts.zero + counts.partial + counts.unknown == 0);
}

}  // namespace
}  // namespace blkhash::test
