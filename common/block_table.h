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
// each covering every 256th group of 64 blocks (group_store.h), so threads
// working on different parts of the image rarely meet.  Operations on the same block
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
// Folding (Fold::kSettledPrefix, folded_prefix.h): the leaves of the
// longest known prefix of the image go into the outer hash as soon as they
// are known, and the table forgets them, so a copy that advances through
// the image holds only a window of leaves, whatever the image size.
// Folded blocks count as known.  A write, zero, trim or forget into a
// folded block unfolds back to a checkpoint, and the blocks from there to
// the old fold front become unknown, to be read again (unknown_ranges()
// lists them; unfolded_bytes() counts them).  Folding never changes the
// root, only what it costs to get it.
//
// Inside (README.md): BlockLayout is the arithmetic of blocks, groups and
// regions; LeafHasher hashes blocks into leaves; GroupStore keeps each
// group's state under its stripe lock; FoldedPrefix folds and unfolds.
// The table routes each range to them: the pieces of blocks a range
// covers in part to PartialBlocks, its whole blocks to the hasher, then
// the store.

#ifndef BLKHASH_BLOCK_TABLE_H
#define BLKHASH_BLOCK_TABLE_H

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "block_layout.h"
#include "byte_range.h"
#include "content_recorder.h"
#include "folded_prefix.h"
#include "group_store.h"
#include "hash_pool.h"
#include "leaf_hasher.h"
#include "parameters.h"
#include "partial_block.h"
#include "thread_annotations.h"

namespace blkhash {

// Told each leaf a BlockTable learns: a block became data (its digest) or
// zero (its zero leaf, by the leaf rule), by a write or an observation.
// Called in the thread that called the table's method, before it returns,
// with a lock of the table held: it must be quick and must not call the
// table.  A block may be told again (written again, even with the same
// content).  Folded blocks are never told again until they are unfolded.
class LeafObserver {
 public:
  virtual ~LeafObserver() = default;
  virtual void leaf_known(uint64_t block, const uint8_t* leaf) = 0;
};

class BlockTable : public ContentRecorder<BlockTable> {
 public:
  // Most blocks a table tracks (BlockLayout): 2^32, 256 TiB at 64K.
  static constexpr uint64_t kMaxBlocks = BlockLayout::kMaxBlocks;

  // Whether to fold the settled prefix of leaves (see above).
  enum class Fold { kNone, kSettledPrefix };

  // Throws ImageTooLarge.  `pool`, if given, hashes the blocks of a large
  // range on several threads; `observer`, if given, is told every leaf
  // learned; both must outlive the table.
  BlockTable(const Parameters& parameters, uint64_t length,
             HashPool* pool = nullptr, Fold fold = Fold::kNone,
             LeafObserver* observer = nullptr);

  BlockTable(const BlockTable&) = delete;
  BlockTable& operator=(const BlockTable&) = delete;

  const Parameters& parameters() const { return parameters_; }
  uint64_t length() const { return layout_.length(); }
  uint64_t block_count() const { return layout_.block_count(); }

  // Ranges must lie within [0, length()); a range beyond throws
  // std::out_of_range.
  // put_data, put_zero, fill_data, fill_zero: see content_recorder.h.
  void forget(uint64_t offset, uint64_t length);

  // The root, if every block is known.
  std::optional<DigestValue> root() const { return folded_.root(); }

  // True when every block is data or zero (root() will answer).
  bool complete() const {
    return store_.known_blocks() == layout_.block_count();
  }

  // How many times the table has become complete: a caller that sees
  // this change across its update knows the image was completed then.
  uint64_t completions() const { return store_.completions(); }

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
  uint64_t unfolded_bytes() const { return folded_.unfolded_bytes(); }

  // Bytes of memory the table holds, by its own accounting.
  size_t memory_bytes() const;

  // Bytes hashed into leaves so far (zero blocks are not hashed).
  uint64_t bytes_hashed() const { return hasher_.bytes_hashed(); }

