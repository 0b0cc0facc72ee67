// The digest functions blkhash is built on.
//
// A DigestAlgorithm is a named hash function: any digest OpenSSL 3 knows
// by name (fetched once with EVP_MD_fetch), or our extension "xxh128"
// (XXH3 128-bit, canonical big-endian bytes).  It is immutable after
// creation and shared by every thread.  Output lengths are the digests'
// defaults; for the XOFs shake128 and shake256 that is 16 and 32 bytes.
//
// Hashing needs a context.  Creating one per block costs measurable
// speed, so a Hasher is a reusable incremental context, and
// DigestAlgorithm::hash() reuses one Hasher per thread for one-shot
// hashing of blocks.

#ifndef BLKHASH_DIGEST_H
#define BLKHASH_DIGEST_H

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

namespace blkhash {

// Longest digest we support (EVP_MAX_MD_SIZE).
inline constexpr size_t kMaxDigestSize = 64;

// Most buffers DigestAlgorithm::hash_many() hashes at once.
inline constexpr size_t kMaxLanes = 4;

// A digest value of up to kMaxDigestSize bytes.
class DigestValue {
 public:
  DigestValue() = default;
  explicit DigestValue(std::span<const uint8_t> bytes);

  size_t size() const { return size_; }
  const uint8_t* data() const { return bytes_.data(); }
  std::span<const uint8_t> bytes() const { return {bytes_.data(), size_}; }

  // Lowercase hexadecimal.
  std::string hex() const;

  bool operator==(const DigestValue& other) const;

 private:
  std::array<uint8_t, kMaxDigestSize> bytes_{};
  size_t size_ = 0;
};

// Thrown for a digest name that neither OpenSSL nor we know.
class UnknownDigest : public std::invalid_argument {
 public:
  explicit UnknownDigest(std::string_view name);
};

// An incremental digest context.  finish() writes the digest and resets
// the context, so one Hasher serves any number of messages.  clone()
// copies the state reached so far: both copies go on independently.
class Hasher {
 public:
  virtual ~Hasher() = default;
  virtual void update(const void* data, size_t length) = 0;
  virtual void finish(uint8_t* out) = 0;
  virtual std::unique_ptr<Hasher> clone() const = 0;
};

// A named digest function.  Create with DigestAlgorithm::create().
class DigestAlgorithm : public std::enable_shared_from_this<DigestAlgorithm> {
 public:
  // Throws UnknownDigest if `name` is not a digest we can compute.
  static std::shared_ptr<const DigestAlgorithm> create(std::string_view name);

  ~DigestAlgorithm();
  DigestAlgorithm(const DigestAlgorithm&) = delete;
  DigestAlgorithm& operator=(const DigestAlgorithm&) = delete;

  const std::string& name() const { return name_; }
  size_t size() const { return size_; }

  // A new incremental context for this digest.
  std::unique_ptr<Hasher> new_hasher() const;

  // Digest of one buffer, written to out[0 .. size()).  Thread safe: each
  // thread reuses a context of its own.
  void hash(const void* data, size_t length, uint8_t* out) const;
  DigestValue hash(std::span<const uint8_t> data) const;

  // True for xxh128, which hashes a 2 MiB request in tens of
  // microseconds: about what waking another thread to share the work
  // costs, so it is not worth sharing.
  bool is_fast() const { return is_xxh128_; }

  // How many buffers of the same length hash_many() hashes at once:
  // kMaxLanes for sha256 on a CPU with SHA-NI (sha256_nway.h), else 1.
  size_t lanes() const;

  // Digests of data[i][0..length) into outs[i][0 .. size()), i < n, for
  // any n: lanes() of them at a time.
  void hash_many(const uint8_t* const* data, size_t n, size_t length,
                 uint8_t* const* outs) const;

 private:
  struct EvpMdFree {
    void operator()(void* md) const;
  };

  DigestAlgorithm() = default;

  std::string name_;
  size_t size_ = 0;
  bool is_xof_ = false;
  bool is_xxh128_ = false;
  bool is_sha256_ = false;
  std::unique_ptr<void, EvpMdFree> md_;  // EVP_MD*, null for xxh128
};

// Which XXH3 kernel the CPU runs: "avx512", "avx2" or "sse2".
std::string_view xxh3_kernel_name();

// Select an XXH3 kernel by name (for tests); false if the CPU lacks it.
bool select_xxh3_kernel(std::string_view isa);

// The most SHA-256 lanes hash_many() may use (for tests and benchmarks:
// 1 is OpenSSL one buffer at a time, 2 to kMaxLanes the SHA-NI kernel;
// kMaxLanes by default where the CPU has SHA-NI).  Returns the number in
// use afterwards: 1 on a CPU without SHA-NI.
size_t use_sha256_lanes(size_t lanes);

}  // namespace blkhash

#endif  // BLKHASH_DIGEST_H
