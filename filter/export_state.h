// Everything the filter knows about one export, shared by every
// connection to it.
//
// An ExportState owns the export's BlockTable and passes each client
// request to the plugin, recording what the request proved about the
// content (see block_table.h for what each kind of request means).
// It decides when to report and computes the report: blocks the table
// does not know are found through the plugin's extents (zeros need no
// reading) and then read (readback.h), so a report is never a guess.
//
// Lifecycle: attach() when a connection is prepared, detach() when it is
// finalized.  A report is due after data requests once no connection is
// attached: the last detach() makes it, or the next attach() if it came
// first.  report_at_cleanup() makes one at shutdown if the content changed
// since, or none was made.  While a report is being computed, attach()
// and description() wait for it, so a client connecting then gets the
// finished report.
//
// blkhash-expect: the request after which every block is known checks the
// root and fails with EIO on a mismatch, as does every later flush, and a
// report that finds a mismatch (expect, or blkhash-verify's read-back)
// makes every later connection to the export fail at open.
//
// Invariants:
// - table_ only changes in attach() with no connection attached and no
//   report running, so requests (which run only between attach() and
//   detach()) use it without mutex_; other exports reach it through
//   forget(), which takes mutex_.
// - A report runs with no connection to this export attached.

#ifndef BLKHASH_FILTER_EXPORT_STATE_H
#define BLKHASH_FILTER_EXPORT_STATE_H

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include <nbdkit-filter.h>

#include "block_table.h"
#include "config.h"
#include "hash_pool.h"
#include "range_lock.h"
#include "report.h"

namespace blkhash::filter {

class Exports;

class ExportState {
 public:
  ExportState(std::string name, const Config& config, HashPool* pool,
              unsigned readers, Exports& exports);

  const std::string& name() const { return name_; }

  // Connection lifecycle.  attach() returns -1 after nbdkit_error.
  int attach(nbdkit_next* next);
  void detach(nbdkit_next* next);
  void abandon();  // a connection closed without detach()

  // The latest report line, or a "pending" line before the first.
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

  // Another export name changed this range of the storage we may share.
  void forget(uint64_t offset, uint64_t length);

  // At shutdown: reports through a context of its own, if needed.
  void report_at_cleanup(nbdkit_backend* backend);

 private:
  void note_request(bool changes_content);
  // Runs a table update; on failure forgets the range (or, if even that
  // fails, marks the table lost), logs, and sets *err = EIO.
  template <typename Update>
  int record(const char* what, uint64_t offset, uint64_t length, int* err,
             Update update);
  // After a request that recorded content: 0, or -1 with *err = EIO if the
  // request completed the image and the root is not blkhash-expect.
  int check_completion(uint64_t completions_before, int* err);
  // The client-visible error when a mismatch was found.
  void refuse(const char* what);

  // Sizes the table for next's export; mutex_ held.  -1 after nbdkit_error.
  int ensure_table_locked(nbdkit_next* next);
  // Makes a report with reporting_ set; `lock` is released meanwhile.
  void report_locked(std::unique_lock<std::mutex>& lock, nbdkit_next* next);
  void report(nbdkit_next* next);

  const std::string name_;
  const Config& config_;
  HashPool* const pool_;
  const unsigned readers_;
  Exports& exports_;
  RangeLock& ranges_;  // shared by all exports

  std::mutex mutex_;  // guards the members up to the atomics below
  std::condition_variable report_finished_;
  bool reporting_ = false;
  unsigned attached_ = 0;
  bool reported_ = false;
  std::string description_;
  std::string mismatch_message_;
  uint64_t hashed_at_last_report_ = 0;
  uint64_t unfolded_at_last_report_ = 0;
  std::shared_ptr<BlockTable> table_;

  // Set by requests, cleared when a report starts.
  std::atomic<bool> requests_since_report_{false};
  std::atomic<bool> changed_since_report_{false};
  // The table could not record a request: reports are incomplete until
  // the table is rebuilt.
  std::atomic<bool> table_lost_{false};
  // The content is known not to have the expected checksum.
  std::atomic<bool> mismatch_{false};
};

}  // namespace blkhash::filter

#endif  // BLKHASH_FILTER_EXPORT_STATE_H
