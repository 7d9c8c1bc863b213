#!/usr/bin/env bash
# The steps of the byreis GitHub Action (action.yml), as one script so a
# test can run them: verify, then hand an environment's values to the job.
# Every value is masked (::add-mask::, line by line) before any value is
# written anywhere; a refusal writes nothing.
#
# Inputs (environment): BYREIS_ACTION_ENV (required), BYREIS_ACTION_MODE
# (github-env | dotenv), BYREIS_ACTION_DOTENV (path, for dotenv),
# BYREIS_ACTION_ONLY (comma-separated names). Trust as for every byreis
# read: BYREIS_ANCHOR, BYREIS_REGISTRY, BYREIS_PROJECT, BYREIS_IDENTITY(_FILE).
set -euo pipefail
env_name=${BYREIS_ACTION_ENV:?set the action input environment}
mode=${BYREIS_ACTION_MODE:-github-env}
only=()
if [ -n "${BYREIS_ACTION_ONLY:-}" ]; then only=(--only "$BYREIS_ACTION_ONLY"); fi
case "$mode" in
  github-env) : "${GITHUB_ENV:?GITHUB_ENV is not set (not on GitHub Actions?)}" ;;
  dotenv) : "${BYREIS_ACTION_DOTENV:?set the action input dotenv-path}" ;;
  *) echo "byreis action: mode must be github-env or dotenv, not $mode" >&2; exit 2 ;;
esac

byreis verify >&2

umask 077
work=$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/byreis-action.XXXXXX")
trap 'rm -rf "$work"' EXIT
if [ "$mode" = dotenv ]; then
  # The path may be in the checkout (attacker input): a link or anything
  # but a regular file there is refused rather than followed. The file is
  # written in the private directory and then moved into place.
  if [ -L "$BYREIS_ACTION_DOTENV" ] || { [ -e "$BYREIS_ACTION_DOTENV" ] && [ ! -f "$BYREIS_ACTION_DOTENV" ]; }; then
    echo "byreis action: $BYREIS_ACTION_DOTENV is a link or not a regular file; refusing to write values there" >&2
    exit 1
  fi
fi
# Masks first, for every line of every value; then the values. The values
# travel through pipes, never a file but the dotenv file itself; a refusal
# gives python nothing to read, so nothing is masked or written.
# --as-env: the names become variables of later steps, so names exec
# refuses (LD_PRELOAD, BASH_ENV, PATH, *PROXY*, …) are refused here too
# unless the signed state allows them (byreis exec-allow).
hand_over=$(cat <<'PY'
import json, os, secrets, subprocess, sys
try:
    values = json.load(sys.stdin)
except ValueError:  # byreis refused and said why; nothing to hand over
    sys.exit(1)
mode, env_name, work, only = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
def esc(s):  # workflow-command data escaping
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
for v in values.values():
    for line in v.splitlines():
        if line.strip():
            sys.stdout.write(f"::add-mask::{esc(line)}\n")
sys.stdout.flush()
def export(fmt):
    r = subprocess.run(["byreis", "export", env_name, "--format", fmt, "--as-env", *only],
                       stdout=subprocess.PIPE)
    if r.returncode != 0:
        sys.exit(r.returncode)
    return r.stdout
if mode == "github-env":
    with open(os.environ["GITHUB_ENV"], "a") as f:
        for k, v in values.items():
            while True:
                d = f"ghadelimiter_{secrets.token_hex(16)}"
                if d not in v:
                    break
            f.write(f"{k}<<{d}\n{v}\n{d}\n")
else:
    text = export("dotenv")
    # A signed change landing between the exports would give the file
    # values that were never masked: the state is read again after, and a
    # difference hands over nothing.
    if json.loads(export("json")) != values:
        sys.stderr.write("byreis action: the secrets changed while they were handed over; nothing was written, run the step again\n")
        sys.exit(1)
    fd = os.open(os.path.join(work, "values.env"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(text)
PY
)
byreis export "$env_name" --format json --as-env "${only[@]}" \
  | python3 -c "$hand_over" "$mode" "$env_name" "$work" "${only[@]}"
if [ "$mode" = dotenv ]; then
  mv -f -T "$work/values.env" "$BYREIS_ACTION_DOTENV"
fi
echo "byreis action: $mode: values of $env_name handed over after verification" >&2
