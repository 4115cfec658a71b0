#include "host/data/explore.h"

#include "host/data/image_decode.h"
#include "host/data/option_error.h"
#include "host/data/parallel.h"
#include "host/util/atomic_file.h"
#include "host/util/ticks.h"
#include "host/util/html.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <mutex>
#include <numeric>
#include <random>

namespace bachlab::host {

namespace fs = std::filesystem;

namespace {

constexpr int kThumbWidth = 192;
constexpr int kGridColumns = 4;

// The report as a list of blocks, rendered once to Markdown and once to HTML so the two
// never disagree.
struct Block {
  enum Kind { heading, paragraph, table, picture } kind;
  std::string text;                             // heading / paragraph / picture caption
  std::vector<std::vector<std::string>> rows;   // table: first row is the header
  std::string file;                             // picture file name in the output folder
  std::vector<uint8_t> png;                     // picture bytes for the HTML
};

std::string md_cell(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

std::string render_markdown(const std::vector<Block>& blocks) {
  std::string out;
  for (const auto& block : blocks) {
    switch (block.kind) {
      case Block::heading: out += block.text + "\n\n"; break;
      case Block::paragraph: out += block.text + "\n\n"; break;
      case Block::table: {
        for (size_t r = 0; r < block.rows.size(); ++r) {
          out += "|";
          for (const auto& cell : block.rows[r]) out += " " + md_cell(cell) + " |";
          out += "\n";
          if (r == 0) {
            out += "|";
            for (size_t c = 0; c < block.rows[0].size(); ++c) out += c == 0 ? " --- |" : " ---: |";
            out += "\n";
          }
        }
        out += "\n";
        break;
      }
      case Block::picture: out += fmt::format("![{}]({})\n\n", block.text, block.file); break;
    }
  }
  return out;
}

std::string render_html(const std::vector<Block>& blocks) {
  // One picture a row, wider than the others' pages' two.
  std::string out = html_page_start("bachlab: dataset exploration",
                                    "body{max-width:1100px;margin:2em auto;color:#222}"
                                    "td:first-child,th:first-child{text-align:left}"
                                    "img{max-width:100%;margin:0;border:1px solid #ddd}");
  for (const auto& block : blocks) {
    switch (block.kind) {
      case Block::heading: {
        size_t level = block.text.find_first_not_of('#');
        out += fmt::format("<h{0}>{1}</h{0}>\n", level, html_escape(block.text.substr(level + 1)));
        break;
      }
      case Block::paragraph: {
        std::string text = html_escape(block.text);
        for (size_t at = text.find('\n'); at != std::string::npos; at = text.find('\n', at + 5)) text.replace(at, 1, "<br>\n");
        out += "<p>" + text + "</p>\n";
        break;
      }
      case Block::table: {
        out += "<table>\n";
        for (size_t r = 0; r < block.rows.size(); ++r) {
          out += "<tr>";
          for (const auto& cell : block.rows[r]) out += fmt::format(r == 0 ? "<th>{}</th>" : "<td>{}</td>", html_escape(cell));
          out += "</tr>\n";
        }
        out += "</table>\n";
        break;
      }
      case Block::picture:
        out += fmt::format("<figure><img alt=\"{0}\" src=\"data:image/png;base64,{1}\"><figcaption>{0}</figcaption>"
                           "</figure>\n",
                           html_escape(block.text), base64_encode(block.png));
        break;
    }
  }
  out += kHtmlPageEnd;
  return out;
}

// A file-name-safe form of a class name.
std::string slug(const std::string& name) {
  std::string out;
  for (char c : name) out += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ? c : '_';
  return out;
}

// OpenCV draws in BGR; every picture here is composed in RGB and converted once on save.
std::vector<uint8_t> save_png(const fs::path& file, const cv::Mat& rgb) {
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  std::vector<uint8_t> png;
  if (!cv::imencode(".png", bgr, png)) throw Error(fmt::format("{}: OpenCV could not encode the picture", file.string()));
  write_file_atomic(file, std::string(png.begin(), png.end()));
  return png;
}

void put_text(cv::Mat& image, const std::string& text, cv::Point at, double scale = 0.5,
              cv::Scalar colour = cv::Scalar(30, 30, 30), int thickness = 1) {
  cv::putText(image, text, at, cv::FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv::LINE_AA);
}

cv::Mat bar_chart(const std::vector<std::string>& classes, const std::vector<int64_t>& counts) {
  const int bar = 90, gap = 30, height = 300, top = 40, bottom = 40;
  const int width = gap + int(classes.size()) * (bar + gap);
  cv::Mat chart(height, width, CV_8UC3, cv::Scalar(255, 255, 255));
  const int64_t most = std::max<int64_t>(1, *std::max_element(counts.begin(), counts.end()));
  put_text(chart, "photos per class", {gap, 22}, 0.6);
  const int base = height - bottom;
  cv::line(chart, {gap / 2, base}, {width - gap / 2, base}, cv::Scalar(80, 80, 80));
  for (size_t c = 0; c < classes.size(); ++c) {
    const int x = gap + int(c) * (bar + gap);
    const int h = int(double(counts[c]) / double(most) * (base - top - 20));
    cv::rectangle(chart, {x, base - h}, {x + bar, base}, cv::Scalar(200, 90, 160), cv::FILLED);
    put_text(chart, std::to_string(counts[c]), {x + 5, base - h - 6});
    put_text(chart, classes[c].substr(0, 12), {x, base + 20}, 0.45);
  }
  return chart;
}

cv::Mat sample_grid(const std::vector<cv::Mat>& thumbs, int thumb_height) {
  const int count = std::max<int>(1, int(thumbs.size()));
  const int columns = std::min(kGridColumns, count);
  const int rows = (count + columns - 1) / columns;
  const int pad = 4;
  cv::Mat grid(rows * (thumb_height + pad) + pad, columns * (kThumbWidth + pad) + pad, CV_8UC3,
               cv::Scalar(255, 255, 255));
  for (size_t i = 0; i < thumbs.size(); ++i) {
    const int x = pad + int(i % size_t(columns)) * (kThumbWidth + pad);
    const int y = pad + int(i / size_t(columns)) * (thumb_height + pad);
    thumbs[i].copyTo(grid(cv::Rect(x, y, thumbs[i].cols, thumbs[i].rows)));
  }
  return grid;
}

// Red where Normal is brighter than the other classes, blue where it is darker, white where
// they agree; scaled to the largest difference so that faint patterns still show.
cv::Mat difference_map(const cv::Mat& normal, const cv::Mat& rest, double& largest) {
  cv::Mat diff(normal.size(), CV_64FC1);
  largest = 0;
  for (int y = 0; y < normal.rows; ++y)
    for (int x = 0; x < normal.cols; ++x) {
      const cv::Vec3d a = normal.at<cv::Vec3d>(y, x), b = rest.at<cv::Vec3d>(y, x);
      const double d = ((a[0] - b[0]) + (a[1] - b[1]) + (a[2] - b[2])) / 3.0;
      diff.at<double>(y, x) = d;
      largest = std::max(largest, std::abs(d));
    }
  const double scale = std::max(largest, 1.0);
  cv::Mat out(normal.size(), CV_8UC3);
  for (int y = 0; y < normal.rows; ++y)
    for (int x = 0; x < normal.cols; ++x) {
      const double t = std::clamp(diff.at<double>(y, x) / scale, -1.0, 1.0);
      const uint8_t fade = cv::saturate_cast<uint8_t>(255.0 * (1.0 - std::abs(t)));
      out.at<cv::Vec3b>(y, x) = t >= 0 ? cv::Vec3b(255, fade, fade) : cv::Vec3b(fade, fade, 255);
    }
  return out;
}

}  // namespace

// One class's red, green and blue histograms as the share of its pixels at each value (%),
// with both axes labelled, a legend, and the 255 spike clipped (see histogram_scale).
cv::Mat histogram_panel(const std::string& title, const std::array<std::array<uint64_t, 256>, 3>& counts) {
  // Wide enough for the legend's longest name; the title gets a line above the y label.
  const int width = 480, height = 292, left = 62, top = 46, plot_w = 256 + 64, plot_h = 170;
  const cv::Scalar kAxis(90, 90, 90), kGridLine(228, 228, 228);
  cv::Mat panel(height, width, CV_8UC3, cv::Scalar(255, 255, 255));
  put_text(panel, title, {left, 20}, 0.55, cv::Scalar(30, 30, 30), 1);

  std::array<std::array<double, 256>, 3> shares{};
  for (size_t c = 0; c < 3; ++c) {
    double total = 0;
    for (uint64_t k : counts[c]) total += double(k);
    for (size_t v = 0; v < 256; ++v) shares[c][v] = total > 0 ? 100.0 * double(counts[c][v]) / total : 0.0;
  }
  const double top_share = histogram_scale(shares);
  const int base = top + plot_h;
  auto x_of = [&](int v) { return left + int(std::lround(v * double(plot_w) / 255.0)); };
  auto y_of = [&](double share) { return base - int(std::lround(std::min(share, top_share) / top_share * plot_h)); };

  // y ticks at a round step, labelled in percent.
  const double step = nice_step(top_share, 4);
  const int decimals = step >= 1 ? 0 : std::min(3, int(std::ceil(-std::log10(step))));
  for (int i = 0; i * step <= top_share + 1e-12; ++i) {
    const int y = y_of(i * step);
    cv::line(panel, {left, y}, {left + plot_w, y}, kGridLine);
    put_text(panel, fmt::format("{:.{}f}", i * step, decimals), {left - 8 - 8 * (decimals + 2), y + 4}, 0.38, kAxis);
  }
  for (int v : {0, 64, 128, 192, 255}) {
    cv::line(panel, {x_of(v), base}, {x_of(v), base + 4}, kAxis);
    put_text(panel, std::to_string(v), {x_of(v) - 4 * int(std::to_string(v).size()), base + 17}, 0.38, kAxis);
  }
  cv::rectangle(panel, {left, top}, {left + plot_w, base}, kAxis);
  put_text(panel, "pixel value", {left + plot_w / 2 - 36, base + 34}, 0.42, kAxis);
  put_text(panel, "% of pixels", {4, top - 6}, 0.42, kAxis);

  // The red, green and blue channels' colours, in RGB like every picture here (save_png
  // converts once).
  const cv::Scalar colours[3] = {cv::Scalar(220, 40, 40), cv::Scalar(40, 160, 40), cv::Scalar(40, 90, 220)};
  const char* names[3] = {"red", "green", "blue"};
  std::string clipped;
  for (size_t c = 0; c < 3; ++c) {
    for (int v = 1; v < 256; ++v)
      cv::line(panel, {x_of(v - 1), y_of(shares[c][size_t(v - 1)])}, {x_of(v), y_of(shares[c][size_t(v)])}, colours[c],
               1, cv::LINE_AA);
    if (shares[c][255] > top_share)
      clipped += fmt::format("{}{} {:.1f}%", clipped.empty() ? "at 255 (off scale): " : ", ", names[c], shares[c][255]);
  }
  if (!clipped.empty()) put_text(panel, clipped, {left, base + 52}, 0.38, kAxis);
  // The legend, right of the plot.
  for (size_t c = 0; c < 3; ++c) {
    const int y = top + 14 + int(c) * 20;
    cv::line(panel, {left + plot_w + 10, y}, {left + plot_w + 28, y}, colours[c], 2, cv::LINE_AA);
    put_text(panel, names[c], {left + plot_w + 32, y + 4}, 0.4, cv::Scalar(30, 30, 30));
  }
  return panel;
}

namespace {

cv::Mat to_8u(const cv::Mat& mean) {
  cv::Mat out;
  mean.convertTo(out, CV_8UC3);
  return out;
}

cv::Mat side_by_side(const std::vector<std::pair<std::string, cv::Mat>>& panels) {
  const int pad = 8, caption = 24;
  int width = pad, height = 0;
  for (const auto& [name, image] : panels) {
    width += image.cols + pad;
    height = std::max(height, image.rows);
  }
  cv::Mat out(height + caption + pad, width, CV_8UC3, cv::Scalar(255, 255, 255));
  int x = pad;
  for (const auto& [name, image] : panels) {
    put_text(out, name, {x, 17}, 0.45);
    image.copyTo(out(cv::Rect(x, caption, image.cols, image.rows)));
    x += image.cols + pad;
  }
  return out;
}

struct ClassStats {
  std::vector<cv::Mat> sums;  // per worker, CV_64FC3 at the mean size
  std::vector<int64_t> counts;
  std::array<std::array<uint64_t, 256>, 3> histogram{};
};

}  // namespace

ExploreSummary explore_dataset(const Dataset& dataset, const ExploreOptions& options) {
  if (dataset.files.empty()) throw Error("explore: the dataset has no photos");
  std::error_code ec;
  fs::create_directories(options.out, ec);
  if (ec || !fs::is_directory(options.out))
    throw OptionError("out", "output folder",
                      fmt::format("{}: cannot create the output folder ({}); choose another ", options.out.string(),
                                  ec ? ec.message() : "a file is in the way"),
                      "");

  const size_t n = dataset.files.size();
  const size_t classes = dataset.classes.size();
  const int workers = std::min<int>(resolve_workers(options.workers), int(n));

  // The mean images need one size for all photos; take the most common aspect from the
  // headers' sizes, which the decode below reports, so first decide samples and read sizes.
  std::mt19937_64 rng(options.seed);
  std::vector<std::vector<int64_t>> by_class(classes);
  for (size_t i = 0; i < n; ++i) by_class[size_t(dataset.labels[i])].push_back(int64_t(i));
  std::vector<int> sample_slot(n, -1);
  std::vector<size_t> samples_in_class(classes, 0);
  for (size_t c = 0; c < classes; ++c) {
    std::vector<int64_t> order = by_class[c];
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[size_t(rng() % i)]);
    std::sort(order.begin(), order.begin() + std::min<size_t>(order.size(), size_t(options.samples_per_class)));
    for (size_t k = 0; k < order.size() && k < size_t(options.samples_per_class); ++k)
      sample_slot[size_t(order[k])] = int(k), samples_in_class[c] = k + 1;
  }

