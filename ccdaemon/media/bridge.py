"""Two call legs connected through the daemon, with a stereo recording tap.

Each leg's RTP sender pulls, on its own 20 ms tick, the frame the other leg received; the two
ticks run on independent clocks, so the recorder pairs the two directions frame by frame and fills
with silence when one side has nothing (hold, loss) — the channels never drift apart.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Protocol

from .session import FrameSource

log = logging.getLogger(__name__)

# How many frames one direction may run ahead of the other before the recorder stops waiting and
# writes the other channel as silence (e.g. one leg on hold sends nothing at all).
_MAX_SKEW_FRAMES = 5


class Leg(Protocol):
    """What the bridge needs from a call leg (``ccdaemon.telephony.call.Call`` provides it)."""

    def play(self, source: FrameSource | None) -> None: ...
    def pull_frame(self) -> bytes | None: ...


class StereoSink(Protocol):
    def add(self, left: bytes | None, right: bytes | None) -> None: ...


class _Pairing:
    """Pairs left (caller) and right (agent) frames arriving on two unsynchronised ticks."""

    def __init__(self, sink: StereoSink) -> None:
        self._sink = sink
        self._left: deque[bytes | None] = deque()
        self._right: deque[bytes | None] = deque()

    def left(self, frame: bytes | None) -> None:
        self._left.append(frame)
        self._drain()

    def right(self, frame: bytes | None) -> None:
        self._right.append(frame)
        self._drain()

    def _drain(self) -> None:
        while self._left and self._right:
            self._sink.add(self._left.popleft(), self._right.popleft())
        for own, other_is_left in ((self._left, False), (self._right, True)):
            while len(own) > _MAX_SKEW_FRAMES:  # the other side is silent: pair with silence
                frame = own.popleft()
                self._sink.add(None, frame) if other_is_left else self._sink.add(frame, None)

    def flush(self) -> None:
        while self._left or self._right:
            left = self._left.popleft() if self._left else None
            right = self._right.popleft() if self._right else None
            self._sink.add(left, right)


class Bridge:
    """Connects ``caller`` and ``agent``: each hears the other; ``recorder`` (if any) gets both."""

    def __init__(self, caller: Leg, agent: Leg, *, recorder: StereoSink | None = None) -> None:
        self.caller = caller
        self.agent = agent
        self._pairing = _Pairing(recorder) if recorder is not None else None
        self.active = False

    def start(self) -> None:
        self.caller.play(self._to_caller)
        self.agent.play(self._to_agent)
        self.active = True

    def stop(self) -> None:
        """Disconnect (each leg then sends nothing until something else plays to it)."""
        if not self.active:
            return
        self.active = False
        for leg in (self.caller, self.agent):
            try:
                leg.play(None)
            except Exception:  # a leg that already ended has no media to stop
                log.debug("leg without media at bridge stop", exc_info=True)
        if self._pairing is not None:
            self._pairing.flush()

    def _to_caller(self) -> bytes | None:
        """The caller's sender tick: what the agent said."""
        frame = self.agent.pull_frame()
        if self._pairing is not None:
            self._pairing.right(frame)
        return frame

    def _to_agent(self) -> bytes | None:
        """The agent's sender tick: what the caller said."""
        frame = self.caller.pull_frame()
        if self._pairing is not None:
            self._pairing.left(frame)
        return frame
