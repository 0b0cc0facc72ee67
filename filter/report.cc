// See report.h.

#include "report.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <nbdkit-filter.h>

namespace blkhash::filter {

std::string quote(std::string_view text, size_t limit) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  size_t n = std::min(text.size(), limit);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (n < text.size()) out += "...";
  out += '"';
  return out;
}

std::string Report::line() const {
  std::string out = "blkhash: " + label + " ";
  out += root ? root->hex() : "incomplete";
  out += " export=" + quote(export_name);
  out += " size=" + std::to_string(size);
  out += " hashed=" + std::to_string(hashed_in_flight);
  out += " read=" + std::to_string(read_back);
  if (unfolded > 0) out += " unfolded=" + std::to_string(unfolded);
  if (!root) out += " error=" + quote(error);
  if (expected && root) {
    if (*root == *expected)
      out += " expect=verified";
    else
      out += " expect=MISMATCH expected=" + expected->hex();
  }
  if (verify && root) {
    if (readback) {
      out += *readback == *root ? " verify=match" : " verify=MISMATCH";
      out += " readback=" + readback->hex();
    } else {
      out += " verify=incomplete verify-error=" + quote(verify_error);
    }
    out += " verify-read=" + std::to_string(verify_read);
  }
  return out;
}

bool Report::mismatch() const {
  if (!root) return false;
  return (expected && *root != *expected) ||
         (verify && readback && *readback != *root);
}

std::string pending_line(std::string_view label, std::string_view export_name,
                         uint64_t size) {
  return "blkhash: " + std::string(label) + " pending export=" +
         quote(export_name) + " size=" + std::to_string(size) +
         " (not computed yet)";
}

namespace {

// nbdkit in the background points stderr at /dev/null and logs to syslog.
bool stderr_is_discarded() {
  struct stat err, null;
  if (fstat(STDERR_FILENO, &err) == -1) return true;
  if (stat("/dev/null", &null) == -1) return false;
  return S_ISCHR(err.st_mode) && err.st_rdev == null.st_rdev;
}

}  // namespace

void log_line(const std::string& line) {
  if (stderr_is_discarded()) {
    syslog(LOG_NOTICE, "%s", line.c_str());
  } else {
    std::string text = "nbdkit: " + line + "\n";
    // One write, so lines from several threads never interleave.
    ssize_t ignored = write(STDERR_FILENO, text.data(), text.size());
    (void)ignored;
  }
}

std::string write_result_file(const std::string& path, const std::string& hex,
                              unsigned mode) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string temp = dir + "/." + base + ".XXXXXX";

  int fd = mkstemp(temp.data());
  if (fd == -1)
    return "cannot create a temporary file in " + dir + ": " +
           std::strerror(errno);
  std::string text = hex + "\n";
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
  if (!ok) {
    unlink(temp.c_str());
    return "cannot write " + path + ": " + std::strerror(saved);
  }
  return {};
}

void remove_result_file(const std::string& path) {
  // A failure here is logged; the report line already says incomplete.
  if (unlink(path.c_str()) == -1 && errno != ENOENT)
    nbdkit_error("blkhash-file: cannot remove %s: %s", path.c_str(),
                 std::strerror(errno));
}

}  // namespace blkhash::filter
