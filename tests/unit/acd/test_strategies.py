"""Ring strategies as pure functions over candidate views."""

from __future__ import annotations

import pytest

from ccdaemon.acd.model import RingStrategy
from ccdaemon.acd.strategies import Candidate, choose

R = RingStrategy
A = Candidate("a", order=0, idle_since=50.0, calls_taken=3)
B = Candidate("b", order=1, idle_since=10.0, calls_taken=5)
C = Candidate("c", order=2, idle_since=30.0, calls_taken=1)


@pytest.mark.parametrize("strategy", list(RingStrategy))
def test_no_candidates_no_choice(strategy: RingStrategy) -> None:
    assert choose(strategy, [], last_rung=None) == []


def test_longest_idle() -> None:
    assert choose(R.LONGEST_IDLE, [A, B, C], last_rung=None) == ["b"]


def test_longest_idle_tie_goes_to_member_order() -> None:
    tied = [Candidate("z", 5, 1.0, 0), Candidate("y", 2, 1.0, 0)]
    assert choose(R.LONGEST_IDLE, tied, last_rung=None) == ["y"]


def test_fewest_calls_then_longest_idle() -> None:
    assert choose(R.FEWEST_CALLS, [A, B, C], last_rung=None) == ["c"]
    tied = [Candidate("x", 0, 20.0, 1), Candidate("y", 1, 5.0, 1)]
    assert choose(R.FEWEST_CALLS, tied, last_rung=None) == ["y"]


def test_ring_all_in_member_order() -> None:
    assert choose(R.RING_ALL, [C, A, B], last_rung=None) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("last", "expected"),
    [(None, "a"), (0, "b"), (1, "c"), (2, "a"), (7, "a")],
)
def test_round_robin_follows_the_cursor_and_wraps(last: int | None, expected: str) -> None:
    assert choose(R.ROUND_ROBIN, [C, B, A], last_rung=last) == [expected]


def test_round_robin_skips_a_missing_member() -> None:
    assert choose(R.ROUND_ROBIN, [A, C], last_rung=0) == ["c"]
