#!/usr/bin/env bash
# Test a checkpoint on a SLURM cluster: srun starts one process per GPU.
#
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#       bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT \
#       [test.py options]
#
# PORT sets the master port (default 29500); GRES the generic resources
# requested per node (default gpu:$GPUS_PER_NODE; GRES= on CPU-only nodes,
# where the processes talk through gloo). PYTHON picks the interpreter.
set -x

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
GRES=${GRES-gpu:${GPUS_PER_NODE}}
PYTHON=${PYTHON:-python}
TOOLS_DIR=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH="$TOOLS_DIR/..${PYTHONPATH:+:$PYTHONPATH}"
if [ -n "$PORT" ]; then
    export MASTER_PORT=$PORT
fi

srun -p "${PARTITION}" \
    --job-name="${JOB_NAME}" \
    ${GRES:+--gres="${GRES}"} \
    --ntasks="${GPUS}" \
    --ntasks-per-node="${GPUS_PER_NODE}" \
    --cpus-per-task="${CPUS_PER_TASK}" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    "$PYTHON" -u "$TOOLS_DIR/test.py" "${CONFIG}" "${CHECKPOINT}" \
    --launcher=slurm "${@:5}"
