#!/usr/bin/env bash
# Reproduces a Hugging Face Space's build of this repository in a throwaway venv, then serves
# the app the Space's way and drives it through gradio_client. The Gradio-SDK builder's steps:
#   pip install -r pre-requirements.txt   (only if the file exists)
#   pip install -r requirements.txt       (plain pip, build isolation on)
#   pip install gradio==<sdk_version> spaces
#   python app.py                         (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT set)
# Differences from a Space, each because this machine is not one:
#   - SAM2_BUILD_CUDA=0 for the requirements step: this machine has a CUDA compiler, a Space
#     image has none, and sam2's setup then skips its optional extension by itself;
#   - the server listens on 127.0.0.1; HF_HOME is a fresh folder and HF_ENDPOINT a closed local
#     port (no model hub here), so the check also shows the hub-unreachable message; SAM2 runs
#     with random weights at $REFINE_APP_IMAGE_SIZE=128 on the CPU.
# Prints each step's time and removes everything at the end.
# Usage: bash scripts/space_check.sh [PORT]   (default 7881)
source "$(dirname "$0")/check_lib.sh"
PORT=${1:-7881}
BLOCKED_HUB_PORT=7884
check_begin space_check
V="$WORK/venv/bin"
cd "$WORK/src"
sdk=$(sed -n 's/^sdk_version: *//p' README.md | head -1)
[ -n "$sdk" ] || { echo "space_check: no sdk_version in README.md's front matter" >&2; exit 1; }
step "fresh venv" "$PY" -m venv "$WORK/venv"
if [ -f pre-requirements.txt ]; then
  step "pip install -r pre-requirements.txt" pip_in "$V/python" -r pre-requirements.txt
fi
SAM2_BUILD_CUDA=0 step "pip install -r requirements.txt" pip_in "$V/python" -r requirements.txt
step "pip install gradio==$sdk spaces" pip_in "$V/python" "gradio==$sdk" spaces
mkdir "$WORK/hf"
GRADIO_SERVER_NAME=127.0.0.1 GRADIO_SERVER_PORT=$PORT GRADIO_ANALYTICS_ENABLED=False \
  HF_HOME="$WORK/hf" HF_ENDPOINT="http://127.0.0.1:$BLOCKED_HUB_PORT" \
  REFINE_APP_IMAGE_SIZE=128 PYTHONUNBUFFERED=1 \
  "$V/python" app.py > "$WORK/app.log" 2>&1 &
KILL_PIDS+=($!)
echo "-- python app.py started (pid $!, log $WORK/app.log)"
if ! step "client: open example, Run SAM2" env PYTHONPATH="$WORK/src" \
  "$V/python" scripts/space_client.py \
  "http://127.0.0.1:$PORT/" --hub-blocked; then
  echo "== app log (last 40 lines):"; tail -40 "$WORK/app.log"; exit 1
fi
step "app stops on SIGTERM" bash -c "kill ${KILL_PIDS[0]} && wait_s=0; \
  while kill -0 ${KILL_PIDS[0]} 2>/dev/null && [ \$wait_s -lt 30 ]; do sleep 1; wait_s=\$((wait_s+1)); done; \
  ! kill -0 ${KILL_PIDS[0]} 2>/dev/null"
check_end space_check
