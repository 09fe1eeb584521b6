#!/usr/bin/env bash
# Creates .venv with everything refine needs, in the one order that works:
#   1. torch + torchvision (pinned; pip takes them from local files where present)
#   2. build tools for sam2's sdist
#   3. the pinned runtime + dev requirements
#   4. sam2 from its hash-pinned sdist, without CUDA extension or build isolation
#      (an isolated build would pull a multi-GB CUDA torch)
# Usage: bash scripts/setup.sh [--no-dev] [--browser]
#   --browser also installs Debian chromium + chromium-driver (needs root/apt) for the UI tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
dev=1; browser=0
for arg in "$@"; do
  case "$arg" in
    --no-dev) dev=0 ;;
    --browser) browser=1 ;;
    *) echo "setup.sh: unknown option '$arg' (use --no-dev, --browser)" >&2; exit 2 ;;
  esac
done
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install --disable-pip-version-check)
"${PIP[@]}" torch==2.14.1 torchvision==0.29.1
"${PIP[@]}" "setuptools>=70.1" wheel
"${PIP[@]}" -r requirements.txt
if [ "$dev" = 1 ]; then "${PIP[@]}" -r requirements-dev.txt; fi
SAM2_BUILD_CUDA=0 "${PIP[@]}" --no-build-isolation --no-deps --no-binary sam2 \
  --require-hashes -r requirements-sam2.txt
"${PIP[@]}" --no-deps --no-build-isolation -e .
if [ "$browser" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
  else
    echo "setup.sh: --browser needs root to apt-get install chromium chromium-driver" >&2; exit 1
  fi
fi
.venv/bin/python -c "import torch, sam2, refine; print('refine set-up OK: torch', torch.__version__)"