  std::vector<ImageInfo> infos(n);
  std::vector<std::string> errors(n);
  std::vector<cv::Mat> thumbs(n);
  std::vector<ClassStats> stats(classes);
  std::vector<std::mutex> class_locks(classes);
  std::vector<cv::Mat> buffers(static_cast<size_t>(workers));
  // Mean size: fixed from the first decodable photo's aspect, so a dataset of one size
  // (BACH: 4:3) gets undistorted means.
  int mean_height = 0;
  std::once_flag mean_size_once;
  for (auto& s : stats) {
    s.sums.resize(size_t(workers));
    s.counts.assign(size_t(workers), 0);
  }

  Progress progress("exploring photos", n);
  parallel_for(n, workers, [&](size_t i, int w) {
    cv::Mat& rgb = buffers[size_t(w)];
    try {
      infos[i] = decode_image_rgb(dataset.files[i], rgb);
    } catch (const Error& e) {
      errors[i] = e.what();
      progress.advance();
      return;
    } catch (const cv::Exception& e) {
      errors[i] = fmt::format("{}: OpenCV failed to process it ({})", dataset.files[i].string(), e.err);
      progress.advance();
      return;
    }
    std::call_once(mean_size_once, [&] {
      mean_height = std::max(1, int(std::lround(double(options.mean_width) * rgb.rows / rgb.cols)));
    });
    const size_t c = size_t(dataset.labels[i]);
    std::array<std::array<uint64_t, 256>, 3> histogram{};
    for (int y = 0; y < rgb.rows; ++y) {
      const uint8_t* p = rgb.ptr<uint8_t>(y);
      for (int x = 0; x < rgb.cols; ++x, p += 3) ++histogram[0][p[0]], ++histogram[1][p[1]], ++histogram[2][p[2]];
    }
    cv::Mat small;
    cv::resize(rgb, small, cv::Size(options.mean_width, mean_height), 0, 0, cv::INTER_AREA);
    cv::Mat& sum = stats[c].sums[size_t(w)];
    if (sum.empty()) sum = cv::Mat::zeros(small.size(), CV_64FC3);
    cv::accumulate(small, sum);
    ++stats[c].counts[size_t(w)];
    if (sample_slot[i] >= 0) {
      const int thumb_height = std::max(1, int(std::lround(double(kThumbWidth) * rgb.rows / rgb.cols)));
      cv::resize(rgb, thumbs[i], cv::Size(kThumbWidth, thumb_height), 0, 0, cv::INTER_AREA);
    }
    {
      std::lock_guard lock(class_locks[c]);
      for (int ch = 0; ch < 3; ++ch)
        for (int v = 0; v < 256; ++v) stats[c].histogram[size_t(ch)][size_t(v)] += histogram[size_t(ch)][size_t(v)];
    }
    progress.advance();
  });
  progress.finish();

