#!/usr/bin/env bash
# bachlab's training loop against plain PyTorch on the same tensors, network, weights,
# batch size, optimizer and thread count; prints both rates and their ratio.
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

ours="$("$program" --out "$work" "$@")"
theirs="$(/usr/bin/python3 "$here/reference_loop.py" "$work")"
/usr/bin/python3 - "$work/manifest.json" "$ours" "$theirs" <<'PY'
import json, sys
manifest, ours, theirs = json.load(open(sys.argv[1])), json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"{manifest['model']}, {manifest['images']} images of {manifest['size']}x{manifest['size']}, batch "
      f"{manifest['batch']}, Adam, {manifest['epochs']} epochs after a warm-up, {manifest['threads']} threads; "
      f"same first-batch loss within {theirs['first_batch_loss_difference']:.1e}")
for side in (ours, theirs):
    print(f"  {side['implementation']:<32} {side['images_per_second']:8.1f} images/s")
print(f"  ratio bachlab / PyTorch: {ours['images_per_second'] / theirs['images_per_second']:.2f}")
PY
