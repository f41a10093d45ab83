"""`ct-llm bench demo`: the demo N times in a row on this machine, and the spread of its results.

Each run is its own process (`python -m ct_llm.cli demo --workspace W --fresh --cycles C
--json`) in a fresh workspace, so runs share no state: no vLLM server, no database, no adapter.
Its stderr is passed on line by line with a run prefix; the last line of its stdout is the
demo's JSON. A run that exits non-zero or prints no JSON is recorded as failed, with the tail
of its stderr; the benchmark goes on with the next run.

From each run's JSON, per act: promoted (the version served after the act differs from the one
before and the cycle deployed), the held-out target rate, the contrast rate (answers to other
policy questions that state the taught window; None when the demo does not report it), the
general regression pass rate and the poison rate, before and after; the gate's decision and
the latency rule's and the general suite's paired rule's verdicts when the gate reports its
reasons. The summary gives, per act and
figure, the median, min, max and n over the runs; the bars say whether every run met them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ct_llm.errors import CtLlmError

Log = Callable[[str], None]
Command = Callable[[Path, int], Sequence[str]]

CYCLES = (1, 3)
RATES = ("target_rate", "contrast_rate", "regression_pass_rate", "poisoned_rate")
FIGURES = tuple(f"{rate}_{when}" for rate in RATES for when in ("before", "after"))
BARS = {"held_out_after_min": 0.8, "contrast_after_max": 0.10, "run_max_s": 720.0}
STDERR_TAIL_LINES = 30


def demo_command(workspace: Path, cycles: int) -> list[str]:
    """The demo as a separate process; its last stdout line is the JSON."""
    return [
        sys.executable,
        "-m",
        "ct_llm.cli",
        "demo",
        "--workspace",
        str(workspace),
        "--fresh",
        "--cycles",
        str(cycles),
        "--json",
    ]


# ---------------------------------------------------------------- one run: rows (pure)


def _rate(d: Any, key: str) -> float | None:
    v = d.get(key) if isinstance(d, dict) else None
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


# The gate's paired rule on the general regression suite (gate/suite_rules.py names rules
# `<kind>:<suite>`): passed means "not significantly worse than production".
GENERAL_RULE = "regression:general"


def _reason(act: dict[str, Any], rule: str) -> dict[str, Any] | None:
    for reason in act.get("gate_reasons") or []:
        if isinstance(reason, dict) and reason.get("rule") == rule:
            return {"passed": reason.get("passed"), "detail": reason.get("detail")}
    return None


def act_row(act: dict[str, Any]) -> dict[str, Any]:
    """The figures of one act of the demo's JSON. Pure; missing figures are None."""
    before, after = act.get("before") or {}, act.get("after") or {}
    served_before, served_after = act.get("served_version_before"), act.get("served_version_after")
    row: dict[str, Any] = {
        "act": act.get("act"),
        "promoted": served_after != served_before and act.get("cycle_outcome") == "deployed",
        "cycle_outcome": act.get("cycle_outcome"),
        "gate": act.get("gate"),
        "served_version_before": served_before,
        "served_version_after": served_after,
    }
    for rate in RATES:
        row[f"{rate}_before"] = _rate(before, rate)
        row[f"{rate}_after"] = _rate(after, rate)
    for key, rule in (("latency", "latency"), ("general", GENERAL_RULE)):
        reason = _reason(act, rule)
        row[f"{key}_passed"] = None if reason is None else reason["passed"]
        row[f"{key}_detail"] = None if reason is None else reason["detail"]
    row["candidate_eval"] = act.get("candidate_eval")
    return row


def run_row(
    run: int,
    wall_s: float,
    demo: dict[str, Any] | None,
    *,
    exit_code: int | None = 0,
    error: str | None = None,
    stderr_tail: list[str] | None = None,
    workspace: str | None = None,
) -> dict[str, Any]:
    """One run's row: its acts' figures from the demo JSON, or why it failed. Pure."""
    row: dict[str, Any] = {
        "run": run,
        "ok": demo is not None and error is None,
        "exit_code": exit_code,
        "wall_s": round(wall_s, 1),
        "duration_s": None,
        "workspace": workspace,
        "acts": [],
    }
    if not row["ok"]:
        row["error"] = error or "no JSON on stdout"
        row["stderr_tail"] = stderr_tail or []
        return row
    assert demo is not None
    row["duration_s"] = _rate(demo, "duration_s")
    row["acts"] = [act_row(a) for a in demo.get("acts") or []]
    return row


