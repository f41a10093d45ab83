"""Skip a test whose service (vLLM, PostgreSQL, the RAG judge's packages) is missing here, or
fail it where every service must be present: CI sets CT_LLM_REQUIRE_SERVICES=1 (.ci/run), so a
broken install fails the suite instead of turning dozens of tests into skips."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE_ENV = "CT_LLM_REQUIRE_SERVICES"


def missing_service(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: this machine must have it)", pytrace=False)
    pytest.skip(reason)
