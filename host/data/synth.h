#pragma once
// The built-in synthetic H&E dataset as a folder laid out as BACH. The real BACH photos
// cannot be fetched here, so every test, benchmark and the quick start run on tissue drawn
// procedurally (host/data/synth_drawing.h), published here: Photos/<Class>/*.tif, the
// ground-truth CSV and a record of the options, made once per set of options however many
// processes ask for it at once. See docs/synthetic-data.md.

#include "host/data/synth_drawing.h"

#include <opencv2/core.hpp>

#include <cstdint>
#include <filesystem>
#include <string>

namespace bachlab::host {

/// What `bachlab synth` makes; written to OUT/synth.json so a rerun can recognise it.
/// Bad options throw OptionError naming the member (`size` for width and height).
struct SynthOptions {
  /// Dataset root to create; it must be missing, empty, or this same synthetic dataset.
  std::filesystem::path out;
  /// Images per class. Default: 100, as BACH.
  int per_class = 100;
  /// Image size in pixels. Default: 2048x1536, as BACH. Any size shows the same field of
  /// tissue (about 860x645 um), only sampled more or less finely.
  int width = 2048, height = 1536;
  /// Everything is a function of (seed, class, index). Default: 0.
  uint64_t seed = 0;
  /// Drawing threads; 0 = all cores. Never changes the output.
  int workers = 0;
  /// "default" or "nuclear" (Benign and InSitu share architecture and differ only in their
  /// nuclei; strong stain variation; never below BACH-at-scale-0.5 magnification, so a
  /// small image shows less tissue). Default: "default".
  std::string variant = "default";
  /// Seconds to wait for another process (or thread) that is generating this same OUT, to
  /// use its copy rather than draw the set again. Default: 3600.
  double wait_s = 3600;
};

/// BACH's file name for image `index` (1-based) of class `class_index`: "n001.tif",
/// "b001.tif", "is001.tif", "iv001.tif" (at least three digits).
std::string synthetic_file_name(int class_index, int index);

/// The seed generate_synthetic_dataset() passes to draw_synthetic_image() for image
/// `index` (1-based) of class `class_index` in a dataset made with `dataset_seed`.
uint64_t synthetic_image_seed(uint64_t dataset_seed, int class_index, int index);

/// Parses an image size written "WIDTHxHEIGHT" (e.g. "2048x1536", as `bachlab synth
/// --size` takes it); throws OptionError ("size") naming the text found otherwise. The
/// range is checked by the functions that draw.
cv::Size parse_synth_size(const std::string& text);

/// The lock file beside OUT, ".<OUT's name>.synth-lock", held by the process generating
/// OUT; removed once OUT is complete.
std::filesystem::path synthetic_lock_file(const std::filesystem::path& out);

/// Writes OUT/Photos/<Class>/<prefix><NNN>.tif, OUT/Photos/microscopy_ground_truth.csv and
/// OUT/synth.json, each file atomically (host/util/atomic_file.h), all in a hidden sibling
/// folder renamed into place at the end. If OUT already holds this same dataset, does
/// nothing and says so on stderr. One process at a time generates OUT (it holds
/// synthetic_lock_file(OUT)): another that asks for it meanwhile waits, up to `wait_s`,
/// then uses its copy (or generates it itself if that one failed). Progress goes to
/// stderr. Throws OptionError for bad options or an OUT that holds something else, Error
/// for a failed write or a wait that ran out.
void generate_synthetic_dataset(const SynthOptions& options);

}  // namespace bachlab::host
