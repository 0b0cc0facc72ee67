// The ordinary digest of a whole image (sha256sum's value), from pieces
// that arrive in any order.
//
// An ordinary digest needs the image's bytes in order, and clients send
// them in any order.  A WholeDigest keeps a cursor: every byte before it
// has been fed to the digest, in order.  Pieces that arrive ahead of the
// cursor wait in a reorder buffer (sorted, non-overlapping pieces: data,
// or zero runs that cost no memory) until the cursor reaches them.  The
// buffer's data may grow past `window` bytes only until the caller reads
// the gap at the cursor itself (claim_gap(): the bytes no client sent
// yet), which lets the cursor move on and frees the buffer.
//
// What each call means, as in the block table (content_recorder.h):
//   put_data / put_zero    new content: replaces what is buffered there
//   fill_data / fill_zero  content seen by a read: sets only what is not
//                          buffered yet, never overriding a write
//   forget                 content no longer known (trim, failed write)
// A write, zero or forget of bytes the cursor has passed makes the digest
// stale(): the bytes hashed are no longer the content, and only reading
// the whole image again gives its digest.  Reads behind the cursor change
// nothing.
//
// Hashing: the pieces the cursor passes go, in order and without a copy,
// to an OrderedHasher (ordered_hasher.h), which hashes them on a thread
// of its own, so a request that moves the cursor does not wait for the
// hash.  The pieces waiting there count against the window too: a call
// that queues more than `window` bytes waits for the hasher to catch up.
//
// Threads: every method may be called from any number of threads at
// once.  mutex_ guards the buffer and the cursor; the cursor moves past
// a piece as it is queued for hashing (so a write landing after that
// counts as behind the cursor).  The caller orders overlapping writes
// and reads (the filter's range lock), as for the block table.

#ifndef BLKHASH_WHOLE_DIGEST_H
#define BLKHASH_WHOLE_DIGEST_H

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "digest.h"
#include "thread_annotations.h"
#include "byte_range.h"
#include "ordered_hasher.h"
#include "content_recorder.h"

namespace blkhash {

class WholeDigest : public ContentRecorder<WholeDigest> {
 public:
  // An image of `length` bytes; `window` bounds the data queued for
  // hashing (see above); the caller reads the gap at the cursor when
  // buffered_bytes() is over its own limit (the filter: the window).
  WholeDigest(const DigestAlgorithm& digest, uint64_t length,
              uint64_t window);
  ~WholeDigest();

  WholeDigest(const WholeDigest&) = delete;
  WholeDigest& operator=(const WholeDigest&) = delete;

  uint64_t length() const { return length_; }

  // Ranges must lie within [0, length()); a range beyond throws
  // std::out_of_range.
  // put_data, put_zero, fill_data, fill_zero: see content_recorder.h.
  void forget(uint64_t offset, uint64_t length);

  // Bytes fed (or being fed) to the digest, in order, from offset 0.
  uint64_t cursor() const;
  // A change landed behind the cursor (see above).
  bool stale() const;
  uint64_t buffered_bytes() const;

  // The unknown bytes at the cursor, at most `max_length` of them, for the
  // caller to read and observe(); nothing if the cursor's bytes are
  // buffered, the image is done, or another thread holds a claim.  The
  // claim lasts until release_gap().
  std::optional<ByteRange> claim_gap(uint64_t max_length);
  void release_gap();

  // The digest, once the cursor is at the end and the digest not stale;
  // waits for the hasher to finish what is queued.
  std::optional<DigestValue> final();

 private:
  using Piece = OrderedHasher::Piece;  // bytes empty: a zero run
  friend class ContentRecorder<WholeDigest>;
  using Source = ContentSource;

  void check_range(uint64_t offset, uint64_t length) const;
  // Stores [offset, offset + length) of `data` (null: zeros).
  void record(uint64_t offset, uint64_t length, const uint8_t* data,
              Source source) EXCLUDES(mutex_);
  // record()'s change to the buffer; false if it is all behind the cursor.
  template <typename BytesAt>
  bool store_locked(uint64_t offset, uint64_t end, BytesAt bytes_at,
                    Source source) REQUIRES(mutex_);
  // Removes [offset, end) from the buffer.
  void erase_locked(uint64_t offset, uint64_t end) REQUIRES(mutex_);
  void insert_locked(uint64_t offset, uint64_t length, const uint8_t* data)
      REQUIRES(mutex_);
  // Moves the cursor past every piece ready at it, queueing them for
  // hashing in order.
  void advance() REQUIRES(mutex_);

  const uint64_t length_;
  const uint64_t window_;
  const size_t digest_size_;

  mutable Mutex mutex_;  // guards everything below
  std::map<uint64_t, Piece> pieces_ GUARDED_BY(mutex_);  // by offset, >= cursor_
  uint64_t cursor_ GUARDED_BY(mutex_) = 0;
  uint64_t buffered_ GUARDED_BY(mutex_) = 0;  // data bytes in pieces_
  bool stale_ GUARDED_BY(mutex_) = false;
  bool gap_claimed_ GUARDED_BY(mutex_) = false;

  // Everything before cursor_ was pushed to it, in order; it has its own
  // lock, taken after mutex_ (push) or alone.
  OrderedHasher hasher_;
};

}  // namespace blkhash

#endif  // BLKHASH_WHOLE_DIGEST_H
