"""The ACD engine's vocabulary: configuration, commands in, events out, errors.

Commands are what the app tells the engine (a caller arrived, an agent answered, an agent pressed
the pause code); events are what the engine decides or observes, each stamped with ``at``, the
``now`` of the input that caused it.  Events whose docstring starts with "Action" must be executed
by the app (ring a phone, bridge, play a message); the others are for the call log only.
Everything here is a frozen value; the engine keeps its mutable state to itself.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# --- configuration ------------------------------------------------------------------------------


class RingStrategy(enum.Enum):
    LONGEST_IDLE = "longest-idle"  # the agent available for the longest time since their last call
    ROUND_ROBIN = "round-robin"  # the next member after the one rung last, in member order
    RING_ALL = "ring-all"  # every eligible agent at once; the first to answer gets the call
    FEWEST_CALLS = "fewest-calls"  # the agent who has answered the fewest calls


class OverflowKind(enum.Enum):
    QUEUE = "queue"  # move to another queue, keeping priority and arrival order
    VOICEMAIL = "voicemail"  # the app sends the caller to voicemail; the call leaves the engine
    CALLBACK = "callback"  # the caller is offered a callback: a virtual entry keeps the place


@dataclass(frozen=True, slots=True)
class Overflow:
    kind: OverflowKind
    queue: str | None = None  # the target queue, for OverflowKind.QUEUE only

    def __post_init__(self) -> None:
        if (self.kind is OverflowKind.QUEUE) != (self.queue is not None):
            raise ValueError("an overflow names a queue exactly when its kind is QUEUE")


@dataclass(frozen=True, slots=True)
class QueueMember:
    """An agent serving a queue.  Lower tiers are rung first; a tier ``t`` joins the pool once a
    caller has waited ``(t - lowest tier) * tier_step`` seconds in the queue."""

    agent_id: str
    tier: int = 0


@dataclass(frozen=True, slots=True)
class QueueConfig:
    name: str
    members: tuple[QueueMember, ...] = ()
    strategy: RingStrategy = RingStrategy.LONGEST_IDLE
    ring_timeout: float = 15.0  # seconds an offer rings before it goes to the next agent
    max_length: int | None = None  # callers waiting (including callback entries); more are blocked
    max_wait: float | None = None  # seconds in this queue before ``overflow`` (nothing if overflow is None)
    overflow: Overflow | None = None
    wrap_up: float = 10.0  # after-call work, seconds; 0 makes the agent available at once
    tier_step: float | None = None  # None: every tier is eligible from the start
    busy_retry: float = 30.0  # an agent who answered 486 is not offered the same caller again before this
    music: str = ""  # opaque ids the app resolves; the engine only carries them
    announcement: str = ""
    full_message: str = ""
    expected_handle: float = 180.0  # EWT prior: talk + wrap-up seconds, until calls are observed
    expected_patience: float = 300.0  # EWT prior: mean seconds a caller waits before hanging up

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a queue needs a name")
        ids = [member.agent_id for member in self.members]
        if len(set(ids)) != len(ids):
            raise ValueError(f"queue {self.name}: an agent is listed twice")
        positive: dict[str, float | None] = {
            "ring_timeout": self.ring_timeout,
            "busy_retry": self.busy_retry,
            "expected_handle": self.expected_handle,
            "expected_patience": self.expected_patience,
            "max_wait": self.max_wait,
            "tier_step": self.tier_step,
        }
        for key, value in positive.items():
            if value is not None and value <= 0:
                raise ValueError(f"queue {self.name}: {key} must be positive")
        if self.wrap_up < 0 or (self.max_length is not None and self.max_length < 0):
            raise ValueError(f"queue {self.name}: wrap_up and max_length must not be negative")


@dataclass(frozen=True, slots=True)
class AcdConfig:
    queues: tuple[QueueConfig, ...]
    agents: tuple[str, ...] = ()  # agents in no queue yet; every queue member is known anyway
    auto_pause_after: int = 3  # consecutive missed offers that pause an agent; 0 never pauses
    auto_pause_reason: str = "missed-calls"
    smoothing: float = 0.1  # weight of the newest observation in the EWT statistics

    def __post_init__(self) -> None:
        names = [queue.name for queue in self.queues]
        if len(set(names)) != len(names):
            raise ValueError("queue names must be unique")
        for queue in self.queues:
            target = queue.overflow.queue if queue.overflow is not None else None
            if target is not None and target not in names:
                raise ValueError(f"queue {queue.name}: overflow to unknown queue {target}")
        if self.auto_pause_after < 0 or not 0 < self.smoothing <= 1:
            raise ValueError("auto_pause_after must be >= 0 and smoothing in (0, 1]")

    @property
    def agent_ids(self) -> tuple[str, ...]:
        """Every agent, in the order first named (that order breaks strategy ties)."""
        seen = dict.fromkeys(self.agents)
        for queue in self.queues:
            seen |= dict.fromkeys(member.agent_id for member in queue.members)
        return tuple(seen)


# --- agent states and outcomes --------------------------------------------------------------------


class AgentState(enum.Enum):
    LOGGED_OUT = "logged-out"
    AVAILABLE = "available"
    RINGING = "ringing"  # holds exactly one offer
    ON_CALL = "on-call"
    WRAP_UP = "wrap-up"  # after-call work, ended by its timer or early by the agent
    PAUSED = "paused"  # with a reason


class Outcome(enum.Enum):
    """How a call left the engine; every arrived call gets exactly one."""

    ANSWERED = "answered"
    ABANDONED = "abandoned"
    BLOCKED = "blocked"
    VOICEMAIL = "voicemail"
    CALLBACK_CONNECTED = "callback-connected"
    CALLBACK_FAILED = "callback-failed"


class Party(enum.Enum):
    CALLER = "caller"
    AGENT = "agent"


# --- commands (app -> engine) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """Base class of every input to :meth:`AcdEngine.handle`."""


@dataclass(frozen=True, slots=True)
class CallArrived(Command):
    call_id: str
    queue: str
    priority: int = 0  # higher is served first; FIFO within a priority
    caller: str = ""  # the caller's number, used for a callback


@dataclass(frozen=True, slots=True)
class CallerHungUp(Command):
    """The caller hung up: an abandon while queued, the end of the call once connected."""

    call_id: str


@dataclass(frozen=True, slots=True)
class RequestCallback(Command):
    """The caller chose to be called back: the entry turns virtual and keeps its place."""

    call_id: str
    number: str | None = None  # None: the caller's own number from CallArrived


@dataclass(frozen=True, slots=True)
class CallbackResult(Command):
    """After CallbackDue: whether the customer was reached.  Not reached also ends the agent's call."""

    call_id: str
    reached: bool