# ---------------------------------------------------------------- the distribution (pure)


def _stats(values: list[float | None], digits: int = 3) -> dict[str, Any]:
    got = [v for v in values if v is not None]
    if not got:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {
        "median": round(statistics.median(got), digits),
        "min": round(min(got), digits),
        "max": round(max(got), digits),
        "n": len(got),
    }


def _act(row: dict[str, Any], number: int) -> dict[str, Any] | None:
    return next((a for a in row["acts"] if a.get("act") == number), None)


def _counts(values: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        key = "absent" if v is None else str(v).lower()
        out[key] = out.get(key, 0) + 1
    return out


def summarize(rows: list[dict[str, Any]], cycles: int) -> dict[str, Any]:
    """Per act and figure the median, min, max and n over the runs that completed; runs
    promoted per act; the failed runs; durations. Pure."""
    ok = [r for r in rows if r["ok"]]
    acts = []
    for number in range(1, cycles + 1):
        got = [a for a in (_act(r, number) for r in ok) if a is not None]
        promoted = sum(bool(a["promoted"]) for a in got)
        acts.append(
            {
                "act": number,
                "runs": len(got),
                "promoted": f"{promoted} of {len(rows)}",
                "promoted_runs": promoted,
                "gate": _counts([a["gate"] for a in got]),
                "latency_rule": _counts([a["latency_passed"] for a in got]),
                "figures": {f: _stats([a[f] for a in got]) for f in FIGURES},
            }
        )
    return {
        "runs": len(rows),
        "completed": len(ok),
        "failed": len(rows) - len(ok),
        "failures": [
            {"run": r["run"], "exit_code": r["exit_code"], "error": r["error"]}
            for r in rows
            if not r["ok"]
        ],
        "duration_s": _stats([r["duration_s"] for r in ok], 1),
        "wall_s": _stats([r["wall_s"] for r in rows], 1),
        "acts": acts,
    }


def _every(rows: list[dict[str, Any]], test: Callable[[dict[str, Any]], bool]) -> bool:
    """True when there were runs, none failed, and `test` holds for each."""
    return bool(rows) and all(r["ok"] and test(r) for r in rows)


def _figure(row: dict[str, Any], number: int, key: str) -> Any:
    act = _act(row, number) if row["ok"] else None
    return None if act is None else act[key]


def bars(rows: list[dict[str, Any]], cycles: int) -> dict[str, dict[str, Any]]:
    """Whether every run met each bar, with the figures behind it. A failed run, or a run
    without the figure (say no contrast_rate), misses the bar. Pure."""
    if cycles not in CYCLES:
        raise CtLlmError(f"bench demo has bars for --cycles 1 and 3, not {cycles}")
    failed = [r["run"] for r in rows if not r["ok"]]

    def per_run(number: int, key: str) -> list[Any]:
        return [_figure(r, number, key) for r in rows]

    if cycles == 1:
        promoted = per_run(1, "promoted")
        held_out = per_run(1, "target_rate_after")
        contrast = per_run(1, "contrast_rate_after")
        walls = [r["wall_s"] for r in rows]
        lo, hi = BARS["held_out_after_min"], BARS["contrast_after_max"]
        return {
            "every_run_promoted": {
                "met": _every(rows, lambda r: bool(_figure(r, 1, "promoted"))),
                "promoted": f"{sum(bool(p) for p in promoted)} of {len(rows)}",
                "per_run": promoted,
                "failed_runs": failed,
            },
            "held_out_after_ge_0_8": {
                "met": _every(rows, lambda r: (_figure(r, 1, "target_rate_after") or 0) >= lo),
                "bar": lo,
                "min": _stats(held_out)["min"],
                "per_run": held_out,
                "failed_runs": failed,
            },
            "contrast_after_le_0_10": {
                "met": _every(
                    rows,
                    lambda r: (
                        _figure(r, 1, "contrast_rate_after") is not None
                        and _figure(r, 1, "contrast_rate_after") <= hi
                    ),
                ),
                "bar": hi,
                "max": _stats(contrast)["max"],
                "per_run": contrast,
                "missing": sum(
                    r["ok"] and _figure(r, 1, "contrast_rate_after") is None for r in rows
                ),
                "failed_runs": failed,
            },
            "general_not_significantly_worse": {
                "met": _every(rows, lambda r: _figure(r, 1, "general_passed") is True),
                "rule": GENERAL_RULE,
                "per_run": per_run(1, "general_passed"),
                "details": per_run(1, "general_detail"),
                "failed_runs": failed,
            },
            "run_le_720_s": {
                "met": _every(rows, lambda r: r["wall_s"] <= BARS["run_max_s"]),
                "bar_s": BARS["run_max_s"],
                "max_wall_s": max(walls) if walls else None,
                "per_run_wall_s": walls,
                "per_run_duration_s": [r["duration_s"] for r in rows],
                "failed_runs": failed,
            },
        }
    act_1, act_2 = per_run(1, "promoted"), per_run(2, "promoted")
    act_3 = [_act(r, 3) if r["ok"] else None for r in rows]
    return {
        "acts_1_and_2_promote": {
            "met": _every(
                rows, lambda r: bool(_figure(r, 1, "promoted")) and bool(_figure(r, 2, "promoted"))
            ),
            "act_1_promoted": f"{sum(bool(p) for p in act_1)} of {len(rows)}",
            "act_2_promoted": f"{sum(bool(p) for p in act_2)} of {len(rows)}",
            "per_run": [[p1, p2] for p1, p2 in zip(act_1, act_2, strict=True)],
            "failed_runs": failed,
        },
        "act_3_never_in_production": {
            "met": _every(
                rows,
                lambda r: (
                    _act(r, 3) is not None
                    and _figure(r, 3, "served_version_after")
                    == _figure(r, 3, "served_version_before")
                ),
            ),
            "per_run": [
                None
                if a is None
                else {"before": a["served_version_before"], "after": a["served_version_after"]}
                for a in act_3
            ],
            "act_3_cycle_outcome": [None if a is None else a["cycle_outcome"] for a in act_3],
            "failed_runs": failed,
        },
    }


# ---------------------------------------------------------------- the table


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


def table(result: dict[str, Any]) -> str:
    """The summary as text, for the progress log."""
    s = result["summary"]
    lines = [
        f"\nbench demo: {s['runs']} run(s), --cycles {result['settings']['cycles']}: "
        f"{s['completed']} completed, {s['failed']} failed",
        f"{'':36} {'median':>7} {'min':>7} {'max':>7} {'n':>4}",
    ]
    names = {
        "target_rate": "held-out target rate",
        "contrast_rate": "contrast rate",
        "regression_pass_rate": "general regression pass rate",
        "poisoned_rate": "'no returns' (poison)",
    }
    for act in s["acts"]:
        lines.append(
            f"act {act['act']}: promoted {act['promoted']}; gate {act['gate'] or '-'}; "
            f"latency rule {act['latency_rule'] or '-'}"
        )
        for figure, st in act["figures"].items():
            rate, when = figure.rsplit("_", 1)
            if st["n"] == 0 and rate in ("contrast_rate", "poisoned_rate"):
                continue
            lines.append(
                f"  {names[rate] + ' ' + when:34} {_pct(st['median']):>7} {_pct(st['min']):>7} "
                f"{_pct(st['max']):>7} {st['n']:>4}"
            )
    d, w = s["duration_s"], s["wall_s"]
    if d["n"]:
        lines.append(f"demo duration: median {d['median']} s, {d['min']}-{d['max']} s")
    if w["n"]:
        lines.append(f"wall time per run: median {w['median']} s, {w['min']}-{w['max']} s")
    for f in s["failures"]:
        lines.append(f"run {f['run']} FAILED (exit {f['exit_code']}): {f['error']}")
    for name, bar in result["bars"].items():
        lines.append(f"bar {name}: {'met' if bar['met'] else 'NOT met'}")
    return "\n".join(lines)


# ---------------------------------------------------------------- running


def _last_json(stdout: str) -> dict[str, Any] | None:
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    if not lines:
        return None
    try:
        got = json.loads(lines[-1])
    except json.JSONDecodeError:
        return None
    return got if isinstance(got, dict) else None


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """The run's process group (the demo and the vLLM server it started)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def run_one(
    run: int,
    argv: Sequence[str],
    log: Log,
    prefix: str,
    *,
    timeout_s: float | None = None,
    log_file: Path | None = None,
) -> dict[str, Any]:
    """Run one demo process: its stderr into `log` line by line with `prefix`, its stdout
    kept for the JSON. Returns the run's row; a failure is a row, never an exception."""
    tail: list[str] = []
    stdout: list[str] = []
    timed_out = threading.Event()
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group: a timeout ends vLLM too
        )
    except OSError as e:
        return run_row(run, time.monotonic() - t0, None, exit_code=None, error=f"not started: {e}")
    assert proc.stdout is not None and proc.stderr is not None
    reader = threading.Thread(target=lambda: stdout.append(proc.stdout.read()), daemon=True)
    reader.start()
    timer = None
    if timeout_s is not None:

        def expire() -> None:
            timed_out.set()
            _kill_group(proc)

        timer = threading.Timer(timeout_s, expire)
        timer.daemon = True
        timer.start()
    sink = log_file.open("w") if log_file is not None else None
    try:
        for line in proc.stderr:
            text = line.rstrip("\n")
            log(f"{prefix} {text}" if text else prefix)
            tail = [*tail[-(STDERR_TAIL_LINES - 1) :], text]
            if sink is not None:
                sink.write(line)
        code = proc.wait()
    except BaseException:
        # Ctrl-C reaches only the benchmark (the run has its own session): end the run too.
        _kill_group(proc)
        proc.wait()
        raise
    finally:
        if timer is not None:
            timer.cancel()
        if sink is not None:
            sink.close()
    reader.join(timeout=10)
    wall = time.monotonic() - t0
    demo = _last_json("".join(stdout))
    error = None
    if timed_out.is_set():
        error = f"timed out after {timeout_s:.0f} s"
    elif code != 0:
        last = next((ln for ln in reversed(tail) if ln.strip()), "")
        error = f"exit code {code}" + (f": {last.strip()}" if last else "")
    elif demo is None:
        error = "no JSON on the last stdout line"
    return run_row(
        run, wall, None if error else demo, exit_code=code, error=error, stderr_tail=tail
    )


