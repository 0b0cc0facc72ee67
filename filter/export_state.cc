// See export_state.h.  This file: the connection lifecycle;
// export_requests.cc: the requests and how they are recorded;
// export_report.cc: when reports are made, and how.

#include "export_state.h"

#include <algorithm>
#include <cinttypes>

namespace blkhash::filter {

ExportState::ExportState(std::string name, const Config& config,
                         HashPool* pool, Deferral* deferral, unsigned readers,
                         RangeLock& ranges, ChangeNotice changed)
    : name_(std::move(name)),
      config_(config),
      pool_(pool),
      deferral_(deferral),
      readers_(readers),
      ranges_(ranges),
      changed_(std::move(changed)),
      map_checker_(config.expect_map
                       ? std::make_unique<MapChecker>(config.expect_map)
                       : nullptr) {}

// --- Lifecycle -----------------------------------------------------------------

int ExportState::ensure_table_locked(nbdkit_next* next) {
  int64_t size = next->get_size(next);
  if (size == -1) return -1;
  if (length_ && *length_ == static_cast<uint64_t>(size)) return 0;
  if (length_ && attached_ > 0) {
    nbdkit_error("blkhash: export %s changed size from %" PRIu64
                 " to %" PRIi64 " while in use",
                 quote(name_).c_str(), *length_, size);
    return -1;
  }
  try {
    if (map_checker_ &&
        map_checker_->map().image_size() != static_cast<uint64_t>(size)) {
      nbdkit_error("blkhash-expect-map: the map is of an image of %" PRIu64
                   " bytes, export %s has %" PRIi64,
                   map_checker_->map().image_size(), quote(name_).c_str(),
                   size);
      return -1;
    }
    table_.reset();
    if (config_.parameters)
      table_ = std::make_shared<BlockTable>(
          *config_.parameters, static_cast<uint64_t>(size), pool_,
          config_.fold ? BlockTable::Fold::kSettledPrefix
                       : BlockTable::Fold::kNone,
          map_checker_.get());
  } catch (const ImageTooLarge& e) {
    nbdkit_error("blkhash: export %s: %s (use a larger blkhash-block-size)",
                 quote(name_).c_str(), e.what());
    return -1;
  }
  whole_.reset();
  whole_checked_ = false;
  if (config_.whole_digest)
    whole_ = std::make_shared<WholeDigest>(*config_.whole_digest,
                                           static_cast<uint64_t>(size),
                                           config_.whole_window);
  length_ = static_cast<uint64_t>(size);
  written_ = false;
  whole_read_ = 0;
  hashed_at_last_report_ = 0;
  unfolded_at_last_report_ = 0;
  reported_ = false;
  table_lost_ = false;
  return 0;
}

int ExportState::attach(nbdkit_next* next) {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return !reporting_; });
  if (ensure_table_locked(next) == -1) return -1;
  attached_++;
  return 0;
}

void ExportState::detach(nbdkit_next* next) {
  std::unique_lock lock(mutex_);
  if (attached_ > 0) attached_--;
  drain_locked(lock);
  // The last one out makes the report if it costs no reads; one that
  // needs reads waits for a check or shutdown (a probe must not pay for
  // a verdict nobody asked for yet).
  if (attached_ == 0 && !reporting_ && report_due_locked() && !table_lost_ &&
      (!table_ || table_->complete()) && !config_.verify &&
      (!whole_ || whole_->final()))
    report_locked(lock, next);
  idle_.notify_all();
}

void ExportState::abandon() {
  std::lock_guard lock(mutex_);
  if (attached_ > 0) attached_--;
  idle_.notify_all();
}

std::string ExportState::description() {
  std::lock_guard lock(mutex_);
  if (!description_.empty()) return description_;
  return pending_line(config_.label(), name_, length_.value_or(0));
}

void ExportState::forget(uint64_t offset, uint64_t length) {
  std::shared_ptr<BlockTable> table;
  std::shared_ptr<WholeDigest> whole;
  uint64_t size;
  {
    std::lock_guard lock(mutex_);
    table = table_;
    whole = whole_;
    size = length_.value_or(0);
  }
  written_ = true;
  if (offset >= size) return;
  const uint64_t n = std::min(length, size - offset);
  try {
    if (table) table->forget(offset, n);
    if (whole) whole->forget(offset, n);
  } catch (const std::exception&) {
    table_lost_ = true;
  }
  note_change();
}

void ExportState::drain_locked(std::unique_lock<std::mutex>& lock) {
  idle_.wait(lock, [this] { return pending_ == 0; });
}

}  // namespace blkhash::filter
