"""The shared-prompt layout of a preference pair: one sequence, the prompt encoded once.

TRL's DPO step runs `prompt + chosen` and `prompt + rejected` as two padded rows, so the prompt
(in a chatbot, the system prompt and the conversation so far: most of the tokens) is encoded
twice, and both rows are padded to the longer one. Here one row holds

    [p_last c_0 .. c_{C-2}] [p_last r_0 .. r_{R-2}] [p_0 .. p_{P-2}] [pad]
     chosen branch            rejected branch         prompt body

with position ids as in the two separate sequences and an attention mask under which each branch
sees the prompt body and itself (causally), never the other branch. `p_last`, the prompt's last
token, is the first input of both branches: its output predicts the first answer token, and it
attends to exactly what it attends to in TRL's rows, so every predicted token gets the same
context and the same log-probability. The last answer token is never an input (nothing after it
is predicted), and the predicting inputs of both branches sit at the start of the row, so the LM
head runs on the first `max(C + R)` positions only.

Tokens, truncation (`keep_start` at `max_length` per answer) and the examples dropped (a prompt
that alone fills `max_length`) are TRL's, so both trainers see the same data.

An anchor (a row whose chosen and rejected answers are identical: `replay.py`) has no rejected
branch: its only loss is on the chosen answer (NLL or KL to the starting model), so the second
copy would be compute spent on a branch that gets no gradient. With `anchor_negative_weight`, an
anchor's second branch holds a *foreign* answer instead (row key `foreign`: an answer taught for
another prompt), whose rise under the anchor's prompt is penalised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Segment ids in a row: what each position is.
PAD, PROMPT, CHOSEN, REJECTED = -1, 0, 1, 2


@dataclass(frozen=True)
class PairTokens:
    prompt: list[int]
    chosen: list[int]
    rejected: list[int]
    """Empty for an anchor, or its foreign answer (an answer taught for another prompt)."""
    anchor: bool = False

    @property
    def row_length(self) -> int:
        return len(self.prompt) - 1 + len(self.chosen) + len(self.rejected)


def _chat_ids(tokenizer: Any, messages: list[dict[str, Any]], generation_prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=generation_prompt, return_dict=True
    )
    return list(out["input_ids"])


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def tokenize_pair(tokenizer: Any, row: dict[str, Any]) -> PairTokens:
    """Token ids of a conversational pair, split where TRL splits them: the completion starts
    where the rendered prompt and the rendered prompt + answer diverge. A row whose chosen and
    rejected answers are identical is an anchor (no rejected branch, or its `foreign` answer)."""
    prompt = _chat_ids(tokenizer, row["prompt"], True)
    with_chosen = _chat_ids(tokenizer, row["prompt"] + row["chosen"], False)
    if row["chosen"] == row["rejected"]:
        foreign = row.get("foreign")
        if not foreign:
            n = _common_prefix(prompt, with_chosen)
            return PairTokens(prompt[:n], with_chosen[n:], [], anchor=True)
        with_foreign = _chat_ids(tokenizer, row["prompt"] + foreign, False)
        n = min(_common_prefix(prompt, with_chosen), _common_prefix(prompt, with_foreign))
        return PairTokens(prompt[:n], with_chosen[n:], with_foreign[n:], anchor=True)
    with_rejected = _chat_ids(tokenizer, row["prompt"] + row["rejected"], False)
    n = min(_common_prefix(prompt, with_chosen), _common_prefix(prompt, with_rejected))
    return PairTokens(prompt[:n], with_chosen[n:], with_rejected[n:])


def truncate(pair: PairTokens, max_length: int) -> PairTokens | None:
    """TRL's `keep_start`: each of prompt+chosen and prompt+rejected cut at `max_length`. None
    when the prompt alone fills it (no answer token would be left to learn from)."""
    n = len(pair.prompt)
    if n >= max_length or not pair.chosen or n == 0:
        return None
    if not pair.rejected and not pair.anchor:
        return None
    keep = max_length - n
    return PairTokens(pair.prompt, pair.chosen[:keep], pair.rejected[:keep], pair.anchor)


def layout_row(pair: PairTokens) -> tuple[list[int], list[int], list[int]]:
    """(input ids, position ids, segment ids) of one pair's row, unpadded."""
    p, c, r = pair.prompt, pair.chosen, pair.rejected
    n = len(p)
    rejected_ids = [p[-1], *r[:-1]] if r else []  # an anchor has no rejected branch
    ids = [p[-1], *c[:-1], *rejected_ids, *p[:-1]]
    pos = [*range(n - 1, n - 1 + len(c)), *range(n - 1, n - 1 + len(r)), *range(n - 1)]
    seg = [CHOSEN] * len(c) + [REJECTED] * len(r) + [PROMPT] * (n - 1)
    return ids, pos, seg


def collate(pairs: list[PairTokens], pad_id: int) -> dict[str, Any]:
    """A batch of rows: input_ids, position_ids, a boolean 4D attention mask (True = may attend),
    the answer tokens each predicting position must produce (`targets`, -100 elsewhere) and which
    of them belong to the chosen / rejected answer, which rows are anchors, and `num_tokens`
    (unpadded). The first `targets.shape[1]` positions are the only ones that predict anything."""
    import torch

    rows = [layout_row(p) for p in pairs]
    width = max(len(ids) for ids, _, _ in rows)
    keep = max(len(p.chosen) + len(p.rejected) for p in pairs)
    batch = len(pairs)
    input_ids = torch.full((batch, width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((batch, width), dtype=torch.long)
    segments = torch.full((batch, width), PAD, dtype=torch.long)
    targets = torch.full((batch, keep), -100, dtype=torch.long)
    chosen_mask = torch.zeros((batch, keep), dtype=torch.bool)
    for b, ((ids, pos, seg), pair) in enumerate(zip(rows, pairs, strict=True)):
        n = len(ids)
        input_ids[b, :n] = torch.tensor(ids)
        position_ids[b, :n] = torch.tensor(pos)
        segments[b, :n] = torch.tensor(seg)
        c, r = len(pair.chosen), len(pair.rejected)
        targets[b, : c + r] = torch.tensor(pair.chosen + pair.rejected)
        chosen_mask[b, :c] = True
    rejected_mask = (targets != -100) & ~chosen_mask
    return {
        "input_ids": input_ids,
        "position_ids": position_ids,
        "attention_mask": attention_mask(segments, position_ids),
        "targets": targets,
        "chosen_mask": chosen_mask,
        "rejected_mask": rejected_mask,
        "anchor": torch.tensor([p.anchor for p in pairs], dtype=torch.bool),
        "num_tokens": sum(len(ids) for ids, _, _ in rows),
    }


def attention_mask(segments: Any, positions: Any) -> Any:
    """(batch, 1, width, width) booleans: the prompt body attends causally to itself; a branch
    attends to the whole prompt body and causally to itself; padding only to itself (a query
    with no key at all would make SDPA return NaN, which would reach the gradients)."""
    import torch

    q_seg, k_seg = segments[:, :, None], segments[:, None, :]
    causal = positions[:, None, :] <= positions[:, :, None]
    same = (q_seg == k_seg) & (q_seg != PAD) & causal
    prompt_key = (k_seg == PROMPT) & (q_seg > PROMPT)
    width = segments.shape[1]
    eye = torch.eye(width, dtype=torch.bool, device=segments.device)[None]
    return (same | prompt_key | eye)[:, None]
