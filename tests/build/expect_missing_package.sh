#!/usr/bin/env bash
# expect_missing_package.sh PYTHON CHECK BUILD_DIR DEV_SH PACKAGE
# Runs the declared-dependency check as if PACKAGE were not in dev.sh's list; passes only if
# the check fails and its message names PACKAGE and a file of it.
set -u
python=$1 check=$2 build=$3 dev_sh=$4 package=$5
output=$("$python" "$check" "$build" --dev-sh "$dev_sh" --without "$package" 2>&1)
status=$?
echo "$output"
if [ $status -eq 0 ]; then
  echo "FAIL: the check passed with $package left out of $dev_sh"; exit 1
fi
if ! grep -q "comes from Debian package .*$package" <<<"$output"; then
  echo "FAIL: the check failed without naming $package"; exit 1
fi
echo "OK: leaving $package out is caught"
