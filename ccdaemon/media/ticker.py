"""Batched timers for RTP senders: one loop timer per occupied millisecond, not one per leg per tick.

Hundreds of legs each sending every 20 ms would otherwise create and heap-sort tens of thousands of
timer handles per second. Legs align their tick 0 to the scheduler's 1 ms grid (:meth:`align`), so all
deadlines ``t0 + n * ptime`` fall on grid points and every leg due in the same millisecond runs from one
timer. A deadline is never served early; uvloop's timers have millisecond resolution anyway.

How late the slots run is tracked (:meth:`TickScheduler.late_share`, :meth:`TickScheduler.lateness`): it
is the engine's own measure of overload, which the user agent checks before admitting a new call
(``media.overload_lateness_ms``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from collections.abc import Callable

__all__ = ["RESOLUTION", "TickScheduler"]

_log = logging.getLogger(__name__)

RESOLUTION = 0.001  # seconds per slot
_LATENESS_WINDOW = 1.0  # seconds
_SLACK = 1e-6  # in slots: absorbs float error of t0 + n * period so a grid deadline keeps its own slot

_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TickScheduler] = weakref.WeakKeyDictionary()


class TickScheduler:
    """Runs callbacks at (or just after) absolute loop times, batched per 1 ms slot."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._slots: dict[int, list[Callable[[], None]]] = {}
        # How late the slots run, per one-second window (the current one and the one before): the
        # engine's own measure of overload. A lone stall (a GC pause) makes a few slots late; an engine
        # past its capacity makes most of them late.
        self.late_threshold = 0.02  # seconds: a slot later than this counts as late
        self._window_start = -math.inf
        self._run = 0
        self._late = 0
        self._worst = 0.0
        self._previous: tuple[int, int, float] = (0, 0, 0.0)  # slots run, late, worst

    def lateness(self, now: float) -> float:
        """Worst lateness (seconds) of a slot within the last one to two seconds."""
        previous, current = self._windows(now)
        return max(previous[2], current[2])

    def late_share(self, now: float) -> float:
        """Share of the slots that ran later than ``late_threshold``, over the last one to two seconds."""
        previous, current = self._windows(now)
        run, late = previous[0] + current[0], previous[1] + current[1]
        return late / run if run else 0.0

    def _windows(self, now: float) -> tuple[tuple[int, int, float], tuple[int, int, float]]:
        age = now - self._window_start
        if age >= 2 * _LATENESS_WINDOW:
            return (0, 0, 0.0), (0, 0, 0.0)  # nothing ran for a while: nothing was late
        current = (self._run, self._late, self._worst)
        return ((0, 0, 0.0) if age >= _LATENESS_WINDOW else self._previous), current

    @classmethod
    def for_loop(cls, loop: asyncio.AbstractEventLoop) -> TickScheduler:
        """The loop's shared scheduler (created on first use)."""
        scheduler = _by_loop.get(loop)
        if scheduler is None:
            scheduler = _by_loop[loop] = cls(loop)
        return scheduler

    @staticmethod
    def align(when: float) -> float:
        """The first grid point at or after ``when``."""
        return math.ceil(when / RESOLUTION - _SLACK) * RESOLUTION

    @property
    def pending(self) -> int:
        """Callbacks waiting (for tests and statistics)."""
        return sum(len(bucket) for bucket in self._slots.values())

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` once, in the first slot at or after ``when``. Not cancellable: a callback that
        is no longer wanted returns at once (RtpSession checks its transport)."""
        slot = math.ceil(when / RESOLUTION - _SLACK)
        bucket = self._slots.get(slot)
        if bucket is None:
            self._slots[slot] = [callback]
            self._loop.call_at(slot * RESOLUTION, self._fire, slot)
        else:
            bucket.append(callback)

    def _fire(self, slot: int) -> None:
        now = self._loop.time()
        late = now - slot * RESOLUTION
        if now - self._window_start >= _LATENESS_WINDOW:
            stale = now - self._window_start >= 2 * _LATENESS_WINDOW
            self._previous = (0, 0, 0.0) if stale else (self._run, self._late, self._worst)
            self._window_start, self._run, self._late, self._worst = now, 0, 0, 0.0
        self._run += 1
        if late > self.late_threshold:
            self._late += 1
        self._worst = max(self._worst, late)
        for callback in self._slots.pop(slot, ()):
            try:
                callback()
            except Exception:  # one faulty leg must not silence the others in its slot
                _log.exception("RTP tick failed")
