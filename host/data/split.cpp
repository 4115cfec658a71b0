#include "host/data/split.h"

#include "host/util/atomic_file.h"
#include "host/util/html.h"

#include <bachlab/sdk/error.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

namespace bachlab::host {

namespace fs = std::filesystem;

namespace {

// Uniform in [0, n) by rejection, so the result depends only on mt19937_64's (standard)
// output sequence.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x = rng();
  while (x >= limit) x = rng();
  return x % n;
}

void shuffle(std::vector<int64_t>& items, std::mt19937_64& rng) {
  for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[uniform_below(rng, i)]);
}

// Indices per class, in class order, each list in index order.
std::map<int64_t, std::vector<int64_t>> indices_by_class(const std::vector<int64_t>& labels, const char* caller) {
  if (labels.empty()) throw Error(fmt::format("{}: there are no labels to split", caller));
  std::map<int64_t, std::vector<int64_t>> by_class;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0)
      throw Error(fmt::format("{}: label {} at index {} is negative; labels are class indices", caller, labels[i], i));
    by_class[labels[i]].push_back(int64_t(i));
  }
  return by_class;
}

// Indices per class, in class order, each list shuffled by one generator in turn.
std::map<int64_t, std::vector<int64_t>> shuffled_by_class(const std::vector<int64_t>& labels, uint64_t seed,
                                                          const char* caller) {
  auto by_class = indices_by_class(labels, caller);
  std::mt19937_64 rng(seed);
  for (auto& [label, items] : by_class) shuffle(items, rng);
  return by_class;
}

// Every fold needs each class.
void require_fold_sizes(const std::map<int64_t, std::vector<int64_t>>& by_class, int folds, const char* caller) {
  for (const auto& [label, items] : by_class)
    if (int64_t(items.size()) < folds)
      throw Error(fmt::format("{}: class {} has {} images, fewer than folds = {}; every fold needs each class, so "
                              "use at most {} folds",
                              caller, label, items.size(), folds, items.size()));
}

// Splits with fold_of[i] as image i's validation fold.
std::vector<Split> folds_from(const std::vector<int>& fold_of, int folds) {
  std::vector<Split> out(static_cast<size_t>(folds));
  for (size_t i = 0; i < fold_of.size(); ++i)
    for (int k = 0; k < folds; ++k) (fold_of[i] == k ? out[size_t(k)].val : out[size_t(k)].train).push_back(int64_t(i));
  return out;
}

void sort_parts(Split& split) {
  std::sort(split.train.begin(), split.train.end());
  std::sort(split.val.begin(), split.val.end());
  std::sort(split.test.begin(), split.test.end());
}

}  // namespace

Split stratified_split(const std::vector<int64_t>& labels, double train, double val, double test, uint64_t seed) {
  for (auto [name, value] : {std::pair{"train", train}, {"val", val}, {"test", test}})
    if (!(value >= 0.0 && value <= 1.0))
      throw Error(fmt::format("stratified_split: {} must be in 0..1 (was {})", name, value));
  if (std::abs(train + val + test - 1.0) > 1e-6)
    throw Error(fmt::format("stratified_split: train + val + test must sum to 1 (was {:.6g} + {:.6g} + {:.6g} = {:.6g})", train, val,
                            test, train + val + test));
  Split split;
  for (auto& [label, items] : shuffled_by_class(labels, seed, "stratified_split")) {
    const int64_t n = int64_t(items.size());
    int64_t n_test = std::llround(double(n) * test);
    int64_t n_val = std::llround(double(n) * val);
    // A class too small for every part keeps at least one training image.
    const int64_t room = train > 0.0 ? n - 1 : n;
    if (n_test + n_val > room) {
      n_test = std::min(n_test, room);
      n_val = room - n_test;
    }
    split.test.insert(split.test.end(), items.begin(), items.begin() + n_test);
    split.val.insert(split.val.end(), items.begin() + n_test, items.begin() + n_test + n_val);
    split.train.insert(split.train.end(), items.begin() + n_test + n_val, items.end());
  }
  sort_parts(split);
  return split;
}

std::vector<Split> stratified_kfold(const std::vector<int64_t>& labels, int folds, uint64_t seed) {
  if (folds < 2) throw Error(fmt::format("stratified_kfold: folds must be at least 2 (was {})", folds));
  const auto by_class = shuffled_by_class(labels, seed, "stratified_kfold");
  require_fold_sizes(by_class, folds, "stratified_kfold");
  std::vector<int> fold_of(labels.size());
  size_t offset = 0;
  for (const auto& [label, items] : by_class) {
    for (size_t j = 0; j < items.size(); ++j) fold_of[size_t(items[j])] = int((offset + j) % size_t(folds));
    offset += items.size();
  }
  return folds_from(fold_of, folds);
}

std::vector<Split> block_kfold(const std::vector<int64_t>& labels, int folds) {
  if (folds < 2) throw Error(fmt::format("block_kfold: folds must be at least 2 (was {})", folds));
  const auto by_class = indices_by_class(labels, "block_kfold");
  require_fold_sizes(by_class, folds, "block_kfold");
  std::vector<int> fold_of(labels.size());
  for (const auto& [label, items] : by_class) {
    const auto n = int64_t(items.size());
    for (int64_t j = 0; j < n; ++j) fold_of[size_t(items[size_t(j)])] = int(j * folds / n);
  }
  return folds_from(fold_of, folds);
}

