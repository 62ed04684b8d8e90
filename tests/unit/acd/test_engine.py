"""The ACD engine with event sequences in virtual time: queues, strategies, offers, wrap-up, overflow."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ccdaemon.acd.model import (
    AcdError,
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
    ConnectCall,
    EndWrapUp,
    IllegalTransition,
    OfferMissed,
    Outcome,
    Overflow,
    OverflowKind,
    Party,
    RequestCallback,
    RingAgent,
    RingStrategy,
    StartWrapUp,
    StopRinging,
)

from .rig import Rig, only, queue

S = AgentState


def rung(events: Sequence[object]) -> list[tuple[str, str]]:
    return [(e.call_id, e.agent_id) for e in events if isinstance(e, RingAgent)]


def logged_in(rig: Rig, *agents: str) -> None:
    for agent in agents:
        rig.do(AgentLogin(agent))


# --- one call, start to finish --------------------------------------------------------------------


def test_a_call_rings_the_available_agent_connects_and_wraps_up() -> None:
    rig = Rig(queue("q", "a", ring_timeout=20.0, wrap_up=30.0))
    events = rig.do(AgentLogin("a"))
    assert events == [AgentStateChanged(0.0, "a", S.LOGGED_OUT, S.AVAILABLE, "login")]

    events = rig.do(CallArrived("c1", "q", caller="0311112222"), at=5.0)
    assert only(events, CallQueued) == [CallQueued(5.0, "c1", "q", 1)]
    assert only(events, RingAgent) == [RingAgent(5.0, "c1", "a", "q", 20.0)]
    assert rig.state("a") is S.RINGING
    assert rig.engine.get_timer() == 25.0

    events = rig.do(AgentAnswered("a", "c1"), at=9.0)
    assert only(events, ConnectCall) == [ConnectCall(9.0, "c1", "a", "q", 4.0)]
    assert only(events, CallOutcome) == [CallOutcome(9.0, "c1", "q", Outcome.ANSWERED, 4.0)]
    assert rig.state("a") is S.ON_CALL
    assert rig.snap().queue("q").entries == ()
    assert rig.engine.get_timer() is None

    events = rig.do(CallEnded("c1", Party.CALLER), at=100.0)
    assert only(events, StartWrapUp) == [StartWrapUp(100.0, "a", "c1", Party.CALLER, 130.0)]
    assert rig.state("a") is S.WRAP_UP
    assert rig.engine.get_timer() == 130.0

    events = rig.advance(200.0)
    assert events == [AgentStateChanged(130.0, "a", S.WRAP_UP, S.AVAILABLE, "wrap-up-ended")]
    assert rig.snap().agent("a").calls_taken == 1
    assert rig.snap().agent("a").idle_since == 130.0


def test_wrap_up_can_be_ended_early_and_its_timer_is_dropped() -> None:
    rig = Rig(queue("q", "a", wrap_up=60.0))
    logged_in(rig, "a")
    rig.do(CallArrived("c1", "q"))
    rig.do(AgentAnswered("a", "c1"), at=1.0)
    rig.do(CallEnded("c1", Party.AGENT), at=10.0)
    events = rig.do(EndWrapUp("a"), at=20.0)
    assert events == [AgentStateChanged(20.0, "a", S.WRAP_UP, S.AVAILABLE, "wrap-up-ended-early")]
    assert rig.engine.get_timer() is None
    assert rig.advance(1000.0) == []


def test_zero_wrap_up_makes_the_agent_available_at_once_and_takes_the_next_caller() -> None:
    rig = Rig(queue("q", "a", wrap_up=0.0))
    logged_in(rig, "a")
    rig.do(CallArrived("c1", "q"))
    rig.do(CallArrived("c2", "q"))
    rig.do(AgentAnswered("a", "c1"), at=1.0)
    events = rig.do(CallEnded("c1", Party.AGENT), at=50.0)
    changes = [(e.old, e.new) for e in only(events, AgentStateChanged)]
    assert changes == [(S.ON_CALL, S.WRAP_UP), (S.WRAP_UP, S.AVAILABLE), (S.AVAILABLE, S.RINGING)]
    assert rung(events) == [("c2", "a")]


def test_the_caller_hanging_up_on_a_connected_call_starts_wrap_up() -> None:
    rig = Rig(queue("q", "a", wrap_up=5.0))
    logged_in(rig, "a")
    rig.do(CallArrived("c1", "q"))
    rig.do(AgentAnswered("a", "c1"))
    events = rig.do(CallerHungUp("c1"), at=30.0)
    assert only(events, StartWrapUp) == [StartWrapUp(30.0, "a", "c1", Party.CALLER, 35.0)]
    assert only(events, CallOutcome) == []  # the outcome was "answered" already


# --- order of callers -------------------------------------------------------------------------------


def test_priority_first_then_arrival_order() -> None:
    rig = Rig(queue("q", "a"))
    rig.do(CallArrived("c1", "q", priority=0), at=1.0)
    rig.do(CallArrived("c2", "q", priority=0), at=2.0)
    events = rig.do(CallArrived("vip", "q", priority=5), at=3.0)
    assert only(events, CallQueued) == [CallQueued(3.0, "vip", "q", 1)]
    rig.do(CallArrived("c3", "q", priority=5), at=4.0)
    assert [e.call_id for e in rig.snap().queue("q").entries] == ["vip", "c3", "c1", "c2"]
    assert [e.position for e in rig.snap().queue("q").entries] == [1, 2, 3, 4]
    assert rung(rig.do(AgentLogin("a"), at=5.0)) == [("vip", "a")]


def test_an_agent_in_two_queues_serves_the_better_caller_of_both() -> None:
    rig = Rig(queue("sales", "a"), queue("support", "a"))
    rig.do(CallArrived("s1", "sales"), at=1.0)
    rig.do(CallArrived("t1", "support"), at=2.0)
    rig.do(CallArrived("t2", "support", priority=1), at=3.0)
    assert rung(rig.do(AgentLogin("a"), at=4.0)) == [("t2", "a")]


def test_max_length_blocks_the_caller_with_one_outcome() -> None:
    rig = Rig(queue("q", "a", max_length=1, full_message="full-ja"))
    rig.do(CallArrived("c1", "q"))
    events = rig.do(CallArrived("c2", "q"), at=1.0)
    assert events == [
        CallBlocked(1.0, "c2", "q", "full-ja"),
        CallOutcome(1.0, "c2", "q", Outcome.BLOCKED, 0.0),
    ]
    assert [e.call_id for e in rig.snap().queue("q").entries] == ["c1"]
    rig.do(CallArrived("c2", "q"), at=2.0)  # blocked ids are not remembered: a new call may reuse it
    assert only(rig.log, CallBlocked)[-1].call_id == "c2"


def test_a_caller_hanging_up_while_ringing_is_abandoned_and_not_a_miss() -> None:
    rig = Rig(queue("q", "a"))
    logged_in(rig, "a")
    rig.do(CallArrived("c1", "q"), at=10.0)
    events = rig.do(CallerHungUp("c1"), at=14.0)
    assert only(events, StopRinging) == [StopRinging(14.0, "c1", "a", "caller-hung-up")]
    assert only(events, CallAbandoned) == [CallAbandoned(14.0, "c1", "q", 4.0)]
    assert only(events, CallOutcome) == [CallOutcome(14.0, "c1", "q", Outcome.ABANDONED, 4.0)]
    assert rig.state("a") is S.AVAILABLE
    assert rig.snap().agent("a").missed == 0
    assert rig.engine.get_timer() is None


# --- strategies ----------------------------------------------------------------------------------


def test_longest_idle_picks_the_agent_free_the_longest() -> None:
    rig = Rig(queue("q", "a", "b", "c", wrap_up=0.0))
    rig.do(AgentLogin("c"), at=0.0)
    rig.do(AgentLogin("a"), at=1.0)
    rig.do(AgentLogin("b"), at=2.0)
    assert rung(rig.do(CallArrived("c1", "q"), at=3.0)) == [("c1", "c")]
    rig.do(AgentAnswered("c", "c1"))
    rig.do(CallEnded("c1", Party.AGENT), at=4.0)  # c is now idle since 4: the shortest
    assert rung(rig.do(CallArrived("c2", "q"), at=5.0)) == [("c2", "a")]


def test_round_robin_goes_round_the_member_list_from_the_last_rung() -> None:
    rig = Rig(queue("q", "a", "b", "c", strategy=RingStrategy.ROUND_ROBIN, wrap_up=0.0))
    rig.do(AgentLogin("c"), at=0.0)  # the longest idle, but round-robin starts at the list's head
    rig.do(AgentLogin("a"), at=1.0)
    rig.do(AgentLogin("b"), at=2.0)
    order = []
    for n in range(4):
        call = f"c{n}"
        ((_, agent),) = rung(rig.do(CallArrived(call, "q"), at=10.0 + n))
        order.append(agent)
        rig.do(AgentAnswered(agent, call))
        rig.do(CallEnded(call, Party.AGENT))
    assert order == ["a", "b", "c", "a"]


def test_round_robin_continues_after_a_member_who_logged_out() -> None:
    rig = Rig(queue("q", "a", "b", "c", strategy=RingStrategy.ROUND_ROBIN, wrap_up=0.0))
    logged_in(rig, "a", "b", "c")
    rig.do(CallArrived("c1", "q"))
    rig.do(AgentAnswered("a", "c1"))
    rig.do(CallArrived("c2", "q"))
    rig.do(AgentAnswered("b", "c2"))
    rig.do(CallEnded("c2", Party.AGENT))
    rig.do(AgentLogout("b"))
    assert rung(rig.do(CallArrived("c3", "q"))) == [("c3", "c")]


def test_fewest_calls_picks_the_agent_with_fewest_answered() -> None:
    rig = Rig(queue("q", "a", "b", strategy=RingStrategy.FEWEST_CALLS, wrap_up=0.0))
    logged_in(rig, "a")
    for n in range(2):
        rig.do(CallArrived(f"c{n}", "q"), at=float(n))
        rig.do(AgentAnswered("a", f"c{n}"))
        rig.do(CallEnded(f"c{n}", Party.AGENT))
    rig.do(AgentLogin("b"), at=5.0)  # b is idle for less time, but has taken no call
    assert rung(rig.do(CallArrived("c9", "q"), at=6.0)) == [("c9", "b")]


def test_ring_all_rings_everyone_and_the_first_answer_wins_without_misses() -> None:
    rig = Rig(queue("q", "a", "b", "c", strategy=RingStrategy.RING_ALL))
    logged_in(rig, "a", "b", "c")
    assert rung(rig.do(CallArrived("c1", "q"))) == [("c1", "a"), ("c1", "b"), ("c1", "c")]
    events = rig.do(AgentAnswered("b", "c1"), at=3.0)
    assert only(events, StopRinging) == [
        StopRinging(3.0, "c1", "a", "answered-elsewhere"),
        StopRinging(3.0, "c1", "c", "answered-elsewhere"),
    ]
    assert only(events, ConnectCall) == [ConnectCall(3.0, "c1", "b", "q", 3.0)]
    snap = rig.snap()
    assert [(a.agent_id, a.state, a.missed) for a in snap.agents] == [
        ("a", S.AVAILABLE, 0),
        ("b", S.ON_CALL, 0),
        ("c", S.AVAILABLE, 0),
    ]


def test_ring_all_timeout_is_a_miss_for_everyone_rung() -> None:
    rig = Rig(queue("q", "a", "b", strategy=RingStrategy.RING_ALL, ring_timeout=10.0))
    logged_in(rig, "a", "b")
    rig.do(CallArrived("c1", "q"))
    events = rig.advance(10.0)
    assert [(e.agent_id, e.consecutive) for e in only(events, OfferMissed)] == [("a", 1), ("b", 1)]
    assert rung(events) == [("c1", "a"), ("c1", "b")]  # everyone tried: the round starts again


# --- ring timeout, misses, busy ----------------------------------------------------------------------


def test_ring_no_answer_moves_to_the_next_agent() -> None:
    rig = Rig(queue("q", "a", "b", ring_timeout=15.0))
    logged_in(rig, "a", "b")
    assert rung(rig.do(CallArrived("c1", "q"), at=1.0)) == [("c1", "a")]
    events = rig.advance(16.0)
    assert only(events, StopRinging) == [StopRinging(16.0, "c1", "a", "no-answer")]
    assert only(events, OfferMissed) == [OfferMissed(16.0, "c1", "a", 1)]
    assert rung(events) == [("c1", "b")]
    assert rig.state("a") is S.AVAILABLE
    assert rig.engine.get_timer() == 31.0


def test_a_declined_offer_is_a_miss_and_moves_on_at_once() -> None:
    rig = Rig(queue("q", "a", "b"))
    logged_in(rig, "a", "b")
    rig.do(CallArrived("c1", "q"))
    events = rig.do(AgentRejected("a", "c1"), at=2.0)
    assert only(events, OfferMissed) == [OfferMissed(2.0, "c1", "a", 1)]
    assert only(events, StopRinging) == []  # the phone already stopped
    assert rung(events) == [("c1", "b")]


def test_a_lone_agent_is_rung_again_and_auto_paused_after_n_misses() -> None:
    rig = Rig(queue("q", "a", ring_timeout=10.0), auto_pause_after=2, auto_pause_reason="no-answer-x2")
    logged_in(rig, "a")
    rig.do(CallArrived("c1", "q"))
    events = rig.advance(10.0)
    assert rung(events) == [("c1", "a")]  # nobody else: a again
    events = rig.advance(20.0)
    assert only(events, AgentStateChanged)[-1] == AgentStateChanged(
        20.0, "a", S.RINGING, S.PAUSED, "no-answer-x2"
    )
    assert rung(events) == []
    assert rig.snap().agent("a").missed == 2
    assert rig.engine.get_timer() is None  # the caller waits; nothing is due

    events = rig.do(AgentResume("a"), at=30.0)
    assert rung(events) == [("c1", "a")]
    assert rig.snap().agent("a").missed == 0
    assert rig.snap().agent("a").missed_total == 2


def test_answering_resets_the_consecutive_misses() -> None:
    rig = Rig(queue("q", "a", ring_timeout=10.0, wrap_up=0.0), auto_pause_after=2)
    logged_in(rig, "a")
    rig.do(CallArrived("c1", "q"))
    rig.advance(10.0)
    rig.do(AgentAnswered("a", "c1"))
    assert rig.snap().agent("a").missed == 0
    rig.do(CallEnded("c1", Party.AGENT))
    rig.do(CallArrived("c2", "q"))
    rig.advance(20.0)
    assert rig.state("a") is S.RINGING  # one miss since the answer: not paused


def test_auto_pause_off_when_zero() -> None:
    rig = Rig(queue("q", "a", ring_timeout=1.0), auto_pause_after=0)
    logged_in(rig, "a")
    rig.do(CallArrived("c1", "q"))
    rig.advance(50.5)
    assert rig.state("a") is S.RINGING
    assert rig.snap().agent("a").missed == 50


def test_busy_486_skips_the_agent_for_this_caller_without_a_miss() -> None:
    rig = Rig(queue("q", "a", "b", ring_timeout=10.0, busy_retry=30.0))
    logged_in(rig, "a", "b")
    rig.do(CallArrived("c1", "q"))
    events = rig.do(AgentBusy("a", "c1"), at=1.0)
    assert rung(events) == [("c1", "b")]
    assert only(events, OfferMissed) == []
    assert rig.snap().agent("a").missed == 0
    assert rig.state("a") is S.AVAILABLE
    # another caller may still get a
    assert rung(rig.do(CallArrived("c2", "q"), at=2.0)) == [("c2", "a")]
    rig.do(AgentAnswered("a", "c2"), at=3.0)
    rig.do(CallEnded("c2", Party.AGENT), at=4.0)
    rig.do(EndWrapUp("a"), at=5.0)
    # b rings out at 11: a is available but skipped for c1 until 31, so b is rung again
    assert rung(rig.advance(11.0)) == [("c1", "b")]
    assert rig.snap().entry("c1") is not None
    assert rig.snap().entry("c1").busy_retry_at == 31.0  # type: ignore[union-attr]


def test_a_busy_agent_is_offered_the_caller_again_after_busy_retry() -> None:
    rig = Rig(queue("q", "a", busy_retry=30.0))
    logged_in(rig, "a")
    rig.do(CallArrived("c1", "q"))
    assert rung(rig.do(AgentBusy("a", "c1"), at=1.0)) == []
    assert rig.engine.get_timer() == 31.0
    assert rung(rig.advance(31.0)) == [("c1", "a")]


def test_pausing_or_logging_out_while_ringing_moves_the_offer_on_without_a_miss() -> None:
    rig = Rig(queue("q", "a", "b", "c"))
    logged_in(rig, "a", "b", "c")
    rig.do(CallArrived("c1", "q"))
    events = rig.do(AgentPause("a", "toilet"), at=1.0)
    assert only(events, StopRinging) == [StopRinging(1.0, "c1", "a", "agent-paused")]
    assert rung(events) == [("c1", "b")]
    events = rig.do(AgentLogout("b"), at=2.0)
    assert rung(events) == [("c1", "c")]
    assert [rig.snap().agent(x).missed for x in "abc"] == [0, 0, 0]
    assert rig.snap().agent("a").reason == "toilet"


# --- tiers ------------------------------------------------------------------------------------------


def test_tier_widening_keeps_the_callers_place() -> None:
    rig = Rig(queue("q", ("a", 0), ("b", 1), tier_step=30.0))
    logged_in(rig, "a")
    rig.do(CallArrived("c0", "q"), at=0.0)
    rig.do(AgentAnswered("a", "c0"), at=0.0)  # a is busy from now on
    rig.do(CallArrived("c1", "q"), at=1.0)
    rig.do(CallArrived("c2", "q"), at=20.0)
    assert rung(rig.do(AgentLogin("b"), at=25.0)) == []  # tier 1 has not joined anyone's pool yet
    events = rig.advance(31.0)
    assert rung(events) == [("c1", "b")]  # c1's pool widened first; c2 keeps its place behind
    assert [(e.call_id, e.position, e.tier_level) for e in rig.snap().queue("q").entries] == [
        ("c1", 1, 1),
        ("c2", 2, 0),
    ]
    assert rig.engine.get_timer() == 46.0  # c1's offer rings out at 46; c2 widens at 50


def test_without_tier_step_every_tier_is_eligible_at_once() -> None:
    rig = Rig(queue("q", ("a", 0), ("b", 3)))
    logged_in(rig, "b")
    assert rung(rig.do(CallArrived("c1", "q"))) == [("c1", "b")]


def test_lower_tier_is_preferred_while_both_are_eligible() -> None:
    rig = Rig(queue("q", ("b", 1), ("a", 0), tier_step=10.0))
    logged_in(rig, "b", "a")
    assert rung(rig.do(CallArrived("c1", "q"))) == [("c1", "a")]


# --- max wait and overflow ------------------------------------------------------------------------


def test_max_wait_overflows_to_another_queue_keeping_priority() -> None:
    sales = queue("sales", "a", max_wait=60.0, overflow=Overflow(OverflowKind.QUEUE, "support"))
    rig = Rig(sales, queue("support", "b"))
    rig.do(CallArrived("t1", "support", priority=0), at=0.0)
    rig.do(CallArrived("s1", "sales", priority=2), at=10.0)
    events = rig.advance(70.0)
    assert only(events, CallOverflowed) == [
        CallOverflowed(70.0, "s1", "sales", OverflowKind.QUEUE, "support")
    ]
    assert only(events, CallQueued) == [CallQueued(70.0, "s1", "support", 1)]
    assert only(events, CallOutcome) == []
    entry = rig.snap().entry("s1")
    assert entry is not None and entry.queue == "support" and entry.waited == 60.0
    assert entry.waited_in_queue == 0.0 and entry.priority == 2


def test_overflow_into_a_full_queue_is_blocked() -> None:
    sales = queue("sales", "a", max_wait=5.0, overflow=Overflow(OverflowKind.QUEUE, "support"))
    rig = Rig(sales, queue("support", "b", max_length=0))
    rig.do(CallArrived("s1", "sales"))
    events = rig.advance(5.0)
    assert only(events, CallOutcome) == [CallOutcome(5.0, "s1", "support", Outcome.BLOCKED, 5.0)]


def test_max_wait_to_voicemail_ends_the_call_in_the_engine() -> None:
    rig = Rig(queue("q", "a", max_wait=60.0, overflow=Overflow(OverflowKind.VOICEMAIL)))
    rig.do(CallArrived("c1", "q"))
    events = rig.advance(100.0)
    assert events == [
        CallOverflowed(60.0, "c1", "q", OverflowKind.VOICEMAIL, None),
        CallOutcome(60.0, "c1", "q", Outcome.VOICEMAIL, 60.0),
    ]
    assert rig.snap().queue("q").entries == ()
    with pytest.raises(AcdError):
        rig.do(CallerHungUp("c1"))


def test_max_wait_waits_for_a_ringing_offer_to_end() -> None:
    rig = Rig(queue("q", "a", ring_timeout=15.0, max_wait=60.0, overflow=Overflow(OverflowKind.VOICEMAIL)))
    rig.do(CallArrived("c1", "q"))
    rig.do(AgentLogin("a"), at=55.0)
    assert rig.advance(69.0) == []  # ringing at 60: the agent may be about to answer
    events = rig.advance(70.0)
    assert [type(e).__name__ for e in events] == [
        "StopRinging",
        "OfferMissed",
        "AgentStateChanged",
        "CallOverflowed",
        "CallOutcome",
    ]


def test_no_overflow_without_a_target() -> None:
    rig = Rig(queue("q", "a", max_wait=10.0))
    rig.do(CallArrived("c1", "q"))
    assert rig.engine.get_timer() is None
    assert rig.advance(1000.0) == []


def test_max_wait_to_callback_keeps_the_place() -> None:
    rig = Rig(queue("q", "a", max_wait=60.0, overflow=Overflow(OverflowKind.CALLBACK)))
    rig.do(CallArrived("c1", "q", caller="0311112222"), at=0.0)
    rig.do(CallArrived("c2", "q", caller="0333334444"), at=30.0)
    events = rig.advance(60.0)
    assert events == [
        CallOverflowed(60.0, "c1", "q", OverflowKind.CALLBACK, None),
        CallbackQueued(60.0, "c1", "q", "0311112222", 1),
    ]
    assert [(e.call_id, e.callback_number) for e in rig.snap().queue("q").entries] == [
        ("c1", "0311112222"),
        ("c2", None),
    ]
    assert rig.engine.get_timer() == 90.0  # c2's turn; c1 never overflows again


def test_callback_overflow_needs_a_number() -> None:
    rig = Rig(queue("q", "a", max_wait=60.0, overflow=Overflow(OverflowKind.CALLBACK)))
    rig.do(CallArrived("anon", "q"))
    assert rig.engine.get_timer() is None


# --- callback in queue -----------------------------------------------------------------------------


def test_callback_keeps_the_place_rings_the_agent_first_and_counts_the_outcome() -> None:
    rig = Rig(queue("q", "a", wrap_up=0.0))
    rig.do(CallArrived("c1", "q"), at=0.0)
    rig.do(CallArrived("c2", "q", caller="0311112222"), at=1.0)
    rig.do(CallArrived("c3", "q"), at=2.0)
    events = rig.do(RequestCallback("c2"), at=40.0)
    assert events == [CallbackQueued(40.0, "c2", "q", "0311112222", 2)]
    assert [e.call_id for e in rig.snap().queue("q").entries] == ["c1", "c2", "c3"]
    with pytest.raises(AcdError):
        rig.do(CallerHungUp("c2"))  # that caller is not on the line any more

    rig.do(AgentLogin("a"), at=50.0)
    rig.do(AgentAnswered("a", "c1"))
    events = rig.do(CallEnded("c1", Party.AGENT), at=60.0)
    assert only(events, RingAgent) == [RingAgent(60.0, "c2", "a", "q", 15.0, "0311112222")]
    events = rig.do(AgentAnswered("a", "c2"), at=62.0)
    assert only(events, CallbackDue) == [CallbackDue(62.0, "c2", "a", "q", "0311112222")]
    assert only(events, ConnectCall) == [] and only(events, CallOutcome) == []
    events = rig.do(CallbackResult("c2", reached=True), at=80.0)
    assert events == [CallOutcome(80.0, "c2", "q", Outcome.CALLBACK_CONNECTED, 79.0)]
    with pytest.raises(AcdError):
        rig.do(CallbackResult("c2", reached=False))
    events = rig.do(CallEnded("c2", Party.CALLER), at=200.0)
    assert only(events, StartWrapUp) and only(events, CallOutcome) == []


def test_a_callback_that_does_not_reach_the_customer_fails_and_frees_the_agent() -> None:
    rig = Rig(queue("q", "a", wrap_up=20.0))
    rig.do(CallArrived("c1", "q", caller="0311112222"))
    rig.do(RequestCallback("c1", number="09000000000"), at=5.0)
    assert rung(rig.do(AgentLogin("a"), at=10.0)) == [("c1", "a")]
    rig.do(AgentAnswered("a", "c1"), at=11.0)
    events = rig.do(CallbackResult("c1", reached=False), at=40.0)
    assert only(events, CallOutcome) == [CallOutcome(40.0, "c1", "q", Outcome.CALLBACK_FAILED, 40.0)]
    assert only(events, StartWrapUp) == [StartWrapUp(40.0, "a", "c1", Party.CALLER, 60.0)]


def test_requesting_a_callback_while_ringing_withdraws_the_offer_and_rings_again_as_callback() -> None:
    rig = Rig(queue("q", "a"))
    logged_in(rig, "a")
    rig.do(CallArrived("c1", "q", caller="0311112222"))
    events = rig.do(RequestCallback("c1"), at=3.0)
    assert only(events, StopRinging) == [StopRinging(3.0, "c1", "a", "callback")]
    assert only(events, RingAgent) == [RingAgent(3.0, "c1", "a", "q", 15.0, "0311112222")]
    assert rig.snap().agent("a").missed == 0


def test_a_callback_needs_a_number_and_a_waiting_caller() -> None:
    rig = Rig(queue("q", "a"))
    rig.do(CallArrived("c1", "q"))
    with pytest.raises(AcdError):
        rig.do(RequestCallback("c1"))
    with pytest.raises(AcdError):
        rig.do(RequestCallback("nope", number="1"))
    rig.do(RequestCallback("c1", number="1"))
    with pytest.raises(AcdError):
        rig.do(RequestCallback("c1", number="1"))


# --- misuse changes nothing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        CallArrived("c1", "q"),  # already there
        CallArrived("c9", "nowhere"),
        CallerHungUp("c9"),
        CallEnded("c1", Party.AGENT),  # not connected
        CallbackResult("c1", reached=True),
        AgentLogin("ghost"),
        AgentLogin("a"),  # already logged in
        AgentAnswered("b", "c1"),  # b is not ringing
        AgentAnswered("a", "c9"),  # a rings for c1, not c9
        AgentRejected("a", "c9"),
        AgentBusy("a", "c9"),
        EndWrapUp("a"),
        AgentResume("a"),
    ],
)
def test_a_refused_command_raises_and_changes_nothing(command: object) -> None:
    rig = Rig(queue("q", "a", "b"))
    logged_in(rig, "a")
    rig.do(CallArrived("c1", "q"), at=1.0)
    before = rig.snap()
    with pytest.raises(AcdError):
        rig.do(command, at=2.0)  # type: ignore[arg-type]
    assert rig.engine.events() == []
    assert rig.engine.snapshot(now=1.0) == before


def test_illegal_agent_moves_name_the_agent_state_and_trigger() -> None:
    rig = Rig(queue("q", "a"))
    with pytest.raises(IllegalTransition) as caught:
        rig.do(AgentPause("a", "lunch"))
    assert (caught.value.agent_id, caught.value.state, caught.value.trigger) == (
        "a",
        S.LOGGED_OUT,
        "AgentPause",
    )
    assert "logged-out" in str(caught.value)


def test_time_may_not_go_backwards() -> None:
    rig = Rig(queue("q", "a"))
    rig.do(AgentLogin("a"), at=10.0)
    with pytest.raises(AcdError):
        rig.engine.handle(CallArrived("c1", "q"), now=9.0)
    with pytest.raises(AcdError):
        rig.engine.handle_timer(now=9.0)
    assert rig.snap().queue("q").entries == ()


def test_pause_reason_changes_while_paused() -> None:
    rig = Rig(queue("q", "a"))
    logged_in(rig, "a")
    rig.do(AgentPause("a", "break"))
    events = rig.do(AgentPause("a", "meeting"), at=5.0)
    assert events == [AgentStateChanged(5.0, "a", S.PAUSED, S.PAUSED, "meeting")]
