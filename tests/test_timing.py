"""Chapter 1's timing helper: warm-up, turns and medians."""

from __future__ import annotations

import pytest

from scratchllm import timing


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """A fake perf_counter that advances by the durations works add."""
    now = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0])
    return now


def test_works_take_turns_after_one_warm_up_and_report_medians(
        clock) -> None:
    calls: list[str] = []
    durations = {"a": iter([9.0, 1.0, 5.0, 3.0]),
                 "b": iter([9.0, 2.0, 2.0, 8.0])}

    def work(name: str):
        def run() -> None:
            calls.append(name)
            clock[0] += next(durations[name])
        return run

    medians = timing.median_seconds({"a": work("a"), "b": work("b")},
                                    repeats=3)
    assert calls == ["a", "b", "a", "b", "a", "b", "a", "b"]
    assert medians == {"a": 3.0, "b": 2.0}


def test_without_warm_up_every_run_is_timed(clock) -> None:
    durations = iter([9.0, 1.0, 2.0])

    def run() -> None:
        clock[0] += next(durations)

    assert timing.median_seconds({"x": run}, repeats=3,
                                 warm_up=False) == {"x": 2.0}
