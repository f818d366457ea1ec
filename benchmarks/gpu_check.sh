#!/usr/bin/env bash
# GPU readiness on a machine with an NVIDIA GPU (a cluster's GPU node, or a lent GPU machine);
# never run by the tests. Estimated 6-8 minutes (never yet run on a GPU):
#   1. the driver and TensorFlow see the GPU (tensorflow[and-cuda], as cluster.yaml installs it);
#   2. steps per second of the default model's train step: GPU float32, mixed bfloat16 and
#      float32 + XLA vs CPU (python -m benchmarks.gpu);
#   3. one trial of the default study through study/run.py with --gpus-per-worker 1, and the GPU
#      Ray gave its worker and TensorFlow saw there;
#   4. trials per GPU-hour with 1, 2, 4 and 8 smoke trials packed on the GPU
#      (--trials-per-gpu N; python -m benchmarks.packing --quick), one table.
# Usage: bash benchmarks/gpu_check.sh [PYTHON]      (default: .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
export TF_CPP_MIN_LOG_LEVEL=2
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$PY" -c "import tensorflow as tf; print('TensorFlow', tf.__version__, 'built with CUDA', \
tf.test.is_built_with_cuda(), '- GPUs:', [d.name for d in tf.config.list_physical_devices('GPU')])"
"$PY" -m benchmarks.gpu
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$PY" study/run.py --num-samples 1 --repeats 1 --max-epochs 2 --gpus-per-worker 1 --force-ray-train \
    --storage "$WORK" --name gpu-check --no-report | tail -n 4
echo "where the trial ran:"
cat "$WORK"/gpu-check/trials/*/workers/rank-0.json; echo
echo "trials packed on one GPU:"
"$PY" -m benchmarks.packing --quick
