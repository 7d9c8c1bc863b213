#!/usr/bin/env bash
# Runs the whole test suite. Interop tests use the real `age`, `git` and
# `ssh-keygen`; a missing tool fails the run (it is never skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=""
for tool in git age ssh-keygen; do
  command -v "$tool" >/dev/null || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  echo "scripts/test.sh: missing tools:$missing (Debian: apt-get install age git openssh-client)" >&2
  exit 1
fi
exec cargo test --all-targets "$@"
