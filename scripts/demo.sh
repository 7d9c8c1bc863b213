#!/usr/bin/env bash
# The whole byreis story on throwaway local repositories, no network:
# an admin creates a registry and a project, sets secrets, a teammate
# pins the anchor, everything verifies with stock tools, a forged file is
# refused, a contributor asks for access and proposes a change, and a
# second admin must approve changes. Usage:
# scripts/demo.sh [--keep]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# Every tool the story runs, checked before anything starts.
missing=""
for tool in cargo git age ssh-keygen python3; do
  command -v "$tool" >/dev/null || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  echo "scripts/demo.sh: missing tools:$missing" >&2
  echo "  Debian/Ubuntu: apt-get install age git openssh-client python3 (cargo: https://rustup.rs)" >&2
  exit 1
fi
cargo build --quiet --manifest-path "$here/Cargo.toml"
BYREIS="$here/target/debug/byreis"
work=$(mktemp -d "${TMPDIR:-/tmp}/byreis-demo.XXXXXX")
[ "${1:-}" = "--keep" ] || trap 'rm -rf "$work"' EXIT
export GIT_CONFIG_GLOBAL=/dev/null GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@example.invalid \
  GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@example.invalid
unset CI BYREIS_ANCHOR BYREIS_IDENTITY BYREIS_IDENTITY_FILE
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
alice() { BYREIS_HOME="$work/alice" "$BYREIS" "$@"; }
bob() { BYREIS_HOME="$work/bob" "$BYREIS" "$@"; }

step "Alice (admin) creates her keys"
show alice keygen --name alice --email alice@example.com

step "Alice creates the admin registry; the anchor fingerprint goes to the team out of band"
anchor=$(alice registry init "$work/registry")
echo "anchor: $anchor"

step "Alice starts using byreis in the app repo"
git init -q -b main "$work/app" && cd "$work/app"
echo "# app" > README.md && git add README.md && git commit -qm "app"
show alice init --project demo --registry ../registry
printf 'postgres://app:s3cret@db/app' | alice set prod DATABASE_URL
printf 'sk_live_123' | alice set prod STRIPE_KEY
printf 'postgres://app:dev@localhost/app' | alice set staging DATABASE_URL
show alice list
show alice get prod DATABASE_URL

step "edit, driven by a scripted editor (a real one opens \$EDITOR on a private temp file)"
printf '#!/bin/sh\nsed -i "s/sk_live_123/sk_live_456/" "$1"\n' > "$work/editor.sh" && chmod +x "$work/editor.sh"
EDITOR="$work/editor.sh" alice edit prod
show alice get prod STRIPE_KEY

step "exec gives the secrets to a process as environment variables"
show alice exec prod -- sh -c 'echo "the app sees DATABASE_URL of length ${#DATABASE_URL}"'
show alice exec prod --file STRIPE_KEY=STRIPE_KEY_FILE -- sh -c 'echo "or as a private file on tmpfs, mode $(stat -c %a "$STRIPE_KEY_FILE"), removed when the program ends"'

step "Stock tools agree: age decrypts, git verifies the commit, ssh-keygen the manifest"
show age -d -i "$work/alice/identity.txt" secrets/staging.enc.yaml
show git -c gpg.ssh.allowedSignersFile="$work/registry/allowed_signers" verify-commit HEAD
key=$(alice whoami --format json | sed -n 's/.*"signing_key":"\([^"]*\)".*/\1/p')
echo "alice namespaces=\"manifest@byreis.dev\" $key" > "$work/manifest_signers"
show ssh-keygen -Y verify -f "$work/manifest_signers" -I alice -n manifest@byreis.dev \
  -s .byreis/manifest.yaml.sig < .byreis/manifest.yaml

step "Bob clones the app; byreis refuses until he pins the anchor Alice gave him"
git clone -q "$work/app" "$work/bob-app"
bob keygen --name bob >/dev/null
BYREIS_HOME="$work/bob" "$BYREIS" -C "$work/bob-app" doctor || echo "(exit $? — as expected)"
show bob -C "$work/bob-app" trust --anchor "$anchor"
show bob -C "$work/bob-app" doctor

step "Alice adds Bob as a reader of staging only; every affected file is re-encrypted"
bob_key=$(bob whoami --format json | sed -n 's/.*"age_recipient":"\([^"]*\)".*/\1/p')
show alice rotate --add "bob=$bob_key" --env staging --yes
(cd "$work/bob-app" && git pull -q)
show bob -C "$work/bob-app" get staging DATABASE_URL
bob -C "$work/bob-app" get prod DATABASE_URL || echo "(exit $? — bob does not read prod)"

step "Alice removes Bob: byreis says plainly what removal cannot undo"
show alice rotate --remove bob --yes

step "A rotation interrupted by kill -9 (simulated): nothing is lost, doctor names the state"
BYREIS_TEST_KILL_AT=branch alice rotate --add "bob=$bob_key" --env staging --yes 2>/dev/null || echo "(killed: exit $?)"
alice doctor || echo "(exit $? — a change is pending; reads still serve the last complete state)"
show alice get prod DATABASE_URL
show alice rotate --resume --yes
show alice doctor

step "The rotation history, from the signed audit log (public keys only)"
show alice doctor --rotation-history

