"""An in-process ccdaemon user agent registered with a test kamailio, for integration tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from ccdaemon.sip.transaction import SipTimers
from ccdaemon.telephony.call import Call
from ccdaemon.telephony.useragent import UaConfig, UserAgent
from tests.peers.kamailio import Kamailio

QUEUE_LINE = "100"


class CallCollector:
    """Incoming-call handler that hands each call to the test through a queue."""

    def __init__(self) -> None:
        self.calls: asyncio.Queue[Call] = asyncio.Queue()

    async def __call__(self, call: Call) -> None:
        await self.calls.put(call)
        await call.wait_ended()

    async def next_call(self, timeout: float = 10.0) -> Call:
        return await asyncio.wait_for(self.calls.get(), timeout)


@asynccontextmanager
async def running_ua(
    kamailio: Kamailio, handler: Callable[[Call], Awaitable[None]] | None = None, **overrides: Any
) -> AsyncIterator[tuple[UserAgent, CallCollector]]:
    """Start a UA registered as the queue line (``100``); stop it (unregister) afterwards.

    Incoming calls go to ``handler`` when given, else to the returned :class:`CallCollector`.
    """
    options: dict[str, Any] = {
        "pbx_host": kamailio.host,
        "pbx_port": kamailio.port,
        "username": QUEUE_LINE,
        "password": kamailio.users[QUEUE_LINE],
        "listen_host": "127.0.0.1",
        "listen_port": 0,
        "register_expires": 30,
        "register_retry_min": 0.5,
        "register_retry_max": 2.0,
        "rtp_port_min": 40000,
        "rtp_port_max": 41000,
        "timers": SipTimers(),
    }
    options.update(overrides)
    ua = UserAgent(UaConfig(**options))
    collector = CallCollector()
    ua.on_incoming_call(handler or collector)
    await ua.start()
    try:
        if options.get("register", True):
            await asyncio.wait_for(ua.registration.registered.wait(), 10)
        yield ua, collector
    finally:
        await ua.stop(drain=3)
