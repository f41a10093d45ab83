"""GPU tests: marked `gpu` and skipped, with the reason, where CUDA is absent (CI, laptops)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    has_cuda = _cuda()
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.gpu)
            if not has_cuda:
                item.add_marker(
                    pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda unavailable)")
                )