  ExploreSummary summary;
  summary.problems = dataset.skipped;
  for (const auto& e : errors)
    if (!e.empty()) summary.problems.push_back(e);
  if (mean_height == 0)
    throw Error(fmt::format("explore: none of the {} photos could be decoded (first: {})", n, summary.problems.front()));

  summary.class_counts.assign(classes, 0);
  std::map<std::tuple<int, int, std::string, std::string>, int64_t> size_modes;
  std::map<std::pair<int, int>, int64_t> sizes;
  for (size_t i = 0; i < n; ++i) {
    if (!errors[i].empty()) continue;
    ++summary.class_counts[size_t(dataset.labels[i])];
    const ImageInfo& info = infos[i];
    std::string format = format_name(info.format);
    if (!info.compression.empty()) format += " (" + info.compression + ")";
    ++size_modes[{info.width, info.height, info.mode, format}];
    ++sizes[{info.width, info.height}];
  }
  for (const auto& [size, count] : sizes) summary.sizes.emplace_back(fmt::format("{}x{}", size.first, size.second), count);
  summary.one_size = sizes.size() == 1;
  const int64_t decoded = std::accumulate(summary.class_counts.begin(), summary.class_counts.end(), int64_t(0));

  std::vector<Block> blocks;
  auto heading = [&](const std::string& text) { blocks.push_back({Block::heading, text, {}, "", {}}); };
  auto paragraph = [&](const std::string& text) { blocks.push_back({Block::paragraph, text, {}, "", {}}); };
  auto table = [&](std::vector<std::vector<std::string>> rows) { blocks.push_back({Block::table, "", rows, "", {}}); };
  auto picture = [&](const std::string& caption, const std::string& name, const cv::Mat& rgb) {
    const fs::path file = options.out / name;
    blocks.push_back({Block::picture, caption, {}, name, save_png(file, rgb)});
    summary.files.push_back(file);
  };

