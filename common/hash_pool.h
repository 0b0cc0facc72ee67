// A small pool of hashing threads.
//
// A client with one large request in flight (qemu-img convert writes
// 2 MiB at a time) would otherwise hash on one core while the others idle.
// parallel_for() spreads the blocks of one request over the calling thread
// and whichever workers are idle at that moment.  The caller always works
// too and never waits for a busy worker to become free: when all workers
// are busy (many requests in flight, as with nbdcopy), it simply does the
// whole job itself, so the pool adds no queueing delay.
//
// start() and join() split parallel_for() in two, for a caller with other
// work to do meanwhile (the filter hashes a write while the plugin writes
// it): start() hands the items to idle workers only, join() runs the
// items no worker took in the caller and waits for the others.

#ifndef BLKHASH_HASH_POOL_H
#define BLKHASH_HASH_POOL_H

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "thread_annotations.h"

namespace blkhash {

class HashPool {
 public:
  // Starts `workers` threads (0 is valid: everything runs in the caller).
  explicit HashPool(unsigned workers);
  ~HashPool();  // Stops and joins the workers.

  HashPool(const HashPool&) = delete;
  HashPool& operator=(const HashPool&) = delete;

  // The calling thread and the workers: how many items can run at once.
  unsigned threads() const { return static_cast<unsigned>(threads_.size()) + 1; }

  // Runs fn(i) for every i in [0, count) and returns when all are done.
  // The first exception thrown by fn is rethrown here.
  void parallel_for(size_t count, const std::function<void(size_t)>& fn);

  struct Job;
  // Items started on the pool; join() them exactly once before the pool
  // or anything fn uses goes away.
  class Started {
   public:
    Started() = default;
    bool on_worker() const { return helpers_ > 0; }  // a worker took it

   private:
    friend class HashPool;
    std::shared_ptr<Job> job_;
    unsigned helpers_ = 0;
  };
  Started start(size_t count, std::function<void(size_t)> fn);
  // Runs what no worker took, waits for the rest; rethrows the first
  // exception of fn.
  void join(Started& started);

 private:
  // Queues `job` for at most `max_helpers` idle workers; how many.
  unsigned offer(const std::shared_ptr<Job>& job, size_t max_helpers);
  // Runs the unclaimed items in the caller, then waits for all of them.
  static void finish(Job& job);

  void worker_loop();
  static void run_items(Job& job);

  Mutex mutex_;
  CondVar work_ready_;
  std::deque<std::shared_ptr<Job>> queue_ GUARDED_BY(mutex_);
  unsigned idle_workers_ GUARDED_BY(mutex_) = 0;
  bool stopping_ GUARDED_BY(mutex_) = false;

  std::vector<std::thread> threads_;
};

}  // namespace blkhash

#endif  // BLKHASH_HASH_POOL_H
