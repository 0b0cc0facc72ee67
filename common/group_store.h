// Where the block table keeps what it knows of each group of 64 blocks,
// and which lock guards it.
//
// A Group is four words: three masks (data, zero, partial: bit i for
// block 64g + i, at most one set per block; none set means unknown) and
// the digests of its data blocks, in an array sized exactly.  A partial
// block's bytes are in a PartialBlock, in its stripe's map.
//
// Groups live in regions of 1024 (BlockLayout), allocated when a block in
// them is first touched and freed once the fold has taken all of them;
// an untouched region costs one pointer.
//
// Locks: group g, and the partial blocks of its blocks, are guarded by
// the mutex of stripe g % kStripes, so threads working on different parts
// of the image rarely meet.  Every method named *_locked, and find() and
// get(), is called with that stripe locked (REQUIRES says so where the
// stripe is an argument; find() and get() assert it is g's).  The region
// directory is written under region_alloc_mutex_ (lock order: a stripe,
// then it).
//
// The store also counts what it holds: known blocks (data or zero, and
// folded ones, which the fold tells it about), how often every block was
// known at once, and the heap bytes it allocated.

#ifndef BLKHASH_GROUP_STORE_H
#define BLKHASH_GROUP_STORE_H

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "block_layout.h"
#include "partial_block.h"
#include "thread_annotations.h"

namespace blkhash {

// The state of one group.  See above for the masks.
struct Group {
  uint64_t data = 0;     // has a digest in `digests`
  uint64_t zero = 0;     // all zeros
  uint64_t partial = 0;  // has a PartialBlock in its stripe's map
  // popcount(data) digests, in block order.
  std::unique_ptr<uint8_t[]> digests;
};

// New content for some blocks of a group: a leaf, zeros, or unknown.
// A block is in at most one mask; blocks in none are left as they are.
struct BlockUpdate {
  uint64_t zero = 0;
  uint64_t unknown = 0;
  uint64_t data = 0;
  // The leaf of each block in `data`, by bit.
  std::array<const uint8_t*, BlockLayout::kGroupBlocks> leaves{};
};

class GroupStore {
 public:
  static constexpr unsigned kStripes = 256;

  // The lock of every group g with g % kStripes == this stripe's index,
  // and the partial blocks of those groups.
  struct Stripe {
    Mutex mutex;  // guards those groups and `partials`
    std::unordered_map<uint64_t, std::unique_ptr<PartialBlock>> partials
        GUARDED_BY(mutex);
  };

  GroupStore(const BlockLayout& layout, size_t digest_size);

  GroupStore(const GroupStore&) = delete;
  GroupStore& operator=(const GroupStore&) = delete;

  Stripe& stripe_of(uint64_t g) const { return stripes_[g % kStripes]; }

  // With g's stripe locked.  The group, or null if its region was never
  // allocated (or was freed: the caller knows whether g is folded).
  Group* find(const Stripe& stripe, uint64_t g) const REQUIRES(stripe.mutex);
  // The group, allocating its region on first use.
  Group& get(Stripe& stripe, uint64_t g) REQUIRES(stripe.mutex);
  // Every block of the group is data or zero.
  bool known_locked(uint64_t g, const Group& group) const;

  // Applies `update` to group g: partial blocks it touches are freed,
  // digests stored, known blocks counted.
  void update_locked(Stripe& stripe, uint64_t g, Group& group,
                     const BlockUpdate& update) REQUIRES(stripe.mutex);

  // The PartialBlock of a block whose partial bit is set.
  PartialBlock& partial_locked(Stripe& stripe, uint64_t block) const
      REQUIRES(stripe.mutex);
  // Makes `block` (of group g) partial: a new PartialBlock, all zeros if
  // `known_zero`, else nothing known; what was known of it is dropped.
  PartialBlock& make_partial_locked(Stripe& stripe, uint64_t g, Group& group,
                                    uint64_t block, bool known_zero)
      REQUIRES(stripe.mutex);
  // Runs change(partial), keeping memory_bytes() exact.
  template <typename Change>
  void change_partial_locked(PartialBlock& partial, Change change) {
    const size_t before = partial.memory_bytes();
    change(partial);
    memory_bytes_ += partial.memory_bytes();
    memory_bytes_ -= before;
  }

  // For the fold.  With g's stripe locked: frees the digests and clears
  // the masks of a known group whose leaves are folded; its blocks stay
  // counted as known.
  void release_locked(Group& group);
  // Frees region r, all of whose groups are folded.  The caller ensures
  // no thread holds a pointer into it (folded_prefix.cc says why).
  void free_region(uint64_t r) EXCLUDES(region_alloc_mutex_);
  // `blocks` folded blocks became unknown (the fold went back).
  void unknown_again(uint64_t blocks) { known_blocks_ -= blocks; }

  // Blocks in data or zero state, folded ones included.
  uint64_t known_blocks() const { return known_blocks_.load(); }
  // How many times every block was known at once.
  uint64_t completions() const { return completions_.load(); }
  // Heap bytes held: the directory, regions, digests, partial blocks.
  size_t memory_bytes() const { return memory_bytes_.load(); }

 private:
  struct Region {
    std::array<Group, BlockLayout::kRegionGroups> groups;
  };

  void erase_partial_locked(Stripe& stripe, uint64_t block)
      REQUIRES(stripe.mutex);
  void store_digests_locked(Group& group, uint64_t new_data,
                            const BlockUpdate& update);
  void count_known(int before, int after);

  const BlockLayout layout_;
  const size_t digest_size_;

  mutable std::array<Stripe, kStripes> stripes_;

  // Directory of regions: null until a block in it is touched, and again
  // once every group in it is folded.  A slot is read only with the
  // stripe of the group looked up locked (and that group not folded);
  // it is set under that lock and region_alloc_mutex_, and cleared under
  // the fold's lock and region_alloc_mutex_.
  std::vector<std::atomic<Region*>> regions_;
  Mutex region_alloc_mutex_;
  std::vector<std::unique_ptr<Region>> owned_regions_  // by region
      GUARDED_BY(region_alloc_mutex_);

  std::atomic<uint64_t> known_blocks_{0};
  std::atomic<uint64_t> completions_{0};
  std::atomic<size_t> memory_bytes_{0};
};

}  // namespace blkhash

#endif  // BLKHASH_GROUP_STORE_H
