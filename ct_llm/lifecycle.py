"""`with` support for things that start and stop: the vLLM server, the API thread, a local
PostgreSQL. Subclasses define `start()` (returning self) and `stop()`; leaving the block stops."""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

S = TypeVar("S", bound="Service")


class Service:
    def start(self: S) -> S:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: S) -> S:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
