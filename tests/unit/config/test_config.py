from pathlib import Path

import pytest

from ct_llm.config import apply_overrides, load_config
from ct_llm.errors import ConfigError


def test_defaults_and_overrides(tmp_path: Path):
    cfg = tmp_path / "ct-llm.yaml"
    cfg.write_text("tenant: acme\nserving:\n  port: 9001\n")
    c = load_config(cfg, ["serving.max_lora_rank=32", "eval.suites=[a.yaml, b.yaml]"], environ={})
    assert c.tenant == "acme" and c.serving.port == 9001 and c.serving.max_lora_rank == 32
    assert c.eval.suites == ["a.yaml", "b.yaml"]


def test_environment_overrides_file(tmp_path: Path):
    cfg = tmp_path / "ct-llm.yaml"
    cfg.write_text("tenant: acme\n")
    c = load_config(cfg, environ={"CT_LLM__TENANT": "beta", "CT_LLM__API__PORT": "9100"})
    assert c.tenant == "beta" and c.api.port == 9100


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("serving.prot=1", "unknown key 'serving.prot'"),
        ("serving.port=abc", "'serving.port'"),
        ("bogus=1", "unknown key 'bogus'"),
        ("noequals", "not key=value"),
    ],
)
def test_bad_overrides_name_the_key(tmp_path: Path, override: str, message: str):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override], environ={})


def test_non_mapping_file_is_an_error(tmp_path: Path):
    cfg = tmp_path / "ct-llm.yaml"
    cfg.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(cfg, environ={})


def test_apply_overrides_nested_creates_sections():
    assert apply_overrides({}, ["a.b.c=3"]) == {"a": {"b": {"c": 3}}}


def test_train_section_sets_how_the_cycle_launches_training(tmp_path: Path):
    assert load_config(None, environ={}).train.nproc == 1  # one process unless asked
    cfg = tmp_path / "ct-llm.yaml"
    cfg.write_text("train:\n  nproc: 8\n  accelerate_config: recipes/accelerate/fsdp.yaml\n")
    c = load_config(cfg, environ={})
    assert c.train.nproc == 8 and c.train.accelerate_config == "recipes/accelerate/fsdp.yaml"
    assert load_config(None, environ={"CT_LLM__TRAIN__NPROC": "2"}).train.nproc == 2


def test_train_nproc_below_one_is_refused_with_the_key(tmp_path: Path):
    cfg = tmp_path / "ct-llm.yaml"
    cfg.write_text("train:\n  nproc: 0\n")
    with pytest.raises(ConfigError, match="'train.nproc': Input should be greater than or equal"):
        load_config(cfg, environ={})
