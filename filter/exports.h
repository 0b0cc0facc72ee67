// The exports the filter tracks, by name, and what they share.
//
// A name gets state (an ExportState, its block table) only with its first
// data request (read, write, zero, trim, block status): probes that only
// connect cost nothing and are never reported.  At most
// blkhash-max-exports names are tracked; a data request on one more fails
// (TooManyExports).
//
// A plugin may serve one disk under every export name (memory, file) or a
// different one per name (file dir=): the filter cannot tell.  So the
// exports share one range lock, and a write, zero or trim under one name
// makes the range unknown in the tables of all the others: their next
// report reads it again instead of trusting leaves that may be stale.
// With a single export (the usual case) this costs nothing.
//
// check() is the verdict a client asks for with NBD_OPT_LIST (nbdinfo
// --list): see ExportState::check().

#ifndef BLKHASH_FILTER_EXPORTS_H
#define BLKHASH_FILTER_EXPORTS_H

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include <nbdkit-filter.h>

#include "config.h"
#include "export_state.h"
#include "hash_pool.h"
#include "range_lock.h"

namespace blkhash::filter {

class TooManyExports : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Exports {
 public:
  // `readers`: how many threads a report may read the plugin with;
  // `deferral` (or null): records requests after the reply.
  Exports(const Config& config, HashPool* pool, Deferral* deferral,
          unsigned readers);
  ~Exports();

  // The state of export `name`, created on first use; throws
  // TooManyExports past blkhash-max-exports.
  std::shared_ptr<ExportState> get(const std::string& name);
  // The state of `name` if it has one, else null.
  std::shared_ptr<ExportState> find(const std::string& name);
  std::vector<std::shared_ptr<ExportState>> all();

  // The verdict over every tracked export (the default export "" if none
  // is): 0 if each is match or computed, else -1 after nbdkit_error.
  int check(nbdkit_backend* backend);

  // At shutdown: the report of every export that is due one (the
  // default export's if none is tracked).
  void report_at_cleanup(nbdkit_backend* backend);

 private:
  // `writer` changed [offset, offset + length): the others forget it.
  void forget_in_others(const ExportState* writer, uint64_t offset,
                        uint64_t length);
  // all(), or the default export's state if there is none.
  std::vector<std::shared_ptr<ExportState>> all_or_default();

  const Config& config_;
  HashPool* const pool_;
  Deferral* const deferral_;
  const unsigned readers_;
  RangeLock ranges_;  // shared by every export (see above)

  std::mutex mutex_;  // guards states_
  std::map<std::string, std::shared_ptr<ExportState>> states_;
  std::atomic<size_t> count_{0};  // states_.size(), read without mutex_
};

}  // namespace blkhash::filter

#endif  // BLKHASH_FILTER_EXPORTS_H
