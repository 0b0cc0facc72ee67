// Where report lines go: wherever nbdkit sends its own messages.
//
// nbdkit has no info-level log call for filters (nbdkit_error adds
// "error:", nbdkit_debug prints only with -v), so report lines are
// written here, to the destination nbdkit's --log chose:
//
//   --log=stderr    standard error, as "nbdkit: <line>"
//   --log=syslog    syslog, facility daemon (as nbdkit), priority notice
//   --log=null      nowhere
//   (default)       syslog if nbdkit forked into the background, else
//                   standard error (-f, --run, -s, socket activation)
//
// nbdkit does not tell filters its --log choice, so it is read from the
// server's command line (/proc/self/cmdline) once, by init_log().  Nor
// does it say whether it forked into the background: it did if the
// process changed between .get_ready and .after_fork (note_fork()) other
// than for --run (whose command runs in the parent, the server in a
// child).

#ifndef BLKHASH_FILTER_LOG_H
#define BLKHASH_FILTER_LOG_H

#include <string>
#include <string_view>
#include <vector>

namespace blkhash::filter {

enum class LogTo { kDefault, kStderr, kSyslog, kNull };

// nbdkit's --log choice in its arguments (argv[0] first): the last
// --log=X or "--log X"; kDefault if none or unknown.
LogTo log_choice(const std::vector<std::string>& args);

// Reads the choice from /proc/self/cmdline.  Call once, single-threaded,
// in .get_ready.
void init_log();

// Call in .after_fork: learns whether nbdkit forked into the background.
void note_fork();

// Writes one report line (no newline) to the destination.  Thread safe:
// one write() per line, so lines never interleave.
void log_line(const std::string& line);

}  // namespace blkhash::filter

#endif  // BLKHASH_FILTER_LOG_H
