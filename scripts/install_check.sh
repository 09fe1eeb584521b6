#!/usr/bin/env bash
# Installs refine the way a researcher would — `pip install ".[app]"` into a fresh venv, from
# a clean copy of this repository, using pyproject's ranges (not the lock) — and checks that
# the CLI, the library and the app's modules work: `refine --version`, `refine run
# --random-weights` on the bundled examples, `import refine.pipeline`, `import demo.ui`.
# Everything happens in a throwaway folder under /tmp, removed at the end.
# SAM2_BUILD_CUDA=0: sam2's sdist would otherwise try to compile its optional CUDA extension
# wherever a CUDA compiler is installed (as on this machine); without one it skips it anyway.
# Usage: bash scripts/install_check.sh
source "$(dirname "$0")/check_lib.sh"
check_begin install_check
V="$WORK/venv/bin"
cd "$WORK/src"
step "fresh venv" "$PY" -m venv "$WORK/venv"
SAM2_BUILD_CUDA=0 step 'pip install ".[app]"' pip_in "$V/python" ".[app]"
cd "$WORK"  # from here on, the installed package, not the source copy
step "refine --version" "$V/refine" --version
step "refine run --random-weights (bundled examples, tiny, 128 px)" "$V/refine" run \
  --data src/examples/data --stage1 src/examples/data/stage1 --out out --model tiny \
  --random-weights --image-size 128 --device cpu
step "output: one PNG per frame and expression" test "$(find out -name '*.png' | wc -l)" = 48
step 'python -c "import refine.pipeline, demo.ui"' "$V/python" -c \
  "import refine, refine.pipeline, demo.ui; assert refine.__file__.startswith('$WORK/venv'), refine.__file__; print('imported', refine.__version__, 'from', refine.__file__)"
check_end install_check
