#!/usr/bin/env bash
# Installs this build into a fresh prefix, builds examples/out_of_tree_plugin against the
# installed package only, checks that the installed bachlab lists the plugin, and trains it
# from examples/out_of_tree_plugin/tinynet.toml: once found through BACHLAB_PLUGIN_PATH, once
# through the config's [plugins] paths.
# Usage: test_out_of_tree.sh BUILD_DIR SOURCE_DIR
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh" "$@"

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

# Copies of the config, so the runs land in $work (a config's output is relative to it).
mkdir -p "$work/by_env" "$work/by_config"
cp "$source_dir/examples/out_of_tree_plugin/tinynet.toml" "$work/by_env/"
BACHLAB_PLUGIN_PATH="$work/example/plugins" "$work/prefix/bin/bachlab" run "$work/by_env/tinynet.toml" >/dev/null
check_metrics "$work/by_env/runs"

{ cat "$source_dir/examples/out_of_tree_plugin/tinynet.toml"; printf '\n[plugins]\npaths = "../example/plugins"\n'; } \
  >"$work/by_config/tinynet.toml"
BACHLAB_PLUGIN_PATH= "$work/prefix/bin/bachlab" run "$work/by_config/tinynet.toml" >/dev/null
check_metrics "$work/by_config/runs"
echo "out-of-tree plugin: built against the installed SDK, listed, and trained from a config"
