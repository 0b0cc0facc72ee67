// A second SIGTERM or SIGINT stops the reports.
//
// The first SIGTERM or SIGINT starts nbdkit's orderly shutdown, whose
// final report is wanted: captive --run sends that first SIGTERM itself
// when its command ends, and "nbdkit ... --run true" relies on it.  While
// that report reads a large export nbdkit cannot be stopped any other
// way, so a second signal (systemd's stop sequence, a second Ctrl-C)
// interrupts every report: reading stops within one chunk, the report
// says incomplete, and no result file claims a value.
//
// install_interrupt_handlers() wraps nbdkit's own handlers (set before
// .after_fork) with one that counts the signals and then calls nbdkit's.

#ifndef BLKHASH_FILTER_INTERRUPT_H
#define BLKHASH_FILTER_INTERRUPT_H

namespace blkhash::filter {

// Call once, after nbdkit has set up its signal handlers (.after_fork).
void install_interrupt_handlers();

// True once a second SIGTERM/SIGINT has arrived: reports stop.
bool reports_interrupted();

}  // namespace blkhash::filter

#endif  // BLKHASH_FILTER_INTERRUPT_H
