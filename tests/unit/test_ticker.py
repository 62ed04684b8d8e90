"""TickScheduler: batching per millisecond slot, never early, lateness tracking (fake loop, virtual time)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import pytest

from ccdaemon.media.ticker import RESOLUTION, TickScheduler


class FakeLoop:
    def __init__(self) -> None:
        self.now = 1000.0
        self.timers: list[tuple[float, Callable[..., None], tuple[Any, ...]]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[..., None], *args: Any) -> None:
        self.timers.append((when, callback, args))

    def run_due(self, until: float) -> None:
        """Advance to ``until``, running every timer due by then at its own time (or later, if set)."""
        while True:
            due = sorted((t for t in self.timers if t[0] <= until), key=lambda t: t[0])
            if not due:
                break
            when, callback, args = due[0]
            self.timers.remove(due[0])
            self.now = max(self.now, when)
            callback(*args)
        self.now = max(self.now, until)


def scheduler() -> tuple[TickScheduler, FakeLoop]:
    loop = FakeLoop()
    return TickScheduler(cast(asyncio.AbstractEventLoop, loop)), loop


def test_callbacks_due_in_one_millisecond_share_one_loop_timer_and_never_run_early() -> None:
    ticker, loop = scheduler()
    ran: list[tuple[str, float]] = []
    base = TickScheduler.align(1000.0123)
    for i in range(5):
        # all due within the millisecond ending at ``base``: one slot
        ticker.call_at(base - 0.0002 * i, lambda i=i: ran.append((f"a{i}", loop.now)))  # type: ignore[misc]
    ticker.call_at(base + 0.0015, lambda: ran.append(("b", loop.now)))
    assert len(loop.timers) == 2 and ticker.pending == 6
    loop.run_due(base + 0.01)
    assert [name for name, _ in ran] == ["a0", "a1", "a2", "a3", "a4", "b"]
    assert all(at >= base for _, at in ran[:5]) and ran[5][1] >= base + 0.0015
    assert ticker.pending == 0


def test_grid_deadlines_keep_their_slot_despite_float_error() -> None:
    t0 = TickScheduler.align(12345.6789)
    slots = {round((t0 + n * 0.02) / RESOLUTION) for n in range(100_000)}
    ticker, loop = scheduler()
    for n in range(1000):
        ticker.call_at(t0 + n * 0.02, lambda: None)
    whens = sorted(t[0] for t in loop.timers)
    assert len(whens) == 1000 and len(slots) == 100_000
    assert all(abs(w - (t0 + n * 0.02)) < 1e-6 for n, w in enumerate(whens))  # each at its own deadline


def test_a_failing_callback_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    ticker, loop = scheduler()
    ran: list[int] = []

    def boom() -> None:
        raise RuntimeError("bug in one leg")

    when = TickScheduler.align(loop.now + 0.005)
    ticker.call_at(when, lambda: ran.append(1))
    ticker.call_at(when, boom)
    ticker.call_at(when, lambda: ran.append(3))
    loop.run_due(when)
    assert ran == [1, 3] and "RTP tick failed" in caplog.text


def test_a_lone_stall_is_not_an_overload_sustained_lateness_is() -> None:
    ticker, loop = scheduler()
    assert ticker.lateness(loop.now) == 0.0 and ticker.late_share(loop.now) == 0.0
    start = TickScheduler.align(loop.now)
    # 50 slots per second on time ...
    for k in range(50):
        ticker.call_at(start + k * 0.02, lambda: None)
    loop.run_due(start + 1.0)
    assert ticker.lateness(loop.now) < 0.001 and ticker.late_share(loop.now) == 0.0
    # ... then one slot runs 80 ms late (a stall, e.g. a GC pause), then on time again.
    stalled = start + 1.02
    ticker.call_at(stalled, lambda: None)
    loop.now = stalled + 0.080
    loop.run_due(loop.now)
    for k in range(5, 50):
        ticker.call_at(stalled + k * 0.02, lambda: None)
    loop.run_due(stalled + 1.0)
    assert ticker.lateness(loop.now) == pytest.approx(0.080)  # the worst is remembered for the logs
    assert 0 < ticker.late_share(loop.now) < 0.05  # one slot of many: not an overload
    # Sustained: every slot 30 ms late for a second.
    later = stalled + 1.2
    for k in range(50):
        when = later + k * 0.02
        ticker.call_at(when, lambda: None)
        loop.run_due(when - 0.001)
        loop.now = when + 0.030
        loop.run_due(loop.now)
    assert ticker.late_share(loop.now) > 0.5
    # Forgotten once two windows went by with nothing late; idle means nothing was late.
    for k in range(200):
        ticker.call_at(later + 2.0 + k * 0.02, lambda: None)
    loop.run_due(later + 6.0)
    assert ticker.late_share(loop.now) == 0.0 and ticker.lateness(loop.now) < 0.001
    assert ticker.lateness(loop.now + 10.0) == 0.0 and ticker.late_share(loop.now + 10.0) == 0.0


def test_the_late_threshold_is_configurable() -> None:
    ticker, loop = scheduler()
    ticker.late_threshold = 0.005
    when = TickScheduler.align(loop.now + 0.01)
    ticker.call_at(when, lambda: None)
    loop.now = when + 0.010
    loop.run_due(loop.now)
    assert ticker.late_share(loop.now) == 1.0
