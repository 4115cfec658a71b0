#include "host/train/run_folder.h"

#include "host/data/data_config.h"
#include "host/train/experiment.h"
#include "host/util/atomic_file.h"
#include "host/util/html.h"
#include "host/util/time_text.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <mutex>
#include <tuple>
#include <sstream>
#include <vector>

namespace bachlab::host {

namespace fs = std::filesystem;

fs::path outermost_run_folder(const fs::path& run_dir) {
  fs::path folder = run_dir.lexically_normal();
  if (!folder.has_filename()) folder = folder.parent_path();  // a trailing separator
  while (folder.has_parent_path() && folder.parent_path() != folder && fs::exists(folder.parent_path() / "run.json"))
    folder = folder.parent_path();
  return folder;
}

std::shared_ptr<FolderLock> hold_run_folder(const fs::path& run_dir) {
  return hold_folder(outermost_run_folder(run_dir));
}

void write_run_file(const fs::path& run_dir, const RunFile& run) {
  nlohmann::ordered_json j;
  j["config_file"] = run.config_file;
  j["epochs_override"] = run.epochs ? nlohmann::ordered_json(*run.epochs) : nlohmann::ordered_json();
  j["seed_override"] = run.seed ? nlohmann::ordered_json(*run.seed) : nlohmann::ordered_json();
  j["normalization"] = {{"mean", run.normalization.mean}, {"std", run.normalization.std}};
  j["started"] = run.started;
  j["fold"] = run.fold ? nlohmann::ordered_json(*run.fold) : nlohmann::ordered_json();
  if (run.refit) j["refit"] = true;
  if (run.stain_target) j["stain_target"] = stain_target_to_json(*run.stain_target);
  j["world_size"] = run.world_size;
  write_file_atomic(run_dir / "run.json", j.dump(2) + "\n");
}

RunFile read_run_file(const fs::path& run_dir) {
  const fs::path file = run_dir / "run.json";
  if (!fs::exists(file))
    throw Error(run_dir.string() + ": not a run folder (it has no run.json); pass a folder made by `bachlab run`, "
                "such as runs/<experiment>/<timestamp>");
  try {
    auto j = nlohmann::json::parse(read_file(file));
    RunFile run;
    run.config_file = j.at("config_file").get<std::string>();
    if (!j.at("epochs_override").is_null()) run.epochs = j.at("epochs_override").get<int64_t>();
    if (!j.at("seed_override").is_null()) run.seed = j.at("seed_override").get<uint64_t>();
    run.normalization.mean = j.at("normalization").at("mean").get<std::array<float, 3>>();
    run.normalization.std = j.at("normalization").at("std").get<std::array<float, 3>>();
    run.started = j.at("started").get<std::string>();
    if (j.contains("fold") && !j.at("fold").is_null()) run.fold = j.at("fold").get<int>();
    run.refit = j.value("refit", false);
    if (j.contains("stain_target")) run.stain_target = stain_target_from_json(j.at("stain_target"));
    run.world_size = j.value("world_size", 1);
    return run;
  } catch (const nlohmann::json::exception& e) {
    throw Error(file.string() + ": unreadable (" + std::string(e.what()) +
                "); it was not written by this version of bachlab run");
  }
}

Config load_run_config(const fs::path& run_dir, const RunFile& run) {
  return Config::parse(read_file(run_dir / "config.toml"), run.config_file);
}

const char* const kPhotosFile = "photos.csv";

namespace {

// CRC-32 of a file's bytes, as eight hex digits; "" if it cannot be read. Each file is
// read once per process for a given size and modification time: a cross-validation
// lists its photos for every fold.
std::string content_checksum(const fs::path& file, uintmax_t size, int64_t mtime) {
  static std::mutex mutex;
  static std::map<std::tuple<std::string, uintmax_t, int64_t>, std::string> known;
  const auto key = std::make_tuple(file.string(), size, mtime);
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = known.find(key); it != known.end()) return it->second;
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return "";
  uLong crc = crc32(0L, Z_NULL, 0);
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(buffer.data()), static_cast<uInt>(in.gcount()));
  }
  const std::string out = fmt::format("{:08x}", static_cast<uint32_t>(crc));
  std::lock_guard<std::mutex> lock(mutex);
  known[key] = out;
  return out;
}

struct PhotoRecord {
  std::string size, mtime, checksum;  // checksum "" in a photos.csv written before it had one
};

struct PhotoListing {
  std::map<std::string, PhotoRecord> photos;
  /// photos.csv before the times were Unix nanoseconds held std::filesystem's clock counts
  /// (negative numbers with libstdc++); such a listing is compared in those.
  bool filesystem_clock = false;
};

PhotoListing photo_records(const std::string& listing) {
  PhotoListing out;
  const auto rows = csv_rows(listing);
  if (rows.empty()) return out;
  out.filesystem_clock = rows.front().size() > 2 && rows.front()[2] == "mtime";
  for (size_t r = 1; r < rows.size(); ++r) {
    const auto& cells = rows[r];
    if (cells.size() < 3) continue;
    out.photos[cells[0]] = {cells[1], cells[2], cells.size() > 3 ? cells[3] : ""};
  }
  return out;
}

// A photo's modification time as photos.csv records it: nanoseconds since 1970 (stat), or,
// for a listing of an older version, std::filesystem's clock count. 0 if unreadable.
int64_t modified_time(const fs::path& file, bool filesystem_clock) {
  if (filesystem_clock) {
    std::error_code ec;
    const auto time = fs::last_write_time(file, ec);
    return ec ? 0 : static_cast<int64_t>(time.time_since_epoch().count());
  }
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return 0;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

}  // namespace

