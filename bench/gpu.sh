#!/usr/bin/env bash
# kernelgrad against PyTorch (cuDNN, cuBLAS) on one GPU machine, side by side, with ratios.
#
#   (node on the PATH, node_modules in place and the addon built with CUDA; python3 with torch)
#   bash bench/gpu.sh [--quick] [--only PATTERN] [--out DIR]
#
# Runs `npm run bench -- --device cuda --json DIR/kernelgrad-cuda.json`, then
# `python3 bench/reference/torch_ref.py --json DIR/torch-cuda.json`, then merges both with
# bench/compare.ts into DIR/gpu-table.md and prints it. DIR defaults to /tmp/kernelgrad-bench.
# Each side's log is kept beside its JSON.
# A side that fails still lets the other one and the table run; the exit status is then non-zero.
set -uo pipefail
cd "$(dirname "$0")/.."

out="/tmp/kernelgrad-bench"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --quick) args+=(--quick); shift ;;
    --only) args+=(--only "$2"); shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "gpu.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
status=0

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv || true

echo "== kernelgrad (npm run bench -- --device cuda)" >&2
if ! npm run --silent bench -- --device cuda "${args[@]}" --json "$out/kernelgrad-cuda.json" \
    > "$out/kernelgrad-cuda.md" 2> >(tee "$out/kernelgrad-cuda.log" >&2); then
  echo "gpu.sh: the kernelgrad run failed (see $out/kernelgrad-cuda.log)" >&2
  status=1
fi

echo "== PyTorch (bench/reference/torch_ref.py)" >&2
if ! PYTHONUNBUFFERED=1 python3 bench/reference/torch_ref.py "${args[@]}" --json "$out/torch-cuda.json" \
    2> >(tee "$out/torch-cuda.log" >&2); then
  echo "gpu.sh: the PyTorch run failed (see $out/torch-cuda.log)" >&2
  status=1
fi

files=()
[ -s "$out/kernelgrad-cuda.json" ] && files+=("$out/kernelgrad-cuda.json")
[ -s "$out/torch-cuda.json" ] && files+=("$out/torch-cuda.json")
if [ ${#files[@]} -gt 0 ]; then
  npx ts-node --transpile-only bench/compare.ts "${files[@]}" --md "$out/gpu-table.md" || status=1
else
  echo "gpu.sh: no results to compare" >&2
  status=1
fi
exit $status
