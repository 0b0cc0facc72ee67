// One Hasher fed in order on a thread of its own.
//
// The whole-image digest (whole_digest.h) must hash the image's bytes in
// order, one stream, on one core.  Done by the request that moved the
// cursor, every byte's hash sits on that request's critical path: a
// qemu-img download waited for about one SHA-256 pass over the image on
// top of its own time.  An OrderedHasher takes the pieces the cursor
// passed (moved in, no copy), replies at once, and feeds them to the
// Hasher on its thread in the order they were given, so the hashing
// overlaps with the traffic on another core.
//
// Memory: pieces wait in the queue until hashed.  wait_queued_at_most()
// lets a producer wait for the queue to shrink (bounded: the thread
// always makes progress); the WholeDigest does so to keep its memory
// within its window.
//
// Failure: an exception from the Hasher (e.g. OpenSSL) marks the stream
// failed() and the rest of the queue is dropped; the digest is then
// never given.
//
// Threads: push() from one thread at a time (the caller keeps the
// order); the rest from any thread.  mutex_ guards the queue, the counts,
// failed_ and stopping_; the Hasher is used by the thread only, and by
// finish() once the queue is empty and the thread idle.

#ifndef BLKHASH_ORDERED_HASHER_H
#define BLKHASH_ORDERED_HASHER_H

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "digest.h"
#include "thread_annotations.h"

namespace blkhash {

class OrderedHasher {
 public:
  // A run of bytes to hash: `bytes`, or `length` zeros if bytes is empty.
  struct Piece {
    uint64_t length = 0;
    std::vector<uint8_t> bytes;
  };

  explicit OrderedHasher(std::unique_ptr<Hasher> hasher);
  ~OrderedHasher();  // drops what is queued and joins the thread

  OrderedHasher(const OrderedHasher&) = delete;
  OrderedHasher& operator=(const OrderedHasher&) = delete;

  // Queues a piece after every piece pushed before.
  void push(Piece piece) EXCLUDES(mutex_);

  // Waits until at most `bytes` of data are queued or being hashed (zero
  // runs count nothing), or the stream failed.
  void wait_queued_at_most(uint64_t bytes) EXCLUDES(mutex_);

  // Bytes fed to the Hasher so far (data and zeros).
  uint64_t hashed() const EXCLUDES(mutex_);

  // Waits until everything pushed is hashed, then the digest of it all
  // (the Hasher is not consumed: more may be pushed after); nothing if
  // the stream failed.
  std::optional<DigestValue> finish(size_t digest_size) EXCLUDES(mutex_);

  bool failed() const EXCLUDES(mutex_);

 private:
  void run() EXCLUDES(mutex_);
  void hash(const Piece& piece);

  const std::unique_ptr<Hasher> hasher_;  // the thread's, or finish()'s when idle

  mutable Mutex mutex_;
  CondVar changed_;  // a piece was queued or hashed, or stopping_
  std::deque<Piece> queue_ GUARDED_BY(mutex_);
  uint64_t queued_bytes_ GUARDED_BY(mutex_) = 0;  // data in queue_ and busy_
  uint64_t hashed_ GUARDED_BY(mutex_) = 0;
  bool busy_ GUARDED_BY(mutex_) = false;  // the thread is hashing a piece
  bool failed_ GUARDED_BY(mutex_) = false;
  bool stopping_ GUARDED_BY(mutex_) = false;

  std::thread thread_;  // last: started once the members above exist
};

}  // namespace blkhash

#endif  // BLKHASH_ORDERED_HASHER_H
