// ExportState, part two: the requests (see export_state.h).  Each passes
// to the plugin with its range held in the shared range lock, then
// records what it proved about the content: a write replaces, a read or
// a zero extent fills what is unknown, a trim or a failed write forgets.
// A failure to record forgets the range (record()), so a report reads it
// again: never a wrong value.  Requests run only between attach() and
// detach(), so table_ and whole_ are used without mutex_.
//
// The lifecycle is in export_state.cc, the reports in export_report.cc.

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <optional>
#include <vector>

#include "export_state.h"
#include "whole_readback.h"

namespace blkhash::filter {

// --- Requests --------------------------------------------------------------------

void ExportState::forget_here(uint64_t offset, uint64_t length) {
  if (table_) table_->forget(offset, length);
  if (whole_) whole_->forget(offset, length);
}

uint64_t ExportState::completions() const {
  return table_ ? table_->completions() : 0;
}

void ExportState::note_change() {
  written_ = true;
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
    forget_here(offset, length);
  } catch (const std::exception&) {
    table_lost_ = true;
  }
  *err = EIO;
  return -1;
}

int ExportState::forget_failed(const char* what, uint64_t offset,
                               uint64_t length, int* err) {
  const int saved = *err;  // the plugin's error is the client's
  record(what, offset, length, err, [&] { forget_here(offset, length); });
  *err = saved;
  return -1;
}

template <typename Update>
bool ExportState::defer(std::optional<RangeLock::Guard>& held,
                        std::span<const uint8_t> bytes, const char* what,
                        uint64_t offset, uint64_t completions, Update update) {
  if (!deferral_) return false;
  {
    std::lock_guard lock(mutex_);
    pending_++;
  }
  bool taken = deferral_->submit(
      held, bytes,
      [this, what, offset, completions, update](std::span<const uint8_t> copy) {
        // The client had its reply: a failure here makes the blocks
        // unknown (record()), and a mismatch fails the next flush.
        int ignored = 0;
        if (record(what, offset, copy.size(), &ignored,
                   [&] { update(copy); }) == 0)
          check_completion(completions, &ignored);
      },
      [this] {
        std::lock_guard lock(mutex_);
        pending_--;
        idle_.notify_all();
      });
  if (!taken) {
    std::lock_guard lock(mutex_);
    pending_--;
  }
  return taken;
}

void ExportState::begin_checks() {
  if (map_checker_) MapChecker::begin_request();
}

int ExportState::check_blocks(const char* what, int* err) {
  if (!map_checker_) return 0;
  const std::string bad = MapChecker::take_bad_blocks();
  if (bad.empty()) return 0;
  nbdkit_error("blkhash: export %s: %s: block(s) %s of %s do not match "
               "blkhash-expect-map",
               quote(name_).c_str(), what, bad.c_str(),
               config_.parameters->label().c_str());
  *err = EIO;
  return -1;
}

