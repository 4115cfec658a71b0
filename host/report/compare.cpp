#include "host/report/compare.h"

#include "host/config/toml_text.h"
#include "host/report/plots.h"
#include "host/util/atomic_file.h"
#include "host/util/html.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>
#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

namespace bachlab::host {

namespace fs = std::filesystem;

namespace {

// Every value under `table` as (dotted key, TOML text).
void flatten(const toml::table& table, const std::string& prefix, std::vector<std::pair<std::string, std::string>>& out) {
  for (auto&& [key, node] : table) {
    const std::string name = prefix.empty() ? std::string(key.str()) : prefix + "." + std::string(key.str());
    if (const auto* child = node.as_table()) {
      flatten(*child, name, out);
    } else if (const auto* array = node.as_array(); array && array->is_array_of_tables()) {
      for (size_t i = 0; i < array->size(); ++i) flatten(*array->get(i)->as_table(), name + "." + std::to_string(i + 1), out);
    } else {
      out.emplace_back(name, toml_value_text(node));
    }
  }
}

// Columns a string takes in a terminal: UTF-8 continuation bytes ("±") take none.
size_t display_width(const std::string& text) {
  return static_cast<size_t>(std::count_if(text.begin(), text.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

std::string pad(const std::string& text, size_t width, bool left) {
  const std::string fill(width > display_width(text) ? width - display_width(text) : 0, ' ');
  return left ? text + fill : fill + text;
}

std::string value_of(const ComparedRun& run, const std::string& key) {
  for (const auto& [k, v] : run.settings)
    if (k == key) return v;
  return "-";
}

// Distinct, readable colours (BGR) for overlaid curves; they repeat after ten runs.
const std::vector<cv::Scalar>& palette() {
  static const std::vector<cv::Scalar> colors = {
      {180, 119, 31}, {14, 127, 255}, {44, 160, 44},  {40, 39, 214},  {189, 103, 148},
      {75, 86, 140},  {194, 119, 227}, {127, 127, 127}, {34, 189, 188}, {207, 190, 23}};
  return colors;
}

std::string run_label(const ComparedRun& run) {
  return run.summary.experiment + " " + run.folder.filename().string();
}

// The results as rows of cells, the first row the header: the run (and when it started),
// then the values of `settings` (keys), then the metrics.
std::vector<std::vector<std::string>> table_rows(const std::vector<ComparedRun>& runs,
                                                 const std::vector<std::string>& settings, bool started) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header = {"run"};
  if (started) header.push_back("started");
  for (const auto& key : settings) header.push_back(key);
  for (const char* column : {"val acc", "test acc", "test AUROC micro", "test AUROC macro", "epochs", "time"})
    header.push_back(column);
  rows.push_back(header);
  for (const auto& run : runs) {
    const RunSummary& s = run.summary;
    std::vector<std::string> row = {run_label(run)};
    if (started) row.push_back(s.started);
    for (const auto& key : settings) row.push_back(value_of(run, key));
    const SplitResult* test = s.split("test");
    auto metric = [](const SplitResult* split, double SplitMetrics::*field) {
      return split && std::isfinite(split->metrics.*field) ? fmt::format("{:.3f}", split->metrics.*field)
                                                          : std::string("-");
    };
    row.push_back(format_accuracy(s, "val"));
    row.push_back(format_accuracy(s, "test"));
    row.push_back(metric(test, &SplitMetrics::auroc_micro));
    row.push_back(metric(test, &SplitMetrics::auroc_macro));
    row.push_back(std::to_string(s.history.size()));
    row.push_back(format_duration(s.seconds) + (s.fold_val_accuracy.empty() ? "" : " (sum of folds)"));
    rows.push_back(row);
  }
  return rows;
}

// The settings that differ with a row each and a column per run (numbered as in the
// results table), for when they do not fit beside the results.
std::vector<std::vector<std::string>> settings_rows(const std::vector<ComparedRun>& runs,
                                                    const std::vector<std::string>& settings) {
  std::vector<std::vector<std::string>> rows(1, {"setting"});
  for (size_t i = 0; i < runs.size(); ++i) rows[0].push_back(fmt::format("#{}", i + 1));
  for (const auto& key : settings) {
    rows.push_back({key});
    for (const auto& run : runs) rows.back().push_back(value_of(run, key));
  }
  return rows;
}

// Rows as aligned text columns two spaces apart; the first `left` columns are left-aligned.
std::string aligned(const std::vector<std::vector<std::string>>& rows, size_t left) {
  std::vector<size_t> width(rows.front().size(), 0);
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], display_width(row[c]));
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) line += (c ? "  " : "") + pad(row[c], width[c], c < left);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

size_t widest_line(const std::string& text) {
  size_t widest = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) widest = std::max(widest, display_width(line));
  return widest;
}

std::vector<std::vector<std::string>> numbered(std::vector<std::vector<std::string>> rows) {
  for (size_t r = 0; r < rows.size(); ++r) rows[r].insert(rows[r].begin(), r ? fmt::format("#{}", r) : "#");
  return rows;
}

}  // namespace

