// What a report says, and where it goes.
//
// A report is the checksum of an export's whole current content.  It is
// one line of text, the same in the log, in the export description that
// nbdinfo shows, and (its digest alone) in the result file:
//
//   blkhash: <digest>/<block size> <hex> export="<name>" size=<bytes>
//            hashed=<bytes> read=<bytes> [unfolded=<bytes>] [expect=verified |
//            expect=MISMATCH expected=<hex>] [verify=match|MISMATCH
//            readback=<hex> verify-read=<bytes>]
//
// (on one line), where <hex> is the root, or the word "incomplete" when
// part of the export could not be read (then error="..." follows), or
// "pending" before the first report.  unfolded= appears when writes landed
// in blocks already folded into the checksum (blkhash-fold), which made
// that many bytes unknown again: read= includes those not written again.
// expect= appears with blkhash-expect,
// verify= with blkhash-verify (verify=incomplete verify-error="..." if the
// read-back failed).  The export name comes from clients:
// it is quoted with every byte outside printable ASCII, the quote and the
// backslash escaped, and cut to 256 bytes, so a name cannot break the
// line or forge a second one.  man/nbdkit-blkhash-filter.pod documents
// the format; change both together.

#ifndef BLKHASH_FILTER_REPORT_H
#define BLKHASH_FILTER_REPORT_H

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "digest.h"

namespace blkhash::filter {

struct Report {
  std::string label;        // "sha256/64K"
  std::string export_name;  // as the client sent it
  uint64_t size = 0;
  std::optional<DigestValue> root;  // empty: incomplete
  uint64_t hashed_in_flight = 0;    // bytes hashed from client traffic
  uint64_t read_back = 0;           // bytes read from the plugin to finish
  uint64_t unfolded = 0;            // bytes unfolded by rewrites (or 0)
  std::string error;                // why it is incomplete

  std::optional<DigestValue> expected;  // blkhash-expect
  bool verify = false;                  // blkhash-verify was asked for
  std::optional<DigestValue> readback;  // the root read back
  uint64_t verify_read = 0;
  std::string verify_error;

  // The root differs from blkhash-expect, or from the read-back.
  bool mismatch() const;

  // The report line, without a trailing newline.
  std::string line() const;
};

// The description of an export with no report yet.
std::string pending_line(std::string_view label, std::string_view export_name,
                         uint64_t size);

// "name" with unsafe bytes escaped (see above), at most `limit` input bytes.
std::string quote(std::string_view text, size_t limit = 256);

// Writes a line to the log: stderr when nbdkit runs in the foreground,
// syslog when it runs in the background (its stderr is then /dev/null).
void log_line(const std::string& line);

// Replaces `path` atomically with `hex` and a newline: a temporary file
// in the same directory, given `mode`, written and synced, then rename().
// Returns an error message, or an empty string on success.
std::string write_result_file(const std::string& path, const std::string& hex,
                              unsigned mode);

// Removes a result file that no longer holds the current checksum.
void remove_result_file(const std::string& path);

}  // namespace blkhash::filter

#endif  // BLKHASH_FILTER_REPORT_H
