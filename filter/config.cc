// See config.h.

#include "config.h"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include <nbdkit-filter.h>

#include "block_table.h"

namespace blkhash::filter {

namespace {

std::string directory_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == 0) return "/";
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

int Config::parse(const char* key, const char* value) {
  std::string k = key;
  if (k == "blkhash-digest") {
    digest_name = value;
    return 1;
  }
  if (k == "blkhash-block-size") {
    block_size = nbdkit_parse_size(value);
    if (block_size == -1) {
      nbdkit_error("blkhash-block-size: cannot parse \"%s\"", value);
      return -1;
    }
    return 1;
  }
  if (k == "blkhash-file") {
    if (!*value) {
      nbdkit_error("blkhash-file: empty path");
      return -1;
    }
    char* absolute = nbdkit_absolute_path(value);
    if (!absolute) return -1;  // nbdkit_absolute_path reported it
    result_file = absolute;
    free(absolute);
    return 1;
  }
  if (k == "blkhash-expect") {
    expect_hex = value;
    expect_given = true;
    return 1;
  }
  if (k == "blkhash-verify" || k == "blkhash-fold") {
    int r = nbdkit_parse_bool(value);
    if (r == -1) {
      nbdkit_error("%s: \"%s\" is not a boolean", key, value);
      return -1;
    }
    if (k == "blkhash-verify")
      verify = r == 1;
    else
      fold = r == 1;
    return 1;
  }
  return 0;
}

int Config::complete() {
  std::shared_ptr<const DigestAlgorithm> digest;
  try {
    digest = DigestAlgorithm::create(digest_name);
  } catch (const UnknownDigest&) {
    nbdkit_error("blkhash-digest: unknown digest \"%s\" (use an OpenSSL "
                 "digest name such as sha256, or xxh128)",
                 digest_name.c_str());
    return -1;
  }
  if (!is_valid_block_size(static_cast<uint64_t>(block_size))) {
    nbdkit_error("blkhash-block-size: %" PRIi64
                 " is not allowed: it must be a power of two from 4K to 64M",
                 block_size);
    return -1;
  }
  parameters = std::make_unique<Parameters>(
      std::move(digest), static_cast<uint32_t>(block_size));

  if (expect_given) {
    bool all_hex = std::all_of(expect_hex.begin(), expect_hex.end(),
                               [](char c) { return hex_value(c) >= 0; });
    if (!all_hex) {
      nbdkit_error("blkhash-expect: \"%s\" is not a hexadecimal digest",
                   expect_hex.c_str());
      return -1;
    }
    if (expect_hex.size() != 2 * parameters->digest_size()) {
      nbdkit_error("blkhash-expect: %zu hex digits, but a %s digest has %zu",
                   expect_hex.size(), digest_name.c_str(),
                   2 * parameters->digest_size());
      return -1;
    }
    std::vector<uint8_t> bytes;
    for (size_t i = 0; i < expect_hex.size(); i += 2)
      bytes.push_back(static_cast<uint8_t>(hex_value(expect_hex[i]) << 4 |
                                           hex_value(expect_hex[i + 1])));
    expected = DigestValue(bytes);
  }

  if (!result_file.empty()) {
    std::string dir = directory_of(result_file);
    struct stat st;
    if (stat(dir.c_str(), &st) == -1 || !S_ISDIR(st.st_mode)) {
      nbdkit_error("blkhash-file: directory %s does not exist", dir.c_str());
      return -1;
    }
    if (access(dir.c_str(), W_OK | X_OK) == -1) {
      nbdkit_error("blkhash-file: directory %s is not writable: %s",
                   dir.c_str(), strerror(errno));
      return -1;
    }
    if (lstat(result_file.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      nbdkit_error("blkhash-file: %s exists and is not a regular file "
                   "(a symlink or a directory): refusing to replace it",
                   result_file.c_str());
      return -1;
    }
    // New files get 0666 less the umask, like any file nbdkit creates.
    mode_t mask = umask(0);
    umask(mask);
    result_file_mode = 0666 & ~mask;
  }
  return 0;
}

}  // namespace blkhash::filter
