#!/usr/bin/env bash
# From an install prefix only: `bachlab new-plugin` for each of the four kinds, the four
# folders built against the installed package, their generated tests run, each plugin
# listed by the installed bachlab, then all four used at once: a run trains the generated
# model with the generated optimizer and augmentation, and a study asks the generated tuner.
# This is what docs/writing-plugins.md walks through.
# Usage: new_plugin_test.sh BUILD_DIR SOURCE_DIR
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh" "$@"
bachlab="$work/prefix/bin/bachlab"
kinds=(model augmentation optimizer tuner)

cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
SECONDS=0
for kind in "${kinds[@]}"; do
  "$bachlab" new-plugin "$kind" "my_$kind" --dir "$work/plugins"
done

# One project holding the four folders, so one Ninja run builds them in parallel. Each
# folder's own CMakeLists.txt still calls find_package(bachlab) itself, as it does alone.
{
  echo 'cmake_minimum_required(VERSION 3.25)'
  echo 'project(generated_plugins LANGUAGES CXX)'
  echo 'enable_testing()'
  for kind in "${kinds[@]}"; do echo "add_subdirectory(my_$kind)"; done
} >"$work/plugins/CMakeLists.txt"
cmake -S "$work/plugins" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" >/dev/null
echo "new-plugin: four folders written, configured and built in ${SECONDS}s"
ctest --test-dir "$work/build" --output-on-failure

for kind in "${kinds[@]}"; do
  BACHLAB_PLUGIN_PATH="$work/build/plugins" "$bachlab" plugins --kind "$kind" |
    grep -E "^$kind +my_$kind +0\.1\.0 " ||
    { echo "FAIL: the installed bachlab does not list the generated $kind plugin my_$kind" >&2; exit 1; }
done

# The three generated plugins in one run.
train_with_built_plugins '[model]
plugin = "my_model"
[optimizer]
plugin = "my_optimizer"
lr = 0.05
momentum = 0.9
[[augment]]
plugin = "my_augmentation"
amount = 0.1'

cat >"$work/study.toml" <<'TOML'
extends = "experiment.toml"
[tune]
tuner = "my_tuner"
max_trials = 2
epochs = 1
top_k = 1
[tune.space.model.filters]
type = "int"
min = 4
max = 8
step = 4
TOML
"$bachlab" tune "$work/study.toml"
echo "new-plugin: four generated plugins built against the installed SDK, tested, listed, trained and tuned in ${SECONDS}s"
