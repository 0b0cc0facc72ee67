// The report line, against the lines the man page documents: every
// example line in man/nbdkit-blkhash-filter.pod is parsed field by field
// into a Report, which must print the very same line.  So a change to the
// format that the man page does not show (or the reverse) fails here.
// Also: quoting of export names, the verdict rules, the result formats.

#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "catch.h"

#include "report.h"

namespace blkhash::filter {
namespace {

std::vector<uint8_t> from_hex(const std::string& hex) {
  std::vector<uint8_t> bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    bytes.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return bytes;
}

DigestValue digest_of(const std::string& hex) { return DigestValue(from_hex(hex)); }

// The text between quotes at `pos` (which is at the opening quote), with
// the report's escapes undone; pos moves past the closing quote.
std::string unquote(const std::string& line, size_t& pos) {
  std::string out;
  for (pos++; pos < line.size() && line[pos] != '"'; pos++) {
    if (line[pos] != '\\') {
      out += line[pos];
    } else if (line[pos + 1] == 'x') {
      out += static_cast<char>(std::stoi(line.substr(pos + 2, 2), nullptr, 16));
      pos += 3;
    } else {
      out += line[++pos];
    }
  }
  pos++;
  return out;
}

uint32_t parse_block_size(const std::string& text) {
  uint32_t n = static_cast<uint32_t>(std::stoul(text));
  switch (text.back()) {
    case 'K': return n << 10;
    case 'M': return n << 20;
    default: return n;
  }
}

// A Report with the fields of a documented line; false if the line is a
// template (placeholders such as HEX) rather than an example.
bool parse_line(const std::string& line, Report* report) {
  static const std::regex head(
      R"(^blkhash: (([a-z0-9-]+)(?:/([0-9]+[KM]?))?) ([0-9a-f]+|incomplete) export=)");
  std::smatch m;
  if (!std::regex_search(line, m, head)) return false;
  report->label = m[1];
  report->digest = m[2];
  // No block size: blkhash-digest=none, the whole-image digest alone.
  report->whole_only = !m[3].matched;
  if (m[3].matched) report->block_size = parse_block_size(m[3]);
  if (m[4] != "incomplete") report->root = digest_of(m[4]);
  size_t pos = m[0].length();
  if (line[pos] != '"') return false;
  report->export_name = unquote(line, pos);
  while (pos < line.size()) {
    if (line[pos] != ' ') return false;
    size_t eq = line.find('=', ++pos);
    if (eq == std::string::npos) return false;
    std::string key = line.substr(pos, eq - pos);
    pos = eq + 1;
    std::string value;
    if (line[pos] == '"') {
      value = unquote(line, pos);
    } else {
      size_t end = line.find(' ', pos);
      if (end == std::string::npos) end = line.size();
      value = line.substr(pos, end - pos);
      pos = end;
    }
    auto number = [&] { return std::stoull(value); };
    if (key == "size") report->size = number();
    else if (key == "hashed") report->hashed_in_flight = number();
    else if (key == "read") report->read_back = number();
    else if (key == "unfolded") report->unfolded = number();
    else if (key == "error") report->error = value;
    else if (key == "expect" && value == "verified") report->expected = report->root;
    else if (key == "expect" && value == "MISMATCH") {}
    else if (key == "expected") report->expected = digest_of(value);
    else if (key == "bad-blocks") report->bad_blocks = value;
    else if (key == "verify") report->verify = true;
    else if (key == "readback") report->readback = digest_of(value);
    else if (key == "verify-read") report->verify_read = number();
    else if (key == "verify-error") report->verify_error = value;
    else if (key == "whole") {
      size_t colon = value.find(':');
      if (colon == std::string::npos) return false;
      report->whole_name = value.substr(0, colon);
      if (value.substr(colon + 1) != "incomplete")
        report->whole = digest_of(value.substr(colon + 1));
    }
    else if (key == "whole-read") report->whole_read = number();
    else if (key == "whole-error") report->whole_error = value;
    else if (key == "whole-expect" && value == "verified") report->whole_expected = report->whole;
    else if (key == "whole-expect" && value == "MISMATCH") {}
    else if (key == "whole-expected") report->whole_expected = digest_of(value);
    else if (key == "verdict") {}
    else return false;
  }
  return true;
}

// The example lines of the man page, without "nbdkit: " and any
// "nbdkit: PLUGIN[N]: " prefix.
std::vector<std::string> documented_lines(const std::string& kind) {
  const char* path = std::getenv("BLKHASH_MAN_PAGE");
  REQUIRE(path);
  std::ifstream pod(path);
  REQUIRE(pod);
  std::vector<std::string> lines;
  const std::regex example("^ +(nbdkit: )?(blkhash: [a-z0-9-]+(/[0-9]+[KM]?)? " + kind + ".*)$");
  std::smatch m;
  for (std::string text; std::getline(pod, text);)
    if (std::regex_match(text, m, example)) lines.push_back(m[2]);
  return lines;
}

TEST_CASE("every example report line of the man page is printed exactly",
          "[filter]") {
  int parsed = 0;
  for (const std::string& golden : documented_lines("([0-9a-f]{32,}|incomplete)")) {
    Report report;
    if (!parse_line(golden, &report)) continue;
    parsed++;
    INFO(golden);
    CHECK(report.line() == golden);
  }
  CHECK(parsed >= 4);  // the man page shows several; none found = broken
}

TEST_CASE("the pending line of the man page", "[filter]") {
  auto lines = documented_lines("pending");
  REQUIRE(!lines.empty());
  for (const std::string& golden : lines) {
    static const std::regex shape(
        R"re(^blkhash: (\S+) pending export="([^"]*)" size=([0-9]+) \(not computed yet\)$)re");
    std::smatch m;
    REQUIRE(std::regex_match(golden, m, shape));
    CHECK(pending_line(m[1].str(), m[2].str(), std::stoull(m[3])) == golden);
  }
}

TEST_CASE("export names are quoted so they cannot break or forge a line",
          "[filter]") {
  CHECK(quote("") == "\"\"");
  CHECK(quote("disk-1") == "\"disk-1\"");
  CHECK(quote("a\nblkhash: x") == "\"a\\x0ablkhash: x\"");
  CHECK(quote("q\"b\\") == "\"q\\\"b\\\\\"");
  CHECK(quote("caf\xc3\xa9\r\t\x7f") == "\"caf\\xc3\\xa9\\x0d\\x09\\x7f\"");
  std::string long_name(300, 'n');
  CHECK(quote(long_name) == "\"" + std::string(256, 'n') + "...\"");
  CHECK(json_string("a\"\\\n\xff") == "\"a\\\"\\\\\\u000a\\u00ff\"");
}

TEST_CASE("the verdict", "[filter]") {
  const DigestValue a = digest_of("aa"), b = digest_of("bb");
  Report report;
  CHECK(report.verdict() == Verdict::kIncomplete);
  report.root = a;
  CHECK(report.verdict() == Verdict::kComputed);
  report.expected = a;
  CHECK(report.verdict() == Verdict::kMatch);
  report.expected = b;
  CHECK(report.verdict() == Verdict::kMismatch);
  report.expected.reset();
  report.verify = true;
  CHECK(report.verdict() == Verdict::kIncomplete);  // read-back failed
  report.readback = a;
  CHECK(report.verdict() == Verdict::kMatch);
  report.readback = b;
  CHECK(report.verdict() == Verdict::kMismatch);
  report.root.reset();
  CHECK(report.verdict() == Verdict::kIncomplete);
  CHECK(std::string(verdict_name(Verdict::kComputed)) == "computed");

  Report whole;  // blkhash-whole / blkhash-expect=sha256:HEX
  whole.root = a;
  whole.whole_name = "sha256";
  CHECK(whole.verdict() == Verdict::kIncomplete);
  whole.whole = b;
  CHECK(whole.verdict() == Verdict::kComputed);
  whole.whole_expected = b;
  CHECK(whole.verdict() == Verdict::kMatch);
  whole.whole_expected = a;
  CHECK(whole.verdict() == Verdict::kMismatch);
}

TEST_CASE("result file formats", "[filter]") {
  Report report;
  report.digest = "sha256";
  report.block_size = 65536;
  report.label = "sha256/64K";
  report.size = 1048576;
  report.root = digest_of("0123abcd");
  report.hashed_in_flight = 5;
  report.read_back = 7;
  CHECK(report.result_text(ResultFormat::kHex) == "0123abcd\n");
  CHECK(report.result_text(ResultFormat::kSum) == "0123abcd  -\n");
  report.export_name = "disk";
  CHECK(report.result_text(ResultFormat::kSum) == "0123abcd  disk\n");
  report.export_name = "a\nb";
  CHECK(report.result_text(ResultFormat::kSum) == "0123abcd  \"a\\x0ab\"\n");
  report.export_name = "";
  report.expected = digest_of("0123abce");
  CHECK(report.result_text(ResultFormat::kJson) ==
        "{\"algorithm\": \"sha256\", \"block_size\": 65536, \"checksum\": "
        "\"0123abcd\", \"size\": 1048576, \"export\": \"\", \"verdict\": "
        "\"mismatch\", \"expected\": \"0123abce\", \"hashed\": 5, "
        "\"read\": 7}\n");
}

}  // namespace
}  // namespace blkhash::filter
