#include "host/data/data_config.h"

#include "host/data/image_decode.h"

#include <bachlab/sdk/param_table.h>
#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <algorithm>
#include <set>

namespace bachlab::host {

namespace fs = std::filesystem;

namespace {

// The class list: strings (checked by Params), then the rules of a class list.
std::vector<std::string> read_class_list(sdk::ParamTable& params, const std::string& key,
                                         const std::vector<std::string>& fallback) {
  std::vector<std::string> out = params.get_string_list(key, fallback);
  if (!params.has(key)) return out;
  const auto* list = std::get_if<std::vector<sdk::Scalar>>(&params.raw(key));
  const bool all_strings = list && std::all_of(list->begin(), list->end(), [](const sdk::Scalar& item) {
                             return std::holds_alternative<std::string>(item);
                           });
  if (!all_strings) return out;  // Params has recorded the type problem
  const std::string raw = sdk::to_string(params.raw(key));
  if (out.size() < 2) {
    params.fail(key, fmt::format("must name at least 2 classes (was {})", raw));
    return fallback;
  }
  std::set<std::string> seen;
  for (const auto& name : out) {
    if (name.empty() || name.find_first_of("/\\") != std::string::npos || name == "." || name == "..") {
      params.fail(key, fmt::format("must hold folder-safe class names (was \"{}\" in {})", name, raw));
      return fallback;
    }
    if (!seen.insert(name).second) {
      params.fail(key, fmt::format("must not name a class twice (\"{}\" appears more than once in {})", name, raw));
      return fallback;
    }
  }
  return out;
}

}  // namespace

DataConfig::DataConfig()
    : classes(default_bach_classes()), cache_dir(default_cache_dir()), max_pixels(kDefaultMaxPixels) {}

const std::vector<std::string>& default_bach_classes() {
  static const std::vector<std::string> classes{"Normal", "Benign", "InSitu", "Invasive"};
  return classes;
}

bool stain_target_from_training(const DataConfig& config) {
  return config.stain_normalize != StainMethod::none && config.stain_reference.empty();
}

std::string prepared_size_text(const DataConfig& config) {
  if (config.scale > 0) return fmt::format("scale {:.6g}", config.scale);
  return fmt::format("{}x{}", config.image_size, config.image_size);
}

fs::path default_cache_dir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg == '/') return fs::path(xdg) / "bachlab";
  if (const char* home = std::getenv("HOME"); home && *home == '/') return fs::path(home) / ".cache" / "bachlab";
  return fs::temp_directory_path() / "bachlab-cache";
}

