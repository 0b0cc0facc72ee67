// Digests by name, their sizes, known answers from the standards (and
// from Python's hashlib and python3-xxhash, computed independently), the
// XXH3 kernels, block sizes and zero detection.

#include <cstring>
#include <random>

#include "catch.h"

#include "digest.h"
#include "parameters.h"
#include "support.h"
#include "zero.h"

namespace blkhash::test {
namespace {

std::string hex_of(const std::string& digest, const std::string& text) {
  auto algorithm = DigestAlgorithm::create(digest);
  return algorithm
      ->hash({reinterpret_cast<const uint8_t*>(text.data()), text.size()})
      .hex();
}

TEST_CASE("known answers for \"abc\"", "[digest]") {
  CHECK(hex_of("sha256", "abc") ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(hex_of("sha1", "abc") == "a9993e364706816aba3e25717850c26c9cd0d89d");
  CHECK(hex_of("md5", "abc") == "900150983cd24fb0d6963f7d28e17f72");
  CHECK(hex_of("shake128", "abc") == "5881092dd818bf5cf8a3ddb793fbcba7");
  CHECK(hex_of("shake256", "abc") ==
        "483366601360a8771c6863080cc4114d8db44530f8f1e1ee4f94ea37e78b5739");
  CHECK(hex_of("blake2b512", "abc") ==
        "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
        "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923");
  CHECK(hex_of("xxh128", "abc") == "06b05ab6733a618578af5f94892f3950");
}

TEST_CASE("default output sizes", "[digest]") {
  CHECK(DigestAlgorithm::create("sha256")->size() == 32);
  CHECK(DigestAlgorithm::create("md5")->size() == 16);
  CHECK(DigestAlgorithm::create("blake2b512")->size() == 64);
  CHECK(DigestAlgorithm::create("shake128")->size() == 16);
  CHECK(DigestAlgorithm::create("shake256")->size() == 32);
  CHECK(DigestAlgorithm::create("xxh128")->size() == 16);
}

TEST_CASE("unknown digests are errors naming them", "[digest]") {
  for (const char* name : {"sha257", "", "xxh64", "SHA-999"}) {
    try {
      DigestAlgorithm::create(name);
      FAIL("no exception for " << name);
    } catch (const UnknownDigest& e) {
      CHECK(std::string(e.what()).find(std::string("\"") + name + "\"") !=
            std::string::npos);
    }
  }
}

TEST_CASE("a hasher is reusable and matches one-shot hashing", "[digest]") {
  std::mt19937_64 random(7);
  for (const char* name : {"sha256", "sha512", "shake128", "xxh128"}) {
    auto algorithm = DigestAlgorithm::create(name);
    auto hasher = algorithm->new_hasher();
    for (size_t n : {0, 1, 100, 4096, 65537}) {
      auto bytes = random_bytes(random, n);
      std::array<uint8_t, kMaxDigestSize> incremental;
      hasher->update(bytes.data(), n / 2);
      hasher->update(bytes.data() + n / 2, n - n / 2);
      hasher->finish(incremental.data());
      CHECK(DigestValue({incremental.data(), algorithm->size()}) ==
            algorithm->hash(bytes));
    }
  }
}

TEST_CASE("every XXH3 kernel the CPU has gives the same digests", "[digest]") {
  auto xxh128 = DigestAlgorithm::create("xxh128");
  const std::string best(xxh3_kernel_name());
  std::mt19937_64 random(11);
  // XXH3 has separate code for 0-16, 17-128, 129-240 and longer inputs.
  std::vector<std::vector<uint8_t>> inputs;
  for (size_t n : {0, 1, 3, 16, 17, 128, 129, 240, 241, 1024, 4095, 65536,
                   65536 + 7, 1 << 20})
    inputs.push_back(random_bytes(random, n));

  REQUIRE(select_xxh3_kernel("sse2"));
  std::vector<DigestValue> baseline;
  for (const auto& input : inputs) baseline.push_back(xxh128->hash(input));
  // Independent value (python3-xxhash): xxh3_128(bytes(range(256)) * 1000).
  std::vector<uint8_t> pattern;
  for (int i = 0; i < 256000; i++) pattern.push_back(static_cast<uint8_t>(i));
  CHECK(xxh128->hash(pattern).hex() == "548512d98989de2d776474c39d20f9aa");

  for (const char* isa : {"avx2", "avx512"}) {
    if (!select_xxh3_kernel(isa)) continue;
    INFO(isa);
    for (size_t i = 0; i < inputs.size(); i++)
      CHECK(xxh128->hash(inputs[i]) == baseline[i]);
    CHECK(xxh128->hash(pattern).hex() == "548512d98989de2d776474c39d20f9aa");
  }
  REQUIRE(select_xxh3_kernel(best));
  CHECK(!select_xxh3_kernel("neon"));
}

// Each lane count of the SHA-NI kernel (sha256_nway.h), through
// hash_many(), against OpenSSL one message at a time: distinct messages
// per lane, at random alignments, of every length around the padding
// boundaries (55/56: the length still fits the last block or not; 63,
// 64, 65) and random ones up to a few blocks of 64 KiB.
TEST_CASE("SHA-256 with 1 to 4 lanes equals OpenSSL, message by message",
          "[digest]") {
  // The reference: hash(), which is always OpenSSL's EVP code.
  auto sha256 = DigestAlgorithm::create("sha256");
  std::mt19937_64 random(13);
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 200; n++) lengths.push_back(n);
  for (size_t n : {4096, 65535, 65536, 65537, 131072, 1 << 20})
    lengths.push_back(n);
  for (int i = 0; i < 40; i++) lengths.push_back(random() % (4 << 16));
  const size_t best = use_sha256_lanes(kMaxLanes);
  INFO("SHA-NI lanes in use: " << best);
  CHECK(sha256->lanes() == best);
  for (size_t lanes = 1; lanes <= kMaxLanes; lanes++) {
    INFO("lanes " << lanes);
    CHECK(use_sha256_lanes(lanes) == (best == 1 ? 1 : lanes));
    for (size_t length : lengths) {
      INFO("length " << length);
      // n messages, from 1 to lanes + 1 (the odd one out after a full
      // round of lanes), each at its own offset 0..63 from 64 bytes.
      const size_t n = 1 + random() % (lanes + 1);
      std::vector<std::vector<uint8_t>> buffers(n);
      std::vector<const uint8_t*> msgs(n);
      std::vector<std::array<uint8_t, 32>> outs(n);
      std::vector<uint8_t*> out_ptrs(n);
      for (size_t i = 0; i < n; i++) {
        const size_t offset = random() % 64;
        buffers[i] = random_bytes(random, offset + length);
        msgs[i] = buffers[i].data() + offset;
        out_ptrs[i] = outs[i].data();
      }
      sha256->hash_many(msgs.data(), n, length, out_ptrs.data());
      for (size_t i = 0; i < n; i++) {
        CHECK(DigestValue(outs[i]) == sha256->hash({msgs[i], length}));
      }
    }
  }
  // Known answer: SHA-256 of "abc" in every lane.
  use_sha256_lanes(kMaxLanes);
  const uint8_t* abc = reinterpret_cast<const uint8_t*>("abc");
  const uint8_t* msgs[kMaxLanes] = {abc, abc, abc, abc};
  std::array<std::array<uint8_t, 32>, kMaxLanes> outs;
  uint8_t* out_ptrs[kMaxLanes] = {outs[0].data(), outs[1].data(),
                                  outs[2].data(), outs[3].data()};
  sha256->hash_many(msgs, kMaxLanes, 3, out_ptrs);
  for (const auto& out : outs)
    CHECK(DigestValue(out).hex() ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(use_sha256_lanes(kMaxLanes) == best);
}

TEST_CASE("block sizes: powers of two from 4K to 64M", "[digest]") {
  CHECK(is_valid_block_size(4096));
  CHECK(is_valid_block_size(65536));
  CHECK(is_valid_block_size(64u << 20));
  CHECK(!is_valid_block_size(2048));
  CHECK(!is_valid_block_size(128u << 20));
  CHECK(!is_valid_block_size(65536 + 4096));
  CHECK(!is_valid_block_size(0));
  CHECK_THROWS_AS(make_parameters("sha256", 3000), InvalidBlockSize);
  CHECK(format_block_size(65536) == "64K");
  CHECK(format_block_size(1u << 20) == "1M");
  CHECK(format_block_size(4096) == "4K");
  CHECK(make_parameters("sha256", 131072).label() == "sha256/128K");
}

TEST_CASE("the zero leaf is the digest of a zero block", "[digest]") {
  // sha256 of 65536 zero bytes, from hashlib.
  CHECK(make_parameters("sha256", 65536).zero_leaf().hex() ==
        "de2f256064a0af797747c2b97505dc0b9f3df0de4f489eac731c23ae9ca9cc31");
}

TEST_CASE("zero detection", "[digest]") {
  std::vector<uint8_t> buffer(65536 + 64, 0);
  CHECK(is_zero(buffer.data(), 0));
  for (size_t n : {1, 15, 16, 17, 4096, 65536}) {
    CHECK(is_zero(buffer.data(), n));
    // A single non-zero byte anywhere is seen, at any alignment.
    for (size_t at : {size_t{0}, n / 2, n - 1}) {
      buffer[3 + at] = 0x80;
      CHECK(!is_zero(buffer.data() + 3, n));
      buffer[3 + at] = 0;
    }
  }
}

}  // namespace
}  // namespace blkhash::test
