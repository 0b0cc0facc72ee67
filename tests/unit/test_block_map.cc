// Block maps (block_map.h): the writer's bytes against a map assembled
// here by hand from OpenSSL digests (the documented format, not the
// writer), the reader's checks (root recomputes, expected root, malformed
// input), and diff's ranges.  The Python cross-check (tools/check_maps.py)
// proves the same against hashlib.

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>

#include "catch.h"

#include "block_map.h"
#include "support.h"

namespace blkhash::test {
namespace {

std::string sha256(const void* data, size_t n) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  REQUIRE(EVP_Digest(data, n, out, &len, EVP_sha256(), nullptr) == 1);
  return std::string(reinterpret_cast<char*>(out), len);
}

void le(std::string& out, uint64_t v, int n) {
  for (int i = 0; i < n; i++) out.push_back(static_cast<char>(v >> (8 * i)));
}

// The map of `bytes` (sha256, block size bs), built from the format's
// description with OpenSSL: canonical runs.
std::string hand_map(const std::vector<uint8_t>& bytes, uint32_t bs) {
  std::string outer, body;
  char kind = 0;
  size_t count_at = 0;
  uint64_t count = 0;
  auto close = [&] {
    if (kind)
      for (int i = 0; i < 8; i++)
        body[count_at + i] = static_cast<char>(count >> (8 * i));
  };
  for (size_t off = 0; off < bytes.size(); off += bs) {
    const size_t n = std::min<size_t>(bs, bytes.size() - off);
    const std::string leaf = sha256(bytes.data() + off, n);
    const std::vector<uint8_t> zeros(n);
    const char k = leaf == sha256(zeros.data(), n) ? 'Z' : 'D';
    outer += leaf;
    if (k != kind) {
      close();
      kind = k;
      body.push_back(k);
      count_at = body.size();
      le(body, 0, 8);
      count = 0;
    }
    count++;
    if (k == 'D') body += leaf;
  }
  close();
  le(outer, bytes.size(), 8);
  std::string out("BLKHMAP\0", 8);
  le(out, 1, 4);
  le(out, bs, 4);
  le(out, bytes.size(), 8);
  out.push_back(6);
  out.push_back(32);
  out += "sha256" + sha256(outer.data(), outer.size());
  return out + body;
}

std::string write_map(const Parameters& parameters,
                      const std::vector<uint8_t>& bytes) {
  BlockMapWriter writer(parameters, bytes.size());
  const uint32_t bs = parameters.block_size();
  std::vector<uint8_t> leaf(parameters.digest_size());
  for (size_t off = 0; off < bytes.size(); off += bs) {
    parameters.leaf({bytes.data() + off,
                     std::min<size_t>(bs, bytes.size() - off)},
                    leaf.data());
    writer.add_leaf(leaf.data());
  }
  return writer.finish();
}

std::span<const uint8_t> span_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// The message of the BlockMapError parsing throws ("" if none).
std::string refusal(std::span<const uint8_t> bytes,
                    const std::optional<DigestValue>& root = {}) {
  try {
    BlockMap::parse(bytes, root);
  } catch (const BlockMapError& e) {
    return e.what();
  }
  return "";
}

// Zeros and data mixed, ending in a short block of zeros.
std::vector<uint8_t> sample(std::mt19937_64& random, uint32_t bs) {
  std::vector<uint8_t> bytes;
  for (int i = 0; i < 12; i++) {
    auto block = i % 4 == 1 || i == 5 ? std::vector<uint8_t>(bs)
                                       : random_bytes(random, bs);
    bytes.insert(bytes.end(), block.begin(), block.end());
  }
  bytes.resize(bytes.size() + 100);  // short final block of zeros
  return bytes;
}

TEST_CASE("the writer's bytes are the documented format", "[map]") {
  std::mt19937_64 random(7);
  const Parameters parameters = make_parameters("sha256", 4096);
  const auto bytes = sample(random, 4096);
  const std::string map = write_map(parameters, bytes);
  CHECK(map == hand_map(bytes, 4096));

  const BlockMap read = BlockMap::parse(span_of(map));
  CHECK(read.root().hex() == stream_hex(parameters, bytes));
  CHECK(read.block_count() == 13);
  CHECK(read.image_size() == bytes.size());
  for (uint64_t b = 0; b < 13; b++) {
    const size_t n = std::min<size_t>(4096, bytes.size() - b * 4096);
    CHECK(read.leaf(b).bytes().size() == 32);
    CHECK(std::string(reinterpret_cast<const char*>(read.leaf(b).data()), 32) ==
          sha256(bytes.data() + b * 4096, n));
  }
}

TEST_CASE("zero blocks added as zeros give the same map", "[map]") {
  const Parameters parameters = make_parameters("sha256", 4096);
  std::vector<uint8_t> bytes(4096 * 3 + 10);
  bytes[4096 + 5] = 1;
  BlockMapWriter writer(parameters, bytes.size());
  writer.add_zero_blocks(1);
  std::vector<uint8_t> leaf(32);
  parameters.leaf({bytes.data() + 4096, 4096}, leaf.data());
  writer.add_leaf(leaf.data());
  writer.add_zero_blocks(2);  // one full, the short final one
  CHECK(writer.finish() == hand_map(bytes, 4096));
}

TEST_CASE("a 1 TiB image of holes is one zero run", "[map]") {
  const Parameters parameters = make_parameters("sha256", 65536);
  BlockMapWriter writer(parameters, uint64_t{1} << 40);
  writer.add_zero_blocks(uint64_t{1} << 24);
  const std::string map = writer.finish();
  CHECK(map.size() == 8 + 18 + 6 + 32 + 9);
  const BlockMap read = BlockMap::parse(span_of(map), writer.root());
  CHECK(read.block_count() == uint64_t{1} << 24);
  CHECK(read.leaf((uint64_t{1} << 24) - 1) == parameters.zero_leaf());
}

TEST_CASE("the reader refuses maps whose root does not hold", "[map]") {
  std::mt19937_64 random(8);
  const Parameters parameters = make_parameters("sha256", 4096);
  const auto bytes = sample(random, 4096);
  const std::string good = write_map(parameters, bytes);
  const DigestValue root = BlockMap::parse(span_of(good)).root();

  SECTION("a leaf changed, old root") {
    std::string bad = good;
    bad[8 + 18 + 6 + 32 + 9 + 3] ^= 1;  // the first data run's first leaf
    CHECK(refusal(span_of(bad)).find("does not recompute") !=
          std::string::npos);
  }
  SECTION("a forged leaf with its root recomputed: refused given the root") {
    auto forged_bytes = bytes;
    forged_bytes[3] ^= 1;
    const std::string forged = write_map(parameters, forged_bytes);
    CHECK_NOTHROW(BlockMap::parse(span_of(forged)));
    CHECK(refusal(span_of(forged), root).find("expected") !=
          std::string::npos);
    CHECK_NOTHROW(BlockMap::parse(span_of(good), root));
  }
  SECTION("malformed") {
    CHECK_THROWS_AS(BlockMap::parse(span_of(good.substr(0, good.size() - 1))),
                    BlockMapError);
    CHECK_THROWS_AS(BlockMap::parse(span_of(good + "x")), BlockMapError);
    std::string magic = good;
    magic[0] = 'X';
    CHECK(refusal(span_of(magic)).find("magic") != std::string::npos);
    std::string version = good;
    version[8] = 2;
    CHECK_THROWS_AS(BlockMap::parse(span_of(version)), BlockMapError);
    std::string kind = good;
    kind[8 + 18 + 6 + 32] = 'Q';
    CHECK(refusal(span_of(kind)).find("record type") != std::string::npos);
  }
}

TEST_CASE("diff names the blocks that differ", "[map]") {
  std::mt19937_64 random(9);
  const Parameters parameters = make_parameters("sha256", 4096);
  auto bytes = sample(random, 4096);
  const BlockMap a = BlockMap::parse(span_of(write_map(parameters, bytes)));
  bytes[2 * 4096 + 7] ^= 1;                 // block 2
  bytes[5 * 4096] = 1;                      // block 5, was zeros
  bytes[6 * 4096 + 1] ^= 1;                 // block 6
  bytes[bytes.size() - 1] = 9;              // block 12, the short final one
  const BlockMap b = BlockMap::parse(span_of(write_map(parameters, bytes)));
  const BlockRangeList ranges = BlockMap::diff(a, b);
  CHECK(ranges.kept() == std::vector<BlockRange>{{2, 1}, {5, 2}, {12, 1}});
  CHECK(ranges.text() == "2,5-6,12");
  CHECK(BlockMap::diff(a, a).empty());
  const BlockRangeList first = BlockMap::diff(a, b, 1);
  CHECK(first.text() == "2,... (3 ranges)");
  CHECK(first.block_count() == 4);
}

// Records every leaf a table tells, as hex, by block.
struct Recorder : LeafObserver {
  std::map<uint64_t, std::string> leaves;
  void leaf_known(uint64_t block, const uint8_t* leaf) override {
    leaves[block] = std::string(reinterpret_cast<const char*>(leaf), 32);
  }
};

TEST_CASE("a table's map and the leaves it tells", "[map]") {
  const uint64_t seed = GENERATE(range(1, 6));
  std::mt19937_64 random(seed);
  const Parameters parameters = make_parameters("sha256", 4096);
  const auto bytes = sample(random, 4096);
  Recorder recorder;
  BlockTable table(parameters, bytes.size(), nullptr, BlockTable::Fold::kNone,
                   &recorder);
  // Unordered writes of random sizes; zero blocks written as zeroes.
  std::vector<std::pair<uint64_t, uint64_t>> chunks;
  for (uint64_t off = 0; off < bytes.size();) {
    const uint64_t n = std::min<uint64_t>(1 + random() % 9000,
                                          bytes.size() - off);
    chunks.push_back({off, n});
    off += n;
  }
  std::shuffle(chunks.begin(), chunks.end(), random);
  for (auto [off, n] : chunks) {
    CHECK(!table.map());  // incomplete
    if (std::all_of(bytes.begin() + off, bytes.begin() + off + n,
                    [](uint8_t b) { return b == 0; }))
      table.put_zero(off, n);
    else
      table.put_data(off, {bytes.data() + off, n});
  }
  const auto map = table.map();
  REQUIRE(map);
  CHECK(*map == hand_map(bytes, 4096));
  REQUIRE(recorder.leaves.size() == 13);
  for (uint64_t b = 0; b < 13; b++)
    CHECK(recorder.leaves[b] ==
          sha256(bytes.data() + b * 4096,
                 std::min<size_t>(4096, bytes.size() - b * 4096)));
}

TEST_CASE("a folded table has no map", "[map]") {
  const Parameters parameters = make_parameters("sha256", 4096);
  std::vector<uint8_t> bytes(4096 * 130, 1);
  BlockTable table(parameters, bytes.size(), nullptr,
                   BlockTable::Fold::kSettledPrefix);
  table.put_data(0, bytes);
  CHECK(table.root());
  CHECK(!table.map());
}

}  // namespace
}  // namespace blkhash::test
