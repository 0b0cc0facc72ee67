// See ordered_hasher.h.
//
// Invariants (mutex_ held): queued_bytes_ is the data of queue_ plus the
// piece being hashed (busy_); hashed_ only grows; once failed_, queue_ is
// empty and stays so.

#include "ordered_hasher.h"

#include <algorithm>

namespace blkhash {

namespace {

// Zeros fed to the digest for zero runs, this much at a time.
constexpr size_t kZeroChunk = 1 << 20;

const uint8_t* zero_chunk() {
  static const std::vector<uint8_t> zeros(kZeroChunk, 0);
  return zeros.data();
}

}  // namespace

OrderedHasher::OrderedHasher(std::unique_ptr<Hasher> hasher)
    : hasher_(std::move(hasher)), thread_([this] { run(); }) {}

OrderedHasher::~OrderedHasher() {
  {
    MutexLock lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void OrderedHasher::push(Piece piece) {
  {
    MutexLock lock(mutex_);
    if (failed_) return;
    queued_bytes_ += piece.bytes.size();
    queue_.push_back(std::move(piece));
  }
  changed_.notify_all();
}

void OrderedHasher::wait_queued_at_most(uint64_t bytes) {
  MutexLock lock(mutex_);
  while (queued_bytes_ > bytes && !failed_) changed_.wait(lock);
}

uint64_t OrderedHasher::hashed() const {
  MutexLock lock(mutex_);
  return hashed_;
}

bool OrderedHasher::failed() const {
  MutexLock lock(mutex_);
  return failed_;
}

std::optional<DigestValue> OrderedHasher::finish(size_t digest_size) {
  MutexLock lock(mutex_);
  while ((busy_ || !queue_.empty()) && !failed_) changed_.wait(lock);
  if (failed_) return std::nullopt;
  // The thread is idle and stays so while we hold mutex_ (nothing queued).
  std::vector<uint8_t> out(digest_size);
  hasher_->clone()->finish(out.data());
  return DigestValue(out);
}

void OrderedHasher::run() {
  MutexLock lock(mutex_);
  for (;;) {
    while (queue_.empty() && !stopping_) changed_.wait(lock);
    if (stopping_) return;  // what is queued is dropped
    Piece piece = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    bool ok = true;
    try {
      hash(piece);
    } catch (...) {
      ok = false;
    }
    lock.lock();
    busy_ = false;
    queued_bytes_ -= piece.bytes.size();
    if (ok) {
      hashed_ += piece.length;
    } else {
      failed_ = true;
      for (const Piece& dropped : queue_) queued_bytes_ -= dropped.bytes.size();
      queue_.clear();
    }
    changed_.notify_all();
  }
}

void OrderedHasher::hash(const Piece& piece) {
  if (!piece.bytes.empty()) {
    hasher_->update(piece.bytes.data(), piece.bytes.size());
    return;
  }
  for (uint64_t left = piece.length; left > 0;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(left, kZeroChunk));
    hasher_->update(zero_chunk(), n);
    left -= n;
  }
}

}  // namespace blkhash
