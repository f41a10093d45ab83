"""The triggers' and the scheduler's settings: a bad cron expression or time zone is an error
that names the key, from the file or the environment."""

from __future__ import annotations

import pytest

from ct_llm.config import load_config
from ct_llm.errors import ConfigError


def test_defaults_and_environment_overrides():
    cfg = load_config(None, environ={})
    assert cfg.triggers.schedule is None and cfg.triggers.drift.enabled
    assert not cfg.triggers.prompt_drift.enabled and cfg.schedule.cron == "*/15 * * * *"
    env = {
        "CT_LLM__TRIGGERS__SCHEDULE": "0 2 * * *",
        "CT_LLM__SCHEDULE__CRON": "*/5 * * * *",  # a leading '*' is a YAML alias: kept as text
        "CT_LLM__SCHEDULE__TENANTS": "[acme, globex]",
    }
    cfg = load_config(None, environ=env)
    assert cfg.triggers.schedule == "0 2 * * *" and cfg.schedule.cron == "*/5 * * * *"
    assert cfg.schedule.tenants == ["acme", "globex"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("triggers.schedule=0 25 * * *", "'triggers.schedule': Value error, '0 25 * * *' is not a"),
        ("schedule.cron=nightly", "'schedule.cron': Value error, 'nightly' is not a crontab"),
        ("triggers.timezone=Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("triggers.drift.metrics=[]", "thumbs_down_rate and/or mean_rating"),
        ("triggers.drift.alpha=2", "'triggers.drift.alpha'"),
        ("triggers.retry_backoff_s=0", "'triggers.retry_backoff_s'"),
        ("schedule.max_parallel=0", "'schedule.max_parallel'"),
        ("triggers.drift.window=24", "unknown key 'triggers.drift.window'"),
    ],
)
def test_bad_values_name_the_key(override: str, message: str):
    with pytest.raises(ConfigError, match="config: ") as info:
        load_config(None, [override], environ={})
    assert message in str(info.value)
