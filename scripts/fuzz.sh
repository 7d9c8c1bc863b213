#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets/) for RUNS executions each
# (default 1,000,000), from a seed corpus made of real byreis files: a
# throwaway registry and project built with the release binary (manifest,
# record, roster, config, audit log, signatures, secrets files, a request,
# public keys). Not part of CI: it needs a nightly toolchain and
# `cargo install cargo-fuzz`, and takes a while.
#
# Usage: scripts/fuzz.sh [RUNS] [TARGET…]
# A crash stops the run: the input is in fuzz/artifacts/TARGET/; fix it and
# keep it as a regression test (a test in tests/it/).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-1000000}
shift || true
command -v cargo-fuzz >/dev/null || { echo "needs cargo-fuzz: cargo install cargo-fuzz" >&2; exit 1; }
rustup run nightly true 2>/dev/null || { echo "needs a nightly toolchain: rustup toolchain install nightly" >&2; exit 1; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(secrets_yaml signed_docs audit_log signatures request_file age_file keys)

cargo build --release --quiet --bin byreis
BYREIS="$PWD/target/release/byreis"
work=$(mktemp -d "${TMPDIR:-/tmp}/byreis-fuzz.XXXXXX"); trap 'rm -rf "$work"' EXIT
export GIT_CONFIG_GLOBAL=/dev/null GIT_AUTHOR_NAME=f GIT_AUTHOR_EMAIL=f@x GIT_COMMITTER_NAME=f GIT_COMMITTER_EMAIL=f@x
unset CI BYREIS_ANCHOR BYREIS_IDENTITY BYREIS_IDENTITY_FILE
export BYREIS_HOME="$work/home"
"$BYREIS" keygen --name admin >/dev/null 2>&1
"$BYREIS" registry init "$work/reg" >/dev/null 2>&1
git init -q -b main "$work/app"
(cd "$work/app" \
  && "$BYREIS" init --project fuzz --registry ../reg >/dev/null 2>&1 \
  && printf 'db-password\n' | "$BYREIS" set prod DB >/dev/null 2>&1 \
  && printf 'k\n' | "$BYREIS" set staging API_KEY >/dev/null 2>&1 \
  && "$BYREIS" rotate --add "bob=$(age-keygen 2>/dev/null | grep -o 'age1.*' || true)" --yes >/dev/null 2>&1 || true)
(cd "$work/app" && BYREIS_HOME="$work/carol" "$BYREIS" keygen --name carol >/dev/null 2>&1 \
  && BYREIS_HOME="$work/carol" "$BYREIS" request-access --name carol --reason "fuzz seed" --out "$work/request.yaml" >/dev/null 2>&1 || true)

seed() { # seed TARGET FILE…
  local dir="fuzz/corpus/$1"; shift
  mkdir -p "$dir"
  for f in "$@"; do [ -f "$f" ] && cp "$f" "$dir/seed-$(sha256sum "$f" | head -c 16)"; done
  return 0
}
printf 'DB: "x"\nAPI_KEY: plain value\nPORT: 8080\n' > "$work/plain.yaml"
printf 'prod:\n  DB: x\nstaging:\n  DB: "y"\n' > "$work/import.yaml"
seed secrets_yaml "$work/plain.yaml" "$work/import.yaml"
seed signed_docs "$work/app/.byreis/manifest.yaml" "$work/app/byreis.yaml" \
  "$work/reg/projects/fuzz/record.yaml" "$work/reg/roster/1.yaml"
seed audit_log "$work/app/.byreis/audit.jsonl"
head -n 1 "$work/app/.byreis/audit.jsonl" > "$work/audit-line"
seed signatures "$work/app/.byreis/manifest.yaml.sig" "$work/reg/projects/fuzz/record.yaml.sig" \
  "$work/reg/roster/1.yaml.sig"
seed request_file "$work/request.yaml"
seed age_file "$work/app/secrets/"*.enc.yaml
"$BYREIS" whoami --format json > "$work/whoami.json" 2>/dev/null || true
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); open(sys.argv[2],"w").write(d["age_recipient"])' \
  "$work/whoami.json" "$work/recipient" 2>/dev/null || true
seed keys "$work/recipient" "$BYREIS_HOME/signing_key.pub"

cargo +nightly fuzz build -O "${targets[@]:0:1}" >/dev/null 2>&1 || true
status=0
for t in "${targets[@]}"; do
  log="$work/$t.log"
  if cargo +nightly fuzz run -O "$t" -- -runs="$RUNS" -max_len=65536 -print_final_stats=1 > "$log" 2>&1; then
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    echo "$t: $execs executions, no crash"
  else
    echo "$t: CRASH (input in fuzz/artifacts/$t/); last lines of the log:" >&2
    tail -30 "$log" >&2
    status=1
  fi
done
exit $status
