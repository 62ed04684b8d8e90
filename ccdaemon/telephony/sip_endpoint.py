"""The asyncio adapter around the sans-I/O transaction layer.

It feeds received bytes into :class:`TransactionLayer` with ``now = loop.time()``, flushes what
the layer wants to send, keeps exactly one ``call_at`` timer armed at the layer's next deadline,
and hands events up.  Client transactions get a small awaitable wrapper.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable

from ..sip.address import Endpoint
from ..sip.errors import ParseError
from ..sip.framing import StreamError
from ..sip.message import SipMessage, SipRequest, SipResponse, make_response
from ..sip.transaction import (
    ResponseReceived,
    TransactionLayer,
    TxEvent,
    TxKey,
    TxTerminated,
    TxTimedOut,
    TxTransportFailed,
)
from ..sip.validate import error_response_for_unparsable
from .transport import TransportManager

log = logging.getLogger(__name__)
# Every SIP message in and out at DEBUG, for an admin chasing a PBX problem ([log] level = "DEBUG").
trace = logging.getLogger("ccdaemon.sip.trace")
_CREDENTIAL_LINE = re.compile(rb"^((?:Proxy-)?Authorization[ \t]*:).*$", re.IGNORECASE | re.MULTILINE)


def _for_trace(data: bytes) -> str:
    """The message as text with credentials cut out (a digest is no password, but replayable)."""
    return _CREDENTIAL_LINE.sub(rb"\1 <redacted>", data[:4096]).decode("utf-8", "replace")


ResponseCallback = Callable[[SipResponse], None]


class ClientTransaction:
    """What the application holds for a request it sent: responses arrive through it."""

    def __init__(self, request: SipRequest, dest: Endpoint, on_response: ResponseCallback | None) -> None:
        self.request = request
        self.dest = dest
        self.key: TxKey | None = None
        self._on_response = on_response
        self.final: asyncio.Future[SipResponse] = asyncio.get_running_loop().create_future()
        self.provisional_seen = asyncio.Event()
        self.failed_locally = False  # the final response was made up here: timeout or transport error

    def deliver(self, response: SipResponse) -> None:
        if response.is_provisional:
            self.provisional_seen.set()
        elif not self.final.done():
            self.final.set_result(response)
        if self._on_response is not None:
            self._on_response(response)

    def fail(self, status: int, reason: str) -> None:
        """A timeout or transport failure reads as a locally generated final response (§8.1.3.1)."""
        if not self.final.done():
            self.failed_locally = True
            self.final.set_result(make_response(self.request, status, reason))


class SipEndpoint:
    def __init__(
        self,
        layer: TransactionLayer,
        transports: TransportManager,
        *,
        on_event: Callable[[TxEvent], None],
        accept_source: Callable[[Endpoint], bool] = lambda _: True,
    ) -> None:
        self.layer = layer
        self.transports = transports
        self._on_event = on_event
        self._accept_source = accept_source
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._clients: dict[TxKey, ClientTransaction] = {}
        self.dropped_sources = 0
        transports.on_datagram = self.datagram_received
        transports.on_message = self.message_received
        transports.on_stream_error = self.stream_error
        transports.on_unreachable = self.unreachable

    # --- from the network ---------------------------------------------------------------------

    def datagram_received(self, data: bytes, source: Endpoint) -> None:
        if not self._accept_source(source):
            self.dropped_sources += 1
            return
        if trace.isEnabledFor(logging.DEBUG):
            trace.debug("<<< %d bytes from %s\n%s", len(data), source, _for_trace(data))
        self.layer.receive_datagram(data, source, now=self._loop.time())
        self.pump()

    def message_received(self, message: SipMessage, source: Endpoint) -> None:
        if not self._accept_source(source):
            self.dropped_sources += 1
            return
        if trace.isEnabledFor(logging.DEBUG):
            trace.debug("<<< from %s\n%s", source, _for_trace(message.to_bytes()))
        self.layer.receive_message(message, source, now=self._loop.time())
        self.pump()

    def stream_error(self, error: ParseError, source: Endpoint) -> None:
        """A request that did not parse on TCP still gets its 400 (then a fatal error closes it)."""
        log.info("unparsable message on %s: %s", source, error)
        if isinstance(error, StreamError):
            reply = error_response_for_unparsable(error.data, error.cause)
            if reply is not None:
                self.transports.send(reply, source)

    def unreachable(self, dest: Endpoint) -> None:
        self.layer.destination_unreachable(dest, now=self._loop.time())
        self.pump()

    # --- to the network -----------------------------------------------------------------------

    def send_request(
        self, request: SipRequest, dest: Endpoint, *, on_response: ResponseCallback | None = None
    ) -> ClientTransaction:
        client = ClientTransaction(request, dest, on_response)
        client.key = self.layer.send_request(request, dest, now=self._loop.time())
        self._clients[client.key] = client
        self.pump()
        return client

    def send_response(self, key: TxKey, response: SipResponse) -> None:
        self.layer.send_response(key, response, now=self._loop.time())
        self.pump()

    def send_ack(self, ack: SipRequest, dest: Endpoint) -> None:
        self.layer.send_ack(ack, dest)
        self.pump()

    def send_stateless(self, message: SipMessage, dest: Endpoint) -> None:
        self.layer.send_stateless(message, dest)
        self.pump()

    # --- the pump -----------------------------------------------------------------------------

    def pump(self) -> None:
        """Drain events and datagrams, then re-arm the single timer (even if a handler failed)."""
        try:
            while True:
                for data, dest in self.layer.datagrams_to_send():
                    if trace.isEnabledFor(logging.DEBUG):
                        trace.debug(">>> %d bytes to %s\n%s", len(data), dest, _for_trace(data))
                    self.transports.send(data, dest)
                event = self.layer.next_event()
                if event is None:
                    break
                try:
                    self._dispatch(event)
                except Exception:  # one bad call must not stop the signalling of all the others
                    log.exception("error handling %s", type(event).__name__)
        finally:
            self._arm_timer()

    def _dispatch(self, event: TxEvent) -> None:
        if isinstance(event, ResponseReceived):
            client = self._clients.get(event.key)
            if client is not None:
                client.deliver(event.response)
                return
        elif isinstance(event, TxTimedOut):
            client = self._clients.pop(event.key, None)
            if client is not None:
                client.fail(408, "Request Timeout")
        elif isinstance(event, TxTransportFailed):
            client = self._clients.pop(event.key, None)
            if client is not None:
                client.fail(503, "Service Unavailable")
        elif isinstance(event, TxTerminated):
            self._clients.pop(event.key, None)
        self._on_event(event)

    def _arm_timer(self) -> None:
        deadline = self.layer.get_timer()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._timer_at or self._loop.time()
        self._timer_at = None
        # never let an early wake-up move the core backwards (aioquic's clamp)
        self.layer.handle_timer(now=max(deadline, self._loop.time()))
        self.pump()
