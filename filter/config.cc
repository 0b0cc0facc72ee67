// See config.h.

#include "config.h"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdlib>
#include <cstring>
#include <cctype>
#include <string_view>
#include <utility>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include <nbdkit-filter.h>

#include "block_table.h"
#include "result_file.h"

namespace blkhash::filter {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// nbdkit_parse_unsigned with a lower bound; -1 after nbdkit_error.
int parse_count(const char* key, const char* value, unsigned minimum,
                unsigned* out) {
  unsigned n;
  if (nbdkit_parse_unsigned(key, value, &n) == -1) return -1;
  if (n < minimum) {
    nbdkit_error("%s: %u is too small (at least %u)", key, n, minimum);
    return -1;
  }
  *out = n;
  return 0;
}

// nbdkit_parse_size, with an error line naming the parameter.
int parse_bytes(const char* key, const char* value, uint64_t* out) {
  int64_t size = nbdkit_parse_size(value);
  if (size == -1) {
    nbdkit_error("%s: cannot parse \"%s\"", key, value);
    return -1;
  }
  *out = static_cast<uint64_t>(size);
  return 0;
}

// One of a few keywords, e.g. blkhash-defer=never|auto|always; the error
// line names the parameter and every keyword.  -1 after nbdkit_error.
template <typename T, size_t N>
int parse_keyword(const char* key, const char* value,
                  const std::pair<const char*, T> (&keywords)[N], T* out) {
  std::string choices;
  for (size_t i = 0; i < N; i++) {
    if (std::string_view(value) == keywords[i].first) {
      *out = keywords[i].second;
      return 0;
    }
    choices += i == 0 ? "" : i + 1 == N ? " or " : ", ";
    choices += keywords[i].first;
  }
  nbdkit_error("%s: \"%s\" is not %s", key, value, choices.c_str());
  return -1;
}

}  // namespace

std::string canonical_digest_name(std::string name) {
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) {
    return static_cast<char>(std::tolower(c));
  });
  static constexpr std::pair<const char*, const char*> kAliases[] = {
      {"sha-1", "sha1"},           {"sha-224", "sha224"},
      {"sha2-224", "sha224"},      {"sha-256", "sha256"},
      {"sha2-256", "sha256"},      {"sha-384", "sha384"},
      {"sha2-384", "sha384"},      {"sha-512", "sha512"},
      {"sha2-512", "sha512"},      {"sha-512/224", "sha512-224"},
      {"sha2-512/224", "sha512-224"}, {"sha-512/256", "sha512-256"},
      {"sha2-512/256", "sha512-256"},
  };
  for (const auto& [alias, canonical] : kAliases)
    if (name == alias) return canonical;
  return name;
}

// One branch per parameter, as nbdkit filters' .config callbacks are
// written: long only because there are many parameters.  Values that
// need each other are checked in complete().
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
  if (k == "blkhash-file")
    return parse_path(key, value, &result_file) == -1 ? -1 : 1;
  if (k == "blkhash-map")
    return parse_path(key, value, &map_file) == -1 ? -1 : 1;
  if (k == "blkhash-expect-map")
    return parse_path(key, value, &expect_map_file) == -1 ? -1 : 1;
  if (k == "blkhash-file-format") {
    static constexpr std::pair<const char*, ResultFormat> kFormats[] = {
        {"hex", ResultFormat::kHex},
        {"sum", ResultFormat::kSum},
        {"json", ResultFormat::kJson}};
    return parse_keyword(key, value, kFormats, &result_format) == -1 ? -1 : 1;
  }
  if (k == "blkhash-check-timeout")
    return parse_count(key, value, 0, &check_timeout) == -1 ? -1 : 1;
  if (k == "blkhash-max-exports")
    return parse_count(key, value, 1, &max_exports) == -1 ? -1 : 1;
  if (k == "blkhash-expect") {
    // "ALGORITHM:HEX" (as KubeVirt CDI writes it) is the ordinary digest
    // of the whole image; a bare HEX is the blkhash.
    std::string_view v = value;
    size_t colon = v.find(':');
    if (colon == std::string_view::npos) {
      expect_hex = value;
      expect_given = true;
    } else {
      whole_expect_digest = canonical_digest_name(std::string(v.substr(0, colon)));
      whole_expect_hex = v.substr(colon + 1);
      if (whole_name.empty()) whole_name = whole_expect_digest;
    }
    return 1;
  }
  if (k == "blkhash-defer") {
    static constexpr std::pair<const char*, Deferral::Mode> kModes[] = {
        {"auto", Deferral::Mode::kAuto},
        {"always", Deferral::Mode::kAlways},
        {"never", Deferral::Mode::kNever}};
    return parse_keyword(key, value, kModes, &defer) == -1 ? -1 : 1;
  }
  if (k == "blkhash-defer-memory")
    return parse_bytes(key, value, &defer_memory) == -1 ? -1 : 1;
  if (k == "blkhash-whole") {
    whole_name = canonical_digest_name(value);
    return 1;
  }
  if (k == "blkhash-whole-window")
    return parse_bytes(key, value, &whole_window) == -1 ? -1 : 1;
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

