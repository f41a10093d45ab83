"""Evaluation: suites as data (`suite.py`), pure checks (`checks.py`), the runner against an
OpenAI-compatible server (`runner.py`), reports (`report.py`).

Only the light, pure parts are re-exported; the runner imports the HTTP client when used.
"""

from ct_llm.evals.checks import case_passes, run_check
from ct_llm.evals.suite import Case, Suite, load_suite, load_suites

__all__ = ["Case", "Suite", "case_passes", "load_suite", "load_suites", "run_check"]
