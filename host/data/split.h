#pragma once
// Stratified splits: every part keeps the class balance of the whole set, and the same
// labels and seed give the same split on every machine (the shuffle is written out here
// rather than left to std::shuffle, whose draws differ between standard libraries).

#include "host/data/dataset.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace bachlab::host {

/// Indices into a dataset, each part sorted ascending.
struct Split {
  std::vector<int64_t> train, val, test;
};

/// Per class, round(n * test) images go to test and round(n * val) to val (at least one
/// stays in train), the rest to train. Fractions in 0..1 summing to 1; throws Error
/// otherwise or for empty or negative labels.
Split stratified_split(const std::vector<int64_t>& labels, double train, double val, double test, uint64_t seed);

/// `folds` splits; in split k, fold k is `val` and the others are `train`; `test` is empty.
/// Every class is dealt round-robin over the folds, so fold sizes differ by at most one
/// and each class is spread evenly. Throws Error if folds < 2 or a class has fewer images
/// than folds.
std::vector<Split> stratified_kfold(const std::vector<int64_t>& labels, int folds, uint64_t seed);

/// `folds` splits like stratified_kfold(), but each class's images, in their order in
/// `labels` (the dataset's file-name order), are cut into `folds` contiguous runs whose
/// sizes differ by at most one; run k of every class is fold k's validation part. Photos
/// numbered in slide order (BACH numbers the photos of a slide consecutively) stay with
/// their neighbours, so a slide straddles two folds at most at a run's edge, where random
/// folds put most slides on both sides. Needs no seed: the runs follow from the order.
/// Throws Error as stratified_kfold() does.
std::vector<Split> block_kfold(const std::vector<int64_t>& labels, int folds);

/// `folds` splits in which every group (a patient or slide id per image, `groups[i]` for
/// image i, say from the ground-truth CSV) lies wholly in one fold, as scikit-learn's
/// StratifiedGroupKFold: groups, largest first, go each to the fold that keeps every
/// class's share per fold closest to 1/folds. Deterministic: the folds follow from the
/// labels and groups alone. Throws Error for fewer groups than folds, a class with fewer
/// images than folds, or a fold left without a group.
std::vector<Split> group_kfold(const std::vector<int64_t>& labels, const std::vector<std::string>& groups, int folds);

/// Writes the file lists of `split` (paths relative to the dataset root, with labels) to
/// `file`: JSON for .json, CSV (part,file,label) for .csv. Temp file then rename.
void write_split(const std::filesystem::path& file, const Dataset& dataset, const Split& split);

}  // namespace bachlab::host