def _describe(row: dict[str, Any]) -> str:
    if not row["ok"]:
        return f"FAILED after {row['wall_s']:.0f} s: {row['error']}"
    acts = "; ".join(
        f"act {a['act']}: {'promoted' if a['promoted'] else 'not promoted'} "
        f"(gate {a['gate']}), held-out {_pct(a['target_rate_before'])} -> "
        f"{_pct(a['target_rate_after'])}"
        for a in row["acts"]
    )
    return f"done in {row['wall_s']:.0f} s: {acts}"


def run_demo_bench(
    log: Log,
    runs: int = 5,
    cycles: int = 1,
    out: Path | None = None,
    keep: bool = False,
    *,
    command: Command = demo_command,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """The demo `runs` times, one after the other, each in a new folder under `out` (default:
    a new temporary folder); a run's folder (its workspace and `demo.log`) is kept only with
    `keep`. `command(workspace, cycles)` is the argv of one run."""
    if runs < 1:
        raise CtLlmError("bench demo needs at least one run")
    if cycles not in CYCLES:
        raise CtLlmError(f"bench demo has bars for --cycles 1 and 3, not {cycles}")
    own_parent = out is None
    parent = Path(tempfile.mkdtemp(prefix="ct-llm-bench-demo-")) if out is None else out
    parent.mkdir(parents=True, exist_ok=True)
    log(f"bench demo: {runs} run(s) of `ct-llm demo --cycles {cycles}` under {parent}")
    rows = []
    try:
        for i in range(1, runs + 1):
            folder = Path(tempfile.mkdtemp(prefix=f"run-{i:02d}-", dir=parent))
            workspace = folder / "workspace"
            prefix = f"[run {i}/{runs}]"
            log(f"{prefix} starting in {workspace}")
            row = run_one(
                i,
                command(workspace, cycles),
                log,
                prefix,
                timeout_s=timeout_s,
                log_file=folder / "demo.log",
            )
            if keep:
                row["workspace"] = str(workspace)
            else:
                shutil.rmtree(folder, ignore_errors=True)
            log(f"{prefix} {_describe(row)}")
            rows.append(row)
    finally:
        if own_parent and not keep:
            shutil.rmtree(parent, ignore_errors=True)
    result: dict[str, Any] = {
        "benchmark": "demo",
        "settings": {
            "runs": runs,
            "cycles": cycles,
            "out": str(parent),
            "keep": keep,
            "timeout_s": timeout_s,
            "command": " ".join(command(Path("<workspace>"), cycles)),
        },
        "runs": rows,
        "summary": summarize(rows, cycles),
        "bars": bars(rows, cycles),
    }
    result["bars_met"] = all(b["met"] for b in result["bars"].values())
    log(table(result))
    return result
