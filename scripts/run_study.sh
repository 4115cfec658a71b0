#!/usr/bin/env bash
# Runs the study's nine handcrafted experiments (configs/baseline.toml ... model4c.toml) on
# the built-in synthetic H&E dataset and writes their comparison table to docs/results.md.
#
#   scripts/run_study.sh                 all nine, each config's own epochs
#   EPOCHS=5 scripts/run_study.sh        fewer epochs, for a quick look
#   BACHLAB=build/train/bachlab scripts/run_study.sh
#
# The real BACH photos cannot be shipped, so each experiment is run from a generated
# config that extends the real one and only swaps [data] for the synthetic set; every
# other setting (model, optimizer, lr, augmentation, image size) is the study config's.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bachlab="${BACHLAB:-$root/build/release/bachlab}"
per_class="${PER_CLASS:-100}"
out="${OUT:-$root/runs/study-synthetic}"
results="$root/docs/results.md"
images="$root/docs/images/results"
experiments=(baseline baseline_aug model2 model3a model3b model3c model4a model4b model4c)

if [ ! -x "$bachlab" ]; then
  echo "run_study: $bachlab is not built; run scripts/dev.sh setup, or set BACHLAB to the bachlab program" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
configs=()
for name in "${experiments[@]}"; do
  # Named like the study config so that the run folder and the table row keep its name.
  cat >"$work/$name.toml" <<TOML
extends = "$root/configs/$name.toml"

[experiment]
output = "$out"

[data]
source = "synthetic"

[data.synthetic]
per_class = $per_class
width = 512
height = 384
TOML
  configs+=("$work/$name.toml")
done

epochs_flag=()
if [ -n "${EPOCHS:-}" ]; then epochs_flag=(--epochs "$EPOCHS"); fi

table="$work/table.md"
mkdir -p "$images"
# The comparison table goes to stdout, progress to stderr.
"$bachlab" run "${configs[@]}" "${epochs_flag[@]}" --markdown | tee "$table"

tmp="$results.tmp"
{
  echo "# Results of the study's nine experiments on synthetic data"
  echo
  echo "Written by \`scripts/run_study.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores,"
  echo "$("$bachlab" --version | paste -sd ' ' -)."
  echo "Data: the built-in synthetic H&E set, $per_class photos per class (512x384), split 70/15/15;"
  echo "every other setting is the study config's (configs/*.toml)${EPOCHS:+, but $EPOCHS epochs each}."
  echo "Accuracies are of the final weights on each split in evaluation mode. Test AUROC micro is one ROC"
  echo "curve over the one-hot matrix (Keras' AUC, the study's \"Test AUROC\"); macro is the mean one-vs-rest AUROC."
  echo "These numbers are about the synthetic set, not BACH: they show the pipeline and the models' relative"
  echo "behaviour, not the study's figures. Times are the sum of epoch times; on a machine shared with other"
  echo "work they vary several-fold, so compare them loosely (bench/train measures throughput properly)."
  echo
  cat "$table"
  echo
  echo "## Benchmark figures"
  echo
  echo "Measured with the commands each page gives: training throughput, the trainer's overhead"
  echo "and bachlab against plain PyTorch on the same loop (training.md, \"Measured\"); decoding"
  echo "and the preprocessing cache against a Python reference (data.md, \"Measured\"); tuner ask"
  echo "latency and Bayesian against random (tuning.md); the frozen-feature cache and backbone"
  echo "throughput (transfer.md). \`bachlab bench\` compares plugins of one kind on this machine."
  echo
  echo "## Learning curves"
  echo
  echo "Loss and accuracy per epoch, training against validation, as the study plotted them"
  echo "(copied from each run folder's loss.png and accuracy.png; the full report is its report.html)."
  for name in "${experiments[@]}"; do
    run_dir="$(ls -d "$out/$name"/*/ 2>/dev/null | sort | tail -1)"
    [ -n "$run_dir" ] || continue
    for curve in loss accuracy confusion_matrix; do
      cp "$run_dir/$curve.png" "$images/$name-$curve.png.tmp" && mv "$images/$name-$curve.png.tmp" "$images/$name-$curve.png"
    done
    echo
    echo "### $name"
    echo
    echo "![$name loss](images/results/$name-loss.png) ![$name accuracy](images/results/$name-accuracy.png)"
    echo "![$name confusion matrix](images/results/$name-confusion_matrix.png)"
  done
} >"$tmp"
mv "$tmp" "$results"
echo "run_study: wrote $results"
