#!/usr/bin/env bash
# expect_failure.sh PATTERN... -- COMMAND [ARG...]
# The twin of a check: runs COMMAND on input it must refuse, and passes only if COMMAND
# fails and its output matches every PATTERN (grep -E), i.e. the check names the problem.
set -u
patterns=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do patterns+=("$1"); shift; done
shift
output=$("$@" 2>&1)
status=$?
echo "$output"
if [ $status -eq 0 ]; then
  echo "FAIL: the check passed on input it must refuse"; exit 1
fi
for pattern in "${patterns[@]}"; do
  if ! grep -Eq -- "$pattern" <<<"$output"; then
    echo "FAIL: the check failed without saying: $pattern"; exit 1
  fi
done
echo "OK: the check refuses it and names the problem"
