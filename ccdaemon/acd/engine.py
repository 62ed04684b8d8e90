"""The ACD engine: queues and agents, sans-I/O.  Commands and time in, events out.

Two things drive an :class:`AcdEngine`, each with the current time ``now``: commands from the app
(:meth:`~AcdEngine.handle`), and timers (:meth:`~AcdEngine.handle_timer` once
:meth:`~AcdEngine.get_timer` is due: ring timeouts, wrap-up ends, max-wait overflows, tier widening,
busy-agent retries).  Output is pulled with :meth:`~AcdEngine.next_event`; :meth:`~AcdEngine.snapshot`
gives a frozen view with positions and estimated waits.  No clock, task, socket or random number is
used here, so the simulator runs this very code in virtual time.

Which agent state follows which is data (:mod:`ccdaemon.acd.agents`); the effects live here.  A
command that is not allowed raises :class:`AcdError` (:class:`IllegalTransition` for agent moves)
and changes nothing: every handler validates before it mutates.

Decisions:

* **Order**: within a queue, higher priority first, then arrival order (a sequence number given at
  arrival and kept through overflow and callback conversion: that is "keeping the place").  Across
  queues sharing an agent, the same key decides who is offered first.
* **Tiers** widen a caller's pool over time in its current queue; they never reorder callers.
* **Next agent**: an agent who missed a caller is not offered that caller again while another
  eligible agent is available; when every available one has been tried, they are tried again.
* **486 Busy** is not a missed offer (the phone never rang; auto-pausing would punish the agent for
  a private call); the agent is skipped for that caller for ``busy_retry`` seconds.  A decline is a miss.
* **Max wait** counts from entering the queue.  It is not applied while an offer is ringing (an
  agent may be about to answer); it applies as soon as the offer ends unanswered.  Callback entries
  never overflow.  A callback overflow needs the caller's number; without one the caller stays.
* **Outcome**: every CallArrived gets exactly one :class:`CallOutcome`, when the call leaves the
  queue (answered, abandoned, blocked, voicemail) or, for a callback, when the customer is reached
  or not.
"""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from dataclasses import dataclass, field

from . import ewt
from .agents import STAFFED, AgentTrigger, Internal, next_state
from .model import (
    AcdConfig,
    AcdError,
    AcdEvent,
    AgentAnswered,
    AgentBusy,
    AgentLogin,
    AgentLogout,
    AgentPause,
    AgentRejected,
    AgentResume,
    AgentState,
    AgentStateChanged,
    CallAbandoned,
    CallArrived,
    CallbackDue,
    CallbackQueued,
    CallbackResult,
    CallBlocked,
    CallEnded,
    CallerHungUp,
    CallOutcome,
    CallOverflowed,
    CallQueued,
    Command,
    ConnectCall,
    EndWrapUp,
    OfferMissed,
    Outcome,
    OverflowKind,
    Party,
    QueueConfig,
    RequestCallback,
    RingAgent,
    StartWrapUp,
    StopRinging,
)
from .snapshot import AcdSnapshot, AgentSnapshot, EntrySnapshot, QueueSnapshot
from .strategies import Candidate, choose


@dataclass(eq=False, slots=True)
class _Offer:
    agents: set[str]
    deadline: float


@dataclass(eq=False, slots=True)
class _Entry:
    """A caller (or a callback) waiting in one queue."""

    call_id: str
    queue: str
    priority: int
    seq: int  # arrival order; kept through overflow and callback conversion
    arrived_at: float
    enqueued_at: float
    caller: str
    callback_number: str | None = None
    offer: _Offer | None = None
    tried: set[str] = field(default_factory=set)
    busy_until: dict[str, float] = field(default_factory=dict)
    tier_level: int = 0
    widen_at: float | None = None

    @property
    def order(self) -> tuple[int, int]:
        return (-self.priority, self.seq)


