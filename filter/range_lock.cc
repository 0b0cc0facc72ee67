// See range_lock.h.  Invariant: no two entries of held_ overlap unless
// both are shared.

#include "range_lock.h"

#include <algorithm>

namespace blkhash::filter {

RangeLock::Guard::Guard(RangeLock* lock, std::list<Held>::iterator held)
    : lock_(lock), held_(held) {}

RangeLock::Guard::Guard(Guard&& other) noexcept
    : lock_(other.lock_), held_(other.held_) {
  other.lock_ = nullptr;
}

RangeLock::Guard::~Guard() {
  if (lock_) lock_->release(held_);
}

RangeLock::Guard RangeLock::lock_exclusive(uint64_t offset, uint64_t length) {
  return lock(offset, length, true);
}

RangeLock::Guard RangeLock::lock_shared(uint64_t offset, uint64_t length) {
  return lock(offset, length, false);
}

RangeLock::Guard RangeLock::lock(uint64_t offset, uint64_t length,
                                 bool exclusive) {
  Guard::Held wanted{offset / block_size_,
                     (offset + std::max<uint64_t>(length, 1) - 1) /
                             block_size_ + 1,
                     exclusive};
  auto conflicts = [&] {
    return std::any_of(held_.begin(), held_.end(), [&](const Guard::Held& h) {
      return (h.exclusive || wanted.exclusive) && h.begin < wanted.end &&
             wanted.begin < h.end;
    });
  };
  std::unique_lock guard(mutex_);
  released_.wait(guard, [&] { return !conflicts(); });
  held_.push_front(wanted);
  return Guard(this, held_.begin());
}

void RangeLock::release(std::list<Guard::Held>::iterator held) {
  {
    std::lock_guard guard(mutex_);
    held_.erase(held);
  }
  released_.notify_all();
}

}  // namespace blkhash::filter