  heading("# Dataset exploration");
  paragraph(fmt::format("Dataset {}: {} photos in {} classes{}.", dataset.root.string(), decoded, classes,
                        summary.problems.empty() ? "" : fmt::format(" ({} files left out, see Problems)",
                                                                    summary.problems.size())));

  heading("## Class balance");
  std::vector<std::vector<std::string>> balance{{"Class", "Photos", "Share"}};
  for (size_t c = 0; c < classes; ++c)
    balance.push_back({dataset.classes[c], std::to_string(summary.class_counts[c]),
                       fmt::format("{:.1f}%", decoded ? 100.0 * double(summary.class_counts[c]) / double(decoded) : 0.0)});
  table(balance);
  const auto [fewest, most] = std::minmax_element(summary.class_counts.begin(), summary.class_counts.end());
  paragraph(*fewest == *most ? fmt::format("The classes are balanced: {} photos each.", *most)
                             : fmt::format("The classes are not balanced: from {} to {} photos (ratio {:.2f}).",
                                           *fewest, *most, double(*most) / double(std::max<int64_t>(1, *fewest))));
  picture("Photos per class", "class_balance.png", bar_chart(dataset.classes, summary.class_counts));

  heading("## Image sizes and modes");
  std::vector<std::vector<std::string>> size_rows{{"Size", "Mode", "Format", "Photos"}};
  for (const auto& [key, count] : size_modes)
    size_rows.push_back({fmt::format("{}x{}", std::get<0>(key), std::get<1>(key)), std::get<2>(key), std::get<3>(key),
                         std::to_string(count)});
  table(size_rows);
  if (summary.one_size) {
    const auto [w, h] = sizes.begin()->first;
    const int g = std::gcd(w, h);
    paragraph(fmt::format("All {} photos share one size: {}x{} (aspect {}:{}), so no cropping is needed before "
                          "resizing.",
                          decoded, w, h, w / g, h / g));
  } else {
    paragraph(fmt::format("The photos come in {} different sizes; resizing to a square will distort some of them "
                          "differently from others.",
                          sizes.size()));
  }