@dataclass(eq=False, slots=True)
class _Connected:
    """A call answered by an agent (or a callback the agent took), until it ends."""

    call_id: str
    queue: str
    agent_id: str
    arrived_at: float
    callback: bool
    reached: bool | None = None  # callbacks: None until CallbackResult


@dataclass(eq=False, slots=True)
class _Agent:
    agent_id: str
    state: AgentState = AgentState.LOGGED_OUT
    since: float = 0.0
    reason: str = ""
    call_id: str | None = None
    queue: str | None = None  # the queue of the connected call (its wrap-up and statistics)
    connected_at: float | None = None
    wrap_up_until: float | None = None
    idle_since: float = 0.0
    calls_taken: int = 0
    missed: int = 0
    missed_total: int = 0


class _Queue:
    __slots__ = ("config", "entries", "max_tier", "min_tier", "order", "rr_last", "stats", "tiers")

    def __init__(self, config: QueueConfig, *, smoothing: float) -> None:
        self.config = config
        self.entries: list[_Entry] = []  # in service order
        self.tiers = {m.agent_id: m.tier for m in config.members}
        self.order = {m.agent_id: i for i, m in enumerate(config.members)}
        self.min_tier = min(self.tiers.values(), default=0)
        self.max_tier = max(self.tiers.values(), default=0)
        self.rr_last: int | None = None
        self.stats = ewt.QueueStats(
            expected_handle=config.expected_handle,
            expected_patience=config.expected_patience,
            smoothing=smoothing,
        )

    def full(self) -> bool:
        return self.config.max_length is not None and len(self.entries) >= self.config.max_length

    def position(self, entry: _Entry) -> int:
        return self.entries.index(entry) + 1

    def overflow_at(self, entry: _Entry) -> float | None:
        cfg = self.config
        if cfg.max_wait is None or cfg.overflow is None or entry.offer is not None:
            return None
        if entry.callback_number is not None:
            return None
        if cfg.overflow.kind is OverflowKind.CALLBACK and not entry.caller:
            return None
        return entry.enqueued_at + cfg.max_wait


