"""The shared-prompt DPO layout and losses against the plain computation they replace: the same
log-probabilities as two separate sequences, and TRL's loss values on the same inputs."""

from __future__ import annotations

import math

import pytest
from tiny_models import tiny_llama

torch = pytest.importorskip("torch")

from ct_llm.train.pair_layout import (  # noqa: E402
    CHOSEN,
    PROMPT,
    REJECTED,
    PairTokens,
    collate,
    layout_row,
    truncate,
)
from ct_llm.train.preference_loss import LossConfig, SequenceLogps, preference_loss  # noqa: E402
from ct_llm.train.shared_prompt_dpo import (  # noqa: E402
    PairCollator,
    Reference,
    anchor_topk,
    policy_logits,
    sequence_logps,
)


def tiny_model():
    return tiny_llama(50, tie=False).eval()


PAIRS = [
    PairTokens([1, 5, 6, 7, 8], [9, 10, 11], [12]),
    PairTokens([1, 5, 6], [13, 14, 15, 16, 17, 18], [19, 20, 21, 22]),
    PairTokens([1, 2, 3, 4, 5, 6, 7, 8, 9], [30], [31, 32]),
]


def separate_logps(model, prompt: list[int], answer: list[int]) -> float:
    logits = model(torch.tensor([prompt + answer])).logits[0]
    logps = torch.log_softmax(logits.float(), -1)
    n = len(prompt)
    return sum(float(logps[n - 1 + j, answer[j]]) for j in range(len(answer)))


def test_layout_puts_predicting_positions_first_and_drops_last_answer_tokens() -> None:
    ids, pos, seg = layout_row(PAIRS[0])
    assert ids == [8, 9, 10, 8, 1, 5, 6, 7]
    assert pos == [4, 5, 6, 4, 0, 1, 2, 3]
    assert seg == [CHOSEN] * 3 + [REJECTED] + [PROMPT] * 4


def test_branches_never_see_each_other() -> None:
    batch = collate(PAIRS[:1], pad_id=0)
    mask = batch["attention_mask"][0, 0]
    chosen, rejected, prompt = range(0, 3), range(3, 4), range(4, 8)
    for q in chosen:
        assert not any(mask[q, k] for k in rejected)
        assert all(mask[q, k] for k in prompt)
    for q in rejected:
        assert not any(mask[q, k] for k in chosen)
    # the prompt body is causal: no position sees a later one
    assert not mask[4, 5] and mask[5, 4]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_logps_equal_two_separate_sequences(attn: str) -> None:

    model = tiny_model()
    model.config._attn_implementation = attn
    batch = collate(PAIRS, pad_id=0)
    with torch.no_grad():
        got = sequence_logps(model, batch)
        for i, pair in enumerate(PAIRS):
            want_c = separate_logps(model, pair.prompt, pair.chosen)
            want_r = separate_logps(model, pair.prompt, pair.rejected)
            assert float(got.chosen[i]) == pytest.approx(want_c, abs=1e-4)
            assert float(got.rejected[i]) == pytest.approx(want_r, abs=1e-4)
    assert got.chosen_lengths.tolist() == [3, 6, 1]
    assert got.rejected_lengths.tolist() == [1, 4, 2]


