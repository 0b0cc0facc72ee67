// Digest functions: OpenSSL EVP digests by name, and xxh128.
//
// Invariants:
// - A DigestAlgorithm owns its fetched EVP_MD; contexts made from it keep
//   the algorithm alive through a shared_ptr, so a context never outlives
//   the EVP_MD it was initialised with.
// - The per-thread context cache in hash() is keyed by algorithm address;
//   each cached context holds a reference to its algorithm, so the address
//   stays valid while it is cached.  At most 16 entries per thread.

#include "digest.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <utility>
#include <vector>

#include <openssl/evp.h>
#include <xxhash.h>

#include "sha256_nway.h"

extern "C" {
void blkhash_xxh3_128_sse2(const void* data, size_t len, unsigned char* out);
void blkhash_xxh3_128_avx2(const void* data, size_t len, unsigned char* out);
void blkhash_xxh3_128_avx512(const void* data, size_t len, unsigned char* out);
}

namespace blkhash {

namespace {

constexpr size_t kXxh128Size = 16;

// --- XXH3 kernel dispatch -------------------------------------------------

using Xxh3Kernel = void (*)(const void*, size_t, unsigned char*);

struct Xxh3KernelChoice {
  std::string_view name;
  Xxh3Kernel kernel;
};

bool cpu_supports(std::string_view isa) {
  __builtin_cpu_init();
  if (isa == "avx512")
    return __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw");
  if (isa == "avx2") return __builtin_cpu_supports("avx2");
  return isa == "sse2";  // baseline of x86-64
}

constexpr Xxh3KernelChoice kXxh3Kernels[] = {
    {"avx512", blkhash_xxh3_128_avx512},
    {"avx2", blkhash_xxh3_128_avx2},
    {"sse2", blkhash_xxh3_128_sse2},
};

const Xxh3KernelChoice* best_xxh3_kernel() {
  for (const auto& choice : kXxh3Kernels)
    if (cpu_supports(choice.name)) return &choice;
  return &kXxh3Kernels[2];
}

std::atomic<const Xxh3KernelChoice*> current_xxh3_kernel{best_xxh3_kernel()};

static_assert(kMaxLanes == kSha256MaxLanes);

std::atomic<size_t> sha256_lanes{sha256_nway_supported() ? kMaxLanes : 1};

// --- Contexts ----------------------------------------------------------------

class EvpHasher : public Hasher {
 public:
  EvpHasher(std::shared_ptr<const DigestAlgorithm> algorithm, const EVP_MD* md,
            bool is_xof)
      : algorithm_(std::move(algorithm)),
        md_(md),
        is_xof_(is_xof),
        ctx_(EVP_MD_CTX_new()) {
    if (!ctx_) throw std::bad_alloc();
    reset();
  }

  void update(const void* data, size_t length) override {
    if (EVP_DigestUpdate(ctx_.get(), data, length) != 1)
      throw std::runtime_error("EVP_DigestUpdate failed");
  }

  void finish(uint8_t* out) override {
    int ok;
    if (is_xof_) {
      ok = EVP_DigestFinalXOF(ctx_.get(), out, algorithm_->size());
    } else {
      unsigned int length = 0;
      ok = EVP_DigestFinal_ex(ctx_.get(), out, &length);
    }
    if (ok != 1) throw std::runtime_error("EVP_DigestFinal failed");
    reset();
  }

  std::unique_ptr<Hasher> clone() const override {
    auto copy = std::make_unique<EvpHasher>(algorithm_, md_, is_xof_);
    if (EVP_MD_CTX_copy_ex(copy->ctx_.get(), ctx_.get()) != 1)
      throw std::runtime_error("EVP_MD_CTX_copy_ex failed");
    return copy;
  }

 private:
  struct CtxFree {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
  };

  void reset() {
    if (EVP_DigestInit_ex2(ctx_.get(), md_, nullptr) != 1)
      throw std::runtime_error("EVP_DigestInit_ex2 failed");
  }

  std::shared_ptr<const DigestAlgorithm> algorithm_;  // keeps md_ alive
  const EVP_MD* md_;
  bool is_xof_;
  std::unique_ptr<EVP_MD_CTX, CtxFree> ctx_;
};

class Xxh128Hasher : public Hasher {
 public:
  Xxh128Hasher() : state_(XXH3_createState()) {
    if (!state_) throw std::bad_alloc();
    XXH3_128bits_reset(state_.get());
  }

  void update(const void* data, size_t length) override {
    XXH3_128bits_update(state_.get(), data, length);
  }

  void finish(uint8_t* out) override {
    XXH128_canonical_t canonical;
    XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(state_.get()));
    std::memcpy(out, canonical.digest, kXxh128Size);
    XXH3_128bits_reset(state_.get());
  }

  std::unique_ptr<Hasher> clone() const override {
    auto copy = std::make_unique<Xxh128Hasher>();
    XXH3_copyState(copy->state_.get(), state_.get());
    return copy;
  }

 private:
  struct StateFree {
    void operator()(XXH3_state_t* state) const { XXH3_freeState(state); }
  };
  std::unique_ptr<XXH3_state_t, StateFree> state_;
};

// One cached context per (thread, algorithm).
struct CachedHasher {
  const DigestAlgorithm* algorithm;
  std::unique_ptr<Hasher> hasher;
};

thread_local std::vector<CachedHasher> thread_hashers;

}  // namespace

// --- DigestValue -------------------------------------------------------------

