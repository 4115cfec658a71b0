#pragma once
// Ctrl-C during `bachlab run`: the first SIGINT (or SIGTERM) asks the training to stop at
// its next batch, so the run can say where it stopped and how to resume it; a second one
// ends the process at once, as without bachlab. Outside an InterruptScope the signals keep
// their default action.

#include <filesystem>
#include <stdexcept>
#include <string>

namespace bachlab::host {

/// While alive, SIGINT and SIGTERM set the stop request instead of ending the process
/// (the first one only; the handlers they replaced are restored on destruction).
class InterruptScope {
 public:
  InterruptScope();
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;
};

/// The signal that asked to stop (SIGINT, SIGTERM), or 0.
int interrupt_signal();

/// Thrown where training notices a stop request. Not a bachlab::Error, so that nothing
/// taking an Error for one failed experiment among several carries on with the next.
class Interrupted : public std::runtime_error {
 public:
  Interrupted(int signal, std::string where);
  int signal() const { return signal_; }
  /// Where it stopped, e.g. "in epoch 5 of 12 of runs/x/20240101-120000/fold-2 (epochs 1-4
  /// are saved)".
  const std::string& where() const { return where_; }
  /// The folder `bachlab run --resume` continues: the outermost run folder that was being
  /// trained (a cross-validation's, not its fold's). Empty until a runner sets it.
  std::filesystem::path resume_dir;

 private:
  int signal_;
  std::string where_;
};

}  // namespace bachlab::host
