#!/bin/sh
# Regenerates the type, default and range columns of docs/configs.md from the code, keeping
# the hand-written meaning column:
#   scripts/update_config_docs.sh [BUILD_DIR]            (default build/release)
#   scripts/update_config_docs.sh --check [BUILD_DIR]    fail listing every difference (ctest)
# The keys come from running every reader (`bachlab config-keys`, the code path of
# `bachlab check`) over the shipped configs and tests/config/schema/, which together build
# every plugin and turn on every conditional setting. base.toml is only ever extended and
# the transfer configs need exported weights, so those two are left out (as in cli_test);
# tests/config/schema/ builds the transfer models without weights instead.
set -eu

mode=--update
if [ "${1:-}" = "--check" ]; then
  mode=--check
  shift
fi
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build/release}" && pwd)

for tool in "$build/bachlab" "$build/tests/write_probe_module"; do
  if [ ! -x "$tool" ]; then
    echo "update_config_docs.sh: $tool is missing; build first (cmake --build --preset release)" >&2
    exit 2
  fi
done

# The schema configs run from a copy beside the probe module they name.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$root"/tests/config/schema/*.toml "$work"/
"$build/tests/write_probe_module" "$work/probe.ts"

set --
for config in "$root"/configs/*.toml "$root"/configs/tune/*.toml "$work"/*.toml; do
  case "$(basename "$config")" in
    base.toml) case "$config" in "$work"/*) ;; *) continue ;; esac ;;
    *transfer*) continue ;;
  esac
  set -- "$@" "$config"
done
exec "$build/bachlab" config-keys "$mode" "$root/docs/configs.md" "$@"
