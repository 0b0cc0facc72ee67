// See log.h.

#include "log.h"

#include <algorithm>
#include <fstream>
#include <iterator>

#include <syslog.h>
#include <unistd.h>

namespace blkhash::filter {

namespace {

// Written by init_log() and note_fork() only, before any report.
LogTo log_to = LogTo::kDefault;
pid_t pid_at_init = 0;
bool captive = false;  // --run
bool in_background = false;

LogTo parse_destination(std::string_view value) {
  if (value == "stderr") return LogTo::kStderr;
  if (value == "syslog") return LogTo::kSyslog;
  if (value == "null") return LogTo::kNull;
  return LogTo::kDefault;
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
  captive = std::find(args.begin(), args.end(), "--run") != args.end();
  pid_at_init = getpid();
}

void note_fork() { in_background = getpid() != pid_at_init && !captive; }

void log_line(const std::string& line) {
  LogTo to = log_to;
  if (to == LogTo::kDefault)
    to = in_background ? LogTo::kSyslog : LogTo::kStderr;
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
