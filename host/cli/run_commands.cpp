// `bachlab run`, `bachlab eval` and `bachlab predict`.
#include "host/cli/commands.h"
#include "host/cli/prediction_format.h"
#include "host/data/parallel.h"
#include "host/data/tissue.h"
#include "host/report/compare.h"
#include "host/report/heatmap.h"
#include "host/train/runner.h"
#include "host/util/interrupt.h"
#include "host/util/atomic_file.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <iostream>
#include <optional>

namespace bachlab::cli {

namespace fs = std::filesystem;

namespace {

// Below this share of tissue pixels `predict` warns that a photo shows almost only glass
// (BACH photos hold tissue in most of the frame).
constexpr double kLeastTissue = 0.05;

std::string metric(double v) { return std::isfinite(v) ? fmt::format("{:.4f}", v) : std::string("-"); }

// Rows true class, columns predicted, each labelled with its class name.
std::string format_confusion_matrix(const std::vector<std::vector<int64_t>>& confusion,
                                    const std::vector<std::string>& classes) {
  auto name = [&](size_t c) { return c < classes.size() ? classes[c] : std::to_string(c); };
  size_t label_width = std::string("true \\ predicted").size();
  size_t width = 6;
  for (size_t c = 0; c < confusion.size(); ++c) {
    label_width = std::max(label_width, name(c).size());
    width = std::max(width, name(c).size() + 2);
    for (int64_t v : confusion[c]) width = std::max(width, std::to_string(v).size() + 2);
  }
  std::string out = "confusion matrix (rows true class, columns predicted class)\n";
  out += fmt::format("{:<{}}", "true \\ predicted", label_width);
  for (size_t c = 0; c < confusion.size(); ++c) out += fmt::format("{:>{}}", name(c), width);
  out += "\n";
  for (size_t r = 0; r < confusion.size(); ++r) {
    out += fmt::format("{:<{}}", name(r), label_width);
    for (int64_t v : confusion[r]) out += fmt::format("{:>{}}", v, width);
    out += "\n";
  }
  // Row-normalised: comparable between classes of different sizes.
  out += "the same as shares of each true class (the diagonal is each class's recall)\n";
  for (size_t r = 0; r < confusion.size(); ++r) {
    int64_t total = 0;
    for (int64_t v : confusion[r]) total += v;
    out += fmt::format("{:<{}}", name(r), label_width);
    for (int64_t v : confusion[r])
      out += total ? fmt::format("{:>{}.0f}%", 100.0 * static_cast<double>(v) / static_cast<double>(total), width - 1)
                   : fmt::format("{:>{}}", "-", width);
    out += "\n";
  }
  return out;
}

// The final metrics of a run as `bachlab eval` prints them.
std::string format_evaluation(const host::RunSummary& s) {
  std::string out = fmt::format("{} ({}), weights of the {} epoch\n", s.experiment, s.run_dir,
                                s.weights == "best" ? "best (" + std::to_string(s.best_epoch) + ")"
                                : host::interruption_note(s).empty()
                                    ? "last"
                                    : "last saved (" + std::to_string(s.history.size()) + ")");
  if (const std::string note = host::interruption_note(s); !note.empty()) out += "warning: not finished: " + note + "\n";
  out += fmt::format("{:<8} {:>6} {:>8} {:>9} {:>12} {:>12} {:>9}\n", "split", "images", "loss", "accuracy",
                     "AUROC micro", "AUROC macro", "F1 macro");
  for (const auto& split : s.splits)
    out += fmt::format("{:<8} {:>6} {:>8} {:>9} {:>12} {:>12} {:>9}\n", split.name, split.size,
                       metric(split.metrics.loss), metric(split.metrics.accuracy), metric(split.metrics.auroc_micro),
                       metric(split.metrics.auroc_macro), metric(split.metrics.f1_macro));
  // Patch training: every figure above is per photo; single patches are shown apart, labelled.
  std::string patches;
  for (const auto& split : s.splits)
    if (std::isfinite(split.patch_accuracy)) patches += fmt::format("  {} {}", split.name, metric(split.patch_accuracy));
  if (!patches.empty()) out += "patch-level accuracy (single grid patches, not photos):" + patches + "\n";
  if (const host::SplitResult* test = s.held_out()) {
    out += fmt::format("\n{} split per class\n{:<10} {:>9} {:>7} {:>7} {:>6} {:>6}\n", test->name, "class",
                       "precision", "recall", "F1", "AUROC", "images");
    for (size_t c = 0; c < test->metrics.per_class.size(); ++c) {
      const auto& pc = test->metrics.per_class[c];
      out += fmt::format("{:<10} {:>9} {:>7} {:>7} {:>6} {:>6}\n", c < s.classes.size() ? s.classes[c] : "?",
                         metric(pc.precision), metric(pc.recall), metric(pc.f1),
                         metric(test->metrics.auroc_per_class[c]), pc.support);
    }
    out += "\n" + format_confusion_matrix(test->metrics.confusion, s.classes);
  }
  out += "AUROC micro: one ROC over the one-hot matrix (Keras' AUC, the study's \"Test AUROC\"); "
         "AUROC macro: mean one-vs-rest AUROC\n";
  return out;
}

}  // namespace

void add_run_commands(CLI::App& app) {
  static std::vector<std::string> arguments;
  static std::string resume;
  static bool resume_latest = false;
  static int64_t epochs = 0;
  static int64_t seed = -1;
  static std::vector<std::string> plugin_paths;
  static bool markdown = false;
  auto* run = app.add_subcommand("run", "Train one or more experiments and compare them in a table");
  run->add_option("config", arguments,
                  "Experiment config files (TOML), then KEY=VALUE overrides for all of them (train.epochs=5)");
  run->add_option("--resume", resume, "Continue the run in this folder from its last checkpoint");
  run->add_flag("--resume-latest", resume_latest, "Continue the newest run of the config's experiment");
  run->add_option("--epochs", epochs, "Train this many epochs instead of the config's")->check(CLI::Range(1, 100000));
  run->add_option("--seed", seed, "Use this seed instead of the config's")->check(CLI::NonNegativeNumber);
  // One folder per --plugin-path (repeat it for more), so a config after it stays a config.
  run->add_option("--plugin-path", plugin_paths, "Also search this folder for plugins (repeatable)")
      ->allow_extra_args(false);
  run->add_flag("--markdown", markdown, "Print the comparison table as Markdown (for docs/results.md)");
  // Data-parallel training (docs/scaling.md): this machine's processes, the machines, and
  // where rank 0 listens.
  static host::LaunchSettings launch;
  run->add_option("--nproc", launch.nproc, "Train data-parallel in this many processes on this machine")
      ->check(CLI::Range(1, 1024));
  run->add_option("--nnodes", launch.nnodes, "Machines taking part (each runs --nproc processes)")
      ->check(CLI::Range(1, 1024));
  run->add_option("--node-rank", launch.node_rank, "This machine's number, 0 .. nnodes-1 (0 hosts rank 0)")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--master", launch.master, "HOST:PORT where rank 0 listens (with --nnodes; default: a free "
                                             "port on 127.0.0.1)");
  run->add_option("--timeout", launch.timeout_s, "Seconds a rank waits for the others before it stops")
      ->check(CLI::Range(1.0, 86400.0));
  on_run(run, [] {
    const bool distributed = launch.nproc > 1 || launch.nnodes > 1;
    // The launcher checks the configs before it starts any rank (below), so a mistake is said
    // once, not once per rank after they have met.
    const bool launcher = distributed && std::getenv("BACHLAB_WORLD_SIZE") == nullptr;
    std::shared_ptr<host::DataParallel> parallel = launcher ? nullptr : host::DataParallel::from_environment();
    const ConfigArguments given = split_config_arguments(arguments);
    const std::vector<std::string>& configs = given.files;
    if (configs.empty() && resume.empty())
      throw UsageError("bachlab run needs a config file (e.g. bachlab run configs/quickstart.toml), or --resume RUN_DIR");
    if (!resume.empty() && configs.size() > 0)
      throw UsageError("--resume RUN_DIR continues one run from its own saved config; drop the config file(s) "
                       "or drop --resume");
    if (resume_latest && configs.size() != 1)
      throw UsageError(fmt::format("--resume-latest needs exactly one config file (got {})", configs.size()));
    host::RunOptions options;
    if (epochs > 0) options.overrides.epochs = epochs;
    if (seed >= 0) options.overrides.seed = static_cast<uint64_t>(seed);
    if (!resume.empty()) options.resume = fs::path(resume);
    options.resume_latest = resume_latest;
    options.config_overrides = given.overrides;
    options.progress = &std::cerr;
    options.interactive = isatty(fileno(stderr));
    for (const auto& p : plugin_paths) options.plugin_paths.emplace_back(p);
    options.parallel = parallel;
    options.data_parallel = distributed;
    const std::vector<std::string> targets = configs.empty() ? std::vector<std::string>{""} : configs;

    // Every config and its photos before the first epoch: a typo in the last config must
    // not wait for the others to train.
    std::vector<std::string> failures;
    for (const auto& config : targets) {
      try {
        host::check_experiment(config, options);
      } catch (const Error& e) {
        failures.push_back(e.what());
      }
    }
    if (!failures.empty()) {
      for (const auto& f : failures) std::cerr << "error: " << f << "\n";
      if (targets.size() > 1)
        std::cerr << fmt::format("{} of {} configs have problems; nothing was trained\n", failures.size(),
                                 targets.size());
      return 1;
    }
    if (launcher) return host::launch_ranks(program_arguments(), launch);

    std::vector<host::RunSummary> summaries;
    std::vector<std::string> failed;
    // Ctrl-C stops at the next batch and says how to resume. Data-parallel ranks keep the
    // default (a rank stopping alone would leave the others waiting in a collective).
    std::optional<host::InterruptScope> interruptible;
    if (!parallel) interruptible.emplace();
    for (const auto& config : targets) {
      try {
        summaries.push_back(host::run_experiment(config, options));
      } catch (const host::Interrupted& stop) {
        std::cerr << "\n" << stop.what() << "\n";
        if (!stop.resume_dir.empty())
          std::cerr << "resume with: bachlab run --resume " << stop.resume_dir.string() << "\n";
        // 128 + the signal, as a shell reports a process the signal ended.
        return 128 + stop.signal();
      } catch (const Error& e) {
        // One broken experiment must not throw away the others of a comparison.
        if (targets.size() == 1) throw;
        failed.push_back(config);
        std::cerr << "error: " << config << ": " << e.what() << "\n";
      }
    }
    if (parallel && !parallel->leader()) return failed.empty() ? 0 : 1;
    if (!summaries.empty()) std::cout << "\n" << host::format_comparison_table(summaries, markdown);
    if (!failed.empty()) {
      std::string list;
      for (const auto& f : failed) list += (list.empty() ? "" : ", ") + f;
      std::cerr << fmt::format("{} of {} experiments failed (errors above): {}\n", failed.size(), targets.size(), list);
    }
    return failed.empty() ? 0 : 1;
  });

  static std::vector<std::string> eval_arguments;
  auto* eval = app.add_subcommand("eval", "Measure a saved run again on its own split and rewrite its report");
  eval->add_option("run_dir", eval_arguments,
                   "Run folder, e.g. runs/model4a/20240101-120000, then KEY=VALUE overrides of its saved config "
                   "(data.root=/elsewhere)")
      ->required();
  static std::string eval_data;
  eval->add_option("--data", eval_data,
                   "Measure the run's model on the labelled photos of this folder instead (the run's layout: "
                   "BACH's Photos/<class>/ or one folder per class); the run folder is left as it is");
  on_run(eval, [] {
    const ConfigArguments given = split_config_arguments(eval_arguments);
    if (given.files.size() != 1)
      throw UsageError(fmt::format("bachlab eval takes one run folder (got {})", given.files.size()));
    if (!eval_data.empty()) {
      if (!given.overrides.empty())
        throw UsageError("bachlab eval --data measures the run as it is; drop the KEY=VALUE overrides");
      const host::RunSummary s = host::evaluate_on_photos(given.files.front(), eval_data);
      std::cout << "on the photos of " << s.data_root.string() << " (the run folder is not changed)\n"
                << format_evaluation(s);
      return 0;
    }
    std::cout << format_evaluation(host::evaluate_run(given.files.front(), &std::cerr, given.overrides));
    return 0;
  });

  static std::string export_dir, export_out;
  static std::vector<std::string> export_plugin_paths;
  auto* exporter = app.add_subcommand(
      "export", "Write a run's model as TorchScript (model.pt, callable from Python and C++ without bachlab) with "
                "its preprocessing (preprocessing.json)");
  exporter->add_option("run_dir", export_dir, "Run folder, e.g. runs/model4a/20240101-120000")->required();
  exporter->add_option("--out", export_out, "Folder to write model.pt and preprocessing.json to")->required();
  exporter->add_option("--plugin-path", export_plugin_paths, "Also search this folder for plugins (repeatable)")
      ->allow_extra_args(false);
  on_run(exporter, [] {
    const host::ExportedModel exported = host::export_model(
        export_dir, export_out, std::vector<fs::path>(export_plugin_paths.begin(), export_plugin_paths.end()));
    std::cout << fmt::format("exported the model of {}\n  {}: TorchScript, forward(x) with x float32 (N, 3, {}, {}) "
                             "RGB in [0,1] gives class probabilities (loaded back: max difference {:.2g})\n  {}: "
                             "resize, stain target, patch grid, TTA and aggregation as predict does them "
                             "(docs/export.md)\n",
                             exported.from.string(), exported.model.string(), exported.input_size,
                             exported.input_size, exported.max_difference, exported.preprocessing.string());
    return 0;
  });

  static std::string predict_dir;
  static std::vector<std::string> images;
  static std::string format = "table";
  auto* predict = app.add_subcommand("predict", "Class probabilities of photos (TIFF, PNG, JPEG) from a saved run");
  predict->add_option("run_dir", predict_dir, "Run folder, e.g. runs/model4a/20240101-120000")->required();
  predict->add_option("images", images, "Photos to classify, or folders of them (searched with their subfolders)")
      ->required();
  predict->add_option("--format", format, "table, csv or json")->check(CLI::IsMember({"table", "csv", "json"}));
  static std::string heatmap_dir;
  predict->add_option("--heatmap", heatmap_dir,
                      "Also write <DIR>/<photo>.heatmap.png per photo: each class's patch probabilities over it");
  on_run(predict, [] {
    std::vector<std::string> classes;
    const std::vector<fs::path> files = photos_to_predict(images);
    if (!heatmap_dir.empty()) {
      // Before any photo is predicted, so a folder that cannot be made costs no work.
      std::error_code error;
      fs::create_directories(heatmap_dir, error);
      if (error || !fs::is_directory(heatmap_dir))
        throw Error("--heatmap " + heatmap_dir + ": cannot create the folder (" +
                    (error ? error.message() : std::string("a file of that name is in the way")) + ")");
    }
    auto predictions = host::predict_images(predict_dir, files, &classes);
    std::cout << format_predictions(predictions, classes, format);
    // A photo of glass still gets probabilities (they sum to 1); say that they describe no
    // tissue, so a blank or out-of-focus field is not read as a diagnosis.
    for (const auto& p : predictions)
      if (const double tissue = host::tissue_fraction(p.photo); tissue < kLeastTissue)
        std::cerr << fmt::format("warning: {}: only {:.1f}% of the photo is tissue (the rest is glass); its "
                                 "prediction says little about tissue\n",
                                 p.image, 100.0 * tissue);
    if (!heatmap_dir.empty()) {
      const std::vector<fs::path> heatmaps = heatmap_files(heatmap_dir, files);
      // Said after the progress line is done, so its line is not broken by them.
      std::string said;
      host::Progress progress("drawing heatmaps", predictions.size());
      for (size_t i = 0; i < predictions.size(); ++i, progress.advance()) {
        const auto& p = predictions[i];
        if (p.patch_size == 0) {
          said += "no heatmap of " + p.image + ": the model sees the whole photo and gives one probability per class "
                  "for it, not a map (a patch model, [data.patches], gives one per patch)\n";
          continue;
        }
        host::write_png_atomic(heatmaps[i], host::draw_heatmap(host::heatmap_input(p, classes)));
        said += "heatmap of " + p.image + ": " + heatmaps[i].string() + "\n";
      }
      progress.finish();
      std::cerr << said;
    }
    return 0;
  });
}

}  // namespace bachlab::cli
