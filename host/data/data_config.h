#pragma once
// The [data] table of an experiment: where the photos are, how they are laid out, how they
// become tensors, and how they are split. Read once, validated once (see docs/data.md).

#include "host/config/config.h"
#include "host/data/stain_method.h"

#include <bachlab/sdk/param_table.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace bachlab::host {

/// [data.synthetic]: the built-in generated set used when source = "synthetic".
struct SyntheticDataOptions {
  /// Images per class. Default: 20.
  int per_class = 20;
  /// Image size in pixels. Default: 256x192 (BACH's 4:3 at one eighth).
  int width = 256;
  int height = 192;
  /// Generator seed. Default: 0.
  uint64_t seed = 0;
  /// "default" (the classes differ in architecture) or "nuclear" (Benign and InSitu share
  /// architecture and differ only in their nuclei, with strong stain variation; see
  /// docs/synthetic-data.md). Default: "default".
  std::string variant = "default";
};

/// [data.split] group: how k-fold keeps related photos together.
///   none   photos dealt to folds at random
///   block  each class's photos in file-name order, cut into contiguous runs (block_kfold()
///          in split.h; BACH numbers a slide's photos consecutively, so this keeps a slide's
///          photos out of its own validation fold)
///   csv    each photo's group (patient or slide id) from the third column of the BACH
///          ground-truth CSV; a group lies wholly in one fold (group_kfold() in split.h)
enum class FoldGrouping { none, block, csv };
inline const Choice<FoldGrouping> kFoldGroupings{
    {"none", FoldGrouping::none}, {"block", FoldGrouping::block}, {"csv", FoldGrouping::csv}};

/// [data] normalize: the model's input as [0,1] pixels (as the study), or standardised with
/// the per-channel mean and standard deviation of the training split.
enum class InputScaling { unit, standardize };
inline const Choice<InputScaling> kInputScalings{{"unit", InputScaling::unit},
                                                 {"standardize", InputScaling::standardize}};

/// [data] on_bad_image: stop at bad images, listing all of them, or leave them out and list
/// them in the run summary.
enum class BadImages { error, skip };
inline const Choice<BadImages> kBadImages{{"error", BadImages::error}, {"skip", BadImages::skip}};

/// [data.split]: how the photos are divided for training.
struct SplitOptions {
  /// Fractions per part, each in 0..1, summing to 1. Default: 0.7 / 0.15 / 0.15.
  double train = 0.7;
  double val = 0.15;
  double test = 0.15;
  /// Shuffle seed. Default: the experiment's seed.
  uint64_t seed = 0;
  /// 0 = one train/val/test split; k >= 2 = stratified k-fold, each fold held out once as
  /// validation with no test part. Default: 0.
  int folds = 0;
  /// Default: none.
  FoldGrouping group = FoldGrouping::none;
};

/// [data] source: photos on disk under `root`, or the built-in generated set.
enum class DataSource { folder, synthetic };
inline const Choice<DataSource> kDataSources{{"folder", DataSource::folder}, {"synthetic", DataSource::synthetic}};

/// [data] layout: <root>/Photos/<Class>/*.tif + microscopy_ground_truth.csv (root may also be
/// Photos/ itself), or <root>/<class>/*.
enum class PhotoLayout { bach, folders };
inline const Choice<PhotoLayout> kPhotoLayouts{{"bach", PhotoLayout::bach}, {"folders", PhotoLayout::folders}};

struct DataConfig {
  /// Default: folder.
  DataSource source = DataSource::folder;
  /// Dataset folder, relative paths taken from the config file's folder. Required for
  /// source = "folder".
  std::filesystem::path root;
  /// Default: bach.
  PhotoLayout layout = PhotoLayout::bach;
  /// Class names; a class's index is its position. Default: Normal, Benign, InSitu,
  /// Invasive. Empty means "every subfolder, sorted" (only `bachlab explore --data` uses
  /// that, for a folder whose classes nobody has named).
  std::vector<std::string> classes;
  /// Side of the square every photo is resized to (aspect ratio not kept), used when
  /// `scale` is 0. Default: 224.
  int image_size = 224;
  /// In (0, 1]: every photo is resized by this factor instead, keeping its aspect ratio (0.5 turns
  /// 2048x1536 into 1024x768); all photos of a set must then share one size. When set it
  /// takes precedence over image_size for the prepared images. Default: 0 (off).
  double scale = 0;
  /// The side of a photo's pixel as taken, in micrometres (BACH: 0.42), for the scale bar
  /// on heatmaps; 0 = unknown (no bar). Default: 0.
  double microns_per_pixel = 0;
  /// Stain normalisation applied to each prepared photo before it is cached. Default: none.
  StainMethod stain_normalize = StainMethod::none;
  /// A photo to fit the stain target on; empty = fit it on the training photos of each
  /// split or fold. Default: empty.
  std::filesystem::path stain_reference;
  /// Default: unit.
  InputScaling normalize = InputScaling::unit;
  /// Default: error.
  BadImages on_bad_image = BadImages::error;
  /// Where prepared tensors and the synthetic set are kept. Default: default_cache_dir().
  std::filesystem::path cache_dir;
  /// Decoding threads; 0 = every core. Default: 0.
  int workers = 0;
  /// The most pixels a photo may have, checked from its header before decoding (see
  /// kDefaultMaxPixels in image_decode.h). Default: 2^28.
  uint64_t max_pixels = 0;
  SyntheticDataOptions synthetic;
  SplitOptions split;
  /// The config file the settings came from, for messages; empty when made in code.
  std::string origin;
  /// Where `root` was set ("configs/base.toml:4", "command line"), for messages about the
  /// folder; empty when made in code.
  std::string root_from;
  /// What the run should say about how the settings were read (a run prints them as
  /// warnings), e.g. folds replacing the fractions of an extended file.
  std::vector<std::string> notes;
  /// [data.split] folds, set in a later layer than train/val/test, replaced them: the run's
  /// saved config leaves the fractions out (open_config), so it reads back as it ran.
  bool fractions_replaced = false;

  DataConfig();
};

/// True when the stain target must be fitted on the training photos (stain normalisation on,
/// no stain_reference): the runner then fits it per split or fold with fit_stain_target().
bool stain_target_from_training(const DataConfig& config);

/// "128x128" for a square resize, "scale 0.5" for a rescale: for logs and messages.
std::string prepared_size_text(const DataConfig& config);

/// Normal, Benign, InSitu, Invasive: BACH's classes in the study's label order.
const std::vector<std::string>& default_bach_classes();

/// $XDG_CACHE_HOME/bachlab, else ~/.cache/bachlab, else <temp>/bachlab-cache: a user
/// folder rather than one beside the photos, because datasets are often read-only and
/// shared, and the cache is keyed by absolute paths so datasets never collide in it.
std::filesystem::path default_cache_dir();

/// Reads [data], [data.synthetic] and [data.split]. Every problem is recorded in the
/// tables' Params rather than thrown, so config.check() reports all of them at once; call
/// it before using the result. `experiment_seed` is the split seed when [data.split] has none.
DataConfig read_data_config(Config& config, uint64_t experiment_seed = 0);

/// The same from the three tables directly (config-less callers and tests). `latest_file`
/// is the config file itself (over the files it extends), for [data.split] folds replacing
/// an extended file's fractions; empty: only overrides (no line) replace them.
DataConfig read_data_config(sdk::ParamTable& data, sdk::ParamTable& synthetic, sdk::ParamTable& split,
                            uint64_t experiment_seed = 0, const std::string& latest_file = "");

}  // namespace bachlab::host
