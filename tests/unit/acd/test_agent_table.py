"""The agent state table, cell by cell, and the engine following it for every public agent command."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ccdaemon.acd.agents import AGENT_TRANSITIONS, ALL_TRIGGERS, AgentTrigger, Internal, next_state
from ccdaemon.acd.model import (
    AcdError,
    AgentAnswered,
    AgentBusy,
    AgentCommand,
    AgentLogin,
    AgentLogout,
    AgentPause,
    AgentRejected,
    AgentResume,
    AgentState,
    AgentStateChanged,
    CallArrived,
    CallEnded,
    Command,
    EndWrapUp,
    IllegalTransition,
    Party,
)

from .rig import Rig, only, queue

S = AgentState
I = Internal  # noqa: E741

# Written out independently of the table: every (state, trigger) cell not listed here is illegal.
EXPECTED: dict[tuple[AgentState, AgentTrigger], AgentState] = {
    (S.LOGGED_OUT, AgentLogin): S.AVAILABLE,
    (S.AVAILABLE, I.OFFER): S.RINGING,
    (S.AVAILABLE, AgentPause): S.PAUSED,
    (S.AVAILABLE, AgentLogout): S.LOGGED_OUT,
    (S.RINGING, AgentAnswered): S.ON_CALL,
    (S.RINGING, AgentRejected): S.AVAILABLE,
    (S.RINGING, AgentBusy): S.AVAILABLE,
    (S.RINGING, I.RING_TIMEOUT): S.AVAILABLE,
    (S.RINGING, I.AUTO_PAUSE): S.PAUSED,
    (S.RINGING, I.OFFER_WITHDRAWN): S.AVAILABLE,
    (S.RINGING, AgentPause): S.PAUSED,
    (S.RINGING, AgentLogout): S.LOGGED_OUT,
    (S.ON_CALL, CallEnded): S.WRAP_UP,
    (S.WRAP_UP, EndWrapUp): S.AVAILABLE,
    (S.WRAP_UP, I.WRAP_UP_ELAPSED): S.AVAILABLE,
    (S.WRAP_UP, AgentPause): S.PAUSED,
    (S.WRAP_UP, AgentLogout): S.LOGGED_OUT,
    (S.PAUSED, AgentResume): S.AVAILABLE,
    (S.PAUSED, AgentPause): S.PAUSED,
    (S.PAUSED, AgentLogout): S.LOGGED_OUT,
}

CELLS = [(state, trigger) for state in AgentState for trigger in ALL_TRIGGERS]


def _id(value: object) -> str:
    return str(getattr(value, "name", None) or getattr(value, "__name__", value))


def test_every_state_has_a_row_and_every_key_is_a_known_trigger() -> None:
    assert set(AGENT_TRANSITIONS) == set(AgentState)
    for row in AGENT_TRANSITIONS.values():
        assert set(row) <= set(ALL_TRIGGERS)
    assert len(set(ALL_TRIGGERS)) == len(ALL_TRIGGERS)


@pytest.mark.parametrize(("state", "trigger"), CELLS, ids=[f"{_id(s)}-{_id(t)}" for s, t in CELLS])
def test_cell(state: AgentState, trigger: AgentTrigger) -> None:
    expected = EXPECTED.get((state, trigger))
    if expected is None:
        assert trigger not in AGENT_TRANSITIONS[state]
        with pytest.raises(IllegalTransition):
            next_state("a", state, trigger)
    else:
        assert next_state("a", state, trigger) is expected


def test_the_table_cannot_be_changed() -> None:
    with pytest.raises(TypeError):
        AGENT_TRANSITIONS[S.PAUSED][AgentLogin] = S.AVAILABLE  # type: ignore[index]


# --- the engine follows the table -------------------------------------------------------------------


def _rig_in(state: AgentState) -> Rig:
    """Agent "a" in ``state``; call "c1" is the one it rings for / talks on / wraps up."""
    rig = Rig(queue("q", "a", wrap_up=30.0))
    steps: dict[AgentState, list[Command]] = {
        S.LOGGED_OUT: [],
        S.AVAILABLE: [AgentLogin("a")],
        S.RINGING: [AgentLogin("a"), CallArrived("c1", "q")],
        S.ON_CALL: [AgentLogin("a"), CallArrived("c1", "q"), AgentAnswered("a", "c1")],
        S.WRAP_UP: [
            AgentLogin("a"),
            CallArrived("c1", "q"),
            AgentAnswered("a", "c1"),
            CallEnded("c1", Party.AGENT),
        ],
        S.PAUSED: [AgentLogin("a"), AgentPause("a", "break")],
    }
    for command in steps[state]:
        rig.do(command)
    assert rig.state("a") is state
    return rig


PUBLIC: dict[type[Command], Callable[[], Command]] = {
    AgentLogin: lambda: AgentLogin("a"),
    AgentLogout: lambda: AgentLogout("a"),
    AgentPause: lambda: AgentPause("a", "lunch"),
    AgentResume: lambda: AgentResume("a"),
    EndWrapUp: lambda: EndWrapUp("a"),
    AgentAnswered: lambda: AgentAnswered("a", "c1"),
    AgentRejected: lambda: AgentRejected("a", "c1"),
    AgentBusy: lambda: AgentBusy("a", "c1"),
    CallEnded: lambda: CallEnded("c1", Party.CALLER),
}
ENGINE_CELLS = [(state, kind) for state in AgentState for kind in PUBLIC]


def test_every_public_trigger_of_the_table_is_exercised() -> None:
    assert set(PUBLIC) == {t for t in ALL_TRIGGERS if not isinstance(t, Internal)}
    assert all(issubclass(t, AgentCommand) for t in PUBLIC if t is not CallEnded)


@pytest.mark.parametrize(
    ("state", "kind"), ENGINE_CELLS, ids=[f"{s.name}-{k.__name__}" for s, k in ENGINE_CELLS]
)
def test_engine_cell(state: AgentState, kind: type[Command]) -> None:
    rig = _rig_in(state)
    rig.now = 5.0
    before = rig.snap()
    expected = EXPECTED.get((state, kind))
    if expected is None:
        with pytest.raises(AcdError):
            rig.do(PUBLIC[kind]())
        assert rig.engine.events() == []
        assert rig.snap() == before
        return
    events = rig.do(PUBLIC[kind]())
    # the first change of "a" is the table's; the engine may move on (e.g. available -> ringing again)
    first = only(events, AgentStateChanged)[0]
    assert (first.agent_id, first.old, first.new) == ("a", state, expected)
