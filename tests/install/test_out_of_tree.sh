#!/usr/bin/env bash
# Installs this build into a fresh prefix, builds examples/out_of_tree_plugin against the
# installed package only, and checks that the installed bachlab lists and builds the plugin.
# Usage: test_out_of_tree.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build_dir="$1"
source_dir="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
cmake -S "$source_dir/examples/out_of_tree_plugin" -B "$work/example" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/example" >/dev/null

listing="$(BACHLAB_PLUGIN_PATH="$work/example/plugins" "$work/prefix/bin/bachlab" plugins --kind model)"
echo "$listing"
echo "$listing" | grep -E "^model +tinynet +1\.0\.0 +Out-of-tree example" >/dev/null ||
  { echo "FAIL: tinynet not listed by the installed bachlab" >&2; exit 1; }
echo "$listing" | grep -F "$work/prefix/lib/bachlab/plugins" >/dev/null ||
  { echo "FAIL: the installed bachlab did not search its own plugin folder" >&2; exit 1; }
"$work/prefix/bin/bachlab" plugins --kind optimizer | grep -E "^optimizer +adam " >/dev/null ||
  { echo "FAIL: the in-tree plugins were not installed" >&2; exit 1; }
echo "out-of-tree plugin: built against the installed SDK and listed"
