#!/usr/bin/env bash
# Runs the whole test suite and ends with one line that adds up every test
# binary's result, so a reader (or CI) sees the total at the bottom.
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
trap 'rm -f "$log"' EXIT

cargo fmt --all -- --check
status=0
cargo test --workspace --all-targets 2>&1 | tee "$log" || status=$?

# Lines look like: "test result: ok. 34 passed; 0 failed; 1 ignored; ..."
read -r passed failed ignored < <(awk '/^test result:/ {
    for (i = 1; i <= NF; i++) {
      if ($(i) ~ /^passed;?$/) p += $(i-1);
      if ($(i) ~ /^failed;?$/) f += $(i-1);
      if ($(i) ~ /^ignored;?$/) s += $(i-1);
    }
  } END { print p+0, f+0, s+0 }' "$log")
echo
echo "total: ${passed} passed, ${failed} failed, ${ignored} skipped"
exit "$status"
