"""What a run killed while publishing an artifact leaves behind, and how the next run clears it.

Publishing is two steps that cannot share one transaction: the artifact's folder is renamed into
place (`atomic.atomic_directory`: temporary folder, fsync, rename), then its database row is
inserted. A `kill -9` (the OOM killer, a preempted node) can land anywhere:

- before the rename: a hidden working folder `.<name>.<random>.tmp` (or another `.<name>.*`)
  stays beside the artifacts; nothing refers to it, so `remove_temporaries` deletes it;
- between the rename and the row: a complete folder that no row knows, whose name the next run
  would choose again and collide with. Each area decides: adopt it (register it, once its
  manifest verifies: train/publish.py) or `quarantine` it (curate/dataset.py);
- after the row: nothing is left.

Callers hold the tenant's lock of the area, so nothing found here is being written right now,
and they pass a pattern that matches only that tenant's artifact names.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)

ORPHANS = ".orphans"


def version_names(prefix: str) -> re.Pattern[str]:
    """Matches the artifact names `<prefix>-v<N>` (e.g. `acme-data-v3`) and nothing else."""
    return re.compile(rf"{re.escape(prefix)}-v\d+")


def is_temporary(entry: str, names: re.Pattern[str]) -> bool:
    """A working folder of one of `names` (`.<name>.<anything>`), as atomic_directory and the
    trainer make them."""
    return re.match(rf"\.(?:{names.pattern})\.", entry) is not None


def remove_temporaries(area: Path, names: re.Pattern[str]) -> list[str]:
    """Delete the working folders (and files) a killed writer of `names` left in `area`."""
    removed = []
    for entry in sorted(area.iterdir()) if area.is_dir() else []:
        if is_temporary(entry.name, names):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry.name)
    if removed:
        log.warning("removed what interrupted writes left in %s: %s", area, ", ".join(removed))
    return removed


def unregistered(area: Path, names: re.Pattern[str], known: set[str]) -> list[Path]:
    """The artifact folders of `names` in `area` that no database row knows."""
    if not area.is_dir():
        return []
    return sorted(
        p for p in area.iterdir() if names.fullmatch(p.name) and p.name not in known and p.is_dir()
    )


def quarantine(folder: Path, area: Path, why: str) -> Path:
    """Move `folder` aside to `<area>/.orphans/<name>-<UTC time>` (kept for inspection, out of
    the way of the next version of that name) and log why."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    dest_dir = area / ORPHANS
    dest_dir.mkdir(exist_ok=True)
    dest = dest_dir / f"{folder.name}-{stamp}"
    n = 1
    while dest.exists():  # two in one second: keep both
        n += 1
        dest = dest_dir / f"{folder.name}-{stamp}-{n}"
    os.rename(folder, dest)
    log.warning("moved %s aside to %s: %s", folder, dest, why)
    return dest


def discard(folder: Path) -> None:
    """Delete a folder so that a kill midway leaves a temporary (`.<name>.discarded`, removed
    by the next `remove_temporaries`) and never a half-deleted folder under its own name."""
    if not folder.exists():
        return
    hidden = folder.with_name(f".{folder.name}.discarded")
    shutil.rmtree(hidden, ignore_errors=True)  # an earlier discard cut short
    os.rename(folder, hidden)
    shutil.rmtree(hidden, ignore_errors=True)
