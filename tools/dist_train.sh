#!/usr/bin/env bash
# bash tools/dist_train.sh CONFIG GPUS [tools/train.py options]
# GPUS processes on this machine (on a CPU-only machine they use gloo).
# Several machines: the same NNODES, MASTER_ADDR, PORT on each, and
# NODE_RANK=0..NNODES-1. PYTHON picks the interpreter.

if [ $# -lt 2 ]; then
    echo "Usage: $0 CONFIG GPUS [tools/train.py options]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
if ! [[ $GPUS =~ ^[1-9][0-9]*$ ]]; then
    echo "GPUS (the number of processes) must be a positive integer," \
        "got '$GPUS'" >&2
    exit 2
fi
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

PYTHONPATH="$(dirname $0)/..":$PYTHONPATH \
${PYTHON:-python} -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS \
    --master_port=$PORT \
    "$(dirname "$0")"/train.py \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
