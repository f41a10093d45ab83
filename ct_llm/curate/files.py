"""Parquet writing for a dataset version: a staging file per kind while the stream runs, then
the final per-split files once the per-user cap is known.

Everything is written in stream order with fixed batch boundaries, so the same events give
byte-identical files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ct_llm.curate.layout import KINDS, MESSAGE, MESSAGES, SCHEMAS, split_path

# Staging rows carry who made them (for the cap; null = exempt) and their conversation (for the
# split; null = training only). Neither reaches the final files.
USER, CONV = "_user", "_conv"
_WRITE_OPTIONS = {"compression": "zstd"}


def _messages_array(column: list[list[dict[str, str]]]) -> pa.Array:
    """A list<struct<role, content>> column built from flat arrays: several times faster than
    letting Arrow walk the dicts (`Table.from_pylist`), which was the writer's main cost."""
    offsets, roles, contents = [0], [], []
    for messages in column:
        for m in messages:
            roles.append(m["role"])
            contents.append(m["content"])
        offsets.append(len(roles))
    structs = pa.StructArray.from_arrays(
        [pa.array(roles, pa.string()), pa.array(contents, pa.string())], fields=list(MESSAGE)
    )
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), structs, type=MESSAGES)


def to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows (dicts with the schema's columns) as a table of that schema."""
    arrays = []
    for f in schema:
        values = [r[f.name] for r in rows]
        arrays.append(_messages_array(values) if f.type == MESSAGES else pa.array(values, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _staging_schema(kind: str) -> pa.Schema:
    return SCHEMAS[kind].append(pa.field(USER, pa.string())).append(pa.field(CONV, pa.string()))


class LazyWriter:
    """A Parquet file that exists only once a row is written (empty splits have no file)."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path, self.schema, self.rows = path, schema, 0
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.path, self.schema, **_WRITE_OPTIONS)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class Staging:
    """Rows that survived rules, validation, scrubbing and dedup, per kind, in stream order."""

    def __init__(self, root: Path, batch_rows: int = 4096) -> None:
        self.root = root
        self.batch_rows = batch_rows
        self._pending: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
        self._writers = {
            k: LazyWriter(root / f"{k}.staging.parquet", _staging_schema(k)) for k in KINDS
        }

    def add(self, kind: str, row: dict[str, Any], user: str | None, conv: str | None) -> None:
        pending = self._pending[kind]
        pending.append({**row, USER: user, CONV: conv})
        if len(pending) >= self.batch_rows:
            self._flush(kind)

    def _flush(self, kind: str) -> None:
        writer = self._writers[kind]
        writer.write(to_table(self._pending[kind], writer.schema))
        self._pending[kind] = []

    def close(self) -> None:
        for kind in KINDS:
            self._flush(kind)
            self._writers[kind].close()

    def batches(self, kind: str) -> Iterator[pa.RecordBatch]:
        path = self._writers[kind].path
        if path.is_file():
            yield from pq.ParquetFile(path).iter_batches(batch_size=self.batch_rows)

    def remove(self) -> None:
        for writer in self._writers.values():
            writer.path.unlink(missing_ok=True)


class VersionWriter:
    """The final `<kind>/<split>.parquet` files of a version."""

    def __init__(self, root: Path) -> None:
        self._writers = {
            (k, s): LazyWriter(split_path(root, k, s), SCHEMAS[k])
            for k in KINDS
            for s in ("train", "test")
        }

    def write(self, kind: str, split: str, table: pa.Table) -> None:
        self._writers[(kind, split)].write(table.select(SCHEMAS[kind].names))

    def write_rows(self, kind: str, split: str, rows: list[dict[str, Any]]) -> None:
        self.write(kind, split, to_table(rows, SCHEMAS[kind]))

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {k: {} for k in KINDS}
        for (k, s), w in self._writers.items():
            out[k][s] = w.rows
        return out

    def close(self) -> None:
        for w in self._writers.values():
            w.close()
