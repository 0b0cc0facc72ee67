// Folding the settled prefix of the image into the outer hash.
//
// The leaves of the longest known prefix of the image go into the outer
// hash (the prefix, a RootBuilder) as soon as they are known, and the
// group store forgets them: their digests and, once a whole region of
// 65536 blocks is folded, its groups.  A copy that advances through the
// image (sequential, or nbdcopy's many requests in flight) then holds only
// the leaves between the fold front and its furthest write, whatever the
// image size.  Folded blocks count as known: reads and zero extents leave
// them alone.
//
// A write, zero, trim or forget into a folded block cannot be applied to
// a leaf that is gone, so it unfolds: the fold goes back to the latest
// checkpoint of the outer hash at or before that block (one is kept at the
// start of each of the latest kRecentCheckpoints regions, and of regions
// 0 and 2^k), and the blocks from there to the old front become unknown,
// to be read again (unfolded_bytes() counts them).  Folding never changes
// the root, only what it costs to get it.
//
// With folding off, nothing is ever folded, and root() hashes every
// group's leaves when asked.
//
// Locks: mutex_ guards the prefix and the checkpoints, and only its holder
// moves the front.  Lock order: mutex_, then one stripe, then the store's
// region lock.  fold_if_wanted() and unfold() take mutex_ (and the fold a
// stripe lock), so they are called with no stripe locked.

#ifndef BLKHASH_FOLDED_PREFIX_H
#define BLKHASH_FOLDED_PREFIX_H

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "block_layout.h"
#include "group_store.h"
#include "leaf_hasher.h"
#include "parameters.h"
#include "root.h"
#include "thread_annotations.h"

namespace blkhash {

class FoldedPrefix {
 public:
  // Checkpoints kept at the start of the latest regions, besides those
  // of regions 0 and 2^k.
  static constexpr uint64_t kRecentCheckpoints = 8;
  // What one checkpoint costs: the builder and its digest context, which
  // OpenSSL allocates out of our sight (an estimate, generous for SHA-2).
  static constexpr size_t kCheckpointBytes = 1024;

  // All references must outlive the fold.  If not `enabled`, nothing is
  // ever folded.
  FoldedPrefix(const Parameters& parameters, const BlockLayout& layout,
               GroupStore& store, const LeafHasher& hasher, bool enabled);

  // Groups [0, front()) are folded.  The front rises only with the stripe
  // of the group it passes locked, so a thread holding a group's stripe
  // never sees that group become folded; it falls (unfold) with no stripe
  // locked, so such a thread may see it become unfolded.
  uint64_t front() const { return front_.load(std::memory_order_acquire); }
  bool is_folded(uint64_t g) const { return g < front(); }

  // With g's stripe locked, after group g changed: if it is the group at
  // the front and now known, the next fold_if_wanted() folds it.
  void note_change_locked(uint64_t g, const Group& group);

  // Folds the known groups at the front, if a change asked for it and no
  // other thread is folding (which then does it).  No stripe locked.
  void fold_if_wanted() EXCLUDES(mutex_);

  // Undoes the fold back to a checkpoint at or before group g, if g is
  // still folded.  No stripe locked.
  void unfold(uint64_t g) EXCLUDES(mutex_);

  // The root, if every block is known: the prefix, continued over the
  // leaves of the groups beyond the front.
  std::optional<DigestValue> root() const EXCLUDES(mutex_);

  // Bytes unfolded so far: known, then unknown again.
  uint64_t unfolded_bytes() const { return unfolded_bytes_.load(); }
  // Heap bytes held: the prefix and the checkpoints.
  size_t memory_bytes() const { return memory_bytes_.load(); }

 private:
  void fold_locked() REQUIRES(mutex_);
  // Frees folded region r and checkpoints the outer hash at the start of
  // the next.
  void finish_region_locked(uint64_t r) REQUIRES(mutex_);
  // With g's stripe locked: appends the leaves of known group g.
  void add_leaves_locked(RootBuilder& root, uint64_t g, const Group& group,
                         std::vector<uint8_t>& scratch) const;

  const Parameters& parameters_;
  const BlockLayout layout_;
  GroupStore& store_;
  const LeafHasher& hasher_;
  const bool enabled_;

  mutable Mutex mutex_;
  // The outer hash over the leaves of every folded group (null if off).
  std::unique_ptr<RootBuilder> prefix_ GUARDED_BY(mutex_);
  // Region r -> the outer hash over the leaves of regions [0, r).
  // Region 0's (no leaves) is always there.
  std::map<uint64_t, std::unique_ptr<RootBuilder>> checkpoints_
      GUARDED_BY(mutex_);
  // Changes only with mutex_ held (see front()).
  std::atomic<uint64_t> front_{0};
  // A change made the group at the front known.
  std::atomic<bool> wanted_{false};
  std::atomic<uint64_t> unfolded_bytes_{0};
  std::atomic<size_t> memory_bytes_{0};
};

}  // namespace blkhash

#endif  // BLKHASH_FOLDED_PREFIX_H