int Config::parse_expected(const char* key, const std::string& hex,
                           const DigestAlgorithm& digest,
                           std::optional<DigestValue>* out) {
  bool all_hex = !hex.empty() &&
                 std::all_of(hex.begin(), hex.end(),
                             [](char c) { return hex_value(c) >= 0; });
  if (!all_hex) {
    nbdkit_error("%s: \"%s\" is not a hexadecimal digest", key, hex.c_str());
    return -1;
  }
  if (hex.size() != 2 * digest.size()) {
    nbdkit_error("%s: %zu hex digits, but a %s digest has %zu", key,
                 hex.size(), digest.name().c_str(), 2 * digest.size());
    return -1;
  }
  std::vector<uint8_t> bytes;
  for (size_t i = 0; i < hex.size(); i += 2)
    bytes.push_back(static_cast<uint8_t>(hex_value(hex[i]) << 4 |
                                         hex_value(hex[i + 1])));
  *out = DigestValue(bytes);
  return 0;
}

std::string Config::label() const {
  return parameters ? parameters->label() : whole_name;
}

int Config::complete() {
  digest_name = canonical_digest_name(digest_name);
  if (!is_valid_block_size(static_cast<uint64_t>(block_size))) {
    nbdkit_error("blkhash-block-size: %" PRIi64
                 " is not allowed: it must be a power of two from 4K to 64M",
                 block_size);
    return -1;
  }
  if (digest_name == "none") return complete_whole_only();
  std::shared_ptr<const DigestAlgorithm> digest;
  try {
    digest = DigestAlgorithm::create(digest_name);
  } catch (const UnknownDigest&) {
    nbdkit_error("blkhash-digest: unknown digest \"%s\" (use an OpenSSL "
                 "digest name such as sha256, or xxh128)",
                 digest_name.c_str());
    return -1;
  }
  parameters = std::make_unique<Parameters>(
      std::move(digest), static_cast<uint32_t>(block_size));

  if (expect_given &&
      parse_expected("blkhash-expect", expect_hex, parameters->digest(),
                     &expected) == -1)
    return -1;

  if (complete_whole() == -1) return -1;

  if (check_output_file("blkhash-file", result_file) == -1 ||
      check_output_file("blkhash-map", map_file) == -1)
    return -1;
  if (!map_file.empty() && map_file == result_file) {
    nbdkit_error("blkhash-map: the same file as blkhash-file");
    return -1;
  }
  if (!expect_map_file.empty() && load_expect_map() == -1) return -1;
  // The leaves of folded blocks are gone: a map needs them all.
  if (!map_file.empty() || expect_map) fold = false;
  return 0;
}

