// See deferral.h.

#include "deferral.h"

#include <cstring>

namespace blkhash::filter {

Deferral::Deferral(Mode mode, unsigned workers, uint64_t budget)
    : mode_(mode), budget_(budget) {
  if (mode_ == Mode::kNever) return;
  for (unsigned i = 0; i < workers; i++)
    threads_.emplace_back([this] { worker_loop(); });
}

Deferral::~Deferral() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (auto& thread : threads_) thread.join();
}

bool Deferral::submit(std::optional<RangeLock::Guard>& held,
                      std::span<const uint8_t> data,
                      std::function<void(std::span<const uint8_t>)> record,
                      std::function<void()> done) {
  if (mode_ == Mode::kNever || threads_.empty() || !held) return false;
  if (mode_ == Mode::kAuto && data.size() < kMinBytes) return false;
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || in_use_ + data.size() > budget_) return false;
    if (mode_ == Mode::kAuto && idle_workers_ <= queue_.size()) return false;
    in_use_ += data.size();  // reserved before the copy, outside the lock
  }
  auto job = std::make_unique<Job>();
  try {
    job->bytes = std::make_unique_for_overwrite<uint8_t[]>(data.size());
  } catch (const std::bad_alloc&) {
    std::lock_guard lock(mutex_);
    in_use_ -= data.size();
    return false;
  }
  std::memcpy(job->bytes.get(), data.data(), data.size());
  job->length = data.size();
  job->held.emplace(std::move(*held));
  held.reset();
  job->record = std::move(record);
  job->done = std::move(done);
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(job));
  }
  work_ready_.notify_one();
  return true;
}

uint64_t Deferral::bytes_in_use() const {
  std::lock_guard lock(mutex_);
  return in_use_;
}

void Deferral::worker_loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    idle_workers_++;
    work_ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    idle_workers_--;
    if (queue_.empty()) return;  // stopping, and nothing left to record
    std::unique_ptr<Job> job = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    job->record({job->bytes.get(), job->length});
    const size_t length = job->length;
    job->held.reset();  // the range is free once recorded
    auto done = std::move(job->done);
    job.reset();
    done();
    lock.lock();
    in_use_ -= length;
  }
}

}  // namespace blkhash::filter
