// blkhash-tool: the engine on the command line, for the tests.
//
//   blkhash-tool [--digest NAME] [--block-size SIZE] [--mode MODE]
//                [--seed N] [--xxh3-kernel ISA] FILE
//
// Prints the lowercase hex blkhash of FILE's bytes and a newline.
//   --mode stream   streaming front door, in chunks of odd sizes (default)
//   --mode table    offset-keyed front door, chunks of random sizes written
//                   in random order (seeded by --seed)
// Exit status 2 for bad arguments, 1 for errors.  The Python tests compare
// its output with an independent reference (tests/tools/blkhash_ref.py).
//
// Block maps (common/block_map.h):
//   blkhash-tool [--digest NAME] [--block-size SIZE] map FILE OUT
//       writes the map of FILE to OUT (holes found with SEEK_HOLE are not
//       read) and prints its root
//   blkhash-tool check MAP [ROOT]
//       reads MAP (its root must recompute, and be ROOT if given) and
//       prints its root; exit 1 if it is refused
//   blkhash-tool [--max-ranges N] diff MAP1 MAP2
//       prints "same" and exits 0, or prints the differing block ranges
//       (the first N, default 20, then the count) and exits 1

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "block_map.h"
#include "block_table.h"
#include "digest.h"
#include "parameters.h"
#include "streaming.h"

