"""Ring strategies: which of the eligible, available agents an offer goes to.

Pure functions over read-only candidate views.  Ties are broken by the order the queue lists its
members, so a run is reproducible without any randomness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .model import RingStrategy


@dataclass(frozen=True, slots=True)
class Candidate:
    agent_id: str
    order: int  # position in the queue's member list: the tie-breaker
    idle_since: float  # when the agent last became available after a call (or logged in)
    calls_taken: int  # answered offers since the engine started


def choose(strategy: RingStrategy, candidates: Sequence[Candidate], *, last_rung: int | None) -> list[str]:
    """The agents to ring now (several only for RING_ALL); empty when there are no candidates.

    ``last_rung`` is the queue's round-robin cursor: the member order of the agent rung last.
    """
    if not candidates:
        return []
    ordered = sorted(candidates, key=lambda c: c.order)
    if strategy is RingStrategy.RING_ALL:
        return [c.agent_id for c in ordered]
    if strategy is RingStrategy.LONGEST_IDLE:
        return [min(ordered, key=lambda c: (c.idle_since, c.order)).agent_id]
    if strategy is RingStrategy.FEWEST_CALLS:
        return [min(ordered, key=lambda c: (c.calls_taken, c.idle_since, c.order)).agent_id]
    # The cursor is a place in the static member list, so it survives the agent rung last logging out.
    after = [c for c in ordered if last_rung is None or c.order > last_rung]
    return [(after or ordered)[0].agent_id]
