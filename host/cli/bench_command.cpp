// `bachlab bench`: runs the plugin benchmark program (bench/bench_plugins), and
// `bachlab bench compare A.json B.json` puts two of its result files side by side.
#include "host/cli/commands.h"
#include "host/util/process.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <cerrno>
#include <cstring>
#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

namespace bachlab::cli {

namespace fs = std::filesystem;

namespace {

fs::path find_bench_program() {
  std::error_code ec;
  fs::path exe_dir = host::program_file(ec).parent_path();
  for (const fs::path& candidate :
       {exe_dir / "bench" / "bench_plugins", exe_dir / ".." / "libexec" / "bachlab" / "bench_plugins"}) {
    if (fs::exists(candidate, ec)) return candidate;
  }
  throw Error("bench_plugins was not found next to " + exe_dir.string() +
              " (looked in bench/ and ../libexec/bachlab/); build it with `cmake --build --preset release "
              "--target bench_plugins`");
}

// One benchmark's real time per iteration in seconds, one value per repetition.
using BenchTimes = std::map<std::string, std::vector<double>>;

double to_seconds(double time, const std::string& unit) {
  static const std::map<std::string, double> scale = {{"ns", 1e-9}, {"us", 1e-6}, {"ms", 1e-3}, {"s", 1.0}};
  auto it = scale.find(unit);
  return it == scale.end() ? time : time * it->second;
}

BenchTimes read_results(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw Error(file.string() + ": cannot read benchmark results");
  nlohmann::json json;
  try {
    in >> json;
  } catch (const nlohmann::json::exception& e) {
    throw Error(file.string() + ": not a Google Benchmark JSON file (" + e.what() + ")");
  }
  if (!json.contains("benchmarks") || !json["benchmarks"].is_array())
    throw Error(file.string() + ": no \"benchmarks\" list; expected the output of --out or --benchmark_out");
  // Every repetition's own entry; the aggregates (mean, median, stddev) are computed here
  // from them, so files with and without --benchmark_repetitions read alike.
  BenchTimes results;
  for (const auto& b : json["benchmarks"]) {
    if (b.value("run_type", "iteration") != "iteration" || b.contains("error_occurred")) continue;
    results[b.value("name", "")].push_back(to_seconds(b.value("real_time", 0.0), b.value("time_unit", "ns")));
  }
  return results;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// (max - min) / median over the repetitions; NaN for one repetition (no spread known).
double spread(const std::vector<double>& v) {
  if (v.size() < 2) return std::nan("");
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return (*hi - *lo) / median(v);
}

std::string human_time(double seconds) {
  if (seconds >= 1) return fmt::format("{:.3g} s", seconds);
  if (seconds >= 1e-3) return fmt::format("{:.3g} ms", seconds * 1e3);
  if (seconds >= 1e-6) return fmt::format("{:.3g} us", seconds * 1e6);
  return fmt::format("{:.3g} ns", seconds * 1e9);
}

std::string spread_text(double s) { return std::isfinite(s) ? fmt::format("{:.0f}%", 100 * s) : "-"; }

}  // namespace

std::string compare_bench_results(const fs::path& before, const fs::path& after) {
  const BenchTimes a = read_results(before);
  const BenchTimes b = read_results(after);
  size_t width = 9;
  for (const auto* results : {&a, &b})
    for (const auto& [name, times] : *results) width = std::max(width, name.size());
  const std::string row = "{:<{}}  {:>10}  {:>6}  {:>10}  {:>6}  {:>7}{}\n";
  std::string out = fmt::format(row, "BENCHMARK", width, "BEFORE", "SPREAD", "AFTER", "SPREAD", "SPEEDUP", "");
  size_t within_spread = 0;
  bool single = false;
  for (const auto& [name, ta] : a) {
    auto it = b.find(name);
    if (it == b.end()) {
      out += fmt::format(row, name, width, human_time(median(ta)), spread_text(spread(ta)), "-", "", "-", "");
      continue;
    }
    const double ma = median(ta), mb = median(it->second);
    const double sa = spread(ta), sb = spread(it->second);
    const double speedup = mb > 0 ? ma / mb : 0.0;
    single = single || !std::isfinite(sa) || !std::isfinite(sb);
    // A difference smaller than either side's own spread is not one this data can show.
    const bool noise = std::isfinite(sa) && std::isfinite(sb) && std::abs(speedup - 1.0) <= std::max(sa, sb);
    within_spread += noise ? 1 : 0;
    out += fmt::format(row, name, width, human_time(ma), spread_text(sa), human_time(mb), spread_text(sb),
                       fmt::format("{:.2f}x", speedup), noise ? "  ~" : "");
  }
  for (const auto& [name, tb] : b)
    if (!a.count(name))
      out += fmt::format(row, name, width, "-", "", human_time(median(tb)), spread_text(spread(tb)), "-", "");
  out += "BEFORE, AFTER: median real time per iteration over the repetitions; SPREAD: (slowest - fastest) / median; "
         "SPEEDUP = BEFORE / AFTER, above 1 means AFTER is faster.\n";
  if (within_spread > 0)
    out += fmt::format("warning: {} of the speedups (~) are within the spread of their repetitions, so they show no "
                       "difference; compare on a quiet machine with more repetitions (bachlab bench --repetitions 5)\n",
                       within_spread);
  if (single)
    out += "note: results of one repetition have no spread, so a difference may be machine load; run bachlab bench "
           "with --repetitions 3 or more\n";
  return out;
}

void add_bench_commands(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmark every plugin against the others of its kind");
  static std::string kind, filter, out;
  static int64_t size = 64, batch = 16, threads = 0, repetitions = 3;
  static double min_time = 0;
  bench->add_option("--kind", kind, "Only plugins of this kind, or \"data\" for the data path")
      ->check(CLI::IsMember({"model", "augmentation", "optimizer", "tuner", "data"}));
  bench->add_option("--filter", filter, "Only benchmarks whose name matches this regex");
  bench->add_option("--out", out, "Also write the results as JSON to this file");
  bench->add_option("--size", size, "Input height and width for models and augmentations")->check(CLI::Range(8, 4096));
  bench->add_option("--batch", batch, "Images per batch")->check(CLI::Range(1, 4096));
  bench->add_option("--threads", threads, "LibTorch threads (0: every core)")->check(CLI::Range(0, 1024));
  bench->add_option("--repetitions", repetitions,
                    "Runs of each benchmark; the table shows their mean, median, spread and coefficient of variation")
      ->check(CLI::Range(1, 1000));
  bench->add_option("--min-time", min_time,
                    "Seconds each benchmark runs at least (default 0.5); small values give quick, rough figures")
      ->check(CLI::Range(0.0, 3600.0));
  on_run(bench, []() -> int {
    fs::path program = find_bench_program();
    std::vector<std::string> args = {program.string(), "--size=" + std::to_string(size),
                                     "--batch=" + std::to_string(batch), "--threads=" + std::to_string(threads)};
    if (!kind.empty()) args.push_back("--kind=" + kind);
    if (!filter.empty()) args.push_back("--benchmark_filter=" + filter);
    if (min_time > 0) args.push_back(fmt::format("--benchmark_min_time={}", min_time));
    // Each repetition is kept in --out's JSON (for bench compare); the console shows the
    // aggregates only.
    args.push_back(fmt::format("--benchmark_repetitions={}", repetitions));
    if (repetitions > 1) args.push_back("--benchmark_display_aggregates_only=true");
    if (!out.empty()) {
      args.push_back("--benchmark_out=" + out);
      args.push_back("--benchmark_out_format=json");
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::cout.flush();
    execv(program.c_str(), argv.data());
    throw Error("cannot run " + program.string() + ": " + std::strerror(errno));
  });

  auto* compare = bench->add_subcommand("compare", "Show two result files (from --out) side by side with speedups");
  static std::string before, after;
  compare->add_option("BEFORE", before, "Results before the change (JSON)")->required();
  compare->add_option("AFTER", after, "Results after the change (JSON)")->required();
  on_run(compare, [] {
    std::cout << compare_bench_results(before, after);
    return 0;
  });
}

}  // namespace bachlab::cli
