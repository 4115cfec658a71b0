// Decode + resize throughput on BACH-sized photos (2048x1536 TIFFs): cold preparation
// (no cache) against loading from the cache, and the libtiff path against OpenCV's imread
// path on the same files. At [data] scale 0.5 with Macenko stain normalisation: the cold
// preparation (compare with bench/data/prep_macenko.py on the same photos), one photo's
// normalisation alone, and loading a 400-photo cache (943 MB). The photos are drawn once per process (when the first of these
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
#include <opencv2/imgproc.hpp>
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
// Scale 0.5 with Macenko, target fitted beforehand on the first photo (as the Python side).
DataConfig macenko_config(const fs::path& cache, int workers) {
  DataConfig config = bench_config(cache, workers);
  config.scale = 0.5;
  config.stain_normalize = StainMethod::macenko;
  return config;
}

StainTarget first_photo_target(const DataConfig& config) {
  cv::Mat rgb, small;
  decode_image_rgb(bench_data().dataset.files.front(), rgb);
  cv::resize(rgb, small, cv::Size(), config.scale, config.scale, cv::INTER_AREA);
  return fit_stain_target(StainMethod::macenko, {small});
}

// The whole cold path: decode, shrink to half size, cache the unnormalised set, normalise
// every photo, cache the normalised set. Reported per photo.
void BM_PrepareColdScaleMacenko(benchmark::State& state) {
  const Dataset& dataset = bench_data().dataset;
  const fs::path cache = fresh_cache_dir("macenko");
  const DataConfig config = macenko_config(cache, int(state.range(0)));
  const StainTarget target = first_photo_target(config);
  for (auto _ : state) {
    state.PauseTiming();
    std::error_code ec;
    fs::remove_all(cache, ec);
    state.ResumeTiming();
    PreparedData prepared = prepare_dataset(dataset, config, target);
    if (prepared.from_cache) state.SkipWithError("expected a cold preparation");
    benchmark::DoNotOptimize(prepared.images.data_ptr());
  }
  const double photos = double(state.iterations()) * double(dataset.files.size());
  state.SetItemsProcessed(int64_t(photos));
  state.counters["ms_per_photo"] =
      benchmark::Counter(photos / 1000.0, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  std::error_code ec;
  fs::remove_all(cache, ec);
}

// Macenko alone on one 1024x768 photo (a BACH photo at scale 0.5), one thread.
void BM_MacenkoNormalise(benchmark::State& state) {
  const DataConfig config = macenko_config(fresh_cache_dir("unused"), 1);
  const StainTarget target = first_photo_target(config);
  cv::Mat rgb, small, out;
  decode_image_rgb(bench_data().dataset.files.back(), rgb);
  cv::resize(rgb, small, cv::Size(), 0.5, 0.5, cv::INTER_AREA);
  for (auto _ : state) {
    normalize_stain(small, target, out);
    benchmark::DoNotOptimize(out.data);
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}

// A second run at scale 0.5: 400 photos (the bench photos listed repeatedly), 943 MB of
// pixels, read from the cache in one block. Prepared once, cold, before timing.
void BM_LoadCacheScale(benchmark::State& state) {
  const Dataset& photos = bench_data().dataset;
  Dataset dataset = photos;
  dataset.files.clear();
  dataset.labels.clear();
  for (size_t i = 0; i < size_t(state.range(0)); ++i) {
    dataset.files.push_back(photos.files[i % photos.files.size()]);
    dataset.labels.push_back(photos.labels[i % photos.files.size()]);
  }
  const fs::path cache = fresh_cache_dir("load");
  DataConfig config = bench_config(cache, 0);
  config.scale = 0.5;
  prepare_dataset(dataset, config);
  for (auto _ : state) {
    PreparedData prepared = prepare_dataset(dataset, config);
    if (!prepared.from_cache) state.SkipWithError("expected a cache hit");
    benchmark::DoNotOptimize(prepared.images.data_ptr());
    state.counters["MB"] = double(prepared.images.numel()) / 1e6;
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * state.range(0));
  std::error_code ec;
  fs::remove_all(cache, ec);
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
  benchmark::RegisterBenchmark("data/prepare_cold_scale_macenko", BM_PrepareColdScaleMacenko)
      ->Arg(2)->ArgName("workers")->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
  benchmark::RegisterBenchmark("data/macenko_normalise_1024x768", BM_MacenkoNormalise)
      ->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark("data/load_cache_scale", BM_LoadCacheScale)
      ->Arg(400)->ArgName("photos")->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);
}
