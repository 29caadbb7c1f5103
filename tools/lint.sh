#!/usr/bin/env bash
# Lint the tree as the OpenMMLab repositories do: flake8, isort and yapf with
# the settings of setup.cfg. Checks only; `--fix` rewrites the files with
# isort and yapf first. Needs the venv of `bash tools/setup_env.sh --dev`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=.venv/bin
PATHS=(mmdisalign tools tests benchmarks configs setup.py)
if [[ ${1:-} == --fix ]]; then
  "$BIN"/isort "${PATHS[@]}"
  "$BIN"/yapf -r -i "${PATHS[@]}"
fi
status=0
"$BIN"/flake8 "${PATHS[@]}" || status=1
"$BIN"/isort --check-only --diff "${PATHS[@]}" || status=1
"$BIN"/yapf -r -d "${PATHS[@]}" || status=1
if [[ $status != 0 ]]; then
  echo "lint: failed (fix with: bash tools/lint.sh --fix, then flake8)" >&2
  exit 1
fi
echo "lint: flake8, isort and yapf pass"
