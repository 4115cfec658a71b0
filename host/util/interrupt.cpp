#include "host/util/interrupt.h"

#include <atomic>
#include <csignal>
#include <cstring>

namespace bachlab::host {

namespace {

std::atomic<int> requested{0};
struct sigaction previous_int, previous_term;

extern "C" void on_stop_signal(int signal) {
  // The first request is remembered; a second ends the process with the default action.
  if (requested.exchange(signal) != 0) {
    std::signal(signal, SIG_DFL);
    std::raise(signal);
  }
}

}  // namespace

InterruptScope::InterruptScope() {
  requested = 0;
  struct sigaction action;
  std::memset(&action, 0, sizeof action);
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, &previous_int);
  sigaction(SIGTERM, &action, &previous_term);
}

InterruptScope::~InterruptScope() {
  sigaction(SIGINT, &previous_int, nullptr);
  sigaction(SIGTERM, &previous_term, nullptr);
}

int interrupt_signal() { return requested.load(); }

Interrupted::Interrupted(int signal, std::string where)
    : std::runtime_error("interrupted " + where), signal_(signal), where_(std::move(where)) {}

}  // namespace bachlab::host
