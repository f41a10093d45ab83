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
from dataclasses import dataclass
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


def policy_logits(model: Any, batch: dict[str, Any]) -> Any:
    """Float logits of the predicting positions of a collated batch (one forward pass)."""
    import torch

    targets = batch["targets"]
    out = model(
        input_ids=batch["input_ids"],
        position_ids=batch["position_ids"],
        attention_mask=_mask_for(model, batch["attention_mask"]),
        # The LM head runs on the predicting positions only (the first `keep` of every row).
        logits_to_keep=torch.arange(targets.shape[1], device=targets.device),
        use_cache=False,
    )
    return out.logits.float()


def sequence_logps(model: Any, batch: dict[str, Any]) -> SequenceLogps:
    """Policy log-probabilities of a collated batch (one forward pass); with the reference's
    top-k in the batch (`anchor_loss: kl`), also the anchors' KL per answer token."""
    return logps_from_logits(policy_logits(model, batch), batch)


def logps_from_logits(logits: Any, batch: dict[str, Any]) -> SequenceLogps:
    import torch.nn.functional as F

    targets = batch["targets"]
    token_logps = -F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
    ).view_as(targets)
    chosen_mask, rejected_mask = batch["chosen_mask"], batch["rejected_mask"]
    anchor = batch.get("anchor")
    return SequenceLogps(
        chosen=(token_logps * chosen_mask).sum(-1),
        rejected=(token_logps * rejected_mask).sum(-1),
        chosen_tokens=token_logps[chosen_mask],
        chosen_lengths=chosen_mask.sum(-1),
        rejected_lengths=rejected_mask.sum(-1),
        anchor=anchor,
        chosen_token_anchor=None
        if anchor is None
        else anchor[:, None].expand_as(chosen_mask)[chosen_mask],
        anchor_kl=_anchor_kl(logits, batch) if "ref_topk_ids" in batch else None,
    )


def _anchor_positions(batch: dict[str, Any]) -> Any:
    return batch["chosen_mask"] & batch["anchor"][:, None]


def _anchor_kl(logits: Any, batch: dict[str, Any]) -> Any:
    """KL(reference || policy) at every anchor answer token, over k + 1 outcomes: the
    reference's top-k tokens and "any other token" (its tail mass). Exactly 0 while the policy
    is the reference, and it still notices mass moving into the tail."""
    import torch

    where = _anchor_positions(batch)
    policy = torch.log_softmax(logits[where], -1).gather(-1, batch["ref_topk_ids"][where])
    ref = batch["ref_topk_logps"][where]
    return (ref.exp() * (ref - policy)).sum(-1) + _tail_term(ref, policy)


def _tail_term(ref: Any, policy: Any) -> Any:
    import torch

    def tail(logps: Any) -> Any:  # log(1 - mass of the k tokens), kept finite
        return torch.log1p(-logps.exp().sum(-1).clamp(max=1 - 1e-6))

    ref_tail, policy_tail = tail(ref), tail(policy)
    return ref_tail.exp() * (ref_tail - policy_tail)


def anchor_topk(logits: Any, batch: dict[str, Any], k: int) -> list[tuple[Any, Any] | None]:
    """Per row: the reference's top-k (token ids, log-probs) at each of an anchor's answer
    tokens, shape (answer length, k); None for a preference pair."""
    import torch

    out: list[tuple[Any, Any] | None] = []
    logps = torch.log_softmax(logits, -1)
    for row in range(logits.shape[0]):
        if not bool(batch["anchor"][row]):
            out.append(None)
            continue
        n = int(batch["chosen_mask"][row].sum())
        values, ids = logps[row, :n].topk(k, -1)
        out.append((ids.cpu(), values.cpu()))
    return out


def _mask_for(model: Any, mask: Any) -> Any:
    # SDPA takes booleans (True = attend); eager attention adds the mask to the scores.
    import torch

    config = getattr(getattr(model, "module", model), "config", None)  # DDP wraps the model
    if getattr(config, "_attn_implementation", "sdpa") == "sdpa":
        return mask
    dtype = next(model.parameters()).dtype
    return torch.zeros(mask.shape, dtype=dtype).masked_fill(~mask, torch.finfo(dtype).min)


@dataclass
class Reference:
    """What the starting model says of one pair, computed once before training."""

    chosen: float
    rejected: float
    topk: tuple[Any, Any] | None = None
    """An anchor's top-k (token ids, log-probs) per answer token (`anchor_loss: kl`)."""


def reference_logps(
    model: Any, pairs: list[PairTokens], pad_id: int, batch_size: int, device: Any, topk: int = 0
) -> list[Reference]:
    """The reference log-probabilities of every pair under `model` as it is now (and with
    `topk`, the anchors' top-k distributions), computed once; batches are sorted by length so
    they carry little padding."""
    import torch

    order = sorted(range(len(pairs)), key=lambda i: pairs[i].row_length)
    result: list[Reference] = [Reference(0.0, 0.0)] * len(pairs)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = _to(collate([pairs[i] for i in idx], pad_id), device)
            logits = policy_logits(model, batch)
            logps = logps_from_logits(logits, batch)
            tops = anchor_topk(logits, batch, topk) if topk else [None] * len(idx)
            for i, c, r, top in zip(
                idx, logps.chosen.tolist(), logps.rejected.tolist(), tops, strict=True
            ):
                result[i] = Reference(c, r, top)
    model.train(was_training)
    return result


def reference_logps_sharded(
    model: Any, pairs: list[PairTokens], pad_id: int, batch_size: int, device: Any, topk: int = 0
) -> list[Reference]:
    """`reference_logps`, split over the data-parallel processes when there are several (each
    computes every world_size-th pair, then all exchange their shares)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return reference_logps(model, pairs, pad_id, batch_size, device, topk)
    rank, world = dist.get_rank(), dist.get_world_size()
    mine = list(range(rank, len(pairs), world))
    values = reference_logps(model, [pairs[i] for i in mine], pad_id, batch_size, device, topk)
    shares: list[Any] = [None] * world
    dist.all_gather_object(shares, (mine, values))
    result: list[Reference] = [Reference(0.0, 0.0)] * len(pairs)
    for idx, vals in shares:
        for i, v in zip(idx, vals, strict=True):
            result[i] = v
    return result


def _to(batch: dict[str, Any], device: Any) -> dict[str, Any]:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


class PairDataset:
    """Map-style dataset of tokenized pairs with their reference values."""

    def __init__(self, pairs: list[PairTokens], ref: list[Reference]) -> None:
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
        refs: list[Reference] = [it["ref"] for it in items]
        batch["ref_chosen"] = torch.tensor([r.chosen for r in refs])
        batch["ref_rejected"] = torch.tensor([r.rejected for r in refs])
        tops = [r.topk for r in refs]
        if any(t is not None for t in tops):
            k = next(t for t in tops if t is not None)[0].shape[-1]
            shape = (*batch["targets"].shape, k)
            ids = torch.zeros(shape, dtype=torch.long)
            logps = torch.zeros(shape)
            for row, top in enumerate(tops):
                if top is not None:
                    n = top[0].shape[0]
                    ids[row, :n], logps[row, :n] = top
            batch["ref_topk_ids"], batch["ref_topk_logps"] = ids, logps
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
                value = gather(value)
                if value.numel():  # a batch of anchors only has no pair statistics
                    self._stats[key].append(value.mean().item())
            if policy.anchor_kl is not None and policy.anchor_kl.numel():
                self._stats["anchors/kl"].append(gather(policy.anchor_kl.detach()).mean().item())
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
