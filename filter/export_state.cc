// See export_state.h.

#include "export_state.h"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstring>

#include "exports.h"
#include "readback.h"

namespace blkhash::filter {

ExportState::ExportState(std::string name, const Config& config,
                         HashPool* pool, unsigned readers, Exports& exports)
    : name_(std::move(name)),
      config_(config),
      pool_(pool),
      readers_(readers),
      exports_(exports),
      ranges_(exports.ranges()) {}

// --- Lifecycle -----------------------------------------------------------------

int ExportState::ensure_table_locked(nbdkit_next* next) {
  int64_t size = next->get_size(next);
  if (size == -1) return -1;
  if (table_ && table_->length() == static_cast<uint64_t>(size)) return 0;
  if (table_ && attached_ > 0) {
    nbdkit_error("blkhash: export %s changed size from %" PRIu64
                 " to %" PRIi64 " while in use",
                 quote(name_).c_str(), table_->length(), size);
    return -1;
  }
  try {
    table_ = std::make_shared<BlockTable>(
        *config_.parameters, static_cast<uint64_t>(size), pool_,
        config_.fold ? BlockTable::Fold::kSettledPrefix
                     : BlockTable::Fold::kNone);
  } catch (const ImageTooLarge& e) {
    nbdkit_error("blkhash: export %s: %s (use a larger blkhash-block-size)",
                 quote(name_).c_str(), e.what());
    return -1;
  }
  hashed_at_last_report_ = 0;
  unfolded_at_last_report_ = 0;
  reported_ = false;
  table_lost_ = false;
  return 0;
}

int ExportState::attach(nbdkit_next* next) {
  std::unique_lock lock(mutex_);
  report_finished_.wait(lock, [this] { return !reporting_; });
  if (ensure_table_locked(next) == -1) return -1;
  // The last connection left after data requests, and its report has not
  // started yet: make it now, before this client sees anything.
  if (attached_ == 0 && requests_since_report_) report_locked(lock, next);
  if (mismatch_) {
    nbdkit_error("blkhash: export %s: %s", quote(name_).c_str(),
                 mismatch_message_.c_str());
    return -1;
  }
  attached_++;
  return 0;
}

void ExportState::detach(nbdkit_next* next) {
  std::unique_lock lock(mutex_);
  if (attached_ > 0) attached_--;
  if (attached_ == 0 && requests_since_report_ && !reporting_)
    report_locked(lock, next);
}

void ExportState::abandon() {
  std::lock_guard lock(mutex_);
  if (attached_ > 0) attached_--;
}

std::string ExportState::description() {
  std::unique_lock lock(mutex_);
  report_finished_.wait(lock, [this] { return !reporting_; });
  if (!description_.empty()) return description_;
  return pending_line(config_.parameters->label(), name_,
                      table_ ? table_->length() : 0);
}

void ExportState::forget(uint64_t offset, uint64_t length) {
  std::shared_ptr<BlockTable> table;
  {
    std::lock_guard lock(mutex_);
    table = table_;
  }
  if (!table || offset >= table->length()) return;
  try {
    table->forget(offset, std::min(length, table->length() - offset));
  } catch (const std::exception&) {
    table_lost_ = true;
  }
  changed_since_report_ = true;
}

// --- Requests --------------------------------------------------------------------

void ExportState::note_request(bool changes_content) {
  if (!requests_since_report_.load(std::memory_order_relaxed))
    requests_since_report_ = true;
  if (changes_content && !changed_since_report_.load(std::memory_order_relaxed))
    changed_since_report_ = true;
}

template <typename Update>
int ExportState::record(const char* what, uint64_t offset, uint64_t length,
                        int* err, Update update) {
  try {
    update();
    return 0;
  } catch (const std::exception& e) {
    nbdkit_error("blkhash: cannot record %s at %" PRIu64 "+%" PRIu64 ": %s",
                 what, offset, length, e.what());
  }
  try {
    table_->forget(offset, length);
  } catch (const std::exception&) {
    table_lost_ = true;
  }
  *err = EIO;
  return -1;
}

void ExportState::refuse(const char* what) {
  std::lock_guard lock(mutex_);
  nbdkit_error("blkhash: export %s: %s: %s", quote(name_).c_str(), what,
               mismatch_message_.c_str());
}

int ExportState::check_completion(uint64_t completions_before, int* err) {
  if (!config_.expected || table_->completions() == completions_before)
    return 0;
  auto root = table_->root();
  if (!root) return 0;  // another request made a block unknown again
  if (*root == *config_.expected) {
    mismatch_ = false;
    return 0;
  }
  {
    std::lock_guard lock(mutex_);
    mismatch_message_ = "checksum MISMATCH: " + config_.parameters->label() +
                        " " + root->hex() + ", expected " +
                        config_.expected->hex();
  }
  mismatch_ = true;
  refuse("the image is complete");
  *err = EIO;
  return -1;
}

int ExportState::pread(nbdkit_next* next, void* buf, uint32_t count,
                       uint64_t offset, uint32_t flags, int* err) {
  note_request(false);
  auto held = ranges_.lock_shared(offset, count);
  const uint64_t completions = table_->completions();
  if (next->pread(next, buf, count, offset, flags, err) == -1) return -1;
  if (record("read", offset, count, err, [&] {
        table_->fill_data(offset, {static_cast<const uint8_t*>(buf), count});
      }) == -1)
    return -1;
  return check_completion(completions, err);
}

int ExportState::pwrite(nbdkit_next* next, const void* buf, uint32_t count,
                        uint64_t offset, uint32_t flags, int* err) {
  note_request(true);
  auto held = ranges_.lock_exclusive(offset, count);
  const uint64_t completions = table_->completions();
  exports_.forget_in_others(this, offset, count);
  if (next->pwrite(next, buf, count, offset, flags, err) == -1) {
    int saved = *err;
    record("failed write", offset, count, err,
           [&] { table_->forget(offset, count); });
    *err = saved;
    return -1;
  }
  if (record("write", offset, count, err, [&] {
        table_->put_data(offset, {static_cast<const uint8_t*>(buf), count});
      }) == -1)
    return -1;
  return check_completion(completions, err);
}

int ExportState::zero(nbdkit_next* next, uint32_t count, uint64_t offset,
                      uint32_t flags, int* err) {
  note_request(true);
  auto held = ranges_.lock_exclusive(offset, count);
  const uint64_t completions = table_->completions();
  if (next->zero(next, count, offset, flags, err) == -1) {
    // A fast zero the plugin refuses has changed nothing.
    bool refused_fast = (flags & NBDKIT_FLAG_FAST_ZERO) &&
                        (*err == ENOTSUP || *err == EOPNOTSUPP);
    if (!refused_fast) {
      int saved = *err;
      exports_.forget_in_others(this, offset, count);
      record("failed zero", offset, count, err,
             [&] { table_->forget(offset, count); });
      *err = saved;
    }
    return -1;
  }
  exports_.forget_in_others(this, offset, count);
  if (record("zero", offset, count, err,
             [&] { table_->put_zero(offset, count); }) == -1)
    return -1;
  return check_completion(completions, err);
}

int ExportState::trim(nbdkit_next* next, uint32_t count, uint64_t offset,
                      uint32_t flags, int* err) {
  note_request(true);
  auto held = ranges_.lock_exclusive(offset, count);
  exports_.forget_in_others(this, offset, count);
  int r = next->trim(next, count, offset, flags, err);
  // Trimmed or not, the content is no longer known.
  int saved = *err;
  if (record("trim", offset, count, err,
             [&] { table_->forget(offset, count); }) == -1)
    return -1;
  *err = saved;
  return r;
}

int ExportState::extents(nbdkit_next* next, uint32_t count, uint64_t offset,
                         uint32_t flags, struct nbdkit_extents* extents,
                         int* err) {
  note_request(false);
  auto held = ranges_.lock_shared(offset, count);
  const uint64_t completions = table_->completions();
  if (next->extents(next, count, offset, flags, extents, err) == -1)
    return -1;
  // Zero extents fill what is unknown; only inside the held range.
  const uint64_t end = offset + count;
  try {
    for (size_t i = 0; i < nbdkit_extents_count(extents); i++) {
      struct nbdkit_extent e = nbdkit_get_extent(extents, i);
      if (!(e.type & NBDKIT_EXTENT_ZERO)) continue;
      uint64_t lo = std::max(e.offset, offset);
      uint64_t hi = std::min(e.offset + e.length, end);
      if (lo < hi) table_->fill_zero(lo, hi - lo);
    }
  } catch (const std::exception& e) {
    // Filling is only a shortcut: what was not recorded stays unknown.
    nbdkit_debug("blkhash: zero extents not recorded: %s", e.what());
  }
  return check_completion(completions, err);
}

int ExportState::flush(nbdkit_next* next, uint32_t flags, int* err) {
  if (mismatch_) {
    refuse("flush refused");
    *err = EIO;
    return -1;
  }
  return next->flush(next, flags, err);
}

// --- Reports -----------------------------------------------------------------------

void ExportState::report_locked(std::unique_lock<std::mutex>& lock,
                                nbdkit_next* next) {
  reporting_ = true;
  lock.unlock();
  report(next);
  lock.lock();
  reporting_ = false;
  report_finished_.notify_all();
}

void ExportState::report(nbdkit_next* next) {
  requests_since_report_ = false;
  changed_since_report_ = false;

  Report report;
  report.label = config_.parameters->label();
  report.export_name = name_;
  report.size = table_->length();
  report.hashed_in_flight = table_->bytes_hashed() - hashed_at_last_report_;
  report.unfolded = table_->unfolded_bytes() - unfolded_at_last_report_;
  report.expected = config_.expected;
  report.verify = config_.verify;

  try {
    if (table_lost_) {
      report.error = "the filter lost track of writes (out of memory)";
    } else {
      ReadBack reader(next, *table_, ranges_, readers_);
      bool complete = reader.complete();
      report.read_back = reader.bytes_read();
      if (!complete) {
        report.error = reader.error();
      } else {
        report.root = table_->root();
        if (!report.root) report.error = "blocks still unknown after reading";
      }
    }
    hashed_at_last_report_ = table_->bytes_hashed();
    unfolded_at_last_report_ = table_->unfolded_bytes();

    if (report.root && config_.verify) {
      // Read everything back, ignoring what was hashed in flight.
      BlockTable fresh(*config_.parameters, table_->length(), pool_,
                       BlockTable::Fold::kSettledPrefix);
      ReadBack reader(next, fresh, ranges_, readers_);
      if (reader.complete()) {
        report.readback = fresh.root();
        if (!report.readback) report.verify_error = "blocks still unknown";
      } else {
        report.verify_error = reader.error();
      }
      report.verify_read = reader.bytes_read();
    }
  } catch (const std::exception& e) {
    report.root.reset();
    report.error = e.what();
  }

  const std::string line = report.line();
  log_line(line);
  if (!report.root) {
    nbdkit_error("blkhash: export %s: checksum incomplete: %s",
                 quote(name_).c_str(), report.error.c_str());
    changed_since_report_ = true;  // try again at cleanup
  } else if (report.mismatch()) {
    nbdkit_error("blkhash: export %s: checksum MISMATCH: %s",
                 quote(name_).c_str(), line.c_str());
  }
  if (!config_.result_file.empty()) {
    if (report.root) {
      std::string problem = write_result_file(
          config_.result_file, report.root->hex(), config_.result_file_mode);
      if (!problem.empty()) {
        nbdkit_error("blkhash-file: %s", problem.c_str());
        changed_since_report_ = true;  // try again at cleanup
      }
    } else {
      remove_result_file(config_.result_file);
    }
  }

  std::lock_guard lock(mutex_);
  description_ = line;
  reported_ = report.root.has_value();
  if (report.root) {
    mismatch_ = report.mismatch();
    if (mismatch_) mismatch_message_ = "checksum MISMATCH: " + line;
  }
}

void ExportState::report_at_cleanup(nbdkit_backend* backend) {
  {
    // nbdkit may reach .cleanup while a connection thread is still making
    // the report of its .finalize: let it finish (and not race it).
    std::unique_lock lock(mutex_);
    report_finished_.wait(lock, [this] { return !reporting_; });
    if (reported_ && !changed_since_report_) return;
    reporting_ = true;
  }
  nbdkit_next* next =
      nbdkit_next_context_open(backend, 1, name_.c_str(), 1);
  if (!next) {
    nbdkit_error("blkhash: export %s: cannot open the plugin to report",
                 quote(name_).c_str());
  } else {
    if (next->prepare(next) == -1) {
      nbdkit_error("blkhash: export %s: cannot prepare the plugin to report",
                   quote(name_).c_str());
    } else {
      bool ready;
      {
        std::lock_guard lock(mutex_);
        ready = ensure_table_locked(next) == 0;
      }
      if (ready) report(next);
      next->finalize(next);
    }
    nbdkit_next_context_close(next);
  }
  std::lock_guard lock(mutex_);
  reporting_ = false;
  report_finished_.notify_all();
}

}  // namespace blkhash::filter
