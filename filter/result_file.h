// The result file (blkhash-file=PATH): file I/O only.
//
// The file never holds a stale value.  It is removed at start-up, so a
// value left by an earlier run that was killed is never read as current;
// each report that has a checksum replaces it atomically (a temporary
// file in the same directory, written, synced, renamed over it: readers
// see the old file or the new one, never a part); and a report that has
// no checksum, or whose file cannot be written (disk full), removes it.
// What goes in it is the report's business (Report::result_text()).
//
// Convention: functions return an error message, empty on success; the
// caller logs it.

#ifndef BLKHASH_FILTER_RESULT_FILE_H
#define BLKHASH_FILTER_RESULT_FILE_H

#include <string>

namespace blkhash::filter {

// The directory part of `path`: "." if none, "/" for "/name".
std::string directory_of(const std::string& path);

// Replaces `path` atomically with `text`; the new file gets `mode`.  On
// failure the old file is removed too (it no longer holds the current
// value).
std::string replace_result_file(const std::string& path,
                                const std::string& text, unsigned mode);

// Removes `path`; a file that does not exist is no error.
std::string remove_result_file(const std::string& path);

}  // namespace blkhash::filter

#endif  // BLKHASH_FILTER_RESULT_FILE_H
