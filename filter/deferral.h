// Recording a request's content after the reply (blkhash-defer).
//
// A client with one request in flight (qemu-img convert) waits for each
// reply before it sends the next request; hashing a request before the
// reply puts every hash on that critical path while another core idles.
// So a write's (or a read's) bytes may be copied into a buffer of a
// bounded budget, the reply sent, and the bytes recorded in the table by
// a worker thread.
//
// Semantics stay those of recording inline, because the job keeps the
// request's range lock (range_lock.h) until it has recorded: a later
// write, zero or trim of those blocks waits for it (the last writer
// still wins), and a read waits too (it never fills over a pending
// write).  The caller counts its pending jobs and waits for them before
// anything that looks at the whole table (a report, a completion check
// at flush).
//
// Off by default (blkhash-defer=never): on the 2-core machine this was
// built on, qemu-img convert with one 2 MiB request in flight was not
// faster with it (medians of 7 interleaved runs, 1 GiB: into null 0.74 s
// never, 0.89 s auto; qcow2 into a file 1.15 s never, 1.22 s auto): the
// client and nbdkit's request thread already keep most of both cores
// busy, and the copy lands on the critical path.
//
// When a job is taken (submit() returns true):
//   never   no job;
//   auto    the request has at least kMinBytes, a worker is idle, and the
//           budget has room (with many requests in flight the workers
//           are busy and requests hash inline, spreading over cores);
//   always  the budget has room (for tests).
//
// Threads: submit() from any thread; jobs run on the workers.  mutex_
// guards the queue, the idle count, the budget and stopping_.

#ifndef BLKHASH_FILTER_DEFERRAL_H
#define BLKHASH_FILTER_DEFERRAL_H

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "range_lock.h"

namespace blkhash::filter {

class Deferral {
 public:
  enum class Mode { kAuto, kAlways, kNever };

  // Smallest request `auto` defers: below it the copy costs about what
  // the hash saves.
  static constexpr uint64_t kMinBytes = 256 * 1024;

  // `workers` threads; at most `budget` bytes of copies at once.
  Deferral(Mode mode, unsigned workers, uint64_t budget);
  ~Deferral();  // runs every queued job, then joins the workers

  Deferral(const Deferral&) = delete;
  Deferral& operator=(const Deferral&) = delete;

  // Records `data` later: takes over `held` and a copy of `data`, runs
  // record(copy) on a worker, then releases `held` and calls done().
  // False if the job is not taken (see above): `held` stays the caller's,
  // who records inline.  record and done must not throw.
  bool submit(std::optional<RangeLock::Guard>& held,
              std::span<const uint8_t> data,
              std::function<void(std::span<const uint8_t>)> record,
              std::function<void()> done);

  // Bytes of copies waiting or being recorded.
  uint64_t bytes_in_use() const;

 private:
  struct Job {
    std::optional<RangeLock::Guard> held;
    std::unique_ptr<uint8_t[]> bytes;
    size_t length = 0;
    std::function<void(std::span<const uint8_t>)> record;
    std::function<void()> done;
  };

  void worker_loop();

  const Mode mode_;
  const uint64_t budget_;

  mutable std::mutex mutex_;  // guards the members below
  std::condition_variable work_ready_;
  std::deque<std::unique_ptr<Job>> queue_;
  unsigned idle_workers_ = 0;
  uint64_t in_use_ = 0;  // bytes of queued and running jobs
  bool stopping_ = false;

  std::vector<std::thread> threads_;
};

}  // namespace blkhash::filter

#endif  // BLKHASH_FILTER_DEFERRAL_H