  heading("## Random samples per class");
  paragraph(fmt::format("Up to {} photos per class, drawn with seed {}.", options.samples_per_class, options.seed));
  const int thumb_height = std::max(1, int(std::lround(double(kThumbWidth) * mean_height / options.mean_width)));
  for (size_t c = 0; c < classes; ++c) {
    std::vector<cv::Mat> chosen;
    for (int64_t i : by_class[c])
      if (sample_slot[size_t(i)] >= 0 && !thumbs[size_t(i)].empty()) {
        cv::Mat thumb = thumbs[size_t(i)];
        if (thumb.rows != thumb_height) cv::resize(thumb, thumb, cv::Size(kThumbWidth, thumb_height), 0, 0, cv::INTER_AREA);
        chosen.push_back(thumb);
      }
    if (chosen.empty()) continue;
    picture(dataset.classes[c] + " samples", "samples_" + slug(dataset.classes[c]) + ".png",
            sample_grid(chosen, thumb_height));
  }

  heading("## Mean image per class");
  std::vector<cv::Mat> means(classes);
  std::vector<int64_t> per_class_decoded(classes, 0);
  for (size_t c = 0; c < classes; ++c) {
    cv::Mat total = cv::Mat::zeros(mean_height, options.mean_width, CV_64FC3);
    for (size_t w = 0; w < stats[c].sums.size(); ++w)
      if (!stats[c].sums[w].empty()) total += stats[c].sums[w];
    per_class_decoded[c] = std::accumulate(stats[c].counts.begin(), stats[c].counts.end(), int64_t(0));
    if (per_class_decoded[c] > 0) means[c] = total / double(per_class_decoded[c]);
  }
  std::vector<std::pair<std::string, cv::Mat>> mean_panels;
  for (size_t c = 0; c < classes; ++c)
    if (!means[c].empty()) mean_panels.emplace_back(dataset.classes[c], to_8u(means[c]));
  picture("Mean image per class", "mean_images.png", side_by_side(mean_panels));

