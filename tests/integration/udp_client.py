"""A raw UDP SIP test driver: sends bytes to the daemon and collects what comes back."""

from __future__ import annotations

import asyncio
import re

from ccdaemon.sip.errors import ParseError
from ccdaemon.sip.message import SipMessage, SipResponse, parse_message

_STATUS_LINE = re.compile(rb"SIP/2\.0 ([1-6][0-9][0-9]) ")


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, inbox: asyncio.Queue[bytes]) -> None:
        self._inbox = inbox

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._inbox.put_nowait(data)


class UdpSipClient:
    def __init__(self, transport: asyncio.DatagramTransport, inbox: asyncio.Queue[bytes]) -> None:
        self.transport = transport
        self.inbox = inbox
        self.port: int = transport.get_extra_info("sockname")[1]

    @classmethod
    async def open(cls, host: str = "127.0.0.1") -> UdpSipClient:
        inbox: asyncio.Queue[bytes] = asyncio.Queue()
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Protocol(inbox), local_addr=(host, 0)
        )
        return cls(transport, inbox)

    def send(self, data: bytes, dest: tuple[str, int]) -> None:
        self.transport.sendto(data, dest)

    async def receive(self, timeout: float = 2.0) -> SipMessage:
        data = await asyncio.wait_for(self.inbox.get(), timeout)
        return parse_message(data)

    async def responses(self, window: float = 1.0) -> list[SipResponse]:
        """Every response that arrives within ``window`` seconds."""
        out: list[SipResponse] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + window
        while (remaining := deadline - loop.time()) > 0:
            try:
                data = await asyncio.wait_for(self.inbox.get(), remaining)
            except TimeoutError:
                break
            try:
                message = parse_message(data)
            except ParseError:
                continue
            if isinstance(message, SipResponse):
                out.append(message)
        return out

    async def statuses(self, window: float = 1.0) -> list[int]:
        """Status codes of every response within ``window``, read from the status line alone so
        replies to malformed requests (which may echo malformed headers) count too."""
        out: list[int] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + window
        while (remaining := deadline - loop.time()) > 0:
            try:
                data = await asyncio.wait_for(self.inbox.get(), remaining)
            except TimeoutError:
                break
            match = _STATUS_LINE.match(data)
            if match:
                out.append(int(match.group(1)))
        return out

    def close(self) -> None:
        self.transport.close()
