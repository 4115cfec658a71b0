// The synthetic dataset as a folder laid out as BACH: the images drawn by synth_drawing.cpp,
// encoded by tiff_encode.cpp, written into a hidden partial folder that is renamed into
// place once complete, by one process at a time.
#include "host/data/synth.h"

#include "host/data/option_error.h"
#include "host/data/parallel.h"
#include "host/data/tiff_encode.h"
#include "host/util/atomic_file.h"
#include "host/util/folder_lock.h"
#include "host/util/process.h"

#include <bachlab/sdk/error.h>
#include <bachlab/sdk/random.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <mutex>
#include <system_error>

namespace bachlab::host {

namespace {

namespace fs = std::filesystem;

constexpr int kMaxPerClass = 99999;

nlohmann::json record_of(const SynthOptions& options) {
  nlohmann::json record = {{"generator", "bachlab synth"},
          {"generator_version", kSynthGeneratorVersion},
          {"classes", bach_classes()},
          {"per_class", options.per_class},
          {"width", options.width},
          {"height", options.height},
          {"seed", options.seed},
          {"images", options.per_class * static_cast<int>(bach_classes().size())}};
  // Written only for other variants, so default datasets made before variants existed
  // are still recognised.
  if (options.variant != "default") record["variant"] = options.variant;
  return record;
}

std::string describe(const nlohmann::json& record) {
  return fmt::format("variant {}, per-class {}, size {}x{}, seed {}, generator version {}",
                     record.value("variant", std::string("default")), record.value("per_class", -1),
                     record.value("width", -1), record.value("height", -1), record.value("seed", uint64_t{0}),
                     record.value("generator_version", -1));
}

void check_options(const SynthOptions& options) {
  if (options.out.empty())
    throw OptionError("out", "the output path", "synth: ",
                      " is empty; give the dataset folder to create, e.g. data/bach-synth");
  if (options.per_class < 1 || options.per_class > kMaxPerClass)
    throw OptionError("per_class", "per_class", "synth: ",
                      fmt::format(" must be between 1 and {} (was {}); give the number of images to draw for each class",
                                  kMaxPerClass, options.per_class));
  check_synthetic_drawing(options.width, options.height, options.variant);
  if (options.workers < 0)
    throw OptionError("workers", "workers", "synth: ",
                      fmt::format(" must be 0 (all cores) or a positive thread count (was {})", options.workers));
}

// True if `out` already is the dataset these options make; throws if it holds anything
// else. Missing or empty is fine to write.
bool already_generated(const fs::path& out, const std::string& shown, const nlohmann::json& wanted) {
  std::error_code ec;
  const auto status = fs::status(out, ec);
  if (!fs::exists(status)) return false;
  if (!fs::is_directory(status))
    throw OptionError("out", "output folder", fmt::format("synth: '{}' exists and is not a folder; choose another ", shown),
                      " or remove the file");
  if (fs::is_empty(out, ec) && !ec) return false;

  const fs::path record_path = out / "synth.json";
  if (!fs::exists(record_path)) {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(out)) names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    throw OptionError("out", "output folder",
                      fmt::format("synth: output folder '{}' already contains files (such as '{}') and is not a synthetic "
                                  "dataset; choose another ",
                                  shown, names.front()),
                      " or empty the folder");
  }
  nlohmann::json found;
  try {
    std::ifstream file(record_path);
    found = nlohmann::json::parse(file);
  } catch (const nlohmann::json::exception& e) {
    throw OptionError("out", "output folder",
                      fmt::format("synth: '{}' is not a synthetic dataset record ({}); remove the folder '{}' or choose "
                                  "another ",
                                  (fs::path(shown) / "synth.json").string(), e.what(), shown),
                      "");
  }
  const bool same_variant =
      found.value("variant", std::string("default")) == wanted.value("variant", std::string("default"));
  for (const char* key : {"generator_version", "per_class", "width", "height", "seed"}) {
    if (!same_variant || found.value(key, nlohmann::json()) != wanted[key])
      throw OptionError("out", "output folder",
                        fmt::format("synth: output folder '{}' holds a synthetic dataset made with other options ({}; "
                                    "asked for {}); choose another ",
                                    shown, describe(found), describe(wanted)),
                        " or remove the folder");
  }
  // The record is written last, inside the folder that is renamed into place, so it only
  // exists for a complete dataset - unless files were deleted since.
  const int per_class = wanted["per_class"];
  for (size_t k = 0; k < bach_classes().size(); ++k) {
    for (int i = 1; i <= per_class; ++i) {
      const fs::path relative = fs::path("Photos") / bach_classes()[k] / synthetic_file_name(static_cast<int>(k), i);
      if (!fs::exists(out / relative))
        throw Error(fmt::format("synth: output folder '{}' holds a synthetic dataset made with the same options but "
                                "'{}' is missing; remove the folder and run again",
                                shown, relative.string()));
    }
  }
  return true;
}

// Partial folders of runs that were killed: ".<name>.synth-partial-<pid>-<n>" whose process
// is gone. A running generator's folder is left alone.
void remove_stale_partials(const fs::path& parent, const std::string& name) {
  const std::string prefix = "." + name + ".synth-partial-";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    const std::string file = entry.path().filename().string();
    if (file.rfind(prefix, 0) != 0) continue;
    const long pid = std::strtol(file.c_str() + prefix.size(), nullptr, 10);
    if (process_runs(pid)) continue;
    fs::remove_all(entry.path(), ec);
  }
}

}  // namespace

