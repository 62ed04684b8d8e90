"""The daemon's SIP user agent: transports, registration, and every call leg.

It is the transaction user of :class:`~ccdaemon.sip.transaction.TransactionLayer`: new
requests are checked (containment, RFC 3261 §8.2 semantics) and turned into calls; in-dialog
requests are routed to their :class:`Call`; outbound requests are sent with digest
authentication answered on 401/407.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from ..media.ticker import TickScheduler
from ..sip.address import Endpoint
from ..sip.dialog import Dialog, DialogId
from ..sip.digest import Credentials, DigestClient, select_challenge
from ..sip.errors import ParseError
from ..sip.grammar import quote
from ..sip.headers import Headers
from ..sip.message import SipRequest, SipResponse, make_response
from ..sip.offer_answer import MediaCapabilities, NotAcceptable
from ..sip.sdp import Direction, SdpError
from ..sip.transaction import (
    AckNotReceived,
    MessageRejected,
    RequestReceived,
    SipTimers,
    StrayResponse,
    TransactionLayer,
    TxEvent,
    TxKey,
)
from ..sip.uri import SipUri, Uri, parse_sip_uri
from ..sip.validate import check_request
from .call import Call, parse_replaces
from .events import CallEnded, CallState, EndReason
from .ids import IdFactory
from .registration import Registration, RegistrationStatus
from .rtp_ports import PortRangeExhausted, RtpPortAllocator
from .sip_endpoint import ClientTransaction, ResponseCallback, SipEndpoint
from .transport import TransportManager

log = logging.getLogger(__name__)

# Share of late media ticks from which new calls are refused (see UserAgent._media_overloaded).
OVERLOAD_LATE_SHARE = 0.25

ALLOWED_METHODS = frozenset(
    {"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "REFER", "NOTIFY", "UPDATE"}
)
SUPPORTED_EXTENSIONS = frozenset({"replaces", "norefersub"})
ACCEPTED_CONTENT_TYPES = frozenset({"application/sdp"})

IncomingCallHandler = Callable[[Call], Awaitable[None]]


class TransportError(OSError):
    """The SIP sockets could not be opened (port in use, address not on this host)."""


@dataclass(frozen=True)
class UaConfig:
    """What the user agent needs; built from the daemon settings by ``UserAgent.from_settings``."""

    pbx_host: str
    username: str
    password: str = field(repr=False)
    pbx_port: int = 5060
    pbx_transport: str = "udp"
    domain: str | None = None  # defaults to pbx_host:pbx_port
    auth_username: str | None = None
    listen_host: str = "0.0.0.0"
    listen_port: int = 5070
    transports: tuple[str, ...] = ("udp", "tcp")
    contact_host: str | None = None
    user_agent: str = "ccdaemon"
    register: bool = True
    register_expires: int = 300
    register_retry_min: float = 5.0
    register_retry_max: float = 300.0
    keepalive_interval: float = 30.0  # OPTIONS to the PBX; 0 disables
    outbound_proxy: str | None = None  # SIP URI every request out of dialog is sent through
    allowed_sources: tuple[str, ...] = ()
    unknown_source_policy: str = "reject"  # or "drop"
    max_transactions_per_peer: int = 500
    max_calls: int = 500
    # Refuse new inbound calls (503) while the media engine's ticks run this late (seconds; 0 = never):
    # past its capacity every call's audio would suffer, so new callers get a busy answer instead.
    overload_lateness: float = 0.02
    max_ring_seconds: float = 120.0  # an inbound call unanswered this long gets 480
    rtp_port_min: int = 20000
    rtp_port_max: int = 30000
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    symmetric_rtp: bool = True  # send RTP back to where the peer's packets come from (NAT)
    ptime: int = 20
    timers: SipTimers = field(default_factory=SipTimers)


class UserAgent:
    def __init__(self, config: UaConfig, *, ids: IdFactory | None = None) -> None:
        self.config = config
        self.ids = ids or IdFactory()
        self.user_agent = config.user_agent
        self.layer = TransactionLayer(
            timers=config.timers,
            max_server_transactions_per_peer=config.max_transactions_per_peer,
        )
        self.transports = TransportManager(
            on_datagram=lambda d, s: None, on_message=lambda m, s: None, on_stream_error=lambda e, s: None
        )
        self.endpoint: SipEndpoint  # created in start(), needs the running loop
        self.digest = DigestClient(Credentials(config.auth_username or config.username, config.password))
        self.calls: dict[tuple[str, str], Call] = {}  # by (Call-ID, our tag): a looped INVITE is a new leg
        self._dialogs: dict[DialogId, Call] = {}
        self._invite_keys: dict[TxKey, Call] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._registration_tasks: list[asyncio.Task[Any]] = []
        self._incoming_handler: IncomingCallHandler | None = None
        self._allowed_networks = [ipaddress.ip_network(s, strict=False) for s in config.allowed_sources]
        self._pbx_addresses: set[str] = set()
        self._last_reject_log = 0.0
        self.rejected_sources = 0
        self.rejected_messages = 0
        self._last_pbx_reject_log = 0.0
        self.overload_refusals = 0
        self._last_overload_log = -1e9
        self.registration = Registration(
            self,
            expires=config.register_expires,
            retry_min=config.register_retry_min,
            retry_max=config.register_retry_max,
        )
        self.rtp_ports: RtpPortAllocator
        self.contact_host = config.contact_host or config.listen_host
        self._outbound_proxy = parse_sip_uri(config.outbound_proxy) if config.outbound_proxy else None
        self.local_port = config.listen_port

    @classmethod
    def from_settings(cls, settings: Any) -> UserAgent:
        """Build from the daemon's :class:`ccdaemon.config.Settings`."""
        from .settings_bridge import ua_config_from_settings  # noqa: PLC0415 -- it imports this module

        return cls(ua_config_from_settings(settings))

    # --- identity -------------------------------------------------------------------------------

    @property
    def domain_host(self) -> str:
        """The host part of our address of record (``[pbx] domain``, default the PBX host)."""
        return (self.config.domain or self.config.pbx_host).partition(":")[0]

    @property
    def domain_port(self) -> int | None:
        if self.config.domain is None:
            return self.config.pbx_port
        port = self.config.domain.partition(":")[2]
        return int(port) if port.isdigit() else None

    @property
    def aor(self) -> SipUri:
        """Our address of record: ``sip:<queue line>@<PBX domain>``."""
        return SipUri(host=self.domain_host, user=self.config.username, port=self.domain_port)

    @property
    def pbx(self) -> str:
        return f"{self.config.pbx_host}:{self.config.pbx_port}"

    @property
    def pbx_endpoint(self) -> Endpoint:
        """Where requests outside a dialog go: the outbound proxy when set, else the PBX."""
        if self._outbound_proxy is not None:
            proxy = self._outbound_proxy
            port = proxy.port or (5061 if proxy.scheme == "sips" else 5060)
            transport = proxy.param("transport") or self.config.pbx_transport
            return Endpoint(proxy.host.strip("[]"), port, transport.lower())
        return Endpoint(self.config.pbx_host, self.config.pbx_port, self.config.pbx_transport)

    def add_outbound_route(self, headers: Headers) -> None:
        """Pre-load the outbound proxy as a loose route (RFC 3261 §8.1.2) so it stays on the path."""
        if self._outbound_proxy is not None and self._outbound_proxy.param("lr") is not None:
            headers.prepend("Route", f"<{self._outbound_proxy}>")

    def local_contact_uri(self, transport: str | None = None) -> SipUri:
        transport = transport or self.config.pbx_transport
        uri = SipUri(host=self.contact_host, user=self.config.username, port=self._port_for(transport))
        return uri if transport == "udp" else uri.with_param("transport", transport)

    def local_contact(self, transport: str | None = None) -> str:
        return f"<{self.local_contact_uri(transport)}>"

    def contact_for(self, request: SipRequest) -> str:
        """The Contact for a response: reachable over the transport the request came in on."""
        return self.local_contact(request.top_via.transport.lower())

    def _port_for(self, transport: str) -> int:
        if transport == "udp" and self.transports.udp_address:
            return self.transports.udp_address[1]
        if transport in ("tcp", "tls") and self.transports.tcp_address:
            return self.transports.tcp_address[1]
        return self.local_port

    def add_capabilities(self, headers: Headers) -> None:
        headers.add("Allow", ", ".join(sorted(ALLOWED_METHODS)))
        headers.add("Supported", ", ".join(sorted(SUPPORTED_EXTENSIONS)))

    def media_capabilities(self, port: int) -> MediaCapabilities:
        return MediaCapabilities(
            address=self.contact_host, port=port, codecs=self.config.codecs, ptime=self.config.ptime
        )

    # --- life cycle -----------------------------------------------------------------------------

    def on_incoming_call(self, handler: IncomingCallHandler) -> None:
        self._incoming_handler = handler

    async def start(self) -> None:
        self.endpoint = SipEndpoint(
            self.layer, self.transports, on_event=self._on_tx_event, accept_source=self._accept_source
        )
        await self._listen()
        if self.config.contact_host is None and self.config.listen_host in ("0.0.0.0", "::"):
            # may resolve a host name: off the event loop
            self.contact_host = await asyncio.to_thread(_route_source_address, self.config.pbx_host)
        self.rtp_ports = RtpPortAllocator(
            self.contact_host if self.config.listen_host in ("0.0.0.0", "::") else self.config.listen_host,
            self.config.rtp_port_min,
            self.config.rtp_port_max,
        )
        self._pbx_addresses = await _resolve(self.config.pbx_host, self.config.pbx_port)
        if self._outbound_proxy is not None:  # calls may come to us through the proxy too
            self._pbx_addresses |= await _resolve(self._outbound_proxy.host.strip("[]"), 5060)
        self.layer.set_local_sent_by(self._is_local_sent_by)
        if self.config.register:
            self._registration_tasks.append(self.spawn(self.registration.run(), "sip-registration"))
            if self.config.keepalive_interval > 0:
                keepalive = self.registration.keepalive(self.config.keepalive_interval)
                self._registration_tasks.append(self.spawn(keepalive, "sip-keepalive"))
        log.info(
            "SIP user agent %s listening on %s (udp=%s tcp=%s)",
            self.aor,
            self.contact_host,
            self.transports.udp_address,
            self.transports.tcp_address,
        )

    async def _listen(self) -> None:
        """Bind UDP and TCP on one port.  Port 0 (tests) retries until both get the same free port."""
        host, wanted = self.config.listen_host, self.config.listen_port
        for _ in range(20 if wanted == 0 else 1):
            try:
                port = wanted
                if "udp" in self.config.transports:
                    port = (await self.transports.listen_udp(host, wanted))[1]
                if "tcp" in self.config.transports:
                    await self.transports.listen_tcp(host, port)
                return
            except OSError as exc:
                await self.transports.close()
                if wanted == 0:
                    continue
                reason = exc.strerror or str(exc)
                raise TransportError(f"cannot listen for SIP on {host}:{wanted}: {reason}") from exc
        raise TransportError(f"no port free for both UDP and TCP on {host}")

    async def stop(self, *, drain: float = 5.0) -> None:
        """Hang up every call, unregister, close sockets."""
        calls = list(self.calls.values())
        if calls:
            hangups = asyncio.gather(*(c.hangup() for c in calls), return_exceptions=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hangups, drain)
        for task in self._registration_tasks:  # no refresh may follow the unregister
            task.cancel()
        await asyncio.gather(*self._registration_tasks, return_exceptions=True)
        if self.config.register:
            await self.registration.unregister()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.transports.close()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    @property
    def registration_status(self) -> RegistrationStatus:
        return self.registration.status

    # --- containment ----------------------------------------------------------------------------

    def _is_allowed(self, host: str) -> bool:
        if host in self._pbx_addresses:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self._allowed_networks)

    def _accept_source(self, source: Endpoint) -> bool:
        """Drop early (before parsing) when the policy is 'drop'; 'reject' answers 403 later."""
        if self.config.unknown_source_policy != "drop" or self._is_allowed(source.host):
            return True
        self._note_rejected(source)
        return False

    def _media_overloaded(self) -> bool:
        """A quarter of the media ticks of the last second or two ran late: the engine is past its capacity
        (a lone stall such as a GC pause delays far fewer), so a new call would make every call worse."""
        limit = self.config.overload_lateness
        if limit <= 0:
            return False
        loop = asyncio.get_running_loop()
        now = loop.time()
        ticker = TickScheduler.for_loop(loop)
        ticker.late_threshold = limit
        if ticker.late_share(now) < OVERLOAD_LATE_SHARE:
            return False
        self.overload_refusals += 1
        if now - self._last_overload_log > 10:  # rate-limited: an overload comes with a burst of calls
            self._last_overload_log = now
            log.warning(
                "media engine overloaded (%.0f%% of its ticks over %.0f ms late, worst %.0f ms): "
                "refusing new calls with 503; %d refused so far",
                100 * ticker.late_share(now),
                limit * 1000,
                ticker.lateness(now) * 1000,
                self.overload_refusals,
            )
        return True

    def _note_rejected(self, source: Endpoint) -> None:
        self.rejected_sources += 1
        now = time.monotonic()
        if now - self._last_reject_log > 10:  # rate-limited: a scan must not flood the journal
            self._last_reject_log = now
            log.warning(
                "refused SIP from %s (not the PBX nor allowed); %d so far", source, self.rejected_sources
            )

    def _note_message_rejected(self, event: MessageRejected) -> None:
        """Refusing the PBX itself (limits, garbage) loses calls: say so, at most every 10 s."""
        self.rejected_messages += 1
        if not self._is_allowed(event.source.host):
            log.debug("rejected message from %s: %s", event.source, event.reason)
            return
        now = time.monotonic()
        if now - self._last_pbx_reject_log > 10:
            self._last_pbx_reject_log = now
            log.warning(
                "refused a message from the PBX %s: %s (%d refused so far)",
                event.source,
                event.reason,
                self.rejected_messages,
            )

    def _is_local_sent_by(self, sent_by: Endpoint) -> bool:
        """Whether a response's top Via names us (§18.1.2: others' responses are dropped)."""
        return sent_by.port in (self._port_for("udp"), self._port_for("tcp"))

    # --- sending --------------------------------------------------------------------------------

    def _stamp_via(self, request: SipRequest, dest: Endpoint) -> None:
        request.headers.remove("Via")
        port = self._port_for(dest.transport)
        request.headers.prepend(
            "Via",
            f"SIP/2.0/{dest.transport.upper()} {self.contact_host}:{port};branch={self.ids.branch()};rport",
        )

    async def send_with_auth(
        self,
        request: SipRequest,
        dest: Endpoint,
        *,
        on_response: ResponseCallback | None = None,
        dialog: Dialog | None = None,
        on_sent: Callable[[ClientTransaction], None] | None = None,
        aborted: Callable[[], bool] | None = None,
    ) -> tuple[SipResponse, SipRequest]:
        """Send ``request``; answer one 401/407 challenge (more only when stale); return the final
        response and the request that got it (its CSeq may have grown).

        ``on_sent`` sees every client transaction started, the retried one included (a CANCEL
        must name the INVITE actually pending).  ``aborted`` is asked before each retry: a call hung
        up during the challenge must not ring anyway."""
        previous_failed = False
        while True:
            self._stamp_via(request, dest)
            client = self.endpoint.send_request(request, dest, on_response=on_response)
            if on_sent is not None:
                on_sent(client)
            response = await client.final
            if response.status not in (401, 407):
                return response, request
            proxy = response.status == 407
            values = response.headers.get_lines("Proxy-Authenticate" if proxy else "WWW-Authenticate")
            try:
                challenge = select_challenge(values, proxy=proxy)
            except ParseError as exc:
                log.warning("unusable %d challenge from %s: %s", response.status, dest, exc)
                return response, request
            if not self.digest.should_retry(challenge, previous_failed=previous_failed):
                return response, request
            if aborted is not None and aborted():
                return response, request
            previous_failed = True
            request = request.copy()
            cseq = request.cseq
            if dialog is not None and request.method != "ACK":
                dialog.local_seq += 1
                new_seq = dialog.local_seq
            else:
                new_seq = cseq.seq + 1
            request.headers.set("CSeq", f"{new_seq} {cseq.method}")
            name, value = self.digest.authorize(
                challenge,
                method=request.method,
                uri=str(request.uri),
                cnonce=self.ids.cnonce(),
                body=request.body,
            )
            request.headers.set(name, value)

    async def ping(self, dest: Endpoint) -> SipResponse | None:
        """Send OPTIONS to ``dest``; its response, or None when nothing answered."""
        headers = Headers()
        self.add_outbound_route(headers)
        headers.add("Max-Forwards", "70")
        headers.add("From", f"<{self.aor}>;tag={self.ids.tag()}")
        headers.add("To", f"<sip:{self.domain_host}>")
        headers.add("Call-ID", self.ids.call_id())
        headers.add("CSeq", "1 OPTIONS")
        headers.add("User-Agent", self.user_agent)
        request = SipRequest("OPTIONS", SipUri(host=self.domain_host, port=self.domain_port), headers)
        self._stamp_via(request, dest)
        client = self.endpoint.send_request(request, dest)
        response = await client.final
        return None if client.failed_locally else response

    async def send_in_dialog(
        self, dialog: Dialog, request: SipRequest, *, invite: bool = False
    ) -> SipResponse:
        """Send an in-dialog request (with auth); ACK every 2xx to a re-INVITE, retransmissions too.

        A 481, or no answer at all to a re-INVITE or BYE, means the peer lost the dialog: the call
        ends (RFC 5057), so a call the PBX forgot cannot hold its slot and RTP port forever."""
        dest = await self.endpoint_for_uri(dialog.next_hop())

        def ack_2xx(response: SipResponse) -> None:
            if response.is_success:
                self.send_ack(dialog.ack_for(response.cseq.seq), dialog)

        clients: list[ClientTransaction] = []
        response, _ = await self.send_with_auth(
            request, dest, dialog=dialog, on_response=ack_2xx if invite else None, on_sent=clients.append
        )
        dialog.accept_response(response)
        lost = response.status == 481 or (
            request.method in ("INVITE", "BYE") and clients and clients[-1].failed_locally
        )
        if lost:
            call = self._dialogs.get(dialog.id)
            if call is not None:
                call._on_dialog_lost(response.status)
        return response

    def send_ack(self, ack: SipRequest, dialog: Dialog) -> None:
        hop = dialog.next_hop()
        dest = self._endpoint_for_literal(hop)
        if dest is None:
            self.spawn(self._send_ack_resolved(ack, hop), "ack-resolve")
            return
        self._stamp_via(ack, dest)
        self.endpoint.send_ack(ack, dest)

    async def _send_ack_resolved(self, ack: SipRequest, hop: Uri) -> None:
        dest = await self.endpoint_for_uri(hop)
        self._stamp_via(ack, dest)
        self.endpoint.send_ack(ack, dest)

    def _endpoint_for_literal(self, uri: Uri) -> Endpoint | None:
        if not isinstance(uri, SipUri):
            return self.pbx_endpoint
        host = uri.host.strip("[]")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return None
        return Endpoint(host, uri.port or (5061 if uri.scheme == "sips" else 5060), uri.transport)

    async def endpoint_for_uri(self, uri: Uri) -> Endpoint:
        """Where to send a request for ``uri`` (RFC 3263 reduced to A/AAAA lookups and port 5060)."""
        literal = self._endpoint_for_literal(uri)
        if literal is not None:
            return literal
        assert isinstance(uri, SipUri)
        if uri.host.lower() == self.config.pbx_host.lower() and (uri.port in (None, self.config.pbx_port)):
            return self.pbx_endpoint
        addresses = await _resolve(uri.host, uri.port or 5060)
        if not addresses:
            return self.pbx_endpoint
        return Endpoint(sorted(addresses)[0], uri.port or 5060, uri.transport)

    # --- outbound calls -------------------------------------------------------------------------

    async def dial(
        self,
        target: str,
        *,
        ring_timeout: float = 30.0,
        display_name: str | None = None,
        extra_headers: list[tuple[str, str]] | None = None,
    ) -> Call:
        """Ring ``target`` (a SIP URI or an extension on the PBX) through the PBX.

        Returns at once with the call in CALLING state; wait for ``call.answered`` or its events.
        The call is cancelled (EndReason.NO_ANSWER) after ``ring_timeout`` seconds.
        """
        uri = parse_sip_uri(
            target
            if ":" in target.split("@", maxsplit=1)[0]
            else f"sip:{target}@{self.domain_host}"
            + (f":{self.domain_port}" if self.domain_port and "@" not in target else "")
        )
        call = Call(
            self,
            inbound=False,
            call_id=self.ids.call_id(),
            local_tag=self.ids.tag(),
            rtp=self.rtp_ports.allocate(),
        )
        offer = call._new_offer(Direction.SENDRECV)
        call.local_sdp = offer
        headers = Headers()
        self.add_outbound_route(headers)
        headers.add("Max-Forwards", "70")
        display = f'"{display_name}" ' if display_name else ""
        headers.add("From", f"{display}<{self.aor}>;tag={call.local_tag}")
        headers.add("To", f"<{uri}>")
        headers.add("Call-ID", call.call_id)
        headers.add("CSeq", "1 INVITE")
        headers.add("Contact", self.local_contact())
        headers.add("User-Agent", self.user_agent)
        self.add_capabilities(headers)
        for name, value in extra_headers or []:
            headers.add(name, value)
        headers.add("Content-Type", "application/sdp")
        invite = SipRequest("INVITE", uri, headers, offer.to_bytes())
        call.invite = invite
        self.calls[call.key] = call
        self.spawn(self._run_outbound(call, ring_timeout), f"dial-{call.call_id}")
        return call

    async def _run_outbound(self, call: Call, ring_timeout: float) -> None:
        assert call.invite is not None
        if call.state is CallState.ENDED:
            return  # hung up before anything went on the wire

        def on_response(response: SipResponse) -> None:
            assert call.invite is not None
            call._on_invite_response(call.invite, response)

        def on_sent(client: ClientTransaction) -> None:
            call.invite = client.request
            call.invite_client = client

        sending = asyncio.ensure_future(
            self.send_with_auth(
                call.invite,
                self.pbx_endpoint,
                on_response=on_response,
                on_sent=on_sent,
                aborted=lambda: call.state is CallState.ENDED,
            )
        )
        try:
            response, _ = await asyncio.wait_for(asyncio.shield(sending), ring_timeout)
        except TimeoutError:
            self.cancel_outbound(call, reason=EndReason.NO_ANSWER)
            return  # the INVITE transaction ends by itself: 487, a late 2xx (BYE'd), or Timer B
        except Exception:
            log.exception("outbound call %s failed", call.call_id)
            call._finish(CallEnded(EndReason.FAILED, None, "internal error"))
            return
        if response.status >= 300:
            call._finish(CallEnded(EndReason.REJECTED, response.status, response.reason))

    def cancel_outbound(self, call: Call, *, reason: EndReason = EndReason.LOCAL_HANGUP) -> None:
        """Give up an unanswered outbound INVITE.  The CANCEL goes out now if the callee has sent a
        provisional response, else as soon as one arrives (§9.1); until then nothing may be sent."""
        call._finish(CallEnded(reason))
        call._cancel_pending = True
        client = call.invite_client
        if client is not None and client.provisional_seen.is_set():
            self.send_cancel(call)

    def send_cancel(self, call: Call) -> None:
        """CANCEL the INVITE currently pending for ``call`` (same Via branch, CSeq number, Route)."""
        invite = call.invite
        if call._cancel_sent or invite is None or not invite.headers.get_lines("Via"):
            return
        call._cancel_sent = True
        call._cancel_pending = False
        headers = Headers()
        headers.add("Via", invite.headers.get_lines("Via")[0])
        for route in invite.headers.get_lines("Route"):
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        for name in ("From", "To", "Call-ID"):
            headers.add(name, invite.headers.get(name) or "")
        headers.add("CSeq", f"{invite.cseq.seq} CANCEL")
        dest = call.invite_client.dest if call.invite_client is not None else self.pbx_endpoint
        self.endpoint.send_request(SipRequest("CANCEL", invite.uri, headers), dest)

    # --- bookkeeping used by Call ---------------------------------------------------------------

    def register_dialog(self, call: Call) -> None:
        assert call.dialog is not None
        self._dialogs[call.dialog.id] = call

    def forget_dialog(self, call: Call) -> None:
        if call.dialog is not None:
            self._dialogs.pop(call.dialog.id, None)

    def call_finished(self, call: Call) -> None:
        if self.calls.get(call.key) is call:
            del self.calls[call.key]
        if call.invite_key is not None:
            self._invite_keys.pop(call.invite_key, None)
        call.rtp.release()
        # Forgotten at once: a late in-dialog request then gets 481 like any unknown dialog, and
        # responses match by transaction. Keeping ended calls 32 s kept ~6 000 call graphs alive
        # at 200 calls/s, which made every full garbage collection stop the loop far longer.
        self.forget_dialog(call)

    # --- what arrives ---------------------------------------------------------------------------

    def _on_tx_event(self, event: TxEvent) -> None:
        if isinstance(event, RequestReceived):
            self._on_request(event)
        elif isinstance(event, StrayResponse):
            self._on_stray_response(event.response)
        elif isinstance(event, AckNotReceived):
            call = self._invite_keys.get(event.key)
            if call is not None:
                call._on_ack_timeout()
        elif isinstance(event, MessageRejected):
            self._note_message_rejected(event)

    def _on_stray_response(self, response: SipResponse) -> None:
        """A 2xx retransmission after the INVITE transaction ended: ACK it again (§13.2.2.4)."""
        if response.cseq.method != "INVITE" or not response.is_success:
            return
        dialog_id = DialogId(response.call_id, response.from_.tag or "", response.to.tag or "")
        call = self._dialogs.get(dialog_id)
        if call is not None and call.dialog is not None:
            self.send_ack(call.dialog.ack_for(response.cseq.seq), call.dialog)

    def _on_request(self, event: RequestReceived) -> None:
        request, key, source = event.request, event.key, event.source
        method = request.method
        if method == "ACK":
            call = self._match_dialog(request)
            if call is not None:
                call._on_request(request, None)
            return
        assert key is not None
        if self.config.unknown_source_policy == "reject" and not self._is_allowed(source.host):
            self._note_rejected(source)
            self.endpoint.send_response(key, make_response(request, 403, "Forbidden (source not allowed)"))
            return
        if method == "CANCEL":
            self._on_cancel(request, key, getattr(event, "cancelled", None))
            return
        if request.to.tag:
            call = self._match_dialog(request)
            if call is None:
                self.endpoint.send_response(key, make_response(request, 481))
            else:
                call._on_request(request, key)
            return
        rejection = check_request(
            request,
            allowed_methods=ALLOWED_METHODS,
            supported_extensions=SUPPORTED_EXTENSIONS,
            accepted_content_types=ACCEPTED_CONTENT_TYPES,
        )
        if rejection is not None:
            self.add_capabilities(rejection.headers) if rejection.status == 405 else None
            self.endpoint.send_response(key, rejection)
            return
        if method == "INVITE":
            self._on_new_invite(request, key)
        elif method == "OPTIONS":
            response = make_response(request, 200)
            self.add_capabilities(response.headers)
            response.headers.add("Accept", "application/sdp")
            self.endpoint.send_response(key, response)
        else:
            # BYE/INFO/REFER/NOTIFY/UPDATE outside any dialog
            self.endpoint.send_response(key, make_response(request, 481))

    def _match_dialog(self, request: SipRequest) -> Call | None:
        dialog_id = DialogId(request.call_id, request.to.tag or "", request.from_.tag or "")
        return self._dialogs.get(dialog_id)

    def _on_cancel(self, request: SipRequest, key: TxKey, invite_key: TxKey | None) -> None:
        """The transaction layer matched this CANCEL to an INVITE (it answers 481 itself when not):
        200 to the CANCEL always (§9.2); 487 to the INVITE if it is still unanswered."""
        self.endpoint.send_response(key, make_response(request, 200))
        call = self._invite_keys.get(invite_key) if invite_key is not None else None
        if call is not None and call.state in (CallState.INCOMING, CallState.RINGING):
            call._send_final(487)
            call._on_cancel()

    def _on_new_invite(self, request: SipRequest, key: TxKey) -> None:
        if len(self.calls) >= self.config.max_calls:
            response = make_response(request, 503, "Too Many Calls")
            response.headers.add("Retry-After", "30")
            self.endpoint.send_response(key, response)
            return
        if self._media_overloaded():
            response = make_response(request, 503, "Media Overloaded")
            response.headers.add("Retry-After", "10")
            self.endpoint.send_response(key, response)
            return
        replaced, status = self._replaced_call(request)
        if status is not None:
            self.endpoint.send_response(key, make_response(request, status))
            return
        try:
            rtp = self.rtp_ports.allocate()
        except PortRangeExhausted as exc:
            log.error("%s", exc)
            self.endpoint.send_response(key, make_response(request, 503, "No Media Ports"))
            return
        call = Call(self, inbound=True, call_id=request.call_id, local_tag=self.ids.tag(), rtp=rtp)
        try:
            call._start_inbound(request, key)
            if call.remote_offer is not None:
                call._negotiate_answer()
        except SdpError as exc:
            rtp.release()
            self.endpoint.send_response(key, make_response(request, 400, f"Bad SDP: {exc}"[:120]))
            return
        except NotAcceptable as exc:
            rtp.release()
            response = make_response(request, 488)
            response.headers.add("Warning", f"304 {self.contact_host} {quote(str(exc)[:100])}")
            self.endpoint.send_response(key, response)
            return
        call.replaces = replaced
        self.calls[call.key] = call
        self._invite_keys[key] = call
        call._arm_ring_guard(self.config.max_ring_seconds)
        if self._incoming_handler is None:
            self.spawn(call.reject(480, "No Application"), "reject-no-app")
            return
        self.spawn(self._run_incoming(call), f"incoming-{call.call_id}")

    def _replaced_call(self, request: SipRequest) -> tuple[Call | None, int | None]:
        """The call an INVITE with Replaces takes over, or the error status (RFC 3891 §3)."""
        values = request.headers.get_lines("Replaces")
        if not values:
            return None, None
        if len(values) > 1:
            return None, 400
        target = parse_replaces(values[0])
        if target is None:
            return None, 400
        call = self._dialogs.get(DialogId(target.call_id, target.to_tag, target.from_tag))
        if call is None or call.state is CallState.ENDED:
            return None, 481
        if not call.inbound and call.state is not CallState.ESTABLISHED:
            return None, 481  # our own early outbound dialog cannot be replaced
        if target.early_only and call.state is CallState.ESTABLISHED:
            return None, 486
        return call, None

    async def _run_incoming(self, call: Call) -> None:
        assert self._incoming_handler is not None
        try:
            await self._incoming_handler(call)
        except Exception:
            log.exception("call handler failed for %s", call.call_id)
            await call.hangup()
        finally:
            if call.state in (CallState.INCOMING, CallState.RINGING):
                await call.reject(480)  # the handler left without answering: do not ring on


def _route_source_address(host: str) -> str:
    """The local address the kernel would use to reach ``host`` (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((host, 9))
            return str(sock.getsockname()[0])
        except OSError:
            return "127.0.0.1"


async def _resolve(host: str, port: int) -> set[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError:
        return set()
    return {str(info[4][0]) for info in infos}
