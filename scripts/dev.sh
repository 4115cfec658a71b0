#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine:
#   scripts/dev.sh setup   install missing Debian packages, configure and build (release), and export
#                          the seeded random weights the *_transfer_quick.toml configs name (weights/)
#   scripts/dev.sh demo    setup, then list the plugins and run configs/quickstart.toml (Model 4A on
#                          the built-in synthetic H&E data; the run folder goes to runs/quickstart/)
#   scripts/dev.sh test    setup, then run the whole test suite with ctest, then build the fuzz
#                          targets (preset "fuzz", clang, build/fuzz) and replay their seeds and
#                          regression inputs: deterministic, the same code gives the same result
#   scripts/dev.sh fuzz [SECONDS]   build the fuzz targets, replay them, then search each for new
#                          crashing inputs for SECONDS (default 600); a find goes into
#                          tests/fuzz/regressions/ with its fix
# Installing needs root (or sudo); every step is idempotent and says what it does.
set -euo pipefail

cd "$(dirname "$0")/.."
PRESET="${BACHLAB_PRESET:-release}"
BUILD_DIR="build/${PRESET}"
JOBS="${BACHLAB_JOBS:-$(nproc)}"

# Build and test dependencies, all from Debian 12's archive.
PACKAGES=(
  cmake g++ ninja-build pkg-config
  libtorch-dev libopencv-dev libtiff-dev libboost-dev libtomlplusplus-dev libcli11-dev
  nlohmann-json3-dev libfmt-dev libsqlite3-dev libgtest-dev libgmock-dev libbenchmark-dev libyaml-cpp-dev
  # libpq for studies on PostgreSQL; the server for the tests that start a throwaway one.
  libpq-dev postgresql
  # Gloo's headers, which c10d's ProcessGroupGloo header includes (data-parallel training).
  libgloo-dev
  # torchvision exports the ResNet50/VGG16 weights the transfer tests check against;
  # OpenCV's Python module runs examples/predict_exported.py, which a test checks against predict.
  python3-torch python3-torchvision python3-opencv
  # The fuzz build (tests/fuzz): clang with libFuzzer's runtime, which clang only recommends.
  clang-14 libclang-rt-14-dev
)

install_missing() {
  local missing=()
  for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: all ${#PACKAGES[@]} Debian packages already installed"
    return
  fi
  echo "setup: installing ${#missing[@]} missing Debian packages: ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

build() {
  echo "setup: configuring (${PRESET}) and building in ${BUILD_DIR} with ${JOBS} jobs"
  cmake --preset "${PRESET}" >/dev/null
  cmake --build --preset "${PRESET}" -j "${JOBS}"
}

# The transfer quick configs run on seeded random backbone weights (no download): torchvision's
# ResNet50 and VGG16 (without its classifier) exported by /usr/bin/python3, which has the
# python3-torch and python3-torchvision packages above. Each file is made once.
export_quick_weights() {
  local made=0
  mkdir -p weights
  if [ ! -f weights/resnet50_seed7.pt ]; then
    /usr/bin/python3 scripts/export_torchvision.py resnet50 --random-seed 7 -o weights/resnet50_seed7.pt
    made=$((made + 1))
  fi
  if [ ! -f weights/vgg16_seed7_notop.pt ]; then
    /usr/bin/python3 scripts/export_torchvision.py vgg16 --random-seed 7 --notop -o weights/vgg16_seed7_notop.pt
    made=$((made + 1))
  fi
  echo "setup: transfer quick-config weights in weights/ ($made exported now)"
}

# The libFuzzer targets (tests/fuzz) in their own clang build; its ctest replays the seeds and
# the inputs that once crashed (fuzz.*.replay) and, for $1 > 0 seconds, searches each target
# that long for new crashes (fuzz.*). The test command passes 0: a random search getting lucky
# must not turn an unrelated change red; searching is its own command.
fuzz() {
  local seconds="$1"
  echo "setup: configuring (fuzz) and building the fuzz targets in build/fuzz"
  # Chained: under `fuzz 60 || status=$?` set -e does not stop at a failed step.
  cmake --preset fuzz -DBACHLAB_FUZZ_SECONDS="${seconds}" >/dev/null &&
    cmake --build --preset fuzz -j "${JOBS}" &&
    ctest --preset fuzz -j "${JOBS}"
}

command="${1:-}"
case "$command" in
  setup)
    install_missing
    build
    export_quick_weights
    ;;
  demo)
    install_missing
    build
    export_quick_weights
    "./${BUILD_DIR}/bachlab" plugins
    "./${BUILD_DIR}/bachlab" run configs/quickstart.toml
    ;;
  test)
    install_missing
    build
    export_quick_weights
    status=0
    ctest --preset "${PRESET}" -j "${JOBS}" --timeout 900 || status=$?
    fuzz 0 || status=$?
    exit "${status}"
    ;;
  fuzz)
    install_missing
    fuzz "${2:-600}"
    ;;
  *)
    echo "usage: scripts/dev.sh setup|demo|test|fuzz [SECONDS]" >&2
    exit 2
    ;;
esac
