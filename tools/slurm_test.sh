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
. "$(dirname "$0")/_dist_common.sh"
set -x

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
slurm_launch test.py "${CONFIG}" "${CHECKPOINT}" --launcher=slurm "${@:5}"
