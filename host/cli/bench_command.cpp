// `bachlab bench`: runs the plugin benchmark program (bench/bench_plugins), and
// `bachlab bench compare A.json B.json` puts two of its result files side by side.
#include "host/cli/commands.h"

#include <bachlab/sdk/error.h>

#include <boost/dll/runtime_symbol_info.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <cerrno>
#include <cstring>
#include <map>

namespace bachlab::cli {

namespace fs = std::filesystem;

namespace {

fs::path find_bench_program() {
  std::error_code ec;
  fs::path exe_dir = boost::dll::program_location(ec).parent_path();
  for (const fs::path& candidate :
       {exe_dir / "bench" / "bench_plugins", exe_dir / ".." / "libexec" / "bachlab" / "bench_plugins"}) {
    if (fs::exists(candidate, ec)) return candidate;
  }
  throw Error("bench_plugins was not found next to " + exe_dir.string() +
              " (looked in bench/ and ../libexec/bachlab/); build it with `cmake --build --preset release "
              "--target bench_plugins`");
}

struct BenchResult {
  double time = 0;  // real time per iteration, in `unit`
  std::string unit;
  double items_per_second = 0;
};

std::map<std::string, BenchResult> read_results(const fs::path& file) {
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
  std::map<std::string, BenchResult> results;
  for (const auto& b : json["benchmarks"]) {
    if (b.value("run_type", "iteration") != "iteration" || b.contains("error_occurred")) continue;
    BenchResult r;
    r.time = b.value("real_time", 0.0);
    r.unit = b.value("time_unit", "ns");
    r.items_per_second = b.value("items_per_second", 0.0);
    results[b.value("name", "")] = r;
  }
  return results;
}

double to_seconds(double time, const std::string& unit) {
  static const std::map<std::string, double> scale = {{"ns", 1e-9}, {"us", 1e-6}, {"ms", 1e-3}, {"s", 1.0}};
  auto it = scale.find(unit);
  return it == scale.end() ? time : time * it->second;
}

std::string human_time(double seconds) {
  if (seconds >= 1) return fmt::format("{:.3g} s", seconds);
  if (seconds >= 1e-3) return fmt::format("{:.3g} ms", seconds * 1e3);
  if (seconds >= 1e-6) return fmt::format("{:.3g} us", seconds * 1e6);
  return fmt::format("{:.3g} ns", seconds * 1e9);
}

}  // namespace

std::string compare_bench_results(const fs::path& before, const fs::path& after) {
  auto a = read_results(before);
  auto b = read_results(after);
  size_t width = 9;
  for (const auto* results : {&a, &b})
    for (const auto& [name, r] : *results) width = std::max(width, name.size());
  std::string out = fmt::format("{:<{}}  {:>10}  {:>10}  {:>7}\n", "BENCHMARK", width, "BEFORE", "AFTER", "SPEEDUP");
  for (const auto& [name, ra] : a) {
    auto it = b.find(name);
    if (it == b.end()) {
      out += fmt::format("{:<{}}  {:>10}  {:>10}  {:>7}\n", name, width, human_time(to_seconds(ra.time, ra.unit)), "-", "-");
      continue;
    }
    double ta = to_seconds(ra.time, ra.unit), tb = to_seconds(it->second.time, it->second.unit);
    out += fmt::format("{:<{}}  {:>10}  {:>10}  {:>6.2f}x\n", name, width, human_time(ta), human_time(tb),
                       tb > 0 ? ta / tb : 0.0);
  }
  for (const auto& [name, rb] : b)
    if (!a.count(name))
      out += fmt::format("{:<{}}  {:>10}  {:>10}  {:>7}\n", name, width, "-", human_time(to_seconds(rb.time, rb.unit)), "-");
  out += "SPEEDUP = BEFORE time / AFTER time per iteration (real time); above 1 means AFTER is faster.\n";
  return out;
}

void add_bench_commands(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmark every plugin against the others of its kind");
  static std::string kind, filter, out;
  static int64_t size = 64, batch = 16, threads = 0;
  static double min_time = 0;
  bench->add_option("--kind", kind, "Only plugins of this kind, or \"data\" for the data path")
      ->check(CLI::IsMember({"model", "augmentation", "optimizer", "tuner", "data"}));
  bench->add_option("--filter", filter, "Only benchmarks whose name matches this regex");
  bench->add_option("--out", out, "Also write the results as JSON to this file");
  bench->add_option("--size", size, "Input height and width for models and augmentations")->check(CLI::Range(8, 4096));
  bench->add_option("--batch", batch, "Images per batch")->check(CLI::Range(1, 4096));
  bench->add_option("--threads", threads, "LibTorch threads (0: every core)")->check(CLI::Range(0, 1024));
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
