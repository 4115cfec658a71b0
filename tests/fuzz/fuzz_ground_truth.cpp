// libFuzzer target: the BACH ground-truth CSV (Photos/microscopy_ground_truth.csv) against
// a fixed set of class folders (one file name in two of them). Checks that the parser
// neither crashes nor throws, and that every problem names the CSV (with a line) or a photo.

#include "fuzz_common.h"

#include "host/data/ground_truth.h"

#include <filesystem>
#include <string>
#include <vector>

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::string> classes{"Normal", "Benign", "InSitu", "Invasive"};
  static const fs::path photos = "data/Photos";
  static const std::vector<std::vector<fs::path>> per_class = [] {
    std::vector<std::vector<fs::path>> files(classes.size());
    const char* const prefixes[] = {"n", "b", "is", "iv"};  // as BACH and `bachlab synth` name them
    for (size_t c = 0; c < classes.size(); ++c)
      for (int i = 1; i <= 3; ++i)
        files[c].push_back(photos / classes[c] / (prefixes[c] + std::string("00") + std::to_string(i) + ".tif"));
    files[1].push_back(photos / "Benign" / "shared.tif");  // one name in two folders
    files[2].push_back(photos / "InSitu" / "shared.tif");
    return files;
  }();
  const fs::path csv = photos / "microscopy_ground_truth.csv";
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> problems;
  bachlab::fuzz::expect_only_bachlab_errors("check_ground_truth_text", [&] {
    bachlab::host::check_ground_truth_text(text, csv, photos, classes, per_class, problems);
  });
  for (const auto& problem : problems)
    bachlab::fuzz::require(problem.rfind(csv.string() + ":", 0) == 0 || problem.rfind(photos.string() + "/", 0) == 0,
                           "a problem that names neither the CSV nor a photo: " + problem);
  return 0;
}
