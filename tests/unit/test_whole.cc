// WholeDigest, the ordinary digest of a whole image from unordered
// pieces, against OpenSSL's one-shot SHA-256 of a model byte array.

#include <openssl/evp.h>

#include <algorithm>
#include <random>
#include <stdexcept>
#include <thread>

#include "catch.h"

#include "support.h"
#include "ordered_hasher.h"
#include "whole_digest.h"

namespace blkhash::test {
namespace {

// sha256 of `bytes` by OpenSSL directly, not through the engine.
std::string openssl_sha256(const std::vector<uint8_t>& bytes) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  REQUIRE(EVP_Digest(bytes.data(), bytes.size(), out, &n, EVP_sha256(),
                     nullptr) == 1);
  return DigestValue({out, n}).hex();
}

std::shared_ptr<const DigestAlgorithm> sha256() {
  return DigestAlgorithm::create("sha256");
}

// Reads gaps from `content` while more than `window` bytes are buffered,
// as the filter does.
void read_gaps(WholeDigest& whole, const std::vector<uint8_t>& content,
               uint64_t window, bool until_done) {
  while (until_done ? whole.cursor() < whole.length()
                    : whole.buffered_bytes() > window) {
    auto gap = whole.claim_gap(1000);
    if (!gap) break;
    whole.fill_data(gap->offset, {content.data() + gap->offset, gap->length});
    whole.release_gap();
  }
}

TEST_CASE("unordered writes, zeroes, reads give sha256sum's value", "[whole]") {
  const uint64_t seed = GENERATE(range(1, 41));
  std::mt19937_64 random(seed);
  const uint64_t size = random() % 50000 + 1;
  const uint64_t window = seed % 3 == 0 ? 512 : 1 << 20;
  INFO("seed " << seed << " size " << size << " window " << window);
  auto digest = sha256();
  WholeDigest whole(*digest, size, window);
  // A small window makes the cursor read gaps itself: then a later write
  // there would be behind it (stale, tested below), so that traffic is
  // reads of what the storage holds, as when a client reads a file.
  const bool reads_only = window < size;
  std::vector<uint8_t> content =
      reads_only ? random_bytes(random, size) : std::vector<uint8_t>(size, 0);

  // Random pieces in random order; some rewritten, some zeroed, some read.
  std::vector<ByteRange> pieces;
  for (uint64_t at = 0; at < size;) {
    uint64_t n = std::min<uint64_t>(random() % 3000 + 1, size - at);
    pieces.push_back({at, n});
    at += n;
  }
  std::shuffle(pieces.begin(), pieces.end(), random);
  for (const ByteRange& piece : pieces) {
    switch (reads_only ? 1 : random() % 4) {
      case 0: {  // zeros
        std::fill_n(content.begin() + piece.offset, piece.length, 0);
        whole.put_zero(piece.offset, piece.length);
        break;
      }
      case 1: {  // a read of what the storage holds
        whole.fill_data(piece.offset,
                      {content.data() + piece.offset, piece.length});
        break;
      }
      default: {  // data, sometimes written twice, the second time wins
        auto bytes = random_bytes(random, piece.length);
        // Rewritten only ahead of the cursor: there the last write wins
        // (behind it a rewrite makes the digest stale, tested below).
        if (random() % 4 == 0 && piece.offset > whole.cursor()) {
          auto first = random_bytes(random, piece.length);
          whole.put_data(piece.offset, first);
        }
        std::copy(bytes.begin(), bytes.end(), content.begin() + piece.offset);
        whole.put_data(piece.offset, bytes);
        // A stale read of the old content never overrides the write...
        // unless the cursor has passed it, where a read changes nothing.
        std::vector<uint8_t> stale(piece.length, 0xee);
        whole.fill_data(piece.offset, stale);
      }
    }
    read_gaps(whole, content, window, false);
    CHECK(whole.buffered_bytes() <= window + 3000);
  }
  read_gaps(whole, content, window, true);
  REQUIRE(!whole.stale());
  REQUIRE(whole.final());
  CHECK(whole.final()->hex() == openssl_sha256(content));
}

TEST_CASE("a change behind the cursor makes the digest stale", "[whole]") {
  auto digest = sha256();
  std::vector<uint8_t> bytes(4000, 7);
  WholeDigest written(*digest, 8000, 1 << 20);
  written.put_data(0, bytes);
  CHECK(written.cursor() == 4000);
  written.fill_data(0, bytes);  // a read behind: nothing changes
  CHECK(!written.stale());
  written.put_data(100, {bytes.data(), 10});
  CHECK(written.stale());
  written.put_data(4000, bytes);
  CHECK(!written.final());  // complete, but not the content

  WholeDigest trimmed(*digest, 8000, 1 << 20);
  trimmed.put_data(0, bytes);
  trimmed.forget(3999, 2);
  CHECK(trimmed.stale());

  WholeDigest zeroed(*digest, 8000, 1 << 20);
  zeroed.put_zero(0, 8000);
  CHECK(zeroed.final()->hex() ==
        openssl_sha256(std::vector<uint8_t>(8000, 0)));
  zeroed.put_zero(0, 1);
  CHECK(zeroed.stale());
  CHECK(!zeroed.final());
}

TEST_CASE("forgotten bytes ahead of the cursor are read again", "[whole]") {
  auto digest = sha256();
  std::mt19937_64 random(3);
  auto content = random_bytes(random, 10000);
  WholeDigest whole(*digest, content.size(), 1 << 20);
  whole.put_data(5000, {content.data() + 5000, 5000});
  whole.forget(6000, 100);  // a trim: unknown again
  auto gap = whole.claim_gap(UINT64_MAX);
  REQUIRE(gap);
  CHECK(*gap == ByteRange{0, 5000});
  CHECK(!whole.claim_gap(UINT64_MAX));  // one claim at a time
  whole.fill_data(0, {content.data(), 5000});
  whole.release_gap();
  CHECK(whole.cursor() == 6000);
  gap = whole.claim_gap(UINT64_MAX);
  REQUIRE(gap);
  CHECK(*gap == ByteRange{6000, 100});
  whole.fill_data(6000, {content.data() + 6000, 100});
  whole.release_gap();
  CHECK(whole.final()->hex() == openssl_sha256(content));
  CHECK_THROWS_AS(whole.put_data(9999, {content.data(), 2}), std::out_of_range);
}

TEST_CASE("an empty image", "[whole]") {
  auto digest = sha256();
  WholeDigest whole(*digest, 0, 0);
  CHECK(whole.final()->hex() ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("threads writing disjoint pieces at once", "[whole][concurrency]") {
  auto digest = sha256();
  std::mt19937_64 random(11);
  const size_t size = 4 << 20;
  auto content = random_bytes(random, size);
  WholeDigest whole(*digest, size, 64 << 20);
  std::vector<ByteRange> pieces;
  for (uint64_t at = 0; at < size; at += 65536) pieces.push_back({at, 65536});
  std::shuffle(pieces.begin(), pieces.end(), random);
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 4; t++)
    threads.emplace_back([&, t] {
      for (size_t i = t; i < pieces.size(); i += 4)
        whole.put_data(pieces[i].offset,
                    {content.data() + pieces[i].offset, pieces[i].length});
    });
  for (auto& thread : threads) thread.join();
  REQUIRE(whole.final());
  CHECK(whole.final()->hex() == openssl_sha256(content));
}

// --- OrderedHasher: the thread the whole-image digest hashes on ---------

TEST_CASE("the ordered hasher hashes pieces and zero runs in push order",
          "[whole]") {
  std::mt19937_64 random(7);
  auto digest = sha256();
  OrderedHasher hasher(digest->new_hasher());
  std::vector<uint8_t> model;
  for (int i = 0; i < 200; i++) {
    OrderedHasher::Piece piece;
    piece.length = random() % 70000 + 1;
    if (random() % 3 == 0) {
      model.insert(model.end(), piece.length, 0);  // a zero run
    } else {
      piece.bytes = random_bytes(random, piece.length);
      model.insert(model.end(), piece.bytes.begin(), piece.bytes.end());
    }
    hasher.push(std::move(piece));
    if (i % 50 == 0) {  // a digest in the middle, then more
      auto middle = hasher.finish(32);
      REQUIRE(middle);
      CHECK(middle->hex() == openssl_sha256(model));
    }
    hasher.wait_queued_at_most(1 << 20);
  }
  auto value = hasher.finish(32);
  REQUIRE(value);
  CHECK(value->hex() == openssl_sha256(model));
  CHECK(hasher.hashed() == model.size());
  CHECK(!hasher.failed());
}

// A Hasher whose update fails, as OpenSSL's may.
class FailingHasher : public Hasher {
 public:
  void update(const void*, size_t) override {
    throw std::runtime_error("injected");
  }
  void finish(uint8_t*) override {}
  std::unique_ptr<Hasher> clone() const override {
    return std::make_unique<FailingHasher>();
  }
};

TEST_CASE("a failing hash gives no digest, and nobody waits forever",
          "[whole]") {
  OrderedHasher hasher(std::make_unique<FailingHasher>());
  for (int i = 0; i < 10; i++) {
    OrderedHasher::Piece piece;
    piece.length = 1000;
    piece.bytes.assign(1000, 1);
    hasher.push(std::move(piece));
  }
  hasher.wait_queued_at_most(0);  // returns: failed, the queue dropped
  CHECK(hasher.failed());
  CHECK(!hasher.finish(32));
  CHECK(hasher.hashed() == 0);
}

}  // namespace
}  // namespace blkhash::test
