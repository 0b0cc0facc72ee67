// blkhash-map: block maps (common/block_map.h) on the command line, with
// no nbdkit and no client: make the map of a file, check an image against
// a map, name the blocks where two maps differ.  Its man page is
// man/blkhash-map.pod.
//
//   blkhash-map make [--digest NAME] [--block-size SIZE] FILE MAP
//   blkhash-map check [--expect ROOT] [--max-ranges N] MAP [FILE]
//   blkhash-map diff [--max-ranges N] MAP1 MAP2
//
// Exit status: 0 done (check: the map is valid and FILE matches it; diff:
// the maps are the same), 1 a difference (blocks or sizes differ, a map
// refused: corrupt, or its root is not the --expect one), 2 an error
// (bad usage, a file that cannot be read or written, maps made with
// different digests or block sizes).  Every error is one line on stderr.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "block_map.h"
#include "digest.h"
#include "parameters.h"

namespace {

using blkhash::BlockMap;
using blkhash::BlockMapError;
using blkhash::BlockRangeList;
using blkhash::DigestValue;
using blkhash::Parameters;

constexpr const char* kProgram = "blkhash-map";
constexpr const char* kHelp =
    "usage: blkhash-map make [--digest NAME] [--block-size SIZE] FILE MAP\n"
    "       blkhash-map check [--expect ROOT] [--max-ranges N] MAP [FILE]\n"
    "       blkhash-map diff [--max-ranges N] MAP1 MAP2\n"
    "\n"
    "  make   write the block map of FILE's bytes to MAP; print its root\n"
    "         (the blkhash of FILE).  Defaults: --digest sha256,\n"
    "         --block-size 64K.\n"
    "  check  check that MAP's root recomputes from its leaves (and is\n"
    "         ROOT if given); with FILE, that FILE's blocks are the map's;\n"
    "         print the root, or the blocks that differ\n"
    "  diff   print \"same\", or the blocks where two maps differ\n"
    "         (the first N ranges, default 20, and the counts)\n"
    "\n"
    "Exit status: 0 same, 1 differ (or a map refused), 2 error.\n"
    "See blkhash-map(1).\n";

// A usage or I/O error: exit status 2, `what` on one line.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Bad usage: exit status 2, `what` and a pointer to --help on one line.
struct Usage : Failure {
  using Failure::Failure;
};

// A difference found: exit status 1, `what` on one line (if not empty).
struct Differ : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string errno_text(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

// "64K", "1M", "65536" (K and M are powers of 1024).
uint64_t parse_block_size(const std::string& text) {
  uint64_t value = 0;
  size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9' &&
         value < (1ull << 40))
    value = value * 10 + static_cast<uint64_t>(text[i++] - '0');
  const std::string suffix = text.substr(i);
  if (i == 0 || !(suffix.empty() || suffix == "K" || suffix == "k" ||
                  suffix == "M" || suffix == "m"))
    throw Usage("--block-size " + text + ": not a size (4K, 64K, 1M ...)");
  if (suffix == "K" || suffix == "k") value <<= 10;
  if (suffix == "M" || suffix == "m") value <<= 20;
  if (!blkhash::is_valid_block_size(value))
    throw Usage("--block-size " + text +
                  ": not a power of two from 4K to 64M");
  return value;
}

size_t parse_count(const std::string& option, const std::string& text) {
  size_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9' || value > 1000000000)
      throw Usage(option + " " + text + ": not a number from 1");
    value = value * 10 + static_cast<size_t>(c - '0');
  }
  if (text.empty() || value == 0)
    throw Usage(option + " " + text + ": not a number from 1");
  return value;
}

