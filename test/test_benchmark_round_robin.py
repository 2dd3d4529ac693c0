"""round_robin_ms: the turns the network benchmarks time their graphs in."""

from __future__ import annotations

from depth_estimation_ros.benchmarks.networks import round_robin_ms


def test_each_turn_runs_one_callable_untimed_once_then_timed_and_every_callable_gets_its_iterations():
    calls: list[str] = []
    runs = {name: (lambda name=name: calls.append(name)) for name in ("a", "b")}
    result = round_robin_ms(runs, warmup=1, iterations=7, turn_runs=3)
    # warm-up a b; turns of 1 untimed + 3 timed runs, the last turn cut to the 1 timed run still missing
    assert calls == ["a", "b"] + ["a"] * 4 + ["b"] * 4 + ["a"] * 4 + ["b"] * 4 + ["a"] * 2 + ["b"] * 2
    assert set(result) == {"a", "b"}
    assert all(0.0 <= median <= p90 for median, p90 in result.values())
