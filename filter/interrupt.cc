// See interrupt.h.
//
// The handler only touches a lock-free atomic and calls nbdkit's handler
// (which writes to a pipe): both are async-signal-safe.

#include "interrupt.h"

#include <atomic>
#include <csignal>

namespace blkhash::filter {

namespace {

std::atomic<int> signals_seen{0};
static_assert(std::atomic<int>::is_always_lock_free);

// nbdkit's handlers, written once by install_interrupt_handlers() before
// any signal is counted, then only read by on_signal().
struct sigaction previous_term, previous_int;

void on_signal(int sig) {
  signals_seen.fetch_add(1);
  const struct sigaction& previous =
      sig == SIGTERM ? previous_term : previous_int;
  if (previous.sa_flags & SA_SIGINFO) return;  // nbdkit uses sa_handler
  if (previous.sa_handler != SIG_IGN && previous.sa_handler != SIG_DFL)
    previous.sa_handler(sig);
  else if (previous.sa_handler == SIG_DFL) {
    signal(sig, SIG_DFL);
    raise(sig);
  }
}

}  // namespace

void install_interrupt_handlers() {
  struct sigaction action = {};
  action.sa_handler = on_signal;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, &previous_term);
  sigaction(SIGINT, &action, &previous_int);
}

bool reports_interrupted() { return signals_seen.load() >= 2; }

}  // namespace blkhash::filter