  // The study contrasted Normal against the three other classes together.
  size_t normal = 0;
  for (size_t c = 0; c < classes; ++c)
    if (dataset.classes[c] == "Normal") normal = c;
  cv::Mat rest = cv::Mat::zeros(mean_height, options.mean_width, CV_64FC3);
  int64_t rest_count = 0;
  for (size_t c = 0; c < classes; ++c)
    if (c != normal && !means[c].empty()) rest += means[c] * double(per_class_decoded[c]), rest_count += per_class_decoded[c];
  if (!means[normal].empty() && rest_count > 0) {
    rest /= double(rest_count);
    heading(fmt::format("## {} against the other classes", dataset.classes[normal]));
    double largest = 0;
    cv::Mat map = difference_map(means[normal], rest, largest);
    paragraph(fmt::format("Left: mean {} photo. Middle: mean of the other {} classes. Right: their difference in "
                          "brightness, red where {} is brighter, blue where it is darker; the strongest difference "
                          "is {:.1f} of 255.",
                          dataset.classes[normal], classes - 1, dataset.classes[normal], largest));
    picture(dataset.classes[normal] + " mean against the rest", "mean_difference.png",
            side_by_side({{dataset.classes[normal], to_8u(means[normal])}, {"others", to_8u(rest)},
                          {"difference", map}}));
  }

