#!/usr/bin/env bash
# Test a checkpoint with several processes on one or more machines (torchrun).
#
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [tools/test.py options]
#
# GPUS is the number of processes on this machine (one per GPU; on a
# CPU-only machine, processes that talk through gloo). Several machines:
# run the script once per machine with the same NNODES, MASTER_ADDR and
# PORT and NODE_RANK=0..NNODES-1. Inside a SLURM allocation, e.g.
#   srun --ntasks-per-node=1 bash tools/dist_test.sh CONFIG CHECKPOINT GPUS
# the unset ones come from SLURM: NNODES=$SLURM_NNODES,
# NODE_RANK=$SLURM_NODEID, MASTER_ADDR=the first host of
# $SLURM_JOB_NODELIST. PYTHON picks the interpreter (default: python).
set -eo pipefail
. "$(dirname "$0")/_dist_common.sh"

if [ $# -lt 3 ]; then
    echo "Usage: $0 CONFIG CHECKPOINT GPUS [tools/test.py options]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
dist_launch "$GPUS" test.py "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
