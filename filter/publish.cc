// See publish.h.

#include "publish.h"

#include <nbdkit-filter.h>

#include "log.h"
#include "result_file.h"

namespace blkhash::filter {

bool publish(const Report& report, const Config& config) {
  const std::string line = report.line();
  log_line(line);
  switch (report.verdict()) {
    case Verdict::kIncomplete:
      nbdkit_error("blkhash: export %s: checksum incomplete: %s",
                   quote(report.export_name).c_str(),
                   (report.root ? report.verify_error : report.error).c_str());
      break;
    case Verdict::kMismatch:
      nbdkit_error("blkhash: export %s: checksum MISMATCH: %s",
                   quote(report.export_name).c_str(), line.c_str());
      break;
    case Verdict::kMatch:
    case Verdict::kComputed:
      break;
  }
  if (config.result_file.empty()) return true;
  std::string problem =
      report.verdict() != Verdict::kIncomplete
          ? replace_result_file(config.result_file,
                                report.result_text(config.result_format),
                                config.result_file_mode)
          : remove_result_file(config.result_file);
  if (problem.empty()) return true;
  nbdkit_error("blkhash-file: %s", problem.c_str());
  return false;
}

}  // namespace blkhash::filter
