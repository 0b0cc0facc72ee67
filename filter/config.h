// The filter's parameters, parsed from the nbdkit command line.
//
// parse() takes one key=value at a time; complete() checks them all and
// builds the hashing Parameters.  Every bad value is reported by
// one nbdkit_error line that names the parameter, and stops nbdkit at
// start-up.  After config_complete() the Config is read-only.

#ifndef BLKHASH_FILTER_CONFIG_H
#define BLKHASH_FILTER_CONFIG_H

#include <memory>
#include <optional>
#include <string>

#include "block_map.h"
#include "deferral.h"
#include "report.h"
#include "root.h"

namespace blkhash::filter {

struct Config {
  std::string digest_name = kDefaultDigest;
  int64_t block_size = kDefaultBlockSize;
  std::string result_file;  // absolute path, empty: none
  unsigned result_file_mode = 0644;
  std::string expect_hex;  // blkhash-expect as given
  bool expect_given = false;
  bool verify = false;     // blkhash-verify
  bool fold = true;        // blkhash-fold
  ResultFormat result_format = ResultFormat::kHex;  // blkhash-file-format
  unsigned check_timeout = 60;  // blkhash-check-timeout, seconds
  unsigned max_exports = 64;    // blkhash-max-exports
  Deferral::Mode defer = Deferral::Mode::kNever;  // blkhash-defer
  uint64_t defer_memory = 64 << 20;              // blkhash-defer-memory
  // blkhash-whole: the ordinary digest of the whole image too ("": none);
  // blkhash-expect=ALGORITHM:HEX sets it if not given.
  std::string whole_name;
  uint64_t whole_window = 256 << 20;  // blkhash-whole-window
  std::string whole_expect_digest;   // ALGORITHM of blkhash-expect=ALG:HEX
  std::string whole_expect_hex;      // its HEX
  // blkhash-map: the block map written with each report (absolute path,
  // empty: none); blkhash-expect-map: the map every block is checked
  // against.  Either turns folding off (the leaves are kept).
  std::string map_file;
  std::string expect_map_file;

  // Set by complete():
  std::optional<DigestValue> expected;  // from expect_hex
  std::shared_ptr<const DigestAlgorithm> whole_digest;  // or null
  std::optional<DigestValue> whole_expected;  // from whole_expect_hex

  // The blkhash's digest and block size; null with blkhash-digest=none,
  // when only the whole-image digest is computed.
  std::unique_ptr<Parameters> parameters;
  std::shared_ptr<const BlockMap> expect_map;  // read by complete()

  // What the report line starts with: "sha256/64K" for a blkhash, the
  // whole-image digest's name ("sha256") with blkhash-digest=none.
  std::string label() const;

  // Handles a blkhash-* key: 1 if consumed, 0 if not ours, -1 on error.
  int parse(const char* key, const char* value);

  // Checks everything and builds `parameters`: 0, or -1 on error.
  int complete();

 private:
  // `hex` as a value of `digest`: 0, or -1 after an error naming `key`.
  static int parse_expected(const char* key, const std::string& hex,
                            const DigestAlgorithm& digest,
                            std::optional<DigestValue>* out);
  // An absolute path for `key`'s value: 0, or -1 after an error.
  static int parse_path(const char* key, const char* value, std::string* out);
  // A file the filter replaces (blkhash-file, blkhash-map): its directory
  // is writable, it is not a symlink or directory; removes an old one.
  // 0, or -1 after an error naming `key`.
  int check_output_file(const char* key, const std::string& path);
  // blkhash-digest=none: refuses what needs a blkhash.  0 or -1.
  int complete_whole_only();
  // blkhash-whole and blkhash-expect=DIGEST:HEX.  0 or -1.
  int complete_whole();
  // Reads blkhash-expect-map, authenticated by blkhash-expect if given.
  int load_expect_map();
};

// The canonical name of a digest as users type it: lower case, and
// OpenSSL's aliases of the SHA-1 and SHA-2 names (SHA-256, SHA2-256)
// as blksum and nbdcopy name them (sha256).
std::string canonical_digest_name(std::string name);

// Help text for nbdkit --help.
#define BLKHASH_CONFIG_HELP                                                \
  "blkhash-digest=NAME      Digest: any OpenSSL digest or xxh128 (sha256);\n" \
  "                         none: only the blkhash-whole digest.\n"      \
  "blkhash-block-size=SIZE  Block size, power of two, 4K-64M (64K).\n"        \
  "blkhash-file=PATH        Write the checksum to PATH after each report.\n" \
  "blkhash-file-format=FMT  hex, sum or json (hex).\n"                       \
  "blkhash-expect=HEX       Fail the check if the checksum differs.\n"      \
  "blkhash-expect=ALG:HEX   ... or if the whole image's ALG digest differs.\n" \
  "blkhash-whole=DIGEST     Also the ordinary digest of the whole image.\n" \
  "blkhash-whole-window=SIZE Reorder buffer for it (256M).\n"                \
  "blkhash-verify=BOOL      Also read the export back at each report.\n"   \
  "blkhash-fold=BOOL        Fold settled block digests early (true).\n"     \
  "blkhash-map=PATH         Write the block map to PATH after each report.\n" \
  "blkhash-expect-map=PATH  Check every block against this block map.\n"  \
  "blkhash-check-timeout=S  How long a check waits for clients (60).\n"     \
  "blkhash-max-exports=N    Export names tracked at most (64).\n"           \
  "blkhash-defer=auto|always|never  Hash after the reply (never).\n"        \
  "blkhash-defer-memory=SIZE Copies waiting to be hashed, at most (64M).\n" \
  "Check the verdict by ending --run with: nbdinfo --list \"$uri\""

}  // namespace blkhash::filter

#endif  // BLKHASH_FILTER_CONFIG_H
