// Everything the filter knows about one export name with data requests,
// shared by every connection to it.
//
// An ExportState owns the export's BlockTable (none with
// blkhash-digest=none) and WholeDigest (with blkhash-whole), and passes
// each client request to the plugin, recording what the request proved
// about the content in both (content_recorder.h says what each kind of
// request means).
// It decides when to report and makes the report: blocks the table does
// not know are found through the plugin's extents (zeros need no reading)
// and then read (readback.h), so a report is never a guess; publish.h
// says where the report goes.
//
// When reports are made:
// - at the last detach, if one is due and needs no reads (every block
//   known, blkhash-verify off): cheap, so every copy gets its line;
// - by check(), when a client asks for the verdict (nbdinfo --list): it
//   waits until no connection with data requests is attached, then makes
//   the report that is due, reading what is unknown;
// - at shutdown (report_at_cleanup), if one is due.
// A report is due when none was made with a root yet, or the content
// changed since the last one.  So a probe (a few reads) costs no read-back,
// and a plain connection never waits for a verdict nor is refused by one.
//
// blkhash-expect in flight: the request after which every block is known
// checks the root and fails with EIO on a mismatch, as does every later
// flush until the content changes again.
//
// Connections: attach() at a connection's first data request, detach()
// when it is finalized (abandon() if it closes without).
//
// Invariants:
// - table_ only changes in attach() with no connection attached and no
//   report running, or in a report through a context of its own, so
//   requests (which run only between attach() and detach()) use it
//   without mutex_; other exports reach it through forget(), which takes
//   mutex_.
// - A report runs with no connection to this export attached
//   (reporting_ makes attach() wait).
//
// Errors: requests return -1 with *err set, after nbdkit_error; attach()
// returns -1 after nbdkit_error; exceptions are the callbacks' business
// (blkhash.cc turns them into EIO).

#ifndef BLKHASH_FILTER_EXPORT_STATE_H
#define BLKHASH_FILTER_EXPORT_STATE_H

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <nbdkit-filter.h>

#include "block_table.h"
#include "config.h"
#include "deferral.h"
#include "hash_pool.h"
#include "map_check.h"
#include "range_lock.h"
#include "report.h"
#include "whole_digest.h"

namespace blkhash::filter {

class ExportState {
 public:
  // Called after a write, zero or trim changed a range of the storage
  // (before the table records it), so that exports sharing the storage
  // forget it.
  using ChangeNotice =
      std::function<void(const ExportState*, uint64_t offset, uint64_t length)>;

  // `ranges` is shared by every export; `readers` threads read reports;
  // `deferral` (or null) records requests after the reply.
  ExportState(std::string name, const Config& config, HashPool* pool,
              Deferral* deferral, unsigned readers, RangeLock& ranges,
              ChangeNotice changed);

  const std::string& name() const { return name_; }

  // Connection lifecycle.  attach() returns -1 after nbdkit_error.
  int attach(nbdkit_next* next);
  void detach(nbdkit_next* next);
  void abandon();  // a connection closed without detach()

  // The latest report line, or a "pending" line before the first.  Never
  // waits for a report being made.
  std::string description();

  // Client requests: the plugin's answer, recorded in the table.  A
  // failure to record makes the blocks unknown, or the export's reports
  // incomplete, and the request fails with EIO.
  int pread(nbdkit_next* next, void* buf, uint32_t count, uint64_t offset,
            uint32_t flags, int* err);
  int pwrite(nbdkit_next* next, const void* buf, uint32_t count,
             uint64_t offset, uint32_t flags, int* err);
  int zero(nbdkit_next* next, uint32_t count, uint64_t offset, uint32_t flags,
           int* err);
  int trim(nbdkit_next* next, uint32_t count, uint64_t offset, uint32_t flags,
           int* err);
  int extents(nbdkit_next* next, uint32_t count, uint64_t offset,
              uint32_t flags, struct nbdkit_extents* extents, int* err);
  int flush(nbdkit_next* next, uint32_t flags, int* err);

  // After a data request, with no range held: with blkhash-whole, reads
  // the gap at the whole-image digest's cursor while its reorder buffer
  // is over the window (before any write: over kEarlyGapBytes).  Failures
  // only leave the gap for the report.
  void after_request(nbdkit_next* next);

  // Another export name changed this range of the storage we may share.
  void forget(uint64_t offset, uint64_t length);

  // The verdict a client asked for: waits until no connection with data
  // requests is attached (incomplete if that does not happen by
  // `deadline`, or reports are interrupted), makes the report if one is
  // due through a context of its own, and returns its verdict.
  Verdict check(nbdkit_backend* backend,
                std::chrono::steady_clock::time_point deadline);

  // At shutdown: the report, if one is due.
  void report_at_cleanup(nbdkit_backend* backend);

