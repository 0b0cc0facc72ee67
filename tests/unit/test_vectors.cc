// Every row of tests/data/vectors.tsv (produced by the reference blksum)
// through both front doors of the engine.

#include <algorithm>
#include <map>
#include <random>

#include "catch.h"

#include "support.h"

namespace blkhash::test {
namespace {

const std::vector<uint8_t>& image(const std::string& name) {
  static std::map<std::string, std::vector<uint8_t>> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, read_image(name)).first;
  return it->second;
}

// Streaming, in chunks of `chunk` bytes; all-zero chunks go through
// zero() rather than update().
std::string stream_chunked(const Parameters& parameters,
                           const std::vector<uint8_t>& bytes, size_t chunk) {
  StreamingBlkhash stream(parameters);
  for (size_t offset = 0; offset < bytes.size(); offset += chunk) {
    size_t n = std::min(chunk, bytes.size() - offset);
    bool zeros = std::all_of(bytes.begin() + offset,
                             bytes.begin() + offset + n,
                             [](uint8_t b) { return b == 0; });
    if (zeros)
      stream.zero(n);
    else
      stream.update({bytes.data() + offset, n});
  }
  return stream.final().hex();
}

// Offset-keyed, chunks of random sizes in random order; zero chunks as
// put_zero().  With folding, what a random order settles is folded.
std::string table_shuffled(const Parameters& parameters,
                           const std::vector<uint8_t>& bytes,
                           std::mt19937_64& random, BlockTable::Fold fold) {
  BlockTable table(parameters, bytes.size(), nullptr, fold);
  std::vector<ByteRange> chunks;
  const uint64_t max_chunk = 3 * uint64_t{parameters.block_size()};
  for (uint64_t offset = 0; offset < bytes.size();) {
    uint64_t n = std::min<uint64_t>(1 + random() % max_chunk,
                                    bytes.size() - offset);
    // Large chunks for the 1 GiB image, or this takes minutes.
    if (bytes.size() > (64u << 20)) n = std::min<uint64_t>(64u << 20, bytes.size() - offset);
    chunks.push_back({offset, n});
    offset += n;
  }
  std::shuffle(chunks.begin(), chunks.end(), random);
  for (const auto& c : chunks) {
    const uint8_t* p = bytes.data() + c.offset;
    if (std::all_of(p, p + c.length, [](uint8_t b) { return b == 0; }))
      table.put_zero(c.offset, c.length);
    else
      table.put_data(c.offset, {p, c.length});
  }
  return table_hex(table);
}

TEST_CASE("all 120 vectors, streaming and offset-keyed", "[vectors]") {
  const auto vectors = load_vectors();
  REQUIRE(vectors.size() == 120);
  std::mt19937_64 random(20261201);

  for (const Vector& v : vectors) {
    INFO(v.name << " " << v.digest << "/" << v.block_size);
    const auto& bytes = image(v.name);
    REQUIRE(bytes.size() == v.size);
    Parameters parameters = make_parameters(v.digest, v.block_size);

    CHECK(stream_hex(parameters, bytes) == v.expected);
    CHECK(stream_chunked(parameters, bytes, 4096) == v.expected);
    CHECK(stream_chunked(parameters, bytes, 65536 + 511) == v.expected);
    CHECK(table_shuffled(parameters, bytes, random,
                         BlockTable::Fold::kNone) == v.expected);
    CHECK(table_shuffled(parameters, bytes, random,
                         BlockTable::Fold::kSettledPrefix) == v.expected);
  }
}

TEST_CASE("empty image is H(LE64(0))", "[vectors]") {
  // The spec's value for sha256.
  auto parameters = make_parameters("sha256", 65536);
  CHECK(stream_hex(parameters, {}) ==
        "af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc");
  BlockTable table(parameters, 0);
  CHECK(table_hex(table) ==
        "af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc");
}

}  // namespace
}  // namespace blkhash::test
