// Where a finished report goes.
//
// The report line to the log (log.h), whatever the verdict; an error line
// when the checksum is incomplete or mismatches; and the result file
// (result_file.h), replaced with the report's result_text() unless the
// verdict is incomplete, removed then or when it cannot be written.  The
// export description is the caller's (ExportState keeps the line).

#ifndef BLKHASH_FILTER_PUBLISH_H
#define BLKHASH_FILTER_PUBLISH_H

#include "config.h"
#include "report.h"

namespace blkhash::filter {

// False if a result file was wanted and could not be written (it is then
// removed; the caller may try again later).
bool publish(const Report& report, const Config& config);

}  // namespace blkhash::filter

#endif  // BLKHASH_FILTER_PUBLISH_H