DigestValue::DigestValue(std::span<const uint8_t> bytes) {
  if (bytes.size() > kMaxDigestSize)
    throw std::length_error("digest longer than 64 bytes");
  std::memcpy(bytes_.data(), bytes.data(), bytes.size());
  size_ = bytes.size();
}

std::string DigestValue::hex() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(size_ * 2);
  for (size_t i = 0; i < size_; i++) {
    out += kHex[bytes_[i] >> 4];
    out += kHex[bytes_[i] & 0xf];
  }
  return out;
}

bool DigestValue::operator==(const DigestValue& other) const {
  return size_ == other.size_ &&
         std::memcmp(bytes_.data(), other.bytes_.data(), size_) == 0;
}

UnknownDigest::UnknownDigest(std::string_view name)
    : std::invalid_argument("unknown digest \"" + std::string(name) + "\"") {}

// --- DigestAlgorithm ---------------------------------------------------------

void DigestAlgorithm::EvpMdFree::operator()(void* md) const {
  EVP_MD_free(static_cast<EVP_MD*>(md));
}

std::shared_ptr<const DigestAlgorithm> DigestAlgorithm::create(
    std::string_view name) {
  // Private constructor: allocate through a derived helper.
  struct Constructible : DigestAlgorithm {};
  auto algorithm = std::make_shared<Constructible>();
  algorithm->name_ = std::string(name);

  if (name == "xxh128") {
    algorithm->is_xxh128_ = true;
    algorithm->size_ = kXxh128Size;
    return algorithm;
  }

  // EVP_MD_fetch accepts some names we must not (empty), and names with
  // NUL bytes would be cut short.
  if (name.empty() || name.find('\0') != std::string_view::npos)
    throw UnknownDigest(name);
  EVP_MD* md = EVP_MD_fetch(nullptr, algorithm->name_.c_str(), nullptr);
  if (!md) throw UnknownDigest(name);
  algorithm->md_.reset(md);
  algorithm->is_xof_ = (EVP_MD_get_flags(md) & EVP_MD_FLAG_XOF) != 0;
  algorithm->is_sha256_ = EVP_MD_is_a(md, "SHA2-256");
  int size = EVP_MD_get_size(md);
  if (size <= 0 && algorithm->is_xof_) {
    // OpenSSL 3.4 and later give the XOFs no default length: use the one
    // blkhash (and OpenSSL 3.0 to 3.3) gives them, the security strength
    // in bytes times two: shake128 16, shake256 32.
    if (EVP_MD_is_a(md, "SHAKE-128")) size = 16;
    if (EVP_MD_is_a(md, "SHAKE-256")) size = 32;
  }
  if (size <= 0 || static_cast<size_t>(size) > kMaxDigestSize)
    throw UnknownDigest(name);
  algorithm->size_ = static_cast<size_t>(size);
  return algorithm;
}

DigestAlgorithm::~DigestAlgorithm() = default;

std::unique_ptr<Hasher> DigestAlgorithm::new_hasher() const {
  if (is_xxh128_) return std::make_unique<Xxh128Hasher>();
  return std::make_unique<EvpHasher>(shared_from_this(),
                                     static_cast<const EVP_MD*>(md_.get()),
                                     is_xof_);
}

void DigestAlgorithm::hash(const void* data, size_t length,
                           uint8_t* out) const {
  if (is_xxh128_) {
    current_xxh3_kernel.load(std::memory_order_relaxed)
        ->kernel(data, length, out);
    return;
  }
  for (auto& cached : thread_hashers) {
    if (cached.algorithm == this) {
      cached.hasher->update(data, length);
      cached.hasher->finish(out);
      return;
    }
  }
  // First use on this thread.  Each entry's hasher keeps its algorithm
  // alive, so a cached pointer never dangles; a thread that went through
  // many algorithms (tests) drops its cache rather than let it grow.
  if (thread_hashers.size() >= 16) thread_hashers.clear();
  thread_hashers.push_back({this, new_hasher()});
  auto& hasher = *thread_hashers.back().hasher;
  hasher.update(data, length);
  hasher.finish(out);
}

DigestValue DigestAlgorithm::hash(std::span<const uint8_t> data) const {
  std::array<uint8_t, kMaxDigestSize> out;
  hash(data.data(), data.size(), out.data());
  return DigestValue({out.data(), size_});
}

size_t DigestAlgorithm::lanes() const {
  return is_sha256_ ? sha256_lanes.load(std::memory_order_relaxed) : 1;
}

void DigestAlgorithm::hash_many(const uint8_t* const* data, size_t n,
                                size_t length, uint8_t* const* outs) const {
  const size_t lanes = this->lanes();
  for (size_t i = 0; i < n;) {
    const size_t k = std::min(lanes, n - i);
    if (k == 1)
      hash(data[i], length, outs[i]);  // OpenSSL: as fast on one buffer
    else
      sha256_nway(data + i, k, length, outs + i);
    i += k;
  }
}

size_t use_sha256_lanes(size_t lanes) {
  sha256_lanes = sha256_nway_supported() ? std::clamp<size_t>(lanes, 1, kMaxLanes) : 1;
  return sha256_lanes;
}

std::string_view xxh3_kernel_name() {
  return current_xxh3_kernel.load()->name;
}

bool select_xxh3_kernel(std::string_view isa) {
  for (const auto& choice : kXxh3Kernels) {
    if (choice.name == isa) {
      if (!cpu_supports(isa)) return false;
      current_xxh3_kernel.store(&choice);
      return true;
    }
  }
  return false;
}

}  // namespace blkhash
