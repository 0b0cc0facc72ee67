// Locks that clang can check: which lock guards what, and which functions
// need it held, stated in the code (clang's -Wthread-safety, on in the
// clang build of the engine, see meson.build) rather than only in
// comments that could drift.  With another compiler the annotations are
// empty and these classes are a std::mutex and its usual guards.
//
//   GUARDED_BY(m)   a member read or written only with m held
//   REQUIRES(m)     a function called with m held
//   ACQUIRE/RELEASE a function that takes or drops m
//
// Mutex is a std::mutex with the annotations; MutexLock holds one for a
// scope (and may drop and retake it inside, like std::unique_lock);
// CondVar is a std::condition_variable that waits with a MutexLock.
// What the analysis cannot state (a group's lock is the stripe its index
// selects) is checked with assert() and written in the comments.

#ifndef BLKHASH_THREAD_ANNOTATIONS_H
#define BLKHASH_THREAD_ANNOTATIONS_H

#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define BLKHASH_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define BLKHASH_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) BLKHASH_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY BLKHASH_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) BLKHASH_THREAD_ANNOTATION(guarded_by(x))
#define REQUIRES(...) \
  BLKHASH_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define ACQUIRE(...) \
  BLKHASH_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) \
  BLKHASH_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) \
  BLKHASH_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) BLKHASH_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))

namespace blkhash {

class CAPABILITY("mutex") Mutex {
 public:
  void lock() ACQUIRE() { mutex_.lock(); }
  void unlock() RELEASE() { mutex_.unlock(); }
  bool try_lock() TRY_ACQUIRE(true) { return mutex_.try_lock(); }

 private:
  friend class CondVar;
  std::mutex mutex_;
};

class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mutex) ACQUIRE(mutex) : mutex_(mutex) {
    mutex_.lock();
  }
  // Takes over a mutex the caller holds (after a successful try_lock()).
  MutexLock(Mutex& mutex, std::adopt_lock_t) REQUIRES(mutex)
      : mutex_(mutex) {}
  ~MutexLock() RELEASE() {
    if (locked_) mutex_.unlock();
  }

  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void lock() ACQUIRE() {
    mutex_.lock();
    locked_ = true;
  }
  void unlock() RELEASE() {
    locked_ = false;
    mutex_.unlock();
  }

 private:
  friend class CondVar;
  Mutex& mutex_;
  bool locked_ = true;
};

class CondVar {
 public:
  // Drops the lock while waiting, as std::condition_variable::wait does;
  // holds it again on return.  May wake spuriously: wait in a loop.
  void wait(MutexLock& lock) {
    std::unique_lock<std::mutex> native(lock.mutex_.mutex_, std::adopt_lock);
    condition_.wait(native);
    native.release();
  }
  void notify_one() { condition_.notify_one(); }
  void notify_all() { condition_.notify_all(); }

 private:
  std::condition_variable condition_;
};

}  // namespace blkhash

#endif  // BLKHASH_THREAD_ANNOTATIONS_H
