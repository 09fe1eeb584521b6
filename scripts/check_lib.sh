# Shared by scripts/install_check.sh and scripts/space_check.sh (source it; bash only).
# check_begin NAME: a throwaway folder $WORK (deleted on exit, with any process recorded in
# $KILL_PIDS), a copy of the repository's files as a clean checkout would have them in
# $WORK/src (tracked and untracked-but-not-ignored files), and `step LABEL CMD...`, which
# runs CMD and prints how long it took.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
KILL_PIDS=()

check_cleanup() {
  local pid
  for pid in "${KILL_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${KILL_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}

check_begin() {
  WORK=$(mktemp -d "/tmp/refine-$1.XXXXXX")
  trap check_cleanup EXIT
  mkdir "$WORK/src"
  (cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
    | tar -c --null -T - --ignore-failed-read -f - 2>/dev/null) | tar -x -C "$WORK/src"
  CHECK_T0=$(date +%s)
  echo "== $1: throwaway copy in $WORK/src"
}

step() {
  local label=$1 t0 ms rc=0
  shift
  t0=$(date +%s%N)
  echo "-- $label"
  "$@" || rc=$?
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  printf -- "-- %-56s %5d.%d s%s\n" "$label" $((ms / 1000)) $((ms % 1000 / 100)) \
    "$([ $rc = 0 ] || echo "  FAILED (exit $rc)")"
  return $rc
}

# pip_in VENV_PYTHON ARGS...: `pip install -q ARGS`, without the per-package warnings that
# this machine's pip configuration prints about its absent local indexes.
pip_in() {
  local py=$1
  shift
  "$py" -m pip install -q --disable-pip-version-check "$@" 2>&1 \
    | { grep -v "^WARNING: Location 'file://" || true; }
  return "${PIPESTATUS[0]}"
}

check_end() {
  echo "== $1 passed in $(( $(date +%s) - CHECK_T0 )) s"
}
