#include "host/data/parallel.h"

#include "host/util/time_text.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <thread>
#include <vector>

namespace bachlab::host {

int resolve_workers(int requested) {
  if (requested > 0) return requested;
  return std::max(1, int(std::thread::hardware_concurrency()));
}

Progress::Progress(std::string label, size_t total, bool transient)
    : label_(std::move(label)),
      total_(total),
      transient_(transient),
      enabled_(isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() { finish(); }

void Progress::advance(size_t count) {
  size_t done = done_.fetch_add(count) + count;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (now - start_ < std::chrono::milliseconds(500)) return;
  std::unique_lock lock(mutex_, std::try_to_lock);
  if (!lock.owns_lock() || finished_) return;
  if (shown_ && now - last_draw_ < std::chrono::milliseconds(100) && done < total_) return;
  last_draw_ = now;
  draw(done, false);
}

void Progress::finish() {
  std::lock_guard lock(mutex_);
  if (finished_) return;
  finished_ = true;
  if (shown_) draw(done_.load(), true);
}

std::string progress_line(const std::string& label, size_t done, size_t total, double seconds, bool final) {
  const int width = 24;
  const int filled = total ? int(width * std::min(done, total) / total) : width;
  const std::string bar = std::string(size_t(filled), '#') + std::string(size_t(width - filled), '.');
  std::string line = fmt::format("{} {}/{} [{}] {:3d}% {:.1f}/s", label, done, total, bar,
                                 total ? int(100 * std::min(done, total) / total) : 100,
                                 seconds > 0 ? double(done) / seconds : 0.0);
  if (final) return line + fmt::format(" in {}", format_duration(seconds));
  // The rate so far, over what is left.
  if (done > 0 && done < total)
    line += " ETA " + format_duration(seconds / static_cast<double>(done) * static_cast<double>(total - done));
  return line;
}

void Progress::draw(size_t done, bool final) {
  shown_ = true;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  // "\x1b[K" clears what a longer line left; a transient line leaves nothing behind.
  const std::string line = final && transient_ ? "\r\x1b[K"
                           : "\r" + progress_line(label_, done, total_, seconds, final) + (final ? "\x1b[K\n" : "\x1b[K");
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

void parallel_for(size_t count, int workers, const std::function<void(size_t index, int worker)>& body) {
  workers = std::max(1, std::min<int>(workers, int(std::max<size_t>(count, 1))));
  if (workers == 1) {
    for (size_t i = 0; i < count; ++i) body(i, 0);
    return;
  }
  std::atomic<size_t> next{0};
  auto run = [&](int worker) {
    for (size_t i = next.fetch_add(1); i < count; i = next.fetch_add(1)) body(i, worker);
  };
  std::vector<std::thread> threads;
  for (int w = 1; w < workers; ++w) threads.emplace_back(run, w);
  run(0);
  for (auto& t : threads) t.join();
}

}  // namespace bachlab::host