namespace {

int usage() {
  std::cerr << "usage: blkhash-tool [--digest NAME] [--block-size SIZE] "
               "[--mode stream|table] [--seed N] [--xxh3-kernel ISA] FILE\n"
               "       blkhash-tool [--digest NAME] [--block-size SIZE] "
               "map FILE OUT\n"
               "       blkhash-tool check MAP [ROOT]\n"
               "       blkhash-tool [--max-ranges N] diff MAP1 MAP2\n";
  return 2;
}

// The map of the file at `path`, block by block; whole blocks inside a
// hole (SEEK_HOLE) are zero blocks, not read.
int make_map(const blkhash::Parameters& parameters, const std::string& path,
             const std::string& out_path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd == -1) throw std::runtime_error("cannot open " + path);
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  const off_t end = lseek(fd, 0, SEEK_END);
  if (end < 0) throw std::runtime_error("cannot seek " + path);
  const uint64_t size = static_cast<uint64_t>(end);
  const uint32_t bs = parameters.block_size();
  blkhash::BlockMapWriter writer(parameters, size);
  std::vector<uint8_t> block(bs);
  std::vector<uint8_t> leaf(parameters.digest_size());
  uint64_t offset = 0;
  while (offset < size) {
    off_t data = lseek(fd, static_cast<off_t>(offset), SEEK_DATA);
    uint64_t data_at = data < 0 ? size : static_cast<uint64_t>(data);
    if (data_at >= offset + bs || data_at == size) {
      // Whole blocks of hole up to the block holding the next data.
      uint64_t hole_blocks = (std::min(data_at, size) - offset) / bs;
      if (data_at == size) hole_blocks = (size - offset + bs - 1) / bs;
      writer.add_zero_blocks(hole_blocks);
      offset += hole_blocks * bs;
      continue;
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(bs, size - offset));
    size_t got = 0;
    while (got < n) {
      ssize_t r = pread(fd, block.data() + got, n - got,
                        static_cast<off_t>(offset + got));
      if (r <= 0) throw std::runtime_error("cannot read " + path);
      got += static_cast<size_t>(r);
    }
    parameters.leaf({block.data(), n}, leaf.data());
    writer.add_leaf(leaf.data());
    offset += n;
  }
  const std::string bytes = writer.finish();
  std::ofstream out(out_path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw std::runtime_error("cannot write " + out_path);
  std::cout << writer.root().hex() << "\n";
  return 0;
}

std::optional<blkhash::DigestValue> parse_hex(const std::string& hex) {
  if (hex.size() % 2 || hex.size() > 2 * blkhash::kMaxDigestSize)
    throw std::invalid_argument("bad root " + hex);
  std::vector<uint8_t> bytes;
  for (size_t i = 0; i < hex.size(); i += 2)
    bytes.push_back(static_cast<uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
  return blkhash::DigestValue(bytes);
}

uint64_t parse_size(const std::string& text) {
  size_t used = 0;
  uint64_t value = std::stoull(text, &used);
  std::string suffix = text.substr(used);
  if (suffix == "K" || suffix == "k") return value << 10;
  if (suffix == "M" || suffix == "m") return value << 20;
  if (suffix.empty()) return value;
  throw std::invalid_argument("bad size " + text);
}

}  // namespace

int main(int argc, char** argv) {
  std::string digest = blkhash::kDefaultDigest;
  uint64_t block_size = blkhash::kDefaultBlockSize;
  std::string mode = "stream";
  std::string kernel;
  uint64_t seed = 1;
  size_t max_ranges = 20;
  std::string path;
  std::vector<std::string> operands;

  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
      return argv[++i];
    };
    try {
      if (arg == "--digest") digest = value();
      else if (arg == "--block-size") block_size = parse_size(value());
      else if (arg == "--mode") mode = value();
      else if (arg == "--seed") seed = std::stoull(value());
      else if (arg == "--xxh3-kernel") kernel = value();
      else if (arg == "--max-ranges") max_ranges = std::stoull(value());
      else if (!arg.empty() && arg[0] == '-') return usage();
      else operands.push_back(arg);
    } catch (const std::exception& e) {
      std::cerr << "blkhash-tool: " << e.what() << "\n";
      return 2;
    }
  }
  const std::string command = operands.empty() ? "" : operands[0];
  try {
    if (command == "map" && operands.size() == 3) {
      blkhash::Parameters parameters(blkhash::DigestAlgorithm::create(digest),
                                     static_cast<uint32_t>(block_size));
      return make_map(parameters, operands[1], operands[2]);
    }
    if (command == "check" && (operands.size() == 2 || operands.size() == 3)) {
      std::optional<blkhash::DigestValue> root;
      if (operands.size() == 3) root = parse_hex(operands[2]);
      auto map = blkhash::BlockMap::load(operands[1], root);
      std::cout << map.root().hex() << "\n";
      return 0;
    }
    if (command == "diff" && operands.size() == 3) {
      auto a = blkhash::BlockMap::load(operands[1]);
      auto b = blkhash::BlockMap::load(operands[2]);
      auto ranges = blkhash::BlockMap::diff(a, b, max_ranges);
      if (ranges.empty()) {
        std::cout << "same\n";
        return 0;
      }
      std::cout << "blocks " << ranges.text() << "\n"
                << ranges.range_count() << " ranges, " << ranges.block_count()
                << " blocks differ\n";
      return 1;
    }
  } catch (const blkhash::BlockMapError& e) {
    std::cerr << "blkhash-tool: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "blkhash-tool: " << e.what() << "\n";
    return command == "map" ? 1 : 2;
  }
  if (operands.size() == 1 && command != "map" && command != "check" &&
      command != "diff")
    path = operands[0];
  if (path.empty() || (mode != "stream" && mode != "table")) return usage();

  try {
    if (!kernel.empty() && !blkhash::select_xxh3_kernel(kernel)) {
      std::cerr << "blkhash-tool: no xxh3 kernel " << kernel << " here\n";
      return 2;
    }
    std::ifstream file(path, std::ios::binary);
    if (!file) throw std::runtime_error("cannot open " + path);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(file)),
                               std::istreambuf_iterator<char>());

    blkhash::Parameters parameters(blkhash::DigestAlgorithm::create(digest),
                                   static_cast<uint32_t>(block_size));
    std::mt19937_64 random(seed);
    blkhash::DigestValue root;

    if (mode == "stream") {
      blkhash::StreamingBlkhash stream(parameters);
      size_t offset = 0;
      size_t chunk = 4093;
      while (offset < bytes.size()) {
        size_t n = std::min(chunk, bytes.size() - offset);
        stream.update({bytes.data() + offset, n});
        offset += n;
        chunk = chunk * 3 + 1;  // odd sizes, growing
        if (chunk > (8u << 20)) chunk = 4093;
      }
      root = stream.final();
    } else {
      blkhash::BlockTable table(parameters, bytes.size());
      std::vector<blkhash::ByteRange> chunks;
      for (uint64_t offset = 0; offset < bytes.size();) {
        uint64_t n = std::min<uint64_t>(1 + random() % (3 * block_size),
                                        bytes.size() - offset);
        chunks.push_back({offset, n});
        offset += n;
      }
      std::shuffle(chunks.begin(), chunks.end(), random);
      for (const auto& c : chunks)
        table.put_data(c.offset, {bytes.data() + c.offset, c.length});
      auto maybe_root = table.root();
      if (!maybe_root) throw std::runtime_error("table incomplete");
      root = *maybe_root;
    }
    std::cout << root.hex() << "\n";
    return 0;
  } catch (const blkhash::UnknownDigest& e) {
    std::cerr << "blkhash-tool: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "blkhash-tool: " << e.what() << "\n";
    return 1;
  }
}
