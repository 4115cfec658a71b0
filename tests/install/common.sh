# Sourced by the install tests as `source common.sh BUILD_DIR SOURCE_DIR`: sets build_dir,
# source_dir and a scratch folder $work removed on exit, and defines check_metrics.
set -euo pipefail
build_dir="$1"
source_dir="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The synthetic photos' cache, kept inside the test.
export XDG_CACHE_HOME="$work/cache"

# check_metrics DIR fails the test unless the newest metrics.json below DIR (a runs/ folder)
# holds a finite test accuracy.
check_metrics() {
  local metrics
  metrics="$(find "$1" -name metrics.json | sort | tail -n 1)"
  [ -n "$metrics" ] || { echo "FAIL: no metrics.json under $1" >&2; exit 1; }
  python3 - "$metrics" <<'PY'
import json, math, sys
accuracy = json.load(open(sys.argv[1]))["splits"]["test"]["accuracy"]
if not isinstance(accuracy, (int, float)) or not math.isfinite(accuracy):
    sys.exit(f"FAIL: {sys.argv[1]}: test accuracy is {accuracy!r}, expected a finite number")
print(f"{sys.argv[1]}: test accuracy {accuracy}")
PY
}

# train_with_built_plugins TABLES: tinynet.toml's tiny synthetic training, run by $bachlab
# from $work/experiment.toml with the plugins built in $work/build/plugins (found through the
# config's [plugins] paths, relative to it) and TABLES choosing them; then check_metrics.
train_with_built_plugins() {
  cat >"$work/experiment.toml" <<TOML
extends = "$source_dir/examples/out_of_tree_plugin/tinynet.toml"
[experiment]
output = "runs"
[plugins]
paths = "build/plugins"
$1
TOML
  "$bachlab" run "$work/experiment.toml" >/dev/null
  check_metrics "$work/runs"
}
