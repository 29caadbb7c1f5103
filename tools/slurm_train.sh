#!/usr/bin/env bash
# [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS=...] \
#     bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [train.py options]
# PORT: master port (default: MASTER_PORT, else 29500). GRES: resources per
# node (default gpu:$GPUS_PER_NODE; GRES= on CPU-only nodes, which use gloo).
# PYTHON picks the interpreter.

if [ $# -lt 3 ]; then
    echo "Usage: $0 PARTITION JOB_NAME CONFIG [tools/train.py options]" >&2
    exit 2
fi
set -x

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
GRES=${GRES-gpu:${GPUS_PER_NODE}}
SRUN_ARGS=${SRUN_ARGS:-""}
if [ -n "$PORT" ]; then
    export MASTER_PORT=$PORT
fi

PYTHONPATH="$(dirname $0)/..":$PYTHONPATH \
srun -p ${PARTITION} \
    --job-name=${JOB_NAME} \
    ${GRES:+--gres=${GRES}} \
    --ntasks=${GPUS} \
    --ntasks-per-node=${GPUS_PER_NODE} \
    --cpus-per-task=${CPUS_PER_TASK} \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    ${PYTHON:-python} -u "$(dirname "$0")"/train.py "$CONFIG" \
    --launcher=slurm "${@:4}"
