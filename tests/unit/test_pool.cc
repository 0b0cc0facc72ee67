// HashPool on its own: parallel_for(count, fn) runs fn(i) exactly once
// for each i < count, returns only when all have run, rethrows an
// exception to the caller whose job threw it (and to no one else), uses
// idle workers, and runs everything in the caller when it has none.
//
// Every wait here is bounded, so a broken pool fails or times out (meson)
// rather than hanging.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "catch.h"

#include "hash_pool.h"

namespace blkhash::test {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

TEST_CASE("every item runs exactly once, with several callers at once",
          "[pool]") {
  const unsigned workers = GENERATE(0u, 1u, 3u);
  const size_t count = GENERATE(size_t{1}, size_t{2}, size_t{7}, size_t{1000});
  INFO(workers << " workers, " << count << " items");
  HashPool pool(workers);
  constexpr int kCallers = 4;
  constexpr int kRounds = 20;
  // hits[c][i]: how often caller c's fn ran item i, over all rounds.
  std::vector<std::vector<std::atomic<int>>> hits;
  for (int c = 0; c < kCallers; c++) hits.emplace_back(count);
  std::atomic<int> out_of_range{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; c++)
    callers.emplace_back([&, c] {
      for (int round = 0; round < kRounds; round++)
        pool.parallel_for(count, [&](size_t i) {
          if (i >= count)
            out_of_range++;
          else
            hits[c][i]++;
        });
    });
  for (auto& caller : callers) caller.join();
  CHECK(out_of_range == 0);
  for (int c = 0; c < kCallers; c++)
    CHECK(std::all_of(hits[c].begin(), hits[c].end(),
                      [](const std::atomic<int>& h) { return h == kRounds; }));
}

TEST_CASE("parallel_for returns only when every item is done", "[pool]") {
  HashPool pool(3);
  for (int round = 0; round < 20; round++) {
    std::vector<int> done(16, 0);  // plain ints: the return must publish them
    pool.parallel_for(done.size(), [&](size_t i) {
      std::this_thread::sleep_for(microseconds(200 * (i % 4)));
      done[i] = 1;
    });
    CHECK(std::count(done.begin(), done.end(), 1) == 16);
  }
}

TEST_CASE("idle workers share a job", "[pool]") {
  HashPool pool(2);
  // A worker may not be waiting yet when the job comes: try a few times.
  size_t most_threads = 0;
  for (int attempt = 0; attempt < 100 && most_threads < 2; attempt++) {
    std::mutex mutex;
    std::set<std::thread::id> threads;
    pool.parallel_for(8, [&](size_t) {
      std::this_thread::sleep_for(microseconds(500));
      std::lock_guard lock(mutex);
      threads.insert(std::this_thread::get_id());
    });
    most_threads = std::max(most_threads, threads.size());
  }
  CHECK(most_threads >= 2);
}

TEST_CASE("with no workers, everything runs in the caller", "[pool]") {
  HashPool pool(0);
  const auto caller = std::this_thread::get_id();
  std::atomic<int> elsewhere{0};
  std::atomic<int> ran{0};
  pool.parallel_for(100, [&](size_t) {
    if (std::this_thread::get_id() != caller) elsewhere++;
    ran++;
  });
  CHECK(ran == 100);
  CHECK(elsewhere == 0);
}

TEST_CASE("an exception reaches its caller after every item ran", "[pool]") {
  HashPool pool(3);
  std::vector<std::atomic<int>> hits(100);
  std::string message;
  try {
    pool.parallel_for(hits.size(), [&](size_t i) {
      hits[i]++;
      if (i == 5 || i == 50) throw std::runtime_error("item " + std::to_string(i));
    });
    FAIL("no exception");
  } catch (const std::runtime_error& e) {
    message = e.what();
  }
  CHECK((message == "item 5" || message == "item 50"));
  CHECK(std::all_of(hits.begin(), hits.end(),
                    [](const std::atomic<int>& h) { return h == 1; }));
  // The pool goes on, and the old error does not come back.
  std::atomic<int> ran{0};
  CHECK_NOTHROW(pool.parallel_for(10, [&](size_t) { ran++; }));
  CHECK(ran == 10);
}

TEST_CASE("an exception goes to no other caller", "[pool]") {
  HashPool pool(3);
  constexpr int kRounds = 50;
  std::atomic<int> thrower_caught{0};
  std::atomic<int> quiet_caught{0};
  std::thread thrower([&] {
    for (int round = 0; round < kRounds; round++) {
      try {
        pool.parallel_for(8, [](size_t) { throw std::logic_error("mine"); });
      } catch (const std::logic_error&) {
        thrower_caught++;
      }
    }
  });
  std::thread quiet([&] {
    for (int round = 0; round < kRounds; round++) {
      try {
        pool.parallel_for(8, [](size_t) {
          std::this_thread::sleep_for(microseconds(50));
        });
      } catch (...) {
        quiet_caught++;
      }
    }
  });
  thrower.join();
  quiet.join();
  CHECK(thrower_caught == kRounds);
  CHECK(quiet_caught == 0);
}

TEST_CASE("a pool stops and joins its workers", "[pool]") {
  // Idle, just after work, and never used: each destructor must return.
  for (int i = 0; i < 20; i++) {
    HashPool pool(3);
    if (i % 2) pool.parallel_for(10, [](size_t) {});
  }
  SUCCEED();
}

TEST_CASE("start() runs on idle workers while the caller works; join() "
          "finishes", "[pool]") {
  HashPool pool(1);
  std::this_thread::sleep_for(milliseconds(20));  // the worker is idle
  const auto caller = std::this_thread::get_id();
  std::atomic<int> runs{0};
  std::atomic<bool> on_caller{false};
  auto started = pool.start(1, [&](size_t) {
    std::this_thread::sleep_for(milliseconds(20));
    runs++;
    if (std::this_thread::get_id() == caller) on_caller = true;
  });
  CHECK(started.on_worker());
  // The caller's own work overlaps; join() waits for the item.
  std::this_thread::sleep_for(milliseconds(5));
  pool.join(started);
  CHECK(runs == 1);
  CHECK(!on_caller);

  // No worker idle (or none at all): join() runs the items in the caller.
  HashPool none(0);
  std::atomic<int> inline_runs{0};
  auto queued = none.start(3, [&](size_t) {
    CHECK(std::this_thread::get_id() == caller);
    inline_runs++;
  });
  CHECK(!queued.on_worker());
  CHECK(inline_runs == 0);  // nothing runs before join()
  none.join(queued);
  CHECK(inline_runs == 3);

  // An exception comes out of join().
  auto failing = pool.start(2, [](size_t i) {
    if (i == 1) throw std::runtime_error("item 1");
  });
  CHECK_THROWS_WITH(pool.join(failing), "item 1");
}

}  // namespace
}  // namespace blkhash::test