DigestValue parse_root(const std::string& hex) {
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::vector<uint8_t> bytes;
  bool ok = !hex.empty() && hex.size() % 2 == 0 &&
            hex.size() <= 2 * blkhash::kMaxDigestSize;
  for (size_t i = 0; ok && i < hex.size(); i += 2) {
    int hi = digit(hex[i]), lo = digit(hex[i + 1]);
    ok = hi >= 0 && lo >= 0;
    bytes.push_back(static_cast<uint8_t>(hi * 16 + lo));
  }
  if (!ok) throw Usage("--expect " + hex + ": not a hexadecimal digest");
  return DigestValue(bytes);
}

class File {
 public:
  explicit File(const std::string& path) : path_(path) {
    fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ == -1) throw Failure(errno_text("cannot open", path));
    struct stat st;
    std::string problem;
    off_t end = -1;
    if (fstat(fd_, &st) == -1)
      problem = errno_text("cannot stat", path);
    else if (S_ISDIR(st.st_mode))
      problem = "cannot read " + path + ": " + std::strerror(EISDIR);
    else if ((end = lseek(fd_, 0, SEEK_END)) < 0)
      problem = errno_text("cannot find the size of", path);
    if (!problem.empty()) {
      close(fd_);
      throw Failure(problem);
    }
    size_ = static_cast<uint64_t>(end);
  }
  ~File() { close(fd_); }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // The first offset >= `offset` that may hold data (SEEK_DATA; size()
  // if none, `offset` if the file system cannot tell).
  uint64_t next_data(uint64_t offset) const {
    off_t at = lseek(fd_, static_cast<off_t>(offset), SEEK_DATA);
    if (at < 0) return errno == ENXIO ? size_ : offset;
    return std::min(static_cast<uint64_t>(at), size_);
  }
  // The first offset >= `offset` in a hole (SEEK_HOLE; size() if none).
  uint64_t next_hole(uint64_t offset) const {
    off_t at = lseek(fd_, static_cast<off_t>(offset), SEEK_HOLE);
    if (at < 0) return size_;
    return std::min(static_cast<uint64_t>(at), size_);
  }

  void read(uint8_t* out, size_t length, uint64_t offset) const {
    size_t got = 0;
    while (got < length) {
      ssize_t r = pread(fd_, out + got, length - got,
                        static_cast<off_t>(offset + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) throw Failure(errno_text("cannot read", path_));
      if (r == 0)
        throw Failure("cannot read " + path_ + ": it shrank while read");
      got += static_cast<size_t>(r);
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// Walks the blocks of `file` in order: on_leaf(block, leaf) for each block
// read, on_zeros(first, count) for whole blocks inside holes (not read;
// their leaf is the zero leaf, by the leaf rule).
template <typename OnLeaf, typename OnZeros>
void walk_blocks(const File& file, const Parameters& parameters,
                 OnLeaf on_leaf, OnZeros on_zeros) {
  const uint64_t size = file.size();
  const uint64_t bs = parameters.block_size();
  const uint64_t blocks = (size + bs - 1) / bs;
  const size_t chunk = static_cast<size_t>(std::max<uint64_t>(bs, 4u << 20));
  std::vector<uint8_t> buffer(chunk);
  std::vector<uint8_t> leaf(parameters.digest_size());
  uint64_t block = 0;
  while (block < blocks) {
    const uint64_t offset = block * bs;
    const uint64_t data = file.next_data(offset);
    // Whole blocks of hole before the block holding the next data.
    const uint64_t hole_blocks =
        data >= size ? blocks - block : (data - offset) / bs;
    if (hole_blocks) {
      on_zeros(block, hole_blocks);
      block += hole_blocks;
      continue;
    }
    // The blocks up to the next hole, read a chunk at a time.
    const uint64_t hole = std::max(file.next_hole(offset), offset + 1);
    const uint64_t end_block = std::min(blocks, (hole + bs - 1) / bs);
    while (block < end_block) {
      const uint64_t at = block * bs;
      const uint64_t n = std::min<uint64_t>(
          {chunk, (end_block - block) * bs, size - at});
      file.read(buffer.data(), static_cast<size_t>(n), at);
      for (uint64_t o = 0; o < n; o += bs, block++) {
        parameters.leaf({buffer.data() + o,
                         static_cast<size_t>(std::min(bs, n - o))},
                        leaf.data());
        on_leaf(block, leaf.data());
      }
    }
  }
}

std::string read_whole(const std::string& path) {
  File file(path);
  std::string bytes(static_cast<size_t>(file.size()), '\0');
  file.read(reinterpret_cast<uint8_t*>(bytes.data()), bytes.size(), 0);
  return bytes;
}

// The map at `path`, checked (exit 1 if refused).
BlockMap load_map(const std::string& path,
                  const std::optional<DigestValue>& expected = {}) {
  const std::string bytes = read_whole(path);
  try {
    return BlockMap::parse(
        {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()},
        expected);
  } catch (const BlockMapError& e) {
    throw Differ(path + ": " + e.what());
  } catch (const std::invalid_argument& e) {  // digest, block size
    throw Failure(path + ": " + e.what());
  }
}

std::string plural(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// Prints the blocks that differ; the exit status 1.
int print_ranges(const BlockRangeList& ranges) {
  std::cout << "blocks " << ranges.text() << "\n"
            << plural(ranges.block_count(), "block differs", "blocks differ")
            << ", in " << plural(ranges.range_count(), "range", "ranges")
            << "\n";
  return 1;
}

// --- The commands ------------------------------------------------------------

struct Options {
  std::string digest = blkhash::kDefaultDigest;
  uint64_t block_size = blkhash::kDefaultBlockSize;
  std::optional<DigestValue> expect;
  size_t max_ranges = 20;
  std::vector<std::string> operands;
};

int make_map(const Options& o) {
  if (o.operands.size() != 2) throw Usage("make needs FILE and MAP");
  const std::string& path = o.operands[0];
  const std::string& map_path = o.operands[1];
  std::shared_ptr<const blkhash::DigestAlgorithm> digest;
  try {
    digest = blkhash::DigestAlgorithm::create(o.digest);
  } catch (const blkhash::UnknownDigest& e) {
    throw Usage(std::string("--digest: ") + e.what());
  }
  Parameters parameters(std::move(digest),
                        static_cast<uint32_t>(o.block_size));
  File file(path);
  blkhash::BlockMapWriter writer(parameters, file.size());
  walk_blocks(
      file, parameters,
      [&](uint64_t, const uint8_t* leaf) { writer.add_leaf(leaf); },
      [&](uint64_t, uint64_t count) { writer.add_zero_blocks(count); });
  const std::string bytes = writer.finish();

  // Written beside MAP, then renamed: MAP is the old one or the whole new
  // one, never a part.
  std::string tmp = map_path + ".XXXXXX";
  int fd = mkstemp(tmp.data());
  if (fd == -1) throw Failure(errno_text("cannot write", map_path));
  bool ok = fchmod(fd, 0644) == 0;
  for (size_t done = 0; ok && done < bytes.size();) {
    ssize_t w = write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0 && errno == EINTR) continue;
    ok = w > 0;
    if (ok) done += static_cast<size_t>(w);
  }
  int saved = errno;
  if (close(fd) != 0 && ok) {
    ok = false;
    saved = errno;
  }
  if (ok && rename(tmp.c_str(), map_path.c_str()) != 0) {
    ok = false;
    saved = errno;
  }
  if (!ok) {
    unlink(tmp.c_str());
    errno = saved;
    throw Failure(errno_text("cannot write", map_path));
  }
  std::cout << writer.root().hex() << "\n";
  return 0;
}

int check_map(const Options& o) {
  if (o.operands.empty() || o.operands.size() > 2)
    throw Usage("check needs MAP and, optionally, FILE");
  const BlockMap map = load_map(o.operands[0], o.expect);
  if (o.operands.size() == 1) {
    std::cout << map.root().hex() << "\n";
    return 0;
  }
  File file(o.operands[1]);
  if (file.size() != map.image_size())
    throw Differ(file.path() + " is " + std::to_string(file.size()) +
                 " bytes, the map's image " +
                 std::to_string(map.image_size()));
  BlockRangeList bad(o.max_ranges);
  walk_blocks(
      file, map.parameters(),
      [&](uint64_t block, const uint8_t* leaf) {
        if (!map.leaf_equals(block, leaf)) bad.add(block);
      },
      [&](uint64_t first, uint64_t count) {
        for (uint64_t b = first; b < first + count; b++)
          if (!map.leaf_equals(b, map.zero_leaf(b).data())) bad.add(b);
      });
  if (!bad.empty()) return print_ranges(bad);
  std::cout << map.root().hex() << "\n";
  return 0;
}

int diff_maps(const Options& o) {
  if (o.operands.size() != 2) throw Usage("diff needs MAP1 and MAP2");
  const BlockMap a = load_map(o.operands[0]);
  const BlockMap b = load_map(o.operands[1]);
  if (a.digest_name() != b.digest_name() || a.block_size() != b.block_size())
    throw Failure("the maps cannot be compared: " + a.digest_name() + "/" +
                  blkhash::format_block_size(a.block_size()) + " and " +
                  b.digest_name() + "/" +
                  blkhash::format_block_size(b.block_size()) +
                  " (make them with the same --digest and --block-size)");
  if (a.image_size() != b.image_size())
    throw Differ("the images differ in size: " +
                 std::to_string(a.image_size()) + " and " +
                 std::to_string(b.image_size()) + " bytes");
  const BlockRangeList ranges = BlockMap::diff(a, b, o.max_ranges);
  if (!ranges.empty()) return print_ranges(ranges);
  std::cout << "same\n";
  return 0;
}

// Parses the arguments after the command: the options it takes, then the
// operands (options may follow operands; "--" ends the options).
Options parse(const std::string& command, int argc, char** argv) {
  Options o;
  const bool make = command == "make";
  bool options_done = false;
  for (int i = 2; i < argc; i++) {
    std::string arg = argv[i];
    if (options_done || arg == "-" || arg.empty() || arg[0] != '-') {
      o.operands.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    std::string name = arg, value;
    bool has_value = false;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    const bool known = (make && (name == "--digest" || name == "--block-size")) ||
                       (command == "check" && name == "--expect") ||
                       (!make && name == "--max-ranges");
    if (!known)
      throw Usage(command + ": unknown option " + name);
    if (!has_value) {
      if (i + 1 >= argc) throw Usage(name + " needs a value");
      value = argv[++i];
    }
    if (name == "--digest") o.digest = value;
    else if (name == "--block-size") o.block_size = parse_block_size(value);
    else if (name == "--expect") o.expect = parse_root(value);
    else o.max_ranges = parse_count(name, value);
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string command = argc > 1 ? argv[1] : "";
  if (command == "--help" || command == "-h") {
    std::cout << kHelp;
    return 0;
  }
  if (command == "--version") {
    std::cout << kProgram << " " << BLKHASH_VERSION << "\n";
    return 0;
  }
  try {
    if (command.empty())
      throw Usage("no command: make, check or diff");
    if (command != "make" && command != "check" && command != "diff")
      throw Usage("unknown command " + command +
                    ": make, check or diff");
    const Options options = parse(command, argc, argv);
    if (command == "make") return make_map(options);
    if (command == "check") return check_map(options);
    return diff_maps(options);
  } catch (const Differ& e) {
    std::cerr << kProgram << ": " << e.what() << "\n";
    return 1;
  } catch (const Usage& e) {
    std::cerr << kProgram << ": " << e.what() << " (see " << kProgram
              << " --help)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << kProgram << ": " << e.what() << "\n";
    return 2;
  }
}
