"""An adapter is served (or evaluated) only if its files are those recorded when it was trained.

A real workspace and registry (SQLite) and real safetensors files; the vLLM replicas are a fake
client that records what it was asked to load, so a test can tell that nothing reached them.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from adapter_files import seal_adapter
from safetensors.numpy import save_file

from ct_llm.deploy.rollout import deploy_canary, promote, reconcile_serving
from ct_llm.errors import IntegrityError
from ct_llm.integrity import file_problems, recorded_files, verify_folder
from ct_llm.registry import registry
from ct_llm.store.db import session_scope
from ct_llm.workspace import Workspace

TENANT = "acme"
SERVER = "http://vllm.test:8000"
WEIGHTS = "adapter_model.safetensors"


class FakeVllm:
    """Stands in for VllmClient: every load is recorded; the adapter then answers a probe."""

    loads: ClassVar[list[tuple[str, str]]] = []
    loaded: ClassVar[dict[str, str]] = {}

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        self.base_url = base_url

    def load_adapter(self, name: str, path: str | Path) -> bool:
        self.loads.append((name, str(path)))
        self.loaded[name] = str(path)
        return True

    def list_models(self) -> list[str]:
        return ["base", *self.loaded]

    def loaded_adapters(self) -> dict[str, str]:
        return dict(self.loaded)

    def complete(self, model: str, prompt: str, max_tokens: int = 1) -> str:
        return "ok"

    def unload_adapter(self, name: str) -> None:
        self.loaded.pop(name, None)


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    FakeVllm.loads, FakeVllm.loaded = [], {}
    monkeypatch.setattr("ct_llm.deploy.hotswap.VllmClient", FakeVllm)
    monkeypatch.setattr("ct_llm.deploy.vllm_client.VllmClient", FakeVllm)  # the eval's load
    return Workspace.init(tmp_path / "ws")


def trained_adapter(ws: Workspace, number: int, state: str = "approved") -> tuple[str, Path]:
    """An adapter folder as `ct-llm train` writes it (real safetensors, config, manifest with
    the files' sha256), registered as training registers it (with the registry's copy)."""
    version = registry.adapter_version_id(TENANT, ws.config.adapter_name, number)
    folder = ws.adapters_dir / version
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 8}')
    rng = np.random.default_rng(number)
    save_file({"lora_A": rng.standard_normal((8, 64)).astype(np.float32)}, str(folder / WEIGHTS))
    seal_adapter(folder, tenant=TENANT)
    with session_scope(ws.database_url) as s:
        registry.register_adapter(
            s, TENANT, version, number, str(folder), None, None, {}, recorded_files(folder)
        )
        registry.set_state(s, TENANT, version, state)
    return version, folder


def flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # inside the last tensor's values: still a loadable file
    path.write_bytes(bytes(data))


def aliases(ws: Workspace) -> dict[str, str | None]:
    with session_scope(ws.database_url) as s:
        return {
            name: (a.model_version if (a := registry.get_alias(s, TENANT, name)) else None)
            for name in (registry.PRODUCTION, registry.CANARY)
        }


def test_an_untouched_adapter_is_deployed(ws: Workspace) -> None:
    version, folder = trained_adapter(ws, 1)
    deploy_canary(ws, TENANT, version, server_url=SERVER)
    assert FakeVllm.loads == [(version, str(folder.resolve()))]
    assert aliases(ws)["canary"] == version


def test_one_flipped_byte_in_the_weights_is_refused_and_nothing_is_loaded(
    ws: Workspace,
) -> None:
    version, folder = trained_adapter(ws, 1)
    recorded = recorded_files(folder)[WEIGHTS]
    flip_one_byte(folder / WEIGHTS)
    with pytest.raises(IntegrityError) as info:
        deploy_canary(ws, TENANT, version, server_url=SERVER)
    msg = str(info.value)
    assert f"{WEIGHTS} does not match" in msg
    assert f"sha256 {recorded[:12]}… recorded" in msg  # the expected prefix, then the actual
    assert "\n" not in msg  # the CLI prints it as one line
    assert FakeVllm.loads == []
    assert aliases(ws) == {"production": None, "canary": None}
    with session_scope(ws.database_url) as s:
        assert registry.get_version(s, TENANT, version).state == "approved"
        assert [e.outcome for e in registry.history(s, TENANT, version)][-1] == "failed"


@pytest.mark.parametrize(
    "extra",
    [
        "new_embeddings.safetensors",
        "more/adapter_model.safetensors",
        "tokenizer_config.json",  # vLLM reads a LoRA's own tokenizer (and chat template)
        "chat_template.jinja",
        "modeling_evil.py",
    ],
)
def test_an_unlisted_file_a_server_loads_is_refused(ws: Workspace, extra: str) -> None:
    # (An unlisted pickle, `.bin` / `.pt`, is refused before: see test_file_problems_...)
    version, folder = trained_adapter(ws, 1)
    (folder / extra).parent.mkdir(exist_ok=True)
    (folder / extra).write_bytes(b"\0" * 8)
    with pytest.raises(IntegrityError, match=f"{extra} is a file a server loads"):
        deploy_canary(ws, TENANT, version, server_url=SERVER)
    assert FakeVllm.loads == []


def test_other_unlisted_files_are_ignored(ws: Workspace) -> None:
    # Nothing loads them: vLLM reads adapter_config.json, the weights and a tokenizer only.
    version, folder = trained_adapter(ws, 1)
    (folder / "README.md").write_text("notes")
    (folder / "notes").mkdir()
    (folder / "notes" / "eval.txt").write_text("fine")
    deploy_canary(ws, TENANT, version, server_url=SERVER)
    assert [name for name, _ in FakeVllm.loads] == [version]


def test_weights_and_manifest_rewritten_together_are_caught_by_the_registry_copy(
    ws: Workspace,
) -> None:
    version, folder = trained_adapter(ws, 1)
    flip_one_byte(folder / WEIGHTS)
    seal_adapter(folder)  # a manifest that describes the new weights
    verify_folder(folder)  # consistent on its own...
    with pytest.raises(IntegrityError, match=f"rewritten after.*{WEIGHTS}"):
        deploy_canary(ws, TENANT, version, server_url=SERVER)  # ...but not what was trained
    assert FakeVllm.loads == []


def test_promote_and_a_replica_reload_check_the_files_again(ws: Workspace) -> None:
    version, folder = trained_adapter(ws, 1)
    deploy_canary(ws, TENANT, version, server_url=SERVER)
    (folder / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4}')  # valid, other
    with pytest.raises(IntegrityError, match="adapter_config.json does not match"):
        promote(ws, TENANT, server_url=SERVER)
    assert aliases(ws) == {"production": None, "canary": version}  # production did not move
    FakeVllm.loaded.clear()  # a restarted replica knows only the base model
    with pytest.raises(IntegrityError, match="adapter_config.json"):
        reconcile_serving(ws, server_url=SERVER)
    assert FakeVllm.loaded == {}


def test_the_eval_checks_the_candidate_it_loads(ws: Workspace) -> None:
    # What the gate approves must be what is served: the eval's load is checked the same way.
    from ct_llm.evals.candidate import load_into_server

    ws.base_model_dir.mkdir(parents=True)  # the eval requires an imported base model
    (ws.base_model_dir / "config.json").write_text("{}")
    version, folder = trained_adapter(ws, 1, state="candidate")
    flip_one_byte(folder / WEIGHTS)
    with pytest.raises(IntegrityError, match=WEIGHTS):
        load_into_server(ws, folder, f"eval-{version}", SERVER, recorded_files(folder))
    assert FakeVllm.loads == []


def test_an_adapter_without_recorded_hashes_is_refused(ws: Workspace) -> None:
    version, folder = trained_adapter(ws, 1)
    (folder / "manifest.json").unlink()
    with pytest.raises(IntegrityError, match="no readable manifest.json"):
        deploy_canary(ws, TENANT, version, server_url=SERVER)
    (folder / "manifest.json").write_text('{"version": "x"}')
    with pytest.raises(IntegrityError, match="records no file hashes"):
        verify_folder(folder)


def test_a_manifest_cannot_point_outside_its_folder(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"files": {"../../etc/passwd": "00"}}')
    with pytest.raises(IntegrityError, match="outside the folder"):
        verify_folder(tmp_path)


def test_file_problems_is_the_whole_rule() -> None:
    recorded = {"a.json": "1" * 64, "w.safetensors": "2" * 64}
    ok = dict(recorded)
    assert file_problems(recorded, ok, ["a.json", "w.safetensors", "README.md"]) == []
    problems = file_problems(
        recorded,
        {"a.json": None, "w.safetensors": "3" * 64},
        ["w.safetensors", "x/extra.SAFETENSORS", "state.pt", "log.txt"],
    )
    assert problems == [
        f"a.json is missing (sha256 {'1' * 12}… recorded)",
        f"w.safetensors does not match: sha256 {'2' * 12}… recorded, {'3' * 12}… found",
        "state.pt is a file a server loads, and the manifest does not list it",
        "x/extra.SAFETENSORS is a file a server loads, and the manifest does not list it",
    ]
