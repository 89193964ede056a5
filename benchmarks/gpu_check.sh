#!/usr/bin/env bash
# The GPU check: one call on a GPU machine, at most 6 minutes of wall time on one H200, installs included.
#
#   here, once:       bash ../shared/device/fetch-wheels.sh          # the wheels that machine lacks, into .whl
#   on the device:    bash benchmarks/gpu_check.sh                   # carry [".whl"]; results under $OUT
#   anywhere:         bash benchmarks/gpu_check.sh --dry-run         # the same steps on the CPU, tiny settings
#
# Steps (each runs even when an earlier one failed; each has its log and a line in summary.md):
#   1. the carried wheels installed into /tmp/site (not in a dry run);
#   2. pytest -m gpu: the test suite's CUDA checks (fast paths against the reference path, fused attention,
#      bfloat16 mode, profile) with TF32 off;
#   3. benchmarks/gpu_check.py: a few DCKD iterations through dckd-train in float32 and in bfloat16 mode with
#      fused_attention and compile_frozen, a CUDA resume equal to an uninterrupted run, torchrun with NCCL;
#   4. benchmarks/dckd_step.py: the SwinIR x4 pair of the spec (batch 16, LR 48, N = 5): scratch, Logits KD,
#      DCKD and its reference path in float32 and bfloat16, the largest DCKD batch under 24 GiB, and a
#      torch.profiler table by stage for every DCKD row above 2.0x Logits KD in time or memory.
# Refuses, before any work, without CUDA or without the wheels. Everything goes under $OUT (a temporary
# folder when OUT is unset); summary.md is printed last.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dry_run=0
case "${1:-}" in
  --dry-run) dry_run=1 ;;
  "") ;;
  *) echo "usage: bash benchmarks/gpu_check.sh [--dry-run]" >&2; exit 2 ;;
esac
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
python=${PYTHON:-python3}  # a dry run takes the project's .venv unless PYTHON is set
[ -z "${PYTHON:-}" ] && [ $dry_run = 1 ] && [ -x .venv/bin/python ] && python=.venv/bin/python

refuse() { echo "gpu_check: $*" >&2; exit 2; }

if [ $dry_run = 0 ]; then
  ls .whl/basicsr-*.whl >/dev/null 2>&1 \
    || refuse "no .whl/basicsr-*.whl: run 'bash ../shared/device/fetch-wheels.sh' in the project first and carry .whl"
  "$python" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null \
    || refuse "torch sees no CUDA device here; this check is for a GPU machine (--dry-run runs its steps on the CPU)"
fi

gpu_tests=$(grep -l 'DEVICES\|mark.gpu' tests/test_*.py)  # only files with CUDA checks: the others need more wheels
summary=$OUT/summary.md
echo "| step | status | seconds |" > "$summary"
echo "|---|---|---|" >> "$summary"
failed=0
step() {  # step NAME COMMAND...: run, log to $OUT/NAME.log, record
  local name=$1 start status
  shift
  start=$(date +%s)
  echo "== $name: $*"
  if "$@" > "$OUT/$name.log" 2>&1; then status=passed; else status="FAILED (see $name.log)"; failed=1; fi
  tail -n 5 "$OUT/$name.log"
  echo "| $name | $status | $(( $(date +%s) - start )) |" >> "$summary"
}

if [ $dry_run = 0 ]; then
  step install "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
  "$python" -c 'import addict, basicsr, lmdb, yapf' \
    || refuse "the carried wheels do not make basicsr importable (above); gather them again with fetch-wheels.sh"
  step pytest_gpu "$python" -m pytest $gpu_tests -m gpu -q -p no:cacheprovider
  step train "$python" benchmarks/gpu_check.py --out "$OUT/train"
  step step_benchmark "$python" benchmarks/dckd_step.py --preset spec --precisions float32 bfloat16 \
    --rows scratch "Logits KD" DCKD --iterations 5 --warmup 2 --fit-memory 24 --fit-rows DCKD --profile-above 2.0 \
    --out "$OUT/dckd_step_spec.md"
else
  export PYTHONPATH=$PWD
  step pytest_gpu "$python" -m pytest $gpu_tests -m gpu -q -p no:cacheprovider
  step train "$python" benchmarks/gpu_check.py --dry-run --out "$OUT/train"
  step step_benchmark "$python" benchmarks/dckd_step.py --preset cpu --device cpu --precisions float32 \
    --rows "Logits KD" DCKD --iterations 1 --warmup 0 --profile-above 0 --out "$OUT/dckd_step_cpu.md"
fi

{
  echo
  echo "GPU check, $(date -u +%Y-%m-%d), $("$python" -c 'import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU", "torch", torch.__version__)')$([ $dry_run = 1 ] && echo ', dry run')"
  for table in "$OUT"/dckd_step_*.md; do [ -f "$table" ] && { echo; cat "$table"; }; done
} >> "$summary"
echo
cat "$summary"
exit $failed
