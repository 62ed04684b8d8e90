"""Agent states as data: which trigger moves an agent from which state to which.

Everything that decides *which state follows which* lives in :data:`AGENT_TRANSITIONS` (h11's
``_state.py`` is the model); the effects (ring, withdraw offers, start wrap-up timers, count misses)
live in :mod:`ccdaemon.acd.engine`.  A trigger is either a command type the app sends or an
:class:`Internal` trigger the engine raises itself (an offer, a timer).  A trigger missing from a
state's row is illegal: :func:`next_state` raises :class:`IllegalTransition` and nothing changes.
The exhaustive state x trigger test is written against this table.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, TypeAlias

from .model import (
    AgentAnswered,
    AgentBusy,
    AgentLogin,
    AgentLogout,
    AgentPause,
    AgentRejected,
    AgentResume,
    AgentState,
    CallEnded,
    Command,
    EndWrapUp,
    IllegalTransition,
)


class Internal(enum.Enum):
    """Triggers the engine raises itself; the app never sends them."""

    OFFER = "offer"  # the engine chose this agent for a caller
    OFFER_WITHDRAWN = "offer-withdrawn"  # caller hung up, someone else answered, overflow, callback
    RING_TIMEOUT = "ring-timeout"  # the offer rang out
    AUTO_PAUSE = "auto-pause"  # a missed offer that reached AcdConfig.auto_pause_after
    WRAP_UP_ELAPSED = "wrap-up-elapsed"


AgentTrigger: TypeAlias = type[Command] | Internal

_S = AgentState

_TABLE: dict[AgentState, dict[AgentTrigger, AgentState]] = {
    _S.LOGGED_OUT: {
        AgentLogin: _S.AVAILABLE,
    },
    _S.AVAILABLE: {
        Internal.OFFER: _S.RINGING,
        AgentPause: _S.PAUSED,
        AgentLogout: _S.LOGGED_OUT,
    },
    _S.RINGING: {
        AgentAnswered: _S.ON_CALL,
        AgentRejected: _S.AVAILABLE,  # a miss
        AgentBusy: _S.AVAILABLE,  # 486: not a miss, skipped for this caller
        Internal.RING_TIMEOUT: _S.AVAILABLE,  # a miss
        Internal.AUTO_PAUSE: _S.PAUSED,  # the miss that reached the limit
        Internal.OFFER_WITHDRAWN: _S.AVAILABLE,  # not a miss
        AgentPause: _S.PAUSED,  # the offer is withdrawn, not a miss
        AgentLogout: _S.LOGGED_OUT,  # likewise
    },
    _S.ON_CALL: {
        # pause and logout wait for the call to end: the agent's phone is busy with the caller
        CallEnded: _S.WRAP_UP,
    },
    _S.WRAP_UP: {
        EndWrapUp: _S.AVAILABLE,
        Internal.WRAP_UP_ELAPSED: _S.AVAILABLE,
        AgentPause: _S.PAUSED,  # ends the wrap-up: going on a break straight after a call is common
        AgentLogout: _S.LOGGED_OUT,
    },
    _S.PAUSED: {
        AgentResume: _S.AVAILABLE,
        AgentPause: _S.PAUSED,  # a new reason (e.g. break -> meeting), logged as a change
        AgentLogout: _S.LOGGED_OUT,
    },
}

AGENT_TRANSITIONS: Final[Mapping[AgentState, Mapping[AgentTrigger, AgentState]]] = MappingProxyType(
    {state: MappingProxyType(row) for state, row in _TABLE.items()}
)

# Every trigger the table knows about: the exhaustive test walks state x ALL_TRIGGERS.
ALL_TRIGGERS: Final[tuple[AgentTrigger, ...]] = (
    AgentLogin,
    AgentLogout,
    AgentPause,
    AgentResume,
    EndWrapUp,
    AgentAnswered,
    AgentRejected,
    AgentBusy,
    CallEnded,
    *Internal,
)

# States in which an agent counts as staffing a queue (for the wait estimate and live figures).
STAFFED: Final = frozenset({_S.AVAILABLE, _S.RINGING, _S.ON_CALL, _S.WRAP_UP})


def trigger_name(trigger: AgentTrigger) -> str:
    return trigger.value if isinstance(trigger, Internal) else trigger.__name__


def next_state(agent_id: str, state: AgentState, trigger: AgentTrigger) -> AgentState:
    """The state ``trigger`` leads to from ``state``; IllegalTransition if there is none."""
    try:
        return AGENT_TRANSITIONS[state][trigger]
    except KeyError:
        raise IllegalTransition(agent_id, state, trigger_name(trigger)) from None


__all__ = ["AGENT_TRANSITIONS", "ALL_TRIGGERS", "STAFFED", "AgentTrigger", "Internal", "next_state"]
