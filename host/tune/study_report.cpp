#include "host/tune/study_report.h"

#include "host/report/run_report.h"
#include "host/train/run_folder.h"
#include "host/tune/study.h"
#include "host/util/atomic_file.h"
#include "host/util/html.h"
#include "host/util/ticks.h"
#include "host/util/time_text.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <ostream>
#include <set>
#include <sstream>

namespace bachlab::host {

namespace fs = std::filesystem;
using sdk::Dimension;
using sdk::TrialRecord;

namespace {

const cv::Scalar kBlack(0, 0, 0);
const cv::Scalar kGrey(150, 150, 150);
const cv::Scalar kGrid(225, 225, 225);
const cv::Scalar kBlue(180, 110, 30);
const cv::Scalar kOrange(20, 130, 240);
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

std::string csv_cell(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string scalar_cell(const sdk::Scalar& s) {
  if (const auto* text = std::get_if<std::string>(&s)) return *text;
  return sdk::to_string(s);
}

std::string number(double v) { return std::isfinite(v) ? sdk::to_string(sdk::Scalar(v)) : ""; }

void put_text(cv::Mat& image, const std::string& s, cv::Point at, double scale, const cv::Scalar& color,
              double align_x = 0.0) {
  int baseline = 0;
  cv::Size size = cv::getTextSize(s, kFont, scale, 1, &baseline);
  cv::putText(image, s, {at.x - static_cast<int>(align_x * size.width), at.y}, kFont, scale, color, 1, cv::LINE_AA);
}

std::string tick_label(double v) {
  char buffer[32];
  if (std::fabs(v) < 1e-12) v = 0;  // never "-0"
  const double m = std::fabs(v);
  std::snprintf(buffer, sizeof buffer, (m != 0 && (m < 1e-2 || m >= 1e5)) ? "%.0e" : "%.3g", v);
  return buffer;
}

// A plot frame: axes, grid and labels; maps data to pixels.
struct Frame {
  cv::Mat image;
  cv::Rect plot;
  double x_lo, x_hi, y_lo, y_hi;
  bool x_log = false;

  Frame(const std::string& title, const std::string& x_label, const std::string& y_label, double xl, double xh,
        double yl, double yh, bool log_x)
      : image(480, 800, CV_8UC3, cv::Scalar(255, 255, 255)), plot(80, 50, 800 - 80 - 30, 480 - 50 - 60),
        x_lo(xl), x_hi(xh), y_lo(yl), y_hi(yh), x_log(log_x) {
    // Every trial scoring the same: a narrow band around it, not one running into negative
    // accuracies.
    if (y_hi - y_lo < 1e-12) {
      const double half = 0.05 * std::max(1.0, std::abs(y_lo));
      y_lo -= half, y_hi += half;
    }
    const double pad = (y_hi - y_lo) * 0.05;
    y_lo -= pad;
    y_hi += pad;
    // Ticks at a round step (1, 2 or 5 times a power of ten), counted from an integer so
    // that rounding never gives "-0" or an uneven label.
    const double step = nice_step(y_hi - y_lo, 5);
    for (auto i = static_cast<int64_t>(std::ceil(y_lo / step)); i * step <= y_hi + step * 1e-9; ++i) {
      const double v = std::abs(i) == 0 ? 0.0 : static_cast<double>(i) * step;
      const int y = py(v);
      cv::line(image, {plot.x, y}, {plot.x + plot.width, y}, kGrid, 1);
      put_text(image, tick_label(v), {plot.x - 8, y + 5}, 0.45, kBlack, 1.0);
    }
    cv::rectangle(image, plot, kBlack, 1);
    put_text(image, title, {image.cols / 2, 30}, 0.7, kBlack, 0.5);
    put_text(image, x_label, {plot.x + plot.width / 2, image.rows - 12}, 0.55, kBlack, 0.5);
    put_text(image, y_label, {8, 30}, 0.5, kBlack);
  }

  int px(double x) const {
    double lo = x_lo, hi = x_hi, v = x;
    if (x_log) lo = std::log(lo), hi = std::log(hi), v = std::log(v);
    const double t = hi > lo ? (v - lo) / (hi - lo) : 0.5;
    return plot.x + 10 + static_cast<int>(t * (plot.width - 20));
  }
  int py(double y) const { return plot.y + plot.height - static_cast<int>((y - y_lo) / (y_hi - y_lo) * plot.height); }

  void x_tick(double x, const std::string& label) {
    const int at = px(x);
    cv::line(image, {at, plot.y + plot.height}, {at, plot.y + plot.height + 5}, kBlack, 1);
    put_text(image, label, {at, plot.y + plot.height + 22}, 0.45, kBlack, 0.5);
  }
};

std::vector<const StoredTrial*> complete(const std::vector<StoredTrial>& trials) {
  std::vector<const StoredTrial*> out;
  for (const auto& t : trials)
    if (t.record.state == TrialRecord::State::Complete && std::isfinite(t.record.score)) out.push_back(&t);
  return out;
}

std::pair<double, double> objective_range(const std::vector<const StoredTrial*>& done) {
  double lo = INFINITY, hi = -INFINITY;
  for (const auto* t : done) lo = std::min(lo, t->objective), hi = std::max(hi, t->objective);
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  return {lo, hi};
}

double numeric_value(const sdk::Scalar& value) {
  if (const auto* i = std::get_if<int64_t>(&value)) return static_cast<double>(*i);
  if (const auto* f = std::get_if<double>(&value)) return *f;
  return NAN;
}

// Ranks from 1, ties sharing the mean of their places.
std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> out(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    for (size_t k = i; k <= j; ++k) out[order[k]] = static_cast<double>(i + j) / 2 + 1;
    i = j + 1;
  }
  return out;
}

// Pearson's correlation; NaN if either side is constant.
double correlation(const std::vector<double>& a, const std::vector<double>& b) {
  const double n = static_cast<double>(a.size());
  const double mean_a = std::accumulate(a.begin(), a.end(), 0.0) / n;
  const double mean_b = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += (a[i] - mean_a) * (b[i] - mean_b);
    aa += (a[i] - mean_a) * (a[i] - mean_a);
    bb += (b[i] - mean_b) * (b[i] - mean_b);
  }
  if (!(aa > 0) || !(bb > 0)) return NAN;
  return ab / std::sqrt(aa * bb);
}

// A trial's state as the study page and `--status` show it: a running trial whose worker
// on this machine is gone is "interrupted"; one handed back is "waiting".
std::string shown_state(const StoredTrial& t) {
  if (t.record.state != TrialRecord::State::Running) return state_name(t.record.state);
  if (t.owner.empty()) return "waiting";
  return owner_alive(t.owner) ? "running" : "interrupted";
}

// A value in a table cell: floats to 4 significant digits, the rest as written.
std::string short_value(const sdk::Scalar& value) {
  if (const auto* f = std::get_if<double>(&value)) return fmt::format("{:.4g}", *f);
  return scalar_cell(value);
}

}  // namespace

