// `bachlab synth`: draws the built-in synthetic H&E dataset in BACH's folder layout.
#include "host/cli/commands.h"
#include "host/data/synth.h"

#include <map>
#include <string>

namespace bachlab::cli {

void add_synth_commands(CLI::App& app) {
  auto* synth = app.add_subcommand(
      "synth", "Draw a synthetic H&E dataset laid out as BACH (Photos/<Class>/*.tif and the ground-truth CSV)");
  static std::string out;
  static std::string size = "2048x1536";
  static host::SynthOptions options;
  synth->add_option("--out", out, "Dataset folder to create (missing or empty)")->required();
  synth->add_option("--per-class", options.per_class, "Images per class")->capture_default_str();
  synth->add_option("--size", size, "Image size WIDTHxHEIGHT")->capture_default_str();
  synth->add_option("--seed", options.seed, "Seed; the same options give byte-identical files")->capture_default_str();
  synth->add_option("--variant", options.variant,
                    "\"default\", or \"nuclear\": Benign and InSitu share architecture and differ only in their nuclei")
      ->check(CLI::IsMember({"default", "nuclear"}))
      ->capture_default_str();
  synth->add_option("--workers", options.workers, "Drawing threads, 0 = all cores (never changes the output)")
      ->capture_default_str();
  on_run(synth, [] {
    // The data layer names SynthOptions' members; the user typed these flags.
    static const std::map<std::string, std::string> flags{
        {"out", "--out"}, {"per_class", "--per-class"}, {"size", "--size"}, {"workers", "--workers"},
        {"variant", "--variant"}};
    return naming_flags(flags, [] {
      const cv::Size parsed = host::parse_synth_size(size);
      options.out = out;
      options.width = parsed.width;
      options.height = parsed.height;
      host::generate_synthetic_dataset(options);
      return 0;
    });
  });
}

}  // namespace bachlab::cli