  heading("## Channel histograms per class");
  std::vector<std::vector<std::string>> channel_rows{{"Class", "mean R", "mean G", "mean B", "std R", "std G", "std B"}};
  std::vector<cv::Mat> panels;
  for (size_t c = 0; c < classes; ++c) {
    std::vector<std::string> row{dataset.classes[c]};
    std::array<double, 3> mean{}, sd{};
    for (size_t ch = 0; ch < 3; ++ch) {
      double count = 0, sum = 0, squares = 0;
      for (int v = 0; v < 256; ++v) {
        const double k = double(stats[c].histogram[ch][size_t(v)]);
        count += k, sum += k * v, squares += k * v * v;
      }
      mean[ch] = count > 0 ? sum / count : 0;
      sd[ch] = count > 0 ? std::sqrt(std::max(0.0, squares / count - mean[ch] * mean[ch])) : 0;
    }
    for (double m : mean) row.push_back(fmt::format("{:.1f}", m));
    for (double s : sd) row.push_back(fmt::format("{:.1f}", s));
    channel_rows.push_back(row);
    panels.push_back(histogram_panel(dataset.classes[c], stats[c].histogram));
  }
  table(channel_rows);
  {
    const int columns = std::min<int>(2, int(panels.size()));
    const int rows = (int(panels.size()) + columns - 1) / columns;
    cv::Mat grid(rows * panels[0].rows, columns * panels[0].cols, CV_8UC3, cv::Scalar(255, 255, 255));
    for (size_t i = 0; i < panels.size(); ++i)
      panels[i].copyTo(grid(cv::Rect(int(i % size_t(columns)) * panels[0].cols, int(i / size_t(columns)) * panels[0].rows,
                                     panels[i].cols, panels[i].rows)));
    picture("Red, green and blue histograms per class (all pixels, full resolution)", "histograms.png", grid);
  }

  heading("## Problems");
  if (summary.problems.empty()) {
    paragraph("None: every photo decoded.");
  } else {
    std::string list;
    for (const auto& problem : summary.problems) list += (list.empty() ? "- " : "\n- ") + problem;
    blocks.push_back({Block::paragraph, list, {}, "", {}});
  }

  const fs::path md = options.out / "report.md", html = options.out / "report.html";
  write_file_atomic(md, render_markdown(blocks));
  write_file_atomic(html, render_html(blocks));
  summary.files.push_back(md);
  summary.files.push_back(html);
  return summary;
}

double histogram_scale(const std::array<std::array<double, 256>, 3>& shares) {
  double most = 0;
  for (const auto& channel : shares) most = std::max(most, *std::max_element(channel.begin(), channel.end() - 1));
  return most > 0 ? most * 1.1 : 1.0;
}

}  // namespace bachlab::host
