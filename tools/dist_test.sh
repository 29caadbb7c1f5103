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

if [ $# -lt 3 ]; then
    echo "Usage: $0 CONFIG CHECKPOINT GPUS [tools/test.py options]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
TOOLS_DIR=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python}
export PYTHONPATH="$TOOLS_DIR/..${PYTHONPATH:+:$PYTHONPATH}"
# mmdisalign/launch.py needs only the standard library: run it as a file,
# without importing the package (and torch).
LAUNCH_PY=$("$PYTHON" -c 'import importlib.util, os, sys
spec = importlib.util.find_spec("mmdisalign")
if spec is None:
    sys.exit("mmdisalign is not importable: pip install it first")
print(os.path.join(spec.submodule_search_locations[0], "launch.py"))')

NNODES=${NNODES:-${SLURM_NNODES:-1}}
NODE_RANK=${NODE_RANK:-${SLURM_NODEID:-0}}
PORT=${PORT:-29500}
if [ -z "$MASTER_ADDR" ]; then
    if [ -n "$SLURM_JOB_NODELIST" ]; then
        if command -v scontrol > /dev/null 2>&1; then
            MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" \
                | head -n 1)
        else
            MASTER_ADDR=$("$PYTHON" "$LAUNCH_PY" first-host \
                "$SLURM_JOB_NODELIST")
        fi
    else
        MASTER_ADDR=127.0.0.1
    fi
fi

# torchrun on the master would fail late (other machines: hang) on a port
# that is taken: check it first, on the master only.
if [ "$NODE_RANK" = "0" ]; then
    "$PYTHON" "$LAUNCH_PY" check-port "$PORT" --variable PORT
fi

exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" \
    --nproc_per_node="$GPUS" \
    "$TOOLS_DIR/test.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch "${@:4}"
