// The filter's pieces that need no nbdkit: the log destination read from
// nbdkit's arguments, the result file's I/O, the range lock.

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "catch.h"

#include "log.h"
#include "range_lock.h"
#include "result_file.h"

namespace blkhash::filter {
namespace {

TEST_CASE("the log destination follows nbdkit's --log", "[filter]") {
  CHECK(log_choice({"nbdkit", "-f", "memory", "1M"}) == LogTo::kDefault);
  CHECK(log_choice({"nbdkit", "--log=null", "memory", "1M"}) == LogTo::kNull);
  CHECK(log_choice({"nbdkit", "--log=stderr", "memory"}) == LogTo::kStderr);
  CHECK(log_choice({"nbdkit", "-f", "--log", "syslog", "file", "x"}) ==
        LogTo::kSyslog);
  CHECK(log_choice({"nbdkit", "--log=syslog", "--log=null", "m"}) ==
        LogTo::kNull);  // the last one wins, as in nbdkit's getopt loop
  CHECK(log_choice({"nbdkit", "--log=bogus"}) == LogTo::kDefault);
  CHECK(log_choice({"nbdkit", "--log"}) == LogTo::kDefault);
  CHECK(log_choice({"--log=null"}) == LogTo::kDefault);  // argv[0]
}

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST_CASE("the result file is replaced whole, or removed", "[filter]") {
  char dir_template[] = "/tmp/blkhash-unit-XXXXXX";
  REQUIRE(mkdtemp(dir_template));
  const std::string dir = dir_template;
  const std::string path = dir + "/sum";

  CHECK(directory_of(path) == dir);
  CHECK(directory_of("sum") == ".");
  CHECK(directory_of("/sum") == "/");

  CHECK(replace_result_file(path, "abc\n", 0640).empty());
  CHECK(read_all(path) == "abc\n");
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);
  CHECK(replace_result_file(path, "def\n", 0644).empty());
  CHECK(read_all(path) == "def\n");

  // A symlink at the path is replaced, never its target.
  const std::string target = dir + "/target";
  CHECK(replace_result_file(target, "keep\n", 0644).empty());
  REQUIRE(unlink(path.c_str()) == 0);
  REQUIRE(symlink(target.c_str(), path.c_str()) == 0);
  CHECK(replace_result_file(path, "new\n", 0644).empty());
  CHECK(read_all(target) == "keep\n");
  REQUIRE(lstat(path.c_str(), &st) == 0);
  CHECK(S_ISREG(st.st_mode));

  CHECK(remove_result_file(path).empty());
  CHECK(access(path.c_str(), F_OK) == -1);
  CHECK(remove_result_file(path).empty());  // already gone: no error

  // Nowhere to write: an error, and no file left behind.
  const std::string nowhere = dir + "/missing/sum";
  CHECK(!replace_result_file(nowhere, "x\n", 0644).empty());

  unlink(target.c_str());
  rmdir(dir.c_str());
}

// Whether a lock on [offset, offset + length) is granted while `held` is
// held: false if it is still waiting after a generous delay.
template <typename Hold, typename Try>
bool granted_while_held(Hold hold, Try attempt) {
  auto held = hold();
  std::atomic<bool> got{false};
  std::thread other([&] {
    auto guard = attempt();
    got = true;
  });
  for (int i = 0; i < 50 && !got; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  bool result = got;
  { auto release = std::move(held); }
  other.join();  // granted once released, or the test hangs (meson times out)
  return result;
}

TEST_CASE("the range lock orders overlapping requests by block", "[filter]") {
  RangeLock lock(4096);
  auto exclusive = [&](uint64_t offset, uint64_t length) {
    return [&lock, offset, length] { return lock.lock_exclusive(offset, length); };
  };
  auto shared = [&](uint64_t offset, uint64_t length) {
    return [&lock, offset, length] { return lock.lock_shared(offset, length); };
  };
  // Overlapping bytes, or only the same block: a writer excludes.
  CHECK(!granted_while_held(exclusive(0, 100), shared(50, 10)));
  CHECK(!granted_while_held(exclusive(0, 100), shared(4000, 10)));
  CHECK(!granted_while_held(shared(0, 100), exclusive(4095, 2)));
  CHECK(!granted_while_held(exclusive(8192, 1), exclusive(0, 3 * 4096)));
  // Readers share; other blocks never wait.
  CHECK(granted_while_held(shared(0, 100), shared(0, 100)));
  CHECK(granted_while_held(exclusive(0, 4096), exclusive(4096, 4096)));
  CHECK(granted_while_held(exclusive(0, 4096), shared(4096, 1)));
}

}  // namespace
}  // namespace blkhash::filter
