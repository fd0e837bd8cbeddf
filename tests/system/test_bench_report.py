"""The benchmark's run plan and report: a failed request or a lost event is loud and fails the
run; the ratio is each phase against the bare handler at the same connections."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from bench.load import BackendRun, Phase, exactly_once
from bench.report import report
from bench.run import parse_args, plan
from bench.wrk import WrkResult


def machine() -> dict[str, Any]:
    return {"python": "3.11", "aiohttp": "3", "cpus": 2, "loadavg_before": [1.0, 1.0]} | {
        "data_dir": "bench-work",
        "data_fs": "ext4",
    }


def phase(rate: float, p99: float = 5.0, non_2xx: int = 0) -> Phase:
    result = WrkResult(int(rate * 3), 3.0, rate, 1.0, 2.0, 3.0, p99, 9.0, non_2xx, non_2xx, {})
    return Phase(result, 0.0, {"broker": 90.0})


def backend(
    c50: float, *, c10_p99: float = 5.0, non_2xx: int = 0, delivered: int = 10
) -> BackendRun:
    calls = [{"applied": True, "body": {"subscription_id": str(n)}} for n in range(delivered)]
    return BackendRun(
        name="sqlite-r1",
        store="sqlite",
        replicas=1,
        phases={"c50": phase(c50, non_2xx=non_2xx), "c10": phase(c50 / 2, p99=c10_p99)},
        end_to_end={"events_per_s": 1600.0},
        exactly_once=exactly_once(calls, accepted=10),
        database={},
    )


def run_report(run: BackendRun, capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], str]:
    args: argparse.Namespace = parse_args(["--quick"])
    baseline = {"c50": phase(10_000), "c10": phase(8_000)}
    document = report(args, machine(), baseline, [run], {"warmup": 1.0, "phase": 3.0})
    return document, capsys.readouterr().out


def test_clean_run_meets_targets_and_has_no_failures(capsys: pytest.CaptureFixture[str]) -> None:
    document, out = run_report(backend(2_000), capsys)
    assert document["failures"] == []
    assert document["backends"][0]["ratios"] == {"c50": 0.2, "c10": 0.125}
    assert document["backends"][0]["checks"] == {
        "ratio_c50": True,
        "p99_c10": True,
        "end_to_end": True,
        "exactly_once": True,
    }
    assert "FAILED" not in out
    assert "10 / 10, 0 repeated" in out


def test_non_2xx_answers_fail_the_run_loudly(capsys: pytest.CaptureFixture[str]) -> None:
    document, out = run_report(backend(2_000, non_2xx=3), capsys)
    assert document["failures"] == ["sqlite-r1 c50: 3 requests not answered 200"]
    assert "FAILED: sqlite-r1 c50: 3 requests not answered 200" in out


def test_missing_delivery_fails_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    document, _ = run_report(backend(2_000, delivered=9), capsys)
    assert document["backends"][0]["exactly_once"]["ok"] is False
    assert document["failures"][0].startswith("sqlite-r1: exactly once broken")


def test_slow_c10_and_low_ratio_are_misses_not_failures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    document, out = run_report(backend(1_000, c10_p99=25.0), capsys)
    assert document["backends"][0]["checks"]["ratio_c50"] is False
    assert document["backends"][0]["checks"]["p99_c10"] is False
    assert document["failures"] == []
    assert "ratio_c50 MISS" in out


def test_repeated_call_breaks_exactly_once() -> None:
    calls = [{"applied": True, "body": {"subscription_id": "1"}}] * 2
    found = exactly_once(calls, accepted=1)
    assert (found["delivered"], found["repeated"], found["ok"]) == (1, 1, False)


def test_plan_runs_sqlite_once_and_postgresql_per_replica_count() -> None:
    url = "postgresql://bench@127.0.0.1:19250/bench"
    assert plan(["sqlite", url], "1,2") == [("sqlite", 1), (url, 1), (url, 2)]


def test_plan_refuses_unknown_store_without_printing_its_password() -> None:
    with pytest.raises(SystemExit, match=r"mysql://u:\*\*\*@h/db"):
        plan(["mysql://u:secret@h/db"], "1")
    with pytest.raises(SystemExit, match="--replicas"):
        plan(["sqlite"], "0")
