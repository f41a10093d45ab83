"""The workspace: one folder holding config, database and every artifact of one deployment.

<root>/ct-llm.yaml  ct-llm.db  models/  datasets/<version>/  adapters/<version>/
       reports/<id>/  logs/
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ct_llm.atomic import atomic_write_text
from ct_llm.config import WorkspaceConfig, dump_config, load_config
from ct_llm.errors import WorkspaceError

CONFIG_FILE = "ct-llm.yaml"
DEFAULT_WORKSPACE = "ct-llm-workspace"
SUBDIRS = ("models", "datasets", "adapters", "reports", "logs")


@dataclass
class Workspace:
    root: Path
    config: WorkspaceConfig

    @classmethod
    def open(cls, root: Path | str, overrides: list[str] | None = None) -> Workspace:
        root = Path(root).resolve()
        cfg = root / CONFIG_FILE
        if not cfg.exists():
            raise WorkspaceError(
                f"no ct-llm workspace at {root} (no {CONFIG_FILE}); "
                f"create one with `ct-llm init --workspace {root}`"
            )
        return cls(root, load_config(cfg, overrides))

    @classmethod
    def init(cls, root: Path | str, config: WorkspaceConfig | None = None) -> Workspace:
        """Create the folder layout and config; an existing workspace is opened, not overwritten."""
        root = Path(root).resolve()
        if root.exists() and not root.is_dir():
            raise WorkspaceError(f"{root} exists and is not a folder")
        cfg = root / CONFIG_FILE
        if not cfg.exists():
            root.mkdir(parents=True, exist_ok=True)
            atomic_write_text(cfg, dump_config(config or WorkspaceConfig()))
        for sub in SUBDIRS:
            (root / sub).mkdir(exist_ok=True)
        ws = cls.open(root)
        from ct_llm.store.db import migrate

        migrate(ws.database_url)
        return ws

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def database_url(self) -> str:
        return self.config.database_url or f"sqlite:///{self.root / 'ct-llm.db'}"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def locks_dir(self) -> Path:
        """Job locks (one training per tenant at a time); see ct_llm/loop/locks.py."""
        return self.root / "locks"

    @property
    def checkpoints_dir(self) -> Path:
        """Running and interrupted training jobs, `<version>/` (see ct_llm/train/checkpoints.py)."""
        return self.root / "checkpoints"

    @property
    def golden_dir(self) -> Path:
        """Imported golden examples, `<tenant>/<sha>.jsonl`, mixed into every dataset version."""
        return self.root / "golden"

    @property
    def adapters_dir(self) -> Path:
        return self.root / "adapters"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def run_dir(self) -> Path:
        """Records of the servers this workspace started (see deploy/server_record.py)."""
        return self.root / "run"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def base_model_dir(self) -> Path:
        return self.models_dir / self.config.base_model

    def require_base_model(self) -> Path:
        path = self.base_model_dir
        if not (path / "config.json").exists():
            raise WorkspaceError(
                f"base model '{self.config.base_model}' is not imported into {self.models_dir}; "
                f"run `ct-llm model import --workspace {self.root}`"
            )
        return path
