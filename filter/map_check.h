// Per-block verification against blkhash-expect-map.
//
// The block table tells a MapChecker every leaf it learns (a block that a
// write, zero, read or zero extent has just made known), in the thread
// of the request that made it known, with the table's stripe lock held.
// The checker compares it with the expected map's leaf and remembers a bad
// block for that thread only: the request that completed a bad block asks
// for its bad blocks (take_bad_blocks()) once its update is recorded, and
// fails with EIO naming them.  The checker also keeps every block whose
// latest leaf was bad, so that a later read of it (the table does not
// hash a known block again) fails too, until a write makes it good.  The
// report names the bad blocks of the whole export from the table's map
// (BlockMap::diff).
//
// Threads: leaf_known() may run on any number of threads at once; it
// reads the map (read-only), this thread's state, and bad_ under mutex_.

#ifndef BLKHASH_FILTER_MAP_CHECK_H
#define BLKHASH_FILTER_MAP_CHECK_H

#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "block_map.h"
#include "block_table.h"

namespace blkhash::filter {

class MapChecker : public LeafObserver {
 public:
  explicit MapChecker(std::shared_ptr<const BlockMap> map)
      : map_(std::move(map)) {}

  const BlockMap& map() const { return *map_; }

  void leaf_known(uint64_t block, const uint8_t* leaf) override;

  // Forgets this thread's bad blocks: call when a request starts.
  static void begin_request();
  // This thread's bad blocks since begin_request() as block ranges
  // ("12,40-41"), or "" if none; forgets them.
  static std::string take_bad_blocks();

  // Whether a block in [first, end) is known to be bad.
  bool any_bad(uint64_t first, uint64_t end) const;

 private:
  const std::shared_ptr<const BlockMap> map_;
  mutable std::mutex mutex_;  // guards bad_
  std::set<uint64_t> bad_;    // blocks whose latest leaf was not the map's
};

}  // namespace blkhash::filter

#endif  // BLKHASH_FILTER_MAP_CHECK_H
