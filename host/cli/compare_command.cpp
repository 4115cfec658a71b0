// `bachlab compare RUN_DIR... [--html OUT]`: run folders made at different times, side by
// side (host/report/compare.h).
#include "host/cli/commands.h"
#include "host/report/compare.h"
#include "host/util/atomic_file.h"

#include <iostream>

namespace bachlab::cli {

void add_compare_commands(CLI::App& app) {
  auto* compare = app.add_subcommand(
      "compare", "Compare finished runs: the settings that differ, accuracy, AUROC, time, and learning curves");
  static std::vector<std::string> folders;
  static std::string html;
  compare->add_option("RUN_DIR", folders, "Run folders, e.g. runs/model4a/20240101-120000 (two or more)")->required();
  compare->add_option("--html", html, "Also write the table and the runs' validation curves overlaid to this page");
  on_run(compare, [] {
    if (folders.size() < 2)
      throw UsageError("bachlab compare needs two or more run folders (got " + std::to_string(folders.size()) + ")");
    std::vector<host::ComparedRun> runs;
    for (const auto& folder : folders) runs.push_back(host::read_compared_run(folder));
    // An interrupted run that was evaluated has final metrics, of fewer epochs than planned.
    for (const auto& run : runs)
      if (const std::string note = host::interruption_note(run.summary); !note.empty())
        std::cerr << "warning: " << run.folder.string() << " did not finish: " << note << "\n";
    std::cout << host::format_run_comparison(runs);
    if (!html.empty()) {
      host::write_file_atomic(html, host::format_run_comparison_html(runs));
      std::cout << "wrote " << html << "\n";
    }
    return 0;
  });
}

}  // namespace bachlab::cli
