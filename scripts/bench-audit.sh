#!/usr/bin/env bash
# Auditor benchmarks (figures, not assertions):
#   1. `doctor --exposure` over a generated history of COMMITS commits on
#      FILES environment files with several rotations (target: < 10 s,
#      each distinct file version decrypted once);
#   2. keyless `doctor` over BIG files (target: < 1 s).
# Usage: scripts/bench-audit.sh [COMMITS] [FILES] [BIG]  (default 1000 100 10000)
set -euo pipefail
COMMITS=${1:-1000}; FILES=${2:-100}; BIG=${3:-10000}
here=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
BYREIS="$here/target/release/byreis"
work=$(mktemp -d "${TMPDIR:-/tmp}/byreis-audit.XXXXXX"); trap 'rm -rf "$work"' EXIT
export GIT_CONFIG_GLOBAL=/dev/null GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@x GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@x
unset CI BYREIS_ANCHOR BYREIS_IDENTITY BYREIS_IDENTITY_FILE
now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }
gen() { # N envs of 8 keys
  python3 - "$1" <<'PY'
import sys, secrets
for i in range(int(sys.argv[1])):
    print(f"e{i:05d}:")
    for k in range(8):
        print(f'  KEY_{k}: "{secrets.token_hex(12)}"')
PY
}

export BYREIS_HOME="$work/admin"
"$BYREIS" keygen --name admin >/dev/null 2>&1
"$BYREIS" registry init "$work/reg" >/dev/null 2>&1
git init -q -b main "$work/app"; cd "$work/app"
"$BYREIS" init --project audit --registry ../reg 2>/dev/null
gen "$FILES" > "$work/seed.yaml"; "$BYREIS" import "$work/seed.yaml" --new-env "$(sed -n 's/^\([^ #][^:]*\):$/\1/p' "$work/seed.yaml" | paste -sd, -)" 2>/dev/null
age-keygen -o "$work/bob.key" 2>/dev/null; bob=$(age-keygen -y "$work/bob.key")
age-keygen -o "$work/carol.key" 2>/dev/null; carol=$(age-keygen -y "$work/carol.key")

echo "== generating $COMMITS commits on $FILES files (with rotations); this takes a while"
t0=$(now)
i=0
while [ "$i" -lt "$COMMITS" ]; do
  case $((i % 250)) in
    10) "$BYREIS" rotate --add "bob=$bob" --yes >/dev/null 2>&1 ;;
    60) "$BYREIS" rotate --add "carol=$carol" --yes >/dev/null 2>&1 ;;
    200) "$BYREIS" rotate --remove bob --yes >/dev/null 2>&1 ;;
    230) "$BYREIS" rotate --remove carol --yes >/dev/null 2>&1 ;;
    *) printf 'v%s' "$i" | "$BYREIS" set "e$(printf '%05d' $((i % FILES)))" "KEY_$((i % 8))" 2>/dev/null ;;
  esac
  i=$((i + 1))
done
t1=$(now)
echo "generated in $(secs "$t0" "$t1") s: $(git rev-list --count HEAD) commits"

t0=$(now); "$BYREIS" doctor --exposure bob --format json > "$work/exposure.json" || true; t1=$(now)
python3 - "$work/exposure.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"exposure of bob: {len(r['secrets'])} secrets, {r['file_versions']} distinct file versions decrypted once each, {r['commits_walked']} commits walked, complete={r['complete']}")
PY
echo "doctor --exposure bob: $(secs "$t0" "$t1") s (target < 10 s)"

echo "== keyless doctor over $BIG files"
export BYREIS_HOME="$work/admin2"
"$BYREIS" keygen --name admin >/dev/null 2>&1
"$BYREIS" registry init "$work/reg2" >/dev/null 2>&1
git init -q -b main "$work/app2"; cd "$work/app2"
"$BYREIS" init --project big --registry ../reg2 2>/dev/null
gen "$BIG" > "$work/big.yaml"; "$BYREIS" import "$work/big.yaml" --new-env "$(sed -n 's/^\([^ #][^:]*\):$/\1/p' "$work/big.yaml" | paste -sd, -)" 2>/dev/null
t0=$(now); BYREIS_IDENTITY_FILE=/nonexistent "$BYREIS" doctor >/dev/null; t1=$(now)
echo "keyless doctor over $BIG files: $(secs "$t0" "$t1") s (target < 1 s)"