int Config::complete_whole_only() {
  if (whole_name.empty()) {
    nbdkit_error("blkhash-digest: none leaves nothing to compute: give "
                 "blkhash-whole=DIGEST or blkhash-expect=DIGEST:HEX");
    return -1;
  }
  // Each of these is about the blkhash, which is not computed.
  const std::pair<bool, const char*> needs_blkhash[] = {
      {expect_given, "blkhash-expect: a bare HEX is a blkhash (give "
                     "DIGEST:HEX for the whole-image digest)"},
      {verify, "blkhash-verify: reads back to check the blkhash"},
      {!map_file.empty(), "blkhash-map: a map holds the blkhash's leaves"},
      {!expect_map_file.empty(),
       "blkhash-expect-map: a map holds the blkhash's leaves"},
  };
  for (const auto& [given, what] : needs_blkhash) {
    if (given) {
      nbdkit_error("%s, but blkhash-digest=none", what);
      return -1;
    }
  }
  if (complete_whole() == -1) return -1;
  return check_output_file("blkhash-file", result_file);
}

int Config::complete_whole() {
  if (!whole_name.empty()) {
    try {
      whole_digest = DigestAlgorithm::create(whole_name);
    } catch (const UnknownDigest&) {
      nbdkit_error("blkhash-whole: unknown digest \"%s\" (use an OpenSSL "
                   "digest name such as sha256, or xxh128)",
                   whole_name.c_str());
      return -1;
    }
  }
  if (!whole_expect_digest.empty()) {
    if (whole_expect_digest != whole_name) {
      nbdkit_error("blkhash-expect: %s:... but blkhash-whole=%s: give the "
                   "expected value of the same digest",
                   whole_expect_digest.c_str(), whole_name.c_str());
      return -1;
    }
    if (parse_expected("blkhash-expect", whole_expect_hex, *whole_digest,
                       &whole_expected) == -1)
      return -1;
  }
  return 0;
}

int Config::parse_path(const char* key, const char* value, std::string* out) {
  if (!*value) {
    nbdkit_error("%s: empty path", key);
    return -1;
  }
  char* absolute = nbdkit_absolute_path(value);
  if (!absolute) return -1;  // nbdkit_absolute_path reported it
  *out = absolute;
  free(absolute);
  return 0;
}

int Config::check_output_file(const char* key, const std::string& path) {
  if (path.empty()) return 0;
  std::string dir = directory_of(path);
  struct stat st;
  if (stat(dir.c_str(), &st) == -1 || !S_ISDIR(st.st_mode)) {
    nbdkit_error("%s: directory %s does not exist", key, dir.c_str());
    return -1;
  }
  if (access(dir.c_str(), W_OK | X_OK) == -1) {
    nbdkit_error("%s: directory %s is not writable: %s", key, dir.c_str(),
                 strerror(errno));
    return -1;
  }
  if (lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    nbdkit_error("%s: %s exists and is not a regular file "
                 "(a symlink or a directory): refusing to replace it",
                 key, path.c_str());
    return -1;
  }
  // New files get 0666 less the umask, like any file nbdkit creates.
  mode_t mask = umask(0);
  umask(mask);
  result_file_mode = 0666 & ~mask;
  // A value left by an earlier run (killed, or failed) is never read as
  // the result of this one.
  std::string problem = remove_result_file(path);
  if (!problem.empty()) {
    nbdkit_error("%s: %s", key, problem.c_str());
    return -1;
  }
  return 0;
}

int Config::load_expect_map() {
  try {
    auto map = std::make_shared<const BlockMap>(
        BlockMap::load(expect_map_file, expected));
    if (map->digest_name() != parameters->digest().name() ||
        map->block_size() != parameters->block_size()) {
      nbdkit_error("blkhash-expect-map: %s is a map of %s/%s, not of "
                   "blkhash-digest/blkhash-block-size %s",
                   expect_map_file.c_str(), map->digest_name().c_str(),
                   format_block_size(map->block_size()).c_str(),
                   parameters->label().c_str());
      return -1;
    }
    if (!expected) expected = map->root();
    expect_map = std::move(map);
    return 0;
  } catch (const std::exception& e) {
    nbdkit_error("blkhash-expect-map: %s: %s", expect_map_file.c_str(),
                 e.what());
    return -1;
  }
}

}  // namespace blkhash::filter
