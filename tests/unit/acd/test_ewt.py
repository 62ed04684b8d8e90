"""The wait-time estimator (QL_m with small-staff residuals) and its online statistics."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccdaemon.acd import ewt
from ccdaemon.acd.model import AgentAnswered, AgentLogin, CallArrived, CallerHungUp

from .rig import Rig, queue


def ql_m(n: int, s: int, mu: float, theta: float) -> float:
    return sum(1.0 / (s * mu + i * theta) for i in range(n + 1))


@given(
    ahead=st.integers(0, 30),
    staffed=st.integers(4, 20),
    mean=st.floats(30.0, 900.0),
    theta=st.floats(0.0, 0.05),
)
def test_large_staff_is_exactly_ql_m(ahead: int, staffed: int, mean: float, theta: float) -> None:
    got = ewt.estimate_wait(
        ahead=ahead, idle=0, residuals=[mean] * staffed, mean_handle=mean, abandon_rate=theta
    )
    assert got == pytest.approx(ql_m(ahead, staffed, 1.0 / mean, theta))


@given(ahead=st.integers(0, 30), staffed=st.integers(4, 20), mean=st.floats(30.0, 900.0))
def test_without_abandonment_it_is_ql(ahead: int, staffed: int, mean: float) -> None:
    got = ewt.estimate_wait(
        ahead=ahead, idle=0, residuals=[0.0] * staffed, mean_handle=mean, abandon_rate=0.0
    )
    assert got == pytest.approx(ewt.ql(ahead=ahead, staffed=staffed, mean_handle=mean))


def test_small_staff_uses_the_residual_of_the_calls_in_progress() -> None:
    # one agent, 170 s into a 180 s mean call: the head caller waits the floor, not a whole mean
    residual = ewt.residual(elapsed=170.0, mean_handle=180.0)
    assert residual == 45.0  # max(10, 0.25 * 180)
    assert (
        ewt.estimate_wait(ahead=0, idle=0, residuals=[residual], mean_handle=180.0, abandon_rate=0.0) == 45.0
    )
    assert (
        ewt.estimate_wait(ahead=1, idle=0, residuals=[residual], mean_handle=180.0, abandon_rate=0.0) == 225.0
    )
    fresh = ewt.residual(elapsed=0.0, mean_handle=180.0)
    assert (
        ewt.estimate_wait(ahead=0, idle=0, residuals=[fresh, 20.0], mean_handle=180.0, abandon_rate=0.0)
        == 20.0
    )


def test_idle_agents_serve_the_first_callers_at_once() -> None:
    table = ewt.wait_table(count=4, idle=2, residuals=[100.0], mean_handle=120.0, abandon_rate=0.0)
    assert table[:2] == [0.0, 0.0]
    assert table[2] == 100.0  # the earliest busy agent (s = 3 is small)
    assert table[3] == pytest.approx(100.0 + 120.0 / 3)


def test_nobody_staffed_means_no_estimate() -> None:
    assert ewt.wait_table(count=3, idle=0, residuals=[], mean_handle=60.0, abandon_rate=0.1) == [None] * 3
    assert ewt.ql(ahead=2, staffed=0, mean_handle=60.0) is None


@given(
    count=st.integers(1, 40),
    idle=st.integers(0, 3),
    residuals=st.lists(st.floats(0.0, 600.0), max_size=6),
    theta=st.floats(0.0, 0.1),
)
def test_estimates_never_decrease_with_position(
    count: int, idle: int, residuals: list[float], theta: float
) -> None:
    table = ewt.wait_table(count=count, idle=idle, residuals=residuals, mean_handle=200.0, abandon_rate=theta)
    if idle + len(residuals) == 0:
        return
    values = [v for v in table if v is not None]
    assert len(values) == count
    assert all(math.isfinite(v) and v >= 0 for v in values)
    assert values == sorted(values)


def test_abandonment_shortens_the_wait_of_callers_far_back() -> None:
    patient = ewt.estimate_wait(ahead=10, idle=0, residuals=[90.0] * 5, mean_handle=90.0, abandon_rate=0.0)
    impatient = ewt.estimate_wait(ahead=10, idle=0, residuals=[90.0] * 5, mean_handle=90.0, abandon_rate=0.02)
    assert patient is not None and impatient is not None and impatient < patient


def test_stats_start_from_the_priors_and_follow_observations() -> None:
    stats = ewt.QueueStats(expected_handle=200.0, expected_patience=300.0, smoothing=0.5)
    assert stats.mean_handle == 200.0
    assert stats.abandon_rate == pytest.approx(1 / 300)
    stats.observe_handle(100.0)
    assert stats.mean_handle == 150.0
    stats.observe_wait(50.0, abandoned=True)  # A = 0.5 + 1, W = 150 + 50
    assert stats.abandon_rate == pytest.approx(1.5 / 200.0)
    stats.observe_wait(100.0, abandoned=False)  # censored: A = 0.75, W = 100 + 100
    assert stats.abandon_rate == pytest.approx(0.75 / 200.0)


def test_asterisk_baseline_matches_the_research_example() -> None:
    # "average 60 s, waited 600 s -> 8 minutes": the announced time grows once a caller waits long
    assert ewt.asterisk_announced_minutes(60, 600.0) == 8
    assert ewt.asterisk_holdtime(60, 100) == 70


def test_snapshot_gives_positions_and_estimates() -> None:
    rig = Rig(queue("q", "a", "b", wrap_up=0.0, expected_handle=120.0, expected_patience=1e9))
    assert rig.snap().queue("q").ewt_new_caller is None  # nobody logged in
    rig.do(AgentLogin("a"))
    assert rig.snap().queue("q").ewt_new_caller == 0.0  # an idle agent
    rig.do(CallArrived("c0", "q"))
    rig.do(AgentAnswered("a", "c0"))
    for n in range(1, 4):
        rig.do(CallArrived(f"c{n}", "q"), at=float(n))
    rig.now = 30.0
    snap = rig.snap().queue("q")
    assert [e.position for e in snap.entries] == [1, 2, 3]
    ewts = [e.ewt for e in snap.entries]
    # one staffed agent, 30 s into a 120 s call: 90 s, then a whole mean per caller ahead
    assert ewts == pytest.approx([90.0, 210.0, 330.0], rel=1e-6)
    assert snap.ewt_new_caller == pytest.approx(450.0, rel=1e-6)
    assert (snap.staffed, snap.available) == (1, 0)
    assert snap.longest_wait == 29.0
    rig.do(CallerHungUp("c1"))
    assert rig.snap().queue("q").abandon_rate > 1e-9  # the abandonment was counted
