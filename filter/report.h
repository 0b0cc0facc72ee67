// What a report says.
//
// A report is the checksum of an export's whole current content and the
// verdict on it.  It is one line of text, the same in the log and in the
// export description that nbdinfo shows:
//
//   blkhash: <digest>/<block size> <hex> export="<name>" size=<bytes>
//            hashed=<bytes> read=<bytes> [unfolded=<bytes>] [expect=verified |
//            expect=MISMATCH expected=<hex>] [bad-blocks="<ranges>"]
//            [verify=match|MISMATCH
//            readback=<hex> verify-read=<bytes>] [whole=<alg>:<hex>
//            whole-read=<bytes> [whole-expect=verified | whole-expect=MISMATCH
//            whole-expected=<hex>]] verdict=<verdict>
//
// (on one line), where <hex> is the root, or the word "incomplete" when
// part of the export could not be read (then error="..." follows), or
// "pending" before the first report.  unfolded= appears when writes landed
// in blocks already folded into the checksum (blkhash-fold), which made
// that many bytes unknown again: read= includes those not written again.
// expect= appears with blkhash-expect, bad-blocks= when blocks differ
// from blkhash-expect-map, verify= with blkhash-verify
// (verify=incomplete verify-error="..." if the read-back failed).
// whole= appears with blkhash-whole: the ordinary digest of the whole
// export (sha256sum's value), whole-read= the bytes the filter read
// itself for it; whole=<alg>:incomplete whole-error="..." if it could
// not be computed.
//
// The verdict is one of
//   match       an expectation given (blkhash-expect, blkhash-verify), all
//               agree
//   mismatch    the root differs from blkhash-expect or the read-back, or
//               the whole-image digest from blkhash-expect=ALG:HEX
//   incomplete  the root, the read-back or the whole-image digest could
//               not be computed
//   computed    the root is known and nothing was expected of it
//
// The export name comes from clients: it is quoted with every byte outside
// printable ASCII, the quote and the backslash escaped, and cut to 256
// bytes, so a name cannot break the line or forge a second one.
// man/nbdkit-blkhash-filter.pod documents the format and the result file
// formats; change both together.

#ifndef BLKHASH_FILTER_REPORT_H
#define BLKHASH_FILTER_REPORT_H

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "digest.h"

namespace blkhash::filter {

enum class Verdict { kMatch, kMismatch, kIncomplete, kComputed };

// "match", "mismatch", "incomplete", "computed".
const char* verdict_name(Verdict verdict);

// A value against its expected value, in the words of the report line:
// "expect=verified", or "expect=MISMATCH expected=HEX"; with a prefix
// ("whole-") on both keys for the whole-image digest.  The request that
// completes a mismatching image fails with the same words.
std::string expect_field(const DigestValue& value, const DigestValue& expected,
                         std::string_view prefix = "");

// What the result file holds (blkhash-file-format).
enum class ResultFormat {
  kHex,   // "<hex>\n"
  kSum,   // "<hex>  <export name, or - for the default export>\n"
  kJson,  // one JSON object and "\n" (see result_text())
};

// With blkhash-digest=none (whole_only), the report has no blkhash:
// label, digest and root are the whole-image digest's, and the line has
// none of the blkhash's fields (hashed=, read=, expect=, verify=...).
struct Report {
  bool whole_only = false;
  std::string digest;        // "sha256"
  uint32_t block_size = 0;   // bytes (0 when whole_only)
  std::string label;         // "sha256/64K"
  std::string export_name;   // as the client sent it
  uint64_t size = 0;
  std::optional<DigestValue> root;  // empty: incomplete
  uint64_t hashed_in_flight = 0;    // bytes hashed from client traffic
  uint64_t read_back = 0;           // bytes read from the plugin to finish
  uint64_t unfolded = 0;            // bytes unfolded by rewrites (or 0)
  std::string error;                // why it is incomplete

  std::optional<DigestValue> expected;  // blkhash-expect
  // blkhash-expect-map: the blocks that differ from the map ("3-5,9",
  // the first 8 ranges and a count), "" if none.
  std::string bad_blocks;
  bool verify = false;                  // blkhash-verify was asked for
  std::optional<DigestValue> readback;  // the root read back
  uint64_t verify_read = 0;
  std::string verify_error;

  std::string whole_name;                     // blkhash-whole, or ""
  std::optional<DigestValue> whole;           // empty: incomplete
  std::optional<DigestValue> whole_expected;  // blkhash-expect=ALG:HEX
  uint64_t whole_read = 0;  // bytes the filter read for it
  std::string whole_error;

  Verdict verdict() const;

  // The report line, without a trailing newline.
  std::string line() const;
  // The blkhash's part of it (hashed= ... verify-read=).
  void blkhash_fields(std::string& out) const;

  // The result file's content; only for a report with a root.
  std::string result_text(ResultFormat format) const;
};

// The description of an export with no report yet.
std::string pending_line(std::string_view label, std::string_view export_name,
                         uint64_t size);

// "name" with unsafe bytes escaped (see above), at most `limit` input bytes.
std::string quote(std::string_view text, size_t limit = 256);

// A JSON string literal of `text` (any bytes: those outside printable
// ASCII as \u00XX, so the output is ASCII whatever the name).
std::string json_string(std::string_view text);

}  // namespace blkhash::filter

#endif  // BLKHASH_FILTER_REPORT_H
