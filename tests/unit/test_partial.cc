// PartialBlock on its own, against a trivially correct model: one byte
// and one "known" flag per byte of the block, and a "seen" flag.
//
//   put(o, n, d)     bytes [o, o+n) := d (zeros if null), known; seen
//   fill(o, n, d)    the unknown bytes of [o, o+n) := d, known; seen if d
//   forget(o, n)     bytes [o, o+n) unknown
//
// After every operation the block must agree with the model on every
// known byte, on complete(), nothing_known(), seen(), and on missing(),
// which must be the maximal runs of unknown bytes, in order.

#include <algorithm>
#include <random>
#include <vector>

#include "catch.h"

#include "partial_block.h"
#include "support.h"

namespace blkhash::test {
namespace {

struct Model {
  std::vector<uint8_t> bytes;
  std::vector<bool> known;
  bool seen = false;

  Model(uint32_t length, bool known_zero)
      : bytes(length, 0), known(length, known_zero) {}

  void set(uint32_t offset, uint32_t n, const uint8_t* data, bool only_unknown) {
    for (uint32_t i = 0; i < n; i++) {
      if (only_unknown && known[offset + i]) continue;
      bytes[offset + i] = data ? data[i] : 0;
      known[offset + i] = true;
    }
  }

  // The maximal runs of unknown bytes, in order.
  std::vector<ByteRange> missing() const {
    std::vector<ByteRange> runs;
    for (uint32_t i = 0; i < known.size(); i++) {
      if (known[i]) continue;
      if (!runs.empty() && runs.back().end() == i)
        runs.back().length++;
      else
        runs.push_back({i, 1});
    }
    return runs;
  }
};

void check_agrees(const PartialBlock& block, const Model& model) {
  const bool all = std::all_of(model.known.begin(), model.known.end(),
                               [](bool k) { return k; });
  const bool none = std::none_of(model.known.begin(), model.known.end(),
                                 [](bool k) { return k; });
  REQUIRE(block.length() == model.bytes.size());
  CHECK(block.complete() == all);
  CHECK(block.nothing_known() == none);
  CHECK(block.seen() == model.seen);
  CHECK(block.missing() == model.missing());
  auto bytes = block.bytes();
  for (size_t i = 0; i < model.bytes.size(); i++)
    if (model.known[i] && bytes[i] != model.bytes[i]) {
      FAIL_CHECK("byte " << i << " is " << int(bytes[i]) << ", model "
                         << int(model.bytes[i]));
      break;
    }
  CHECK(block.memory_bytes() >= model.bytes.size());
}

TEST_CASE("random put, fill and forget agree with a byte model",
          "[partial]") {
  const uint64_t seed = GENERATE(range(1, 201));
  std::mt19937_64 random(seed);
  // Small blocks, so that pieces overlap, touch and cover the block often.
  const uint32_t length =
      seed % 10 == 0 ? 4096 : 1 + static_cast<uint32_t>(random() % 64);
  const bool known_zero = random() % 4 == 0;
  PartialBlock block(length, known_zero);
  Model model(length, known_zero);
  INFO("seed " << seed << " length " << length << " known_zero "
               << known_zero);
  check_agrees(block, model);

  for (int op = 0; op < 60; op++) {
    const uint32_t offset = static_cast<uint32_t>(random() % length);
    const uint32_t n =
        1 + static_cast<uint32_t>(random() % (length - offset));
    const bool zeros = random() % 4 == 0;
    const std::vector<uint8_t> data = random_bytes(random, n);
    const uint8_t* source = zeros ? nullptr : data.data();
    const char* name = "";
    switch (random() % 3) {
      case 0:
        name = "put";
        block.put(offset, n, source);
        model.set(offset, n, source, false);
        model.seen = true;
        break;
      case 1:
        name = "fill";
        block.fill(offset, n, source);
        model.set(offset, n, source, true);
        model.seen = model.seen || source != nullptr;
        break;
      case 2:
        name = "forget";
        block.forget(offset, n);
        std::fill_n(model.known.begin() + offset, n, false);
        break;
    }
    INFO("op " << op << ": " << name << " " << offset << "+" << n
               << (zeros ? " zeros" : ""));
    check_agrees(block, model);
  }
}

TEST_CASE("a fill never overrides a put", "[partial]") {
  PartialBlock block(100, false);
  const std::vector<uint8_t> written(40, 0xaa);
  const std::vector<uint8_t> read(100, 0x55);
  block.put(30, 40, written.data());
  block.fill(0, 100, read.data());
  REQUIRE(block.complete());
  for (uint32_t i = 0; i < 100; i++)
    CHECK(block.bytes()[i] == (i >= 30 && i < 70 ? 0xaa : 0x55));
}

TEST_CASE("only writes and reads of data make a block seen", "[partial]") {
  PartialBlock zeros(100, true);
  CHECK(zeros.complete());
  CHECK(!zeros.seen());
  PartialBlock extents(100, false);
  extents.fill(0, 50, nullptr);  // a zero extent
  CHECK(!extents.seen());
  extents.forget(10, 5);
  CHECK(!extents.seen());
  const std::vector<uint8_t> data(10, 1);
  PartialBlock read(100, false);
  read.fill(20, 10, data.data());
  CHECK(read.seen());
  PartialBlock written_zeros(100, false);
  written_zeros.put(0, 10, nullptr);  // a client's write of zeros
  CHECK(written_zeros.seen());
}

TEST_CASE("forgetting the middle of a known block leaves two runs",
          "[partial]") {
  PartialBlock block(4096, true);
  block.forget(100, 50);
  CHECK(block.missing() == std::vector<ByteRange>{{100, 50}});
  block.forget(4000, 96);
  CHECK(block.missing() == std::vector<ByteRange>{{100, 50}, {4000, 96}});
  block.put(100, 50, nullptr);
  CHECK(block.missing() == std::vector<ByteRange>{{4000, 96}});
  block.forget(0, 4096);
  CHECK(block.nothing_known());
  CHECK(block.missing() == std::vector<ByteRange>{{0, 4096}});
}

}  // namespace
}  // namespace blkhash::test
