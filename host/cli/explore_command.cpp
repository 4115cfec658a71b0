// `bachlab explore` and `bachlab prepare`: the data path from the command line, on an
// experiment config or directly on a folder of photos.
#include "host/cli/commands.h"
#include "host/config/config.h"
#include "host/data/data_config.h"
#include "host/data/dataset.h"
#include "host/data/explore.h"
#include "host/data/prepare.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>

#include <chrono>
#include <iostream>

namespace bachlab::cli {

namespace {

struct PhotosToExplore {
  /// The config file, then any KEY=VALUE overrides (as `bachlab run` takes them).
  std::vector<std::string> config;
  std::string data;
  std::string layout = "bach";
  std::vector<std::string> classes;
  std::string cache_dir;
  int workers = 0;
};

void add_source_options(CLI::App* command, PhotosToExplore& source) {
  command->add_option("config", source.config,
                      "Experiment config (TOML) whose [data] table names the photos, then KEY=VALUE overrides");
  auto* data = command->add_option("--data", source.data, "A dataset folder instead of a config");
  command->add_option("--layout", source.layout, "With --data: bach (Photos/<Class>/ + CSV) or folders")
      ->check(CLI::IsMember(host::kPhotoLayouts.names()));
  command->add_option("--classes", source.classes,
                      "With --data: class names in label order (default: BACH's four for bach, every subfolder "
                      "for folders)")
      ->delimiter(',');
  command->add_option("--cache-dir", source.cache_dir, "Preprocessing cache folder (default: [data] cache_dir)");
  command->add_option("--workers", source.workers, "Decoding threads, 0 = every core")->check(CLI::NonNegativeNumber);
  data->excludes(command->get_option("config"));
}

// The data settings from a config (validated in full) or from --data and its options.
host::DataConfig resolve(const PhotosToExplore& source) {
  host::DataConfig config;
  if (!source.config.empty()) {
    const ConfigArguments given = split_config_arguments(source.config);
    if (given.files.size() != 1)
      throw UsageError(fmt::format("give one config file, then KEY=VALUE overrides (got {} files)", given.files.size()));
    host::Config loaded = host::Config::load(given.files.front(), given.overrides);
    config = host::read_data_config(loaded);
    // Only [data] is read here, so only its tables' problems are reported.
    std::vector<std::string> problems;
    for (const char* table : {"data", "data.synthetic", "data.split"})
      for (const auto& problem : loaded.table(table).problems()) problems.push_back(problem);
    if (!problems.empty()) {
      std::string message;
      for (const auto& problem : problems) message += (message.empty() ? "" : "\n") + problem;
      throw Error(message);
    }
  } else if (!source.data.empty()) {
    config.root = source.data;
    config.layout = host::kPhotoLayouts.value(source.layout);
    if (!source.classes.empty()) {
      config.classes = source.classes;
    } else if (source.layout == "folders") {
      config.classes.clear();
    }
  } else {
    throw Error("name the photos: give an experiment config (bachlab explore exp.toml) or a folder (bachlab explore "
                "--data DIR)");
  }
  if (!source.cache_dir.empty()) config.cache_dir = source.cache_dir;
  if (source.workers > 0) config.workers = source.workers;
  return config;
}

}  // namespace

void add_data_commands(CLI::App& app) {
  static PhotosToExplore explore_source;
  static host::ExploreOptions explore;
  explore.out = "exploration";
  auto* explore_command = app.add_subcommand(
      "explore", "Describe a dataset: class balance, sizes and modes, samples, mean images, histograms");
  add_source_options(explore_command, explore_source);
  explore_command->add_option("--out", explore.out, "Folder for report.md, report.html and the pictures")
      ->capture_default_str();
  explore_command->add_option("--samples", explore.samples_per_class, "Random photos shown per class")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  explore_command->add_option("--seed", explore.seed, "Seed for the random samples")->capture_default_str();
  on_run(explore_command, [] {
    host::DataConfig config = resolve(explore_source);
    // Exploring is how bad files are found, so they are listed in the report, not fatal.
    config.on_bad_image = host::BadImages::skip;
    explore.workers = config.workers;
    const host::Dataset dataset = host::discover_dataset(config);
    // Only the exploring itself: discovering may generate a synthetic set, whose options
    // come from the config, not from explore's flags.
    const host::ExploreSummary summary =
        naming_flags({{"out", "--out"}}, [&] { return host::explore_dataset(dataset, explore); });
    int64_t photos = 0;
    for (int64_t count : summary.class_counts) photos += count;
    std::cout << fmt::format("explored {} photos in {} classes", photos, dataset.classes.size());
    if (!summary.problems.empty()) std::cout << fmt::format(", {} files left out (see the report)", summary.problems.size());
    std::cout << "\n";
    for (const auto& file : summary.files) std::cout << "  " << file.string() << "\n";
    return 0;
  });

  static PhotosToExplore prepare_source;
  static int size = 0;
  auto* prepare_command = app.add_subcommand(
      "prepare", "Decode and resize every photo into the preprocessing cache, so runs start from it");
  add_source_options(prepare_command, prepare_source);
  prepare_command->add_option("--size", size, "Square input size (default: [data] image_size, 224)")
      ->check(CLI::Range(8, 4096));
  on_run(prepare_command, [] {
    host::DataConfig config = resolve(prepare_source);
    if (size > 0) config.image_size = size;
    // A stain target fitted on the training photos depends on the split or fold, which
    // only a run knows: what can be cached ahead is what a run prepares first, the photos
    // before stain normalisation.
    const bool per_split_target = host::stain_target_from_training(config);
    if (per_split_target) config.stain_normalize = host::StainMethod::none;
    const host::Dataset dataset = host::discover_dataset(config);  // draws a synthetic set: not timed
    const auto start = std::chrono::steady_clock::now();
    const host::PreparedData prepared = host::prepare_dataset(dataset, config);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const int64_t n = prepared.images.size(0);
    std::cout << fmt::format("prepared {} photos ({}: {}x{}) in {:.2f} s ({:.1f} photos/s): {}\n", n,
                             host::prepared_size_text(config), prepared.images.size(3), prepared.images.size(2),
                             seconds, double(n) / seconds, prepared.cache_note);
    if (per_split_target)
      std::cout << "stain normalisation not applied: its target is fitted on each split's or fold's training photos "
                   "when the run starts (set [data] stain_reference to fix one target and cache normalised photos)\n";
    if (!prepared.cache_file.empty()) std::cout << "cache: " << prepared.cache_file.string() << "\n";
    for (const auto& skipped : prepared.dataset.skipped) std::cout << "skipped " << skipped << "\n";
    return 0;
  });
}

}  // namespace bachlab::cli
