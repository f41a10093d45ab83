"""ct-llm's DPO step (`dpo_engine: shared_prompt`): a transformers `Trainer` whose batches use the
shared-prompt layout (`pair_layout.py`) and whose reference log-probabilities are computed once,
before training, from the model the candidate starts from.

Why it is faster than TRL's `DPOTrainer` with `ref_model=None` on the same pairs:
- each step runs the policy only: TRL also runs the reference (the model with the adapter
  disabled) forward on every batch of every epoch; here the reference pass happens once per
  pair, in inference mode, in length-sorted batches with little padding;
- the prompt is encoded once per pair instead of once per answer;
- chosen and rejected are not padded to each other's length, and the last answer token, which
  predicts nothing, is not fed;
- the LM head projects only the positions that predict an answer token.

Why the reference is "the model the candidate starts from": on a warm start that is the
production model (base + production adapter), so the KL anchor is what users get today, with no
second adapter or model copy in memory; on a fresh start it is the base model (a new LoRA adapter
is the identity).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ct_llm.train.pair_layout import PairTokens, collate, tokenize_pair, truncate
from ct_llm.train.preference_loss import LossConfig, SequenceLogps, preference_loss


def tokenize_pairs(tokenizer: Any, rows: list[dict[str, Any]], max_length: int) -> list[PairTokens]:
    """Tokenized, truncated pairs; pairs whose prompt alone fills max_length are left out (as
    TRL leaves them out)."""
    out = []
    for row in rows:
        pair = truncate(tokenize_pair(tokenizer, row), max_length)
        if pair is not None:
            out.append(pair)
    return out


def sequence_logps(model: Any, batch: dict[str, Any]) -> SequenceLogps:
    """Policy log-probabilities of a collated batch (one forward pass)."""
    import torch
    import torch.nn.functional as F

    targets = batch["targets"]
    keep = targets.shape[1]
    out = model(
        input_ids=batch["input_ids"],
        position_ids=batch["position_ids"],
        attention_mask=_mask_for(model, batch["attention_mask"]),
        # The LM head runs on the predicting positions only (the first `keep` of every row).
        logits_to_keep=torch.arange(keep, device=targets.device),
        use_cache=False,
    )
    logits = out.logits.float()
    token_logps = -F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
    ).view_as(targets)
    chosen_mask, rejected_mask = batch["chosen_mask"], batch["rejected_mask"]
    return SequenceLogps(
        chosen=(token_logps * chosen_mask).sum(-1),
        rejected=(token_logps * rejected_mask).sum(-1),
        chosen_tokens=token_logps[chosen_mask],
        chosen_lengths=chosen_mask.sum(-1),
        rejected_lengths=rejected_mask.sum(-1),
    )


def _mask_for(model: Any, mask: Any) -> Any:
    # SDPA takes booleans (True = attend); eager attention adds the mask to the scores.
    import torch

    config = getattr(getattr(model, "module", model), "config", None)  # DDP wraps the model
    if getattr(config, "_attn_implementation", "sdpa") == "sdpa":
        return mask
    dtype = next(model.parameters()).dtype
    return torch.zeros(mask.shape, dtype=dtype).masked_fill(~mask, torch.finfo(dtype).min)


def reference_logps(
    model: Any, pairs: list[PairTokens], pad_id: int, batch_size: int, device: Any
) -> list[tuple[float, float]]:
    """(chosen, rejected) log-probabilities of every pair under `model` as it is now, computed
    once; batches are sorted by length so they carry little padding."""
    import torch

    order = sorted(range(len(pairs)), key=lambda i: pairs[i].row_length)
    result: list[tuple[float, float]] = [(0.0, 0.0)] * len(pairs)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = _to(collate([pairs[i] for i in idx], pad_id), device)
            logps = sequence_logps(model, batch)
            for i, c, r in zip(idx, logps.chosen.tolist(), logps.rejected.tolist(), strict=True):
                result[i] = (c, r)
    model.train(was_training)
    return result


def reference_logps_sharded(
    model: Any, pairs: list[PairTokens], pad_id: int, batch_size: int, device: Any
) -> list[tuple[float, float]]:
    """`reference_logps`, split over the data-parallel processes when there are several (each
    computes every world_size-th pair, then all exchange their shares)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return reference_logps(model, pairs, pad_id, batch_size, device)
    rank, world = dist.get_rank(), dist.get_world_size()
    mine = list(range(rank, len(pairs), world))
    values = reference_logps(model, [pairs[i] for i in mine], pad_id, batch_size, device)
    shares: list[Any] = [None] * world
    dist.all_gather_object(shares, (mine, values))
    result: list[tuple[float, float]] = [(0.0, 0.0)] * len(pairs)
    for idx, vals in shares:
        for i, v in zip(idx, vals, strict=True):
            result[i] = v
    return result


def _to(batch: dict[str, Any], device: Any) -> dict[str, Any]:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


class PairDataset:
    """Map-style dataset of tokenized pairs with their reference log-probabilities."""

    def __init__(self, pairs: list[PairTokens], ref: list[tuple[float, float]]) -> None:
        self.pairs, self.ref = pairs, ref

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"pair": self.pairs[i], "ref": self.ref[i]}


class PairCollator:
    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = collate([it["pair"] for it in items], self.pad_id)
        batch["ref_chosen"] = torch.tensor([it["ref"][0] for it in items])
        batch["ref_rejected"] = torch.tensor([it["ref"][1] for it in items])
        return batch


def make_trainer_class() -> type:
    """The Trainer subclass, built on first use so importing this module needs no torch."""
    from transformers import Trainer

    class SharedPromptDPOTrainer(Trainer):
        def __init__(self, *args: Any, loss_config: LossConfig, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.loss_config = loss_config
            # The loss is a mean per batch: the Trainer divides it by the accumulation steps.
            self.model_accepts_loss_kwargs = False
            self._stats: dict[str, list[float]] = defaultdict(list)
            self.tokens_seen = 0
            """Unpadded tokens fed so far (for tokens/s)."""

        def compute_loss(
            self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, **_: Any
        ) -> Any:
            policy = sequence_logps(model, inputs)
            loss, stats = preference_loss(
                self.loss_config, policy, inputs["ref_chosen"], inputs["ref_rejected"]
            )
            gather = self.accelerator.gather_for_metrics
            for key, value in stats.items():
                self._stats[key].append(gather(value).mean().item())
            self.tokens_seen += inputs["num_tokens"]
            return (loss, {"policy": policy}) if return_outputs else loss

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            # Per-pair statistics averaged over the steps since the last log, as TRL reports them.
            for key, values in self._stats.items():
                if values:
                    logs[key] = sum(values) / len(values)
            self._stats.clear()
            super().log(logs, start_time)

    return SharedPromptDPOTrainer