  // The block map (block_map.h) of the image: its bytes, if every block
  // is known and none is folded (with Fold::kNone, whenever root() would
  // answer).  Its root, written to `*root` if given, is the root() of the
  // table as it was while the map was made: the caller compares the two
  // if the table may change meanwhile.
  std::optional<std::string> map(DigestValue* root = nullptr) const;

 private:
  static constexpr unsigned kGroupBlocks = BlockLayout::kGroupBlocks;
  using Stripe = GroupStore::Stripe;

  // Why content is recorded.  kWrite: the client changed it (a write, a
  // zero, a trim, a failed write), which replaces whatever was known.
  // kObserved: a read or a zero extent showed it, which sets only what is
  // not known yet.
  friend class ContentRecorder<BlockTable>;
  using Source = ContentSource;

  // With g's stripe locked, before recording a change to group g: whether
  // to record it.  A write always is recorded: a folded group is unfolded
  // first (the stripe is unlocked meanwhile, and locked again).  An
  // observation of a folded group is not: its blocks are known already.
  bool may_record_locked(uint64_t g, Source source, Stripe& stripe)
      REQUIRES(stripe.mutex);

  // With g's stripe locked: stores the update and tells the fold.
  void update_locked(Stripe& stripe, uint64_t g, Group& group,
                     const BlockUpdate& update) REQUIRES(stripe.mutex);
  // Hashes a partial block whose bytes are all known into a leaf.
  void complete_partial_locked(Stripe& stripe, uint64_t g, Group& group,
                               uint64_t block, const PartialBlock& partial)
      REQUIRES(stripe.mutex);

  // Splits [offset, offset + length) at block boundaries: piece(block,
  // offset in block, bytes, offset in range) for the blocks it covers in
  // part (only its first and last can be), then whole(first block, count,
  // offset in range) for the blocks it covers whole, if any.
  template <typename Piece, typename Whole>
  void split(uint64_t offset, uint64_t length, Piece piece,
             Whole whole) const;
  // Calls fn(g, mask) for each group of blocks [first, first + count),
  // with the mask of those blocks in g.
  template <typename Fn>
  static void for_each_group(uint64_t first, uint64_t count, Fn fn);

  void record(uint64_t offset, uint64_t length, const uint8_t* data,
              Source source);
  void apply_piece(uint64_t block, uint32_t offset, uint32_t n,
                   const uint8_t* data, Source source);
  void forget_piece(uint64_t block, uint32_t offset, uint32_t n);
  void set_group_masks(uint64_t g, uint64_t zero, uint64_t unknown,
                       Source source);
  // With g's stripe locked: zero extents complete the partial blocks
  // among `zero` that no client wrote or read part of.
  void fill_zero_partials_locked(Stripe& stripe, uint64_t g, Group& group,
                                 uint64_t zero) REQUIRES(stripe.mutex);
  void store_full_blocks(uint64_t first, uint64_t count, const uint8_t* data,
                         Source source);
  // The blocks a read must hash: those still unknown.  It completes the
  // partial ones among them right away.
  std::vector<uint64_t> blocks_to_fill(uint64_t first, uint64_t count,
                                       const uint8_t* data);
  // Stores the leaves of hashed blocks, one group at a time.
  void store_leaves(std::span<const uint64_t> blocks,
                    const LeafHasher::Leaves& leaves, Source source);

  // With g's stripe locked: adds the unknown bytes of group g (null: never
  // touched) to `list`; false when the list is full.
  bool add_unknown_locked(Stripe& stripe, uint64_t g, const Group* group,
                          ByteRangeList& list) const REQUIRES(stripe.mutex);

  const Parameters& parameters_;
  const BlockLayout layout_;
  LeafHasher hasher_;
  GroupStore store_;
  FoldedPrefix folded_;
  LeafObserver* const observer_;
};

}  // namespace blkhash

#endif  // BLKHASH_BLOCK_TABLE_H
