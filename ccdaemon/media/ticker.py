"""Batched timers for RTP senders: one loop timer per occupied millisecond, not one per leg per tick.

Hundreds of legs each sending every 20 ms would otherwise create and heap-sort tens of thousands of
timer handles per second. Legs align their tick 0 to the scheduler's 1 ms grid (:meth:`align`), so all
deadlines ``t0 + n * ptime`` fall on grid points and every leg due in the same millisecond runs from one
timer. A deadline is never served early; uvloop's timers have millisecond resolution anyway.
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
_SLACK = 1e-6  # in slots: absorbs float error of t0 + n * period so a grid deadline keeps its own slot

_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TickScheduler] = weakref.WeakKeyDictionary()


class TickScheduler:
    """Runs callbacks at (or just after) absolute loop times, batched per 1 ms slot."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._slots: dict[int, list[Callable[[], None]]] = {}

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
        for callback in self._slots.pop(slot, ()):
            try:
                callback()
            except Exception:  # one faulty leg must not silence the others in its slot
                _log.exception("RTP tick failed")
