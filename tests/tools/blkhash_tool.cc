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
// Block maps on the command line are the installed tool's, blkhash-map
// (tool/blkhash_map.cc).

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "block_table.h"
#include "digest.h"
#include "parameters.h"
#include "streaming.h"

namespace {

int usage() {
  std::cerr << "usage: blkhash-tool [--digest NAME] [--block-size SIZE] "
               "[--mode stream|table] [--seed N] [--xxh3-kernel ISA] FILE\n";
  return 2;
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
      else if (!arg.empty() && arg[0] == '-') return usage();
      else operands.push_back(arg);
    } catch (const std::exception& e) {
      std::cerr << "blkhash-tool: " << e.what() << "\n";
      return 2;
    }
  }
  if (operands.size() == 1) path = operands[0];
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
