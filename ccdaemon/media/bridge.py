"""Call legs connected through the daemon, a supervisor's monitor / whisper / barge, and the recording tap.

Pure: no asyncio, no clock. The only inputs are the legs' RTP sender ticks (each leg calls the frame
source the bridge gave it once per 20 ms, on its own deadline grid) and API calls.

Who hears whom (:data:`HEARS`):

=========  ===============================  ==============================  ======================
mode       caller hears                     agent hears                     supervisor hears
=========  ===============================  ==============================  ======================
(none)     agent                            caller                          --
monitor    agent                            caller                          caller + agent
whisper    agent                            caller + supervisor             caller + agent
barge      agent + supervisor               caller + supervisor             caller + agent
=========  ===============================  ==============================  ======================

With the caller on hold (:meth:`Bridge.hold_caller`) nobody hears the caller and the caller hears only
the hold source (music), so agent and supervisor can consult; the supervisor can then take the call with
:meth:`Bridge.replace_agent` (warm transfer) or leave with :meth:`Bridge.detach` (cancel). The SIP side of
a hold (``Call.hold()``, a re-INVITE) is the caller's business; the bridge only routes the audio.

**Pulling each leg once per frame.** ``pull_frame()`` consumes the leg's jitter buffer, so a leg's audio
must be pulled once per 20 ms however many parties hear it: pulling it for each listener would halve
it. Every leg's received audio has a one-frame mailbox per consumer (:class:`_LegState`). A consumer
whose mailbox is empty pulls a new frame and drops it into every other consumer's mailbox; one whose
mailbox is full takes that frame. All legs tick every 20 ms on the same loop clock, so the first consumer
to tick in each period pulls and the others find the frame waiting: one pull per source per period, in
any order of the ticks. A consumer that stops ticking (its leg sends DTMF, or is on hold towards the
peer) only gets its mailbox overwritten: when it comes back it hears the newest frame, not a backlog.
A listener that joins (mode switch, new leg) gets the newest frame if it was pulled in the current
period (the recording clock's) and the listener has not ticked since, so joining never causes a second
pull in a period; pull and tick times are kept per leg, so the same holds for a leg that changes role or
comes back. One frame per mailbox adds no latency; the price is a skipped frame if the order of two
legs' ticks ever flips (timers fire in deadline order, so only a leg that restarts on a new phase can).

**The recording clock.** The recording is one more consumer, driven without a clock: a tick of a leg
that has already ticked since the last recorded frame means a new 20 ms period has begun, so one stereo
frame is written (left and right taken together, so the channels can never shift against each other,
as two separately fed channels did after a short pause of one side).
Whichever legs are still ticking keep the recording in time: one leg on hold or muted, a leg being
replaced, a leg sending DTMF. The recording also drains sources nobody hears (the supervisor in monitor
mode), so their jitter buffers stay fresh for the moment they are heard.

**What is recorded**: left = the caller; right = what the caller hears from the other parties (the agent,
plus the supervisor while barging). A whisper is not recorded — the caller never heard it — and neither
is a consultation while the caller is on hold (the right channel is silent, hold music is not recorded).
The recording is the record of the customer's conversation; it continues across hold, supervisor modes
and leg replacement (transfer) without a gap, because the same consumer keeps writing it.

Frames are 20 ms of PCM16 (the daemon's ptime); a party hearing one source gets that frame unchanged.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping
from typing import Final, Protocol

from .mix import mix

__all__ = ["HEARS", "Bridge", "FrameSource", "Leg", "Party", "StereoSink", "SupervisorMode"]

log = logging.getLogger(__name__)

FrameSource = Callable[[], bytes | None]  # same shape as ccdaemon.media.session.FrameSource


class Leg(Protocol):
    """What the bridge needs from a call leg (``ccdaemon.telephony.call.Call`` provides it)."""

    def play(self, source: FrameSource | None) -> None: ...
    def pull_frame(self) -> bytes | None: ...


class StereoSink(Protocol):
    def add(self, left: bytes | None, right: bytes | None) -> None: ...


class SupervisorMode(enum.StrEnum):
    MONITOR = "monitor"  # the supervisor hears caller and agent; nobody hears the supervisor
    WHISPER = "whisper"  # ... and the agent hears the supervisor, the caller does not
    BARGE = "barge"  # everyone hears the other two


class Party(enum.Enum):
    """A role in the bridge; which leg plays it can change (transfer)."""

    CALLER = "caller"
    AGENT = "agent"
    SUPERVISOR = "supervisor"


_CALLER, _AGENT, _SUPERVISOR = Party.CALLER, Party.AGENT, Party.SUPERVISOR


HEARS: Final[Mapping[SupervisorMode | None, Mapping[Party, frozenset[Party]]]] = {
    None: {_CALLER: frozenset({_AGENT}), _AGENT: frozenset({_CALLER})},
    SupervisorMode.MONITOR: {
        _CALLER: frozenset({_AGENT}),
        _AGENT: frozenset({_CALLER}),
        _SUPERVISOR: frozenset({_CALLER, _AGENT}),
    },
    SupervisorMode.WHISPER: {
        _CALLER: frozenset({_AGENT}),
        _AGENT: frozenset({_CALLER, _SUPERVISOR}),
        _SUPERVISOR: frozenset({_CALLER, _AGENT}),
    },
    SupervisorMode.BARGE: {
        _CALLER: frozenset({_AGENT, _SUPERVISOR}),
        _AGENT: frozenset({_CALLER, _SUPERVISOR}),
        _SUPERVISOR: frozenset({_CALLER, _AGENT}),
    },
}
"""Per supervisor mode (None: no supervisor): which parties each party hears."""


class _Empty(enum.Enum):
    MAILBOX = 0  # distinct from None, which is a received gap (silence) waiting to be taken


_EMPTY: Final = _Empty.MAILBOX
_RECORDING: Final = 0  # the recording tap's consumer key; legs are keyed by id(), which is never 0


class _LegState:
    """One leg as a source (its audio, pulled once per frame into a mailbox per consumer) and as a consumer
    (when it last ticked). Kept when the leg leaves: pull and tick times belong to the leg, not to its
    role, so a leg that comes back or changes role is never pulled twice in one period."""

    __slots__ = ("last", "last_pull", "last_tick", "leg", "mailboxes", "overwritten", "pulls")

    def __init__(self, leg: Leg) -> None:
        self.leg = leg
        self.mailboxes: dict[int, bytes | _Empty | None] = {}  # consumer key -> frame waiting for it
        self.last: bytes | _Empty | None = _EMPTY  # the newest pulled frame
        self.last_pull = -1  # tick number of the newest pull
        self.last_tick = -1  # tick number of this leg's newest tick
        self.pulls = 0
        self.overwritten = 0  # frames a consumer never took (it was not ticking)

    def take(self, consumer: int, tick: int) -> bytes | None:
        mailboxes = self.mailboxes
        frame = mailboxes[consumer]
        if frame is not _EMPTY:
            mailboxes[consumer] = _EMPTY
            return frame
        pulled = self.leg.pull_frame()
        self.pulls += 1
        self.last = pulled
        self.last_pull = tick
        for other, waiting in mailboxes.items():
            if waiting is not _EMPTY:
                self.overwritten += 1
            mailboxes[other] = pulled
        mailboxes[consumer] = _EMPTY
        return pulled

    def subscribe(self, consumer: int, consumer_tick: int, period_start: int) -> None:
        """A new listener gets the newest frame if that was pulled in the current period and it has not
        ticked since: it takes its place in the period like every other consumer, and no second pull
        happens. Otherwise it pulls on its next tick (an older frame would be stale audio)."""
        fresh = self.last_pull >= period_start and consumer_tick < self.last_pull
        self.mailboxes[consumer] = self.last if fresh else _EMPTY


class Bridge:
    """Connects ``caller`` and ``agent``: each hears the other; ``recorder`` (if any) gets both.

    A supervisor leg can be attached in a :class:`SupervisorMode`, switched live and detached; either
    main leg can be replaced (transfer) while the recording goes on.
    """

    def __init__(self, caller: Leg, agent: Leg, *, recorder: StereoSink | None = None) -> None:
        if caller is agent:
            raise ValueError("caller and agent must be different legs")
        self._recorder = recorder
        self._legs: dict[Party, Leg] = {_CALLER: caller, _AGENT: agent}
        self._states: dict[int, _LegState] = {}  # by id(leg), every leg ever in the bridge (holds the leg)
        self._mode: SupervisorMode | None = None
        self._hold_source: FrameSource | None = None
        self._caller_held = False
        # derived by _rewire(): the parties' states, what each party hears, what the right channel gets
        self._party_states: dict[Party, _LegState] = {}
        self._listens: dict[Party, tuple[_LegState, ...]] = {}
        self._recorded_right: tuple[Party, ...] = ()
        self._tick = 0  # counts every leg tick: orders pulls against consumers' ticks
        self._recorded_tick = -1
        self._ticked_since_frame = {id(caller), id(agent)}  # so that the very first tick writes a frame
        self._error_logged = False
        self.frames_recorded = 0  # 20 ms periods written to the recording (counted without a recorder too)
        self.active = False
        self._rewire()

    # --- state -----------------------------------------------------------------------------------------

    @property
    def caller(self) -> Leg:
        return self._legs[_CALLER]

    @property
    def agent(self) -> Leg:
        return self._legs[_AGENT]

    @property
    def supervisor(self) -> Leg | None:
        return self._legs.get(_SUPERVISOR)

    @property
    def mode(self) -> SupervisorMode | None:
        """The supervisor's mode, None when no supervisor is attached."""
        return self._mode

    @property
    def caller_held(self) -> bool:
        return self._caller_held

    @property
    def frames_skipped(self) -> int:
        """Received frames some consumer never took because it was not ticking (hold, DTMF, replacement)."""
        return sum(state.overwritten for state in self._states.values())

    # --- control ---------------------------------------------------------------------------------------

    def start(self) -> None:
        self.active = True
        for party, leg in self._legs.items():
            leg.play(self._source_for(party, leg))

    def stop(self) -> None:
        """Disconnect (each leg then sends nothing until something else plays to it)."""
        if not self.active:
            return
        self.active = False
        for leg in self._legs.values():
            _silence(leg)

    def attach(self, supervisor: Leg, mode: SupervisorMode | str = SupervisorMode.MONITOR) -> None:
        """Add a third party; its mode can be changed with :meth:`set_mode` while the call goes on."""
        mode = SupervisorMode(mode)
        if _SUPERVISOR in self._legs:
            raise ValueError("a supervisor is already attached: detach it first, or use set_mode()")
        if any(supervisor is leg for leg in self._legs.values()):
            raise ValueError("the supervisor leg is already a party of this bridge")
        if self.active:  # first: if the leg cannot play (no media yet), nothing has changed
            supervisor.play(self._source_for(_SUPERVISOR, supervisor))
        self._legs[_SUPERVISOR] = supervisor
        self._mode = mode
        self._rewire()

    def set_mode(self, mode: SupervisorMode | str) -> None:
        if _SUPERVISOR not in self._legs:
            raise ValueError("no supervisor attached")
        self._mode = SupervisorMode(mode)
        self._rewire()

    def detach(self) -> Leg | None:
        """Remove the supervisor (its leg is silenced and returned); caller and agent go on as before."""
        leg = self._legs.pop(_SUPERVISOR, None)
        if leg is None:
            return None
        self._mode = None
        self._states[id(leg)].mailboxes.clear()  # nothing of it may wait for anyone
        self._rewire()
        if self.active:
            _silence(leg)
        return leg

    def replace_agent(self, new: Leg) -> Leg:
        """Put ``new`` in the agent's place (transfer); returns the old agent leg, silenced.

        ``new`` may be the attached supervisor (warm transfer completed): it stops being the third party.
        """
        return self._replace(_AGENT, new)

    def replace_caller(self, new: Leg) -> Leg:
        """Put ``new`` in the caller's place; returns the old caller leg, silenced."""
        return self._replace(_CALLER, new)

    def hold_caller(self, source: FrameSource | None = None) -> None:
        """The caller hears ``source`` (e.g. ``Player.next_frame`` of hold music) and nobody hears the
        caller; agent and supervisor still hear each other as the mode says. The recording goes on."""
        self._caller_held = True
        self._hold_source = source
        self._rewire()

    def resume_caller(self) -> None:
        self._caller_held = False
        self._hold_source = None
        self._rewire()

    # --- internals -------------------------------------------------------------------------------------

    def _replace(self, party: Party, new: Leg) -> Leg:
        old = self._legs[party]
        if new is old:
            return old
        promoted = new is self._legs.get(_SUPERVISOR)
        if not promoted and any(new is leg for leg in self._legs.values()):
            raise ValueError("the new leg is already a party of this bridge")
        if self.active:  # first: if the leg cannot play (no media yet), nothing has changed
            new.play(self._source_for(party, new))
        if promoted:
            del self._legs[_SUPERVISOR]  # it keeps its RTP session and mailboxes, not its role
            self._mode = None
        old_state, new_state = self._states[id(old)], self._state(new)
        pending = {c: f for c, f in old_state.mailboxes.items() if f is not _EMPTY}
        existing = set(new_state.mailboxes)
        old_state.mailboxes.clear()
        self._legs[party] = new
        self._rewire()
        # Whoever starts hearing the new leg first gets what was still waiting from the old one: the
        # recording and the other party hear the old leg to its last frame, then the new one.
        for consumer, frame in pending.items():
            if consumer not in existing and new_state.mailboxes.get(consumer) is _EMPTY:
                new_state.mailboxes[consumer] = frame
        if self.active:
            _silence(old)
        return old

    def _state(self, leg: Leg) -> _LegState:
        state = self._states.get(id(leg))
        if state is None:
            state = self._states[id(leg)] = _LegState(leg)
        return state

    def _rewire(self) -> None:
        """Recompute who hears whom after a change of parties, mode or hold; adjust the mailboxes."""
        table = HEARS[self._mode]
        listens = {party: table[party] for party in self._legs}
        if self._caller_held:
            listens = {party: heard - {_CALLER} for party, heard in listens.items()}
            listens[_CALLER] = frozenset()
        states = self._party_states = {party: self._state(leg) for party, leg in self._legs.items()}
        self._listens = {
            party: tuple(states[p] for p in Party if p in heard) for party, heard in listens.items()
        }
        self._recorded_right = tuple(p for p in Party if p in listens[_CALLER])
        for party, state in states.items():
            wanted = {id(self._legs[c]) for c, heard in listens.items() if party in heard}
            wanted.add(_RECORDING)  # records or drains every source
            for gone in state.mailboxes.keys() - wanted:
                del state.mailboxes[gone]
            for consumer in wanted - state.mailboxes.keys():
                tick = self._recorded_tick if consumer == _RECORDING else self._states[consumer].last_tick
                state.subscribe(consumer, tick, self._recorded_tick)

    def _source_for(self, party: Party, leg: Leg) -> FrameSource:
        def next_frame() -> bytes | None:
            try:
                return self._on_tick(party, leg)
            except Exception:  # a bug here must not stop the leg's RTP sender (invariant 4)
                if not self._error_logged:
                    self._error_logged = True
                    log.exception("bridge tick failed for the %s leg", party.value)
                return None

        return next_frame

    def _on_tick(self, party: Party, leg: Leg) -> bytes | None:
        if not self.active or self._legs.get(party) is not leg:
            return None  # a replaced or detached leg whose sender still holds this source
        self._tick += 1
        tick = self._tick
        key = id(leg)
        self._party_states[party].last_tick = tick
        if key in self._ticked_since_frame:  # this leg's second tick: a new 20 ms period
            self._record(tick)
            self._ticked_since_frame = {key}
        else:
            self._ticked_since_frame.add(key)
        if party is _CALLER and self._caller_held:
            return self._hold_source() if self._hold_source is not None else None
        heard = self._listens[party]
        if len(heard) == 1:
            return heard[0].take(key, tick)  # the common case: unchanged, no mixing
        return mix([state.take(key, tick) for state in heard])

    def _record(self, tick: int) -> None:
        self._recorded_tick = tick
        frames = {party: state.take(_RECORDING, tick) for party, state in self._party_states.items()}
        self.frames_recorded += 1
        if self._recorder is None:
            return
        right = self._recorded_right
        if len(right) == 1:
            self._recorder.add(frames[_CALLER], frames[right[0]])
        else:
            self._recorder.add(frames[_CALLER], mix([frames[party] for party in right]))


def _silence(leg: Leg) -> None:
    try:
        leg.play(None)
    except Exception:  # a leg that already ended has no media to stop
        log.debug("leg without media when leaving the bridge", exc_info=True)
