// The exports the filter has seen, by name, and what they share.
//
// A plugin may serve one disk under every export name (memory, file) or a
// different one per name (file dir=): the filter cannot tell.  So the
// exports share one range lock, and a write, zero or trim under one name
// makes the range unknown in the tables of all the others: their next
// report reads it again instead of trusting leaves that may be stale.
// With a single export (the usual case) this costs nothing.

#ifndef BLKHASH_FILTER_EXPORTS_H
#define BLKHASH_FILTER_EXPORTS_H

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config.h"
#include "hash_pool.h"
#include "range_lock.h"

namespace blkhash::filter {

class ExportState;

class Exports {
 public:
  // `readers`: how many threads a report may read the plugin with.
  Exports(const Config& config, HashPool* pool, unsigned readers);
  ~Exports();

  // The state of export `name`, created on first use.
  std::shared_ptr<ExportState> get(const std::string& name);
  std::vector<std::shared_ptr<ExportState>> all();

  // One lock for all exports (see above).
  RangeLock& ranges() { return ranges_; }

  // `writer` changed [offset, offset + length): the others forget it.
  void forget_in_others(const ExportState* writer, uint64_t offset,
                        uint64_t length);

 private:
  const Config& config_;
  HashPool* const pool_;
  const unsigned readers_;
  RangeLock ranges_;

  std::mutex mutex_;  // guards states_
  std::map<std::string, std::shared_ptr<ExportState>> states_;
  std::atomic<size_t> count_{0};  // states_.size(), read without mutex_
};

}  // namespace blkhash::filter

#endif  // BLKHASH_FILTER_EXPORTS_H
