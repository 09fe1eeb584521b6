#!/usr/bin/env bash
# Regenerates the lock files from pyproject.toml (the one source of versions):
#   requirements.txt      core + [app] + [space]: what the Hugging Face Space installs
#                         (and scripts/setup.sh --no-dev)
#   requirements-dev.txt  core + [app] + [dev], held to the versions of requirements.txt:
#                         what scripts/setup.sh (and so CI) installs
# Exact pins with sha256 hashes, resolved for Linux x86_64 / CPython 3.11 (CI, the Space).
# pip-tools runs in a throwaway venv. Usage: bash scripts/lock.sh [--upgrade]
# (without --upgrade, versions already in the lock files are kept where the ranges allow).
# Where PyPI's JSON API cannot be reached (as on the project's build machine, whose PyPI
# proxy serves only /simple), pip-tools downloads every file of every pinned version to hash
# it: there one run took 33 minutes and wrote tens of GB.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PIP_TOOLS="pip-tools==7.6.2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check "$PIP_TOOLS"
compile=("$tmp/venv/bin/pip-compile" --quiet --strip-extras --generate-hashes --allow-unsafe
  --no-emit-index-url --no-emit-find-links --resolver=backtracking
  "$@")
export CUSTOM_COMPILE_COMMAND="bash scripts/lock.sh"
"${compile[@]}" --extra app --extra space -o requirements.txt pyproject.toml
# The dev lock is held to requirements.txt's versions (its pins; a constraint needs no hashes).
sed -n 's/^\([A-Za-z0-9][A-Za-z0-9._-]*==[^ ]*\).*/\1/p' requirements.txt > "$tmp/pins.txt"
"${compile[@]}" --extra app --extra dev --constraint "$tmp/pins.txt" \
  -o requirements-dev.txt pyproject.toml
sed -i "s|$tmp/pins.txt|requirements.txt|" requirements-dev.txt
echo "lock.sh: wrote requirements.txt and requirements-dev.txt"
