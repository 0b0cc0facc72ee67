// See hash_pool.h.
//
// A Job is shared between the caller and the workers that help with it.
// Items are claimed with an atomic counter, so each runs exactly once;
// `finished` counts completed items and the caller waits until it reaches
// `count`.  fn is only called for claimed items, which all complete
// before parallel_for (or join) returns, so a worker that still holds the
// Job afterwards never touches fn (it only finds no item left to claim).
// start()'s fn is owned by the Job, so it lives as long as any holder.

#include "hash_pool.h"

#include <atomic>
#include <exception>

namespace blkhash {

struct HashPool::Job {
  std::function<void(size_t)> owned_fn;  // start()'s; parallel_for() lends its
  const std::function<void(size_t)>* fn;
  size_t count;
  std::atomic<size_t> next_item{0};

  Mutex mutex;
  CondVar all_finished;
  size_t finished GUARDED_BY(mutex) = 0;
  std::exception_ptr error GUARDED_BY(mutex);
};

HashPool::HashPool(unsigned workers) {
  threads_.reserve(workers);
  for (unsigned i = 0; i < workers; i++)
    threads_.emplace_back([this] { worker_loop(); });
}

HashPool::~HashPool() {
  {
    MutexLock lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (auto& thread : threads_) thread.join();
}

void HashPool::run_items(Job& job) {
  size_t done = 0;
  std::exception_ptr error;
  for (;;) {
    size_t i = job.next_item.fetch_add(1, std::memory_order_relaxed);
    if (i >= job.count) break;
    try {
      (*job.fn)(i);
    } catch (...) {
      if (!error) error = std::current_exception();
    }
    done++;
  }
  if (done == 0) return;
  MutexLock lock(job.mutex);
  if (error && !job.error) job.error = error;
  job.finished += done;
  if (job.finished == job.count) job.all_finished.notify_all();
}

void HashPool::worker_loop() {
  MutexLock lock(mutex_);
  for (;;) {
    idle_workers_++;
    while (!stopping_ && queue_.empty()) work_ready_.wait(lock);
    idle_workers_--;
    if (stopping_) return;
    std::shared_ptr<Job> job = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    run_items(*job);
    lock.lock();
  }
}

void HashPool::parallel_for(size_t count,
                            const std::function<void(size_t)>& fn) {
  if (count == 0) return;
  if (count == 1 || threads_.empty()) {
    for (size_t i = 0; i < count; i++) fn(i);
    return;
  }

  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->count = count;
  offer(job, count - 1);  // the caller takes one share itself
  finish(*job);
}

unsigned HashPool::offer(const std::shared_ptr<Job>& job, size_t max_helpers) {
  unsigned helpers = 0;
  {
    MutexLock lock(mutex_);
    // Only ask workers that are idle now (minus those already woken for
    // other jobs): never queue behind busy ones.
    size_t idle = idle_workers_ > queue_.size() ? idle_workers_ - queue_.size()
                                                : 0;
    helpers = static_cast<unsigned>(std::min(idle, max_helpers));
    for (unsigned i = 0; i < helpers; i++) queue_.push_back(job);
  }
  for (unsigned i = 0; i < helpers; i++) work_ready_.notify_one();
  return helpers;
}

void HashPool::finish(Job& job) {
  run_items(job);
  MutexLock lock(job.mutex);
  while (job.finished != job.count) job.all_finished.wait(lock);
  if (job.error) std::rethrow_exception(job.error);
}

HashPool::Started HashPool::start(size_t count,
                                  std::function<void(size_t)> fn) {
  Started started;
  started.job_ = std::make_shared<Job>();
  started.job_->owned_fn = std::move(fn);
  started.job_->fn = &started.job_->owned_fn;
  started.job_->count = count;
  if (count > 0 && !threads_.empty())
    started.helpers_ = offer(started.job_, count);
  return started;
}

void HashPool::join(Started& started) {
  if (!started.job_) return;
  std::shared_ptr<Job> job = std::move(started.job_);
  finish(*job);
}

}  // namespace blkhash