std::string format_trials_csv(const std::vector<StoredTrial>& trials, const sdk::SearchSpace& space,
                              const TuneSettings& settings) {
  std::string out = "id,state";
  for (const auto& d : space.dimensions) out += "," + csv_cell(d.name);
  out += ",epochs,epochs_used,resume_from," + settings.objective + ",seconds,attempts,message\n";
  for (const auto& t : trials) {
    out += std::to_string(t.record.id) + "," + state_name(t.record.state);
    for (const auto& d : space.dimensions) {
      auto it = t.record.params.find(d.name);
      out += "," + (it == t.record.params.end() ? std::string() : csv_cell(scalar_cell(it->second)));
    }
    out += fmt::format(",{},{},{},{},{:.2f},{},{}\n", t.record.epochs, t.epochs_used,
                       t.record.resume_from >= 0 ? std::to_string(t.record.resume_from) : "",
                       t.record.state == TrialRecord::State::Complete ? number(t.objective) : "", t.seconds,
                       t.attempts, csv_cell(t.message));
  }
  return out;
}

nlohmann::json trials_json(const std::vector<StoredTrial>& trials, const TuneSettings& settings) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& t : trials) {
    nlohmann::json params = nlohmann::json::object();
    for (const auto& [name, value] : t.record.params) std::visit([&](auto&& v) { params[name] = v; }, value);
    nlohmann::json row = {{"id", t.record.id},
                          {"state", state_name(t.record.state)},
                          {"params", params},
                          {"epochs", t.record.epochs},
                          {"epochs_used", t.epochs_used},
                          {"seconds", t.seconds},
                          {"attempts", t.attempts},
                          {"started", t.started},
                          {"finished", t.finished}};
    row["resume_from"] = t.record.resume_from >= 0 ? nlohmann::json(t.record.resume_from) : nlohmann::json(nullptr);
    row["objective"] = t.record.state == TrialRecord::State::Complete && std::isfinite(t.objective)
                           ? nlohmann::json(t.objective)
                           : nlohmann::json(nullptr);
    if (!t.message.empty()) row["message"] = t.message;
    list.push_back(std::move(row));
  }
  return {{"objective", settings.objective}, {"direction", settings.maximize ? "max" : "min"}, {"trials", list}};
}

