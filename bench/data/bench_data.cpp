// Decode + resize throughput on BACH-sized photos (2048x1536 TIFFs): cold preparation
// (no cache) against loading from the cache, and the libtiff path against OpenCV's imread
// path on the same files. The photos are drawn once per process (when the first of these
// benchmarks runs) by the synthetic generator into a temp folder, or taken from
// BACHLAB_BENCH_DATA (a BACH-layout folder). Registered by bench_data and, as the "data"
// kind, by bench_plugins (`bachlab bench --kind data`).
//
//   BACHLAB_BENCH_PER_CLASS=100 build/<dir>/bench/bench_data      # 400 photos, as BACH
//   BACHLAB_BENCH_DATA=/path/to/BACH build/<dir>/bench/bench_data
#include "bench/data/data_benchmarks.h"

#include "host/data/data.h"
#include "host/data/parallel.h"
#include "host/data/synth.h"

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>

namespace {

namespace fs = std::filesystem;
using namespace bachlab::host;

struct BenchData {
  fs::path root;
  fs::path temp;  // removed at exit when we made it
  Dataset dataset;
  ~BenchData() {
    std::error_code ec;
    if (!temp.empty()) fs::remove_all(temp, ec);
  }
};

const BenchData& bench_data() {
  static BenchData data = [] {
    BenchData made;
    if (const char* given = std::getenv("BACHLAB_BENCH_DATA"); given && *given) {
      made.root = given;
    } else {
      const char* per_class = std::getenv("BACHLAB_BENCH_PER_CLASS");
      made.temp = fs::temp_directory_path() / ("bachlab-bench-data-" + std::to_string(getpid()));
      SynthOptions options;
      options.out = made.temp / "bach";
      options.per_class = per_class ? std::max(1, std::atoi(per_class)) : 10;
      options.width = 2048;
      options.height = 1536;
      options.seed = 1;
      std::cerr << "drawing " << 4 * options.per_class << " synthetic 2048x1536 photos into " << options.out << "\n";
      generate_synthetic_dataset(options);
      made.root = options.out;
    }
    DataConfig config;
    config.root = made.root;
    made.dataset = discover_dataset(config);
    return made;
  }();
  return data;
}

DataConfig bench_config(const fs::path& cache, int workers) {
  DataConfig config;
  config.root = bench_data().root;
  config.cache_dir = cache;
  config.image_size = 224;
  config.workers = workers;
  return config;
}

fs::path fresh_cache_dir(const char* name) {
  fs::path dir = fs::temp_directory_path() / (std::string("bachlab-bench-cache-") + name + "-" + std::to_string(getpid()));
  std::error_code ec;
  fs::remove_all(dir, ec);
  return dir;
}

// The whole cold path of a first run: decode, resize, write the cache.
void BM_PrepareCold(benchmark::State& state) {
  const Dataset& dataset = bench_data().dataset;
  const fs::path cache = fresh_cache_dir("cold");
  DataConfig config = bench_config(cache, int(state.range(0)));
  for (auto _ : state) {
    state.PauseTiming();
    std::error_code ec;
    fs::remove_all(cache, ec);
    state.ResumeTiming();
    PreparedData prepared = prepare_dataset(dataset, config);
    if (prepared.from_cache) state.SkipWithError("expected a cold preparation");
    benchmark::DoNotOptimize(prepared.images.data_ptr());
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(dataset.files.size()));
  std::error_code ec;
  fs::remove_all(cache, ec);
}

// A second run: stat every photo, read and check the cache file.
void BM_PrepareFromCache(benchmark::State& state) {
  const Dataset& dataset = bench_data().dataset;
  const fs::path cache = fresh_cache_dir("warm");
  DataConfig config = bench_config(cache, 0);
  prepare_dataset(dataset, config);
  for (auto _ : state) {
    PreparedData prepared = prepare_dataset(dataset, config);
    if (!prepared.from_cache) state.SkipWithError("expected a cache hit");
    benchmark::DoNotOptimize(prepared.images.data_ptr());
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(dataset.files.size()));
  std::error_code ec;
  fs::remove_all(cache, ec);
}

// Decode + resize only, through one decoder, on `workers` threads.
template <bool kOpenCv>
void BM_DecodeResize(benchmark::State& state) {
  const Dataset& dataset = bench_data().dataset;
  const int workers = int(state.range(0));
  std::vector<cv::Mat> full(static_cast<size_t>(workers)), small(static_cast<size_t>(workers));
  for (auto _ : state) {
    parallel_for(dataset.files.size(), workers, [&](size_t i, int w) {
      if (kOpenCv) {
        decode_image_rgb_opencv(dataset.files[i], full[size_t(w)]);
      } else {
        decode_image_rgb(dataset.files[i], full[size_t(w)]);
      }
      resize_square(full[size_t(w)], 224, small[size_t(w)]);
    });
    benchmark::DoNotOptimize(small[0].data);
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(dataset.files.size()));
}
}  // namespace

void register_data_benchmarks() {
  benchmark::RegisterBenchmark("data/prepare_cold", BM_PrepareCold)
      ->Arg(1)->Arg(2)->ArgName("workers")->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
  benchmark::RegisterBenchmark("data/prepare_from_cache", BM_PrepareFromCache)
      ->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark("data/decode_resize_libtiff", BM_DecodeResize<false>)
      ->Arg(1)->Arg(2)->ArgName("workers")->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
  benchmark::RegisterBenchmark("data/decode_resize_opencv", BM_DecodeResize<true>)
      ->Arg(1)->Arg(2)->ArgName("workers")->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
}
