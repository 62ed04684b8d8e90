"""Announcement policy in virtual time: schedule, gaps, improved-only, "you are next", rounding, caps."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccdaemon.acd.announce import (
    AnnounceContent,
    Announcement,
    AnnouncementConfig,
    AnnouncementKind,
    AnnouncementPolicy,
    CallerAnnouncements,
    WaitBound,
    WaitEstimate,
    round_wait,
)

K = AnnouncementKind


def caller(joined_at: float = 0.0, **overrides: object) -> CallerAnnouncements:
    return AnnouncementPolicy(AnnouncementConfig(**overrides)).start(joined_at)  # type: ignore[arg-type]


def test_first_announcement_after_first_after_then_every_frequency() -> None:
    c = caller(100.0, first_after=30, frequency=60, min_gap=20)
    assert c.next_deadline() == 130.0
    assert c.due(129.9, 3, 200) is None
    first = c.due(130.0, 3, 200)
    assert first == Announcement(K.POSITION_AND_WAIT, position=3, wait=WaitEstimate(4, WaitBound.ABOUT))
    assert c.next_deadline() == 190.0
    assert c.due(189.0, 2, 100) is None
    assert c.due(190.0, 2, 100) == Announcement(
        K.POSITION_AND_WAIT, position=2, wait=WaitEstimate(2, WaitBound.ABOUT)
    )
    assert c.announced == 2


def test_late_call_does_not_burst_catch_up_turns() -> None:
    c = caller(first_after=10, frequency=60)
    assert c.due(500.0, 5, 60) is not None  # the engine was late: one announcement, not eight
    assert c.due(500.0, 5, 60) is None
    assert c.next_deadline() == 560.0


def test_min_gap_holds_back_a_turn_when_frequency_is_shorter() -> None:
    c = caller(first_after=0, frequency=10, min_gap=45)
    assert c.due(0.0, 4, 30) is not None
    assert c.next_deadline() == 45.0  # max(turn at 10, gap open at 45)
    assert c.due(10.0, 4, 30) is None
    assert c.due(44.9, 4, 30) is None
    assert c.due(45.0, 4, 30) is not None


def test_frequency_zero_announces_once() -> None:
    c = caller(first_after=5, frequency=0)
    assert c.due(5.0, 3, 60) is not None
    assert c.next_deadline() is None
    assert c.due(10_000.0, 2, 60) is None


def test_disabled_never_announces() -> None:
    c = caller(enabled=False)
    assert c.next_deadline() is None
    assert c.due(1e6, 1, 10) is None
    assert c.due(1e6, 5, 10) is None


def test_only_if_improved_skips_turns_without_progress() -> None:
    c = caller(
        first_after=0, frequency=60, min_gap=0, only_if_improved=True, content=AnnounceContent.POSITION
    )
    assert c.due(0.0, 5, None) == Announcement(K.POSITION, position=5)  # the first always counts
    assert c.due(60.0, 5, None) is None  # same position: skipped, the turn moves on
    assert c.next_deadline() == 120.0
    assert c.due(120.0, 6, None) is None  # worse (a priority caller went ahead): skipped
    assert c.due(180.0, 4, None) == Announcement(K.POSITION, position=4)  # better than 5
    assert c.due(240.0, 4, None) is None


def test_without_improved_only_the_same_position_is_repeated() -> None:
    c = caller(first_after=0, frequency=60, content=AnnounceContent.POSITION)
    assert c.due(0.0, 5, None) == Announcement(K.POSITION, position=5)
    assert c.due(60.0, 5, None) == Announcement(K.POSITION, position=5)


def test_position_one_is_you_are_next() -> None:
    c = caller(first_after=0, frequency=60)
    assert c.due(0.0, 1, 20) == Announcement(K.NEXT, position=1)
    c2 = caller(first_after=0, frequency=60, announce_next=False)
    assert c2.due(0.0, 1, 20) == Announcement(
        K.POSITION_AND_WAIT, position=1, wait=WaitEstimate(1, WaitBound.LESS_THAN)
    )


def test_you_are_next_said_on_reaching_position_one_gap_permitting() -> None:
    c = caller(first_after=0, frequency=60, min_gap=20)
    assert c.due(0.0, 2, 90) is not None
    assert c.due(10.0, 1, 30) is None  # reached position 1, but within the gap
    assert c.next_deadline() == 20.0  # not the turn at 60
    assert c.due(20.0, 1, 30) == Announcement(K.NEXT, position=1)
    assert c.due(21.0, 1, 30) is None  # said once; the regular turn follows 60 s after it
    assert c.next_deadline() == 80.0
    assert c.due(80.0, 1, 30) == Announcement(K.NEXT, position=1)


def test_you_are_next_waits_for_the_turn_when_not_immediate() -> None:
    c = caller(first_after=0, frequency=60, min_gap=20, next_immediately=False)
    assert c.due(0.0, 2, 90) is not None
    assert c.due(30.0, 1, 30) is None
    assert c.next_deadline() == 60.0
    assert c.due(60.0, 1, 30) == Announcement(K.NEXT, position=1)


def test_you_are_next_immediately_waits_for_the_first_turn() -> None:
    c = caller(first_after=30, frequency=60, min_gap=0)
    assert c.due(5.0, 1, 10) is None  # joined at the head: no announcement before first_after
    assert c.next_deadline() == 30.0
    assert c.due(30.0, 1, 10) == Announcement(K.NEXT, position=1)


def test_you_are_next_with_improved_only_is_not_repeated() -> None:
    c = caller(first_after=0, frequency=60, min_gap=0, only_if_improved=True)
    assert c.due(0.0, 2, 60) is not None
    assert c.due(5.0, 1, 10) == Announcement(K.NEXT, position=1)
    assert c.due(65.0, 1, 10) is None


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (AnnounceContent.POSITION, Announcement(K.POSITION, position=4)),
        (AnnounceContent.WAIT, Announcement(K.WAIT, wait=WaitEstimate(3, WaitBound.ABOUT))),
        (
            AnnounceContent.BOTH,
            Announcement(K.POSITION_AND_WAIT, position=4, wait=WaitEstimate(3, WaitBound.ABOUT)),
        ),
    ],
)
def test_content_option(content: AnnounceContent, expected: Announcement) -> None:
    assert caller(first_after=0, content=content).due(0.0, 4, 150) == expected


def test_unknown_wait_is_left_out() -> None:
    assert caller(first_after=0).due(0.0, 4, None) == Announcement(K.POSITION, position=4)
    c = caller(first_after=0, frequency=60, content=AnnounceContent.WAIT)
    assert c.due(0.0, 4, None) is None  # nothing to say: the turn is skipped
    assert c.next_deadline() == 60.0
    assert c.due(60.0, 4, 120) == Announcement(K.WAIT, wait=WaitEstimate(2, WaitBound.ABOUT))


def test_position_beyond_spoken_range_is_not_said() -> None:
    expected = Announcement(K.WAIT, wait=WaitEstimate(10, WaitBound.ABOUT))
    assert caller(first_after=0).due(0.0, 100, 600) == expected
    assert caller(first_after=0, content=AnnounceContent.POSITION).due(0.0, 100, 600) is None


@pytest.mark.parametrize(
    ("seconds", "minutes", "bound"),
    [
        (0.0, 1, WaitBound.LESS_THAN),
        (59.9, 1, WaitBound.LESS_THAN),
        (60.0, 1, WaitBound.ABOUT),
        (60.001, 2, WaitBound.ABOUT),  # rounded up
        (61.0, 2, WaitBound.ABOUT),
        (179.0, 3, WaitBound.ABOUT),
        (180.0, 3, WaitBound.ABOUT),
        (0.1 * 1800, 3, WaitBound.ABOUT),  # 180.00000000000003: float noise does not add a minute
        (1800.0, 30, WaitBound.ABOUT),
        (1800.5, 30, WaitBound.MORE_THAN),
        (7200.0, 30, WaitBound.MORE_THAN),
        (math.inf, 30, WaitBound.MORE_THAN),
    ],
)
def test_round_wait_up_with_floor_and_cap(seconds: float, minutes: int, bound: WaitBound) -> None:
    assert round_wait(seconds, floor_minutes=1, cap_minutes=30) == WaitEstimate(minutes, bound)


def test_round_wait_other_floor_and_cap() -> None:
    assert round_wait(10.0, floor_minutes=0, cap_minutes=99) == WaitEstimate(1, WaitBound.ABOUT)
    assert round_wait(170.0, floor_minutes=3, cap_minutes=10) == WaitEstimate(3, WaitBound.LESS_THAN)
    assert round_wait(601.0, floor_minutes=3, cap_minutes=10) == WaitEstimate(10, WaitBound.MORE_THAN)
    assert round_wait(5940.0, floor_minutes=0, cap_minutes=99) == WaitEstimate(99, WaitBound.ABOUT)
    with pytest.raises(ValueError, match="NaN"):
        round_wait(math.nan)


def test_negative_wait_counts_as_zero() -> None:
    got = caller(first_after=0, content=AnnounceContent.WAIT).due(0.0, 3, -5.0)
    assert got == Announcement(K.WAIT, wait=WaitEstimate(1, WaitBound.LESS_THAN))


def test_announcement_minutes_property() -> None:
    assert Announcement(K.WAIT, wait=WaitEstimate(7, WaitBound.ABOUT)).minutes == 7
    assert Announcement(K.NEXT, position=1).minutes is None


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"first_after": -1}, "announcements.first_after"),
        ({"frequency": math.inf}, "announcements.frequency"),
        ({"min_gap": math.nan}, "announcements.min_gap"),
        ({"cap_minutes": 0}, "announcements.cap_minutes"),
        ({"cap_minutes": 100}, "announcements.cap_minutes"),
        ({"floor_minutes": 31}, "announcements.floor_minutes"),
        ({"floor_minutes": -1}, "announcements.floor_minutes"),
    ],
)
def test_bad_config_names_the_key(overrides: dict[str, float], key: str) -> None:
    with pytest.raises(ValueError, match=key):
        AnnouncementPolicy(AnnouncementConfig(**overrides))  # type: ignore[arg-type]


def test_bad_position_rejected() -> None:
    with pytest.raises(ValueError, match="position"):
        caller().due(0.0, 0, 10)


@settings(max_examples=200, deadline=None)
@given(
    first_after=st.integers(0, 120),
    frequency=st.integers(0, 120),
    min_gap=st.integers(0, 120),
    improved_only=st.booleans(),
    immediate=st.booleans(),
    steps=st.lists(st.tuples(st.integers(0, 90), st.integers(-1, 1)), min_size=1, max_size=40),
)
def test_invariants_over_random_runs(
    first_after: int,
    frequency: int,
    min_gap: int,
    improved_only: bool,
    immediate: bool,
    steps: list[tuple[int, int]],
) -> None:
    """Gaps are kept, nothing comes before first_after, improved-only positions strictly fall."""
    cfg = AnnouncementConfig(
        first_after=first_after,
        frequency=frequency,
        min_gap=min_gap,
        only_if_improved=improved_only,
        next_immediately=immediate,
    )
    c = AnnouncementPolicy(cfg).start(0.0)
    now, position = 0.0, 8
    said: list[tuple[float, int]] = []
    for advance, move in steps:
        deadline = c.next_deadline()
        # Ask at the deadline when it comes first (as the app's timer would), else at the next event.
        now = max(now, deadline) if deadline is not None and deadline <= now + advance else now + advance
        got = c.due(now, position, 120.0)
        if got is not None:
            said.append((now, position))
            assert (got.kind is K.NEXT) == (position == 1)
        position = max(1, position + move)
    if said:
        assert said[0][0] >= first_after
    for (t1, p1), (t2, p2) in itertools.pairwise(said):
        assert t2 - t1 >= min_gap
        if improved_only:
            assert p2 < p1
