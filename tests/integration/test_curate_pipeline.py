"""Curation end to end on a real store with synthetic chatbot feedback: reproducibility (also
across SQLite and PostgreSQL), the poisoning guards, golden imports, and the schema migration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from ct_llm.bench.feedback_data import POISON, load_into
from ct_llm.config import WorkspaceConfig
from ct_llm.curate.dataset import curate_dataset
from ct_llm.curate.layout import KINDS, read_rows
from ct_llm.errors import ConfigError
from ct_llm.store.db import get_engine
from ct_llm.workspace import Workspace

pytestmark = pytest.mark.integration
TENANT = "bench"


def workspace(root: Path, database_url: str | None = None, **curate) -> Workspace:  # type: ignore[no-untyped-def]
    cfg = {"tenant": TENANT, "curate": curate}
    if database_url:
        cfg["database_url"] = database_url
    return Workspace.init(root, WorkspaceConfig.model_validate(cfg))


def all_rows(path: Path) -> list[dict]:
    return [r for k in KINDS for s in ("train", "test") for r in read_rows(path, k, s)]


def test_same_events_give_byte_identical_parquet_on_every_backend(tmp_path, database_url):
    """Two stores (SQLite twice, or PostgreSQL and SQLite) holding the same events: the same
    files, byte for byte, and the same hashes in the manifests."""
    runs = []
    for name, url in (("a", database_url), ("b", None)):
        ws = workspace(tmp_path / name, url)
        load_into(ws.database_url, 3000, seed=7)
        runs.append(curate_dataset(ws, TENANT))
    a, b = (r.manifest for r in runs)
    assert a["files"] == b["files"] and len(a["files"]) == 6
    for rel in a["files"]:
        assert (runs[0].path / rel).read_bytes() == (runs[1].path / rel).read_bytes()
    for key in ("counts", "drops", "pii_scrubbed", "user_cap", "quarantined", "rows_by_rule"):
        assert a[key] == b[key], key
    assert a["pii_scrubbed"]["EMAIL"] > 0  # the synthetic questions carry some


def test_a_version_loads_with_datasets_and_has_trl_columns(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    ws = workspace(tmp_path / "ws")
    load_into(ws.database_url, 1500, seed=1)
    res = curate_dataset(ws, TENANT)
    for kind, columns in (
        ("dpo", ["prompt", "chosen", "rejected"]),
        ("kto", ["prompt", "completion", "label"]),
        ("sft", ["prompt", "completion"]),
    ):
        dd = datasets.load_dataset(str(res.path / kind), cache_dir=str(tmp_path / "hf"))
        assert set(dd) == {"train", "test"}
        assert dd["train"].column_names == columns
        assert dd["train"].num_rows == res.manifest["counts"][kind]["train"]
    row = read_rows(res.path, "dpo")[0]
    assert row["prompt"][0]["role"] == "system" and row["prompt"][-1]["role"] == "user"


def poison_share(path: Path) -> float:
    rows = all_rows(path)
    poisoned = sum(
        any(m["content"] == POISON for m in r.get("chosen", r.get("completion", []))) for r in rows
    )
    return poisoned / len(rows)


def test_one_user_sending_30_percent_of_events_is_capped_at_2_percent(tmp_path):
    # Quarantine off, so the cap alone has to hold the line.
    ws = workspace(tmp_path / "ws", guards={"burst_min_events": 10**9, "burst_min_votes": 10**9})
    load_into(ws.database_url, 6000, seed=3, attacker_share=0.3)
    res = curate_dataset(ws, TENANT)
    share = poison_share(res.path)
    assert 0 < share <= 0.02
    cap = res.manifest["user_cap"]
    assert cap["rows_trimmed"] > 1000 and cap["largest_user_share"] <= 0.02
    assert res.manifest["drops"]["user_cap"] == cap["rows_trimmed"]


@pytest.mark.parametrize("share", [0.01, 0.05, 0.3])
def test_a_flooding_user_is_quarantined_and_listed_at_the_shares_that_poison(tmp_path, share):
    """Published attacks work with 0.5-5% of the preference data: at 1% of 20,000 events the
    attacker already sends ~25x what the median user does."""
    ws = workspace(tmp_path / "ws")
    load_into(ws.database_url, 20_000, seed=3, attacker_share=share)
    res = curate_dataset(ws, TENANT)
    assert poison_share(res.path) == 0
    (q,) = res.manifest["quarantined"]
    assert q["user"] == "attacker" and q["reason"].startswith("volume")
    with get_engine(ws.database_url).connect() as conn:
        sent = conn.execute(text("SELECT count(*) FROM feedback_events WHERE user_id = 'attacker'"))
        assert q["events"] == sent.scalar() > share * 20_000 * 0.5


def test_golden_examples_are_imported_once_and_replayed_into_later_versions(tmp_path):
    ws = workspace(tmp_path / "ws")
    golden = tmp_path / "golden.jsonl"
    golden.write_text(
        json.dumps({"prompt": "Opening hours?", "completion": "9 to 5, Monday to Friday."})
        + "\n"
        + json.dumps(
            {
                "prompt": [{"role": "user", "content": "Email me at ann@example.com"}],
                "chosen": "I can't send e-mails, but here is the answer.",
                "rejected": "Sure!",
            }
        )
        + "\n"
    )
    first = curate_dataset(ws, TENANT, import_path=golden)  # golden rows alone make a version
    assert first.manifest["rows_by_rule"] == {"golden": 2}
    assert first.manifest["counts"]["sft"]["train"] == 1
    (stored,) = (ws.golden_dir / TENANT).iterdir()
    assert "ann@example.com" not in stored.read_text() and "<EMAIL>" in stored.read_text()
    load_into(ws.database_url, 500, seed=2)
    second = curate_dataset(ws, TENANT, import_path=golden)  # the same file again: no new copy
    assert len(list((ws.golden_dir / TENANT).iterdir())) == 1
    assert second.manifest["golden"] == {stored.name: 2}
    sft = read_rows(second.path, "sft")
    assert any(r["completion"][0]["content"] == "9 to 5, Monday to Friday." for r in sft)


def test_a_bad_golden_file_is_refused_whole_with_line_numbers(tmp_path):
    ws = workspace(tmp_path / "ws")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"prompt": "ok", "completion": "fine"})
        + "\nnot json\n"
        + json.dumps({"prompt": "x", "chosen": "same", "rejected": "same"})
        + "\n"
        + json.dumps({"prompt": "x", "answer": "?"})
        + "\n"
    )
    with pytest.raises(ConfigError) as err:
        curate_dataset(ws, TENANT, import_path=bad)
    msg = str(err.value)
    assert "3 bad line(s), nothing imported" in msg
    assert "bad.jsonl:2" in msg and "bad.jsonl:3: fails validation: identical_pair" in msg
    assert "bad.jsonl:4" in msg
    assert not (ws.golden_dir / TENANT).exists()


def test_dry_run_prints_the_same_statistics_and_writes_nothing(tmp_path):
    ws = workspace(tmp_path / "ws")
    load_into(ws.database_url, 1000, seed=5)
    dry = curate_dataset(ws, TENANT, dry_run=True)
    assert not any(ws.datasets_dir.iterdir())
    real = curate_dataset(ws, TENANT)
    for key in ("counts", "drops", "pii_scrubbed", "files"):
        assert dry.manifest[key] == real.manifest[key], key


def test_migration_backfills_the_context_key_of_existing_rows(tmp_path):
    from alembic import command

    from ct_llm.feedback.context import context_hash
    from ct_llm.store.db import alembic_config, get_engine, migrate

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = get_engine(url)
    with engine.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    msgs = [{"role": "user", "content": "Hi"}]
    own = [{"role": "user", "content": "Own"}]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO responses (id, tenant, messages, response, model_version,"
                " latency_ms, created_at) VALUES ('r1', 't', :m, 'Hello', 'base', 1, '2026-01-01')"
            ),
            {"m": json.dumps(msgs)},
        )
        for seq, rid, m in ((1, "r1", None), (2, None, json.dumps(own))):
            conn.execute(
                text(
                    "INSERT INTO feedback_events (seq, tenant, event_id, payload_hash, kind, value,"
                    " response_id, messages, response, created_at, received_at) VALUES"
                    " (:s, 't', :e, 'h', 'thumbs', 'true', :r, :m, 'x', '2026-01-01', '2026-01-01')"
                ),
                {"s": seq, "e": f"e{seq}", "r": rid, "m": m},
            )
    migrate(url)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT context_hash FROM responses")).scalar() == context_hash(
            msgs
        )
        got = dict(conn.execute(text("SELECT seq, context_hash FROM feedback_events")).all())
    assert got == {1: context_hash(msgs), 2: context_hash(own)}


def test_events_stored_by_ingestion_are_grouped_with_their_answers(tmp_path, database_url):
    """The ingestion path (not the synthetic bulk loader): an event naming a logged response and
    an event carrying its own messages, on both backends."""
    from ct_llm.feedback.context import context_hash
    from ct_llm.feedback.ingest import ingest_events
    from ct_llm.store.db import session_scope
    from ct_llm.store.models import ChatResponse

    ws = workspace(tmp_path / "ws", database_url)
    msgs = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Returns?"}]
    with session_scope(ws.database_url) as s:
        for rid, answer in (("r1", "30 days."), ("r2", "Sixty days from delivery.")):
            s.add(
                ChatResponse(
                    id=rid,
                    tenant=TENANT,
                    conversation_id="c1",
                    messages=msgs,
                    response=answer,
                    model_version="base",
                    latency_ms=1.0,
                    context_hash=context_hash(msgs),
                )
            )
    events = [
        {"event_id": "e1", "kind": "thumbs", "value": False, "response_id": "r1", "user_id": "u1"},
        {"event_id": "e2", "kind": "thumbs", "value": True, "response_id": "r2", "user_id": "u2"},
        {"event_id": "e3", "kind": "edit", "value": "60 days.", "response_id": "r1",
         "user_id": "agent-1"},
        {"event_id": "e4", "kind": "rating", "value": 5, "user_id": "u3",
         "messages": [{"role": "user", "content": "Hours?"}], "response": "9 to 5."},
    ]  # fmt: skip
    with session_scope(ws.database_url) as s:
        assert ingest_events(s, TENANT, events).accepted == 4
    ws.config.curate.guards.max_user_share = 1.0
    m = curate_dataset(ws, TENANT).manifest
    assert m["rows_by_rule"] == {
        "edit_pair": 1,
        "sft_edit": 1,
        "sft_top_rated": 1,
        "thumbs_pair": 1,
    }
    assert "unknown_response" not in m["drops"]


def test_every_kind_is_what_trl_takes_as_conversational_data(tmp_path, base_model_dir):
    """TRL's own helpers (the ones its DPO/KTO/SFT trainers call) accept the rows as they are."""
    from transformers import AutoTokenizer
    from trl.data_utils import is_conversational, maybe_apply_chat_template

    tokenizer = AutoTokenizer.from_pretrained(base_model_dir)
    ws = workspace(tmp_path / "ws")
    load_into(ws.database_url, 1500, seed=4)
    res = curate_dataset(ws, TENANT)
    for kind, text_keys in (
        ("dpo", {"prompt", "chosen", "rejected"}),
        ("kto", {"prompt", "completion"}),
        ("sft", {"prompt", "completion"}),
    ):
        row = read_rows(res.path, kind)[0]
        assert is_conversational(row), kind
        templated = maybe_apply_chat_template(row, tokenizer)
        assert text_keys <= set(templated) and all(isinstance(templated[k], str) for k in text_keys)
        assert templated["prompt"].rstrip().endswith("assistant"), kind  # generation prompt added
