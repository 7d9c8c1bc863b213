#!/usr/bin/env bash
# Prints the whole-process time of `byreis get` on a 100-key environment,
# next to `age -d` of the same file, measured side by side in one run.
# A figure, not an assertion. Usage: scripts/bench-get.sh [RUNS]
set -euo pipefail
runs=${1:-50}
here=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
BYREIS="$here/target/release/byreis"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
export GIT_CONFIG_GLOBAL=/dev/null GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@x GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@x
export BYREIS_HOME="$work/home"; unset CI
"$BYREIS" keygen --name bench >/dev/null
"$BYREIS" registry init "$work/reg" >/dev/null 2>&1
git init -q -b main "$work/app"; cd "$work/app"
"$BYREIS" init --project bench --registry ../reg 2>/dev/null
{ for i in $(seq 1 100); do printf 'KEY_%03d: "%s"\n' "$i" "$(head -c 24 /dev/urandom | base64)"; done; } > "$work/seed.yaml"
printf '#!/bin/sh\ncat %s > "$1"\n' "$work/seed.yaml" > "$work/ed.sh"; chmod +x "$work/ed.sh"
EDITOR="$work/ed.sh" "$BYREIS" edit prod 2>/dev/null
time_loop() { local start end; start=$(date +%s%N); for _ in $(seq 1 "$runs"); do "$@" >/dev/null; done; end=$(date +%s%N); echo $(( (end - start) / runs / 1000 )); }
t_get=$(time_loop "$BYREIS" get prod KEY_050)
t_age=$(time_loop age -d -i "$BYREIS_HOME/identity.txt" secrets/prod.enc.yaml)
echo "byreis get (100 keys, full verification): ${t_get} µs per run (mean of $runs)"
echo "age -d of the same file (no verification): ${t_age} µs per run"
awk -v a="$t_get" -v b="$t_age" 'BEGIN { printf "ratio get/age: %.2f\n", a / b }'
