"""Training recipes: a YAML file (named `recipes/<model>/<method>_<device>.yaml`) plus
`key=value` overrides, validated into a typed `Recipe`. An unknown key or a wrong type is an error
that names the key and the file, so a typo never silently trains with a default."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ct_llm.config import apply_overrides, format_validation_error, resolve_resource
from ct_llm.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraSettings(_Strict):
    r: int = Field(8, ge=1, le=256)
    """LoRA rank; vLLM refuses adapters above its `--max-lora-rank` (16 by default here)."""
    alpha: int = Field(16, ge=1)
    """LoRA scaling numerator: the update is scaled by alpha / r."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on the LoRA input; 0 keeps tiny-data runs deterministic."""
    target_modules: list[str] | str = "all-linear"
    """Modules that get adapters: a list of names, or PEFT's "all-linear"."""


class SearchSettings(_Strict):
    """A small hyperparameter search (DPO): `trials` candidates trained with sampled settings,
    each scored on the held-out pairs' preference accuracy; the best becomes the candidate.
    Trial 1 always uses the recipe's own values, so the search never returns worse than it."""

    trials: int = Field(6, ge=1, le=100)
    """Trainings at most, the recipe's own settings included."""
    minutes: float = Field(60.0, gt=0)
    """No trial starts after this many minutes (a running one finishes)."""
    learning_rate: tuple[float, float] | None = (1e-5, 1e-3)
    """Range sampled log-uniformly; null keeps the recipe's value."""
    beta: tuple[float, float] | None = (0.05, 0.5)
    """Range sampled log-uniformly; null keeps the recipe's value."""
    num_epochs: list[float] | None = None
    """Values to choose from (used when max_steps is -1); null keeps the recipe's value."""
    seed: int = 0
    """Seed of the sampling (each trial trains with the recipe's own seed)."""

    @model_validator(mode="after")
    def _ranges(self) -> SearchSettings:
        for name in ("learning_rate", "beta"):
            lo_hi = getattr(self, name)
            if lo_hi is not None and not 0 < lo_hi[0] <= lo_hi[1]:
                raise ValueError(f"search.{name} must be [low, high] with 0 < low <= high")
        return self


