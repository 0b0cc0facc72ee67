// See export_state.h.

#include "export_state.h"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstring>

#include "interrupt.h"
#include "publish.h"
#include "readback.h"

namespace blkhash::filter {

namespace {

// How often a check waiting for connections looks at the interrupt flag.
constexpr auto kCheckPoll = std::chrono::milliseconds(100);

}  // namespace

ExportState::ExportState(std::string name, const Config& config,
                         HashPool* pool, unsigned readers, RangeLock& ranges,
                         ChangeNotice changed)
    : name_(std::move(name)),
      config_(config),
      pool_(pool),
      readers_(readers),
      ranges_(ranges),
      changed_(std::move(changed)) {}

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
  idle_.wait(lock, [this] { return !reporting_; });
  if (ensure_table_locked(next) == -1) return -1;
  attached_++;
  return 0;
}

void ExportState::detach(nbdkit_next* next) {
  std::unique_lock lock(mutex_);
  if (attached_ > 0) attached_--;
  // The last one out makes the report if it costs no reads; one that
  // needs reads waits for a check or shutdown (a probe must not pay for
  // a verdict nobody asked for yet).
  if (attached_ == 0 && !reporting_ && report_due_locked() && !table_lost_ &&
      table_->complete() && !config_.verify)
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
  note_change();
}

// --- Requests --------------------------------------------------------------------

void ExportState::note_change() {
  if (!changed_since_report_.load(std::memory_order_relaxed))
    changed_since_report_ = true;
  if (mismatch_.load(std::memory_order_relaxed)) mismatch_ = false;
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

int ExportState::check_completion(uint64_t completions_before, int* err) {
  if (!config_.expected || table_->completions() == completions_before)
    return 0;
  auto root = table_->root();
  if (!root || *root == *config_.expected) return 0;
  std::string message = "checksum MISMATCH: " + config_.parameters->label() +
                        " " + root->hex() + ", expected " +
                        config_.expected->hex();
  nbdkit_error("blkhash: export %s: the image is complete: %s",
               quote(name_).c_str(), message.c_str());
  {
    std::lock_guard lock(mutex_);
    mismatch_message_ = std::move(message);
  }
  mismatch_ = true;
  *err = EIO;
  return -1;
}

int ExportState::pread(nbdkit_next* next, void* buf, uint32_t count,
                       uint64_t offset, uint32_t flags, int* err) {
  auto held = ranges_.lock_shared(offset, count);
  const uint64_t completions = table_->completions();
  if (next->pread(next, buf, count, offset, flags, err) == -1) return -1;
  if (record("read", offset, count, err, [&] {
        table_->fill_data(offset, {static_cast<const uint8_t*>(buf), count});
      }) == -1)
    return -1;
  return check_completion(completions, err);
}

// Other exports forget a written range before the plugin call (and the
// range lock, shared by all exports, keeps their reports off it until the
// table has recorded it); zero waits for the plugin's answer, because a
// fast zero the plugin refuses has changed nothing.

int ExportState::pwrite(nbdkit_next* next, const void* buf, uint32_t count,
                        uint64_t offset, uint32_t flags, int* err) {
  note_change();
  auto held = ranges_.lock_exclusive(offset, count);
  const uint64_t completions = table_->completions();
  changed_(this, offset, count);
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
  auto held = ranges_.lock_exclusive(offset, count);
  const uint64_t completions = table_->completions();
  if (next->zero(next, count, offset, flags, err) == -1) {
    bool refused_fast = (flags & NBDKIT_FLAG_FAST_ZERO) &&
                        (*err == ENOTSUP || *err == EOPNOTSUPP);
    if (!refused_fast) {
      int saved = *err;
      note_change();
      changed_(this, offset, count);
      record("failed zero", offset, count, err,
             [&] { table_->forget(offset, count); });
      *err = saved;
    }
    return -1;
  }
  note_change();
  changed_(this, offset, count);
  if (record("zero", offset, count, err,
             [&] { table_->put_zero(offset, count); }) == -1)
    return -1;
  return check_completion(completions, err);
}

int ExportState::trim(nbdkit_next* next, uint32_t count, uint64_t offset,
                      uint32_t flags, int* err) {
  note_change();
  auto held = ranges_.lock_exclusive(offset, count);
  changed_(this, offset, count);
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
    std::lock_guard lock(mutex_);
    nbdkit_error("blkhash: export %s: flush refused: %s",
                 quote(name_).c_str(), mismatch_message_.c_str());
    *err = EIO;
    return -1;
  }
  return next->flush(next, flags, err);
}

// --- Reports -----------------------------------------------------------------------

bool ExportState::report_due_locked() const {
  return !reported_ || changed_since_report_;
}

Verdict ExportState::check(nbdkit_backend* backend,
                           std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  while (attached_ > 0 || reporting_) {
    if (reports_interrupted() ||
        std::chrono::steady_clock::now() >= deadline) {
      nbdkit_error("blkhash: export %s: %u connection(s) with data requests "
                   "still attached after blkhash-check-timeout=%u",
                   quote(name_).c_str(), attached_, config_.check_timeout);
      return Verdict::kIncomplete;
    }
    idle_.wait_for(lock, kCheckPoll);
  }
  if (report_due_locked()) report_through_locked(lock, backend, 0);
  return verdict_.value_or(Verdict::kIncomplete);
}

void ExportState::report_at_cleanup(nbdkit_backend* backend) {
  // nbdkit may reach .cleanup while a connection thread is still making
  // the report of its .finalize: let it finish (and not race it).
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return !reporting_; });
  if (report_due_locked()) report_through_locked(lock, backend, 1);
}

void ExportState::report_locked(std::unique_lock<std::mutex>& lock,
                                nbdkit_next* next) {
  reporting_ = true;
  lock.unlock();
  report(next);
  lock.lock();
  reporting_ = false;
  idle_.notify_all();
}

void ExportState::report_through_locked(std::unique_lock<std::mutex>& lock,
                                        nbdkit_backend* backend, int shared) {
  reporting_ = true;
  lock.unlock();
  nbdkit_next* next = nbdkit_next_context_open(backend, 1, name_.c_str(),
                                               shared);
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
        std::lock_guard relock(mutex_);
        ready = ensure_table_locked(next) == 0;
      }
      if (ready) report(next);
      next->finalize(next);
    }
    nbdkit_next_context_close(next);
  }
  lock.lock();
  reporting_ = false;
  idle_.notify_all();
}

Report ExportState::compute_report(nbdkit_next* next) {
  Report report;
  report.digest = config_.parameters->digest().name();
  report.block_size = config_.parameters->block_size();
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
  return report;
}

void ExportState::report(nbdkit_next* next) {
  changed_since_report_ = false;
  Report report = compute_report(next);
  bool published = publish(report, config_);
  const Verdict verdict = report.verdict();
  // An incomplete report, or a result file not written: try again at the
  // next check or at shutdown.
  if (verdict == Verdict::kIncomplete || !published)
    changed_since_report_ = true;

  std::lock_guard lock(mutex_);
  description_ = report.line();
  verdict_ = verdict;
  reported_ = report.root.has_value();
}

}  // namespace blkhash::filter
