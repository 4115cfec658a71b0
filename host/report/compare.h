#pragma once
// Runs side by side: the table `bachlab run` ends with, and `bachlab compare RUN_DIR...`
// for runs made at different times. One table of
// the settings that differ between their saved configs, their final metrics and training
// time; with --html, the same table and their validation curves overlaid.

#include "host/report/run_summary.h"

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace bachlab::host {

/// The width a table printed on a terminal keeps to: wider content is wrapped or moved to a
/// table of its own.
inline constexpr size_t kTableColumns = 120;

/// The comparison table `bachlab run` ends with: experiment, key params, train/val/test
/// accuracy, test AUROC (micro and macro) and time; "markdown" or "text" layout.
std::string format_comparison_table(const std::vector<RunSummary>& runs, bool markdown = false);

/// One run folder as compare reads it: metrics.json and the saved config.toml.
struct ComparedRun {
  std::filesystem::path folder;
  RunSummary summary;
  /// Every value of config.toml as (dotted key, TOML text), e.g. ("optimizer.lr", "0.001");
  /// an array of tables element by element ("augment.1.plugin").
  std::vector<std::pair<std::string, std::string>> settings;
};

/// Reads a run folder; throws Error naming the folder if it is not a finished run.
ComparedRun read_compared_run(const std::filesystem::path& folder);

/// The keys whose values differ between the runs (absent counts as a value), in key order.
std::vector<std::string> differing_settings(const std::vector<ComparedRun>& runs);

/// The text table: run (its folder name, which is its start time), each differing setting, val and test accuracy, test
/// AUROC micro and macro, epochs, time (summed over folds for a cross-validation). When the
/// settings would make it wider than kTableColumns, the runs are numbered and the settings
/// follow in a table of their own, a row per setting and a column per run.
std::string format_run_comparison(const std::vector<ComparedRun>& runs);

/// The HTML page: the numbered results, the settings that differ (a row per setting), and
/// the runs' validation loss and accuracy curves overlaid.
std::string format_run_comparison_html(const std::vector<ComparedRun>& runs);

}  // namespace bachlab::host
