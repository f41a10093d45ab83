"""Anchors: examples that keep an adapter from drifting on what it is not being taught.

A few dozen edit pairs all about one topic teach a small model the topic, but also a style (short
answers, the same first words) that leaks into unrelated questions. Anchors counter that: prompts
answered the way the starting model answers them now, trained with the SFT (NLL) term only. They
are fed to DPO as pairs whose chosen and rejected answers are identical, so the preference term
gives them exactly zero gradient and only the `sft_weight` term sees them.

Two sources:
- thumbs-up answers in the dataset version (`kto/train.parquet`, label true): users liked them
  as they are. (SFT rows are not anchors: edited answers are the behaviour being taught, already
  in the DPO pairs' chosen side.)
- replay prompts (a recipe file of general questions), answered greedily by the starting model
  (base, or base + warm-start adapter) right before training: self-distillation, a cheap stand-in
  for a KL penalty on general chat.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ct_llm.config import resolve_resource
from ct_llm.errors import ConfigError

Messages = list[dict[str, str]]


def thumbs_up_anchors(dataset_dir: Path) -> list[dict[str, Any]]:
    """Thumbs-up answers of a dataset version (`kto/train.parquet`, label true) as anchor pairs,
    identical ones once; none when the split has no file."""
    from ct_llm.train.data import read_split

    rows = [r for r in read_split(dataset_dir, "kto") if r.get("label") is True]
    anchors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in rows:
        prompt, completion = row.get("prompt"), row.get("completion")
        if not prompt or not completion or not completion[-1].get("content"):
            continue
        anchor = anchor_pair(prompt, completion[-1]["content"])
        key = json.dumps(anchor, sort_keys=True)
        if key not in seen:
            seen.add(key)
            anchors.append(anchor)
    return anchors


def anchor_pair(prompt: Messages, answer: str) -> dict[str, Any]:
    completion = [{"role": "assistant", "content": answer}]
    return {"prompt": prompt, "chosen": completion, "rejected": completion}


def load_replay_prompts(path: str) -> list[Messages]:
    """A JSONL file of `{"messages": [...]}` lines (or `{"prompt": "..."}` for one user turn)."""
    file = resolve_resource(path)
    if not file.is_file():
        raise ConfigError(
            f"replay prompts file {path} not found; fix `replay_prompts` in the recipe"
        )
    out: list[Messages] = []
    for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise ConfigError(f"{file}:{n} is not valid JSON") from None
        if isinstance(row.get("prompt"), str):
            out.append([{"role": "user", "content": row["prompt"]}])
        elif isinstance(row.get("messages"), list) and row["messages"]:
            out.append(row["messages"])
        else:
            raise ConfigError(f"{file}:{n} needs a `prompt` string or a `messages` list")
    return out


def greedy_answers(
    model: Any,
    tokenizer: Any,
    conversations: list[Messages],
    max_new_tokens: int,
    batch_size: int = 16,
) -> list[str]:
    """Greedy answers of `model`, batched with left padding (one batch of 16 short prompts takes
    a few seconds on 2 CPU cores, far less than one at a time)."""
    import torch

    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    was_training = model.training
    model.eval()
    answers: list[str] = []
    try:
        for i in range(0, len(conversations), batch_size):
            texts = [
                tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                for c in conversations[i : i + batch_size]
            ]
            batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            batch = batch.to(model.device)
            with torch.no_grad():
                out = model.generate(
                    **batch,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
            new = out[:, batch["input_ids"].shape[1] :]
            answers += [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return answers


def replay_anchors(
    model: Any, tokenizer: Any, path: str, max_new_tokens: int
) -> list[dict[str, Any]]:
    prompts = load_replay_prompts(path)
    answers = greedy_answers(model, tokenizer, prompts, max_new_tokens)
    return [anchor_pair(p, a) for p, a in zip(prompts, answers, strict=True) if a]


def with_foreign_answers(
    anchors: list[dict[str, Any]], pairs: list[dict[str, Any]], seed: int
) -> list[dict[str, Any]]:
    """Each anchor with one answer taught for another prompt (`foreign`): the pairs' distinct
    chosen answers, shuffled with `seed` and dealt round-robin, so every taught answer is
    watched under some anchor prompts. An anchor whose own answer is that answer gets the next
    one. Anchors come back unchanged when the pairs teach nothing (or one answer equal to it)."""
    import random

    taught: list[Messages] = []
    seen: set[str] = set()
    for row in pairs:
        if row["chosen"] == row["rejected"]:
            continue
        key = json.dumps(row["chosen"], sort_keys=True)
        if key not in seen:
            seen.add(key)
            taught.append(row["chosen"])
    random.Random(seed).shuffle(taught)
    out = []
    n = len(taught)
    for i, anchor in enumerate(anchors):
        dealt = (taught[(i + j) % n] for j in range(n))
        foreign = next((c for c in dealt if c != anchor["chosen"]), None)
        out.append(anchor if foreign is None else {**anchor, "foreign": foreign})
    return out
