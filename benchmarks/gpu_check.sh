#!/usr/bin/env bash
# The GPU check of issue #15: one run on a machine with one CUDA GPU, from
# the repository root, that downloads nothing (benchmarks/gpu_prepare.sh
# put what it needs in .gpu/) and finishes within GPU_CHECK_BUDGET seconds.
#
#   env    install .gpu/wheels into $WORK/site; mmcv's Python package with
#          a stand-in _ext (instant); start the mmcv 2.1.0 CUDA build (sm_90,
#          only the kernels Mask R-CNN calls: nms, roi_align) in the
#          background
#   data   Fashion-MNIST-LT and the segmentation / detection scenes
#   e2e    per task: stage 1 -> DisAlign stage 2 with AMP -> test, through
#          tools/train.py and tools/test.py on CUDA (cls and seg run while
#          mmcv builds: they call no mmcv op)
#   dist   tools/dist_train.sh CONFIG 1: a one-GPU torchrun stage 2 (NCCL)
#   bench  benchmarks/{cls_resnet50,seg_deeplabv3plus,det_mask_rcnn}.py
#          --device cuda at realistic sizes: stage 2 / no-grad forward,
#          stage 2 / stage 1, peak CUDA memory
#   sync   benchmarks/sync_check.py: host-device synchronisations of a
#          stage-2 step from mmdisalign code must be 0
#
# Every part has its own timeout (and the whole run a deadline); a failing
# or skipped part becomes a row of the summary table printed at the end,
# never the end of the run. Logs go to $OUT (the device tool's folder; at
# most 8 files): summary.txt setup.log mmcv_build.log e2e.log dist.log
# bench.log sync.log results.json.
#
# Usage (repository root):
#   bash benchmarks/gpu_check.sh                    # on the GPU machine
#   GPU_CHECK_DRY=1 PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh
#       # CPU rehearsal: no install, no build, tiny sizes, no AMP
# Environment (defaults in brackets):
#   GPU_CHECK_PREFLIGHT 1: only check (on a CPU, in a minute) that the
#                       files named below exist, the configs parse and the
#                       benchmarks import what they use; then exit
#   GPU_CHECK_DRY       1: shortcut for DEVICE=cpu INSTALL=0 BUILD=0
#                       SIZES=tiny [0]
#   GPU_CHECK_DEVICE    cuda | cpu [cuda]
#   GPU_CHECK_INSTALL   install .gpu/wheels [1]
#   GPU_CHECK_BUILD     build mmcv's ops [1]
#   GPU_CHECK_SIZES     full | tiny [full]
#   GPU_CHECK_MMCV_OPS  CUDA kernels to build, or 'all' [nms,roi_align]
#   GPU_CHECK_PARTS     parts to run among e2e,dist,bf16,bench,sync (dist
#                       and bf16 need the stage-1 checkpoints of e2e); env
#                       and mmcv always run [e2e,dist,bf16,bench,sync]
#   GPU_CHECK_BUDGET    seconds for the whole run [470]
#   GPU_CHECK_WORK      scratch folder [/tmp/gpu_check]
#   PYTHON              interpreter [python3]
#   OUT                 where the logs go [work_dirs/gpu_check_out]
set -uo pipefail
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

# --- names the restructuring may change -----------------------------------
CLS_STAGE1=configs/cls/fashion_mnist_lt/resnet18-s3w16_1xb128-30e_fashion-mnist-lt.py
CLS_STAGE2=configs/cls/fashion_mnist_lt/resnet18-s3w16_1xb128-10e_fashion-mnist-lt_disalign.py
SEG_STAGE1=configs/seg/fcn_r18-w16-d8_1xb4-3k_fmnist-scenes-64x64.py
SEG_STAGE2=configs/seg/fcn_r18-w16-d8_1xb4-400_fmnist-scenes-64x64_disalign.py
DET_STAGE1=configs/det/fmnist/mask-rcnn_r18-w16_fpn_1xb2-2k_fmnist-lvis.py
DET_STAGE2=configs/det/fmnist/mask-rcnn_r18-w16_fpn_1xb2-500_fmnist-lvis_disalign.py
CLS_DATA_TOOL=tools/dataset_converters/fashion_mnist_lt.py
SEG_DATA_TOOL=tools/dataset_converters/fmnist_ade_scenes.py
DET_DATA_TOOL=tools/dataset_converters/fmnist_lvis_scenes.py
SEG_FREQ_TOOL=tools/analysis_tools/seg_pixel_freq.py
DET_FREQ_TOOL=tools/analysis_tools/lvis_class_freq.py
TRAIN_TOOL=tools/train.py
TEST_TOOL=tools/test.py
DIST_TRAIN=tools/dist_train.sh
# Data folders the configs read (relative to the run folder).
CLS_DATA=data/fashion_mnist_lt
SEG_DATA=data/fmnist_scenes
SEG_FREQ=data/fmnist_scenes/train_pixel_freq.json
DET_DATA=data/fmnist_lvis
DET_TRAIN_ANN=data/fmnist_lvis/annotations/lvis_fmnist_train.json

