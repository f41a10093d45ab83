"""DPO-family losses on per-sequence log-probabilities (pure torch, no model).

The formulas and names are TRL's (`DPOTrainer`, reverse-KL case) so a recipe means the same thing
with `dpo_engine: shared_prompt` and `dpo_engine: trl`:

- sigmoid: -log sigmoid(beta * delta), the original DPO loss;
- robust: the sigmoid loss corrected for a share `label_smoothing` of flipped labels (Robust DPO,
  Chowdhury et al. 2024): for noisy thumbs;
- hinge: relu(1 - beta * delta);
- ipo: (delta / answer length - 1 / (2 beta))^2, length-normalised as TRL does;
- sigmoid_norm: the sigmoid loss on length-normalised log-ratios;
- sft: mean negative log-likelihood of the chosen answer's tokens (RPO's added term).

where delta = (log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log ref(rejected)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LOSS_TYPES = ("sigmoid", "robust", "hinge", "ipo", "sigmoid_norm")


@dataclass(frozen=True)
class LossConfig:
    loss_type: str = "sigmoid"
    beta: float = 0.1
    label_smoothing: float = 0.0
    sft_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.loss_type not in LOSS_TYPES:
            known = ", ".join(LOSS_TYPES)
            raise ValueError(f"unknown loss_type {self.loss_type!r}; one of {known}")
        if not 0 <= self.label_smoothing < 0.5:
            raise ValueError("label_smoothing must be in [0, 0.5)")


@dataclass
class SequenceLogps:
    """One batch's policy log-probabilities: per answer (summed over its tokens) and per token."""

    chosen: Any
    rejected: Any
    chosen_tokens: Any
    """Log-probability of each chosen-answer token, flattened over the batch (for the SFT term)."""
    chosen_lengths: Any
    rejected_lengths: Any


def preference_loss(
    cfg: LossConfig, policy: SequenceLogps, ref_chosen: Any, ref_rejected: Any
) -> tuple[Any, dict[str, Any]]:
    """(scalar loss, detached per-pair statistics: rewards, margins, log-probs)."""
    import torch
    import torch.nn.functional as F

    chosen_ratio = policy.chosen - ref_chosen
    rejected_ratio = policy.rejected - ref_rejected
    delta = chosen_ratio - rejected_ratio
    beta = cfg.beta
    if cfg.loss_type == "sigmoid":
        per_pair = -F.logsigmoid(beta * delta)
    elif cfg.loss_type == "robust":
        eps = cfg.label_smoothing
        clean = -(1 - eps) * F.logsigmoid(beta * delta)
        flipped = -eps * F.logsigmoid(-beta * delta)
        per_pair = (clean - flipped) / (1 - 2 * eps)
    elif cfg.loss_type == "hinge":
        per_pair = torch.relu(1 - beta * delta)
    else:  # ipo, sigmoid_norm: per-token log-ratios
        norm_delta = chosen_ratio / policy.chosen_lengths.clamp(min=1) - (
            rejected_ratio / policy.rejected_lengths.clamp(min=1)
        )
        if cfg.loss_type == "ipo":
            per_pair = (norm_delta - 1 / (2 * beta)) ** 2
        else:
            per_pair = -F.logsigmoid(beta * norm_delta)
    loss = per_pair.mean()
    if cfg.sft_weight > 0:
        loss = loss + cfg.sft_weight * -policy.chosen_tokens.mean()
    chosen_reward = (beta * chosen_ratio).detach()
    rejected_reward = (beta * rejected_ratio).detach()
    stats = {
        "rewards/chosen": chosen_reward,
        "rewards/rejected": rejected_reward,
        "rewards/accuracies": (chosen_reward > rejected_reward).float(),
        "rewards/margins": chosen_reward - rejected_reward,
        "logps/chosen": policy.chosen.detach(),
        "logps/rejected": policy.rejected.detach(),
    }
    return loss, stats