std::string photos_listing(const Dataset& dataset, bool synthetic) {
  // Size and modification time find a change quickly; the checksum tells a photo that was
  // only copied or touched (a new modification time, the same bytes) from one that changed.
  std::string out = "file,size,modified_ns,crc32\n";
  for (const auto& file : dataset.files) {
    std::error_code ec;
    const auto size = fs::file_size(file, ec);
    const int64_t mtime = modified_time(file, false);
    out += fmt::format("{},{},{},{}\n", csv_field(file.lexically_relative(dataset.root).string()), ec ? 0 : size,
                       synthetic ? std::string("-") : std::to_string(mtime),
                       synthetic || ec ? std::string("-") : content_checksum(file, size, mtime));
  }
  return out;
}

void check_same_photos(const fs::path& run_dir, const Dataset& dataset, bool synthetic, const std::string& doing) {
  const fs::path file = run_dir / kPhotosFile;
  if (!fs::exists(file)) return;
  const PhotoListing listing = photo_records(read_file(file));
  const auto& before = listing.photos;
  std::map<std::string, fs::path> now;
  for (const auto& photo : dataset.files) now[photo.lexically_relative(dataset.root).string()] = photo;
  std::vector<std::string> added, removed, changed;
  for (const auto& [name, path] : now)
    if (!before.count(name)) added.push_back(name);
  for (const auto& [name, was] : before) {
    auto it = now.find(name);
    if (it == now.end()) {
      removed.push_back(name);
      continue;
    }
    std::error_code ec;
    const auto size = fs::file_size(it->second, ec);
    const std::string size_now = std::to_string(ec ? 0 : size);
    if (size_now != was.size) {
      changed.push_back(name + " (size " + was.size + " -> " + size_now + " bytes)");
      continue;
    }
    if (synthetic) continue;
    const int64_t mtime = modified_time(it->second, listing.filesystem_clock);
    if (std::to_string(mtime) == was.mtime) continue;
    // Modified since, by the clock: the same bytes (a copy, a touch) are the same photo.
    if (was.checksum.empty())
      changed.push_back(name + " (modified since)");
    else if (content_checksum(it->second, size, mtime) != was.checksum)
      changed.push_back(name + " (content changed)");
  }
  if (added.empty() && removed.empty() && changed.empty()) return;
  std::string what;
  for (const auto& [names, verb] : {std::pair{&added, "added"}, std::pair{&removed, "removed"},
                                    std::pair{&changed, "changed"}}) {
    if (names->empty()) continue;
    what += fmt::format("{}{} {}: {}", what.empty() ? "" : "; ", names->size(), verb, names->front());
    for (size_t i = 1; i < names->size() && i < 3; ++i) what += ", " + (*names)[i];
    if (names->size() > 3) what += ", ...";
  }
  throw Error(file.string() + ": the photos under " + dataset.root.string() + " are not those this run was trained on (" +
              what + "). " + doing + " would use other data; restore the original photos, or start a new run");
}

void check_run_photos(const fs::path& run_dir) {
  RunFile run = read_run_file(run_dir);
  Config config = load_run_config(run_dir, run);
  const DataConfig data = read_data_config(config);
  check_same_photos(run_dir, discover_dataset(data), data.source == DataSource::synthetic, "Reusing its results");
}

fs::path create_run_folder(const fs::path& output, const std::string& experiment) {
  const std::string stamp = now_text("%Y%m%d-%H%M%S");
  const fs::path parent = output / experiment;
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec)
    throw Error(parent.string() + ": cannot create the run folder (" + ec.message() +
                "); set [experiment] output to a writable folder");
  for (int n = 1;; ++n) {
    fs::path candidate = parent / (n == 1 ? std::string(stamp) : fmt::format("{}-{}", stamp, n));
    // create_directory is atomic: two runs started in the same second get different folders.
    // Absolute: metrics.json, the log and the resume command name it from any folder.
    if (fs::create_directory(candidate, ec)) return fs::absolute(candidate).lexically_normal();
    if (ec) throw Error(candidate.string() + ": cannot create the run folder (" + ec.message() + ")");
  }
}

fs::path newest_run_in(const fs::path& folder) {
  std::error_code ec;
  fs::path newest;
  // Folder names are timestamps; a same-second suffix "-N" sorts after its plain name. A
  // ".partial" copy (a tuning promotion being copied) is no run yet.
  for (const auto& entry : fs::directory_iterator(folder, ec))
    if (entry.is_directory(ec) && fs::exists(entry.path() / "run.json") && entry.path().extension() != ".partial" &&
        (newest.empty() || entry.path().filename().string() > newest.filename().string()))
      newest = entry.path();
  return newest;
}

fs::path latest_run(const fs::path& config_file) {
  Config config = Config::load(config_file);
  ExperimentSettings settings = read_experiment_settings(config.table("experiment"), config.path());
  const fs::path folder = settings.output / settings.name;
  const fs::path newest = newest_run_in(folder);
  if (newest.empty())
    throw Error(folder.string() + ": no run of experiment \"" + settings.name +
                "\" to resume (no folder with a run.json); start one with `bachlab run " + config_file.string() + "`");
  return newest;
}

}  // namespace bachlab::host
