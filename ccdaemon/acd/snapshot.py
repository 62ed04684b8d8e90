"""Read-only views of the ACD engine, for announcements, live figures, tests and the simulator."""

from __future__ import annotations

from dataclasses import dataclass

from .model import AgentState


@dataclass(frozen=True, slots=True)
class EntrySnapshot:
    call_id: str
    queue: str
    position: int  # 1 is next
    priority: int
    waited: float  # since the call arrived at the engine (across overflows)
    waited_in_queue: float  # since it entered this queue (what max_wait and tiers count)
    ewt: float | None  # estimated seconds until an agent answers; None when nobody staffs the queue
    callback_number: str | None  # set for a virtual (callback) entry: the caller is not on the line
    ringing: tuple[str, ...]  # agents being offered this call now
    tier_level: int  # tiers above the lowest that have joined this caller's pool
    # the deadlines this entry contributes to get_timer()
    ring_deadline: float | None
    overflow_at: float | None
    widen_at: float | None
    busy_retry_at: float | None


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    name: str
    entries: tuple[EntrySnapshot, ...]  # in service order
    ewt_new_caller: float | None
    staffed: int  # members logged in and not paused
    available: int
    mean_handle: float  # the EWT statistics now
    abandon_rate: float

    @property
    def longest_wait(self) -> float:
        return max((e.waited_in_queue for e in self.entries if e.callback_number is None), default=0.0)


@dataclass(frozen=True, slots=True)
class AgentSnapshot:
    agent_id: str
    state: AgentState
    since: float  # when the current state began
    reason: str  # the pause reason, or what caused the last change
    call_id: str | None  # the call offered (ringing) or connected (on call, wrap-up)
    calls_taken: int
    missed: int  # consecutive missed offers (what auto-pause counts)
    missed_total: int
    idle_since: float
    wrap_up_until: float | None


@dataclass(frozen=True, slots=True)
class AcdSnapshot:
    at: float
    queues: tuple[QueueSnapshot, ...]
    agents: tuple[AgentSnapshot, ...]
    timer: float | None

    def queue(self, name: str) -> QueueSnapshot:
        return next(q for q in self.queues if q.name == name)

    def agent(self, agent_id: str) -> AgentSnapshot:
        return next(a for a in self.agents if a.agent_id == agent_id)

    def entry(self, call_id: str) -> EntrySnapshot | None:
        return next((e for q in self.queues for e in q.entries if e.call_id == call_id), None)
