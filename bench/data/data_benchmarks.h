#pragma once
// The data-path benchmarks (bench/data/bench_data.cpp), registered by name under "data/".

/// Registers data/prepare_cold, data/prepare_from_cache, data/decode_resize_libtiff and
/// data/decode_resize_opencv with Google Benchmark.
void register_data_benchmarks();