@dataclass(frozen=True, slots=True)
class CallEnded(Command):
    """A connected call ended (either side hung up): the agent goes to wrap-up."""

    call_id: str
    by: Party


@dataclass(frozen=True, slots=True)
class AgentCommand(Command):
    agent_id: str


@dataclass(frozen=True, slots=True)
class AgentLogin(AgentCommand):
    pass


@dataclass(frozen=True, slots=True)
class AgentLogout(AgentCommand):
    pass


@dataclass(frozen=True, slots=True)
class AgentPause(AgentCommand):
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AgentResume(AgentCommand):
    pass


@dataclass(frozen=True, slots=True)
class EndWrapUp(AgentCommand):
    pass


@dataclass(frozen=True, slots=True)
class AgentAnswered(AgentCommand):
    call_id: str


@dataclass(frozen=True, slots=True)
class AgentRejected(AgentCommand):
    """The agent declined the offer (e.g. 603, 480): counted as a missed offer."""

    call_id: str


@dataclass(frozen=True, slots=True)
class AgentBusy(AgentCommand):
    """The PBX answered the offer 486 Busy Here: the agent's phone is in another call.

    Not a missed offer (the phone never rang, so the agent is not at fault and is not auto-paused);
    the agent is skipped for this caller for ``QueueConfig.busy_retry`` seconds.
    """

    call_id: str


