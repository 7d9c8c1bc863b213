#!/usr/bin/env bash
# Rotation benchmark, measured side by side in one run (the machine is
# shared and noisy: compare the ratios, not the seconds).
#
#   (a) `byreis rotate --remove` of one member, N files, R members;
#   (b) what per-file tools do: Debian's `age -d` then `age -e -a` to the
#       new set, file by file, in a shell loop;
#   the crypto lower bound: N x (1 agreement to decrypt + R agreements and
#   R derivations to encrypt), at this machine's X25519 rates measured with
#   every core busy at once (a shared machine's second core is rarely a
#   whole one; the one-core rates are printed too).
# Then N = 10,000 for linearity and peak RSS.
#
# Usage: scripts/bench-rotate.sh [N] [R] [BIG_N]   (defaults 1000 20 10000)
set -euo pipefail
N=${1:-1000}; R=${2:-20}; BIG=${3:-10000}
here=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$here/Cargo.toml" --bins --examples
BYREIS="$here/target/release/byreis"
RATE="$here/target/release/examples/x25519_rate"
command -v age >/dev/null || { echo "needs Debian's age (apt-get install age)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/byreis-bench.XXXXXX"); trap 'rm -rf "$work"' EXIT
export GIT_CONFIG_GLOBAL=/dev/null GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@x GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@x
unset CI BYREIS_ANCHOR BYREIS_IDENTITY BYREIS_IDENTITY_FILE
cores=$(nproc)

now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
# Runs a command and prints its peak RSS in MiB on fd 3.
peak_rss() {
  python3 - "$@" <<'PY'
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"{kib / 1024:.1f}")
sys.exit(r.returncode)
PY
}

# A project with n files of ~300 bytes, readable by R members.
setup() {
  local n=$1 dir=$2
  mkdir -p "$dir"
  export BYREIS_HOME="$dir/home"
  "$BYREIS" keygen --name admin >/dev/null 2>&1
  "$BYREIS" registry init "$dir/reg" >/dev/null 2>&1
  git init -q -b main "$dir/app"
  (cd "$dir/app" && "$BYREIS" init --project bench --registry ../reg 2>/dev/null)
  python3 - "$n" > "$dir/import.yaml" <<'PY'
import sys, secrets
n = int(sys.argv[1])
for i in range(n):
    print(f"e{i:05d}:")
    for k in range(8):
        print(f'  KEY_{k}: "{secrets.token_hex(12)}"')
PY
  (cd "$dir/app" && "$BYREIS" import "$dir/import.yaml" --new-env "$(sed -n 's/^\([^ #][^:]*\):$/\1/p' "$dir/import.yaml" | paste -sd, -)" 2>/dev/null)
  local adds=()
  for i in $(seq -w 1 $((R - 1))); do
    age-keygen -o "$dir/m$i.key" 2>/dev/null
    adds+=(--add "m$i=$(age-keygen -y "$dir/m$i.key")")
  done
  (cd "$dir/app" && "$BYREIS" rotate "${adds[@]}" --yes 2>/dev/null)
}

echo "== setup: N=$N files, R=$R members, $cores cores"
setup "$N" "$work/small"
read -r agree1 derive1 agree derive < <("$RATE" 20000)
echo "X25519 on one core: $agree1 agreements/s, $derive1 derivations/s"
echo "X25519 on all $cores cores at once: $agree agreements/s, $derive derivations/s (the bound uses these)"

# (a) byreis rotate --remove
cd "$work/small/app"
t0=$(now); BYREIS_TIMINGS=1 "$BYREIS" rotate --remove "m$(printf '%02d' $((R - 1)))" --yes 2>&1 >/dev/null | grep "^timing:" > "$work/timings.txt" || true; t1=$(now)
a=$(secs "$t0" "$t1")

# (b) per-file shell loop to the same new set (admin + R-2 members)
rec="$work/small/recipients.txt"
"$BYREIS" whoami --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["age_recipient"])' > "$rec"
for i in $(seq -w 1 $((R - 2))); do age-keygen -y "$work/small/m$i.key" >> "$rec"; done
mkdir -p "$work/small/loop"
t0=$(now)
for f in secrets/*.enc.yaml; do
  age -d -i "$BYREIS_HOME/identity.txt" "$f" | age -e -a -R "$rec" > "$work/small/loop/$(basename "$f")"
done
t1=$(now)
b=$(secs "$t0" "$t1")
Rn=$((R - 1))
bound=$(awk -v n="$N" -v r="$Rn" -v ag="$agree" -v de="$derive" -v c="$cores" \
  'BEGIN { printf "%.3f", n * ((1 + r) / ag + r / de) }')
echo
echo "N=$N, $Rn recipients after the removal:"
echo "  (a) byreis rotate --remove:      ${a} s"
echo "  (b) age -d | age -e per file:    ${b} s"
echo "  crypto lower bound ($cores cores):    ${bound} s  (N x (1+R) agreements + N x R derivations at the all-core rates)"
awk -v a="$a" -v b="$b" -v l="$bound" 'BEGIN { printf "  (b)/(a) = %.1f   (target >= 15)\n  (a)/bound = %.2f (target <= 1.5)\n  (b)/bound = %.1f (the best (b)/(a) this machine allows)\n", b / a, a / l, b / l }'
echo "  where (a) spends its time (BYREIS_TIMINGS=1):"
sed 's/^/    /' "$work/timings.txt"

echo
echo "== setup: N=$BIG"
setup "$BIG" "$work/big"
cd "$work/big/app"
t0=$(now)
rss=$(peak_rss "$BYREIS" rotate --remove "m$(printf '%02d' $((R - 1)))" --yes)
t1=$(now)
A=$(secs "$t0" "$t1")
echo "N=$BIG: byreis rotate --remove: ${A} s, peak RSS ${rss} MiB (target <= 100 MiB)"
awk -v a="$a" -v A="$A" -v n="$N" -v N="$BIG" 'BEGIN { printf "per file: %.2f ms at N=%d, %.2f ms at N=%d (linear if about equal)\n", 1000 * a / n, n, 1000 * A / N, N }'
