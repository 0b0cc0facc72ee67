// The offset-keyed front door: blkhash of data that arrives in any order.
//
// A BlockTable records, for every block of an image of known length, what
// is known of its content:
//
//   unknown   nothing (the initial state, and after a trim or a failure)
//   zero      all zero bytes: its leaf is the precomputed zero leaf
//   data      its leaf (the digest of its bytes)
//   partial   some of its bytes, buffered in a PartialBlock until the
//             rest arrives, then hashed and freed
//
// Every operation takes any byte range:
//   put_data / put_zero   new content (a write): replaces what was known
//   forget                content no longer known (trim, failed write)
//   fill_data / fill_zero content seen by a read or a zero extent: sets
//                         only what is not known yet, never overriding a
//                         write; a zero extent never completes a block
//                         that a write or read showed part of (a layer
//                         below may report stale holes: such a block is
//                         completed by reading)
// root() folds the leaves in block order plus LE64(length); while any
// block is unknown or partial it returns nothing, and unknown_ranges()
// says exactly which bytes are missing, so the caller can read them.
//
// Threads: any number of threads may call any method at once.  Blocks are
// hashed with no lock held; the table's state is guarded by lock stripes,
// each covering every 256th group of 64 blocks, so threads working on
// different parts of the image rarely meet.  Operations on the same block
// from several threads at once are each atomic, but their order is the
// caller's business (the filter orders overlapping writes itself).
//
// Memory (memory_bytes() is the table's own accounting of it):
//   - nothing for a region of 65536 blocks no one touched;
//   - then 32 bytes per group of 64 blocks: 0.5 byte per block, whatever
//     its state;
//   - a data block: its digest, in a per-group array sized exactly;
//   - a partial block: one block-sized buffer, until it is complete.
//
// Folding (Fold::kSettledPrefix): the leaves of the longest known prefix
// of the image go into the outer hash as soon as they are known, and the
// table forgets them: their digests and, once a whole region of 65536
// blocks is folded, its groups.  A copy that advances through the image
// (sequential, or nbdcopy's many requests in flight) then holds only the
// leaves between the folded prefix and the furthest write, whatever the
// image size.  Folded blocks count as known: reads and zero extents leave
// them alone.  A write, zero, trim or forget into a folded block cannot
// be applied to a leaf that is gone, so it unfolds: the fold goes back to
// the latest checkpoint of the outer hash at or before that block (one is
// kept at the start of each recent region, and of regions 2^k), and the
// blocks from there to the old fold front become unknown, to be read again
// (unknown_ranges() lists them; unfolded_bytes() counts them).  Folding
// never changes the root, only what it costs to get it.

#ifndef BLKHASH_BLOCK_TABLE_H
#define BLKHASH_BLOCK_TABLE_H

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "block_layout.h"
#include "byte_range.h"
#include "hash_pool.h"
#include "leaf_hasher.h"
#include "parameters.h"
#include "partial_block.h"
#include "root.h"

namespace blkhash {

class BlockTable {
 public:
  // Most blocks a table tracks (BlockLayout): 2^32, 256 TiB at 64K.
  static constexpr uint64_t kMaxBlocks = BlockLayout::kMaxBlocks;

  // Whether to fold the settled prefix of leaves (see above).
  enum class Fold { kNone, kSettledPrefix };

  // Throws ImageTooLarge.  `pool`, if given, hashes the blocks of a large
  // range on several threads; it must outlive the table.
  BlockTable(const Parameters& parameters, uint64_t length,
             HashPool* pool = nullptr, Fold fold = Fold::kNone);
  ~BlockTable();

  BlockTable(const BlockTable&) = delete;
  BlockTable& operator=(const BlockTable&) = delete;

  const Parameters& parameters() const { return parameters_; }
  uint64_t length() const { return layout_.length(); }
  uint64_t block_count() const { return layout_.block_count(); }

  // Ranges must lie within [0, length()); a range beyond throws
  // std::out_of_range.
  void put_data(uint64_t offset, std::span<const uint8_t> data);
  void put_zero(uint64_t offset, uint64_t length);
  void forget(uint64_t offset, uint64_t length);
  void fill_data(uint64_t offset, std::span<const uint8_t> data);
  void fill_zero(uint64_t offset, uint64_t length);