def test_padding_rows_get_no_nan_gradients() -> None:

    model = tiny_model().train()
    out = sequence_logps(model, collate(PAIRS, pad_id=0))
    (out.chosen.sum() - out.rejected.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_truncation_keeps_start_and_drops_prompt_filling_pairs() -> None:
    pair = PairTokens([1, 2, 3], [4, 5, 6, 7], [8, 9])
    assert truncate(pair, 5) == PairTokens([1, 2, 3], [4, 5], [8, 9])
    assert truncate(pair, 3) is None


def logps(c: list[float], r: list[float], lc=None, lr=None) -> SequenceLogps:
    t = torch.tensor
    return SequenceLogps(
        chosen=t(c),
        rejected=t(r),
        chosen_tokens=t([-0.5, -1.5]),
        chosen_lengths=t(lc or [1] * len(c)),
        rejected_lengths=t(lr or [1] * len(r)),
    )


def test_sigmoid_loss_and_rewards_by_hand() -> None:
    loss, stats = preference_loss(
        LossConfig(beta=0.5), logps([-1.0], [-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0])
    )
    # delta = (1) - (-1) = 2; -log sigmoid(0.5 * 2)
    assert float(loss) == pytest.approx(-math.log(1 / (1 + math.exp(-1.0))))
    assert float(stats["rewards/margins"][0]) == pytest.approx(1.0)
    assert float(stats["rewards/accuracies"][0]) == 1.0


def test_robust_loss_is_trls_formula_and_sft_term_adds_mean_nll() -> None:
    eps, beta, delta = 0.1, 0.1, 2.0
    cfg = LossConfig(loss_type="robust", beta=beta, label_smoothing=eps, sft_weight=1.0)
    loss, _ = preference_loss(cfg, logps([0.0], [-delta]), torch.tensor([0.0]), torch.tensor([0.0]))

    def logsig(x: float) -> float:
        return -math.log1p(math.exp(-x))

    robust = (-(1 - eps) * logsig(beta * delta) + eps * logsig(-beta * delta)) / (1 - 2 * eps)
    assert float(loss) == pytest.approx(robust + 1.0)  # mean NLL of tokens -0.5, -1.5 is 1.0


def test_ipo_normalises_by_answer_length() -> None:
    cfg = LossConfig(loss_type="ipo", beta=0.25)
    loss, _ = preference_loss(
        cfg, logps([-2.0], [-8.0], [2], [4]), torch.tensor([0.0]), torch.tensor([0.0])
    )
    # per-token log-ratios -1 and -2: delta 1; (1 - 1 / (2 * 0.25))^2
    assert float(loss) == pytest.approx(1.0)


def test_unknown_loss_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown loss_type"):
        LossConfig(loss_type="exo_pair")


ANCHOR = PairTokens([1, 5, 6], [23, 24, 25, 26], [], anchor=True)


def test_an_anchor_has_no_rejected_branch_and_the_same_chosen_logps() -> None:

    ids, pos, seg = layout_row(ANCHOR)
    assert ids == [6, 23, 24, 25, 1, 5]
    assert seg == [CHOSEN] * 4 + [PROMPT] * 2
    model = tiny_model()
    batch = collate([PAIRS[0], ANCHOR], pad_id=0)
    assert batch["anchor"].tolist() == [False, True]
    with torch.no_grad():
        got = sequence_logps(model, batch)
    want = separate_logps(model, ANCHOR.prompt, ANCHOR.chosen)
    assert float(got.chosen[1]) == pytest.approx(want, abs=1e-4)
    assert float(got.rejected[1]) == 0.0
    assert got.chosen_token_anchor.tolist() == [False] * 3 + [True] * 4


def test_truncation_keeps_anchors_but_drops_a_pair_without_rejected_answer() -> None:
    assert truncate(ANCHOR, 5) == PairTokens([1, 5, 6], [23, 24], [], anchor=True)
    assert truncate(PairTokens([1, 2], [3], []), 8) is None


def _pair_and_anchor(anchor_kl=None):
    """One pair (1 chosen token) and one anchor (2 tokens), with reference log-probs."""
    t = torch.tensor
    policy = SequenceLogps(
        chosen=t([-1.0, -5.0]),
        rejected=t([-3.0, 0.0]),
        chosen_tokens=t([-1.0, -2.0, -4.0]),
        chosen_lengths=t([1, 2]),
        rejected_lengths=t([1, 0]),
        anchor=t([False, True]),
        chosen_token_anchor=t([False, True, True]),
        anchor_kl=anchor_kl,
    )
    return policy, (t([-2.0, -1.0]), t([-2.0, 0.0]))


def test_anchors_take_no_part_in_the_preference_term_or_its_statistics() -> None:
    policy, ref = _pair_and_anchor()
    only_pair, stats = preference_loss(LossConfig(beta=0.5), policy, *ref)
    assert float(only_pair) == pytest.approx(-math.log(1 / (1 + math.exp(-1.0))))
    assert stats["rewards/margins"].tolist() == [1.0]
    # nll: the SFT term averages every chosen token, anchors' included (mean NLL 7/3)
    nll, _ = preference_loss(LossConfig(beta=0.5, sft_weight=1.0), policy, *ref)
    assert float(nll - only_pair) == pytest.approx(7 / 3)


def test_kl_anchors_replace_their_nll_with_the_weighted_kl() -> None:
    policy, ref = _pair_and_anchor(anchor_kl=torch.tensor([0.2, 0.4]))
    base, _ = preference_loss(LossConfig(beta=0.5), policy, *ref)
    cfg = LossConfig(beta=0.5, sft_weight=1.0, anchor_loss="kl", anchor_weight=2.0)
    loss, _ = preference_loss(cfg, policy, *ref)
    assert float(loss - base) == pytest.approx(1.0 + 2.0 * 0.3)  # pair NLL 1.0, mean KL 0.3


def test_anchor_kl_is_zero_for_the_reference_itself_and_grows_when_the_policy_moves() -> None:
    model = tiny_model()
    pairs = [PAIRS[0], ANCHOR]
    batch = collate(pairs, pad_id=0)
    with torch.no_grad():
        tops = anchor_topk(policy_logits(model, batch), batch, k=5)  # of 50 tokens
    assert tops[0] is None and tops[1][0].shape == (4, 5)
    collator = PairCollator(0)
    refs = [Reference(0.0, 0.0, top) for top in tops]
    items = [{"pair": p, "ref": r} for p, r in zip(pairs, refs, strict=True)]
    with torch.no_grad():
        same = sequence_logps(model, collator(items)).anchor_kl
        assert same.shape == (4,) and float(same.abs().max()) < 1e-5
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
        moved = sequence_logps(model, collator(items)).anchor_kl
    assert float(moved.min()) > 1e-4


FOREIGN_ANCHOR = PairTokens([1, 5, 6], [23, 24, 25, 26], [40, 41, 42], anchor=True)
"""An anchor carrying a foreign answer (taught for another prompt) as its second branch."""


def test_a_foreign_answer_is_scored_under_the_anchor_prompt_and_kept_out_of_its_kl() -> None:
    model = tiny_model()
    batch = collate([PAIRS[0], FOREIGN_ANCHOR], pad_id=0)
    assert batch["anchor"].tolist() == [False, True]
    with torch.no_grad():
        logits = policy_logits(model, batch)
        got = sequence_logps(model, batch)
        tops = anchor_topk(logits, batch, k=5)
    assert float(got.rejected[1]) == pytest.approx(
        separate_logps(model, FOREIGN_ANCHOR.prompt, FOREIGN_ANCHOR.rejected), abs=1e-4
    )
    assert float(got.chosen[1]) == pytest.approx(
        separate_logps(model, FOREIGN_ANCHOR.prompt, FOREIGN_ANCHOR.chosen), abs=1e-4
    )
    # The KL watches the anchor's own answer only: 4 tokens, not the foreign 3.
    assert tops[1][0].shape == (4, 5)
    items = [
        {"pair": p, "ref": Reference(0.0, 0.0, t)}
        for p, t in zip([PAIRS[0], FOREIGN_ANCHOR], tops, strict=True)
    ]
    with torch.no_grad():
        assert sequence_logps(model, PairCollator(0)(items)).anchor_kl.shape == (4,)


def test_a_taught_answer_rising_under_an_anchor_prompt_is_penalised() -> None:
    t = torch.tensor
    policy = SequenceLogps(
        chosen=t([-1.0, -5.0]),
        rejected=t([-3.0, -4.0]),  # the anchor's foreign answer: 2 nats above its reference
        chosen_tokens=t([-1.0, -2.0, -3.0]),
        chosen_lengths=t([1, 2]),
        rejected_lengths=t([1, 3]),
        anchor=t([False, True]),
        chosen_token_anchor=t([False, True, True]),
    )
    ref = (t([-2.0, -5.0]), t([-2.0, -6.0]))
    base, stats = preference_loss(LossConfig(beta=0.5), policy, *ref)
    assert stats["rewards/margins"].tolist() == [1.0]  # the foreign anchor is no preference pair
    assert stats["anchors/foreign_logratio"].tolist() == [2.0]
    cfg = LossConfig(beta=0.5, anchor_negative_weight=3.0)
    loss, _ = preference_loss(cfg, policy, *ref)
    assert float(loss - base) == pytest.approx(3.0 * math.log1p(math.exp(0.5 * 2.0)))
