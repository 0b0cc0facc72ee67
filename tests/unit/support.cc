// See support.h.

#include "support.h"

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

namespace blkhash::test {

namespace {

std::string env_dir(const char* name) {
  const char* value = std::getenv(name);
  if (!value || !*value)
    throw std::runtime_error(std::string(name) + " is not set (run via meson test)");
  return value;
}

}  // namespace

std::vector<Vector> load_vectors() {
  std::ifstream file(env_dir("BLKHASH_TEST_DATA") + "/vectors.tsv");
  if (!file) throw std::runtime_error("cannot open vectors.tsv");
  std::vector<Vector> vectors;
  std::string line;
  std::getline(file, line);  // header
  while (std::getline(file, line)) {
    if (line.empty()) continue;
    std::istringstream fields(line);
    Vector v;
    fields >> v.name >> v.size >> v.digest >> v.block_size >> v.expected;
    if (!fields) throw std::runtime_error("bad vector line: " + line);
    vectors.push_back(v);
  }
  return vectors;
}

std::vector<uint8_t> read_image(const std::string& name) {
  std::string path = env_dir("BLKHASH_TEST_IMAGES") + "/" + name + ".raw";
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::runtime_error("cannot open " + path);
  return {std::istreambuf_iterator<char>(file),
          std::istreambuf_iterator<char>()};
}

std::vector<uint8_t> random_bytes(std::mt19937_64& random, size_t n) {
  std::vector<uint8_t> bytes(n);
  for (auto& b : bytes) b = static_cast<uint8_t>(random());
  return bytes;
}

Parameters make_parameters(const std::string& digest, uint32_t block_size) {
  return Parameters(DigestAlgorithm::create(digest), block_size);
}

std::string stream_hex(const Parameters& parameters,
                       const std::vector<uint8_t>& bytes) {
  StreamingBlkhash stream(parameters);
  stream.update(bytes);
  return stream.final().hex();
}

std::string table_hex(const BlockTable& table) {
  auto root = table.root();
  return root ? root->hex() : "incomplete";
}

std::string complete_from(BlockTable& table,
                          const std::vector<uint8_t>& content) {
  for (const ByteRange& r : table.unknown_ranges())
    table.fill_data(r.offset, {content.data() + r.offset, r.length});
  if (!table.unknown_ranges().empty()) return "incomplete";
  return table_hex(table);
}

}  // namespace blkhash::test
