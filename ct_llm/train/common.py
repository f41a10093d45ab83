"""What every training method shares: seeding, loading the model (bf16 / 4-bit on CUDA, fp32 on
CPU), the LoRA config, the TRL arguments all methods take, progress forwarding, and writing the
adapter. The methods (dpo.py, kto.py, sft.py) only build their TRL trainer.

CPU is the default path (fp32, which is what CPU kernels are fast at); bf16 and 4-bit QLoRA are
used only when CUDA is present.
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ct_llm.atomic import atomic_write_json, sha256_file
from ct_llm.config import REPO_ROOT
from ct_llm.errors import ConfigError
from ct_llm.train.recipe import Recipe

OnLog = Callable[[dict[str, Any]], None]


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def sharded_launch() -> bool:
    """Whether `accelerate launch` started this process to shard the model (FSDP, DeepSpeed):
    then the weights are loaded on the CPU and accelerate places the shards."""
    return any(
        os.environ.get(k, "").lower() in ("1", "true")
        for k in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED")
    )


def load_model(recipe: Recipe, base_model_dir: Path, init_adapter: Path | None) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    if recipe.attn_implementation == "flash_attention_2" and not torch.cuda.is_available():
        raise ConfigError("attn_implementation flash_attention_2 needs a CUDA GPU; use sdpa")
    kwargs: dict[str, Any] = {
        "dtype": torch.float32,
        "attn_implementation": recipe.attn_implementation,
    }
    if torch.cuda.is_available():
        kwargs["dtype"] = torch.bfloat16
        if not sharded_launch():
            # Straight onto this process's GPU (its own under torchrun): replay answers are
            # generated before the Trainer would move the model, and QLoRA needs a device map
            # per process for data parallelism.
            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
        if recipe.qlora:
            from transformers import BitsAndBytesConfig  # needs bitsandbytes: CUDA-only extra

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=torch.bfloat16,
                bnb_4bit_use_double_quant=True,
            )
    model = AutoModelForCausalLM.from_pretrained(str(base_model_dir), **kwargs)
    if recipe.qlora and torch.cuda.is_available():
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=recipe.gradient_checkpointing
        )
    if init_adapter is not None:
        from peft import PeftModel

        if not (init_adapter / "adapter_config.json").is_file():
            raise ConfigError(f"warm-start adapter {init_adapter} has no adapter_config.json")
        model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    return model


def lora_config(recipe: Recipe) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=recipe.lora.r,
        lora_alpha=recipe.lora.alpha,
        lora_dropout=recipe.lora.dropout,
        target_modules=recipe.lora.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )


def common_args(recipe: Recipe, scratch: Path, config_cls: Any) -> dict[str, Any]:
    """The TrainingArguments every TRL method config takes, from the recipe."""
    import torch

    cuda = torch.cuda.is_available()
    # transformers 5 renamed gradient checkpointing; the old name (TRL's default) only warns.
    field = "activation_checkpointing"
    if field not in getattr(config_cls, "__dataclass_fields__", {}):
        field = "gradient_checkpointing"
    return {
        "output_dir": str(scratch),  # TRL's scratch space; never part of the artifact
        "use_cpu": not cuda,
        "bf16": cuda,
        # Liger's fused kernels (liger-kernel package) are Triton: CUDA only.
        "use_liger_kernel": recipe.use_liger_kernel and cuda,
        "learning_rate": recipe.learning_rate,
        "lr_scheduler_type": recipe.lr_scheduler,
        "warmup_steps": recipe.warmup_steps,
        "max_steps": recipe.max_steps,
        "num_train_epochs": recipe.num_epochs,
        "per_device_train_batch_size": recipe.per_device_train_batch_size,
        "gradient_accumulation_steps": recipe.gradient_accumulation_steps,
        "weight_decay": recipe.weight_decay,
        "max_grad_norm": recipe.max_grad_norm,
        "max_length": recipe.max_length,
        field: recipe.gradient_checkpointing,
        "seed": recipe.seed,
        "data_seed": recipe.seed,
        "logging_steps": recipe.logging_steps,
        # Checkpoints only where the runner was given a place that outlives the process.
        "save_strategy": "steps" if recipe.save_steps > 0 else "no",
        "save_steps": max(recipe.save_steps, 1),
        "save_total_limit": 2,
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }


def quiet_libraries(on_log: OnLog | None) -> None:
    # PEFT and TRL still read transformers' deprecated `is_gradient_checkpointing`; the warning
    # is theirs to fix and says nothing to a ct-llm user.
    warnings.filterwarnings(
        "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
    )
    if on_log is not None:
        # The caller prints progress its own way; library progress bars would interleave with it.
        import datasets
        import transformers

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()


def log_callback(on_log: OnLog | None) -> Any:
    from transformers import TrainerCallback

    class _Forward(TrainerCallback):
        def on_log(
            self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
        ) -> None:
            if on_log is not None and logs:
                on_log({"step": state.global_step, "max_steps": state.max_steps, **logs})

    return _Forward()


def peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def write_adapter(model: Any, tmp: Path, base_model_dir: Path) -> None:
    # A warm start adds a frozen "ref" copy of the adapter; only the trained one is the artifact.
    model.save_pretrained(str(tmp), selected_adapters=["default"], safe_serialization=True)
    # PEFT's generic model card says nothing true about this adapter; manifest.json does.
    (tmp / "README.md").unlink(missing_ok=True)
    point_at_base(tmp, base_model_dir)


def point_at_base(adapter_dir: Path, base_model_dir: Path) -> None:
    # vLLM and PEFT resolve the base from this field; point it at the local folder we trained on.
    cfg_path = adapter_dir / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = str(base_model_dir.resolve())
    atomic_write_json(cfg_path, cfg)


def replay_sha256(recipe: Recipe) -> str | None:
    if not recipe.replay_prompts:
        return None
    from ct_llm.config import resolve_resource

    return sha256_file(resolve_resource(recipe.replay_prompts))


def library_versions() -> dict[str, str]:
    import peft
    import torch
    import transformers
    import trl

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "trl": trl.__version__,
    }
