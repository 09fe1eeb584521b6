#!/usr/bin/env bash
# Creates .venv with everything refine needs, from the lock files that scripts/lock.sh
# generates from pyproject.toml (exact versions, sha256 hashes):
#   requirements-dev.txt  runtime + app + test tools (default)
#   requirements.txt      runtime + app + `spaces` only (--no-dev): what the Space installs
# sam2 1.1.0 comes from its sdist (pinned by hash) and is built the Space's way, in pip's
# isolated build environment; SAM2_BUILD_CUDA=0 skips its optional CUDA extension, which
# on a machine without a CUDA compiler is skipped anyway. Then refine itself, editable.
# Usage: bash scripts/setup.sh [--no-dev] [--browser]
#   --browser also installs Debian chromium + chromium-driver (needs root/apt) for the UI tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
lock=requirements-dev.txt; browser=0
for arg in "$@"; do
  case "$arg" in
    --no-dev) lock=requirements.txt ;;
    --browser) browser=1 ;;
    *) echo "setup.sh: unknown option '$arg' (use --no-dev, --browser)" >&2; exit 2 ;;
  esac
done
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install --disable-pip-version-check)
SAM2_BUILD_CUDA=0 "${PIP[@]}" --require-hashes -r "$lock"
"${PIP[@]}" --no-deps --no-build-isolation -e .
if [ "$browser" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
  else
    echo "setup.sh: --browser needs root to apt-get install chromium chromium-driver" >&2; exit 1
  fi
fi
.venv/bin/python -c "import torch, sam2, refine; print('refine set-up OK: refine', refine.__version__, '/ torch', torch.__version__)"
