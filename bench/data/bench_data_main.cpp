// bench_data: the data-path benchmarks alone.
#include "bench/data/data_benchmarks.h"

#include <benchmark/benchmark.h>

int main(int argc, char** argv) {
  register_data_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
