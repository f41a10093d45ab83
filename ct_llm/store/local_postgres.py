"""A throwaway PostgreSQL server on loopback: for the test suite and `ct-llm bench`, not production.

    with LocalPostgres() as pg:
        url = pg.create_database("ct_test_1")   # postgresql+psycopg://postgres@127.0.0.1:P/ct_test_1

`initdb` refuses to run as root, so when we are root the server runs as the `postgres` system
user. Its folder is a fresh temporary folder of its own (the `postgres` user must be able to
reach it, which a root-only parent folder would forbid) and is deleted on stop.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ct_llm.errors import CtLlmError
from ct_llm.lifecycle import Service
from ct_llm.net import free_port

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def postgres_binaries() -> dict[str, str] | None:
    """Paths of initdb, pg_ctl and psql, or None when PostgreSQL is not installed."""
    found = {name: shutil.which(name) for name in ("initdb", "pg_ctl", "psql")}
    if all(found.values()):
        return {k: str(v) for k, v in found.items()}
    return None


class LocalPostgres(Service):
    def __init__(self, port: int | None = None) -> None:
        bins = postgres_binaries()
        if bins is None:
            raise CtLlmError("PostgreSQL is not installed (initdb, pg_ctl and psql not on PATH)")
        self.bins = bins
        self.root = Path(tempfile.mkdtemp(prefix="ct-llm-pg-"))
        self.data = self.root / "data"
        self.port = port or free_port()
        self.as_root = os.geteuid() == 0
        self.started = False

    def _run(self, *cmd: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        full = ["runuser", "-u", "postgres", "--", *cmd] if self.as_root else list(cmd)
        res = subprocess.run(full, capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:
            raise CtLlmError(f"{Path(cmd[0]).name} failed: {(res.stderr or res.stdout).strip()}")
        return res

    def start(self) -> LocalPostgres:
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(self.bins["initdb"], "-D", str(self.data), "-A", "trust", "-U", "postgres")
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=on"
        log = str(self.root / "server.log")
        self._run(self.bins["pg_ctl"], "-D", str(self.data), "-o", opts, "-l", log, "-w", "start")
        self.started = True
        return self

    def stop(self) -> None:
        try:
            if self.started:
                self.started = False
                self._run(self.bins["pg_ctl"], "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database; returns its SQLAlchemy URL."""
        if not _NAME.match(name):
            raise CtLlmError(f"not a plain database name: {name!r}")
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        res = self._run(
            self.bins["psql"],
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-tAc",
            sql,
        )
        return res.stdout.strip()