  // The root, if every block is known.
  std::optional<DigestValue> root() const;

  // True when every block is data or zero (root() will answer).
  bool complete() const {
    return known_blocks_.load() == layout_.block_count();
  }

  // How many times the table has become complete: a caller that sees
  // this change across its update knows the image was completed then.
  uint64_t completions() const { return completions_.load(); }

  // The unknown bytes from `start` on, in order, adjacent ranges merged,
  // at most `max_ranges` of them.
  std::vector<ByteRange> unknown_ranges(uint64_t start = 0,
                                        size_t max_ranges = SIZE_MAX) const;
  uint64_t unknown_bytes() const;

  struct Counts {
    uint64_t unknown = 0;
    uint64_t zero = 0;
    uint64_t data = 0;
    uint64_t partial = 0;
    uint64_t folded = 0;
  };
  Counts counts() const;

  // Blocks whose leaves are folded into the outer hash.
  uint64_t folded_blocks() const;

  // Bytes unfolded by changes to folded blocks so far: they were known,
  // became unknown, and are read again unless written again first.
  uint64_t unfolded_bytes() const { return unfolded_bytes_.load(); }

  // Bytes of memory the table holds, by its own accounting.
  size_t memory_bytes() const { return memory_bytes_.load(); }

  // Bytes hashed into leaves so far (zero blocks are not hashed).
  uint64_t bytes_hashed() const { return hasher_.bytes_hashed(); }

 private:
  static constexpr unsigned kGroupBlocks = BlockLayout::kGroupBlocks;
  static constexpr unsigned kSegmentGroups = BlockLayout::kRegionGroups;
  static constexpr unsigned kStripes = 256;
  // Fold checkpoints kept at the start of the latest regions, besides
  // those of regions 0 and 2^k.
  static constexpr uint64_t kRecentCheckpoints = 8;
  // What one checkpoint costs: the builder and its digest context, which
  // OpenSSL allocates out of our sight (an estimate, generous for SHA-2).
  static constexpr size_t kCheckpointBytes = 1024;

  // 64 consecutive blocks.  Bit i of a mask is block (group start + i).
  // A block is in at most one of the masks; in none means unknown.
  struct Group {
    uint64_t data = 0;     // has a digest in `digests`
    uint64_t zero = 0;     // all zeros
    uint64_t partial = 0;  // has a PartialBlock in its stripe's map
    // popcount(data) digests, in block order.
    std::unique_ptr<uint8_t[]> digests;
  };

  struct Segment {
    std::array<Group, kSegmentGroups> groups;
  };

  // The lock of every group g with g % kStripes == this stripe's index,
  // and the partial blocks of those groups.
  struct Stripe {
    std::mutex mutex;  // guards those groups and `partials`
    std::unordered_map<uint64_t, std::unique_ptr<PartialBlock>> partials;
  };

  enum class Mode { kPut, kFill };

  // Content of one block to store: a leaf, zeros, or unknown.
  struct BlockUpdate {
    uint64_t zero = 0;
    uint64_t unknown = 0;
    uint64_t data = 0;
    std::array<const uint8_t*, kGroupBlocks> leaves{};  // for `data` bits
  };

  Stripe& stripe_of(uint64_t group) const;
  // With the group's stripe locked.  A folded group has no Group state:
  // its blocks are known through folded_groups_ alone.
  bool is_folded(uint64_t group) const;
  Group* find_group(uint64_t group) const;  // null if never allocated
  Group& get_group(uint64_t group);         // allocates on first use
  bool group_known_locked(uint64_t group, const Group& group_state) const;
  // Locks the group's stripe for an update.  A write (kPut) into a folded
  // group unfolds it first; a read (kFill) of a folded group has nothing
  // to record and gets the lock back not owned.
  std::unique_lock<std::mutex> lock_unfolded(uint64_t group, Mode mode);