std::vector<StoredTrial> top_trials(const std::vector<StoredTrial>& trials, int64_t k) {
  auto done = complete(trials);
  // Hyperband's short trials are not comparable with its long ones: rank the longest.
  int64_t longest = 0;
  for (const auto* t : done) longest = std::max(longest, t->record.epochs);
  std::vector<const StoredTrial*> ranked;
  for (const auto* t : done)
    if (t->record.epochs == longest) ranked.push_back(t);
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const StoredTrial* a, const StoredTrial* b) { return a->record.score > b->record.score; });
  std::vector<StoredTrial> out;
  for (size_t i = 0; i < ranked.size() && static_cast<int64_t>(i) < k; ++i) out.push_back(*ranked[i]);
  return out;
}

std::optional<StoredTrial> best_trial(const std::vector<StoredTrial>& trials) {
  auto top = top_trials(trials, 1);
  if (top.empty()) return std::nullopt;
  return top.front();
}

cv::Mat draw_best_so_far(const std::vector<StoredTrial>& trials, const TuneSettings& settings) {
  auto done = complete(trials);
  auto [lo, hi] = objective_range(done);
  const double last = trials.empty() ? 1.0 : static_cast<double>(trials.back().record.id);
  Frame frame("Best " + settings.objective + " so far (" + (settings.maximize ? "max" : "min") + ")", "trial",
              settings.objective, 0, std::max(1.0, last), lo, hi, false);
  const int64_t step = std::max<int64_t>(1, static_cast<int64_t>(std::ceil((last + 1) / 10)));
  for (int64_t i = 0; i <= static_cast<int64_t>(last); i += step) frame.x_tick(static_cast<double>(i), std::to_string(i));
  std::vector<cv::Point> line;
  double best = NAN;
  for (const auto& t : trials) {
    if (t.record.state != TrialRecord::State::Complete || !std::isfinite(t.objective)) continue;
    const cv::Point at(frame.px(static_cast<double>(t.record.id)), frame.py(t.objective));
    cv::circle(frame.image, at, 3, kGrey, cv::FILLED, cv::LINE_AA);
    if (!std::isfinite(best) || (settings.maximize ? t.objective > best : t.objective < best)) best = t.objective;
    if (!line.empty()) line.emplace_back(at.x, line.back().y);
    line.emplace_back(at.x, frame.py(best));
  }
  if (line.size() > 1) cv::polylines(frame.image, line, false, kBlue, 2, cv::LINE_AA);
  // The legend sits above the plot, right of the title: inside, the best so far of a
  // maximised objective runs along the top and went through it.
  put_text(frame.image, "- best so far", {frame.plot.x + frame.plot.width - 120, frame.plot.y - 28}, 0.45, kBlue);
  put_text(frame.image, "o each trial", {frame.plot.x + frame.plot.width - 120, frame.plot.y - 10}, 0.45, kGrey);
  return frame.image;
}

