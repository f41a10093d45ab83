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

Anchors (rows whose answer is to be kept, `replay.py`) take no part in the preference term. Their
loss is either the SFT term's NLL on their answer (`anchor_loss: nll`: the starting model's greedy
answer as a hard label) or the KL divergence from the starting model's next-token distribution
(its top k tokens and the rest) to the policy's at every answer token (`anchor_loss: kl`,
weighted by `anchor_weight`): a distillation term that pins the whole distribution, not only
its argmax, so that answers whose first choice was a near tie elsewhere are disturbed less
(Learning without Forgetting, Li & Hoiem 2016).

An anchor may also carry a foreign answer (an answer taught for another prompt). The KL term only
watches the anchor's own answer path, so nothing stops a taught answer from becoming the
adapter's answer to every prompt (the demo's "Our return window is 60 days" to "When will my
parcel arrive?"). With `anchor_negative_weight` > 0, softplus(beta x the foreign answer's
log-ratio to the starting model) is added per such anchor: a taught answer growing more likely
under a prompt whose behaviour is to be kept is exactly that leak. It needs no judgement of
which prompts share a fact: an anchor's prompt is, by definition, one not to change.

where delta = (log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log ref(rejected)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LOSS_TYPES = ("sigmoid", "robust", "hinge", "ipo", "sigmoid_norm")
ANCHOR_LOSSES = ("nll", "kl")


@dataclass(frozen=True)
class LossConfig:
    loss_type: str = "sigmoid"
    beta: float = 0.1
    label_smoothing: float = 0.0
    sft_weight: float = 0.0
    anchor_loss: str = "nll"
    anchor_weight: float = 1.0
    anchor_negative_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.loss_type not in LOSS_TYPES:
            known = ", ".join(LOSS_TYPES)
            raise ValueError(f"unknown loss_type {self.loss_type!r}; one of {known}")
        if self.anchor_loss not in ANCHOR_LOSSES:
            known = ", ".join(ANCHOR_LOSSES)
            raise ValueError(f"unknown anchor_loss {self.anchor_loss!r}; one of {known}")
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
    anchor: Any = None
    """Which rows are anchors (booleans); None: no row is."""
    chosen_token_anchor: Any = None
    """Per flattened chosen token: whether it belongs to an anchor row; None: none does."""
    anchor_kl: Any = None
    """Per anchor answer token: KL from the starting model's (top-k) distribution to the
    policy's; None when not computed (`anchor_loss: nll`)."""


def preference_loss(
    cfg: LossConfig, policy: SequenceLogps, ref_chosen: Any, ref_rejected: Any
) -> tuple[Any, dict[str, Any]]:
    """(scalar loss, detached per-pair statistics: rewards, margins, log-probs, of the
    preference pairs only)."""
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
    pairs = torch.ones_like(delta, dtype=torch.bool) if policy.anchor is None else ~policy.anchor
    # A batch of anchors only has no preference term (x 0 keeps the graph for backward).
    loss = per_pair[pairs].mean() if pairs.any() else per_pair.sum() * 0
    loss = loss + anchor_and_sft_terms(cfg, policy)
    foreign = _foreign_rows(policy)
    if cfg.anchor_negative_weight > 0 and foreign.any():
        loss = loss + cfg.anchor_negative_weight * F.softplus(beta * rejected_ratio[foreign]).mean()
    chosen_reward = (beta * chosen_ratio).detach()[pairs]
    rejected_reward = (beta * rejected_ratio).detach()[pairs]
    stats = {
        "rewards/chosen": chosen_reward,
        "rewards/rejected": rejected_reward,
        "rewards/accuracies": (chosen_reward > rejected_reward).float(),
        "rewards/margins": chosen_reward - rejected_reward,
        "logps/chosen": policy.chosen.detach()[pairs],
        "logps/rejected": policy.rejected.detach()[pairs],
    }
    if foreign.any():
        # How much more likely than at the start the taught answers are under anchor prompts.
        stats["anchors/foreign_logratio"] = rejected_ratio.detach()[foreign]
    return loss, stats


def _foreign_rows(policy: SequenceLogps) -> Any:
    """Anchor rows that carry a foreign answer (a rejected branch)."""
    import torch

    if policy.anchor is None:
        return torch.zeros_like(policy.rejected_lengths, dtype=torch.bool)
    return policy.anchor & (policy.rejected_lengths > 0)


def anchor_and_sft_terms(cfg: LossConfig, policy: SequenceLogps) -> Any:
    """The SFT term (mean NLL over chosen tokens: of pairs and, with `anchor_loss: nll`, of
    anchors) plus, with `anchor_loss: kl`, `anchor_weight` x the anchors' mean KL per token."""
    total = policy.chosen.sum() * 0
    tokens = policy.chosen_tokens
    if cfg.anchor_loss == "kl" and policy.chosen_token_anchor is not None:
        tokens = tokens[~policy.chosen_token_anchor]
    if cfg.sft_weight > 0 and tokens.numel() > 0:
        total = total + cfg.sft_weight * -tokens.mean()
    kl = policy.anchor_kl
    if cfg.anchor_loss == "kl" and kl is not None and kl.numel() > 0:
        total = total + cfg.anchor_weight * kl.mean()
    return total
