"""Golden examples: operator-written training rows imported from JSONL
(`ct-llm curate --import golden.jsonl`) and mixed into every later dataset version.

One row per line, in the version's own columns; the kind follows from the keys:
`prompt` + `chosen` + `rejected` -> dpo; `prompt` + `completion` + `label` -> kto;
`prompt` + `completion` -> sft. `prompt` may be a plain string (one user turn) and `chosen`,
`rejected`, `completion` plain strings (one assistant turn). A file with any bad line is refused
whole, with every problem's line number, so nothing half-imports. Imports are scrubbed of PII
and stored content-addressed under `golden/<tenant>/`, so importing the same file twice is a
no-op.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ct_llm.atomic import atomic_write_text
from ct_llm.curate.scrub_rows import RowScrubber
from ct_llm.curate.validate import Validator
from ct_llm.errors import ConfigError

GoldenRow = tuple[str, dict[str, Any]]
_KIND_KEYS = (
    ("dpo", ("prompt", "chosen", "rejected")),
    ("kto", ("prompt", "completion", "label")),
    ("sft", ("prompt", "completion")),
)


def _messages(value: Any, role: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in value
    ):
        return [{"role": m["role"], "content": m["content"]} for m in value]
    raise ValueError(f"must be a string or a list of {{role, content}} messages, not {value!r:.60}")


def parse_row(obj: Any) -> GoldenRow:
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    match = next(((kind, keys) for kind, keys in _KIND_KEYS if all(k in obj for k in keys)), None)
    if match is None:
        raise ValueError(
            "needs prompt+chosen+rejected (dpo), prompt+completion+label (kto) or "
            "prompt+completion (sft)"
        )
    kind, keys = match
    extra = sorted(set(obj) - set(keys))
    if extra:
        raise ValueError(f"unknown key(s) {extra} for a {kind} row")
    row: dict[str, Any] = {}
    for key in keys:
        if key == "label":
            if not isinstance(obj[key], bool):
                raise ValueError("label must be true or false")
            row[key] = obj[key]
        else:
            try:
                row[key] = _messages(obj[key], "user" if key == "prompt" else "assistant")
            except ValueError as e:
                raise ValueError(f"{key} {e}") from None
    return kind, row


def parse_golden(path: Path, validator: Validator) -> list[GoldenRow]:
    if not path.is_file():
        raise ConfigError(f"golden file {path} not found")
    rows: list[GoldenRow] = []
    problems: list[str] = []
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            lines = f.read().splitlines()
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path} is not UTF-8: {e}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            kind, row = parse_row(json.loads(line))
            reason = validator.check(kind, row)
            if reason:
                raise ValueError(f"fails validation: {reason}")
            rows.append((kind, row))
        except (ValueError, json.JSONDecodeError) as e:
            problems.append(f"{path.name}:{n}: {e}")
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise ConfigError(f"{len(problems)} bad line(s), nothing imported:\n  {shown}{more}")
    if not rows:
        raise ConfigError(f"{path} holds no golden examples")
    return rows


def _dump(rows: list[GoldenRow]) -> str:
    return "".join(
        json.dumps({"kind": k, **r}, ensure_ascii=False, sort_keys=True) + "\n" for k, r in rows
    )


def import_golden(path: Path, tenant_dir: Path, validator: Validator) -> tuple[Path, int]:
    """Validate, scrub and store a golden file; returns where it is stored and its row count."""
    scrubber = RowScrubber()
    rows = [(kind, scrubber.row(row)) for kind, row in parse_golden(path, validator)]
    text = _dump(rows)
    dest = tenant_dir / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.jsonl"
    if not dest.exists():
        atomic_write_text(dest, text)
    return dest, len(rows)


def load_golden(tenant_dir: Path) -> list[tuple[str, list[GoldenRow]]]:
    """Every stored golden file of a tenant (name order) with its rows."""
    out = []
    for file in sorted(tenant_dir.glob("*.jsonl")) if tenant_dir.is_dir() else []:
        rows = []
        for line in file.read_text(encoding="utf-8").splitlines():
            obj = json.loads(line)
            rows.append((obj.pop("kind"), obj))
        out.append((file.name, rows))
    return out