cv::Mat draw_objective_against(const std::vector<StoredTrial>& trials, const Dimension& d, const TuneSettings& settings) {
  auto done = complete(trials);
  auto [lo, hi] = objective_range(done);
  const std::string title = settings.objective + " against " + d.name;
  const bool numeric = d.type == Dimension::Type::Int || d.type == Dimension::Type::Float;
  std::vector<sdk::Scalar> categories = d.choices;
  if (d.type == Dimension::Type::Bool) categories = {false, true};
  if (d.type == Dimension::Type::Fixed) categories = {d.fixed};
  double x_lo = 0, x_hi = std::max<double>(1, static_cast<double>(categories.size()) - 1);
  if (d.type == Dimension::Type::Int) x_lo = static_cast<double>(d.int_min), x_hi = static_cast<double>(d.int_max);
  if (d.type == Dimension::Type::Float) x_lo = d.float_min, x_hi = d.float_max;
  if (x_hi <= x_lo) x_hi = x_lo + 1;
  Frame frame(title, d.name + (d.log ? " (log scale)" : ""), settings.objective, x_lo, x_hi, lo, hi,
              d.type == Dimension::Type::Float && d.log);
  if (numeric && frame.x_log) {
    // A log axis gets its ticks at 1, 2 and 5 times each power of ten in range (the ends
    // too when fewer than three of those fall inside), so equal ratios look equally far apart.
    std::vector<double> ticks;
    for (double decade = std::pow(10.0, std::floor(std::log10(x_lo))); decade <= x_hi * (1 + 1e-9); decade *= 10)
      for (double m : {1.0, 2.0, 5.0})
        if (m * decade >= x_lo * (1 - 1e-9) && m * decade <= x_hi * (1 + 1e-9)) ticks.push_back(m * decade);
    if (ticks.size() < 3) ticks.insert(ticks.begin(), x_lo), ticks.push_back(x_hi);
    for (double v : ticks) frame.x_tick(v, tick_label(v));
  } else if (numeric) {
    for (int i = 0; i <= 5; ++i) {
      const double v = x_lo + (x_hi - x_lo) * i / 5;
      frame.x_tick(v, tick_label(v));
    }
  } else {
    for (size_t c = 0; c < categories.size(); ++c) frame.x_tick(static_cast<double>(c), scalar_cell(categories[c]));
  }
  for (const auto* t : done) {
    auto it = t->record.params.find(d.name);
    if (it == t->record.params.end()) continue;
    double x = 0;
    if (numeric) {
      if (const auto* i = std::get_if<int64_t>(&it->second)) x = static_cast<double>(*i);
      else if (const auto* f = std::get_if<double>(&it->second)) x = *f;
    } else {
      auto found = std::find(categories.begin(), categories.end(), it->second);
      if (found == categories.end()) continue;
      x = static_cast<double>(found - categories.begin());
    }
    // A small deterministic spread keeps points of one category from hiding each other.
    const int jitter = numeric ? 0 : static_cast<int>((t->record.id * 7919) % 21) - 10;
    cv::circle(frame.image, {frame.px(x) + jitter, frame.py(t->objective)}, 4, kOrange, cv::FILLED, cv::LINE_AA);
  }
  return frame.image;
}

std::string format_trial_settings(const std::vector<StoredTrial>& trials, const sdk::SearchSpace& space,
                                  const TuneSettings& settings) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header = {"rank", "trial", settings.objective};
  for (const auto& d : space.dimensions)
    if (d.type != Dimension::Type::Fixed) header.push_back(d.name);
  rows.push_back(header);
  int rank = 0;
  for (const auto& t : trials) {
    std::vector<std::string> row = {std::to_string(++rank), std::to_string(t.record.id), number(t.objective)};
    for (const auto& d : space.dimensions) {
      if (d.type == Dimension::Type::Fixed) continue;
      auto it = t.record.params.find(d.name);
      row.push_back(it == t.record.params.end() ? "-" : scalar_cell(it->second));
    }
    rows.push_back(row);
  }
  std::vector<size_t> width(header.size(), 0);
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) line += (c ? "  " : "") + fmt::format("{:>{}}", row[c], width[c]);
    out += line + "\n";
  }
  return out;
}

