#pragma once
// A run folder's identity: run.json (what reopening a run needs beyond its config.toml),
// photos.csv (which photos it was trained on, checked before a resume, an eval or a reuse)
// and where new run folders are made and the latest one is found.

#include "host/config/config.h"
#include "host/data/dataset.h"
#include "host/data/prepare.h"
#include "host/data/stain.h"
#include "host/util/folder_lock.h"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace bachlab::host {

/// run.json: what reopening a run needs beyond its config.toml.
struct RunFile {
  std::string config_file;
  std::optional<int64_t> epochs;
  std::optional<uint64_t> seed;
  Normalization normalization;
  std::string started;
  /// Set in the folder of one fold of a cross-validation (0-based); unset otherwise.
  std::optional<int> fold;
  /// The folder of a cross-validation's refit: one model trained on every photo after the
  /// folds ([train] refit).
  bool refit = false;
  /// The stain target the run's photos were normalised to, so predict does the same.
  std::optional<StainTarget> stain_target;
  /// Processes that trained it (`--nproc`; 1 alone): a resume must use as many, since batch
  /// norm sees each rank's share of a batch. run.json files without it are of 1.
  int world_size = 1;
};

/// `run_dir`, or the run folder holding it when it is a fold, a refit or an ensemble member
/// (a parent folder with a run.json), up to the outermost: what `--resume` continues.
std::filesystem::path outermost_run_folder(const std::filesystem::path& run_dir);

/// Holds the outermost run folder of `run_dir` (hold_folder) for as long as the result
/// lives: every process that writes a run folder (run, resume, eval) holds it, so two never
/// write one at once.
std::shared_ptr<FolderLock> hold_run_folder(const std::filesystem::path& run_dir);

/// Writes `run` as <run_dir>/run.json (temp file, then rename).
void write_run_file(const std::filesystem::path& run_dir, const RunFile& run);
/// Reads <run_dir>/run.json; throws Error if the folder is not a run folder or the file is unreadable.
RunFile read_run_file(const std::filesystem::path& run_dir);

/// The run's config exactly as saved, read as if it were the file the run started from, so
/// that its relative paths (data root, output, plugin folders) mean what they meant then.
Config load_run_config(const std::filesystem::path& run_dir, const RunFile& run);

/// photos.csv: which photos a run was trained on, one "file,size,modified_ns,crc32" CSV row
/// each (file relative to the dataset root, quoted if it holds a comma, quote or line
/// break; modified_ns in nanoseconds since 1970). Resume and eval compare it with the photos found
/// now, so a run never continues or is measured on other data without a word; a photo
/// whose modification time changed but whose bytes did not (copied, touched, synced) is the
/// same photo. A synthetic set is identified by its options and its content does not
/// change, so its mtimes and checksums are "-" (a regenerated copy is the same data). A
/// photos.csv of an older version, without checksums, compares modification times (in
/// the units it was written in).
extern const char* const kPhotosFile;
std::string photos_listing(const Dataset& dataset, bool synthetic);

/// Throws Error saying what changed if the photos found now are not those of photos.csv;
/// `doing` ("Resuming", "Evaluating") says what would have used other data. Run folders
/// written before photos.csv existed are not checked.
void check_same_photos(const std::filesystem::path& run_dir, const Dataset& dataset, bool synthetic,
                       const std::string& doing);

/// Throws Error saying what changed if the photos the run's config names now are not those
/// the run was trained on (check_same_photos with the run's own config).
void check_run_photos(const std::filesystem::path& run_dir);

/// Makes and returns <output>/<experiment>/<YYYYmmdd-HHMMSS> (a "-2", "-3"... suffix if two
/// runs start in the same second).
std::filesystem::path create_run_folder(const std::filesystem::path& output, const std::string& experiment);

/// The newest folder in `folder` holding a run.json (by its timestamp name); empty if none.
std::filesystem::path newest_run_in(const std::filesystem::path& folder);

/// The newest folder under <output>/<experiment>/ of `config_file` holding a run.json;
/// throws Error naming the folder searched if there is none.
std::filesystem::path latest_run(const std::filesystem::path& config_file);

}  // namespace bachlab::host