 private:
  void note_change();
  // Forgets a range in this export's table and whole-image digest.
  void forget_here(uint64_t offset, uint64_t length);
  // After a failed plugin write or zero: forgets the range (the storage
  // may hold anything there now); -1 with the plugin's *err kept.
  int forget_failed(const char* what, uint64_t offset, uint64_t length,
                    int* err);
  // The table's completions(), or 0 without a table.
  uint64_t completions() const;
  // Runs a table update; on failure forgets the range (or, if even that
  // fails, marks the table lost), logs, and sets *err = EIO.
  template <typename Update>
  int record(const char* what, uint64_t offset, uint64_t length, int* err,
             Update update);
  // blkhash-expect-map: at a request's start, and after it recorded
  // content: 0, or -1 with *err = EIO after naming the bad blocks it
  // completed.
  void begin_checks();
  // Hands the recording of `bytes` (update(bytes), then the completion
  // check) to the deferral, with `held`; false if it is not taken.
  template <typename Update>
  bool defer(std::optional<RangeLock::Guard>& held,
             std::span<const uint8_t> bytes, const char* what,
             uint64_t offset, uint64_t completions, Update update);
  // Waits until no deferred record of this export is pending; mutex_.
  void drain_locked(std::unique_lock<std::mutex>& lock);
  int check_blocks(const char* what, int* err);
  // After a request that recorded content: 0, or -1 with *err = EIO if the
  // request completed the image and the root is not blkhash-expect, or
  // the whole-image digest is not blkhash-expect=ALGORITHM:HEX.
  int check_completion(uint64_t completions_before, int* err);
  // The mismatch of the whole-image digest, for the first request after
  // which every byte has passed its cursor; "" otherwise.
  std::string whole_completion_mismatch();

  // pwrite with the recording done by idle hashing threads while the
  // plugin writes (see overlaps_plugin()).
  bool overlaps_plugin(uint32_t count) const;
  int pwrite_overlapped(nbdkit_next* next, const void* buf, uint32_t count,
                        uint64_t offset, uint32_t flags, int* err,
                        uint64_t completions);
  // Writes at least this large are recorded while the plugin writes them,
  // in slices of this size, so that whichever thread is free takes one.
  static constexpr uint32_t kOverlapMinBytes = 1 << 20;
  static constexpr uint64_t kOverlapSliceBytes = 512 << 10;
  // Before any write, the whole-image digest reads the gap at its cursor
  // once this much waits behind it (see after_request()).
  static constexpr uint64_t kEarlyGapBytes = 8 << 20;

  // Sizes the table for next's export; mutex_ held.  -1 after nbdkit_error.
  int ensure_table_locked(nbdkit_next* next);
  bool report_due_locked() const;
  // Makes a report with reporting_ set; `lock` is released meanwhile.
  void report_locked(std::unique_lock<std::mutex>& lock, nbdkit_next* next);
  // The same through a context of its own, opened on `backend`.
  void report_through_locked(std::unique_lock<std::mutex>& lock,
                             nbdkit_backend* backend, int shared);
  void report(nbdkit_next* next);
  // A report that says the export cannot be hashed (no table).
  void report_unavailable(nbdkit_next* next);
  // The block map of a report, built once from the table when the report
  // has a root and blkhash-expect-map (its bad blocks) or blkhash-map (the
  // file) asks for it.
  struct ReportMap {
    std::optional<std::string> bytes;  // none: not built, or blocks unknown
    DigestValue root;                  // the root written in bytes
    std::string error;                 // why building it failed
  };
  // `map` receives the report's block map if one is asked for.
  Report compute_report(nbdkit_next* next, ReportMap& map);
  // The whole-image digest's part of a report.
  void compute_whole(nbdkit_next* next, Report& report);
  // The block map of a report with a root (bad blocks, the map file).
  void compute_map(Report& report, ReportMap& map);
  // blkhash-verify: the export read back into a fresh table.
  void compute_verify(nbdkit_next* next, Report& report);
  // The report with blkhash-digest=none: the whole-image digest alone.
  Report compute_whole_only(nbdkit_next* next);
  // blkhash-map: replaces the map file with `map` if the report has a root
  // (and it is the map's), else removes it.  False after nbdkit_error.
  bool write_map(const Report& report, const ReportMap& map);

  const std::string name_;
  const Config& config_;
  HashPool* const pool_;
  Deferral* const deferral_;
  const unsigned readers_;
  RangeLock& ranges_;  // shared by all exports
  const ChangeNotice changed_;
  // With blkhash-expect-map: told every leaf the table learns.
  const std::unique_ptr<MapChecker> map_checker_;

  std::mutex mutex_;  // guards the members up to the atomics below
  std::condition_variable idle_;  // attached_, pending_ or reporting_ fell
  bool reporting_ = false;
  unsigned attached_ = 0;  // connections between attach() and detach()
  unsigned pending_ = 0;   // deferred records not done yet
  bool reported_ = false;  // a report with a root was made since the table
  std::optional<Verdict> verdict_;  // of the latest report
  std::string description_;
  std::string mismatch_message_;  // why flushes fail (mismatch_)
  uint64_t hashed_at_last_report_ = 0;
  uint64_t unfolded_at_last_report_ = 0;
  std::optional<uint64_t> length_;  // the export's, once it is known
  std::shared_ptr<BlockTable> table_;  // null with blkhash-digest=none
  // With blkhash-whole; made and replaced with table_, used the same way.
  std::shared_ptr<WholeDigest> whole_;

  // Set by changes, cleared when a report starts.
  std::atomic<bool> changed_since_report_{false};
  // A write, zero or trim reached the storage since the table was made
  // (through this export or another): zero extents may be stale.
  std::atomic<bool> written_{false};
  // Bytes read for the whole-image digest during traffic.
  std::atomic<uint64_t> whole_read_{0};
  // The table could not record a request: reports are incomplete until
  // the table is rebuilt.
  std::atomic<bool> table_lost_{false};
  // The whole-image digest was checked against blkhash-expect once every
  // byte had passed its cursor (reset with whole_).
  std::atomic<bool> whole_checked_{false};
  // The request that completed the image found a mismatch, and the
  // content has not changed since: flushes fail.
  std::atomic<bool> mismatch_{false};
};

}  // namespace blkhash::filter

#endif  // BLKHASH_FILTER_EXPORT_STATE_H