std::string objective_plot_name(const std::string& dimension) { return "objective_" + dimension + ".png"; }

std::vector<ParameterImportance> parameter_importance(const std::vector<StoredTrial>& trials,
                                                      const sdk::SearchSpace& space, const TuneSettings& settings) {
  const auto done = complete(trials);
  std::vector<ParameterImportance> out;
  for (const auto& d : space.dimensions) {
    if (d.type == Dimension::Type::Fixed) continue;
    ParameterImportance p;
    p.name = d.name;
    p.numeric = d.type == Dimension::Type::Int || d.type == Dimension::Type::Float;
    p.statistic = p.importance = NAN;
    std::vector<double> x, y;
    std::vector<std::string> groups;
    for (const auto* t : done) {
      auto it = t->record.params.find(d.name);
      if (it == t->record.params.end()) continue;  // an inactive conditional dimension
      y.push_back(t->objective);
      if (p.numeric) x.push_back(numeric_value(it->second));
      else groups.push_back(scalar_cell(it->second));
    }
    p.trials = static_cast<int64_t>(y.size());
    if (p.trials >= 3 && p.numeric) {
      p.statistic = correlation(ranks(x), ranks(y));
      if (std::isfinite(p.statistic)) {
        p.importance = p.statistic * p.statistic;
        if (p.statistic != 0) p.better = (p.statistic > 0) == settings.maximize ? "larger" : "smaller";
      }
    } else if (p.trials >= 3) {
      // eta^2: the variance of the group means (weighted by size) over the total variance.
      const double mean = std::accumulate(y.begin(), y.end(), 0.0) / static_cast<double>(y.size());
      std::map<std::string, std::pair<double, int64_t>> sums;
      double total = 0;
      for (size_t i = 0; i < y.size(); ++i) {
        auto& [sum, count] = sums[groups[i]];
        sum += y[i], ++count;
        total += (y[i] - mean) * (y[i] - mean);
      }
      double between = 0, best_mean = NAN;
      for (const auto& [group, entry] : sums) {
        const double group_mean = entry.first / static_cast<double>(entry.second);
        between += static_cast<double>(entry.second) * (group_mean - mean) * (group_mean - mean);
        if (!std::isfinite(best_mean) || (settings.maximize ? group_mean > best_mean : group_mean < best_mean))
          best_mean = group_mean, p.better = group;
      }
      if (sums.size() >= 2 && total > 0) p.statistic = p.importance = between / total;
      else p.better.clear();
    }
    out.push_back(std::move(p));
  }
  std::stable_sort(out.begin(), out.end(), [](const ParameterImportance& a, const ParameterImportance& b) {
    return std::isfinite(a.importance) && (!std::isfinite(b.importance) || a.importance > b.importance);
  });
  return out;
}

fs::path study_page(const fs::path& folder) { return folder / "study.html"; }