step "What changed since byreis init: names only, never values"
init_commit=$(git log --format=%H --reverse | sed -n 2p)
show alice diff "$init_commit"

step "An outsider re-encrypts prod to Alice's public key (age has no sender authentication)"
recipient=$(alice whoami --format json | sed -n 's/.*"age_recipient":"\([^"]*\)".*/\1/p')
printf 'DATABASE_URL: "postgres://attacker"\n' | age -e -a -r "$recipient" > secrets/prod.enc.yaml
alice get prod DATABASE_URL || echo "(exit $? — refused: the file is not the one the signed manifest lists)"
git checkout -q -- secrets/prod.enc.yaml
show alice doctor

step "Incident response: bob leaves; what could he read, and is it still in use?"
alice rotate --remove bob --reason "left the company" --yes 2>/dev/null
alice doctor --exposure bob || echo "(exit $? — a value bob could read is still in use)"
printf 'postgres://app:rotated@localhost/app' | alice set staging DATABASE_URL
show alice doctor --exposure bob
show alice exposure ack bob DATABASE_URL --env staging --note "old password revoked in the database"
show alice doctor --exposure bob --require-ack

step "Deploy gate and admins"
show alice verify
show alice admin list

step "Dave asks for access; Alice types the fingerprint Dave told her on a call"
dave() { BYREIS_HOME="$work/dave" "$BYREIS" "$@"; }
dave keygen --name dave >/dev/null
dave_fp=$(dave request-access --name dave --email dave@example.com --reason "on-call for staging")
echo "(Dave reads his fingerprint to Alice over the phone: $dave_fp)"
show alice request list
show alice rotate --add --from-request byreis/request/dave --env staging --confirm-fingerprint "$dave_fp" --yes
dave trust --anchor "$anchor" >/dev/null
show dave get staging DATABASE_URL

step "Dave is a member, not an admin: his change is a proposal, encrypted only to the admins (ADR 0014)"
printf 'redis://staging-cache:6379' | show dave set staging REDIS_URL
show dave get staging REDIS_URL || echo "(exit $? — not served: a proposal is not signed state)"
show dave submit
submission=$(git for-each-ref --format='%(refname:short)' refs/heads/byreis/submit/)
show alice approve "$submission" --yes
show dave get staging REDIS_URL

step "A second admin, and two admins for every change (k-of-n, ADR 0012)"
carol() { BYREIS_HOME="$work/carol" "$BYREIS" "$@"; }
carol keygen --name carol >/dev/null
carol_age=$(carol whoami --format json | sed -n 's/.*"age_recipient":"\([^"]*\)".*/\1/p')
show alice admin add carol --signing-key "$(cat "$work/carol/signing_key.pub")" --age "$carol_age"
alice rotate --add "carol=$carol_age" --yes 2>/dev/null
carol trust --anchor "$anchor" >/dev/null
show alice admin thresholds --recipients 2 --values 2
# Raising a threshold makes the pinned state need the new number of
# approvals (ADR 0017): carol checks it and approves it.
show carol approve --pinned --yes
printf 'sk_live_789' | show alice set prod STRIPE_KEY
show alice get prod STRIPE_KEY
proposal=$(git for-each-ref --format='%(refname:short)' refs/heads/byreis/proposal/)
show carol approve "$proposal" --yes
show alice get prod STRIPE_KEY

step "Deploy: verified exports, and a copy without .git (issue 16)"
show alice export prod --format dotenv --only STRIPE_KEY
show alice export prod --format k8s-secret --name app-secrets --namespace shop --only STRIPE_KEY
echo '$ alice kustomize < ResourceList   # as kustomize runs the KRM function'
printf '%s\n' 'apiVersion: config.kubernetes.io/v1' 'kind: ResourceList' 'items: []' \
  'functionConfig:' '  apiVersion: byreis.dev/v1' '  kind: ByreisSecret' \
  '  metadata: {name: app-secrets}' '  spec: {environment: prod, only: [STRIPE_KEY]}' | alice kustomize
echo '$ integrations/github-action/run.sh   # the GitHub Action, with a local $GITHUB_ENV'
: > "$work/github_env"
PATH="$(dirname "$BYREIS"):$PATH" BYREIS_HOME="$work/alice" GITHUB_ENV="$work/github_env" \
  BYREIS_ACTION_ENV=prod BYREIS_ACTION_ONLY=STRIPE_KEY RUNNER_TEMP="$work" \
  bash "$here/integrations/github-action/run.sh"
echo "\$GITHUB_ENV now holds: $(grep -c '<<ghadelimiter_' "$work/github_env") value(s), masked above first"
mkdir "$work/argocd-copy"
git archive HEAD | tar -x -C "$work/argocd-copy"
(cd "$work/argocd-copy" && show env BYREIS_HOME="$work/ci" BYREIS_ANCHOR="$anchor" BYREIS_REGISTRY="$work/registry" BYREIS_PROJECT=demo "$BYREIS" verify)

step "History: signed commits, counted"
git -c gpg.ssh.allowedSignersFile="$work/registry/allowed_signers" log --format='%h %G? %GS  %s'
echo
echo "Demo finished. Work dir: $work$( [ "${1:-}" = "--keep" ] || echo ' (removed on exit; pass --keep to keep it)')"