int ExportState::check_completion(uint64_t completions_before, int* err) {
  std::string message;
  if (config_.expected && completions() != completions_before) {
    auto root = table_->root();
    if (root && !(*root == *config_.expected))
      message = "checksum MISMATCH: " + config_.parameters->label() + " " +
                root->hex() + " " + expect_field(*root, *config_.expected);
  }
  if (message.empty()) message = whole_completion_mismatch();
  if (message.empty()) return 0;
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

std::string ExportState::whole_completion_mismatch() {
  // The first request to find every byte past the cursor checks, once:
  // it waits for the hashing thread to finish (a bounded wait).
  if (!whole_ || !config_.whole_expected ||
      whole_->cursor() != whole_->length() || whole_->stale() ||
      whole_checked_.exchange(true))
    return "";
  const std::optional<DigestValue> value = whole_->final();
  if (!value || *value == *config_.whole_expected) return "";
  return "checksum MISMATCH: whole=" + config_.whole_digest->name() + ":" +
         value->hex() + " " +
         expect_field(*value, *config_.whole_expected, "whole-");
}

int ExportState::pread(nbdkit_next* next, void* buf, uint32_t count,
                       uint64_t offset, uint32_t flags, int* err) {
  std::optional<RangeLock::Guard> held;
  held.emplace(ranges_.lock_shared(offset, count));
  const uint64_t completions = this->completions();
  begin_checks();
  // With blkhash-expect-map, whole blocks are read, so that every block
  // the client sees is complete, checked, and refused if bad.
  const uint64_t block_size =
      map_checker_ ? config_.parameters->block_size() : 1;
  const uint64_t lo = map_checker_ ? offset / block_size * block_size : offset;
  const uint64_t hi = map_checker_ ? std::min(table_->length(),
                                              (offset + count + block_size - 1) /
                                                  block_size * block_size)
                                   : offset + count;
  std::vector<uint8_t> widened;
  uint8_t* bytes = static_cast<uint8_t*>(buf);
  if (lo != offset || hi != offset + count) {
    widened.resize(hi - lo);
    bytes = widened.data();
  }
  if (next->pread(next, bytes, static_cast<uint32_t>(hi - lo), lo, flags,
                  err) == -1)
    return -1;
  auto fill = [this, lo](std::span<const uint8_t> seen) {
    if (table_) table_->fill_data(lo, seen);
    if (whole_) whole_->fill_data(lo, seen);
  };
  // Checked against a map before the reply: never deferred then.
  if (!map_checker_ && defer(held, {bytes, hi - lo}, "read", lo, completions,
                             fill))
    return 0;
  if (record("read", lo, hi - lo, err, [&] { fill({bytes, hi - lo}); }) == -1)
    return -1;
  if (check_blocks("read", err) == -1) return -1;
  if (map_checker_ &&
      map_checker_->any_bad(lo / block_size, (hi + block_size - 1) / block_size)) {
    nbdkit_error("blkhash: export %s: read at %" PRIu64 ": a block found bad "
                 "against blkhash-expect-map earlier",
                 quote(name_).c_str(), offset);
    *err = EIO;
    return -1;
  }
  if (!widened.empty()) std::memcpy(buf, widened.data() + (offset - lo), count);
  return check_completion(completions, err);
}

// Other exports forget a written range before the plugin call (and the
// range lock, shared by all exports, keeps their reports off it until the
// table has recorded it); zero waits for the plugin's answer, because a
// fast zero the plugin refuses has changed nothing.

int ExportState::pwrite(nbdkit_next* next, const void* buf, uint32_t count,
                        uint64_t offset, uint32_t flags, int* err) {
  note_change();
  std::optional<RangeLock::Guard> held;
  held.emplace(ranges_.lock_exclusive(offset, count));
  const uint64_t completions = this->completions();
  begin_checks();
  changed_(this, offset, count);
  if (overlaps_plugin(count))
    return pwrite_overlapped(next, buf, count, offset, flags, err, completions);
  if (next->pwrite(next, buf, count, offset, flags, err) == -1) {
    return forget_failed("failed write", offset, count, err);
  }
  auto put = [this, offset](std::span<const uint8_t> bytes) {
    if (table_) table_->put_data(offset, bytes);
    if (whole_) whole_->put_data(offset, bytes);
  };
  const std::span<const uint8_t> bytes{static_cast<const uint8_t*>(buf), count};
  // Checked against a map before the reply: never deferred then.
  if (!map_checker_ && defer(held, bytes, "write", offset, completions, put))
    return 0;
  if (record("write", offset, count, err, [&] { put(bytes); }) == -1)
    return -1;
  if (check_blocks("write", err) == -1) return -1;
  return check_completion(completions, err);
}

bool ExportState::overlaps_plugin(uint32_t count) const {
  // Not with a map to check against (its checks are per request thread),
  // nor when records are deferred (they are after the reply anyway), nor
  // for a digest that hashes the write in about the time a hand-over
  // takes (xxh128; as LeafHasher does not use the pool for it).
  const bool fast = !config_.parameters || config_.parameters->digest().is_fast();
  return pool_ && pool_->threads() > 1 && count >= kOverlapMinBytes &&
         !fast && !map_checker_ && config_.defer == Deferral::Mode::kNever;
}

int ExportState::pwrite_overlapped(nbdkit_next* next, const void* buf,
                                   uint32_t count, uint64_t offset,
                                   uint32_t flags, int* err,
                                   uint64_t completions) {
  // The write's bytes are the caller's until we return, and the range is
  // held exclusively: idle workers record slices of it while the plugin
  // writes it; join() records what they did not take.  A slice boundary
  // is a block boundary, so no block is split between two threads.
  const uint8_t* bytes = static_cast<const uint8_t*>(buf);
  const uint64_t block = config_.block_size;
  const uint64_t end = offset + count;
  const uint64_t slice =
      std::max<uint64_t>(kOverlapSliceBytes / block, 1) * block;
  const size_t slices = static_cast<size_t>(
      ((end + slice - 1) / slice) - offset / slice);
  std::vector<int> results(slices, 0);  // each slice's, by its own thread
  auto started = pool_->start(slices, [&](size_t i) {
    const uint64_t lo = std::max(offset, (offset / slice + i) * slice);
    const uint64_t hi = std::min(end, (offset / slice + i + 1) * slice);
    int ignored = 0;  // record() sets EIO
    results[i] = record("write", lo, hi - lo, &ignored, [&] {
      const std::span<const uint8_t> part{bytes + (lo - offset), hi - lo};
      if (table_) table_->put_data(lo, part);
      if (whole_) whole_->put_data(lo, part);
    });
  });
  const int written = next->pwrite(next, buf, count, offset, flags, err);
  pool_->join(started);  // never throws: record() catches
  if (written == -1) {
    return forget_failed("failed write", offset, count, err);
  }
  if (std::find(results.begin(), results.end(), -1) != results.end()) {
    *err = EIO;
    return -1;
  }
  return check_completion(completions, err);
}

int ExportState::zero(nbdkit_next* next, uint32_t count, uint64_t offset,
                      uint32_t flags, int* err) {
  auto held = ranges_.lock_exclusive(offset, count);
  const uint64_t completions = this->completions();
  begin_checks();
  if (next->zero(next, count, offset, flags, err) == -1) {
    bool refused_fast = (flags & NBDKIT_FLAG_FAST_ZERO) &&
                        (*err == ENOTSUP || *err == EOPNOTSUPP);
    if (!refused_fast) {
      note_change();
      changed_(this, offset, count);
      forget_failed("failed zero", offset, count, err);
    }
    return -1;
  }
  note_change();
  changed_(this, offset, count);
  if (record("zero", offset, count, err, [&] {
        if (table_) table_->put_zero(offset, count);
        if (whole_) whole_->put_zero(offset, count);
      }) == -1)
    return -1;
  if (check_blocks("zero", err) == -1) return -1;
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
             [&] { forget_here(offset, count); }) == -1)
    return -1;
  *err = saved;
  return r;
}