namespace {

// The study page's importance table: what it measures, then one row per parameter.
void importance_table(std::ostream& h, const std::vector<ParameterImportance>& importance,
                      const std::string& objective) {
  h << "<h2>Parameters</h2>\n<p>A simple importance, one parameter at a time over the complete trials in which it "
       "was set: for int and float parameters the square of Spearman's rank correlation &rho; between the "
       "parameter and "
    << objective
    << " (how much of the objective's ordering a steady rise or fall with the parameter explains); for choice and "
       "bool parameters &eta;&sup2;, the share of the objective's variance that lies between the parameter's values. "
       "Both are 0..1, 1 meaning the parameter alone orders the trials. Neither sees interactions between "
       "parameters, and &rho;&sup2; misses a best value in the middle of a range (see the plots); with few trials "
       "both are noisy (&eta;&sup2; most, with many values), and a tuner that sampled a good region more often makes "
       "them larger. It is not fANOVA.</p>\n<table><tr><th>parameter</th><th>trials</th><th>importance</th>"
       "<th>measure</th><th>better values</th></tr>\n";
  for (const auto& p : importance) {
    std::string measure = p.trials < 3 ? "too few trials" : "no spread";
    if (std::isfinite(p.importance))
      measure = fmt::format(p.numeric ? "&rho; = {:+.2f}" : "&eta;&sup2; = {:.2f}", p.statistic);
    h << "<tr><td>" << html_escape(p.name) << "</td><td>" << p.trials << "</td><td>"
      << (std::isfinite(p.importance) ? fmt::format("{:.2f}", p.importance) : "-") << "</td><td>" << measure
      << "</td><td class=\"text\">" << (p.better.empty() ? "-" : html_escape(p.better)) << "</td></tr>\n";
  }
  h << "</table>\n";
}

// Links to a trial's run reports (one per execution) that this machine holds, relative to
// the page in `page_folder` (absolute).
std::string run_links(const fs::path& artifacts, const fs::path& page_folder, int64_t id) {
  std::string out;
  for (int e = 0;; ++e) {
    const fs::path execution = trial_folder(artifacts, id) / ("execution-" + std::to_string(e));
    if (!fs::is_directory(execution)) break;
    const fs::path run = newest_run_in(execution);
    if (run.empty() || !fs::exists(run / "report.html")) continue;
    const fs::path link = fs::absolute(run / "report.html").lexically_normal().lexically_relative(page_folder);
    out += fmt::format("{}<a href=\"{}\">{}</a>", out.empty() ? "" : " ", html_escape(link.generic_string()),
                       e == 0 ? "report" : "run " + std::to_string(e + 1));
  }
  return out;
}

// What the trials table says of a trial besides its numbers.
std::string trial_note(const StoredTrial& t, const std::string& state) {
  std::vector<std::string> notes;
  if (t.record.resume_from >= 0) notes.push_back(fmt::format("continues trial {}", t.record.resume_from));
  if (t.attempts > 1) notes.push_back(fmt::format("handed out {} times", t.attempts));
  if (state == "running") notes.push_back("on " + t.owner + " since " + t.started + " UTC");
  if (state == "interrupted")
    notes.push_back("its worker " + t.owner + " is gone; `bachlab tune --resume` runs it again");
  if (state == "waiting") notes.push_back("its worker stopped; the next worker to ask runs it again");
  if (!t.message.empty()) notes.push_back(t.message);
  std::string note;
  for (const auto& n : notes) note += (note.empty() ? "" : "; ") + n;
  return note;
}

// The study page's table of every trial, the best one marked.
void trials_table(std::ostream& h, const std::vector<StoredTrial>& trials, const sdk::SearchSpace& space,
                  const TuneSettings& settings, const fs::path& page_folder, std::optional<int64_t> best) {
  h << "<h2>Trials</h2>\n<div class=\"trials\"><table><tr><th>trial</th><th class=\"text\">state</th>";
  std::vector<const Dimension*> tuned;
  for (const auto& d : space.dimensions)
    if (d.type != Dimension::Type::Fixed) tuned.push_back(&d), h << "<th>" << html_escape(d.name) << "</th>";
  h << "<th>" << html_escape(settings.objective) << "</th><th>epochs</th><th>time</th><th>finished (UTC)</th>"
    << "<th class=\"text\">run</th><th class=\"text\">note</th></tr>\n";
  const fs::path artifacts = settings.artifacts.empty() ? page_folder : fs::absolute(settings.artifacts);
  for (const auto& t : trials) {
    const std::string state = shown_state(t);
    const bool is_best = best == t.record.id;
    h << "<tr class=\"" << state << (is_best ? " best" : "") << "\"><td>" << t.record.id << (is_best ? " (best)" : "")
      << "</td><td class=\"text\">" << state << "</td>";
    for (const auto* d : tuned) {
      auto it = t.record.params.find(d->name);
      h << "<td>" << (it == t.record.params.end() ? "-" : html_escape(short_value(it->second))) << "</td>";
    }
    const bool complete = t.record.state == TrialRecord::State::Complete && std::isfinite(t.objective);
    h << "<td>" << (complete ? fmt::format("{:.4f}", t.objective) : "-") << "</td><td>" << t.record.epochs
      << "</td><td>" << (t.record.state == TrialRecord::State::Running ? "-" : format_duration(t.seconds))
      << "</td><td>" << html_escape(t.finished) << "</td><td class=\"text\">"
      << run_links(artifacts, page_folder, t.record.id) << "</td><td class=\"note\">"
      << html_escape(trial_note(t, state)) << "</td></tr>\n";
  }
  h << "</table></div>\n<p>The same as <a href=\"trials.csv\">trials.csv</a> and <a href=\"trials.json\">"
       "trials.json</a>, with every value in full.</p>\n";
}

}  // namespace

