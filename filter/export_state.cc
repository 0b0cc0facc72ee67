// See export_state.h.

#include "export_state.h"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <vector>

namespace blkhash::filter {

namespace {

// Reads for a report go in requests of this size (or one block, if larger).
constexpr uint64_t kReadChunk = 8u << 20;
// Extents are asked for at most this much at a time (count is 32-bit).
constexpr uint64_t kExtentsChunk = 1u << 30;

struct ExtentsFree {
  void operator()(struct nbdkit_extents* extents) const {
    nbdkit_extents_free(extents);
  }
};

}  // namespace

ExportState::ExportState(std::string name, const Config& config,
                         HashPool* pool)
    : name_(std::move(name)), config_(config), pool_(pool) {}

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
    table_ = std::make_unique<BlockTable>(*config_.parameters,
                                          static_cast<uint64_t>(size), pool_);
    ranges_ = std::make_unique<RangeLock>(config_.parameters->block_size());
  } catch (const ImageTooLarge& e) {
    nbdkit_error("blkhash: export %s: %s (use a larger blkhash-block-size)",
                 quote(name_).c_str(), e.what());
    return -1;
  }
  hashed_at_last_report_ = 0;
  reported_ = false;
  table_lost_ = false;
  return 0;
}

int ExportState::attach(nbdkit_next* next) {
  std::unique_lock lock(mutex_);
  report_finished_.wait(lock, [this] { return !reporting_; });
  if (ensure_table_locked(next) == -1) return -1;
  attached_++;
  return 0;
}

