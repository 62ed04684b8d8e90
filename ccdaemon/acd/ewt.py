"""Estimated wait time (EWT), following ``research/ewt.md``.

The estimator is QL_m (Ibrahim & Whitt: the Erlang-A queue-length predictor with abandonment),
``sum_{k=0..n} 1 / (s*mu + k*theta)`` for a caller with ``n`` callers ahead, ``s`` staffed agents,
service rate ``mu`` and abandonment rate ``theta``, with two refinements the research names:

* **small s**: with at most :data:`SMALL_STAFF` agents the first place frees when the earliest
  call in progress ends, and its elapsed time is known, so the first term ``1 / (s*mu)`` (the
  wait for the first free slot) is replaced by the expected residual handling time of the calls
  in progress;
* **idle agents**: a caller with fewer callers ahead than idle agents waits ~0.

``mu`` and ``theta`` are estimated online per queue by :class:`QueueStats` (exponentially
weighted, seeded from configured priors, so the estimate follows the day's load and needs no
history after a restart).  ``theta`` is the censored maximum-likelihood estimate for exponential
patience: abandons / total time callers spent waiting (answered callers' waits are censored
patience observations).  Time is always an argument; nothing here reads a clock.

The baselines the research compares against (Asterisk's holdtime formula, QL) are here too so the
simulator can score them on the same runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

SMALL_STAFF: Final = 3  # the research: residual service matters for s <= 3
RESIDUAL_FLOOR: Final = 0.25  # a call past its mean still has this share of a mean to go (long tails)


class QueueStats:
    """Online estimates of one queue's mean handling time and abandonment rate."""

    __slots__ = ("_abandons", "_alpha", "_exposure", "_mean_handle")

    def __init__(self, *, expected_handle: float, expected_patience: float, smoothing: float) -> None:
        self._alpha = smoothing
        self._mean_handle = expected_handle
        # A prior worth one observation: one abandon in one mean patience.
        self._abandons = 1.0
        self._exposure = expected_patience

    @property
    def mean_handle(self) -> float:
        """Seconds an agent is busy per call: talk (with hold) plus wrap-up."""
        return self._mean_handle

    @property
    def abandon_rate(self) -> float:
        """theta, abandons per second of waiting per caller."""
        return self._abandons / self._exposure

    def observe_handle(self, seconds: float) -> None:
        self._mean_handle += self._alpha * (max(seconds, 0.0) - self._mean_handle)

    def observe_wait(self, seconds: float, *, abandoned: bool) -> None:
        """A caller left the queue after ``seconds``: answered or moved on (censored) or abandoned."""
        keep = 1.0 - self._alpha
        self._abandons = keep * self._abandons + (1.0 if abandoned else 0.0)
        self._exposure = keep * self._exposure + max(seconds, 0.0)
        # the exposure never reaches zero: the prior's share decays but never vanishes
        self._exposure = max(self._exposure, 1e-9)


def first_slot(*, residuals: Sequence[float], staffed: int, mean_handle: float) -> float:
    """Expected seconds until the first busy agent frees (every staffed agent is busy)."""
    if residuals and staffed <= SMALL_STAFF:
        return min(residuals)
    return mean_handle / staffed


def residual(*, elapsed: float, mean_handle: float) -> float:
    """Expected remaining busy time of a call in progress for ``elapsed`` seconds."""
    return max(mean_handle - elapsed, RESIDUAL_FLOOR * mean_handle)


def wait_table(
    *, count: int, idle: int, residuals: Sequence[float], mean_handle: float, abandon_rate: float
) -> list[float | None]:
    """EWT for callers with 0..count-1 callers ahead, in O(count).

    ``idle`` agents are free now; ``residuals`` hold the expected remaining busy time of each
    staffed agent that is not free.  None when no agent is staffed (no estimate is possible).
    """
    staffed = idle + len(residuals)
    if staffed == 0:
        return [None] * count
    service_rate = staffed / mean_handle  # s * mu
    # QL_m(n) = 1/(s mu) + sum_{k=1..n} 1/(s mu + k theta); its first slot, 1/(s mu), becomes the
    # known residual for small s.  Shifting every position by the same amount keeps the
    # estimate non-decreasing in the position.
    first = first_slot(residuals=residuals, staffed=staffed, mean_handle=mean_handle)
    table: list[float | None] = []
    tail = 0.0  # sum_{k=1..n} 1 / (s mu + k theta), grown one term per position
    for ahead in range(count):
        if ahead < idle:
            table.append(0.0)
            continue
        n = ahead - idle  # callers ahead who wait for a busy agent
        table.append(first + tail)
        tail += 1.0 / (service_rate + (n + 1) * abandon_rate)
    return table


def estimate_wait(
    *, ahead: int, idle: int, residuals: Sequence[float], mean_handle: float, abandon_rate: float
) -> float | None:
    """EWT for one caller with ``ahead`` callers before them (see :func:`wait_table`)."""
    return wait_table(
        count=ahead + 1, idle=idle, residuals=residuals, mean_handle=mean_handle, abandon_rate=abandon_rate
    )[ahead]


# --- baselines for the simulator's comparison ---------------------------------------------------


def ql(*, ahead: int, staffed: int, mean_handle: float) -> float | None:
    """QL: (n + 1) / (s mu)."""
    return None if staffed == 0 else (ahead + 1) * mean_handle / staffed


def asterisk_holdtime(holdtime: int, wait_just_answered: int) -> int:
    """app_queue's ``recalc_holdtime``: integer EWMA of answered callers' waits."""
    return (3 * holdtime + wait_just_answered) // 4


def asterisk_announced_minutes(holdtime: int, waited: float) -> int:
    """app_queue's ``say_position``: |holdtime + 30 - waited| / 60, whole minutes."""
    return int(abs(holdtime + 30 - waited) // 60)