std::string format_study_html(const fs::path& folder, const std::vector<StoredTrial>& trials,
                              const sdk::SearchSpace& space, const TuneSettings& settings) {
  std::ostringstream h;
  auto image = [&](const std::string& file, const std::string& alt) {
    const fs::path path = folder / file;
    if (!fs::exists(path)) return;
    h << "<img alt=\"" << html_escape(alt) << "\" src=\"data:image/png;base64," << base64_encode(read_file(path))
      << "\">\n";
  };
  const fs::path absolute = fs::absolute(folder).lexically_normal();
  const std::string name = (absolute.filename().empty() ? absolute.parent_path() : absolute).filename().string();
  h << html_page_start("study " + name + " - bachlab tune",
                       "td:first-child,th:first-child,.text{text-align:left}div.trials{overflow-x:auto}"
                       "div.trials td{white-space:nowrap}"
                       "div.trials td.note{white-space:normal;min-width:30em;text-align:left}"
                       "tr.best td{background:#e3f2e3}tr.failed td{color:#a40000}"
                       "tr.interrupted td,tr.waiting td{color:#8a5a00}");

  std::map<std::string, int64_t> counts;
  for (const auto& t : trials) ++counts[shown_state(t)];
  std::string tally;
  for (const char* state : {"complete", "failed", "running", "interrupted", "waiting"})
    if (counts[state] > 0 || std::string(state) == "complete")
      tally += fmt::format("{}{} {}", tally.empty() ? "" : ", ", counts[state], state);
  const std::string objective = html_escape(settings.objective);
  h << "<h1>Study " << html_escape(name) << "</h1>\n<p>Folder <code>" << html_escape(absolute.string())
    << "</code>: tuner " << html_escape(settings.tuner) << ", objective " << objective << " ("
    << (settings.maximize ? "max" : "min") << "), up to " << settings.max_trials << " trials of " << settings.epochs
    << (settings.epochs == 1 ? " epoch" : " epochs") << ". " << trials.size()
    << (trials.size() == 1 ? " trial: " : " trials: ") << tally << ". This page is rewritten after every trial "
    << "(last at " << now_text("%Y-%m-%d %H:%M:%S", TimeZone::utc) << " UTC); reload it to follow a running study. "
    << "<code>bachlab tune --status</code> says the same in a terminal.</p>\n";

  const auto best = best_trial(trials);
  if (best) {
    std::string values;
    for (const auto& [key, value] : best->record.params)
      values += (values.empty() ? "" : ", ") + html_escape(key) + " = " + html_escape(short_value(value));
    h << "<p><b>Best:</b> trial " << best->record.id << ", " << objective << " = "
      << fmt::format("{:.4f}", best->objective) << (values.empty() ? "" : " with " + values) << "."
      << (fs::exists(folder / "best_trial.toml") ? " <a href=\"best_trial.toml\">best_trial.toml</a> is it as a "
                                                   "plain experiment for <code>bachlab run</code>."
                                                 : "")
      << "</p>\n";
  } else {
    h << "<p>No trial has completed yet.</p>\n";
  }

  h << "<h2>Best so far</h2>\n";
  image("best_so_far.png", "best " + settings.objective + " so far, by trial");
  const auto importance = parameter_importance(trials, space, settings);
  if (!importance.empty()) {
    importance_table(h, importance, objective);
    h << "<h2>" << objective << " against each parameter</h2>\n";
    for (const auto& p : importance) image(objective_plot_name(p.name), settings.objective + " against " + p.name);
  }
  trials_table(h, trials, space, settings, absolute,
               best ? std::optional<int64_t>(best->record.id) : std::optional<int64_t>());
  h << kHtmlPageEnd;
  return h.str();
}