class Recipe(_Strict):
    description: str = ""
    """What this recipe is for (free text, shown in the train record)."""
    method: Literal["auto", "dpo", "kto", "sft"] = "auto"
    """"dpo" (preference pairs), "kto" (unpaired thumbs), "sft" (good answers), or "auto": the
    strongest signal the dataset version holds, in that order."""
    lora: LoraSettings = LoraSettings()
    """The LoRA adapter being trained."""
    learning_rate: float = Field(5e-4, gt=0)
    """Peak learning rate of the adapter weights."""
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    """Learning-rate schedule after warm-up."""
    warmup_steps: int = Field(0, ge=0)
    """Optimizer steps of linear warm-up."""
    max_steps: int = Field(-1, ge=-1)
    """Optimizer steps to run; -1: run `num_epochs` epochs instead."""
    num_epochs: float = Field(1.0, gt=0)
    """Passes over the training pairs when `max_steps` is -1."""
    per_device_train_batch_size: int = Field(4, ge=1)
    """Preference pairs per forward pass on each device."""
    gradient_accumulation_steps: int = Field(1, ge=1)
    """Forward passes summed into one optimizer step."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay on the adapter weights."""
    max_grad_norm: float = Field(1.0, gt=0)
    """Gradient clipping norm."""
    beta: float = Field(0.1, gt=0)
    """DPO/KTO temperature: how far the policy may move from the reference (larger = stay
    closer)."""
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust", "sigmoid_norm"] = "sigmoid"
    """Preference loss (TRL's names): "sigmoid" is the original DPO loss; "robust" (with
    `label_smoothing`) expects a share of the pairs to be flipped, as noisy thumbs are."""
    label_smoothing: float = Field(0.0, ge=0, lt=0.5)
    """"robust" loss: the assumed probability that a pair's preference label is wrong (0.1 is the
    Robust DPO paper's typical value)."""
    start_from: Literal["production", "base"] = "production"
    """"production": warm-start from the production adapter, which is also the DPO/KTO reference;
    "base": a fresh adapter on the base model (the reference is the base)."""
    dpo_engine: Literal["shared_prompt", "trl"] = "shared_prompt"
    """"shared_prompt": ct-llm's DPO step (prompt encoded once per pair, reference log-probs
    computed once before training, no padding between chosen and rejected); "trl": TRL's
    DPOTrainer, for its other losses or FlashAttention-2."""
    reference_batch_size: int = Field(16, ge=1)
    """Pairs per forward pass when the shared-prompt engine computes the reference log-probs
    (inference only, so it can be larger than the training batch)."""
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"
    """Attention kernel; flash_attention_2 needs CUDA, the flash-attn package, and dpo_engine trl
    (its kernel cannot take the shared-prompt attention mask)."""
    use_liger_kernel: bool = False
    """On CUDA only: Liger's fused Triton kernels (RMSNorm, RoPE, SwiGLU; the liger-kernel
    package), applied by the Trainer; ignored on CPU."""
    search: SearchSettings | None = None
    """Optional hyperparameter search (DPO only), see SearchSettings."""
    save_steps: int = Field(50, ge=0)
    """Write a resumable checkpoint every this many optimizer steps (0: none); `ct-llm train
    --resume` continues from the last complete one."""
    desirable_weight: float | None = Field(None, gt=0)
    """KTO: loss weight of thumbs-up examples; None sets both weights from the label balance."""
    undesirable_weight: float | None = Field(None, gt=0)
    """KTO: loss weight of thumbs-down examples; None sets both weights from the label balance."""
    sft_weight: float = Field(0.0, ge=0)
    """Weight of an added NLL (SFT) loss on the chosen answer, as in RPO; 0 disables it."""
    thumbs_up_anchors: bool = True
    """Also train on the dataset's thumbs-up answers as anchors, so liked behaviour stays."""
    anchor_loss: Literal["nll", "kl"] = "nll"
    """How anchors (thumbs-up answers, replayed prompts) are kept: "nll", the SFT term on their
    answer (a hard label); "kl", the KL divergence from the starting model's next-token
    distribution (its top `anchor_topk`) at each answer token, weighted by `anchor_weight`
    (shared-prompt DPO engine only)."""
    anchor_weight: float = Field(1.0, ge=0)
    """Weight of the anchors' KL term (`anchor_loss: kl`)."""
    anchor_negative_weight: float = Field(0.0, ge=0)
    """> 0: each anchor also carries one answer taught for another prompt (a chosen answer of
    the pairs, spread evenly, seeded), and a taught answer growing more likely under the
    anchor's prompt is penalised with this weight (shared-prompt DPO engine only): against
    taught answers leaking into unrelated questions."""
    anchor_topk: int = Field(16, ge=1, le=1024)
    """Tokens of the starting model's distribution kept per anchor answer token (`kl`); the
    rest of its mass counts as one outcome."""
    replay_prompts: str | None = None
    """JSONL of general prompts answered by the starting model and replayed as SFT anchors."""
    replay_max_new_tokens: int = Field(64, ge=1)
    """Length cap of the replayed answers."""
    max_length: int = Field(256, ge=16)
    """Prompt + answer tokens kept per example (longer ones are truncated at the end)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: saves memory, costs ~30% speed."""
    qlora: bool = False
    """On CUDA only: load the base model in 4-bit (bitsandbytes) and train LoRA on top."""
    seed: int = 0
    """Seed of weight init, data order and dropout."""
    logging_steps: int = Field(1, ge=1)
    """Report loss and reward metrics every this many optimizer steps."""

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        # Anchors are identical chosen/rejected pairs: no preference gradient; they train via
        # the SFT term (nll) or their own KL term.
        if self.replay_prompts and self.sft_weight == 0 and self.anchor_loss == "nll":
            raise ValueError(
                "replay_prompts needs sft_weight > 0 or anchor_loss: kl (anchors have no "
                "preference gradient)"
            )
        if self.anchor_loss == "kl" and self.dpo_engine != "shared_prompt":
            raise ValueError("anchor_loss: kl needs dpo_engine: shared_prompt")
        if self.anchor_negative_weight > 0 and self.dpo_engine != "shared_prompt":
            raise ValueError("anchor_negative_weight needs dpo_engine: shared_prompt")
        if self.attn_implementation == "flash_attention_2" and self.dpo_engine == "shared_prompt":
            raise ValueError(
                "attn_implementation flash_attention_2 needs dpo_engine: trl (the shared-prompt "
                "step uses an attention mask FlashAttention-2 cannot take)"
            )
        if self.search is not None and self.method not in ("dpo", "auto"):
            raise ValueError("search scores held-out preference pairs: it needs method dpo")
        if self.label_smoothing > 0 and self.loss_type != "robust":
            raise ValueError("label_smoothing is used by loss_type robust only")
        return self


def _format_errors(source: str, err: ValidationError) -> str:
    detail = format_validation_error(f"recipe {source}", err)
    return detail + " (see ct_llm/train/recipe.py for the fields)"


def load_recipe(path: Path | str, overrides: list[str] | None = None) -> Recipe:
    """Read a recipe YAML (as given, else relative to the ct-llm repository) and apply
    `key=value` overrides (`lora.r=4`, `max_steps=10`)."""
    file = resolve_resource(str(path))
    if not file.is_file():
        raise ConfigError(
            f"recipe {path} not found; "
            "pass an existing file, e.g. recipes/smollm2-135m/dpo_cpu.yaml"
        )
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"recipe {file} is not valid YAML: {e}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {file} must hold a mapping of settings")
    return recipe_from_dict(data, str(file), overrides)


def recipe_from_dict(
    data: dict[str, Any], source: str, overrides: list[str] | None = None
) -> Recipe:
    """A recipe from settings (a YAML file's, or those recorded in an adapter's manifest)."""
    data = apply_overrides(data, list(overrides or []))
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(source, e)) from None


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    return recipe.model_dump(mode="json")