  void apply(uint64_t offset, uint64_t length, const uint8_t* data,
             Mode mode);
  void apply_piece(uint64_t block, uint32_t offset, uint32_t n,
                   const uint8_t* data, Mode mode);
  void forget_piece(uint64_t block, uint32_t offset, uint32_t n);
  void store_full_blocks(uint64_t first, uint64_t count, const uint8_t* data,
                         Mode mode);
  // The blocks a read must hash: those still unknown; it completes the
  // partial ones among them right away.
  std::vector<uint64_t> blocks_to_fill(uint64_t first, uint64_t count,
                                       const uint8_t* data);
  // Stores the leaves of hashed blocks, one group at a time.
  void store_leaves(std::span<const uint64_t> blocks,
                    const LeafHasher::Leaves& leaves, Mode mode);
  void set_group_masks(uint64_t group, uint64_t zero, uint64_t unknown,
                       Mode mode);

  // Folding.  fold_if_wanted() and unfold() take fold_mutex_ (and the
  // fold a stripe lock), so they are called with no stripe locked.
  void fold_if_wanted();
  void fold_locked();  // fold_mutex_ held
  // fold_mutex_ held: frees a folded segment and checkpoints the outer
  // hash at the start of the next.
  void finish_segment_locked(uint64_t next_segment);
  // Undoes the fold back to a checkpoint at or before `group`.
  void unfold(uint64_t group);
  // Appends the leaves of a known group; its stripe locked.
  void add_group_leaves_locked(RootBuilder& root, uint64_t group,
                               const Group& group_state,
                               std::vector<uint8_t>& batch) const;

  // With the stripe locked.
  void update_group_locked(Stripe& stripe, uint64_t group_index,
                           Group& group, const BlockUpdate& update);
  void complete_partial_locked(Stripe& stripe, uint64_t group_index,
                               Group& group, uint64_t block,
                               const PartialBlock& partial);
  void erase_partial_locked(Stripe& stripe, uint64_t block);
  // Runs change(partial), keeping memory_bytes_ exact.
  template <typename Change>
  void change_partial_locked(PartialBlock& partial, Change change);

  const Parameters& parameters_;
  const BlockLayout layout_;
  const size_t digest_size_;
  LeafHasher hasher_;
  const bool fold_;

  // Directory of segments: null until a block in it is touched, and again
  // once every group in it is folded.  A slot is read only with the
  // stripe of the group looked up locked (and that group not folded);
  // it is set under that lock and segment_alloc_mutex_, and cleared under
  // fold_mutex_ and segment_alloc_mutex_ once all its groups are folded.
  std::vector<std::atomic<Segment*>> segments_;
  std::mutex segment_alloc_mutex_;  // guards owned_segments_
  std::vector<std::unique_ptr<Segment>> owned_segments_;  // by segment

  mutable std::array<Stripe, kStripes> stripes_;

  // Lock order: fold_mutex_, then one stripe, then segment_alloc_mutex_.
  mutable std::mutex fold_mutex_;  // guards prefix_ and checkpoints_
  // The outer hash over the leaves of every folded group.
  std::unique_ptr<RootBuilder> prefix_;
  // Segment index -> the outer hash over the leaves of the segments
  // before it.  Segment 0's (no leaves) is always there.
  std::map<uint64_t, std::unique_ptr<RootBuilder>> checkpoints_;
  // Groups [0, folded_groups_) are folded.  Changes with fold_mutex_ held:
  // it rises by one group with that group's stripe locked, so a thread
  // holding a stripe never sees its group become folded; it falls (unfold)
  // with no stripe locked, so such a thread may see it become unfolded.
  std::atomic<uint64_t> folded_groups_{0};
  // A change made the group at the fold front known.
  std::atomic<bool> fold_wanted_{false};
  std::atomic<uint64_t> unfolded_bytes_{0};

  std::atomic<size_t> memory_bytes_{0};
  std::atomic<uint64_t> known_blocks_{0};  // blocks in data or zero state
  std::atomic<uint64_t> completions_{0};
};

}  // namespace blkhash

#endif  // BLKHASH_BLOCK_TABLE_H
