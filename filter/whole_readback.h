// Reads, in order, what the whole-image digest has not seen.
//
// The ordinary digest (blkhash-whole, common/whole_digest.h) hashes the
// export in order from a cursor.  Bytes no client sent or read before the
// cursor needs them are read here: during traffic only while the reorder
// buffer is over its window (the cursor reads the gap rather than let the
// buffer grow), and at the report up to the end.  What is read is also
// recorded in the block table (a read, which never overrides a write), so
// the blkhash's own read-back finds it known.
//
// Zero extents replace reading only when `trust_zero_extents`: when no
// write went through the filter to this export, the layers below agree
// with the plugin.  After writes, a writeback cache below may report
// stale holes, so everything is read.
//
// Every read holds its range in the shared range lock, as a client read.

#ifndef BLKHASH_FILTER_WHOLE_READBACK_H
#define BLKHASH_FILTER_WHOLE_READBACK_H

#include <cstdint>
#include <string>

#include <nbdkit-filter.h>

#include "block_table.h"
#include "range_lock.h"
#include "whole_digest.h"

namespace blkhash::filter {

class WholeReadBack {
 public:
  // `table` (null with blkhash-digest=none) records what is read too.
  WholeReadBack(nbdkit_next* next, WholeDigest& whole, BlockTable* table,
                RangeLock& ranges, bool trust_zero_extents);

  // Reads gaps while the digest's buffer holds more than `limit` bytes.
  bool read_while_buffered_over(uint64_t limit);
  // Reads gaps until the cursor is at the end.  False, with error() set,
  // if a read failed or reports were interrupted.
  bool read_to_end();

  uint64_t bytes_read() const { return bytes_read_; }
  const std::string& error() const { return error_; }

 private:
  // Claims the gap at the cursor and reads (or maps) its first piece.
  // Returns false when there is no gap to claim, or on failure.
  bool step();

  nbdkit_next* const next_;
  WholeDigest& whole_;
  BlockTable* const table_;
  RangeLock& ranges_;
  const bool trust_zero_extents_;
  uint64_t bytes_read_ = 0;
  std::string error_;
};

}  // namespace blkhash::filter

#endif  // BLKHASH_FILTER_WHOLE_READBACK_H