int ExportState::extents(nbdkit_next* next, uint32_t count, uint64_t offset,
                         uint32_t flags, struct nbdkit_extents* extents,
                         int* err) {
  auto held = ranges_.lock_shared(offset, count);
  const uint64_t completions = this->completions();
  begin_checks();
  if (next->extents(next, count, offset, flags, extents, err) == -1)
    return -1;
  if (!table_) return 0;  // the whole-image digest reads its holes itself
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
  if (check_blocks("block status", err) == -1) return -1;
  return check_completion(completions, err);
}

int ExportState::flush(nbdkit_next* next, uint32_t flags, int* err) {
  {
    // Deferred records complete first: their completion check may fail
    // this flush.
    std::unique_lock lock(mutex_);
    drain_locked(lock);
  }
  if (mismatch_) {
    std::lock_guard lock(mutex_);
    nbdkit_error("blkhash: export %s: flush refused: %s",
                 quote(name_).c_str(), mismatch_message_.c_str());
    *err = EIO;
    return -1;
  }
  return next->flush(next, flags, err);
}

void ExportState::after_request(nbdkit_next* next) {
  if (!whole_) return;
  // Before any write, a gap at the cursor is bytes no client will send
  // (the parts of a qcow2 file qemu-img never reads): read it as soon as
  // a little data waits behind it, rather than buffer a whole window.
  // After writes, a gap may be what a client is about to write (nbdcopy's
  // connections work 128 MiB apart), and reading it early would make the
  // digest stale when that write lands: wait for the window.
  const uint64_t limit =
      written_ ? config_.whole_window
               : std::min<uint64_t>(config_.whole_window, kEarlyGapBytes);
  if (whole_->buffered_bytes() <= limit) return;
  WholeReadBack reader(next, *whole_, table_.get(), ranges_, !written_);
  if (!reader.read_while_buffered_over(limit))
    nbdkit_debug("blkhash: whole-image digest: %s (read at the report)",
                 reader.error().c_str());
  whole_read_ += reader.bytes_read();
}

}  // namespace blkhash::filter