void write_study_outputs(const fs::path& folder, const std::vector<StoredTrial>& trials, const sdk::SearchSpace& space,
                         const TuneSettings& settings) {
  write_file_atomic(folder / "trials.csv", format_trials_csv(trials, space, settings));
  write_file_atomic(folder / "trials.json", trials_json(trials, settings).dump(2) + "\n");
  write_png_atomic(folder / "best_so_far.png", draw_best_so_far(trials, settings));
  for (const auto& d : space.dimensions)
    if (d.type != Dimension::Type::Fixed)
      write_png_atomic(folder / objective_plot_name(d.name), draw_objective_against(trials, d, settings));
  // Last, so that it inlines the pictures just drawn.
  write_file_atomic(study_page(folder), format_study_html(folder, trials, space, settings));
}

std::string format_status(const fs::path& folder) {
  // A study on PostgreSQL (or a SQLite file elsewhere) is named by its storage URL.
  const std::string text = folder.string();
  // A status query never writes: not a table, not a journal, not a file.
  StoreOptions read_only;
  read_only.read_only = true;
  if (text.rfind("postgresql://", 0) == 0 || text.rfind("sqlite://", 0) == 0) {
    StudyStore store(parse_storage_url(text, fs::current_path(), "--status"), read_only);
    return format_status(store, text);
  }
  const fs::path db = folder / "study.db";
  if (!fs::exists(db))
    throw Error(folder.string() + ": no study here (expected " + db.string() +
                "); give the study folder, e.g. the [tune] folder of the config");
  StudyStore store(db, read_only);
  std::string out = format_status(store, folder.string());
  if (fs::exists(study_page(folder))) out += "page: " + study_page(folder).string() + "\n";
  return out;
}

std::string format_status(const StudyStore& store, const std::string& label) {
  const auto trials = store.trials();
  const std::string objective = store.get("objective").value_or("objective");
  const bool maximize = store.get("direction").value_or("max") == "max";
  const int64_t max_trials = std::stoll(store.get("max_trials").value_or("0"));
  int64_t running = 0, done = 0, failed = 0;
  for (const auto& t : trials) {
    if (t.record.state == TrialRecord::State::Running) ++running;
    if (t.record.state == TrialRecord::State::Complete) ++done;
    if (t.record.state == TrialRecord::State::Failed) ++failed;
  }
  std::string out = fmt::format("study {}\n", label);
  out += fmt::format("tuner {}, objective {} ({}), up to {} trials\n", store.get("tuner").value_or("?"), objective,
                     maximize ? "max" : "min", max_trials);
  out += fmt::format("trials: {} complete, {} failed, {} running\n", done, failed, running);
  if (auto finished = store.get("finished")) out += "finished " + *finished + " UTC\n";
  if (auto best = best_trial(trials)) {
    out += fmt::format("best: trial {} with {} = {}\n", best->record.id, objective, number(best->objective));
    for (const auto& [name, value] : best->record.params) out += "  " + name + " = " + sdk::to_string(value) + "\n";
  }
  for (const auto& t : trials) {
    if (t.record.state != TrialRecord::State::Running) continue;
    // A worker of this machine that is gone (killed, Ctrl-C) left its trial marked running:
    // say so, rather than call it running until the next worker hands it out again.
    const bool gone = shown_state(t) == "interrupted";
    out += fmt::format("{}: trial {} ({} {}) {}\n", gone ? "interrupted" : "running", t.record.id, t.record.epochs,
                       t.record.epochs == 1 ? "epoch" : "epochs",
                       t.owner.empty() ? "waiting to be redone"
                       : gone ? "on " + t.owner + ", since " + t.started +
                                    " UTC; that worker is gone, and `bachlab tune --resume` trains it again"
                              : "on " + t.owner + ", since " + t.started + " UTC");
  }
  for (const auto& t : trials)
    if (t.record.state == TrialRecord::State::Failed)
      out += fmt::format("failed: trial {}: {}\n", t.record.id, t.message);
  return out;
}

}  // namespace bachlab::host