# --- settings ---------------------------------------------------------------
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 2
DRY=${GPU_CHECK_DRY:-0}
if [[ $DRY == 1 ]]; then
  DEVICE=${GPU_CHECK_DEVICE:-cpu}
  INSTALL=${GPU_CHECK_INSTALL:-0}
  BUILD=${GPU_CHECK_BUILD:-0}
  SIZES=${GPU_CHECK_SIZES:-tiny}
else
  DEVICE=${GPU_CHECK_DEVICE:-cuda}
  INSTALL=${GPU_CHECK_INSTALL:-1}
  BUILD=${GPU_CHECK_BUILD:-1}
  SIZES=${GPU_CHECK_SIZES:-full}
fi
MMCV_OPS=${GPU_CHECK_MMCV_OPS:-nms,roi_align}
PARTS=${GPU_CHECK_PARTS:-e2e,dist,bf16,bench,sync}
want() { [[ ,$PARTS, == *,$1,* ]]; }
BUDGET=${GPU_CHECK_BUDGET:-470}
WORK=${GPU_CHECK_WORK:-/tmp/gpu_check}
PY=${PYTHON:-python3}
# an absolute path: the end-to-end parts run in $WORK/run
if [[ $PY == */* ]]; then PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY"); fi
OUT=${OUT:-$REPO/work_dirs/gpu_check_out}
FILES=$REPO/.gpu
TOOLS=("$PY" "$REPO/benchmarks/gpu_check_tools.py")
NPROC=$(nproc)
JOBS=$(( NPROC > 4 ? NPROC - 2 : NPROC ))
RESERVE=15   # seconds kept for the summary
# Part time limits are written for the GPU machine; the CPU is much slower.
LIMIT_SCALE=1
[[ $DEVICE == cpu ]] && LIMIT_SCALE=8
DEADLINE=$(( SECONDS + BUDGET ))

if [[ ${GPU_CHECK_PREFLIGHT:-0} == 1 ]]; then
  PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" "$PY" \
    benchmarks/gpu_check_tools.py preflight "$CLS_STAGE1" "$CLS_STAGE2" \
    "$SEG_STAGE1" "$SEG_STAGE2" "$DET_STAGE1" "$DET_STAGE2" \
    "$CLS_DATA_TOOL" "$SEG_DATA_TOOL" "$DET_DATA_TOOL" "$SEG_FREQ_TOOL" \
    "$DET_FREQ_TOOL" "$TRAIN_TOOL" "$TEST_TOOL" "$DIST_TRAIN" \
    benchmarks/cls_resnet50.py benchmarks/seg_deeplabv3plus.py \
    benchmarks/det_mask_rcnn.py benchmarks/sync_check.py \
    .gpu/sdist/mmcv-2.1.0.tar.gz .gpu/fashion-mnist/train-images-idx3-ubyte.gz
  exit $?
fi

mkdir -p "$OUT" "$WORK"
rm -rf "${WORK:?}/run" "$WORK/rows.tsv" "$WORK"/*.json
RUN=$WORK/run            # cwd of the end-to-end runs: data/, work_dirs/
mkdir -p "$RUN/data"
ROWS=$WORK/rows.tsv
: > "$ROWS"
for f in summary.txt setup.log mmcv_build.log e2e.log dist.log bench.log \
    sync.log results.json; do
  : > "$OUT/$f"
done

say() { printf '[gpu_check %3ds] %s\n' "$SECONDS" "$*"; }
row() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${4//$'\t'/ }" >> "$ROWS"; }

# run_part LOG LIMIT CMD...: run CMD (cwd: $PART_CWD or the repository)
# under a timeout that also respects the deadline; its output goes to
# $PART_TMP and is appended to $OUT/LOG. Sets PART_RC (0 ok, 124 timeout,
# -1 skipped for lack of time), PART_S (seconds) and PART_STATUS.
PART_CWD=
PART_TMP=$WORK/part.log
run_part() {
  local log=$1 limit=$(( $2 * LIMIT_SCALE ))
  shift 2
  local left=$(( DEADLINE - SECONDS - RESERVE ))
  PART_S=0
  if (( left < 20 )); then
    PART_RC=-1
    PART_STATUS="skipped: out of time"
    echo "=== skipped (out of time): $*" >> "$OUT/$log"
    return 0
  fi
  (( limit > left )) && limit=$left
  echo "=== $(date +%T) [limit ${limit}s] $*" >> "$OUT/$log"
  local t0=$SECONDS
  ( cd "${PART_CWD:-$REPO}" && timeout -k 10 "$limit" "$@" ) \
    > "$PART_TMP" 2>&1
  PART_RC=$?
  PART_S=$(( SECONDS - t0 ))
  cat "$PART_TMP" >> "$OUT/$log"
  case $PART_RC in
    0) PART_STATUS=ok ;;
    124|137) PART_STATUS="TIMEOUT ${limit}s" ;;
    *) PART_STATUS="FAIL rc=$PART_RC" ;;
  esac
  if (( PART_RC != 0 )); then
    echo "--- last lines of: $*" >&2
    tail -n 12 "$PART_TMP" | cut -c1-300 >&2
  fi
  return 0
}

# The last test metrics line of the part log (mmengine's '(test)' line).
test_metrics() {
  grep -E '(Epoch|Iter)\(test\)' "$PART_TMP" | tail -n 1 \
    | sed -E 's/.*\(test\) *\[[0-9]+\/[0-9]+\] *//; s/ (data_)?time: [0-9.]+//g; s/ +/ /g' \
    | cut -c1-200
}

# --- sizes ------------------------------------------------------------------
if [[ $SIZES == full ]]; then
  BENCH_CLS=(--batch-size 64 --image-size 224 --repeats 10 --infer-repeats 20)
  BENCH_SEG=(--batch-size 4 --crop 512 --repeats 8 --infer-repeats 10)
  BENCH_DET=(--batch-size 2 --size 1024 --repeats 5 --infer-repeats 5)
  BENCH_COMMON=(--threads 4 --memory-jobs 5)
  CLS_MAX_PER_CLASS=1000; CLS_TEST_PER_CLASS=100
  SEG_SCENES=(--num-train 300 --num-val 48)
  DET_SCENES=(--val-per-class 5)
  S1_EPOCHS=1; S2_EPOCHS=1
  SEG_S1_ITERS=60; SEG_S2_ITERS=20
  DET_S1_ITERS=40; DET_S2_ITERS=20
  # shellcheck disable=SC2054  # commas inside the option values
  SYNC_ARGS=(--modes stage2,stage2-fast --steps 3)
else
  BENCH_CLS=(--batch-size 2 --image-size 64 --num-classes 100 --repeats 1
             --infer-repeats 1)
  BENCH_SEG=(--batch-size 2 --crop 64 --num-classes 20 --repeats 1
             --infer-repeats 1)
  BENCH_DET=(--batch-size 1 --size 128 --num-gts 2 --repeats 1
             --infer-repeats 1)
  BENCH_COMMON=(--threads 1 --memory-jobs 1 --warmup 1)
  CLS_MAX_PER_CLASS=100; CLS_TEST_PER_CLASS=10
  SEG_SCENES=(--num-train 40 --num-val 8)
  DET_SCENES=(--n-max 20 --val-per-class 1)
  S1_EPOCHS=1; S2_EPOCHS=1
  SEG_S1_ITERS=4; SEG_S2_ITERS=2
  DET_S1_ITERS=2; DET_S2_ITERS=2
  # shellcheck disable=SC2054
  SYNC_ARGS=(--modes stage2,stage2-fast --steps 1
             --warmup 1 --threads 1)
fi
if [[ $DEVICE == cuda ]]; then
  AMP=(--amp)
  AMP_NOTE="AMP fp16"
else
  AMP=()
  AMP_NOTE="no AMP (CPU)"
fi

# --- env: wheels, mmcv stand-in, mmcv build ---------------------------------
say "env: $(uname -m), $NPROC CPUs, device $DEVICE, budget ${BUDGET}s"
{
  echo "repo $REPO, work $WORK, python $(command -v "$PY")"
  "$PY" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || true
  command -v nvcc >/dev/null && nvcc --version | tail -n 2
  g++ --version 2>&1 | head -n 1
} >> "$OUT/setup.log" 2>&1

SITE=$WORK/site
MMCV_STUB=$WORK/mmcv_stub
MMCV_SRC=$WORK/mmcv-2.1.0
ENV_OK=1
ENV_NOTE=""
if [[ $INSTALL == 1 ]]; then
  t0=$SECONDS
  rm -rf "$SITE" "$MMCV_STUB" "$MMCV_SRC"
  if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --upgrade --target "$SITE" "$FILES"/wheels/*.whl >> "$OUT/setup.log" 2>&1 \
    && tar -xzf "$FILES/sdist/mmcv-2.1.0.tar.gz" -C "$WORK" \
    && "${TOOLS[@]}" stub-mmcv "$MMCV_SRC/mmcv" "$MMCV_STUB" >> "$OUT/setup.log" 2>&1
  then
    ENV_NOTE="$(find "$FILES/wheels" -name '*.whl' | wc -l) wheels, mmcv stand-in, $(( SECONDS - t0 )) s"
  else
    ENV_OK=0
    ENV_NOTE="install failed: $(tail -n 1 "$OUT/setup.log" | cut -c1-120)"
  fi
  PY_BIN=$(dirname "$(command -v "$PY")")
  export PATH="$SITE/bin:$PY_BIN:$PATH"
  BASE_PYTHONPATH="$REPO:$SITE"
else
  BASE_PYTHONPATH="$REPO"
  ENV_NOTE="packages of $(command -v "$PY") (no install)"
fi
export PYTHONPATH="$BASE_PYTHONPATH"
# 'python' for tools/dist_train.sh (and upstream-style scripts), as $PY.
mkdir -p "$WORK/bin"
printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v "$PY")" > "$WORK/bin/python"
chmod +x "$WORK/bin/python"
export PATH="$WORK/bin:$PATH" PYTHON=python

use_mmcv() {  # use_mmcv DIR: mmcv from DIR in front of everything else
  export PYTHONPATH="$1:$BASE_PYTHONPATH"
}
if [[ $INSTALL == 1 ]]; then
  use_mmcv "$MMCV_STUB"
  "${TOOLS[@]}" requires "$SITE" >> "$OUT/setup.log" 2>&1 \
    || ENV_NOTE="$ENV_NOTE; missing requirements (setup.log)"
fi
if "$PY" -c 'import mmcv.ops, mmengine, mmpretrain, mmseg, mmdet, mmdisalign' \
    >> "$OUT/setup.log" 2>&1; then
  ENV_NOTE="$ENV_NOTE; imports ok"
else
  ENV_OK=0
  ENV_NOTE="$ENV_NOTE; import failed (setup.log)"
fi
row env "$( ((ENV_OK)) && echo ok || echo FAIL)" "${SECONDS}s" "$ENV_NOTE"
say "env: $ENV_NOTE"

BUILD_PID=
BUILD_NOTE=""
BUILD_T0=$SECONDS
MMCV_BUILT=$WORK/mmcv-build
if [[ $BUILD == 1 && $ENV_OK == 1 ]]; then
  # A build folder of an earlier run on this machine (same ops, torch and
  # Python) is reused: ninja recompiles nothing that is up to date.
  key="ops=$MMCV_OPS $("$PY" -c 'import sys, torch; print("torch", torch.__version__, "python", sys.version.split()[0])')"
  if [[ -f $MMCV_BUILT/.gpu_check_key && $(cat "$MMCV_BUILT/.gpu_check_key") == "$key" ]]; then
    echo "reusing the build folder $MMCV_BUILT ($key)" >> "$OUT/mmcv_build.log"
  else
    rm -rf "$MMCV_BUILT"
    cp -r "$MMCV_SRC" "$MMCV_BUILT"
    echo "$key" > "$MMCV_BUILT/.gpu_check_key"
  fi
  if [[ $MMCV_OPS != all ]] && ! "${TOOLS[@]}" prune-mmcv "$MMCV_BUILT" \
      "$MMCV_OPS" >> "$OUT/mmcv_build.log" 2>&1; then
    BUILD_NOTE="prune-mmcv failed: $(tail -n 1 "$OUT/mmcv_build.log" | cut -c1-100)"
    rm -f "$MMCV_BUILT/.gpu_check_key"  # never reuse a half-pruned folder
  fi
  {
    # torch >= 2.14 headers need C++20; mmcv 2.1.0 asks for C++17.
    aten=$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "include", "ATen", "ATen.h"))')
    if grep -q '202002L' "$aten"; then
      sed -i 's/-std=c++17/-std=c++20/g' "$MMCV_BUILT/setup.py"
      echo "setup.py: -std=c++20 (torch headers need it)"
    fi
    csrc="$MMCV_BUILT/mmcv/ops/csrc/pytorch"
    ncu=$(find "$csrc/cuda" -maxdepth 1 -name '*.cu' | wc -l)
    ncpp=$(find "$csrc" "$csrc/cpu" "$csrc/cuda" -maxdepth 1 -name '*.cpp' | wc -l)
    echo "to compile: $ncpp .cpp + $ncu .cu files with MAX_JOBS=$JOBS" \
      "(about 10 s per .cpp, 30-60 s per .cu on one core)"
  } >> "$OUT/mmcv_build.log" 2>&1
  BUILD_LIMIT=$(( DEADLINE - SECONDS - 200 * LIMIT_SCALE ))
  (( BUILD_LIMIT > 330 * LIMIT_SCALE )) && BUILD_LIMIT=$(( 330 * LIMIT_SCALE ))
  (( BUILD_LIMIT < 30 )) && BUILD_NOTE=${BUILD_NOTE:-"no time left for it"}
fi
if [[ $BUILD == 1 && $ENV_OK == 1 && -z $BUILD_NOTE ]]; then
  rm -f "$WORK/build_done_at"
  (
    cd "$MMCV_BUILT" && FORCE_CUDA=1 MMCV_WITH_OPS=1 TORCH_CUDA_ARCH_LIST=9.0 \
      MAX_JOBS=$JOBS PYTHONPATH="$BASE_PYTHONPATH" \
      nice -n 5 timeout -k 10 "$BUILD_LIMIT" "$PY" setup.py build_ext --inplace
    rc=$?
    echo "$SECONDS" > "$WORK/build_done_at"
    exit "$rc"
  ) >> "$OUT/mmcv_build.log" 2>&1 &
  BUILD_PID=$!
  say "mmcv build started (pid $BUILD_PID, limit ${BUILD_LIMIT}s, ops $MMCV_OPS)"
fi

MMCV_OK=0     # 1: mmcv with compiled ops importable
MMCV_NOTE=""
finish_build() {
  if [[ $BUILD != 1 ]]; then
    if "$PY" -c 'import mmcv._ext as e; assert e.__file__.endswith(".so")' \
        >/dev/null 2>&1; then
      MMCV_OK=1
      MMCV_NOTE="mmcv ops of the environment (no build)"
    else
      MMCV_NOTE="no compiled mmcv ops and no build"
    fi
    row mmcv "$( ((MMCV_OK)) && echo ok || echo skipped)" "-" "$MMCV_NOTE"
    return
  fi
  if [[ -z $BUILD_PID ]]; then
    MMCV_NOTE=${BUILD_NOTE:-"environment not ready"}
    row mmcv "$([[ -n $BUILD_NOTE ]] && echo FAIL || echo skipped)" "-" \
      "not built: $MMCV_NOTE; det parts skipped"
    return
  fi
  say "waiting for the mmcv build"
  local waited=$SECONDS
  wait "$BUILD_PID"
  local rc=$? done_at
  done_at=$(cat "$WORK/build_done_at" 2>/dev/null || echo "$SECONDS")
  local secs=$(( done_at - BUILD_T0 ))
  waited=$(( SECONDS - waited ))
  if (( rc != 0 )); then
    MMCV_NOTE="build rc=$rc after ${secs}s: $(grep -m1 -E 'error|Error' "$OUT/mmcv_build.log" | cut -c1-120)"
    row mmcv "$( ((rc == 124)) && echo TIMEOUT || echo FAIL)" "${secs}s" \
      "$MMCV_NOTE; det parts skipped"
    tail -n 15 "$OUT/mmcv_build.log" >&2
    return
  fi
  # only the package, not the sdist's other top-level folders (tests/)
  mkdir -p "$WORK/mmcv_ops"
  ln -sfn "$MMCV_BUILT/mmcv" "$WORK/mmcv_ops/mmcv"
  use_mmcv "$WORK/mmcv_ops"
  PART_CWD="" run_part mmcv_build.log 60 "$PY" -c \
    'import mmcv, mmcv.ops, mmcv._ext; print("mmcv", mmcv.__version__, mmcv._ext.__file__)'
  if (( PART_RC == 0 )) && [[ $DEVICE == cuda ]]; then
    run_part mmcv_build.log 60 "${TOOLS[@]}" check-mmcv-ops
  fi
  if (( PART_RC == 0 )); then
    MMCV_OK=1
    MMCV_NOTE="ops $MMCV_OPS built in ${secs}s (waited ${waited}s for it); $(tail -n 1 "$PART_TMP" | cut -c1-100)"
    row mmcv ok "${secs}s" "$MMCV_NOTE"
  else
    use_mmcv "$MMCV_STUB"
    MMCV_NOTE="built but not usable: $(tail -n 1 "$PART_TMP" | cut -c1-100)"
    row mmcv FAIL "${secs}s" "$MMCV_NOTE; det parts skipped"
  fi
}

# --- data -------------------------------------------------------------------
FM="$FILES/fashion-mnist"
[[ -d $FM ]] || FM=/usr/share/datasets/fashion-mnist
DATA_OK=0
DATA_NOTES=""
# data_step LABEL PATTERN CMD...: one step of the data part; notes get
# "LABEL: <first match of PATTERN in its output>".
data_step() {
  local label=$1 pattern=$2
  shift 2
  PART_CWD=$RUN run_part e2e.log 150 "$@"
  if [[ -n $pattern ]]; then
    DATA_NOTES="$DATA_NOTES$label: $(grep -m1 -oE "$pattern" "$PART_TMP"); "
  fi
  (( PART_RC == 0 ))
}
if (( ENV_OK )) && want e2e; then
  t0=$SECONDS
  if data_step "cls train images" 'total [0-9]+' \
        "$PY" "$REPO/$CLS_DATA_TOOL" "$CLS_DATA" --src-dir "$FM" \
        --max-per-class "$CLS_MAX_PER_CLASS" \
        --test-per-class "$CLS_TEST_PER_CLASS" \
      && data_step seg '[0-9]+ training and [0-9]+ validation scenes' \
        "$PY" "$REPO/$SEG_DATA_TOOL" "$SEG_DATA" \
        --fmnist-dir "$FM" "${SEG_SCENES[@]}" \
      && data_step "" "" "$PY" "$REPO/$SEG_FREQ_TOOL" "$REPO/$SEG_STAGE1" \
        "$SEG_FREQ" --cfg-options "train_dataloader.dataset.data_root=$SEG_DATA" \
      && data_step "det train" '[0-9]+ images, [0-9]+ instances' \
        "$PY" "$REPO/$DET_DATA_TOOL" "$DET_DATA" \
        --fmnist-dir "$FM" "${DET_SCENES[@]}" \
      && data_step "" "" "$PY" "$REPO/$DET_FREQ_TOOL" "$DET_TRAIN_ANN"; then
    DATA_OK=1
  fi
  row data "$PART_STATUS" "$(( SECONDS - t0 ))s" "$DATA_NOTES"
  say "data: $PART_STATUS ($(( SECONDS - t0 ))s)"
fi

# --- end to end: stage 1 -> stage 2 (AMP) -> test ----------------------------
COMMON_OPTS=(default_hooks.logger.interval=1 randomness.seed=0)
LOADER_OPTS=(train_dataloader.num_workers=2 train_dataloader.persistent_workers=False)
# e2e TASK STAGE1 STAGE2 CKPT1 CKPT2 "S1 OPTS" "S2 OPTS"
e2e() {
  local task=$1 cfg1=$2 cfg2=$3 ckpt1=$4 ckpt2=$5
  local -a s1 s2
  read -r -a s1 <<< "$6"
  read -r -a s2 <<< "$7"
  local wd="$RUN/work_dirs/${task}" notes="" t0=$SECONDS status=ok
  PART_CWD=$RUN run_part e2e.log 150 "$PY" "$REPO/$TRAIN_TOOL" \
    "$REPO/$cfg1" --work-dir "$wd/stage1" \
    --cfg-options "${COMMON_OPTS[@]}" "${s1[@]}"
  if (( PART_RC == 0 )); then
    PART_CWD=$RUN run_part e2e.log 150 "$PY" "$REPO/$TRAIN_TOOL" \
      "$REPO/$cfg2" --work-dir "$wd/stage2" "${AMP[@]}" \
      --cfg-options "${COMMON_OPTS[@]}" "load_from=$wd/stage1/$ckpt1" "${s2[@]}"
    if (( PART_RC == 0 )); then
      local amp_seen=no loss
      grep -q "AmpOptimWrapper" "$PART_TMP" && amp_seen=yes
      loss=$(grep -oE ' loss: [0-9.naif]+' "$PART_TMP" | tail -n 1)
      notes="stage 2: AmpOptimWrapper in config: $amp_seen, last${loss:- loss: -}"
      grep -qE ' loss: (nan|inf)' "$PART_TMP" && status="FAIL non-finite loss"
      PART_CWD=$RUN run_part e2e.log 150 "$PY" "$REPO/$TEST_TOOL" \
        "$REPO/$cfg2" "$wd/stage2/$ckpt2" --work-dir "$wd/test"
      [[ $PART_RC == 0 ]] && notes="$notes; test: $(test_metrics)"
      [[ $PART_RC == 0 ]] || status="test: $PART_STATUS"
    else
      status="stage 2: $PART_STATUS"
    fi
  else
    status="stage 1: $PART_STATUS"
  fi
  row "e2e $task" "$status" "$(( SECONDS - t0 ))s" "$AMP_NOTE; $notes"
  say "e2e $task: $status ($(( SECONDS - t0 ))s)"
}

CLS_S1_OPTS="train_cfg.max_epochs=$S1_EPOCHS ${LOADER_OPTS[*]}"
CLS_S2_OPTS="train_cfg.max_epochs=$S2_EPOCHS ${LOADER_OPTS[*]}"
SEG_S1_OPTS="train_cfg.max_iters=$SEG_S1_ITERS train_cfg.val_interval=$SEG_S1_ITERS default_hooks.checkpoint.interval=$SEG_S1_ITERS param_scheduler.0.end=$SEG_S1_ITERS ${LOADER_OPTS[*]}"
SEG_S2_OPTS="train_cfg.max_iters=$SEG_S2_ITERS train_cfg.val_interval=$SEG_S2_ITERS default_hooks.checkpoint.interval=$SEG_S2_ITERS param_scheduler.0.end=$SEG_S2_ITERS ${LOADER_OPTS[*]}"
DET_S1_OPTS="train_cfg.max_iters=$DET_S1_ITERS train_cfg.val_interval=100000 default_hooks.checkpoint.interval=$DET_S1_ITERS param_scheduler.1.end=$DET_S1_ITERS param_scheduler.1.milestones=[$(( DET_S1_ITERS - 1 ))]"
DET_S2_OPTS="train_cfg.max_iters=$DET_S2_ITERS train_cfg.val_interval=100000 default_hooks.checkpoint.interval=$DET_S2_ITERS param_scheduler.1.end=$DET_S2_ITERS param_scheduler.1.milestones=[$(( DET_S2_ITERS - 1 ))] model.test_cfg.rcnn.max_per_img=100"
e2e_cls() {
  e2e cls "$CLS_STAGE1" "$CLS_STAGE2" "epoch_$S1_EPOCHS.pth" \
    "epoch_$S2_EPOCHS.pth" "$CLS_S1_OPTS" "$CLS_S2_OPTS"
}
e2e_seg() {
  e2e seg "$SEG_STAGE1" "$SEG_STAGE2" "iter_$SEG_S1_ITERS.pth" \
    "iter_$SEG_S2_ITERS.pth" "$SEG_S1_OPTS" "$SEG_S2_OPTS"
}
e2e_det() {
  e2e det "$DET_STAGE1" "$DET_STAGE2" "iter_$DET_S1_ITERS.pth" \
    "iter_$DET_S2_ITERS.pth" "$DET_S1_OPTS" "$DET_S2_OPTS"
}

# e2e_bf16 "TASKS": stage 2 again with bf16 autocast, from the stage-1
# checkpoints above.
e2e_bf16() {
  local t0=$SECONDS status=ok notes="" task cfg ckpt opts loss
  local -a s2
  if [[ $DEVICE != cuda ]]; then
    row "e2e bf16 $1" skipped "-" "AMP needs CUDA"
    return
  fi
  for task in $1; do
    case $task in
      cls) cfg=$CLS_STAGE2 ckpt=epoch_$S1_EPOCHS.pth opts=$CLS_S2_OPTS ;;
      seg) cfg=$SEG_STAGE2 ckpt=iter_$SEG_S1_ITERS.pth opts=$SEG_S2_OPTS ;;
      det) cfg=$DET_STAGE2 ckpt=iter_$DET_S1_ITERS.pth opts=$DET_S2_OPTS ;;
    esac
    if [[ ! -f $RUN/work_dirs/$task/stage1/$ckpt ]]; then
      notes="$notes $task: no stage 1;"
      continue
    fi
    if [[ $task == det ]] && (( ! MMCV_OK )); then
      notes="$notes det: no mmcv ops;"
      continue
    fi
    read -r -a s2 <<< "$opts"
    PART_CWD=$RUN run_part e2e.log 120 "$PY" "$REPO/$TRAIN_TOOL" \
      "$REPO/$cfg" --work-dir "$RUN/work_dirs/$task/stage2_bf16" --amp \
      --cfg-options "${COMMON_OPTS[@]}" optim_wrapper.dtype=bfloat16 \
      "load_from=$RUN/work_dirs/$task/stage1/$ckpt" "${s2[@]}"
    loss=$(grep -oE ' loss: [0-9.naif]+' "$PART_TMP" | tail -n 1)
    notes="$notes $task: $PART_STATUS,${loss:- loss: -};"
    if (( PART_RC != 0 )) || grep -qE ' loss: (nan|inf)' "$PART_TMP"; then
      status=FAIL
    fi
  done
  row "e2e bf16 $1" "$status" "$(( SECONDS - t0 ))s" \
    "stage 2 with AmpOptimWrapper bfloat16:$notes"
  say "e2e bf16 $1: $status"
}

# --- one-GPU torchrun (NCCL) ------------------------------------------------
dist_cls() {
  local t0=$SECONDS wd="$RUN/work_dirs/cls/dist" backend=gloo notes
  [[ $DEVICE == cuda ]] && backend=nccl
  if [[ ! -f $RUN/work_dirs/cls/stage1/epoch_$S1_EPOCHS.pth ]]; then
    row "dist 1 GPU" skipped "-" "no cls stage-1 checkpoint"
    return
  fi
  PART_CWD=$RUN run_part dist.log 150 env PORT=29511 bash "$REPO/$DIST_TRAIN" \
    "$REPO/$CLS_STAGE2" 1 --work-dir "$wd" "${AMP[@]}" \
    --cfg-options "${COMMON_OPTS[@]}" \
    "load_from=$RUN/work_dirs/cls/stage1/epoch_$S1_EPOCHS.pth" \
    "train_cfg.max_epochs=$S2_EPOCHS" "env_cfg.dist_cfg.backend=$backend" \
    "${LOADER_OPTS[@]}"
  notes="torchrun 1 process, backend $backend in config: $(grep -q "backend='$backend'" "$PART_TMP" && echo yes || echo no)"
  notes="$notes; distributed: $(grep -m1 -oE 'Distributed training: (True|False)' "$PART_TMP" | cut -d' ' -f3)"
  row "dist 1 GPU" "$PART_STATUS" "$(( SECONDS - t0 ))s" "$AMP_NOTE; $notes"
  say "dist: $PART_STATUS"
}

# --- benchmarks -------------------------------------------------------------
bench() {  # bench NAME SCRIPT ARGS...
  local name=$1 script=$2
  shift 2
  run_part bench.log 200 "$PY" "$REPO/benchmarks/$script" --device "$DEVICE" \
    "${BENCH_COMMON[@]}" "$@" --json "$WORK/bench_$name.json"
  local notes="-"
  [[ -f $WORK/bench_$name.json ]] && notes=$("${TOOLS[@]}" bench-notes "$WORK/bench_$name.json" 2>&1)
  row "bench $name" "$PART_STATUS" "${PART_S}s" "$notes"
  say "bench $name: $PART_STATUS (${PART_S}s) $notes"
}

sync_check() {
  local tasks=$1 json="$WORK/sync_${1//,/_}.json"
  run_part sync.log 200 "$PY" "$REPO/benchmarks/sync_check.py" \
    --device "$DEVICE" "${SYNC_ARGS[@]}" --tasks "$tasks" --json "$json"
  local notes="-"
  [[ -f $json ]] && notes=$("${TOOLS[@]}" sync-notes "$json" 2>&1)
  row "sync $tasks" "$PART_STATUS" "${PART_S}s" "$notes"
  say "sync: $PART_STATUS $notes"
}

# --- the run ------------------------------------------------------------------
build_running() { [[ -n $BUILD_PID ]] && kill -0 "$BUILD_PID" 2>/dev/null; }
if (( ENV_OK && DATA_OK )); then
  e2e_cls
  e2e_seg
  want dist && dist_cls
fi
# Still building: what times nothing and needs no mmcv op fills the wait.
SYNC_LEFT=cls,seg,det
BF16_LEFT="cls seg det"
if (( ENV_OK )) && want sync && build_running; then
  sync_check cls,seg
  SYNC_LEFT=det
fi
if (( ENV_OK && DATA_OK )) && want bf16 && build_running; then
  e2e_bf16 "cls seg"
  BF16_LEFT=det
fi
finish_build
if (( ENV_OK )); then
  if want bench; then
    bench cls cls_resnet50.py "${BENCH_CLS[@]}"
    bench seg seg_deeplabv3plus.py "${BENCH_SEG[@]}"
  fi
  if (( MMCV_OK )); then
    want bench && bench det det_mask_rcnn.py "${BENCH_DET[@]}"
    # neither times anything: the detection example runs beside the sync
    # check
    E2E_PID=
    if (( DATA_OK )); then
      ( PART_TMP=$WORK/part_det.log; e2e_det ) &
      E2E_PID=$!
    fi
    want sync && sync_check "$SYNC_LEFT"
    [[ -n $E2E_PID ]] && wait "$E2E_PID"
  else
    want bench && row "bench det" skipped "-" "no mmcv ops: $MMCV_NOTE"
    if want sync; then
      [[ $SYNC_LEFT != det ]] && sync_check cls,seg
      row "sync det" skipped "-" "no mmcv ops"
    fi
    (( DATA_OK )) && row "e2e det" skipped "-" "no mmcv ops"
    BF16_LEFT=${BF16_LEFT/det/}
  fi
  if (( DATA_OK )) && want bf16 && [[ -n ${BF16_LEFT// /} ]]; then
    e2e_bf16 "$BF16_LEFT"
  fi
fi

# --- summary ------------------------------------------------------------------
"$PY" - "$WORK" "$OUT/results.json" <<'PYEOF' || true
import glob, json, os, sys
work, out = sys.argv[1], sys.argv[2]
res = {}
for path in sorted(glob.glob(os.path.join(work, '*.json'))):
    with open(path) as f:
        res[os.path.basename(path)[:-5]] = json.load(f)
with open(out, 'w') as f:
    json.dump(res, f, indent=1)
PYEOF
{
  echo "GPU check (benchmarks/gpu_check.sh), $(date -u +%FT%TZ), ${SECONDS}s of ${BUDGET}s"
  "$PY" -c 'import torch; print("torch", torch.__version__, "|", torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA")' 2>/dev/null
  "${TOOLS[@]}" table "$ROWS"
} > "$OUT/summary.txt" 2>&1
echo
cat "$OUT/summary.txt"
# Exit status: 0 when every row is ok.
if cut -f2 "$ROWS" | grep -qv '^ok$'; then
  exit 1
fi
exit 0
