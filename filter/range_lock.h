// Orders requests that touch the same blocks.
//
// The filter must record overlapping writes in the table in the order the
// plugin applied them, and must not let a read record stale bytes over a
// write that overtook it.  So every write, zero and trim holds its blocks
// exclusively, and every read and block-status request holds them shared,
// across the plugin call and the table update.  Requests on different
// blocks never wait for each other.
//
// Ranges are widened to whole blocks, because the table's state is per
// block.  The lock is a list of held ranges under one mutex, held only to
// check the list: with a few hundred requests in flight at most, a scan is
// cheaper than anything cleverer.

#ifndef BLKHASH_FILTER_RANGE_LOCK_H
#define BLKHASH_FILTER_RANGE_LOCK_H

#include <condition_variable>
#include <cstdint>
#include <list>
#include <mutex>

namespace blkhash::filter {

class RangeLock {
 public:
  explicit RangeLock(uint32_t block_size) : block_size_(block_size) {}

  // Holds a range until destroyed.
  class Guard {
   public:
    Guard(Guard&& other) noexcept;
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    Guard& operator=(Guard&&) = delete;
    ~Guard();

   private:
    friend class RangeLock;
    struct Held;
    Guard(RangeLock* lock, std::list<Held>::iterator held);
    RangeLock* lock_;
    std::list<Held>::iterator held_;
  };

  Guard lock_exclusive(uint64_t offset, uint64_t length);
  Guard lock_shared(uint64_t offset, uint64_t length);

 private:
  Guard lock(uint64_t offset, uint64_t length, bool exclusive);
  void release(std::list<Guard::Held>::iterator held);

  const uint32_t block_size_;
  std::mutex mutex_;  // guards held_
  std::condition_variable released_;
  std::list<Guard::Held> held_;
};

struct RangeLock::Guard::Held {
  uint64_t begin;  // first block
  uint64_t end;    // one past the last block
  bool exclusive;
};

}  // namespace blkhash::filter

#endif  // BLKHASH_FILTER_RANGE_LOCK_H
