#!/usr/bin/env bash
# Clean build and test times of two commits, side by side in one run
# (issue 15: "record the clean build and test times before and after").
# Each commit is checked out in its own worktree with an empty target dir
# and measured one after the other on the same machine:
#   build: `cargo test --all-targets --no-run` from nothing (dependencies
#          included), as .ci/run's first compile;
#   tests: `cargo test --all-targets` once built (running only).
# Usage: scripts/bench-build.sh BEFORE [AFTER]   (AFTER defaults to HEAD)
set -euo pipefail
cd "$(dirname "$0")/.."
before=${1:?usage: scripts/bench-build.sh BEFORE [AFTER]}
after=${2:-HEAD}
work=$(mktemp -d "${TMPDIR:-/tmp}/byreis-bench-build.XXXXXX")
trap 'git worktree remove --force "$work/before" 2>/dev/null || true; git worktree remove --force "$work/after" 2>/dev/null || true; rm -rf "$work"' EXIT
now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }
declare -A build tests count
for side in before after; do
  rev=${!side}
  git worktree add -q --detach "$work/$side" "$rev"
  export CARGO_TARGET_DIR="$work/$side-target"
  t0=$(now)
  (cd "$work/$side" && cargo test --all-targets --no-run --quiet >/dev/null 2>&1)
  t1=$(now)
  (cd "$work/$side" && cargo test --all-targets --no-fail-fast > "$work/$side.log" 2>&1) || true
  t2=$(now)
  build[$side]=$(secs "$t0" "$t1")
  tests[$side]=$(secs "$t1" "$t2")
  count[$side]=$(grep -E '^test result:' "$work/$side.log" | awk '{p+=$4; f+=$6} END {print p " passed, " f " failed"}')
  bins=$(ls "$CARGO_TARGET_DIR"/debug/deps/ | grep -cE '^[a-z_]+-[0-9a-f]{16}$' || true)
  echo "$side ($(git rev-parse --short "$rev")): clean build ${build[$side]} s, tests ${tests[$side]} s (${count[$side]}), $bins executables in target/debug/deps"
done
awk -v b="${build[before]}" -v a="${build[after]}" -v tb="${tests[before]}" -v ta="${tests[after]}" \
  'BEGIN { printf "ratio after/before: clean build %.2f, tests %.2f\n", a / b, ta / tb }'
