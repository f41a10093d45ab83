"""The runner's data side (no model): dataset reading, anchors, replay prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ct_llm.errors import ConfigError, NoDataError
from ct_llm.train.dpo import _summarise, load_pairs
from ct_llm.train.replay import anchor_pair, load_replay_prompts, thumbs_up_anchors

PROMPT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Returns?"}]


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_load_pairs_keeps_only_what_dpo_reads(tmp_path: Path) -> None:
    row = {
        "prompt": PROMPT,
        "chosen": [{"role": "assistant", "content": "60 days."}],
        "rejected": [{"role": "assistant", "content": "30 days."}],
        "event_id": "e1",
        "conversation_id": "c1",
    }
    _jsonl(tmp_path / "dpo_train.jsonl", [row, row])
    pairs = load_pairs(tmp_path)
    assert len(pairs) == 2
    assert set(pairs[0]) == {"prompt", "chosen", "rejected"}
    assert pairs[0]["chosen"][0]["content"] == "60 days."


def test_missing_or_empty_dataset_is_no_data(tmp_path: Path) -> None:
    with pytest.raises(NoDataError, match="ct-llm curate"):
        load_pairs(tmp_path)
    (tmp_path / "dpo_train.jsonl").write_text("\n")
    with pytest.raises(NoDataError, match="no preference pairs"):
        load_pairs(tmp_path)


def test_malformed_rows_name_the_line(tmp_path: Path) -> None:
    (tmp_path / "dpo_train.jsonl").write_text('{"prompt": [1], "chosen": [1]}\n')
    with pytest.raises(ConfigError, match=r"dpo_train.jsonl:1 lacks rejected"):
        load_pairs(tmp_path)
    (tmp_path / "dpo_train.jsonl").write_text("not json\n")
    with pytest.raises(ConfigError, match=r":1 is not valid JSON"):
        load_pairs(tmp_path)


def test_thumbs_up_anchors_are_identical_pairs(tmp_path: Path) -> None:
    assert thumbs_up_anchors(tmp_path) == []
    answer = [{"role": "assistant", "content": "Sure!"}]
    ok = {"prompt": PROMPT, "completion": answer, "label": True}
    bad = {**ok, "label": False}
    _jsonl(tmp_path / "kto_train.jsonl", [ok, bad])
    anchors = thumbs_up_anchors(tmp_path)
    assert anchors == [anchor_pair(PROMPT, "Sure!")]
    # Identical chosen/rejected is what gives the preference term a zero gradient.
    assert anchors[0]["chosen"] == anchors[0]["rejected"]


def test_replay_prompts_file(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    _jsonl(path, [{"prompt": "Hi"}, {"messages": PROMPT}])
    assert load_replay_prompts(str(path)) == [[{"role": "user", "content": "Hi"}], PROMPT]
    _jsonl(path, [{"text": "Hi"}])
    with pytest.raises(ConfigError, match="p.jsonl:1"):
        load_replay_prompts(str(path))
    with pytest.raises(ConfigError, match="not found"):
        load_replay_prompts(str(tmp_path / "missing.jsonl"))


def test_summary_takes_last_logged_metrics() -> None:
    history = [
        {"loss": 2.0, "rewards/margins": 0.1, "rewards/accuracies": 0.5, "step": 1},
        {"loss": 0.5, "rewards/margins": 3.0, "rewards/accuracies": 1.0, "step": 2},
        {"train_loss": 1.25, "step": 2},
    ]
    m = _summarise(history, steps=2, wall=3.456, n_pairs=8)
    assert (m["final_loss"], m["rewards/margins"], m["rewards/accuracies"]) == (0.5, 3.0, 1.0)
    assert m["first_margins"] == 0.1
    assert m["train_loss"] == 1.25
    assert (m["steps"], m["train_pairs"], m["wall_time_s"]) == (2, 8, 3.46)
    assert m["peak_rss_mb"] > 0
