"""The runner's data side (no model): dataset reading, anchors, replay prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dataset_files import write_manifest, write_split

from ct_llm.errors import ConfigError, NoDataError
from ct_llm.train.data import dataset_info as _dataset_info
from ct_llm.train.data import load_pairs
from ct_llm.train.replay import anchor_pair, load_replay_prompts, thumbs_up_anchors
from ct_llm.train.runner import summarise as _summarise

PROMPT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Returns?"}]
PAIR = {
    "prompt": PROMPT,
    "chosen": [{"role": "assistant", "content": "60 days."}],
    "rejected": [{"role": "assistant", "content": "30 days."}],
}


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_load_pairs_keeps_only_what_dpo_reads(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ct_llm.curate.layout import SCHEMAS

    # The layout has no extra columns, but a reader must not pass any on to TRL.
    schema = SCHEMAS["dpo"].append(pa.field("event_id", pa.string()))
    path = tmp_path / "dpo" / "train.parquet"
    path.parent.mkdir()
    pq.write_table(pa.Table.from_pylist([{**PAIR, "event_id": "e1"}] * 2, schema=schema), path)
    pairs = load_pairs(tmp_path)
    assert len(pairs) == 2
    assert set(pairs[0]) == {"prompt", "chosen", "rejected"}
    assert pairs[0]["chosen"] == [{"role": "assistant", "content": "60 days."}]
    assert pairs[0]["prompt"] == PROMPT


def test_held_out_pairs_are_not_trained_on(tmp_path: Path) -> None:
    write_split(tmp_path, "dpo", "train", [PAIR])
    write_split(tmp_path, "dpo", "test", [PAIR, PAIR])
    assert load_pairs(tmp_path) == [PAIR]


def test_missing_or_empty_dataset_is_no_data(tmp_path: Path) -> None:
    with pytest.raises(NoDataError, match="does not exist; run `ct-llm curate`"):
        load_pairs(tmp_path)
    # A version whose dpo split has no rows has no dpo/train.parquet at all.
    write_manifest(tmp_path, "t-data-v1")
    write_split(tmp_path, "kto", "train", [])
    with pytest.raises(NoDataError, match="no preference pairs.*ct-llm curate"):
        load_pairs(tmp_path)
    write_split(tmp_path, "dpo", "train", [])
    with pytest.raises(NoDataError, match="no preference pairs.*ct-llm curate"):
        load_pairs(tmp_path)


def test_malformed_rows_name_the_file_and_row(tmp_path: Path) -> None:
    write_split(tmp_path, "dpo", "train", [PAIR, {**PAIR, "rejected": []}])
    with pytest.raises(ConfigError, match=r"dpo/train\.parquet row 2 lacks rejected"):
        load_pairs(tmp_path)
    (tmp_path / "dpo" / "train.parquet").write_text("not parquet\n")
    with pytest.raises(ConfigError, match=r"dpo/train\.parquet is not a readable Parquet file"):
        load_pairs(tmp_path)


def test_dataset_info_reads_the_manifest(tmp_path: Path) -> None:
    assert _dataset_info(tmp_path)["version"] is None
    files = {"dpo/train.parquet": "ab" * 32}
    write_manifest(tmp_path, "t-data-v3", files=files)
    info = _dataset_info(tmp_path)
    assert (info["version"], info["files"]) == ("t-data-v3", files)
    assert len(info["manifest_sha256"]) == 64


def test_thumbs_up_anchors_are_identical_pairs(tmp_path: Path) -> None:
    assert thumbs_up_anchors(tmp_path) == []
    answer = [{"role": "assistant", "content": "Sure!"}]
    ok = {"prompt": PROMPT, "completion": answer, "label": True}
    bad = {**ok, "completion": [{"role": "assistant", "content": "No."}], "label": False}
    write_split(tmp_path, "kto", "train", [ok, bad])
    anchors = thumbs_up_anchors(tmp_path)
    assert anchors == [anchor_pair(PROMPT, "Sure!")]
    # Identical chosen/rejected is what gives the preference term a zero gradient.
    assert anchors[0]["chosen"] == anchors[0]["rejected"]


def test_only_thumbs_up_rows_are_anchors_once_each(tmp_path: Path) -> None:
    kto = {"prompt": PROMPT, "completion": [{"role": "assistant", "content": "Sure!"}]}
    write_split(tmp_path, "kto", "train", [{**kto, "label": True}, {**kto, "label": True}])
    # Edited answers are what is being taught, not behaviour to keep: never anchors.
    write_split(tmp_path, "sft", "train", [kto])
    write_split(tmp_path, "kto", "test", [{**kto, "label": True}])  # held out: never an anchor
    assert thumbs_up_anchors(tmp_path) == [anchor_pair(PROMPT, "Sure!")]


def test_a_version_loads_with_datasets_as_train_and_test_splits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The layout's claim: `load_dataset("<version>/dpo")` gives `train` and `test` splits."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    version = tmp_path / "t-data-v1"
    write_manifest(version, "t-data-v1")
    write_split(version, "dpo", "train", [PAIR, PAIR])
    write_split(version, "dpo", "test", [PAIR])
    loaded = datasets.load_dataset(str(version / "dpo"), cache_dir=str(tmp_path / "hf-cache"))
    assert isinstance(loaded, datasets.DatasetDict)
    assert set(loaded) == {"train", "test"}
    assert (loaded["train"].num_rows, loaded["test"].num_rows) == (2, 1)
    assert loaded["train"].column_names == ["prompt", "chosen", "rejected"]
    assert loaded["test"][0] == PAIR


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
    m = _summarise(history, steps=2, wall=3.456)
    assert (m["final_loss"], m["rewards/margins"], m["rewards/accuracies"]) == (0.5, 3.0, 1.0)
    assert m["first_margins"] == 0.1
    assert m["train_loss"] == 1.25
    assert (m["steps"], m["wall_time_s"]) == (2, 3.46)
    assert m["peak_rss_mb"] > 0
