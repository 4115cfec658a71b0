#!/usr/bin/env bash
# The project's accuracy benchmark: configs/bach_best.toml with 5-fold cross-validation on any
# BACH-layout folder (the one holding Photos/, or Photos/ itself), then the figures that
# compare recipes: out-of-fold photo-level accuracy with its fold standard deviation, AUROC
# micro and macro, per-class recall, the confusion matrix and the wall time.
#
#   scripts/bach_benchmark.sh DATA_ROOT [--config FILE] [--folds K] [--out DIR] [--bachlab BIN]
#                             [KEY=VALUE | ~KEY ...]   (overrides, as `bachlab run` takes them)
#
# DATA_ROOT may also be "synthetic:nuclear" (the built-in synthetic set of that variant at
# BACH's 2048x1536; data.synthetic.per_class=N sets its size): synthetic figures are a check
# of the method, never BACH results, and the summary says which data it ran on.
# A killed benchmark continues where it stopped when run again with the same --out.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
config="$here/configs/bach_best.toml"
folds=5
out="$PWD/runs"
bachlab="$here/build/release/bachlab"
data=""
overrides=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config="$(realpath "$2")"; shift 2 ;;
    --folds) folds="$2"; shift 2 ;;
    --out) out="$(realpath -m "$2")"; shift 2 ;;
    --bachlab) bachlab="$(realpath "$2")"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "bach_benchmark: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *=*|~*) overrides+=("$1"); shift ;;
    *) [ -z "$data" ] || { echo "bach_benchmark: one DATA_ROOT only (got '$data' and '$1')" >&2; exit 2; }
       data="$1"; shift ;;
  esac
done
[ -n "$data" ] || { echo "usage: scripts/bach_benchmark.sh DATA_ROOT [--config FILE] [--folds K] [--out DIR]" >&2; exit 2; }
[ -x "$bachlab" ] || { echo "bach_benchmark: $bachlab is not built (run scripts/dev.sh setup, or pass --bachlab)" >&2; exit 2; }
[ -f "$config" ] || { echo "bach_benchmark: config $config not found" >&2; exit 2; }
[[ "$folds" =~ ^[0-9]+$ ]] && [ "$folds" -ge 2 ] || { echo "bach_benchmark: --folds must be an integer >= 2, got '$folds'" >&2; exit 2; }

# The benchmark's own config: the recipe as it is, with only the data and the folds changed.
mkdir -p "$out"
bench_config="$out/bach_benchmark.toml"
{
  echo "# Written by scripts/bach_benchmark.sh: $config on $data, $folds folds."
  echo "extends = \"$config\""
  echo "[experiment]"
  echo "name = \"bach_benchmark\""
  echo "output = \"$out\""
  echo "[data]"
  case "$data" in
    synthetic:*)
      echo "source = \"synthetic\""
      echo "[data.synthetic]"
      echo "variant = \"${data#synthetic:}\""
      echo "width = 2048    # BACH's size, so the recipe's scale and patches mean what they mean there"
      echo "height = 1536" ;;
    *)
      [ -d "$data" ] || { echo "bach_benchmark: DATA_ROOT '$data' is not a folder" >&2; exit 2; }
      echo "source = \"folder\""
      echo "root = \"$(realpath "$data")\"" ;;
  esac
  echo "[data.split]"
  echo "folds = $folds"
} > "$bench_config.tmp"
mv "$bench_config.tmp" "$bench_config"

"$bachlab" check "$bench_config" "${overrides[@]}"
# An unfinished benchmark (a run folder without its pooled metrics.json, or with [train] refit
# one whose refit has not finished) is continued. An ensemble writes its metrics.json after
# every member's folds and refit.
resume=()
latest=$(ls -d "$out/bach_benchmark"/*/ 2>/dev/null | sort | tail -1 || true)
if [ -n "$latest" ] && [ -f "$latest/run.json" ]; then
  if [ ! -f "$latest/metrics.json" ] ||
     { grep -q '^refit = true' "$latest/config.toml" && ! grep -q '^\[ensemble\.' "$latest/config.toml" &&
       [ ! -f "$latest/refit/metrics.json" ]; }; then
    resume=(--resume-latest)
  fi
fi
start=$(date +%s)
if [ ${#resume[@]} -gt 0 ]; then
  "$bachlab" run "$bench_config" "${resume[@]}"   # a resumed run keeps the overrides it started with
else
  "$bachlab" run "$bench_config" "${overrides[@]}"
fi
wall=$(( $(date +%s) - start ))

run_dir=$(ls -d "$out/bach_benchmark"/*/ | sort | tail -1)
/usr/bin/env python3 - "$run_dir/metrics.json" "$wall" "$data" <<'PY'
import json, pathlib, statistics, sys, tomllib
m = json.load(open(sys.argv[1]))
config = tomllib.loads((pathlib.Path(sys.argv[1]).parent / "config.toml").read_text())
train, split = config.get("train", {}), config.get("data", {}).get("split", {})
wall, data = int(sys.argv[2]), sys.argv[3]
val = m["splits"]["val"]
folds = m.get("fold_val_accuracy", [])
sd = statistics.stdev(folds) if len(folds) > 1 else float("nan")
print()
print(f"bach_benchmark: {m['config_file']} on {data}" + ("  (SYNTHETIC data: not a BACH result)" if data.startswith("synthetic:") else ""))
print(f"run folder:       {m['run_dir']}")
group = split.get("group", "none")
print(f"photos:           {val['size']} (out-of-fold, {len(folds)} folds, "
      + ("block-grouped: each class's photos in file order cut into contiguous runs" if group == "block"
         else "grouped by the ground-truth CSV's group column: a group never straddles folds" if group == "csv"
         else "random stratified: neighbouring photos of a slide can sit on both sides") + ")")
if config.get("ensemble"):
    print("ensemble:         " + " + ".join(f"{name} ({' '.join(t.get('overrides', [])) or 'as configured'})"
                                           for name, t in config["ensemble"].items())
          + ": each member's out-of-fold probabilities averaged")
print(f"compute:          precision {train.get('precision', 'fp32')}, channels_last {str(train.get('channels_last', False)).lower()}")
print(f"accuracy:         {val['accuracy']:.4f} +- {sd:.4f} (fold SD; folds: {', '.join(f'{a:.3f}' for a in folds)})")
if val.get("patch_accuracy") is not None:
    print(f"patch accuracy:   {val['patch_accuracy']:.4f} (single patches, not photos)")
print(f"AUROC micro:      {val['auroc_micro']:.4f}")
print(f"AUROC macro:      {val['auroc_macro']:.4f}")
classes = m["classes"]
print("recall:           " + "  ".join(f"{c} {val['per_class'][c]['recall']:.2f}" for c in classes))
width = max(len(c) for c in classes) + 2
print("confusion (rows true, columns predicted):")
print(" " * width + "".join(f"{c:>{width}}" for c in classes))
for c, row in zip(classes, val["confusion"]):
    print(f"{c:<{width}}" + "".join(f"{n:>{width}}" for n in row))
print(f"wall time:        {wall // 60} min {wall % 60} s (this invocation; training {m['seconds']:.0f} s summed over folds)")
PY