ComparedRun read_compared_run(const fs::path& folder) {
  const fs::path metrics = folder / "metrics.json";
  if (!fs::exists(metrics) && fs::exists(folder / "run.json")) {
    // A run folder whose training has not finished: killed, interrupted or still running.
    std::ifstream history(folder / "history.csv");
    const auto lines = std::count(std::istreambuf_iterator<char>(history), {}, '\n');
    const int64_t epochs = lines > 0 ? static_cast<int64_t>(lines) - 1 : 0;
    throw Error(fmt::format("{}: this run has not finished ({} {} saved; it was interrupted or is still running), so "
                            "it has no final metrics to compare; `bachlab run --resume {}` finishes it, or leave it "
                            "out",
                            folder.string(), epochs, epochs == 1 ? "epoch" : "epochs", folder.string()));
  }
  if (!fs::exists(metrics))
    throw Error(folder.string() + ": not a run folder (it has no run.json or metrics.json); pass folders made by "
                "`bachlab run`, such as runs/<experiment>/<timestamp>");
  ComparedRun run;
  run.folder = folder;
  try {
    run.summary = run_summary_from_json(nlohmann::json::parse(read_file(metrics)), metrics);
  } catch (const nlohmann::json::exception& e) {
    throw Error(metrics.string() + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  const fs::path config = folder / "config.toml";
  if (fs::exists(config)) {
    try {
      flatten(toml::parse(read_file(config), config.string()), "", run.settings);
    } catch (const toml::parse_error& e) {
      throw Error(config.string() + ":" + std::to_string(e.source().begin.line) + ": TOML syntax error: " +
                  std::string(e.description()));
    }
  }
  return run;
}

std::vector<std::string> differing_settings(const std::vector<ComparedRun>& runs) {
  std::set<std::string> keys;
  for (const auto& run : runs)
    for (const auto& [key, value] : run.settings) keys.insert(key);
  std::vector<std::string> out;
  for (const auto& key : keys) {
    std::set<std::string> values;
    for (const auto& run : runs) values.insert(value_of(run, key));
    if (values.size() > 1) out.push_back(key);
  }
  return out;
}

std::string format_run_comparison(const std::vector<ComparedRun>& runs) {
  // The run's folder name is its start time already: the terminal is spared a column.
  const std::vector<std::string> differing = differing_settings(runs);
  std::string out = aligned(table_rows(runs, differing, false), 1);
  if (differing.empty()) return out + "(the runs' saved configs are identical)\n";
  // Many settings, or long values, would make lines of hundreds of columns: then the
  // settings get a table of their own, a row per setting and a column per run.
  if (widest_line(out) <= kTableColumns) return out;
  return aligned(numbered(table_rows(runs, {}, false)), 2) + "\nsettings that differ:\n" +
         aligned(settings_rows(runs, differing), runs.size() + 1);
}

std::string format_run_comparison_html(const std::vector<ComparedRun>& runs) {
  std::ostringstream h;
  h << html_page_start("bachlab compare",
                       "table.results td:nth-child(-n+3),table.results th:nth-child(-n+3),table.settings td,"
                       "table.settings th{text-align:left}td{max-width:30em;overflow-wrap:anywhere}")
    << "<h1>" << runs.size() << " runs compared</h1>\n<p>Settings are those whose values differ between the runs' "
       "saved config.toml files (\"-\": not set). Time is the training time (a cross-validation's: the sum over its "
       "folds).</p>\n";
  auto write_table = [&h](const std::vector<std::vector<std::string>>& rows, const char* css_class) {
    h << "<table class=\"" << css_class << "\">\n";
    for (size_t r = 0; r < rows.size(); ++r) {
      h << "<tr>";
      for (const auto& cell : rows[r])
        h << (r == 0 ? "<th>" : "<td>") << html_escape(cell) << (r == 0 ? "</th>" : "</td>");
      h << "</tr>\n";
    }
    h << "</table>\n";
  };
  // The settings in a table of their own, a row each, so that many of them (or long
  // values such as paths) never make the page scroll sideways.
  write_table(numbered(table_rows(runs, {}, true)), "results");
  const std::vector<std::string> differing = differing_settings(runs);
  if (differing.empty()) {
    h << "<p>The runs' saved configs are identical.</p>\n";
  } else {
    h << "<h2>Settings that differ</h2>\n";
    write_table(settings_rows(runs, differing), "settings");
  }
  h << "<h2>Validation curves</h2>\n";
  for (const auto& [title, field] : {std::pair<std::string, double EpochMetrics::*>{"loss", &EpochMetrics::loss},
                                     {"accuracy", &EpochMetrics::accuracy}}) {
    std::vector<Series> series;
    for (size_t i = 0; i < runs.size(); ++i) {
      Series s{run_label(runs[i]), {}, palette()[i % palette().size()]};
      for (const auto& record : runs[i].summary.history) s.values.push_back(record.val.*field);
      series.push_back(std::move(s));
    }
    // Neither a loss nor an accuracy goes below 0; an accuracy not above 1.
    CurveOptions options;
    options.floor = 0;
    if (title == "accuracy") options.ceiling = 1;
    if (title == "accuracy" && !runs.front().summary.classes.empty())
      options.chance = 1.0 / static_cast<double>(runs.front().summary.classes.size());
    std::vector<uint8_t> png;
    cv::imencode(".png", draw_learning_curve("validation " + title, title, series, options), png);
    h << "<img alt=\"validation " << title << " per epoch\" src=\"data:image/png;base64," << base64_encode(png)
      << "\">\n";
  }
  h << kHtmlPageEnd;
  return h.str();
}

namespace {

// `first`, then `items` separated by ", ", wrapped before `width` columns; each further line
// starts with `indent`.
std::string wrapped_list(std::string line, const std::vector<std::string>& items, size_t width,
                         const std::string& indent) {
  std::string out;
  bool line_has_item = false;
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string piece = items[i] + (i + 1 < items.size() ? "," : "");
    if (line_has_item && line.size() + 1 + piece.size() > width) out += line + "\n", line = indent, line_has_item = false;
    line += (line_has_item ? " " : "") + piece;
    line_has_item = true;
  }
  return out + line;
}

}  // namespace

std::string format_comparison_table(const std::vector<RunSummary>& runs, bool markdown) {
  // The params every run has alike are said once, above the table and wrapped; the params
  // column keeps those that differ, so that a row stays as short as the runs allow.
  std::vector<std::string> shared;
  auto alike = [&](const std::pair<std::string, std::string>& param) {
    return std::all_of(runs.begin(), runs.end(), [&](const RunSummary& r) {
      return std::find(r.params.begin(), r.params.end(), param) != r.params.end();
    });
  };
  if (!runs.empty())
    for (const auto& param : runs.front().params)
      if (alike(param)) shared.push_back(param.first + "=" + param.second);
  std::vector<std::string> differing(runs.size());
  for (size_t i = 0; i < runs.size(); ++i)
    for (const auto& param : runs[i].params)
      if (!alike(param)) differing[i] += (differing[i].empty() ? "" : ", ") + param.first + "=" + param.second;
  const bool params_column = std::any_of(differing.begin(), differing.end(), [](const auto& d) { return !d.empty(); });

  std::vector<std::vector<std::string>> rows;
  rows.push_back({"experiment"});
  if (params_column) rows.back().push_back("params");
  for (const char* column :
       {"train acc", "val acc", "test acc", "test AUROC micro", "test AUROC macro", "epochs", "time"})
    rows.back().push_back(column);
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunSummary& r = runs[i];
    auto acc = [&](const std::string& name) { return format_accuracy(r, name); };
    const SplitResult* test = r.split("test");
    rows.push_back({r.experiment});
    if (params_column) rows.back().push_back(differing[i].empty() ? "-" : differing[i]);
    for (const std::string& value :
         {acc("train"), acc("val"), acc("test"), test ? metric_cell(test->metrics.auroc_micro, "{:.3f}") : "-",
          test ? metric_cell(test->metrics.auroc_macro, "{:.3f}") : "-", std::to_string(r.history.size()),
          format_duration(r.seconds)})
      rows.back().push_back(value);
  }
  const size_t left_columns = params_column ? 2 : 1;
  std::vector<size_t> width(rows.front().size(), 0);
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], display_width(row[c]));
  std::string out;
  if (!shared.empty())
    out += wrapped_list(runs.size() == 1 ? "params: " : "params of every run: ", shared, kTableColumns, "  ") + "\n" +
           (markdown ? "\n" : "");
  for (size_t i = 0; i < rows.size(); ++i) {
    std::string line = markdown ? "|" : "";
    for (size_t c = 0; c < rows[i].size(); ++c) {
      const std::string padded = pad(rows[i][c], width[c], c < left_columns);
      line += markdown ? " " + padded + " |" : (c ? "  " : "") + padded;
    }
    out += line + "\n";
    if (i == 0 && markdown) {
      std::string rule = "|";
      for (size_t c = 0; c < width.size(); ++c)
        rule += (c < left_columns ? ":" + std::string(width[c] + 1, '-') : std::string(width[c] + 1, '-') + ":") + "|";
      out += rule + "\n";
    }
  }
  return out;
}

}  // namespace bachlab::host
