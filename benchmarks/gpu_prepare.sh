#!/usr/bin/env bash
# Download, on a machine with access to PyPI, everything that
# benchmarks/gpu_check.sh needs on a GPU machine without network, into .gpu/
# of the repository (ignored by git; name it in the device call's `carry`):
#
#   .gpu/wheels/         Python 3.12 x86_64 wheels (no dependencies resolved:
#                        the list below is what the GPU image lacks)
#   .gpu/sdist/          mmcv 2.1.0 source (built there, against its torch)
#   .gpu/fashion-mnist/  the four Fashion-MNIST IDX files (30 MB)
#
# Usage: bash benchmarks/gpu_prepare.sh
# Environment:
#   PYTHON        interpreter whose pip downloads (default: python3)
#   FMNIST_DIR    Fashion-MNIST IDX files (default:
#                 /usr/share/datasets/fashion-mnist, Debian package
#                 dataset-fashion-mnist)
#   MAX_MIB       size limit of .gpu/ plus the tracked tree (default: 60)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$REPO/.gpu"
PY=${PYTHON:-python3}
FMNIST_DIR=${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
MAX_MIB=${MAX_MIB:-60}
MMCV_SDIST_SHA256=d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f

# What the GPU image (Python 3.12, torch 2.11, numpy 2.x, opencv, scipy,
# matplotlib, rich, regex, einops, six, tqdm, click, markdown, pyyaml,
# packaging, pillow, ... see /work/.library/device/KINDS.md) lacks for
# mmengine, mmcv, mmpretrain, mmsegmentation, mmdet and lvis, with the
# versions of the known-working CPU set (tools/setup_env.sh).
PURE=(
  mmengine==0.10.7 mmpretrain==1.2.0 mmsegmentation==1.2.2 mmdet==3.3.0
  addict==2.4.0 yapf==0.43.0 platformdirs==4.14.9 termcolor==3.3.0
  mat4py==0.6.0 model-index==0.1.11 ordered-set==4.1.0
  importlib-metadata==10.2.0 lazy-importer==0.1.0 zipp==4.1.2
  prettytable==3.19.0 ftfy==6.3.1 terminaltables==3.1.10 lvis==0.5.3
  # pkg_resources for mmcv's setup.py and mmengine's 'mmdet::' bases
  setuptools==69.5.1 wheel==0.48.0
)
BINARY=(pycocotools==2.0.11 shapely==2.2.0 wcwidth==0.9.4 ninja==1.13.2)

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
quiet() { "$@" 2> >(grep -v "is ignored: it is neither" >&2 || true); }

rm -rf "$DEST"
mkdir -p "$DEST/wheels" "$DEST/sdist" "$DEST/fashion-mnist"

echo "[gpu_prepare] wheels for CPython 3.12 x86_64"
quiet "$PY" -m pip download -q --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any \
  -d "$DEST/wheels" "${PURE[@]}" "${BINARY[@]}"

echo "[gpu_prepare] mmcv 2.1.0 source"
# pip prepares the sdist's metadata (runs its setup.py): setuptools<70 for
# pkg_resources in the isolated build environment.
CONSTRAINT=$(mktemp)
trap 'rm -f "$CONSTRAINT"' EXIT
echo 'setuptools<70' > "$CONSTRAINT"
PIP_CONSTRAINT="$CONSTRAINT" quiet "$PY" -m pip download -q --no-deps \
  --no-binary :all: -d "$DEST/sdist" mmcv==2.1.0
echo "$MMCV_SDIST_SHA256  $DEST/sdist/mmcv-2.1.0.tar.gz" | sha256sum -c --quiet

echo "[gpu_prepare] Fashion-MNIST from $FMNIST_DIR"
for name in train-images-idx3-ubyte train-labels-idx1-ubyte \
    t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  cp "$FMNIST_DIR/$name.gz" "$DEST/fashion-mnist/"
done

# One version of each distribution: two would stop the install there.
dups=$(find "$DEST/wheels" -name '*.whl' -printf '%f\n' \
  | cut -d- -f1 | tr 'A-Z-' 'a-z_' | sort | uniq -d)
if [[ -n $dups ]]; then
  echo "[gpu_prepare] two wheels of: $dups" >&2
  exit 1
fi
expected=$(( ${#PURE[@]} + ${#BINARY[@]} ))
got=$(find "$DEST/wheels" -name '*.whl' | wc -l)
if [[ $got != "$expected" ]]; then
  echo "[gpu_prepare] $got wheels for $expected requirements" >&2
  exit 1
fi

gpu_kib=$(du -sk "$DEST" | cut -f1)
tree_kib=$(cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
  | xargs -0 du -ck 2>/dev/null | tail -1 | cut -f1)
total_mib=$(( (gpu_kib + tree_kib + 1023) / 1024 ))
echo "[gpu_prepare] .gpu/ $(( gpu_kib / 1024 )) MiB (wheels" \
  "$(du -sk "$DEST/wheels" | cut -f1) KiB, sdist" \
  "$(du -sk "$DEST/sdist" | cut -f1) KiB, Fashion-MNIST" \
  "$(du -sk "$DEST/fashion-mnist" | cut -f1) KiB) + working tree" \
  "$(( tree_kib / 1024 )) MiB = $total_mib MiB (limit $MAX_MIB MiB)"
if (( total_mib > MAX_MIB )); then
  echo "[gpu_prepare] too large for one device call" >&2
  exit 1
fi