DataConfig read_data_config(sdk::ParamTable& data, sdk::ParamTable& synthetic, sdk::ParamTable& split, uint64_t experiment_seed,
                            const std::string& latest_file) {
  DataConfig out;
  out.source = kDataSources.read(data, "source", out.source);
  const std::string root = data.get_path("root", "");
  // Absolute, so that the paths a run records (metrics.json's left-out photos, photos.csv's
  // root) mean the same from any working folder.
  out.root = root.empty() ? fs::path() : fs::absolute(root).lexically_normal();
  if (data.has("root")) {
    const sdk::Origin at = data.origin("root");
    out.root_from = at.line > 0 ? at.file + ":" + std::to_string(at.line) : at.file;
  }
  if (out.source == DataSource::folder && root.empty())
    data.fail("root", "is required when source = \"folder\"; set it to the BACH folder (the one holding Photos/) "
                      "or to a folder with one subfolder per class, or use source = \"synthetic\"");
  out.layout = kPhotoLayouts.read(data, "layout", out.layout);
  out.classes = read_class_list(data, "classes", default_bach_classes());
  out.image_size = int(data.get_int("image_size", out.image_size, {8, 4096}));
  out.scale = data.get_float("scale", out.scale, {0.0, 1.0});
  if (data.has("scale") && out.scale > 0 && out.scale < 1.0 / 64)
    data.fail("scale", fmt::format("must be 0 (off) or at least 1/64 (was {:.6g}); a photo shrunk further is a few "
                                   "pixels",
                                   out.scale));
  out.microns_per_pixel = data.get_float("microns_per_pixel", out.microns_per_pixel, {0.0, 1000.0});
  out.stain_normalize = kStainMethods.read(data, "stain_normalize", out.stain_normalize);
  out.stain_reference = data.get_path("stain_reference", "");
  if (!out.stain_reference.empty() && out.stain_normalize == StainMethod::none)
    data.fail("stain_reference", "is set but stain_normalize = \"none\"; set stain_normalize = \"macenko\" or "
                                 "\"reinhard\", or remove stain_reference");
  data.describe("stain_reference", "", "fit on the training photos of each split or fold");
  out.normalize = kInputScalings.read(data, "normalize", out.normalize);
  out.on_bad_image = kBadImages.read(data, "on_bad_image", out.on_bad_image);
  if (std::string cache = data.get_path("cache_dir", ""); !cache.empty()) out.cache_dir = cache;
  data.describe("cache_dir", "", "$XDG_CACHE_HOME/bachlab, else ~/.cache/bachlab");
  out.workers = int(data.get_int("workers", out.workers, {0, 1024}));
  out.max_pixels = uint64_t(data.get_int("max_pixels", int64_t(out.max_pixels), {1, {}}));

  out.synthetic.per_class = int(synthetic.get_int("per_class", out.synthetic.per_class, {1, 100000}));
  out.synthetic.width = int(synthetic.get_int("width", out.synthetic.width, {8, 16384}));
  out.synthetic.height = int(synthetic.get_int("height", out.synthetic.height, {8, 16384}));
  out.synthetic.seed = uint64_t(synthetic.get_int("seed", 0, {0, {}}));
  out.synthetic.variant = synthetic.get_string("variant", out.synthetic.variant, {"default", "nuclear"});

  out.split.folds = int(split.get_int("folds", 0, {0, 1000}));
  if (out.split.folds == 1) split.fail("folds", "must be 0 (no k-fold) or at least 2 (was 1)");
  out.split.group = kFoldGroupings.read(split, "group", out.split.group);
  if (out.split.group == FoldGrouping::csv && out.layout != PhotoLayout::bach)
    split.fail("group", fmt::format("= \"csv\" reads each photo's group from the third column of the BACH "
                                    "ground-truth CSV (Photos/microscopy_ground_truth.csv), but [data] layout is "
                                    "\"{}\"; use layout = \"bach\" or group = \"block\"",
                                    kPhotoLayouts.name(out.layout)));
  if (out.split.group != FoldGrouping::none && out.split.folds < 2)
    split.fail("group", fmt::format("only applies to k-fold cross-validation (folds is {}); set folds = 5, say, or "
                                    "remove group",
                                    out.split.folds));
  const bool fractions_given = split.has("train") || split.has("val") || split.has("test");
  out.split.train = split.get_float("train", out.split.train, {0.0, 1.0});
  out.split.val = split.get_float("val", out.split.val, {0.0, 1.0});
  out.split.test = split.get_float("test", out.split.test, {0.0, 1.0});
  out.split.seed = uint64_t(split.get_int("seed", int64_t(experiment_seed & 0x7fffffffffffffffULL), {0, {}}));
  split.describe("seed", "", "the [experiment] seed");
  // Folds set in a later layer than the fractions replace them: `run configs/model4a.toml
  // data.split.folds=5` cross-validates although base.toml sets train/val/test. The later
  // layers are the command line (and an ensemble's overrides), which have no line, and the
  // config file itself over the files it extends. Anything else (both in one file, folds in
  // a base under fractions of the file extending it) is a contradiction to fix.
  const sdk::Origin folds_at = split.origin("folds");
  const bool folds_later = folds_at.line == 0 || (!latest_file.empty() && folds_at.file == latest_file);
  std::string fractions_file;
  bool fractions_beside_folds = false;
  for (const char* key : {"train", "val", "test"}) {
    if (!split.has(key)) continue;
    fractions_file = split.origin(key).file;
    fractions_beside_folds = fractions_beside_folds || fractions_file == folds_at.file;
  }
  if (out.split.folds >= 2 && fractions_given && folds_later && !fractions_beside_folds) {
    out.fractions_replaced = true;
    out.notes.push_back(fmt::format("[data.split] folds = {} ({}) replaces the train/val/test fractions of {}: each "
                                    "fold is held out once as validation, and there is no test part",
                                    out.split.folds, folds_at.file.empty() ? "given" : folds_at.file, fractions_file));
  } else if (out.split.folds >= 2 && fractions_given) {
    split.fail(split.has("train") ? "train" : split.has("val") ? "val" : "test",
               fmt::format("does not apply with folds = {} (each fold is held out once as validation, and there is "
                           "no test part); remove train/val/test (on the command line: ~data.split.train "
                           "~data.split.val ~data.split.test) or set folds = 0",
                           out.split.folds));
  } else {
    const double sum = out.split.train + out.split.val + out.split.test;
    if (std::abs(sum - 1.0) > 1e-6) {
      split.fail("train", fmt::format("+ val + test must sum to 1 (was {:.6g} + {:.6g} + {:.6g} = {:.6g}); adjust the "
                                      "fractions",
                                      out.split.train, out.split.val, out.split.test, sum));
    } else if (out.split.train <= 0.0) {
      split.fail("train", "must be above 0 (was 0.0); a model needs training images");
    }
  }
  return out;
}

DataConfig read_data_config(Config& config, uint64_t experiment_seed) {
  DataConfig out = read_data_config(config.table("data"), config.table("data.synthetic"), config.table("data.split"),
                                    experiment_seed, config.path().string());
  out.origin = config.path().string();
  return out;
}

}  // namespace bachlab::host
