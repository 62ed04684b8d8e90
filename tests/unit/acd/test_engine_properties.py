"""Random command sequences against the ACD engine, checking its invariants after every step.

* an agent is never offered two calls at once, and ringing agents match the offers;
* a caller is in at most one queue;
* every arrived call ends in exactly one outcome (or is still pending);
* get_timer() is the minimum of the pending deadlines, and later than now;
* no event without a cause: the timer handled before its deadline does nothing;
* a refused command raises AcdError and changes nothing;
* every event carries the now of its input, and state changes chain (old == previous new).
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ccdaemon.acd.engine import AcdEngine
from ccdaemon.acd.model import (
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
    CallArrived,
    CallbackDue,
    CallbackResult,
    CallEnded,
    CallerHungUp,
    CallOutcome,
    Command,
    EndWrapUp,
    Overflow,
    OverflowKind,
    Party,
    QueueConfig,
    QueueMember,
    RequestCallback,
    RingStrategy,
)

AGENTS = ("a", "b", "c", "d")
QUEUES = ("sales", "support")


def _config(strategy: RingStrategy, overflow: OverflowKind) -> AcdConfig:
    target = Overflow(OverflowKind.QUEUE, "support") if overflow is OverflowKind.QUEUE else Overflow(overflow)
    sales = QueueConfig(
        "sales",
        (QueueMember("a"), QueueMember("b", 1), QueueMember("c", 2)),
        strategy=strategy,
        ring_timeout=10.0,
        max_length=6,
        max_wait=45.0,
        overflow=target,
        wrap_up=7.0,
        tier_step=12.0,
        busy_retry=20.0,
    )
    support = QueueConfig(
        "support",
        (QueueMember("c"), QueueMember("d")),
        strategy=RingStrategy.RING_ALL if strategy is RingStrategy.ROUND_ROBIN else strategy,
        ring_timeout=8.0,
        max_length=5,
        wrap_up=0.0,
    )
    return AcdConfig((sales, support), auto_pause_after=2)


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine = AcdEngine(_config(RingStrategy.LONGEST_IDLE, OverflowKind.QUEUE))
        self.now = 0.0
        self.ids = itertools.count()
        self.arrived: list[str] = []
        self.outcomes: dict[str, int] = {}
        self.callbacks_due: set[str] = set()
        self.agent_states = dict.fromkeys(AGENTS, AgentState.LOGGED_OUT)

    @initialize(
        strategy=st.sampled_from(list(RingStrategy)),
        overflow=st.sampled_from(list(OverflowKind)),
    )
    def configure(self, strategy: RingStrategy, overflow: OverflowKind) -> None:
        self.engine = AcdEngine(_config(strategy, overflow))

    # --- driving -------------------------------------------------------------------------------

    def _take(self) -> None:
        for event in self.engine.events():
            self._check_event(event)

    def _check_event(self, event: AcdEvent) -> None:
        assert event.at == self.now
        if isinstance(event, CallOutcome):
            self.outcomes[event.call_id] = self.outcomes.get(event.call_id, 0) + 1
            self.callbacks_due.discard(event.call_id)
        if isinstance(event, CallbackDue):
            self.callbacks_due.add(event.call_id)
        if isinstance(event, AgentStateChanged):
            assert self.agent_states[event.agent_id] is event.old
            self.agent_states[event.agent_id] = event.new

    def _send(self, command: Command) -> None:
        before = self.engine.snapshot(now=self.now)
        try:
            self.engine.handle(command, now=self.now)
        except AcdError:
            assert self.engine.events() == []
            assert self.engine.snapshot(now=self.now) == before
            return
        self._take()

    def _call(self, data: st.DataObject) -> str:
        if not self.arrived:
            return "none"
        return data.draw(st.sampled_from(self.arrived))

    @rule(queue=st.sampled_from(QUEUES), priority=st.integers(0, 2), with_number=st.booleans())
    def arrive(self, queue: str, priority: int, with_number: bool) -> None:
        call_id = f"c{next(self.ids)}"
        self.arrived.append(call_id)
        self._send(CallArrived(call_id, queue, priority, "0311112222" if with_number else ""))

    @rule(data=st.data())
    def caller_hangs_up(self, data: st.DataObject) -> None:
        self._send(CallerHungUp(self._call(data)))

    @rule(data=st.data())
    def callback(self, data: st.DataObject) -> None:
        self._send(RequestCallback(self._call(data)))

    @rule(data=st.data(), reached=st.booleans())
    def callback_result(self, data: st.DataObject, reached: bool) -> None:
        self._send(CallbackResult(self._call(data), reached))

    @rule(data=st.data(), by=st.sampled_from(list(Party)))
    def call_ends(self, data: st.DataObject, by: Party) -> None:
        self._send(CallEnded(self._call(data), by))

    @rule(
        agent=st.sampled_from(AGENTS),
        kind=st.sampled_from(
            [AgentLogin, AgentLogin, AgentLogin, AgentLogout, AgentResume, AgentResume, EndWrapUp, AgentPause]
        ),
    )
    def agent_move(self, agent: str, kind: type[Command]) -> None:
        self._send(AgentPause(agent, "break") if kind is AgentPause else kind(agent))  # type: ignore[call-arg]

    @rule(
        agent=st.sampled_from(AGENTS),
        kind=st.sampled_from([AgentAnswered, AgentRejected, AgentBusy]),
        data=st.data(),
        own_call=st.booleans(),
    )
    def agent_responds(self, agent: str, kind: type[Command], data: st.DataObject, own_call: bool) -> None:
        offered = self.engine.snapshot(now=self.now).agent(agent).call_id
        call_id = offered if own_call and offered is not None else self._call(data)
        self._send(kind(agent, call_id))  # type: ignore[call-arg]

    @rule(data=st.data(), kind=st.sampled_from([AgentAnswered, AgentAnswered, AgentRejected, AgentBusy]))
    def a_ringing_agent_responds(self, data: st.DataObject, kind: type[Command]) -> None:
        ringing = [a for a in self.engine.snapshot(now=self.now).agents if a.state is AgentState.RINGING]
        if ringing:
            agent = data.draw(st.sampled_from(ringing))
            self._send(kind(agent.agent_id, agent.call_id))  # type: ignore[call-arg]

    @rule(data=st.data(), by=st.sampled_from(list(Party)), reached=st.booleans())
    def a_connected_call_moves_on(self, data: st.DataObject, by: Party, reached: bool) -> None:
        talking = [a for a in self.engine.snapshot(now=self.now).agents if a.state is AgentState.ON_CALL]
        if talking:
            call_id = data.draw(st.sampled_from(talking)).call_id or ""
            self._send(
                CallbackResult(call_id, reached) if call_id in self.callbacks_due else CallEnded(call_id, by)
            )

    @rule(dt=st.sampled_from([0.5, 3.0, 7.0, 10.0, 12.0, 20.0, 45.0]))
    def time_passes(self, dt: float) -> None:
        self.engine.handle_timer(now=self.now)  # nothing is due yet: must do nothing
        assert self.engine.events() == []
        target = self.now + dt
        while (deadline := self.engine.get_timer()) is not None and deadline <= target:
            self.now = deadline
            self.engine.handle_timer(now=deadline)
            self._take()
        self.now = target

    # --- invariants ----------------------------------------------------------------------------

    @invariant()
    def offers_are_consistent(self) -> None:
        snap = self.engine.snapshot(now=self.now)
        ringing_for: dict[str, str] = {}
        for q in snap.queues:
            for entry in q.entries:
                for agent_id in entry.ringing:
                    assert agent_id not in ringing_for, "an agent offered two calls"
                    ringing_for[agent_id] = entry.call_id
        for agent in snap.agents:
            assert agent.state is self.agent_states[agent.agent_id]
            if agent.state is AgentState.RINGING:
                assert ringing_for.get(agent.agent_id) == agent.call_id
            else:
                assert agent.agent_id not in ringing_for
            if agent.state in (AgentState.LOGGED_OUT, AgentState.AVAILABLE, AgentState.PAUSED):
                assert agent.call_id is None

    @invariant()
    def callers_are_in_one_queue_and_end_once(self) -> None:
        snap = self.engine.snapshot(now=self.now)
        waiting = [e.call_id for q in snap.queues for e in q.entries]
        assert len(waiting) == len(set(waiting))
        for q in snap.queues:
            assert [e.position for e in q.entries] == list(range(1, len(q.entries) + 1))
            keys = [(-e.priority) for e in q.entries]
            assert keys == sorted(keys)
        pending = set(waiting) | self.callbacks_due
        for call_id in self.arrived:
            count = self.outcomes.get(call_id, 0)
            assert count <= 1
            assert (count == 1) != (call_id in pending), call_id

    @invariant()
    def timer_is_the_earliest_deadline(self) -> None:
        snap = self.engine.snapshot(now=self.now)
        deadlines = [a.wrap_up_until for a in snap.agents if a.wrap_up_until is not None]
        for q in snap.queues:
            for e in q.entries:
                deadlines += [d for d in (e.ring_deadline, e.overflow_at, e.widen_at, e.busy_retry_at) if d]
        timer = self.engine.get_timer()
        assert timer == min(deadlines, default=None)
        assert timer is None or timer > self.now

    @invariant()
    def estimates_are_sane(self) -> None:
        for q in self.engine.snapshot(now=self.now).queues:
            values = [e.ewt for e in q.entries]
            assert all(v is None or v >= 0 for v in values)
            if q.staffed == 0:
                assert q.ewt_new_caller is None


EngineMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEngineMachine = EngineMachine.TestCase
