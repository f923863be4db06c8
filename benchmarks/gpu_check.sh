#!/usr/bin/env bash
# The accelerator check (benchmarks/gpu_check.py): every figure of docs/performance.md in one run, under 8 minutes on
# one GPU. Extra arguments go to the script, e.g. `--device cpu --quick` anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m benchmarks.gpu_check --out gpu_check.json "$@"
