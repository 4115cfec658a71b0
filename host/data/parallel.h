#pragma once
// Work spread over every core with one progress line, for the long loops of the data path
// (decoding 400 photos, exploring them). Items are handed out one at a time from a shared
// counter, so a slow photo never leaves a core idle behind a fixed chunk.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>

namespace bachlab::host {

/// The worker count to use: `requested`, or every core when 0.
int resolve_workers(int requested);

/// A progress line's text: "decoding photos 120/400 [#######.................]  30% 87.1/s
/// ETA 3.2s" (the time left at the rate so far); `final`: "... in 4.6s" instead.
std::string progress_line(const std::string& label, size_t done, size_t total, double seconds, bool final);

/// A single self-overwriting progress_line() on stderr. Shown only when stderr is a
/// terminal (logs and tests stay clean) and only once the work has run for half a second,
/// so quick work prints nothing. Every long step of the data path, prediction and
/// validation draws one. `transient`: the line is erased when done (steps repeated every
/// epoch) instead of left with its total time.
class Progress {
 public:
  Progress(std::string label, size_t total, bool transient = false);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  /// Marks `count` more items done; safe from any thread.
  void advance(size_t count = 1);
  /// Ends the line (prints the final count if the line was shown).
  void finish();

 private:
  void draw(size_t done, bool final);

  std::string label_;
  size_t total_;
  bool transient_;
  bool enabled_;
  bool shown_ = false;
  bool finished_ = false;
  std::atomic<size_t> done_{0};
  std::mutex mutex_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

/// Runs body(index, worker) for index in [0, count) on `workers` threads (worker in
/// [0, workers)); body must not throw. With one worker it runs on the calling thread.
void parallel_for(size_t count, int workers, const std::function<void(size_t index, int worker)>& body);

}  // namespace bachlab::host
