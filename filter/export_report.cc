// ExportState, part two: when reports are made, and how (see
// export_state.h).  Requests and the connection lifecycle are in
// export_state.cc.

#include <cinttypes>

#include "export_state.h"
#include "interrupt.h"
#include "publish.h"
#include "readback.h"
#include "result_file.h"
#include "whole_readback.h"

namespace blkhash::filter {

namespace {

// How often a check waiting for connections looks at the interrupt flag.
constexpr auto kCheckPoll = std::chrono::milliseconds(100);

}  // namespace

// --- Reports -----------------------------------------------------------------------

bool ExportState::report_due_locked() const {
  return !reported_ || changed_since_report_;
}

Verdict ExportState::check(nbdkit_backend* backend,
                           std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  while (attached_ > 0 || reporting_ || pending_ > 0) {
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
  idle_.wait(lock, [this] { return !reporting_ && pending_ == 0; });
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
      if (ready)
        report(next);
      else
        report_unavailable(next);
      next->finalize(next);
    }
    nbdkit_next_context_close(next);
  }
  lock.lock();
  reporting_ = false;
  idle_.notify_all();
}

Report ExportState::compute_report(nbdkit_next* next, ReportMap& map) {
  if (!table_) return compute_whole_only(next);
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
    if (whole_) compute_whole(next, report);
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
    if (report.root && (config_.expect_map || !config_.map_file.empty()))
      compute_map(report, map);
    hashed_at_last_report_ = table_->bytes_hashed();
    unfolded_at_last_report_ = table_->unfolded_bytes();
    if (report.root && config_.verify) compute_verify(next, report);
  } catch (const std::exception& e) {
    report.root.reset();
    report.error = e.what();
  }
  return report;
}

void ExportState::compute_map(Report& report, ReportMap& map) {
  // One map for both: the bad blocks and the blkhash-map file.  A failure
  // fails the report when the bad blocks need the map, else only the map
  // file (write_map).
  try {
    map.bytes = table_->map(&map.root);
  } catch (const std::exception& e) {
    if (config_.expect_map) throw;
    map.error = e.what();
  }
  if (config_.expect_map && map.bytes) {
    // The blocks that differ from blkhash-expect-map, named.
    BlockMap actual = BlockMap::parse(
        {reinterpret_cast<const uint8_t*>(map.bytes->data()),
         map.bytes->size()});
    BlockRangeList bad = BlockMap::diff(*config_.expect_map, actual, 8);
    if (!bad.empty()) report.bad_blocks = bad.text();
  }
}

void ExportState::compute_verify(nbdkit_next* next, Report& report) {
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

Report ExportState::compute_whole_only(nbdkit_next* next) {
  Report report;
  report.whole_only = true;
  report.digest = report.label = config_.label();
  report.export_name = name_;
  report.size = length_.value_or(0);
  try {
    compute_whole(next, report);
  } catch (const std::exception& e) {
    report.whole.reset();
    report.whole_error = e.what();
  }
  report.root = report.whole;
  report.error = report.whole_error;
  return report;
}

void ExportState::compute_whole(nbdkit_next* next, Report& report) {
  report.whole_name = config_.whole_digest->name();
  report.whole_expected = config_.whole_expected;
  uint64_t read = whole_read_.exchange(0);
  if (table_lost_) {
    report.whole_error = "the filter lost track of writes (out of memory)";
  } else if (!whole_->stale()) {
    WholeReadBack reader(next, *whole_, table_.get(), ranges_, !written_);
    reader.read_to_end();
    read += reader.bytes_read();
    report.whole = whole_->final();
    if (!report.whole) report.whole_error = reader.error();
  }
  if (whole_->stale() && !table_lost_) {
    // Changed behind the cursor: only a fresh pass over the whole export
    // gives its digest.  It starts the next one too.
    auto fresh = std::make_shared<WholeDigest>(
        *config_.whole_digest, whole_->length(), config_.whole_window);
    WholeReadBack reader(next, *fresh, table_.get(), ranges_, !written_);
    reader.read_to_end();
    read += reader.bytes_read();
    report.whole = fresh->final();
    report.whole_error = report.whole ? "" : reader.error();
    std::lock_guard lock(mutex_);
    whole_ = std::move(fresh);
    whole_checked_ = false;
  }
  report.whole_read = read;
}

void ExportState::report_unavailable(nbdkit_next* next) {
  Report report;
  report.whole_only = !config_.parameters;
  report.label = config_.label();
  report.export_name = name_;
  int64_t size = next->get_size(next);
  report.size = size == -1 ? 0 : static_cast<uint64_t>(size);
  report.error = "the export cannot be hashed (see the error before)";
  publish(report, config_);
  std::lock_guard lock(mutex_);
  description_ = report.line();
  verdict_ = report.verdict();
}

void ExportState::report(nbdkit_next* next) {
  changed_since_report_ = false;
  ReportMap map;
  Report report = compute_report(next, map);
  bool published = publish(report, config_);
  if (!write_map(report, map)) published = false;
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

bool ExportState::write_map(const Report& report, const ReportMap& map) {
  if (config_.map_file.empty()) return true;
  std::string problem = map.error;
  try {
    const bool same_root = report.root && map.bytes && map.root == *report.root;
    std::string failed;
    if (same_root)
      failed = replace_result_file(config_.map_file, *map.bytes,
                                   config_.result_file_mode);
    else
      failed = remove_result_file(config_.map_file);
    if (!problem.empty()) {
      if (!failed.empty()) problem += "; " + failed;
    } else if (!failed.empty()) {
      problem = failed;
    } else if (report.root && !map.bytes) {
      problem = "no map: blocks unknown or folded (removed it)";
    } else if (report.root && !same_root) {
      problem = "the export changed during the report (removed it)";
    }
  } catch (const std::exception& e) {
    problem = e.what();
    std::string removed = remove_result_file(config_.map_file);
    if (!removed.empty()) problem += "; " + removed;
  }
  if (problem.empty()) return true;
  nbdkit_error("blkhash-map: %s", problem.c_str());
  return false;
}

}  // namespace blkhash::filter