# --- events (engine -> app) -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AcdEvent:
    at: float


@dataclass(frozen=True, slots=True)
class CallQueued(AcdEvent):
    call_id: str
    queue: str
    position: int  # 1 is next


@dataclass(frozen=True, slots=True)
class CallBlocked(AcdEvent):
    """Action: play the queue's full message and hang up (the queue is at max_length)."""

    call_id: str
    queue: str
    message: str


@dataclass(frozen=True, slots=True)
class RingAgent(AcdEvent):
    """Action: ring the agent's phone for ``timeout`` seconds; report answered, rejected or busy."""

    call_id: str
    agent_id: str
    queue: str
    timeout: float
    callback_number: str | None = None  # set when the offer is a callback: the customer is called after


@dataclass(frozen=True, slots=True)
class StopRinging(AcdEvent):
    """Action: cancel the offer (the reason is for the log)."""

    call_id: str
    agent_id: str
    reason: str  # no-answer, answered-elsewhere, caller-hung-up, overflow, callback, agent-paused, ...


@dataclass(frozen=True, slots=True)
class OfferMissed(AcdEvent):
    """An agent let an offer ring out or declined it."""

    call_id: str
    agent_id: str
    consecutive: int


@dataclass(frozen=True, slots=True)
class ConnectCall(AcdEvent):
    """Action: bridge the caller to the agent who answered."""

    call_id: str
    agent_id: str
    queue: str
    waited: float


@dataclass(frozen=True, slots=True)
class CallbackDue(AcdEvent):
    """Action: the agent answered a callback offer; call the customer and report CallbackResult."""

    call_id: str
    agent_id: str
    queue: str
    number: str


@dataclass(frozen=True, slots=True)
class CallbackQueued(AcdEvent):
    """Action: tell the caller they will be called back and hang up; their place is kept."""

    call_id: str
    queue: str
    number: str
    position: int


@dataclass(frozen=True, slots=True)
class CallOverflowed(AcdEvent):
    """Action: the caller waited ``max_wait``; move them to voicemail, another queue's music, or a
    callback (followed by CallbackQueued)."""

    call_id: str
    from_queue: str
    kind: OverflowKind
    to_queue: str | None


@dataclass(frozen=True, slots=True)
class CallAbandoned(AcdEvent):
    call_id: str
    queue: str
    waited: float


@dataclass(frozen=True, slots=True)
class StartWrapUp(AcdEvent):
    """The call ended; the agent does after-call work until ``until`` or EndWrapUp."""

    agent_id: str
    call_id: str
    ended_by: Party
    until: float


@dataclass(frozen=True, slots=True)
class AgentStateChanged(AcdEvent):
    agent_id: str
    old: AgentState
    new: AgentState
    reason: str  # the pause reason, or what caused the change (login, no-answer, wrap-up-ended, ...)


@dataclass(frozen=True, slots=True)
class CallOutcome(AcdEvent):
    """The one outcome of a call (exactly one per CallArrived); ``waited`` counts from arrival."""

    call_id: str
    queue: str
    outcome: Outcome
    waited: float


# --- errors -------------------------------------------------------------------------------------


class AcdError(Exception):
    """The app asked for something the engine does not allow; nothing was changed."""


class IllegalTransition(AcdError):
    """An agent command that the agent's current state does not allow."""

    def __init__(self, agent_id: str, state: AgentState, trigger: str) -> None:
        super().__init__(f"agent {agent_id}: {trigger} is not allowed in state {state.value}")
        self.agent_id = agent_id
        self.state = state
        self.trigger = trigger