void ExportState::detach(nbdkit_next* next) {
  std::unique_lock lock(mutex_);
  if (attached_ > 0) attached_--;
  if (attached_ > 0 || !requests_since_report_) return;
  reporting_ = true;
  lock.unlock();
  report(next);
  lock.lock();
  reporting_ = false;
  report_finished_.notify_all();
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

int ExportState::pread(nbdkit_next* next, void* buf, uint32_t count,
                       uint64_t offset, uint32_t flags, int* err) {
  note_request(false);
  auto held = ranges_->lock_shared(offset, count);
  if (next->pread(next, buf, count, offset, flags, err) == -1) return -1;
  return record("read", offset, count, err, [&] {
    table_->fill_data(offset, {static_cast<const uint8_t*>(buf), count});
  });
}

int ExportState::pwrite(nbdkit_next* next, const void* buf, uint32_t count,
                        uint64_t offset, uint32_t flags, int* err) {
  note_request(true);
  auto held = ranges_->lock_exclusive(offset, count);
  if (next->pwrite(next, buf, count, offset, flags, err) == -1) {
    record("failed write", offset, count, err,
           [&] { table_->forget(offset, count); });
    return -1;
  }
  return record("write", offset, count, err, [&] {
    table_->put_data(offset, {static_cast<const uint8_t*>(buf), count});
  });
}

int ExportState::zero(nbdkit_next* next, uint32_t count, uint64_t offset,
                      uint32_t flags, int* err) {
  note_request(true);
  auto held = ranges_->lock_exclusive(offset, count);
  if (next->zero(next, count, offset, flags, err) == -1) {
    // A fast zero the plugin refuses has changed nothing.
    bool refused_fast = (flags & NBDKIT_FLAG_FAST_ZERO) &&
                        (*err == ENOTSUP || *err == EOPNOTSUPP);
    if (!refused_fast) {
      int saved = *err;
      record("failed zero", offset, count, err,
             [&] { table_->forget(offset, count); });
      *err = saved;
    }
    return -1;
  }
  return record("zero", offset, count, err,
                [&] { table_->put_zero(offset, count); });
}

int ExportState::trim(nbdkit_next* next, uint32_t count, uint64_t offset,
                      uint32_t flags, int* err) {
  note_request(true);
  auto held = ranges_->lock_exclusive(offset, count);
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
  auto held = ranges_->lock_shared(offset, count);
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
  return 0;
}

// --- Reports -----------------------------------------------------------------------

bool ExportState::read_range(nbdkit_next* next, ByteRange range,
                             uint64_t* read_back, std::string* error) {
  const uint64_t chunk =
      std::max<uint64_t>(kReadChunk, config_.parameters->block_size());
  std::vector<uint8_t> buffer(std::min(chunk, range.length));
  for (uint64_t offset = range.offset; offset < range.end();) {
    uint32_t n = static_cast<uint32_t>(std::min(chunk, range.end() - offset));
    int err = 0;
    if (next->pread(next, buffer.data(), n, offset, 0, &err) == -1) {
      *error = "reading " + std::to_string(n) + " bytes at offset " +
               std::to_string(offset) + " failed: " + std::strerror(err);
      return false;
    }
    table_->fill_data(offset, {buffer.data(), n});
    *read_back += n;
    offset += n;
  }
  return true;
}

bool ExportState::complete_table(nbdkit_next* next, uint64_t* read_back,
                                 std::string* error) {
  const bool can_extents = next->can_extents(next) == 1;
  for (uint64_t position = 0;;) {
    auto ranges = table_->unknown_ranges(position, 4096);
    if (ranges.empty()) return true;
    position = ranges.back().end();

    for (const ByteRange& range : ranges) {
      if (!can_extents) {
        if (!read_range(next, range, read_back, error)) return false;
        continue;
      }
      for (uint64_t offset = range.offset; offset < range.end();) {
        uint64_t n = std::min(kExtentsChunk, range.end() - offset);
        int err = 0;
        std::unique_ptr<struct nbdkit_extents, ExtentsFree> extents(
            nbdkit_extents_full(next, static_cast<uint32_t>(n), offset, 0,
                                &err));
        if (!extents) {
          // No map: read it all.
          if (!read_range(next, {offset, n}, read_back, error)) return false;
        } else {
          for (size_t i = 0; i < nbdkit_extents_count(extents.get()); i++) {
            struct nbdkit_extent e = nbdkit_get_extent(extents.get(), i);
            uint64_t lo = std::max(e.offset, offset);
            uint64_t hi = std::min(e.offset + e.length, offset + n);
            if (lo >= hi) continue;
            if (e.type & NBDKIT_EXTENT_ZERO)
              table_->fill_zero(lo, hi - lo);
            else if (!read_range(next, {lo, hi - lo}, read_back, error))
              return false;
          }
        }
        offset += n;
      }
    }
  }
}

void ExportState::report(nbdkit_next* next) {
  requests_since_report_ = false;
  changed_since_report_ = false;

  Report report;
  report.label = config_.parameters->label();
  report.export_name = name_;
  report.size = table_->length();
  report.hashed_in_flight = table_->bytes_hashed() - hashed_at_last_report_;

  try {
    if (table_lost_) {
      report.error = "the filter lost track of writes (out of memory)";
    } else if (complete_table(next, &report.read_back, &report.error)) {
      report.root = table_->root();
      if (!report.root) report.error = "blocks still unknown after reading";
    }
  } catch (const std::exception& e) {
    report.root.reset();
    report.error = e.what();
  }
  hashed_at_last_report_ = table_->bytes_hashed();

  const std::string line = report.line();
  log_line(line);
  if (!report.root) {
    nbdkit_error("blkhash: export %s: checksum incomplete: %s",
                 quote(name_).c_str(), report.error.c_str());
    changed_since_report_ = true;  // try again at cleanup
  }
  if (!config_.result_file.empty()) {
    if (report.root) {
      std::string problem = write_result_file(
          config_.result_file, report.root->hex(), config_.result_file_mode);
      if (!problem.empty()) nbdkit_error("blkhash-file: %s", problem.c_str());
    } else {
      remove_result_file(config_.result_file);
    }
  }

  std::lock_guard lock(mutex_);
  description_ = line;
  reported_ = report.root.has_value();
}

void ExportState::report_at_cleanup(nbdkit_backend* backend) {
  {
    std::lock_guard lock(mutex_);
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
