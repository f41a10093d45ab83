"""The CLI contract: every verb exists with --help, importing it stays light, and bad input ends
in one line on stderr with a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CONTRACT_VERBS = [
    "init",
    "model",
    "api",
    "curate",
    "train",
    "eval",
    "gate",
    "deploy",
    "promote",
    "rollback",
    "lineage",
    "cycle",
    "schedule",
    "status",
    "keys",
    "demo",
    "bench",
]


def ct_llm(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ct_llm.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={"COLUMNS": "200", "PATH": ""},
    )


def test_import_cli_does_not_import_torch():
    code = "import sys, ct_llm.cli; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_help_lists_every_contract_verb():
    res = ct_llm("--help")
    assert res.returncode == 0
    for verb in CONTRACT_VERBS:
        assert f" {verb} " in res.stdout, verb


@pytest.mark.parametrize("verb", CONTRACT_VERBS)
def test_every_verb_has_help(verb: str):
    res = ct_llm(verb, "--help")
    assert res.returncode == 0 and "Usage" in res.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["curate"],
        ["train"],
        ["eval", "--candidate", "x"],
        ["gate", "--candidate", "x"],
        ["deploy", "--version", "x"],
        ["promote"],
        ["rollback"],
        ["canary"],
        ["lineage", "x"],
        ["cycle"],
        ["keys", "create", "--tenant", "t"],
        ["api"],
        ["schedule", "--once"],
    ],
)
def test_missing_workspace_is_one_line_error(tmp_path: Path, args: list[str]):
    res = ct_llm(*args, "--workspace", str(tmp_path / "nope"))
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no ct-llm workspace"), res.stderr


@pytest.mark.parametrize("verb", ["cycle", "train"])
def test_cycle_and_train_take_the_training_launcher_options(verb: str):
    res = ct_llm(verb, "--help")
    assert res.returncode == 0
    assert "--nproc" in res.stdout and "--accelerate-config" in res.stdout


def test_unknown_recipe_key_and_bad_override(tmp_path: Path):
    ws = tmp_path / "ws"
    assert ct_llm("init", "--workspace", str(ws)).returncode == 0
    res = ct_llm("train", "--workspace", str(ws), "not-an-override")
    assert res.returncode != 0 and "key=value" in res.stderr and "Traceback" not in res.stderr


def test_bad_workspace_config_is_reported_with_the_key(tmp_path: Path):
    ws = tmp_path / "ws"
    assert ct_llm("init", "--workspace", str(ws)).returncode == 0
    (ws / "ct-llm.yaml").write_text("tenant: a\nservng: {}\n")
    res = ct_llm("status", "--workspace", str(ws))
    assert res.returncode != 0 and "unknown key 'servng'" in res.stderr
    assert "Traceback" not in res.stderr


def test_unknown_benchmark_and_role(tmp_path: Path):
    res = ct_llm("bench", "nope")
    assert res.returncode != 0 and "unknown benchmark" in res.stderr
    ws = tmp_path / "ws"
    ct_llm("init", "--workspace", str(ws))
    res = ct_llm("keys", "create", "--tenant", "t", "--role", "root", "--workspace", str(ws))
    assert res.returncode != 0 and "unknown role" in res.stderr


def test_curate_cli_imports_golden_rows_and_refuses_a_bad_file(tmp_path: Path):
    ws = tmp_path / "ws"
    assert ct_llm("init", "--workspace", str(ws)).returncode == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "hi"}\n')
    res = ct_llm("curate", "--workspace", str(ws), "--import", str(bad))
    assert res.returncode != 0 and "bad.jsonl:1" in res.stderr and "Traceback" not in res.stderr
    good = tmp_path / "golden.jsonl"
    good.write_text('{"prompt": "Opening hours?", "completion": "9 to 5."}\n')
    res = ct_llm("curate", "--workspace", str(ws), "--import", str(good), "--dry-run")
    assert res.returncode == 0 and "would write" in res.stdout and "sft 1+0" in res.stdout
    res = ct_llm("curate", "--workspace", str(ws), "--import", str(good), "--json")
    out = json.loads(res.stdout)
    assert out["version"] == "default-data-v1" and out["counts"]["sft"] == {"train": 1, "test": 0}


def test_canary_without_a_canary_is_nothing_to_do_for_cron(tmp_path: Path):
    ws = tmp_path / "ws"
    assert ct_llm("init", "--workspace", str(ws)).returncode == 0
    r = ct_llm("canary", "--apply", "--json", "--workspace", str(ws))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["canary"] is None and out["action"] == "none" and out["applied"] is None
