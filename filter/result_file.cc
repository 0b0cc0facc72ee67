// See result_file.h.

#include "result_file.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <sys/stat.h>
#include <unistd.h>

namespace blkhash::filter {

std::string directory_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == 0) return "/";
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::string replace_result_file(const std::string& path,
                                const std::string& text, unsigned mode) {
  size_t slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string temp = directory_of(path) + "/." + base + ".XXXXXX";

  int fd = mkstemp(temp.data());
  if (fd == -1) {
    std::string problem = "cannot create a temporary file in " +
                          directory_of(path) + ": " + std::strerror(errno);
    std::string removed = remove_result_file(path);
    return removed.empty() ? problem : problem + "; " + removed;
  }
  bool ok = fchmod(fd, static_cast<mode_t>(mode)) == 0 &&
            write(fd, text.data(), text.size()) ==
                static_cast<ssize_t>(text.size()) &&
            fsync(fd) == 0;
  int saved = errno;
  if (close(fd) == -1 && ok) {
    ok = false;
    saved = errno;
  }
  // rename() replaces a symlink at `path` itself, never its target.
  if (ok && rename(temp.c_str(), path.c_str()) == -1) {
    ok = false;
    saved = errno;
  }
  if (ok) return {};
  unlink(temp.c_str());
  std::string problem = "cannot write " + path + ": " + std::strerror(saved);
  std::string removed = remove_result_file(path);
  return removed.empty() ? problem + " (removed it)" : problem + "; " + removed;
}

std::string remove_result_file(const std::string& path) {
  if (unlink(path.c_str()) == -1 && errno != ENOENT)
    return "cannot remove " + path + ": " + std::strerror(errno);
  return {};
}

}  // namespace blkhash::filter
