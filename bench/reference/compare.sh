#!/usr/bin/env bash
# bachlab's training loop against plain PyTorch on the same tensors, network, weights,
# batch size, optimizer and thread count; also the same loop as the Python one written in
# bare LibTorch. Prints the three rates (median of REPEATS runs each, with their spread) and
# the ratios, and warns when the runs spread too widely for the ratios to mean much.
# Usage: bench/reference/compare.sh [BUILD_DIR] [reference_loop options...]
#   e.g. bench/reference/compare.sh build/release --images 256 --size 96 --epochs 5 --threads 2
# Needs Debian's python3-torch and python3-numpy (/usr/bin/python3).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../../build/release}"
shift || true
program="$build/bench/reference_loop"
[[ -x "$program" ]] || { echo "compare.sh: $program is not built (cmake --build --preset release)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Each side REPEATS times (default 3), interleaved, and the median kept: on a shared
# machine single runs vary by 10-20%.
repeats="${REPEATS:-3}"
ours=() bare=() theirs=()
for _ in $(seq "$repeats"); do
  ours+=("$("$program" --out "$work" --loop trainer "$@")")
  bare+=("$("$program" --out "$work" --loop bare "$@")")
  theirs+=("$(/usr/bin/python3 "$here/reference_loop.py" "$work")")
done
/usr/bin/python3 - "$work/manifest.json" "$(printf '%s\n' "${ours[@]}")" "$(printf '%s\n' "${bare[@]}")" \
  "$(printf '%s\n' "${theirs[@]}")" <<'PY'
import json, statistics, sys
manifest = json.load(open(sys.argv[1]))
def median(lines):
    runs = [json.loads(line) for line in lines.splitlines() if line.strip()]
    best = dict(runs[0])
    rates = [r["images_per_second"] for r in runs]
    best["images_per_second"] = statistics.median(rates)
    best["spread"] = (max(rates) - min(rates)) / best["images_per_second"] if len(rates) > 1 else float("nan")
    best["first_batch_loss_difference"] = max(r.get("first_batch_loss_difference", 0) for r in runs)
    best["runs"] = len(runs)
    return best
ours, bare, theirs = median(sys.argv[2]), median(sys.argv[3]), median(sys.argv[4])
print(f"{manifest['model']}, {manifest['images']} images of {manifest['size']}x{manifest['size']}, batch "
      f"{manifest['batch']}, Adam, {manifest['epochs']} epochs after a warm-up, {manifest['threads']} threads; "
      f"same first-batch loss within {theirs['first_batch_loss_difference']:.1e}; median of {ours['runs']} runs")
for side in (ours, bare, theirs):
    print(f"  {side['implementation']:<36} {side['images_per_second']:8.1f} images/s  "
          f"(spread {100 * side['spread']:.0f}%: slowest to fastest run over the median)")
widest = max(side["spread"] for side in (ours, bare, theirs))
if not widest <= 0.1:
    print(f"warning: the runs spread by up to {100 * widest:.0f}%: ratios closer to 1 than that show no "
          "difference; run on a quiet machine with more runs (REPEATS=5)")
print(f"  ratio bachlab Trainer / PyTorch: {ours['images_per_second'] / theirs['images_per_second']:.2f}")
print(f"  ratio bare LibTorch / PyTorch:   {bare['images_per_second'] / theirs['images_per_second']:.2f}")
PY
