// Splits are stratified, disjoint, covering and reproducible; k-fold likewise; the split
// written to a run folder lists the files of each part.
#include "host/data/split.h"
#include "tests/data/fixtures.h"

#include <bachlab/sdk/error.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <map>
#include <set>

namespace bachlab::host {
namespace {

namespace fs = std::filesystem;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::vector<int64_t> balanced_labels(int classes, int per_class) {
  std::vector<int64_t> labels;
  for (int i = 0; i < per_class; ++i)
    for (int c = 0; c < classes; ++c) labels.push_back(c);  // interleaved, as a real listing is not
  return labels;
}

std::map<int64_t, int> count_by_class(const std::vector<int64_t>& indices, const std::vector<int64_t>& labels) {
  std::map<int64_t, int> counts;
  for (int64_t i : indices) ++counts[labels[size_t(i)]];
  return counts;
}

void expect_partition(const std::vector<std::vector<int64_t>>& parts, size_t n) {
  std::set<int64_t> seen;
  size_t total = 0;
  for (const auto& part : parts) {
    EXPECT_TRUE(std::is_sorted(part.begin(), part.end()));
    total += part.size();
    seen.insert(part.begin(), part.end());
  }
  EXPECT_EQ(total, n) << "parts overlap or miss items";
  EXPECT_EQ(seen.size(), n);
  EXPECT_EQ(*seen.begin(), 0);
  EXPECT_EQ(*seen.rbegin(), int64_t(n) - 1);
}

TEST(SplitTest, StratifiedDisjointAndCovering) {
  const auto labels = balanced_labels(4, 100);
  Split split = stratified_split(labels, 0.7, 0.15, 0.15, 42);
  expect_partition({split.train, split.val, split.test}, labels.size());
  for (int c = 0; c < 4; ++c) {
    EXPECT_EQ(count_by_class(split.train, labels)[c], 70);
    EXPECT_EQ(count_by_class(split.val, labels)[c], 15);
    EXPECT_EQ(count_by_class(split.test, labels)[c], 15);
  }
}

TEST(SplitTest, ReproducibleFromTheSeedAndDifferentForAnother) {
  const auto labels = balanced_labels(4, 25);
  Split a = stratified_split(labels, 0.6, 0.2, 0.2, 7);
  Split b = stratified_split(labels, 0.6, 0.2, 0.2, 7);
  Split c = stratified_split(labels, 0.6, 0.2, 0.2, 8);
  EXPECT_EQ(a.train, b.train);
  EXPECT_EQ(a.val, b.val);
  EXPECT_EQ(a.test, b.test);
  EXPECT_NE(a.test, c.test);
}

TEST(SplitTest, PinnedOutputSoTheShuffleNeverChangesSilently) {
  // The split for a seed is part of every saved result; this pins it across builds.
  Split split = stratified_split(balanced_labels(2, 5), 0.6, 0.2, 0.2, 1);
  EXPECT_EQ(split.test.size(), 2u);
  EXPECT_EQ(split.val.size(), 2u);
  const std::vector<int64_t> first_seen = split.test;
  Split again = stratified_split(balanced_labels(2, 5), 0.6, 0.2, 0.2, 1);
  EXPECT_EQ(again.test, first_seen);
  EXPECT_EQ(split.test, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(split.val, (std::vector<int64_t>{7, 8}));
}

TEST(SplitTest, SmallClassesKeepATrainingImage) {
  Split split = stratified_split({0, 1, 1, 2, 2, 2}, 0.34, 0.33, 0.33, 0);
  expect_partition({split.train, split.val, split.test}, 6);
  auto train = count_by_class(split.train, {0, 1, 1, 2, 2, 2});
  EXPECT_EQ(train[0], 1);
  EXPECT_EQ(train[1], 1);
  EXPECT_EQ(train[2], 1);
}

TEST(SplitTest, NoTestPart) {
  Split split = stratified_split(balanced_labels(3, 10), 0.8, 0.2, 0.0, 5);
  EXPECT_TRUE(split.test.empty());
  EXPECT_EQ(split.val.size(), 6u);
}

TEST(SplitTest, BadArguments) {
  EXPECT_EQ(error_of([] { stratified_split({0, 1}, 0.7, 0.2, 0.2, 0); }),
            "stratified_split: train + val + test must sum to 1 (was 0.7 + 0.2 + 0.2 = 1.1)");
  EXPECT_EQ(error_of([] { stratified_split({0, 1}, 1.2, -0.2, 0.0, 0); }),
            "stratified_split: train must be in 0..1 (was 1.2)");
  EXPECT_EQ(error_of([] { stratified_split({}, 0.7, 0.15, 0.15, 0); }), "stratified_split: there are no labels to split");
  EXPECT_EQ(error_of([] { stratified_split({0, -1}, 0.7, 0.15, 0.15, 0); }),
            "stratified_split: label -1 at index 1 is negative; labels are class indices");
}

TEST(KFoldTest, EveryItemHeldOutExactlyOnceWithBalancedClasses) {
  const auto labels = balanced_labels(4, 23);
  std::vector<Split> folds = stratified_kfold(labels, 5, 3);
  ASSERT_EQ(folds.size(), 5u);
  std::vector<std::vector<int64_t>> held_out;
  for (const Split& fold : folds) {
    EXPECT_TRUE(fold.test.empty());
    expect_partition({fold.train, fold.val}, labels.size());
    held_out.push_back(fold.val);
    for (int c = 0; c < 4; ++c) {
      int count = count_by_class(fold.val, labels)[c];
      EXPECT_TRUE(count == 4 || count == 5) << "class " << c << " has " << count;
    }
    EXPECT_TRUE(fold.val.size() == 18 || fold.val.size() == 19) << fold.val.size();
  }
  expect_partition(held_out, labels.size());
}

TEST(KFoldTest, Reproducible) {
  const auto labels = balanced_labels(3, 10);
  auto a = stratified_kfold(labels, 3, 9), b = stratified_kfold(labels, 3, 9), c = stratified_kfold(labels, 3, 10);
  for (size_t k = 0; k < 3; ++k) EXPECT_EQ(a[k].val, b[k].val);
  EXPECT_NE(a[0].val, c[0].val);
}

TEST(KFoldTest, BadArguments) {
  EXPECT_EQ(error_of([] { stratified_kfold({0, 1}, 1, 0); }), "stratified_kfold: folds must be at least 2 (was 1)");
  EXPECT_EQ(error_of([] { stratified_kfold({0, 0, 0, 1, 1}, 3, 0); }),
            "stratified_kfold: class 1 has 2 images, fewer than folds = 3; every fold needs each class, so use at "
            "most 2 folds");
}

// [data.split] group = "csv": every group (patient) wholly in one fold, classes balanced,
// the same folds from the same labels and groups.
TEST(GroupKFoldTest, AGroupNeverStraddlesFoldsAndClassesStayBalanced) {
  // 4 classes x 20 photos; groups of 1-4 photos, some holding two classes (a patient with
  // benign and in-situ regions).
  std::vector<int64_t> labels;
  std::vector<std::string> groups;
  for (int c = 0; c < 4; ++c)
    for (int i = 0; i < 20; ++i) {
      labels.push_back(c);
      groups.push_back("patient-" + std::to_string((c * 20 + i) / (1 + (i % 4))));
    }
  const std::vector<Split> folds = group_kfold(labels, groups, 5);
  ASSERT_EQ(folds.size(), 5u);
  std::vector<std::vector<int64_t>> held_out;
  std::map<std::string, size_t> fold_of_group;
  for (size_t k = 0; k < folds.size(); ++k) {
    expect_partition({folds[k].train, folds[k].val}, labels.size());
    held_out.push_back(folds[k].val);
    std::vector<int> per_class(4, 0);
    for (int64_t i : folds[k].val) {
      per_class[size_t(labels[size_t(i)])]++;
      auto [it, fresh] = fold_of_group.emplace(groups[size_t(i)], k);
      EXPECT_EQ(it->second, k) << groups[size_t(i)] << " is in two folds";
    }
    for (int c = 0; c < 4; ++c) EXPECT_NEAR(per_class[size_t(c)], 4, 2) << "fold " << k << " class " << c;
  }
  expect_partition(held_out, labels.size());
  EXPECT_EQ(group_kfold(labels, groups, 5)[2].val, folds[2].val);
  EXPECT_THAT([&] { group_kfold(labels, std::vector<std::string>(labels.size(), "one"), 5); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("1 groups, fewer than folds = 5")));
  EXPECT_THROW(group_kfold(labels, std::vector<std::string>(3, "x"), 5), Error);
}

TEST(BlockKFoldTest, EachClassIsCutIntoContiguousRunsInFileOrder) {
  // Two classes of 10 and 7 photos, interleaved as a dataset's sorted files are not, to
  // check that runs follow each class's own order.
  std::vector<int64_t> labels;
  for (int i = 0; i < 10; ++i) labels.push_back(0);
  for (int i = 0; i < 7; ++i) labels.push_back(1);
  const std::vector<Split> folds = block_kfold(labels, 3);
  ASSERT_EQ(folds.size(), 3u);
  std::vector<std::vector<int64_t>> held_out;
  for (const Split& fold : folds) {
    expect_partition({fold.train, fold.val}, labels.size());
    held_out.push_back(fold.val);
  }
  expect_partition(held_out, labels.size());
  // Class 0 (indices 0-9): runs of 4, 3, 3; class 1 (10-16): 3, 2, 2.
  EXPECT_EQ(folds[0].val, (std::vector<int64_t>{0, 1, 2, 3, 10, 11, 12}));
  EXPECT_EQ(folds[1].val, (std::vector<int64_t>{4, 5, 6, 13, 14}));
  EXPECT_EQ(folds[2].val, (std::vector<int64_t>{7, 8, 9, 15, 16}));
}

TEST(BlockKFoldTest, NeighboursShareAFoldWhereRandomFoldsSeparateThem) {
  // What the grouping is for: photos numbered in slide order. Count the pairs of
  // neighbouring photos of one class that land in different validation folds. Sorted by
  // class, as a dataset's files are.
  std::vector<int64_t> labels;
  for (int c = 0; c < 4; ++c)
    for (int i = 0; i < 50; ++i) labels.push_back(c);
  auto separated = [&](const std::vector<Split>& folds) {
    std::vector<int> fold_of(labels.size());
    for (size_t k = 0; k < folds.size(); ++k)
      for (int64_t i : folds[k].val) fold_of[size_t(i)] = int(k);
    int count = 0;
    for (size_t i = 1; i < labels.size(); ++i) count += labels[i] == labels[i - 1] && fold_of[i] != fold_of[i - 1];
    return count;
  };
  // 4 classes x 4 run edges.
  EXPECT_EQ(separated(block_kfold(labels, 5)), 16);
  EXPECT_GT(separated(stratified_kfold(labels, 5, 0)), 100);
}

TEST(BlockKFoldTest, BadArguments) {
  EXPECT_EQ(error_of([] { block_kfold({0, 1}, 1); }), "block_kfold: folds must be at least 2 (was 1)");
  EXPECT_EQ(error_of([] { block_kfold({0, 0, 0, 1, 1}, 3); }),
            "block_kfold: class 1 has 2 images, fewer than folds = 3; every fold needs each class, so use at most 2 "
            "folds");
  EXPECT_EQ(error_of([] { block_kfold({}, 2); }), "block_kfold: there are no labels to split");
}

Dataset tiny_dataset() {
  Dataset dataset;
  dataset.classes = {"Normal", "Benign"};
  dataset.root = "/data/Photos";
  dataset.files = {"/data/Photos/Normal/n001.tif", "/data/Photos/Normal/n,002.tif", "/data/Photos/Benign/b001.tif",
                   "/elsewhere/b002.tif"};
  dataset.labels = {0, 0, 1, 1};
  dataset.skipped = {"/data/Photos/Benign/b003.tif: the file is empty"};
  return dataset;
}

TEST(WriteSplitTest, CsvListsEachPartWithRelativePaths) {
  test::TempDir dir;
  Split split{{0, 3}, {1}, {2}};
  write_split(dir / "run" / "split.csv", tiny_dataset(), split);
  EXPECT_EQ(test::read_bytes(dir / "run" / "split.csv"),
            "part,file,label\n"
            "train,Normal/n001.tif,Normal\n"
            "train,/elsewhere/b002.tif,Benign\n"
            "val,\"Normal/n,002.tif\",Normal\n"
            "test,Benign/b001.tif,Benign\n");
  EXPECT_FALSE(fs::exists(dir / "run" / ("split.csv.tmp-" + std::to_string(getpid()))));
}

TEST(WriteSplitTest, JsonListsEachPartAndTheSkippedFiles) {
  test::TempDir dir;
  Split split{{0, 3}, {1}, {2}};
  write_split(dir / "split.json", tiny_dataset(), split);
  auto json = nlohmann::json::parse(test::read_bytes(dir / "split.json"));
  EXPECT_EQ(json["classes"], (std::vector<std::string>{"Normal", "Benign"}));
  EXPECT_EQ(json["root"], "/data/Photos");
  EXPECT_EQ(json["train"][1]["file"], "/elsewhere/b002.tif");
  EXPECT_EQ(json["train"][1]["label"], "Benign");
  EXPECT_EQ(json["train"][1]["index"], 3);
  EXPECT_EQ(json["val"][0]["file"], "Normal/n,002.tif");
  EXPECT_EQ(json["test"].size(), 1u);
  EXPECT_EQ(json["skipped"][0], "/data/Photos/Benign/b003.tif: the file is empty");
}

TEST(WriteSplitTest, BadNameOrIndex) {
  test::TempDir dir;
  EXPECT_EQ(error_of([&] { write_split(dir / "split.txt", tiny_dataset(), Split{}); }),
            (dir / "split.txt").string() +
                ": write_split writes .json or .csv files (was \".txt\"); name the file split.json or split.csv");
  EXPECT_EQ(error_of([&] { write_split(dir / "split.csv", tiny_dataset(), Split{{9}, {}, {}}); }),
            (dir / "split.csv").string() + ": split index 9 is outside the dataset's 4 files");
}

}  // namespace
}  // namespace bachlab::host
