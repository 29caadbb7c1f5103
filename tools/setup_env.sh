#!/usr/bin/env bash
# Prepare this machine for mmdisalign: a virtual environment at .venv/ with
# torch, a CPU-ops build of mmcv 2.1.0 (cached outside the repository, keyed
# by torch + Python + machine), the OpenMMLab stack and mmdisalign itself
# with its extra [all] (every task).
# Idempotent: every step checks whether it is already done.
#
# Usage: bash tools/setup_env.sh [--dev] [--no-data]
#   --dev      also install the development extra (pytest, ...)
#   --no-data  skip the Debian Fashion-MNIST package
# Environment:
#   MMDISALIGN_CACHE  wheel cache (default: ~/.cache/mmdisalign)
#   PYTHON            interpreter used to create .venv (default: python3)
set -Eeuo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
PY="$VENV/bin/python"
CACHE="${MMDISALIGN_CACHE:-$HOME/.cache/mmdisalign}"
TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MMCV_VERSION=2.1.0
DEV=0
DATA=1
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    --no-data) DATA=0 ;;
    *) echo "setup_env.sh: unknown option '$arg'" >&2; exit 2 ;;
  esac
done

STEP="start"
T0=$(date +%s)
step() {
  STEP="$1"
  printf '[setup %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$STEP"
}
trap 'echo "[setup] FAILED during step: $STEP (exit $?)" >&2' ERR

# pip: quiet but not silent, never ask questions.
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
# The machine's pip config lists local wheel stores that may be absent: drop
# pip's "Location ... is ignored" lines, keep everything else.
quiet() { "$@" 2> >(grep -v "is ignored: it is neither" >&2 || true); }
pip_install() { quiet "$PY" -m pip install --progress-bar off -q "$@"; }

