// See log.h.

#include "log.h"

#include <fstream>
#include <iterator>

#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

namespace blkhash::filter {

namespace {

LogTo log_to = LogTo::kDefault;  // written by init_log() only

LogTo parse_destination(std::string_view value) {
  if (value == "stderr") return LogTo::kStderr;
  if (value == "syslog") return LogTo::kSyslog;
  if (value == "null") return LogTo::kNull;
  return LogTo::kDefault;
}

// nbdkit in the background points stderr at /dev/null and logs to syslog.
bool stderr_is_discarded() {
  struct stat err, null;
  if (fstat(STDERR_FILENO, &err) == -1) return true;
  if (stat("/dev/null", &null) == -1) return false;
  return S_ISCHR(err.st_mode) && err.st_rdev == null.st_rdev;
}

}  // namespace

LogTo log_choice(const std::vector<std::string>& args) {
  constexpr std::string_view kOption = "--log";
  LogTo choice = LogTo::kDefault;
  for (size_t i = 1; i < args.size(); i++) {
    std::string_view arg = args[i];
    if (arg == "--") break;
    if (arg == kOption && i + 1 < args.size())
      choice = parse_destination(args[++i]);
    else if (arg.starts_with("--log="))
      choice = parse_destination(arg.substr(kOption.size() + 1));
  }
  return choice;
}

void init_log() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)),
                  std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (size_t start = 0; start < all.size();) {
    size_t end = all.find('\0', start);
    if (end == std::string::npos) end = all.size();
    args.emplace_back(all, start, end - start);
    start = end + 1;
  }
  log_to = log_choice(args);
}

void log_line(const std::string& line) {
  LogTo to = log_to;
  if (to == LogTo::kDefault)
    to = stderr_is_discarded() ? LogTo::kSyslog : LogTo::kStderr;
  switch (to) {
    case LogTo::kSyslog:
      syslog(LOG_DAEMON | LOG_NOTICE, "%s", line.c_str());
      break;
    case LogTo::kStderr: {
      std::string text = "nbdkit: " + line + "\n";
      ssize_t ignored = write(STDERR_FILENO, text.data(), text.size());
      (void)ignored;
      break;
    }
    case LogTo::kNull:
    case LogTo::kDefault:
      break;
  }
}

}  // namespace blkhash::filter
