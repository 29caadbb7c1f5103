# shellcheck shell=bash
# What tools/dist_{train,test}.sh and tools/slurm_{train,test}.sh share.
#
# Sourced, not run: each script sources this file from its own folder,
#   . "$(dirname "$0")/_dist_common.sh"
# (the same folder in a source checkout and in mmdisalign/.mim/tools of an
# installed wheel), checks its own arguments, then calls one of:
#
#   dist_launch GPUS TOOL [TOOL ARGS...]   torchrun, GPUS processes here
#   slurm_launch TOOL [TOOL ARGS...]       srun, one task per GPU, in
#                                          $PARTITION as job $JOB_NAME
#
# TOOL is a script of this folder (train.py, test.py). Both read their
# settings from the environment (see the scripts' headers and
# docs/launch.md), set TOOLS_DIR (the folder of the calling script) and
# export PYTHONPATH with the repository root in front.

# Torchrun on this machine (NNODES, NODE_RANK, MASTER_ADDR and PORT fall
# back on SLURM's variables); replaces the shell (exec).
dist_launch() {
    local gpus=$1
    local tool=$2
    shift 2
    TOOLS_DIR=$(cd "$(dirname "$0")" && pwd)
    PYTHON=${PYTHON:-python}
    export PYTHONPATH="$TOOLS_DIR/..${PYTHONPATH:+:$PYTHONPATH}"
    # mmdisalign/launch.py needs only the standard library: run it as a
    # file, without importing the package (and torch).
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

    # torchrun on the master would fail late (other machines: hang) on a
    # port that is taken: check it first, on the master only.
    if [ "$NODE_RANK" = "0" ]; then
        "$PYTHON" "$LAUNCH_PY" check-port "$PORT" --variable PORT
    fi

    exec "$PYTHON" -m torch.distributed.run \
        --nnodes="$NNODES" \
        --node_rank="$NODE_RANK" \
        --master_addr="$MASTER_ADDR" \
        --master_port="$PORT" \
        --nproc_per_node="$gpus" \
        "$TOOLS_DIR/$tool" \
        "$@"
}

# srun with GPUS tasks, GPUS_PER_NODE per node; its exit status is the
# function's.
slurm_launch() {
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
        "$PYTHON" -u "$TOOLS_DIR/$1" "${@:2}"
}