std::string synthetic_file_name(int class_index, int index) {
  static const char* const prefixes[] = {"n", "b", "is", "iv"};
  check_bach_class_index(class_index);
  return fmt::format("{}{:03d}.tif", prefixes[class_index], index);
}

uint64_t synthetic_image_seed(uint64_t dataset_seed, int class_index, int index) {
  uint64_t state = dataset_seed;
  uint64_t mixed = sdk::splitmix64(state);
  state = mixed ^ (static_cast<uint64_t>(class_index) << 32 | static_cast<uint32_t>(index));
  return sdk::splitmix64(state);
}

cv::Size parse_synth_size(const std::string& text) {
  // A whole-text unsigned decimal number: from_chars alone would take a minus sign.
  auto number = [](const char* first, const char* last, int& value) {
    const auto result = std::from_chars(first, last, value);
    return first != last && *first >= '0' && *first <= '9' && result.ec == std::errc() && result.ptr == last;
  };
  const auto x = text.find_first_of("xX");
  int width = 0, height = 0;
  const bool ok = x != std::string::npos && number(text.data(), text.data() + x, width) &&
                  number(text.data() + x + 1, text.data() + text.size(), height);
  if (!ok)
    throw OptionError("size", "the image size", "synth: ",
                      fmt::format(" expects WIDTHxHEIGHT in pixels such as 2048x1536 (was '{}'); write the two numbers "
                                  "joined by an 'x'",
                                  text));
  return {width, height};
}

fs::path synthetic_lock_file(const fs::path& out) {
  fs::path folder = fs::absolute(out).lexically_normal();
  if (folder.filename().empty()) folder = folder.parent_path();
  return folder.parent_path() / ("." + folder.filename().string() + ".synth-lock");
}