class AcdEngine:
    """Every queue and agent of one call center."""

    def __init__(self, config: AcdConfig) -> None:
        self._config = config
        self._queues = {q.name: _Queue(q, smoothing=config.smoothing) for q in config.queues}
        self._agents = {agent_id: _Agent(agent_id) for agent_id in config.agent_ids}
        self._agent_order = {agent_id: i for i, agent_id in enumerate(self._agents)}
        self._calls: dict[str, _Entry | _Connected] = {}
        self._seq = itertools.count()
        self._events: deque[AcdEvent] = deque()
        self._now = float("-inf")

    # --- inputs -----------------------------------------------------------------------------------

    def handle(self, command: Command, *, now: float) -> None:
        """Apply one command.  AcdError (nothing changed) when it is not allowed now."""
        self._check_time(now)
        match command:
            case CallArrived():
                self._on_call_arrived(command, now)
            case CallerHungUp():
                self._on_caller_hung_up(command, now)
            case RequestCallback():
                self._on_request_callback(command, now)
            case CallbackResult():
                self._on_callback_result(command, now)
            case CallEnded():
                self._end_call(self._connected(command.call_id), command.by, now)
            case AgentLogin() | AgentResume() | EndWrapUp() | AgentLogout() | AgentPause():
                self._on_agent_move(command, now)
            case AgentAnswered():
                self._on_answered(command, now)
            case AgentRejected() | AgentBusy():
                self._on_refused(command, now)
            case _:
                raise AcdError(f"unknown command {type(command).__name__}")
        self._now = now
        self._dispatch(now)

    def handle_timer(self, *, now: float) -> None:
        """Fire every deadline at or before ``now``.  Nothing happens before :meth:`get_timer`."""
        self._check_time(now)
        self._now = now
        for queue in self._queues.values():
            for entry in list(queue.entries):
                self._entry_timers(queue, entry, now)
        for agent in self._agents.values():
            if agent.wrap_up_until is not None and agent.wrap_up_until <= now:
                self._finish_wrap_up(agent, Internal.WRAP_UP_ELAPSED, "wrap-up-ended", now)
        self._dispatch(now)

    def get_timer(self) -> float | None:
        """The earliest pending deadline, or None."""
        deadlines: list[float] = []
        for queue in self._queues.values():
            for entry in queue.entries:
                deadlines.extend(self._entry_deadlines(queue, entry))
        deadlines.extend(a.wrap_up_until for a in self._agents.values() if a.wrap_up_until is not None)
        return min(deadlines, default=None)

    # --- outputs ----------------------------------------------------------------------------------

    def next_event(self) -> AcdEvent | None:
        return self._events.popleft() if self._events else None

    def events(self) -> list[AcdEvent]:
        """Every pending event, oldest first (drains them)."""
        drained = list(self._events)
        self._events.clear()
        return drained

    def snapshot(self, *, now: float) -> AcdSnapshot:
        """A frozen view at ``now`` (which only ages waits and estimates; no state changes)."""
        queues = tuple(self._queue_snapshot(queue, now) for queue in self._queues.values())
        agents = tuple(
            AgentSnapshot(
                agent_id=a.agent_id,
                state=a.state,
                since=a.since,
                reason=a.reason,
                call_id=a.call_id,
                calls_taken=a.calls_taken,
                missed=a.missed,
                missed_total=a.missed_total,
                idle_since=a.idle_since,
                wrap_up_until=a.wrap_up_until,
            )
            for a in self._agents.values()
        )
        return AcdSnapshot(at=now, queues=queues, agents=agents, timer=self.get_timer())

    # --- callers ----------------------------------------------------------------------------------

    def _on_call_arrived(self, cmd: CallArrived, now: float) -> None:
        if cmd.call_id in self._calls:
            raise AcdError(f"call {cmd.call_id} is already in the engine")
        queue = self._queue(cmd.queue)
        if queue.full():
            self._emit(CallBlocked(now, cmd.call_id, cmd.queue, queue.config.full_message))
            self._emit(CallOutcome(now, cmd.call_id, cmd.queue, Outcome.BLOCKED, 0.0))
            return
        entry = _Entry(cmd.call_id, cmd.queue, cmd.priority, next(self._seq), now, now, cmd.caller)
        self._enqueue(queue, entry, now)

    def _on_caller_hung_up(self, cmd: CallerHungUp, now: float) -> None:
        where = self._calls.get(cmd.call_id)
        if isinstance(where, _Connected):
            self._end_call(where, Party.CALLER, now)
            return
        entry = self._waiting(cmd.call_id)
        if entry.callback_number is not None:
            raise AcdError(f"call {cmd.call_id} is a callback; its caller is not on the line")
        queue = self._queues[entry.queue]
        self._withdraw_offer(entry, "caller-hung-up", now)
        self._leave(queue, entry)
        queue.stats.observe_wait(now - entry.enqueued_at, abandoned=True)
        self._emit(CallAbandoned(now, entry.call_id, entry.queue, now - entry.arrived_at))
        self._emit(CallOutcome(now, entry.call_id, entry.queue, Outcome.ABANDONED, now - entry.arrived_at))

    def _on_request_callback(self, cmd: RequestCallback, now: float) -> None:
        entry = self._waiting(cmd.call_id)
        number = cmd.number or entry.caller
        if entry.callback_number is not None:
            raise AcdError(f"call {cmd.call_id} is already a callback")
        if not number:
            raise AcdError(f"call {cmd.call_id}: no number to call back")
        self._withdraw_offer(entry, "callback", now)
        self._to_callback(entry, number, now)

    def _on_callback_result(self, cmd: CallbackResult, now: float) -> None:
        call = self._connected(cmd.call_id)
        if not call.callback or call.reached is not None:
            raise AcdError(f"call {cmd.call_id} is not a callback waiting for its result")
        if cmd.reached:
            call.reached = True
            self._emit(
                CallOutcome(now, call.call_id, call.queue, Outcome.CALLBACK_CONNECTED, now - call.arrived_at)
            )
        else:
            self._end_call(call, Party.CALLER, now)

    def _end_call(self, call: _Connected, by: Party, now: float) -> None:
        agent = self._agents[call.agent_id]
        next_state(agent.agent_id, agent.state, CallEnded)  # validate before any change
        if call.callback and call.reached is None:
            self._emit(
                CallOutcome(now, call.call_id, call.queue, Outcome.CALLBACK_FAILED, now - call.arrived_at)
            )
        del self._calls[call.call_id]
        until = now + self._queues[call.queue].config.wrap_up
        agent.wrap_up_until = until
        self._set_state(agent, CallEnded, f"ended-by-{by.value}", now)
        self._emit(StartWrapUp(now, agent.agent_id, call.call_id, by, until))
        if until <= now:  # no wrap-up configured: the agent is available at once
            self._finish_wrap_up(agent, Internal.WRAP_UP_ELAPSED, "wrap-up-ended", now)

    # --- agents -----------------------------------------------------------------------------------

    def _on_agent_move(
        self, cmd: AgentLogin | AgentResume | EndWrapUp | AgentLogout | AgentPause, now: float
    ) -> None:
        agent = self._agent(cmd.agent_id)
        next_state(agent.agent_id, agent.state, type(cmd))  # validate before any change
        reason = {AgentLogin: "login", AgentResume: "resume", EndWrapUp: "wrap-up-ended-early"}.get(
            type(cmd), "logout"
        )
        if isinstance(cmd, AgentPause):
            reason = cmd.reason or "paused"
        if isinstance(cmd, AgentLogin | AgentResume):
            agent.missed = 0  # a fresh start: auto-pause counts misses since the agent came back
        if isinstance(cmd, AgentLogin):
            agent.idle_since = now
        if agent.state is AgentState.WRAP_UP:
            self._finish_wrap_up(agent, type(cmd), reason, now)
            return
        why = "agent-paused" if isinstance(cmd, AgentPause) else "agent-logged-out"
        offered = self._detach(agent, why, now) if agent.state is AgentState.RINGING else None
        self._set_state(agent, type(cmd), reason, now)
        if offered is not None:
            self._offer_ended(offered, now)

    def _on_answered(self, cmd: AgentAnswered, now: float) -> None:
        agent = self._agent(cmd.agent_id)
        next_state(agent.agent_id, agent.state, AgentAnswered)
        entry, offer = self._offered_to(agent, cmd.call_id)
        queue = self._queues[entry.queue]
        offer.agents.discard(agent.agent_id)
        self._withdraw_offer(entry, "answered-elsewhere", now)
        self._leave(queue, entry)
        if entry.callback_number is None:  # a callback's wait says nothing about patience
            queue.stats.observe_wait(now - entry.enqueued_at, abandoned=False)
        agent.missed = 0
        agent.calls_taken += 1
        agent.queue = entry.queue
        agent.connected_at = now
        self._set_state(agent, AgentAnswered, "answered", now)
        callback = entry.callback_number is not None
        self._calls[entry.call_id] = _Connected(
            entry.call_id, entry.queue, agent.agent_id, entry.arrived_at, callback
        )
        if entry.callback_number is not None:
            self._emit(CallbackDue(now, entry.call_id, agent.agent_id, entry.queue, entry.callback_number))
            return
        waited = now - entry.arrived_at
        self._emit(ConnectCall(now, entry.call_id, agent.agent_id, entry.queue, waited))
        self._emit(CallOutcome(now, entry.call_id, entry.queue, Outcome.ANSWERED, waited))

    def _on_refused(self, cmd: AgentRejected | AgentBusy, now: float) -> None:
        agent = self._agent(cmd.agent_id)
        next_state(agent.agent_id, agent.state, type(cmd))
        entry, offer = self._offered_to(agent, cmd.call_id)
        offer.agents.discard(agent.agent_id)
        agent.call_id = None
        if isinstance(cmd, AgentBusy):
            entry.busy_until[agent.agent_id] = now + self._queues[entry.queue].config.busy_retry
            self._set_state(agent, AgentBusy, "busy", now)
        else:
            self._miss(agent, entry, "rejected", AgentRejected, now)
        if not offer.agents:
            self._offer_ended(entry, now)

    # --- timers -----------------------------------------------------------------------------------

    def _entry_deadlines(self, queue: _Queue, entry: _Entry) -> list[float]:
        deadlines = list(entry.busy_until.values())
        if entry.offer is not None:
            deadlines.append(entry.offer.deadline)
        overflow_at = queue.overflow_at(entry)
        if overflow_at is not None:
            deadlines.append(overflow_at)
        if entry.widen_at is not None:
            deadlines.append(entry.widen_at)
        return deadlines

    def _entry_timers(self, queue: _Queue, entry: _Entry, now: float) -> None:
        step = queue.config.tier_step
        while entry.widen_at is not None and entry.widen_at <= now and step is not None:
            entry.tier_level += 1
            more = queue.min_tier + entry.tier_level < queue.max_tier
            entry.widen_at = entry.widen_at + step if more else None
        for agent_id in [a for a, t in entry.busy_until.items() if t <= now]:
            del entry.busy_until[agent_id]
        if entry.offer is not None and entry.offer.deadline <= now:
            for agent_id in self._by_order(entry.offer.agents):
                agent = self._agents[agent_id]
                agent.call_id = None
                self._emit(StopRinging(now, entry.call_id, agent_id, "no-answer"))
                self._miss(agent, entry, "no-answer", Internal.RING_TIMEOUT, now)
            entry.offer.agents.clear()
            self._offer_ended(entry, now)
            return
        overflow_at = queue.overflow_at(entry)
        if overflow_at is not None and overflow_at <= now:
            self._overflow(queue, entry, now)

    # --- effects ----------------------------------------------------------------------------------

    def _enqueue(self, queue: _Queue, entry: _Entry, now: float) -> None:
        bisect.insort(queue.entries, entry, key=lambda e: e.order)
        self._calls[entry.call_id] = entry
        step = queue.config.tier_step
        if step is not None and queue.max_tier > queue.min_tier:
            entry.widen_at = now + step
        self._emit(CallQueued(now, entry.call_id, queue.config.name, queue.position(entry)))

    def _leave(self, queue: _Queue, entry: _Entry) -> None:
        queue.entries.remove(entry)
        del self._calls[entry.call_id]

    def _to_callback(self, entry: _Entry, number: str, now: float) -> None:
        queue = self._queues[entry.queue]
        queue.stats.observe_wait(now - entry.enqueued_at, abandoned=False)  # censored: left the line
        entry.callback_number = number
        entry.tried.clear()
        self._emit(CallbackQueued(now, entry.call_id, entry.queue, number, queue.position(entry)))

    def _offer_ended(self, entry: _Entry, now: float) -> None:
        """The last agent of an offer is gone without answering: overflow if due, else wait."""
        entry.offer = None
        queue = self._queues[entry.queue]
        overflow_at = queue.overflow_at(entry)
        if overflow_at is not None and overflow_at <= now:
            self._overflow(queue, entry, now)

    def _overflow(self, queue: _Queue, entry: _Entry, now: float) -> None:
        overflow = queue.config.overflow
        if overflow is None:  # overflow_at() is None without one: never reached
            return
        self._emit(CallOverflowed(now, entry.call_id, entry.queue, overflow.kind, overflow.queue))
        if overflow.kind is OverflowKind.CALLBACK:
            self._to_callback(entry, entry.caller, now)
            return
        self._leave(queue, entry)
        queue.stats.observe_wait(now - entry.enqueued_at, abandoned=False)
        if overflow.kind is OverflowKind.VOICEMAIL or overflow.queue is None:
            self._emit(
                CallOutcome(now, entry.call_id, entry.queue, Outcome.VOICEMAIL, now - entry.arrived_at)
            )
            return
        target = self._queues[overflow.queue]
        if target.full():
            self._emit(CallBlocked(now, entry.call_id, overflow.queue, target.config.full_message))
            self._emit(
                CallOutcome(now, entry.call_id, overflow.queue, Outcome.BLOCKED, now - entry.arrived_at)
            )
            return
        moved = _Entry(
            entry.call_id, overflow.queue, entry.priority, entry.seq, entry.arrived_at, now, entry.caller
        )
        self._enqueue(target, moved, now)

    def _miss(self, agent: _Agent, entry: _Entry, why: str, trigger: AgentTrigger, now: float) -> None:
        agent.missed += 1
        agent.missed_total += 1
        entry.tried.add(agent.agent_id)
        self._emit(OfferMissed(now, entry.call_id, agent.agent_id, agent.missed))
        limit = self._config.auto_pause_after
        if limit and agent.missed >= limit:
            self._set_state(agent, Internal.AUTO_PAUSE, self._config.auto_pause_reason, now)
        else:
            self._set_state(agent, trigger, why, now)

    def _withdraw_offer(self, entry: _Entry, why: str, now: float) -> None:
        """Stop every phone still ringing for ``entry``; not a miss for anyone."""
        if entry.offer is None:
            return
        for agent_id in self._by_order(entry.offer.agents):
            agent = self._agents[agent_id]
            agent.call_id = None
            self._emit(StopRinging(now, entry.call_id, agent_id, why))
            self._set_state(agent, Internal.OFFER_WITHDRAWN, why, now)
        entry.offer = None

    def _detach(self, agent: _Agent, why: str, now: float) -> _Entry | None:
        """Take one ringing agent out of its offer; the entry if that left the offer empty."""
        entry, offer = self._offered_to(agent, agent.call_id or "")
        offer.agents.discard(agent.agent_id)
        agent.call_id = None
        self._emit(StopRinging(now, entry.call_id, agent.agent_id, why))
        return entry if not offer.agents else None

    def _finish_wrap_up(self, agent: _Agent, trigger: AgentTrigger, why: str, now: float) -> None:
        if agent.queue is not None and agent.connected_at is not None:
            self._queues[agent.queue].stats.observe_handle(now - agent.connected_at)
        agent.wrap_up_until = agent.connected_at = agent.queue = agent.call_id = None
        agent.idle_since = now
        self._set_state(agent, trigger, why, now)

    def _set_state(self, agent: _Agent, trigger: AgentTrigger, why: str, now: float) -> None:
        new = next_state(agent.agent_id, agent.state, trigger)
        self._emit(AgentStateChanged(now, agent.agent_id, agent.state, new, why))
        agent.state, agent.since, agent.reason = new, now, why

    def _dispatch(self, now: float) -> None:
        """Offer every waiting caller, best first, to the agents its queue's strategy picks."""
        waiting = [e for q in self._queues.values() for e in q.entries if e.offer is None]
        waiting.sort(key=lambda e: e.order)
        for entry in waiting:
            queue = self._queues[entry.queue]
            highest = queue.min_tier + entry.tier_level if queue.config.tier_step is not None else None
            pool = [
                agent_id
                for agent_id, tier in queue.tiers.items()
                if (highest is None or tier <= highest)
                and self._agents[agent_id].state is AgentState.AVAILABLE
                and agent_id not in entry.busy_until
            ]
            untried = [agent_id for agent_id in pool if agent_id not in entry.tried]
            candidates = [
                Candidate(a, queue.order[a], self._agents[a].idle_since, self._agents[a].calls_taken)
                for a in (untried or pool)
            ]
            chosen = choose(queue.config.strategy, candidates, last_rung=queue.rr_last)
            if not chosen:
                continue
            entry.offer = _Offer(set(chosen), now + queue.config.ring_timeout)
            queue.rr_last = queue.order[chosen[-1]]
            for agent_id in chosen:
                agent = self._agents[agent_id]
                agent.call_id = entry.call_id
                self._set_state(agent, Internal.OFFER, "offer", now)
                timeout = queue.config.ring_timeout
                self._emit(
                    RingAgent(now, entry.call_id, agent_id, entry.queue, timeout, entry.callback_number)
                )

    # --- snapshots --------------------------------------------------------------------------------

    def _queue_snapshot(self, queue: _Queue, now: float) -> QueueSnapshot:
        mean = queue.stats.mean_handle
        idle = 0
        residuals: list[float] = []
        for agent_id in queue.tiers:
            agent = self._agents[agent_id]
            if agent.state is AgentState.AVAILABLE:
                idle += 1
            elif agent.state is AgentState.WRAP_UP and agent.wrap_up_until is not None:
                residuals.append(max(agent.wrap_up_until - now, 0.0))
            elif agent.state is AgentState.ON_CALL and agent.connected_at is not None:
                residuals.append(ewt.residual(elapsed=now - agent.connected_at, mean_handle=mean))
            elif agent.state in STAFFED:
                residuals.append(mean)  # ringing: about to start a whole call
        waiting = sum(1 for e in queue.entries if e.offer is None)
        table = ewt.wait_table(
            count=waiting + 1,
            idle=idle,
            residuals=residuals,
            mean_handle=mean,
            abandon_rate=queue.stats.abandon_rate,
        )
        entries: list[EntrySnapshot] = []
        ahead = 0
        for position, entry in enumerate(queue.entries, start=1):
            estimate: float | None = 0.0
            if entry.offer is None:
                estimate = table[ahead]
                ahead += 1
            entries.append(
                EntrySnapshot(
                    call_id=entry.call_id,
                    queue=entry.queue,
                    position=position,
                    priority=entry.priority,
                    waited=now - entry.arrived_at,
                    waited_in_queue=now - entry.enqueued_at,
                    ewt=estimate,
                    callback_number=entry.callback_number,
                    ringing=tuple(self._by_order(entry.offer.agents)) if entry.offer else (),
                    tier_level=entry.tier_level,
                    ring_deadline=entry.offer.deadline if entry.offer else None,
                    overflow_at=queue.overflow_at(entry),
                    widen_at=entry.widen_at,
                    busy_retry_at=min(entry.busy_until.values(), default=None),
                )
            )
        return QueueSnapshot(
            name=queue.config.name,
            entries=tuple(entries),
            ewt_new_caller=table[waiting],
            staffed=idle + len(residuals),
            available=idle,
            mean_handle=mean,
            abandon_rate=queue.stats.abandon_rate,
        )

    # --- lookups ----------------------------------------------------------------------------------

    def _check_time(self, now: float) -> None:
        if now < self._now:
            raise AcdError(f"time went backwards: {now} < {self._now}")

    def _emit(self, event: AcdEvent) -> None:
        self._events.append(event)

    def _queue(self, name: str) -> _Queue:
        queue = self._queues.get(name)
        if queue is None:
            raise AcdError(f"unknown queue {name}")
        return queue

    def _agent(self, agent_id: str) -> _Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise AcdError(f"unknown agent {agent_id}")
        return agent

    def _waiting(self, call_id: str) -> _Entry:
        where = self._calls.get(call_id)
        if not isinstance(where, _Entry):
            raise AcdError(f"call {call_id} is not waiting in a queue")
        return where

    def _connected(self, call_id: str) -> _Connected:
        where = self._calls.get(call_id)
        if not isinstance(where, _Connected):
            raise AcdError(f"call {call_id} is not connected to an agent")
        return where

    def _offered_to(self, agent: _Agent, call_id: str) -> tuple[_Entry, _Offer]:
        where = self._calls.get(call_id)
        if agent.call_id != call_id or not isinstance(where, _Entry) or where.offer is None:
            raise AcdError(f"agent {agent.agent_id} is not being offered call {call_id}")
        return where, where.offer

    def _by_order(self, agent_ids: set[str]) -> list[str]:
        return sorted(agent_ids, key=self._agent_order.__getitem__)