step "1/7 Fashion-MNIST (Debian package dataset-fashion-mnist)"
FMNIST=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [[ $DATA == 1 && ! -f $FMNIST ]]; then
  SUDO=""; [[ $(id -u) != 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi
[[ $DATA == 0 || -f $FMNIST ]] || { echo "Fashion-MNIST not found at $FMNIST" >&2; false; }

step "2/7 virtual environment at .venv"
if [[ ! -x $PY ]]; then
  "${PYTHON:-python3}" -m venv "$VENV"
fi
pip_install --upgrade 'pip>=23.2'

step "3/7 torch $TORCH_VERSION + torchvision $TORCHVISION_VERSION"
have_version() {  # have_version DIST VERSION
  [[ "$("$PY" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null)" == "$2"* ]]
}
if ! have_version torch "$TORCH_VERSION" || ! have_version torchvision "$TORCHVISION_VERSION"; then
  pip_install "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
fi
# torch pulls a setuptools without pkg_resources, which mmcv's setup.py,
# mmengine's 'mmdet::' base lookup and openmim need.
pip_install 'setuptools<70' wheel ninja

step "4/7 mmcv $MMCV_VERSION with CPU ops (cached build)"
KEY=$("$PY" -c "import platform, sys, torch; print(f'torch{torch.__version__}-cp{sys.version_info[0]}{sys.version_info[1]}-{platform.machine()}')")
WHEEL_DIR="$CACHE/mmcv-$MMCV_VERSION/$KEY"
if ! "$PY" - <<PYEOF 2>/dev/null
import importlib.metadata as m, mmcv.ops, torch
assert m.version('mmcv') == '$MMCV_VERSION'
info = open('$WHEEL_DIR/BUILT_AGAINST').read().strip()
assert info == '$KEY', info
PYEOF
then
  if ! ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1 \
     || [[ "$(cat "$WHEEL_DIR/BUILT_AGAINST" 2>/dev/null)" != "$KEY" ]]; then
    echo "  no cached wheel for $KEY: building from the PyPI sdist (about 8 min on 2 cores)"
    BUILD=$(mktemp -d)
    # --no-build-isolation: mmcv's setup.py imports pkg_resources and torch,
    # which only the venv (setuptools<70, torch) provides.
    quiet "$PY" -m pip download -q --no-deps --no-binary :all: --no-cache-dir \
      --no-build-isolation \
      -d "$BUILD" "mmcv==$MMCV_VERSION"
    tar -xzf "$BUILD"/mmcv-"$MMCV_VERSION".tar.gz -C "$BUILD"
    SRC="$BUILD/mmcv-$MMCV_VERSION"
    # torch >= 2.14 headers need C++20; mmcv 2.1.0 asks for C++17.
    sed -i "s/-std=c++17/-std=c++20/g" "$SRC/setup.py"
    grep -q -- "-std=c++20" "$SRC/setup.py" || { echo "C++ standard patch did not apply" >&2; false; }
    ( cd "$SRC" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
        "$PY" -m pip wheel --no-build-isolation --no-deps --no-cache-dir \
        -w "$BUILD/dist" . > "$BUILD/build.log" 2>&1 ) \
      || { tail -40 "$BUILD/build.log" >&2; echo "mmcv build failed, log: $BUILD/build.log" >&2; false; }
    mkdir -p "$WHEEL_DIR"
    rm -f "$WHEEL_DIR"/*.whl
    cp "$BUILD"/dist/mmcv-"$MMCV_VERSION"-*.whl "$WHEEL_DIR/"
    echo "$KEY" > "$WHEEL_DIR/BUILT_AGAINST"
    rm -rf "$BUILD"
  else
    echo "  reusing cached wheel $WHEEL_DIR"
  fi
  pip_install --no-deps --force-reinstall --no-cache-dir "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl
fi

step "5/7 OpenMMLab stack (mmengine, mmpretrain, mmsegmentation, mmdet, lvis)"
# Skipped when every package is there at the pinned version (saves ~15 s).
if ! "$PY" - <<'PYEOF' 2>/dev/null
import importlib.metadata as m
pins = {'mmengine': '0.10.7', 'mmpretrain': '1.2.0',
        'mmsegmentation': '1.2.2', 'mmdet': '3.3.0'}
for name, version in pins.items():
    assert m.version(name) == version, name
for name in ('lvis', 'pycocotools', 'matplotlib', 'ftfy', 'regex'):
    m.version(name)
assert int(m.version('numpy').split('.')[0]) < 2
PYEOF
then
  pip_install 'numpy<2' 'mmengine==0.10.7' 'mmpretrain==1.2.0' 'mmsegmentation==1.2.2' \
    'mmdet==3.3.0' lvis pycocotools matplotlib ftfy regex "mmcv==$MMCV_VERSION"
else
  echo "  already installed"
fi

step "6/7 mmdisalign[all] (editable)"
# [all]: the three task adapters' libraries (already there from step 5) and
# matplotlib; --dev adds the development extra.
EXTRAS="all"; [[ $DEV == 1 ]] && EXTRAS="all,dev"
pip_install --no-build-isolation -e "$REPO[$EXTRAS]"
if [[ $DEV == 1 ]]; then
  # openmim for the mim tests, without its opendatalab/openxlab chain (which
  # pins an old setuptools): its real dependencies, then openmim itself.
  pip_install click colorama model-index tabulate pandas requests rich 'numpy<2'
  pip_install --no-deps 'openmim==0.3.9'
fi
# Last: torch declares setuptools>=77 but the stack needs pkg_resources
# (mmengine's 'mmdet::' bases, openmim). pip warns about the conflict; the
# known-working set is setuptools 69.5.1.
pip_install 'setuptools<70' 2>&1 | grep -v "dependency conflicts\|requires setuptools\|dependency resolver" >&2 || true

step "7/7 check"
"$PY" - <<'PYEOF'
import importlib.metadata as m
import mmcv.ops  # noqa: F401  compiled CPU ops must import
import mmdet.models  # noqa: F401
import mmpretrain.models  # noqa: F401
import mmseg.models  # noqa: F401  (needs ftfy / regex)
import mmdisalign.cls  # noqa: F401  the three task adapters
import mmdisalign.det  # noqa: F401
import mmdisalign.seg  # noqa: F401
names = ['torch', 'torchvision', 'mmcv', 'mmengine', 'mmpretrain',
         'mmsegmentation', 'mmdet', 'numpy', 'setuptools']
print('  ' + ', '.join(f'{n} {m.version(n)}' for n in names))
PYEOF
step "done"
