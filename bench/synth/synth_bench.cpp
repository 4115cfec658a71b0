// Drawing cost of one synthetic image per size: the 2048x1536 case must stay well under a
// second so that the 400-image BACH-size set takes minutes, not hours.
#include "host/data/synth_drawing.h"

#include <benchmark/benchmark.h>
#include <opencv2/core.hpp>

namespace {

void BM_DrawSyntheticImage(benchmark::State& state) {
  // One thread, so the figure is per core and comparable with generate's per-image work.
  cv::setNumThreads(1);
  const int width = static_cast<int>(state.range(0)), height = static_cast<int>(state.range(1));
  const int class_index = static_cast<int>(state.range(2));
  uint64_t seed = 0;
  for (auto _ : state) benchmark::DoNotOptimize(bachlab::host::draw_synthetic_image(class_index, width, height, ++seed).data);
  state.SetLabel(bachlab::host::bach_classes()[class_index]);
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_DrawSyntheticImage)
    ->ArgsProduct({{32}, {24}, {0, 3}})
    ->ArgsProduct({{224}, {168}, {0, 3}})
    ->ArgsProduct({{2048}, {1536}, {0, 1, 2, 3}})
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
