// Reads from the plugin what a block table does not know.
//
// Used to finish a report (the blocks no client sent or read) and, with
// blkhash-verify, to read a whole export back.  It first asks the plugin
// for extents: zero ranges are recorded without reading (but never
// complete a block a client wrote or read part of: see block_table.h).  The rest is read
// in chunks of 2 MiB (or one block) by several threads at once when the plugin's thread
// model allows it, each hashing what it read (and the hashing pool helping),
// so reading and hashing overlap and every core hashes.
//
// Each chunk is read and recorded under the shared range lock, so a write
// arriving meanwhile (to another export name on the same storage) is
// ordered against it like any client read.

#ifndef BLKHASH_FILTER_READBACK_H
#define BLKHASH_FILTER_READBACK_H

#include <cstdint>
#include <string>
#include <vector>

#include <nbdkit-filter.h>

#include "block_table.h"
#include "range_lock.h"

namespace blkhash::filter {

class ReadBack {
 public:
  // `readers` threads read at once (1: only the calling thread).
  ReadBack(nbdkit_next* next, BlockTable& table, RangeLock& ranges,
           unsigned readers);

  // Reads until the table knows every byte.  False, with error() set, if
  // the plugin failed.
  bool complete();

  uint64_t bytes_read() const { return bytes_read_; }
  const std::string& error() const { return error_; }

 private:
  // Records the zero extents of what the table does not know.
  void record_zero_extents();
  // What the table still does not know, in reads of chunk_size_ at most.
  std::vector<ByteRange> chunks_to_read() const;
  void read_chunks(const std::vector<ByteRange>& chunks);

  nbdkit_next* const next_;
  BlockTable& table_;
  RangeLock& ranges_;
  const unsigned readers_;
  const uint64_t chunk_size_;  // bytes per read
  uint64_t bytes_read_ = 0;
  std::string error_;
};

}  // namespace blkhash::filter

#endif  // BLKHASH_FILTER_READBACK_H
