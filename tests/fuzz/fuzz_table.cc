// libFuzzer target: the block table against a trivially correct model.
//
// The input is a program: an image size, then operations at offsets and
// lengths taken from the input (writes, write-zeroes, trims, failed
// writes, reads, zero extents, reports) over a small image of 4K blocks,
// with or without folding the settled prefix.
// The model is the image's bytes; a report completes the table the way
// the filter does (reading every unknown range from the model) and must
// equal blkhash of the model computed here from scratch with OpenSSL's
// one-shot SHA-256, sharing no code with the engine.
//
//   meson setup build-fuzz -Dfuzzing=true ... (see scripts/test)
//   build-fuzz/tests/fuzz/fuzz-table -max_total_time=600 NEWDIR tests/fuzz/corpus

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <vector>

#include <openssl/evp.h>

#include "block_table.h"
#include "parameters.h"

namespace {

constexpr uint32_t kBlock = 4096;

// blkhash with SHA-256, straight from the definition.
std::vector<uint8_t> model_root(const std::vector<uint8_t>& image) {
  std::vector<uint8_t> leaves;
  for (size_t offset = 0; offset < image.size(); offset += kBlock) {
    size_t n = std::min<size_t>(kBlock, image.size() - offset);
    uint8_t leaf[32];
    EVP_Digest(image.data() + offset, n, leaf, nullptr, EVP_sha256(), nullptr);
    leaves.insert(leaves.end(), leaf, leaf + 32);
  }
  uint64_t length = image.size();
  for (int i = 0; i < 8; i++) leaves.push_back(static_cast<uint8_t>(length >> (8 * i)));
  std::vector<uint8_t> root(32);
  EVP_Digest(leaves.data(), leaves.size(), root.data(), nullptr, EVP_sha256(),
             nullptr);
  return root;
}

// Reads bytes of the program; zeros once it runs out.
class Program {
 public:
  Program(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool done() const { return position_ >= size_; }
  uint8_t byte() { return position_ < size_ ? data_[position_++] : 0; }
  uint32_t u16() { return byte() | uint32_t{byte()} << 8; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t position_ = 0;
};

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz-table: %s\n", what);
    std::abort();
  }
}

void report(blkhash::BlockTable& table, const std::vector<uint8_t>& image) {
  for (const auto& r : table.unknown_ranges())
    table.fill_data(r.offset, {image.data() + r.offset, r.length});
  check(table.unknown_ranges().empty(), "unknown ranges after reading them");
  check(table.complete(), "not complete after reading every unknown range");
  auto root = table.root();
  check(root.has_value(), "no root after reading every unknown range");
  auto expected = model_root(image);
  check(root->size() == 32 &&
            std::memcmp(root->data(), expected.data(), 32) == 0,
        "root differs from the model");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const blkhash::Parameters parameters(
      blkhash::DigestAlgorithm::create("sha256"), kBlock);
  Program program(data, size);
  // Up to 12 blocks and a tail: full, partial and short final blocks;
  // with folding, up to 192 blocks (3 groups of 64, the unit of folding).
  const uint8_t shape = program.byte();
  const bool fold = shape & 0x80;
  const size_t image_size =
      shape % 13 * (fold ? 16 : 1) * kBlock + program.u16() % kBlock;
  blkhash::BlockTable table(
      parameters, image_size, nullptr,
      fold ? blkhash::BlockTable::Fold::kSettledPrefix
           : blkhash::BlockTable::Fold::kNone);
  std::vector<uint8_t> image(image_size, 0);
  if (image_size == 0) {
    report(table, image);
    return 0;
  }

  while (!program.done()) {
    const uint8_t op = program.byte() % 8;
    uint64_t offset = (uint64_t{program.u16()} * (fold ? 13 : 7)) % image_size;
    if (program.byte() & 1) offset -= offset % 512;  // often sector-aligned
    const uint64_t length =
        std::min<uint64_t>(program.u16() % (3 * kBlock) + 1, image_size - offset);
    const uint8_t pattern = program.byte();
    std::vector<uint8_t> bytes(length);
    for (size_t i = 0; i < length; i++)
      bytes[i] = pattern & 0x80 ? 0 : static_cast<uint8_t>(pattern * 31 + i * 7);

    switch (op) {
      case 0:
      case 1:  // write
        std::copy(bytes.begin(), bytes.end(), image.begin() + offset);
        table.put_data(offset, bytes);
        break;
      case 2:  // write zeroes
        std::fill_n(image.begin() + offset, length, 0);
        table.put_zero(offset, length);
        break;
      case 3:  // trim or failed write: the storage holds anything now
        std::copy(bytes.begin(), bytes.end(), image.begin() + offset);
        table.forget(offset, length);
        break;
      case 4:  // a read returns the current content
        table.fill_data(offset, {image.data() + offset, length});
        break;
      case 5:  // a zero extent, where the content is zero
        if (std::all_of(image.begin() + offset, image.begin() + offset + length,
                        [](uint8_t b) { return b == 0; }))
          table.fill_zero(offset, length);
        break;
      case 6:  // a report
        report(table, image);
        break;
      case 7:  // root() answers exactly when nothing is unknown
        check(table.root().has_value() == table.unknown_ranges().empty(),
              "root() and unknown_ranges() disagree");
        break;
    }
  }
  report(table, image);
  return 0;
}
