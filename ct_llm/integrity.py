"""An artifact folder checked against the sha256 of its files recorded when it was written.

Adapters and dataset versions carry a `manifest.json` whose `files` maps each file (a path
relative to the folder) to its sha256. Before an adapter is handed to vLLM (deploy, promote,
rollback, a replica's reload, an eval) and before a killed run's folder is adopted, every listed
file is hashed again and compared; a weight file the manifest does not list is refused too, since
it is what a tampered folder would add (vLLM reads `adapter_model.safetensors`, or a pickle in its
place), and so are a tokenizer, a chat template or Python code (vLLM reads a LoRA's own
tokenizer from its folder). Other unlisted files (a README, an editor's backup) are ignored:
nothing loads them.

The comparison is a pure function (`file_problems`); reading and hashing are at the edge
(`verify_folder`), one streaming pass over each listed file per call.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

from ct_llm.atomic import sha256_file
from ct_llm.errors import IntegrityError

MANIFEST_FILE = "manifest.json"
# Formats that are unpickled on load and so can run arbitrary code.
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib"})
# Loaded as weights by vLLM, PEFT or torch: present but unlisted means not what was written.
WEIGHT_SUFFIXES = PICKLE_SUFFIXES | {".safetensors"}
# Read from an adapter folder by vLLM (a LoRA's own tokenizer and chat template) or run by
# transformers (remote code): unlisted, they would change what is served after the gate.
LOADED_NAMES = (
    "tokenizer",
    "special_tokens_map",
    "added_tokens",
    "chat_template",
    "vocab.",
    "merges.txt",
    "generation_config",
)


def _loaded(name: str) -> bool:
    path = PurePosixPath(name)
    return path.suffix.lower() in WEIGHT_SUFFIXES | {".py"} or path.name.lower().startswith(
        LOADED_NAMES
    )


_PREFIX = 12  # hex digits of a hash shown in messages: enough to tell two apart


def _short(digest: str | None) -> str:
    return f"{digest[:_PREFIX]}…" if digest else "nothing"


def _safe_name(name: str) -> bool:
    """A manifest entry must name a file inside the folder: a hostile manifest listing
    `../../etc/shadow` would otherwise make us read (and report on) files elsewhere."""
    path = PurePosixPath(name)
    return bool(name) and not path.is_absolute() and ".." not in path.parts


def file_problems(
    recorded: Mapping[str, str], found: Mapping[str, str | None], present: Iterable[str]
) -> list[str]:
    """What is wrong with a folder (pure). `recorded`: the manifest's name -> sha256; `found`:
    the sha256 of each recorded name as it is now (None: missing); `present`: every file in the
    folder. Empty when it verifies."""
    problems = []
    for name, expected in sorted(recorded.items()):
        actual = found.get(name)
        if actual is None:
            problems.append(f"{name} is missing (sha256 {_short(expected)} recorded)")
        elif actual != expected:
            problems.append(
                f"{name} does not match: sha256 {_short(expected)} recorded, {_short(actual)} found"
            )
    for name in sorted(set(present) - set(recorded)):
        if _loaded(name):
            problems.append(f"{name} is a file a server loads, and the manifest does not list it")
    return problems


def recorded_files(folder: Path) -> dict[str, str]:
    """The `files` map of the folder's manifest.json; IntegrityError when it has none."""
    path = folder / MANIFEST_FILE
    try:
        files = json.loads(path.read_text()).get("files")
    except (OSError, ValueError, AttributeError) as e:
        raise IntegrityError(
            f"{folder} has no readable {MANIFEST_FILE} ({e}), so its files cannot be checked "
            "against the hashes recorded when it was written; only artifacts ct-llm wrote are used"
        ) from None
    if not isinstance(files, dict) or not files:
        raise IntegrityError(
            f"{path} records no file hashes (`files`), so {folder.name} cannot be verified; it "
            "was written by an older ct-llm or by hand: train a new version"
        )
    bad = [n for n, h in files.items() if not (isinstance(h, str) and _safe_name(str(n)))]
    if bad:
        raise IntegrityError(f"{path} lists files outside the folder or without a hash: {bad}")
    return {str(n): h for n, h in files.items()}


def verify_folder(folder: Path, pinned: Mapping[str, str] | None = None) -> dict[str, str]:
    """Hash every file the manifest lists and compare; refuse unlisted weight files. `pinned`
    is the copy of the hashes the registry kept when the artifact was registered: a manifest
    rewritten together with the weights it describes is caught by it. Returns the verified
    hashes; raises IntegrityError naming each problem."""
    recorded = recorded_files(folder)
    if pinned is not None and dict(pinned) != recorded:
        differ = [
            f"{n}: {_short(pinned.get(n))} registered, {_short(recorded.get(n))} in the manifest"
            for n in sorted(set(pinned) | set(recorded))
            if pinned.get(n) != recorded.get(n)
        ]
        raise IntegrityError(
            f"{folder / MANIFEST_FILE} was rewritten after {folder.name} was registered "
            f"({'; '.join(differ)}); it is refused (nothing was loaded): train a new version"
        )
    found = {n: sha256_file(folder / n) if (folder / n).is_file() else None for n in recorded}
    present = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    problems = file_problems(recorded, found, present)
    if problems:
        raise IntegrityError(
            f"{folder} is not what was written: {'; '.join(problems)}. It was changed after it "
            "was written and is refused (nothing was loaded); restore it or train a new version"
        )
    return recorded
