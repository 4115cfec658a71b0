# Sourced by the install tests: check_metrics DIR fails the test unless the newest
# metrics.json below DIR (a runs/ folder) holds a finite test accuracy.
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
