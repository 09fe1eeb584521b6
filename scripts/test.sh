#!/usr/bin/env bash
# The project's checks: ruff, then the whole pytest suite (CPU only).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/python -m pytest -q "$@"
