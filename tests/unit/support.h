// Helpers shared by the engine tests: test data locations, the vector
// table, deterministic random bytes, and a trivially correct model image.

#ifndef BLKHASH_TESTS_SUPPORT_H
#define BLKHASH_TESTS_SUPPORT_H

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "block_table.h"
#include "parameters.h"
#include "streaming.h"

namespace blkhash::test {

// One row of tests/data/vectors.tsv.
struct Vector {
  std::string name;
  uint64_t size;
  std::string digest;
  uint32_t block_size;
  std::string expected;
};

// $BLKHASH_TEST_DATA/vectors.tsv (set by meson).
std::vector<Vector> load_vectors();

// Bytes of $BLKHASH_TEST_IMAGES/<name>.raw (generated at build time).
std::vector<uint8_t> read_image(const std::string& name);

std::vector<uint8_t> random_bytes(std::mt19937_64& random, size_t n);

Parameters make_parameters(const std::string& digest, uint32_t block_size);

// The streaming root of `bytes`.
std::string stream_hex(const Parameters& parameters,
                       const std::vector<uint8_t>& bytes);

// The table's root, or "incomplete".
std::string table_hex(const BlockTable& table);

// Reads every unknown range from `content`, as the filter reads the
// plugin, and returns the root ("incomplete" if ranges stay unknown).
std::string complete_from(BlockTable& table,
                          const std::vector<uint8_t>& content);

}  // namespace blkhash::test

#endif  // BLKHASH_TESTS_SUPPORT_H
