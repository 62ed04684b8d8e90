"""The call flow until the IVR and queues exist: answer every caller and keep the line open.

It makes the daemon useful for checking a PBX set-up end to end (the caller is connected and
the call is logged) and is what the signalling benchmark measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..telephony.call import Call, CallError
from ..telephony.events import CallState
from .context import AppContext

log = logging.getLogger(__name__)


class AnsweringFlow:
    """Ring for ``ring_seconds`` (0 answers at once), answer, wait for the caller to hang up,
    and hang up ourselves after ``max_duration`` seconds.

    It does not record (nothing is bridged); ``context`` carries the daemon's services for the flows
    that replace it."""

    def __init__(
        self,
        *,
        ring_seconds: float = 0.0,
        max_duration: float = 4 * 3600.0,
        context: AppContext | None = None,
    ) -> None:
        self.context = context if context is not None else AppContext()
        self.ring_seconds = ring_seconds
        self.max_duration = max_duration
        self.answered = 0
        self.abandoned = 0

    async def __call__(self, call: Call) -> None:
        log.info("call %s from %s", call.call_id, call.caller_number)
        try:
            if self.ring_seconds > 0:
                await call.ring()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(call.ended.wait(), self.ring_seconds)
            if call.state is CallState.ENDED:
                self.abandoned += 1
                log.info("call %s abandoned while ringing", call.call_id)
                return
            await call.answer()
            self.answered += 1
        except CallError as exc:
            log.info("call %s ended before answer: %s", call.call_id, exc)
            return
        try:
            end = await asyncio.wait_for(call.wait_ended(), self.max_duration)
            log.info("call %s ended: %s", call.call_id, end.reason.value)
        except TimeoutError:
            log.info("call %s reached the %.0f s limit", call.call_id, self.max_duration)
            await call.hangup()
