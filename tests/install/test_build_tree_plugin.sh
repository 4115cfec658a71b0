#!/usr/bin/env bash
# Without installing: `bachlab new-plugin` of this build folder, the new folder configured
# with CMAKE_PREFIX_PATH=BUILD_DIR (the build folder's own package), built, its generated
# test run, the plugin listed by this build's bachlab and trained in a run.
# Usage: test_build_tree_plugin.sh BUILD_DIR SOURCE_DIR
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh" "$@"
bachlab="$build_dir/bachlab"

"$bachlab" new-plugin model my_model --dir "$work/plugins" >/dev/null
cmake -S "$work/plugins/my_model" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$build_dir" >/dev/null
cmake --build "$work/build" >/dev/null
ctest --test-dir "$work/build" --output-on-failure

BACHLAB_PLUGIN_PATH="$work/build/plugins" "$bachlab" plugins --kind model | grep -E "^model +my_model +0\.1\.0 " ||
  { echo "FAIL: this build's bachlab does not list the plugin built against its build folder" >&2; exit 1; }

train_with_built_plugins '[model]
plugin = "my_model"'
echo "build-tree package: a plugin built against $build_dir without installing, tested, listed and trained"
