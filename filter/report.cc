// See report.h.

#include "report.h"

#include <algorithm>

namespace blkhash::filter {

namespace {

// "text" with the quote and the backslash escaped, and every byte outside
// printable ASCII written as `hex_prefix` and two hex digits; at most
// `limit` input bytes, "..." marking a cut.
std::string escaped(std::string_view text, size_t limit,
                    std::string_view hex_prefix) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  size_t n = std::min(text.size(), limit);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      out += hex_prefix;
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

}  // namespace

std::string quote(std::string_view text, size_t limit) {
  return escaped(text, limit, "\\x");
}

std::string json_string(std::string_view text) {
  return escaped(text, text.size(), "\\u00");
}

const char* verdict_name(Verdict verdict) {
  switch (verdict) {
    case Verdict::kMatch: return "match";
    case Verdict::kMismatch: return "mismatch";
    case Verdict::kIncomplete: return "incomplete";
    case Verdict::kComputed: return "computed";
  }
  return "incomplete";
}

std::string expect_field(const DigestValue& value, const DigestValue& expected,
                         std::string_view prefix) {
  const std::string p(prefix);
  return value == expected
             ? p + "expect=verified"
             : p + "expect=MISMATCH " + p + "expected=" + expected.hex();
}

Verdict Report::verdict() const {
  if (!root || (verify && !readback) || (!whole_name.empty() && !whole))
    return Verdict::kIncomplete;
  if ((expected && *root != *expected) || (verify && *readback != *root) ||
      !bad_blocks.empty() ||
      (whole_expected && *whole != *whole_expected))
    return Verdict::kMismatch;
  return expected || verify || whole_expected ? Verdict::kMatch
                                              : Verdict::kComputed;
}

std::string Report::line() const {
  std::string out = "blkhash: " + label + " ";
  out += root ? root->hex() : "incomplete";
  out += " export=" + quote(export_name);
  out += " size=" + std::to_string(size);
  if (!whole_only) blkhash_fields(out);
  if (!whole_name.empty()) {
    out += " whole=" + whole_name + ":" + (whole ? whole->hex() : "incomplete");
    out += " whole-read=" + std::to_string(whole_read);
    if (!whole) {
      out += " whole-error=" + quote(whole_error);
    } else if (whole_expected) {
      out += " " + expect_field(*whole, *whole_expected, "whole-");
    }
  }
  out += " verdict=";
  out += verdict_name(verdict());
  return out;
}

void Report::blkhash_fields(std::string& out) const {
  out += " hashed=" + std::to_string(hashed_in_flight);
  out += " read=" + std::to_string(read_back);
  if (unfolded > 0) out += " unfolded=" + std::to_string(unfolded);
  if (!root) out += " error=" + quote(error);
  if (expected && root) out += " " + expect_field(*root, *expected);
  if (!bad_blocks.empty()) out += " bad-blocks=" + quote(bad_blocks);
  if (verify && root) {
    if (readback) {
      out += *readback == *root ? " verify=match" : " verify=MISMATCH";
      out += " readback=" + readback->hex();
    } else {
      out += " verify=incomplete verify-error=" + quote(verify_error);
    }
    out += " verify-read=" + std::to_string(verify_read);
  }
}

std::string Report::result_text(ResultFormat format) const {
  const std::string hex = root ? root->hex() : "";
  switch (format) {
    case ResultFormat::kHex:
      return hex + "\n";
    case ResultFormat::kSum: {
      // Like sha256sum's "-" for standard input; a name that would break
      // the line is quoted as in the report line.
      std::string name = export_name.empty() ? "-" : export_name;
      if (quote(name) != "\"" + name + "\"") name = quote(name);
      return hex + "  " + name + "\n";
    }
    case ResultFormat::kJson:
      break;
  }
  auto hex_or_null = [](const std::optional<DigestValue>& value) {
    return value ? json_string(value->hex()) : std::string("null");
  };
  std::string out = "{\"algorithm\": " + json_string(digest);
  out += ", \"block_size\": " + std::to_string(block_size);
  out += ", \"checksum\": " + hex_or_null(root);
  out += ", \"size\": " + std::to_string(size);
  out += ", \"export\": " + json_string(export_name);
  out += ", \"verdict\": " + json_string(verdict_name(verdict()));
  out += ", \"expected\": " + hex_or_null(expected);
  if (verify) out += ", \"readback\": " + hex_or_null(readback);
  if (!whole_name.empty()) {
    out += ", \"whole\": {\"algorithm\": " + json_string(whole_name);
    out += ", \"checksum\": " + hex_or_null(whole);
    out += ", \"expected\": " + hex_or_null(whole_expected);
    out += ", \"read\": " + std::to_string(whole_read) + "}";
  }
  out += ", \"hashed\": " + std::to_string(hashed_in_flight);
  out += ", \"read\": " + std::to_string(read_back);
  out += "}\n";
  return out;
}

std::string pending_line(std::string_view label, std::string_view export_name,
                         uint64_t size) {
  return "blkhash: " + std::string(label) + " pending export=" +
         quote(export_name) + " size=" + std::to_string(size) +
         " (not computed yet)";
}

}  // namespace blkhash::filter
