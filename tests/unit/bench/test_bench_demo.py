"""`ct-llm bench demo`: the aggregation and the bars on hand-made rows, and the runner with a fake
demo command (a tiny python script), never the real demo."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ct_llm.bench.demo import act_row, bars, run_demo_bench, run_row, summarize, table
from ct_llm.errors import CtLlmError


def act(
    number: int,
    *,
    promoted: bool = True,
    target: tuple[float, float] = (0.0, 0.9),
    contrast: tuple[float, float] | None = (0.0, 0.05),
    regression: tuple[float, float] = (0.9, 0.9),
    latency: bool | None = True,
    general: bool = True,
    outcome: str | None = None,
) -> dict[str, Any]:
    before = {"target_rate": target[0], "regression_pass_rate": regression[0], "poisoned_rate": 0}
    after = {"target_rate": target[1], "regression_pass_rate": regression[1], "poisoned_rate": 0}
    if contrast is not None:
        before["contrast_rate"], after["contrast_rate"] = contrast
    a: dict[str, Any] = {
        "act": number,
        "before": before,
        "after": after,
        "served_version_before": f"v{number - 1}" if number > 1 else "base",
        "served_version_after": f"v{number}" if promoted else ("base" if number == 1 else "v1"),
        "cycle_outcome": outcome or ("deployed" if promoted else "rejected"),
        "gate": "approve" if promoted else "reject",
        "candidate_eval": {"regression": {"candidate_pass_rate": 0.9, "baseline_pass_rate": 0.9}},
    }
    if latency is not None:
        a["gate_reasons"] = [
            {"rule": "regression:general", "passed": general, "detail": "0 lost of 166"},
            {"rule": "latency", "passed": latency, "detail": "p95 1.0 s <= 2.0 s"},
        ]
    return a


def ok_run(run: int, acts: list[dict[str, Any]], wall_s: float = 600.0) -> dict[str, Any]:
    return run_row(run, wall_s, {"acts": acts, "duration_s": wall_s - 10})


def failed_run(run: int) -> dict[str, Any]:
    return run_row(
        run, 42.0, None, exit_code=1, error="exit code 1: boom", stderr_tail=["x", "boom"]
    )


# ---------------------------------------------------------------- rows


def test_act_row_reads_the_figures_and_the_latency_rule() -> None:
    row = act_row(act(1, target=(0.2, 0.85), contrast=(0.1, 0.0)))
    assert row["promoted"] is True and row["gate"] == "approve"
    assert (row["target_rate_before"], row["target_rate_after"]) == (0.2, 0.85)
    assert (row["contrast_rate_before"], row["contrast_rate_after"]) == (0.1, 0.0)
    assert row["regression_pass_rate_after"] == 0.9
    assert row["latency_passed"] is True and "p95" in row["latency_detail"]


def test_act_row_optional_fields_are_none() -> None:
    row = act_row(act(1, contrast=None, latency=None))
    assert row["contrast_rate_before"] is None and row["contrast_rate_after"] is None
    assert row["latency_passed"] is None and row["latency_detail"] is None


def test_promoted_needs_a_new_version_and_a_deployed_cycle() -> None:
    assert not act_row(act(1, promoted=False))["promoted"]
    # deployed, but the gateway still serves the old version: not promoted
    same = act(1, outcome="deployed")
    same["served_version_after"] = same["served_version_before"]
    assert not act_row(same)["promoted"]
    # a new version served although the cycle did not deploy: not promoted either
    assert not act_row(act(1, outcome="failed"))["promoted"]


def test_failed_run_row() -> None:
    row = failed_run(3)
    assert row["ok"] is False and row["acts"] == [] and row["exit_code"] == 1
    assert row["error"] == "exit code 1: boom" and row["stderr_tail"] == ["x", "boom"]


# ---------------------------------------------------------------- summary and bars, one cycle


def test_summary_median_min_max_n_and_failures() -> None:
    rows = [
        ok_run(1, [act(1, target=(0.0, 0.8))], wall_s=500),
        ok_run(2, [act(1, target=(0.1, 1.0), contrast=None)], wall_s=700),
        ok_run(3, [act(1, target=(0.0, 0.9), promoted=False)], wall_s=600),
        failed_run(4),
    ]
    s = summarize(rows, 1)
    assert (s["runs"], s["completed"], s["failed"]) == (4, 3, 1)
    assert s["failures"] == [{"run": 4, "exit_code": 1, "error": "exit code 1: boom"}]
    (a1,) = s["acts"]
    assert a1["promoted"] == "2 of 4" and a1["promoted_runs"] == 2 and a1["runs"] == 3
    assert a1["figures"]["target_rate_after"] == {"median": 0.9, "min": 0.8, "max": 1.0, "n": 3}
    assert a1["figures"]["target_rate_before"]["median"] == 0.0
    # one run without contrast_rate: n counts only the runs that reported it
    assert a1["figures"]["contrast_rate_after"] == {
        "median": 0.05,
        "min": 0.05,
        "max": 0.05,
        "n": 2,
    }
    assert a1["gate"] == {"approve": 2, "reject": 1}
    assert a1["latency_rule"] == {"true": 3}
    assert s["duration_s"] == {"median": 590.0, "min": 490.0, "max": 690.0, "n": 3}
    assert s["wall_s"]["max"] == 700.0 and s["wall_s"]["n"] == 4


def test_one_cycle_bars_met() -> None:
    rows = [ok_run(i, [act(1, target=(0.0, 0.8 + i / 100))]) for i in range(1, 6)]
    b = bars(rows, 1)
    assert set(b) == {
        "every_run_promoted",
        "held_out_after_ge_0_8",
        "contrast_after_le_0_10",
        "general_not_significantly_worse",
        "run_le_720_s",
    }
    assert all(bar["met"] for bar in b.values())
    assert b["every_run_promoted"]["promoted"] == "5 of 5"
    assert b["held_out_after_ge_0_8"]["min"] == 0.81
    assert b["contrast_after_le_0_10"]["max"] == 0.05
    assert b["run_le_720_s"]["max_wall_s"] == 600.0


def test_one_cycle_bars_missed_each_for_its_reason() -> None:
    rows = [
        ok_run(1, [act(1, target=(0.0, 0.79))]),
        ok_run(2, [act(1, contrast=(0.0, 0.2))]),
        ok_run(3, [act(1)], wall_s=721),
        ok_run(4, [act(1, promoted=False, general=False)]),
    ]
    b = bars(rows, 1)
    assert not b["general_not_significantly_worse"]["met"]
    assert b["general_not_significantly_worse"]["per_run"] == [True, True, True, False]
    assert not b["held_out_after_ge_0_8"]["met"]
    assert b["held_out_after_ge_0_8"]["per_run"] == [0.79, 0.9, 0.9, 0.9]
    assert not b["contrast_after_le_0_10"]["met"] and b["contrast_after_le_0_10"]["max"] == 0.2
    assert not b["run_le_720_s"]["met"] and b["run_le_720_s"]["max_wall_s"] == 721
    assert not b["every_run_promoted"]["met"]
    assert b["every_run_promoted"]["promoted"] == "3 of 4"


def test_missing_contrast_misses_its_bar_and_a_failed_run_misses_all() -> None:
    b = bars([ok_run(1, [act(1, contrast=None)]), ok_run(2, [act(1)])], 1)
    assert not b["contrast_after_le_0_10"]["met"]
    assert b["contrast_after_le_0_10"]["missing"] == 1
    assert b["contrast_after_le_0_10"]["per_run"] == [None, 0.05]
    assert b["every_run_promoted"]["met"] and b["held_out_after_ge_0_8"]["met"]

    b = bars([ok_run(1, [act(1)]), failed_run(2)], 1)
    assert not any(bar["met"] for bar in b.values())
    assert b["every_run_promoted"]["failed_runs"] == [2]
    assert b["every_run_promoted"]["promoted"] == "1 of 2"
    assert not any(bar["met"] for bar in bars([], 1).values())  # no runs, nothing met


# ---------------------------------------------------------------- three cycles


def three_acts(*, act2: bool = True, act3_promoted: bool = False) -> list[dict[str, Any]]:
    a3 = act(3, promoted=act3_promoted)
    a3["served_version_before"] = "v2"
    a3["served_version_after"] = "v3" if act3_promoted else "v2"
    return [act(1), act(2, promoted=act2), a3]


def test_three_cycle_bars() -> None:
    rows = [ok_run(i, three_acts()) for i in range(1, 4)]
    b = bars(rows, 3)
    assert set(b) == {"acts_1_and_2_promote", "act_3_never_in_production"}
    assert all(bar["met"] for bar in b.values())
    assert b["acts_1_and_2_promote"]["act_2_promoted"] == "3 of 3"
    assert b["act_3_never_in_production"]["per_run"][0] == {"before": "v2", "after": "v2"}
    s = summarize(rows, 3)
    assert [a["promoted"] for a in s["acts"]] == ["3 of 3", "3 of 3", "0 of 3"]

    b = bars([*rows, ok_run(4, three_acts(act2=False))], 3)
    assert not b["acts_1_and_2_promote"]["met"] and b["act_3_never_in_production"]["met"]
    b = bars([*rows, ok_run(4, three_acts(act3_promoted=True))], 3)
    assert b["acts_1_and_2_promote"]["met"] and not b["act_3_never_in_production"]["met"]
    b = bars([*rows, failed_run(4)], 3)
    assert not any(bar["met"] for bar in b.values())
    b = bars([ok_run(1, three_acts()[:2])], 3)  # a run that stopped before act three
    assert not b["act_3_never_in_production"]["met"]


def test_bars_only_for_one_or_three_cycles() -> None:
    with pytest.raises(CtLlmError, match="1 and 3"):
        bars([], 2)


def test_table_mentions_the_figures_and_the_bars() -> None:
    rows = [ok_run(1, [act(1, contrast=None)]), failed_run(2)]
    result = {
        "settings": {"cycles": 1},
        "summary": summarize(rows, 1),
        "bars": bars(rows, 1),
    }
    text = table(result)
    assert "promoted 1 of 2" in text and "held-out target rate after" in text
    assert "contrast rate" not in text  # no run reported it
    assert "run 2 FAILED (exit 1): exit code 1: boom" in text
    assert "bar every_run_promoted: NOT met" in text


# ---------------------------------------------------------------- the runner, fake demo


FAKE_DEMO = textwrap.dedent(
    """
    import json, sys, time
    workspace, mode = sys.argv[1], sys.argv[2]
    print("importing the base model", file=sys.stderr, flush=True)
    print("[act 1      0s] one cycle", file=sys.stderr, flush=True)
    if mode == "fail":
        print("not json at all")
        print("Error: vLLM did not start", file=sys.stderr)
        sys.exit(1)
    if mode == "nojson":
        print("the demo printed no JSON")
        sys.exit(0)
    time.sleep(0.2)
    act = {
        "act": 1,
        "before": {"target_rate": 0.0, "regression_pass_rate": 0.9, "poisoned_rate": 0.0},
        "after": {"target_rate": 0.9, "regression_pass_rate": 0.9, "poisoned_rate": 0.0,
                  "contrast_rate": 0.0},
        "served_version_before": "base", "served_version_after": "v1",
        "cycle_outcome": "deployed", "gate": "approve", "candidate_eval": {},
    }
    print("some other stdout line")
    print(json.dumps({"acts": [act], "duration_s": 0.2, "workspace": workspace}))
    """
)


def fake_command(modes: list[str]) -> Any:
    calls: list[Path] = []

    def command(workspace: Path, cycles: int) -> list[str]:
        if workspace.name != "<workspace>":  # the settings' description calls it too
            calls.append(workspace)
        mode = modes[min(len(calls), len(modes)) - 1] if calls else "ok"
        return [sys.executable, "-c", FAKE_DEMO, str(workspace), mode]

    command.calls = calls  # type: ignore[attr-defined]
    return command


def test_runner_streams_records_failures_and_times(tmp_path: Path) -> None:
    lines: list[str] = []
    command = fake_command(["ok", "fail", "nojson"])
    result = run_demo_bench(lines.append, runs=3, cycles=1, out=tmp_path, command=command)

    ok, fail, nojson = result["runs"]
    assert ok["ok"] and ok["exit_code"] == 0 and ok["wall_s"] >= 0.2
    assert ok["duration_s"] == 0.2 and ok["acts"][0]["promoted"]
    assert ok["acts"][0]["contrast_rate_after"] == 0.0
    assert ok["acts"][0]["contrast_rate_before"] is None  # absent before: None, no crash
    assert not fail["ok"] and fail["exit_code"] == 1
    assert fail["error"] == "exit code 1: Error: vLLM did not start"
    assert fail["stderr_tail"][-1] == "Error: vLLM did not start"
    assert not nojson["ok"] and nojson["exit_code"] == 0
    assert nojson["error"] == "no JSON on the last stdout line"
    assert all(r["wall_s"] >= 0 for r in result["runs"])

    # stderr streamed with a run prefix, in order
    assert "[run 1/3] importing the base model" in lines
    assert "[run 2/3] Error: vLLM did not start" in lines
    assert lines.index("[run 1/3] [act 1      0s] one cycle") < lines.index(
        "[run 2/3] importing the base model"
    )
    assert any(ln.startswith("[run 2/3] FAILED") for ln in lines)
    assert "bench demo:" in lines[-1] and "bar every_run_promoted: NOT met" in lines[-1]

    # each run in its own folder under --out, removed without --keep
    calls = command.calls
    assert len(calls) == 3 and len({c.parent for c in calls}) == 3
    assert all(c.parent.parent == tmp_path for c in calls)
    assert list(tmp_path.iterdir()) == []
    assert all(r["workspace"] is None for r in result["runs"])

    s = result["summary"]
    assert (s["completed"], s["failed"]) == (1, 2)
    assert s["acts"][0]["promoted"] == "1 of 3"
    assert result["bars_met"] is False and not result["bars"]["every_run_promoted"]["met"]
    json.dumps(result)  # JSON-ready


def test_runner_keeps_workspaces_with_keep(tmp_path: Path) -> None:
    result = run_demo_bench(
        lambda _: None, runs=2, out=tmp_path / "out", keep=True, command=fake_command(["ok"])
    )
    assert all(r["ok"] for r in result["runs"])
    for r in result["runs"]:
        folder = Path(r["workspace"]).parent
        assert folder.parent == tmp_path / "out"
        assert "importing the base model" in (folder / "demo.log").read_text()
    assert result["bars"]["every_run_promoted"]["met"]
    assert result["bars"]["contrast_after_le_0_10"]["met"]


def test_runner_default_parent_is_removed(tmp_path: Path) -> None:
    result = run_demo_bench(lambda _: None, runs=1, command=fake_command(["ok"]))
    assert result["runs"][0]["ok"] and not Path(result["settings"]["out"]).exists()


def test_runner_timeout_is_a_failed_run(tmp_path: Path) -> None:
    def slow(workspace: Path, cycles: int) -> list[str]:
        return [
            sys.executable,
            "-c",
            "import time, sys; print('hi', file=sys.stderr); time.sleep(30)",
        ]

    result = run_demo_bench(lambda _: None, runs=1, out=tmp_path, command=slow, timeout_s=1)
    (row,) = result["runs"]
    assert not row["ok"] and row["error"] == "timed out after 1 s" and row["wall_s"] < 20


def test_runner_refuses_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(CtLlmError, match="1 and 3"):
        run_demo_bench(lambda _: None, runs=1, cycles=2, out=tmp_path)
    with pytest.raises(CtLlmError, match="at least one run"):
        run_demo_bench(lambda _: None, runs=0, out=tmp_path)