void generate_synthetic_dataset(const SynthOptions& options) {
  check_options(options);
  const std::string shown = options.out.string();
  fs::path out = fs::absolute(options.out).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();
  const nlohmann::json record = record_of(options);
  if (already_generated(out, shown, record)) {
    std::cerr << fmt::format("synth: '{}' already holds this dataset ({} images, {}x{}, seed {}); nothing to do\n", shown,
                             record["images"].get<int>(), options.width, options.height, options.seed);
    return;
  }

  const auto start = std::chrono::steady_clock::now();
  const fs::path parent = out.parent_path();
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec)
    throw OptionError("out", "the dataset folder",
                      fmt::format("synth: cannot create the folder '{}' ({}); check the path given as ", parent.string(),
                                  ec.message()),
                      "");
  // One process draws the set, the others wait for its copy: two tuning workers (or two
  // runs) started together on an empty cache would otherwise each draw all of it.
  const fs::path lock_file = synthetic_lock_file(out);
  FileLock lock(lock_file);
  std::string waited_for;
  const bool locked = lock.lock_within(
      std::chrono::milliseconds(static_cast<int64_t>(options.wait_s * 1000)), [&](const std::string& holder) {
        waited_for = holder.empty() ? "another process" : "process " + holder;
        std::cerr << fmt::format("synth: {} is generating '{}'; waiting for it (at most {:.0f} s)\n", waited_for,
                                 shown, options.wait_s);
      });
  if (!locked)
    throw Error(fmt::format("synth: {} has been generating '{}' for longer than the {:.0f} s this waits; let it finish "
                            "(or stop it{}), then run again",
                            waited_for, shown, options.wait_s,
                            waited_for.rfind("process ", 0) == 0 ? " with kill " + waited_for.substr(8) : ""));
  // The lock file goes once the set is complete, so nothing is left beside it. Whoever
  // holds the lock checks for the set first, so a waiter holding a removed file's lock
  // (or one that made a new file) finds the set and generates nothing.
  if (already_generated(out, shown, record)) {
    fs::remove(lock_file, ec);
    std::cerr << fmt::format("synth: another process generated '{}' meanwhile; using it\n", shown);
    return;
  }
  remove_stale_partials(parent, out.filename().string());
  // The pid marks whose folder it is (remove_stale_partials); the counter keeps two threads
  // of one process generating the same set apart.
  static std::atomic<int> counter{0};
  const fs::path partial =
      parent / fmt::format(".{}.synth-partial-{}-{}", out.filename().string(), ::getpid(), counter++);
  fs::remove_all(partial, ec);

  const int classes = static_cast<int>(bach_classes().size());
  const int total = options.per_class * classes;
  try {
    for (const auto& name : bach_classes()) {
      fs::create_directories(partial / "Photos" / name, ec);
      if (ec)
        throw Error(fmt::format("synth: cannot create the folder '{}' ({}); check that '{}' is writable",
                                (partial / "Photos" / name).string(), ec.message(), parent.string()));
    }
    const double pixel_microns = synthetic_pixel_microns(options.width, options.height, options.variant);

    // Each image depends only on (seed, class, index), so the order threads take them
    // in cannot change a byte.
    std::atomic<bool> failed{false};
    std::exception_ptr first_error;
    std::mutex error_mutex;
    Progress progress("synth: images", static_cast<size_t>(total));
    parallel_for(static_cast<size_t>(total), resolve_workers(options.workers), [&](size_t job, int) {
      if (failed) return;
      try {
        const int class_index = static_cast<int>(job) / options.per_class;
        const int index = static_cast<int>(job) % options.per_class + 1;
        const cv::Mat image = draw_synthetic_image(class_index, options.width, options.height,
                                                   synthetic_image_seed(options.seed, class_index, index), options.variant);
        const fs::path file = partial / "Photos" / bach_classes()[class_index] / synthetic_file_name(class_index, index);
        std::string tiff;
        try {
          tiff = encode_rgb_tiff(image, pixel_microns, "bachlab synth");
        } catch (const Error& e) {
          throw Error(fmt::format("synth: {}: {}", file.string(), e.what()));
        }
        write_file_atomic(file, tiff);
        progress.advance();
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!first_error) first_error = std::current_exception();
        failed = true;
      }
    });
    progress.finish();
    if (first_error) std::rethrow_exception(first_error);

    std::string csv;
    for (int k = 0; k < classes; ++k)
      for (int i = 1; i <= options.per_class; ++i) csv += synthetic_file_name(k, i) + "," + bach_classes()[k] + "\n";
    write_file_atomic(partial / "Photos" / "microscopy_ground_truth.csv", csv);
    write_file_atomic(partial / "synth.json", record.dump(2) + "\n");

    // rename(2) replaces an empty folder atomically, so a missing or empty OUT both work.
    fs::rename(partial, out, ec);
    // Another process (a second run or tuning worker started on the same empty cache)
    // published the same dataset first: the images depend only on the options, so its copy
    // is this one, byte for byte. Use it.
    if (ec && already_generated(out, shown, record)) {
      fs::remove_all(partial, ec);
      fs::remove(lock_file, ec);
      std::cerr << fmt::format("synth: another process finished '{}' first; using its identical copy\n", shown);
      return;
    }
    if (ec)
      throw Error(fmt::format("synth: cannot move the finished dataset from '{}' to '{}' ({}); make sure '{}' is missing "
                              "or empty and run again",
                              partial.string(), shown, ec.message(), shown));
  } catch (...) {
    fs::remove_all(partial, ec);
    throw;
  }
  fs::remove(lock_file, ec);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << fmt::format("synth: wrote {} images ({} per class, {}x{}, seed {}) to '{}' in {:.1f} s\n", total,
                           options.per_class, options.width, options.height, options.seed, shown, seconds);
}

}  // namespace bachlab::host