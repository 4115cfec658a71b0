#include "host/data/dataset.h"

#include "host/data/ground_truth.h"
#include "host/data/image_decode.h"
#include "host/data/synth.h"

#include <bachlab/sdk/error.h>
#include <bachlab/sdk/param_table.h>

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>

namespace bachlab::host {

namespace fs = std::filesystem;

namespace {

// More lines than this would bury the first problems; the count says how many are hidden.
constexpr size_t kMaxListedProblems = 30;

std::string join_classes(const std::vector<std::string>& classes) {
  std::string out;
  for (const auto& c : classes) out += (out.empty() ? "" : ", ") + c;
  return out;
}

[[noreturn]] void throw_problems(const std::vector<std::string>& problems, const fs::path& where) {
  if (problems.size() == 1) throw Error(problems.front());
  std::string message = fmt::format("{} problems in dataset {}:", problems.size(), where.string());
  for (size_t i = 0; i < problems.size() && i < kMaxListedProblems; ++i) message += "\n- " + problems[i];
  if (problems.size() > kMaxListedProblems)
    message += fmt::format("\n- ... and {} more", problems.size() - kMaxListedProblems);
  throw Error(message);
}

// The image files of one class folder, sorted; problems and non-images are recorded.
std::vector<fs::path> list_class_folder(const fs::path& dir, const std::string& class_name,
                                        std::vector<std::string>& problems, std::vector<std::string>& skipped) {
  std::error_code ec;
  fs::file_status status = fs::status(dir, ec);
  if (ec || !fs::exists(status)) {
    problems.push_back(fmt::format("{}: class folder not found; create it with the photos of class \"{}\", or remove "
                                   "\"{}\" from [data] classes",
                                   dir.string(), class_name, class_name));
    return {};
  }
  if (!fs::is_directory(status)) {
    problems.push_back(fmt::format("{}: expected the folder of class \"{}\" but found a file; move it away",
                                   dir.string(), class_name));
    return {};
  }
  std::vector<fs::path> files;
  fs::directory_iterator it(dir, ec), end;
  if (ec) {
    problems.push_back(fmt::format("{}: cannot list the folder ({}); check its permissions", dir.string(), ec.message()));
    return {};
  }
  for (; it != end; it.increment(ec)) {
    const fs::path& path = it->path();
    const std::string name = path.filename().string();
    if (name.empty() || name.front() == '.') continue;  // .DS_Store and editors' files are not data
    if (it->is_directory(ec)) continue;
    if (!has_image_extension(path)) {
      skipped.push_back(fmt::format("{}: not an image (extension \"{}\"); ignored", path.string(),
                                    path.extension().string()));
      continue;
    }
    files.push_back(path);
  }
  if (ec) {
    problems.push_back(fmt::format("{}: cannot list the folder ({}); check its permissions", dir.string(), ec.message()));
    return {};
  }
  std::sort(files.begin(), files.end());
  if (files.empty())
    problems.push_back(fmt::format("{}: class folder holds no photos (.tif, .tiff, .png, .jpg, .jpeg); add the photos "
                                   "of class \"{}\" or remove \"{}\" from [data] classes",
                                   dir.string(), class_name, class_name));
  return files;
}

// Reads the BACH ground truth and checks it against the files found in the class folders
// (check_ground_truth_text does the parsing).
void check_ground_truth(const fs::path& photos, const std::vector<std::string>& classes,
                        const std::vector<std::vector<fs::path>>& per_class, std::vector<std::string>& problems,
                        std::map<std::string, std::string>& groups) {
  const fs::path csv = photos / kBachGroundTruth;
  std::error_code ec;
  if (!fs::exists(csv, ec)) {
    problems.push_back(fmt::format("{}: not found; the BACH layout needs it (rows <file>,<Class>); set [data] layout "
                                   "= \"folders\" to take labels from the folder names instead",
                                   csv.string()));
    return;
  }
  std::ifstream in(csv, std::ios::binary);
  if (!in) {
    problems.push_back(fmt::format("{}: cannot open the file; check its permissions", csv.string()));
    return;
  }
  std::stringstream text;
  text << in.rdbuf();
  check_ground_truth_text(text.str(), csv, photos, classes, per_class, problems, &groups);
}

Dataset discover_folder(const DataConfig& config, const fs::path& root) {
  std::error_code ec;
  fs::file_status status = fs::status(root, ec);
  const std::string& from = config.root_from.empty() ? config.origin : config.root_from;
  const std::string where = from.empty() ? "" : fmt::format(" ([data] root set at {})", from);
  if (ec || !fs::exists(status))
    throw Error(fmt::format("{}: dataset folder not found{}; set [data] root to the BACH folder (the one holding "
                            "Photos/) or to a folder with one subfolder per class",
                            root.string(), where));
  if (!fs::is_directory(status))
    throw Error(fmt::format("{}: expected a dataset folder but found a file{}; set [data] root to the folder holding "
                            "the photos",
                            root.string(), where));

  Dataset dataset;
  fs::path photos = root;
  if (config.layout == PhotoLayout::bach && fs::is_directory(root / "Photos", ec)) photos = root / "Photos";
  dataset.root = photos;

  dataset.classes = config.classes;
  if (dataset.classes.empty()) {
    fs::directory_iterator it(photos, ec), end;
    if (ec) throw Error(fmt::format("{}: cannot list the folder ({}); check its permissions", photos.string(), ec.message()));
    for (; it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (!name.empty() && name.front() != '.' && it->is_directory(ec)) dataset.classes.push_back(name);
    }
    std::sort(dataset.classes.begin(), dataset.classes.end());
    if (dataset.classes.size() < 2)
      throw Error(fmt::format("{}: found {} class folder(s); a dataset needs one subfolder per class and at least 2 "
                              "classes",
                              photos.string(), dataset.classes.size()));
  }

  std::vector<std::string> problems;
  std::vector<std::vector<fs::path>> per_class;
  for (const auto& name : dataset.classes)
    per_class.push_back(list_class_folder(photos / name, name, problems, dataset.skipped));
  std::map<std::string, std::string> groups;
  if (config.layout == PhotoLayout::bach) check_ground_truth(photos, dataset.classes, per_class, problems, groups);

  const bool skip_bad = config.on_bad_image == BadImages::skip;
  for (size_t c = 0; c < per_class.size(); ++c) {
    for (const auto& file : per_class[c]) {
      try {
        sniff_image_format(file);
      } catch (const Error& e) {
        (skip_bad ? dataset.skipped : problems).push_back(e.what());
        continue;
      }
      dataset.files.push_back(file);
      dataset.labels.push_back(int64_t(c));
    }
  }
  if (!groups.empty())
    for (const auto& file : dataset.files) {
      auto it = groups.find(file.filename().string());
      dataset.groups.push_back(it == groups.end() ? std::string() : it->second);
    }
  if (!problems.empty()) throw_problems(problems, photos);
  if (dataset.files.empty())
    throw Error(fmt::format("{}: no usable photos: all {} files were skipped (first: {}); fix or replace the files",
                            photos.string(), dataset.skipped.size(), dataset.skipped.front()));
  return dataset;
}

}  // namespace

namespace {

void require_bach_classes(const DataConfig& config) {
  if (config.classes != default_bach_classes())
    throw Error(fmt::format("{}[data] classes must be the four BACH classes when source = \"synthetic\" (was {}); "
                            "remove classes or use source = \"folder\"",
                            config.origin.empty() ? "" : config.origin + ": ", join_classes(config.classes)));
}

}  // namespace

fs::path synthetic_dataset_dir(const DataConfig& config) {
  const auto& s = config.synthetic;
  // The default variant keeps the name it had before variants existed, so its sets stay valid.
  const std::string variant = s.variant == "default" ? "" : s.variant + "-";
  return config.cache_dir / fmt::format("synthetic-v{}-{}{}x{}-{}per-class-seed{}", kSynthGeneratorVersion, variant,
                                        s.width, s.height, s.per_class, s.seed);
}

Dataset discover_dataset(const DataConfig& config) {
  if (config.source != DataSource::synthetic) return discover_folder(config, config.root);
  require_bach_classes(config);
  SynthOptions options;
  options.out = synthetic_dataset_dir(config);
  options.per_class = config.synthetic.per_class;
  options.width = config.synthetic.width;
  options.height = config.synthetic.height;
  options.seed = config.synthetic.seed;
  options.variant = config.synthetic.variant;
  options.workers = config.workers;
  std::error_code ec;
  fs::create_directories(config.cache_dir, ec);
  if (ec)
    throw Error(fmt::format("{}: cannot create the cache folder ({}); set [data] cache_dir to a writable folder",
                            config.cache_dir.string(), ec.message()));
  generate_synthetic_dataset(options);
  DataConfig bach = config;
  bach.layout = PhotoLayout::bach;
  return discover_folder(bach, options.out);
}

std::string check_dataset(const DataConfig& config) {
  if (config.source == DataSource::synthetic) {
    require_bach_classes(config);
    const fs::path folder = synthetic_dataset_dir(config);
    std::error_code ec;
    const bool made = fs::exists(folder / "Photos", ec);
    const std::string where =
        made ? "made in " + folder.string() : "made on the first run into " + folder.string();
    return fmt::format("synthetic, {} photos per class of {}x{} ({})", config.synthetic.per_class,
                       config.synthetic.width, config.synthetic.height, where);
  }
  const Dataset dataset = discover_dataset(config);
  std::vector<int64_t> counts(dataset.classes.size(), 0);
  for (int64_t label : dataset.labels) ++counts.at(static_cast<size_t>(label));
  std::string per_class;
  for (size_t c = 0; c < counts.size(); ++c)
    per_class += fmt::format("{}{} {}", c == 0 ? "" : ", ", dataset.classes[c], counts[c]);
  std::string line = fmt::format("{} {} in {}: {}", dataset.files.size(), dataset.files.size() == 1 ? "photo" : "photos",
                                 dataset.root.string(), per_class);
  if (!dataset.skipped.empty())
    line += fmt::format("; {} {} left out (on_bad_image = \"skip\")", dataset.skipped.size(),
                        dataset.skipped.size() == 1 ? "file" : "files");
  return line;
}

Dataset select(const Dataset& dataset, const std::vector<int64_t>& indices) {
  Dataset out;
  out.classes = dataset.classes;
  out.skipped = dataset.skipped;
  out.root = dataset.root;
  for (int64_t i : indices) {
    if (i < 0 || size_t(i) >= dataset.files.size())
      throw Error(fmt::format("select: index {} is outside the dataset's {} files", i, dataset.files.size()));
    out.files.push_back(dataset.files[size_t(i)]);
    out.labels.push_back(dataset.labels[size_t(i)]);
    if (!dataset.groups.empty()) out.groups.push_back(dataset.groups[size_t(i)]);
  }
  return out;
}

}  // namespace bachlab::host