std::vector<Split> group_kfold(const std::vector<int64_t>& labels, const std::vector<std::string>& groups, int folds) {
  if (folds < 2) throw Error(fmt::format("group_kfold: folds must be at least 2 (was {})", folds));
  if (groups.size() != labels.size())
    throw Error(fmt::format("group_kfold: {} groups for {} images", groups.size(), labels.size()));
  const auto by_class = indices_by_class(labels, "group_kfold");
  require_fold_sizes(by_class, folds, "group_kfold");
  std::map<int64_t, size_t> class_slot;
  for (const auto& [label, items] : by_class) class_slot.emplace(label, class_slot.size());
  const size_t classes = class_slot.size();
  // Each group's images and its count per class.
  std::map<std::string, std::vector<int64_t>> members;
  for (size_t i = 0; i < groups.size(); ++i) members[groups[i]].push_back(int64_t(i));
  if (int(members.size()) < folds)
    throw Error(fmt::format("group_kfold: {} groups, fewer than folds = {}; every fold needs a group of its own, so "
                            "use at most {} folds",
                            members.size(), folds, members.size()));
  struct Group {
    const std::vector<int64_t>* images;
    std::vector<double> counts;
  };
  std::vector<Group> order;
  std::vector<double> totals(classes, 0.0);
  for (const auto& [name, images] : members) {
    Group g{&images, std::vector<double>(classes, 0.0)};
    for (int64_t i : images) g.counts[class_slot.at(labels[size_t(i)])] += 1;
    for (size_t c = 0; c < classes; ++c) totals[c] += g.counts[c];
    order.push_back(std::move(g));
  }
  // Largest groups first (ties by name, so the folds follow from the data alone), each into
  // the fold that keeps every class's share per fold closest to 1/folds; ties go to the
  // fold with fewer images, then the lower number.
  std::stable_sort(order.begin(), order.end(),
                   [](const Group& a, const Group& b) { return a.images->size() > b.images->size(); });
  std::vector<std::vector<double>> fold_counts(size_t(folds), std::vector<double>(classes, 0.0));
  std::vector<size_t> fold_sizes(size_t(folds), 0);
  std::vector<int> fold_of(labels.size());
  const double even = 1.0 / folds;
  for (const Group& g : order) {
    int best = 0;
    double best_cost = 0;
    for (int k = 0; k < folds; ++k) {
      double cost = 0;
      for (int f = 0; f < folds; ++f)
        for (size_t c = 0; c < classes; ++c) {
          const double share = (fold_counts[size_t(f)][c] + (f == k ? g.counts[c] : 0.0)) / totals[c] - even;
          cost += share * share;
        }
      if (k == 0 || cost < best_cost - 1e-12 ||
          (std::abs(cost - best_cost) <= 1e-12 && fold_sizes[size_t(k)] < fold_sizes[size_t(best)])) {
        best = k;
        best_cost = cost;
      }
    }
    for (size_t c = 0; c < classes; ++c) fold_counts[size_t(best)][c] += g.counts[c];
    fold_sizes[size_t(best)] += g.images->size();
    for (int64_t i : *g.images) fold_of[size_t(i)] = best;
  }
  for (int k = 0; k < folds; ++k)
    if (fold_sizes[size_t(k)] == 0)
      throw Error(fmt::format("group_kfold: fold {} of {} got no group (the groups are too unequal in size); use "
                              "fewer folds",
                              k + 1, folds));
  return folds_from(fold_of, folds);
}

void write_split(const fs::path& file, const Dataset& dataset, const Split& split) {
  std::string ext = file.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext != ".json" && ext != ".csv")
    throw Error(fmt::format("{}: write_split writes .json or .csv files (was \"{}\"); name the file split.json or "
                            "split.csv",
                            file.string(), ext));
  auto name_of = [&](int64_t index) {
    if (index < 0 || size_t(index) >= dataset.files.size())
      throw Error(fmt::format("{}: split index {} is outside the dataset's {} files", file.string(), index,
                              dataset.files.size()));
    const fs::path& path = dataset.files[size_t(index)];
    fs::path relative = path.lexically_relative(dataset.root);
    return (relative.empty() || *relative.begin() == "..") ? path.string() : relative.generic_string();
  };
  auto label_of = [&](int64_t index) {
    int64_t label = dataset.labels[size_t(index)];
    return label >= 0 && size_t(label) < dataset.classes.size() ? dataset.classes[size_t(label)]
                                                                 : std::to_string(label);
  };
  const std::vector<std::pair<const char*, const std::vector<int64_t>*>> parts{
      {"train", &split.train}, {"val", &split.val}, {"test", &split.test}};

  std::string text;
  if (ext == ".json") {
    nlohmann::ordered_json json;
    json["root"] = dataset.root.string();
    json["classes"] = dataset.classes;
    for (const auto& [part, indices] : parts) {
      nlohmann::ordered_json rows = nlohmann::ordered_json::array();
      for (int64_t i : *indices) rows.push_back({{"file", name_of(i)}, {"label", label_of(i)}, {"index", i}});
      json[part] = rows;
    }
    json["skipped"] = dataset.skipped;
    text = json.dump(2) + "\n";
  } else {
    text = "part,file,label\n";
    for (const auto& [part, indices] : parts)
      for (int64_t i : *indices) text += fmt::format("{},{},{}\n", part, csv_field(name_of(i)), csv_field(label_of(i)));
  }

  std::error_code ec;
  if (file.has_parent_path()) fs::create_directories(file.parent_path(), ec);
  write_file_atomic(file, text);
}

}  // namespace bachlab::host
