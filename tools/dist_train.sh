#!/usr/bin/env bash
# Train with several processes on one or more machines (torchrun).
#
#   bash tools/dist_train.sh CONFIG GPUS [tools/train.py options]
#
# GPUS is the number of processes on this machine (one per GPU; on a
# CPU-only machine, processes that talk through gloo). Several machines:
# run the script once per machine with the same NNODES, MASTER_ADDR and
# PORT and NODE_RANK=0..NNODES-1. Inside a SLURM allocation, e.g.
#   srun --ntasks-per-node=1 bash tools/dist_train.sh CONFIG GPUS
# the unset ones come from SLURM: NNODES=$SLURM_NNODES,
# NODE_RANK=$SLURM_NODEID, MASTER_ADDR=the first host of
# $SLURM_JOB_NODELIST. PYTHON picks the interpreter (default: python).
set -eo pipefail
. "$(dirname "$0")/_dist_common.sh"

if [ $# -lt 2 ]; then
    echo "Usage: $0 CONFIG GPUS [tools/train.py options]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
dist_launch "$GPUS" train.py "$CONFIG" --launcher pytorch "${@:3}"
