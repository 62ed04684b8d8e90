"""One call leg with an async API: answer, ring, reject, hang up, hold, transfer, DTMF.

The :class:`~ccdaemon.telephony.useragent.UserAgent` creates calls and routes every message of
their dialog here; a call turns messages into :mod:`events <ccdaemon.telephony.events>` on its
queue and application calls into SIP requests and responses.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING
from urllib.parse import unquote

from ..sip.dialog import Dialog, DialogState
from ..sip.errors import RemoteProtocolError
from ..sip.headers import Headers
from ..sip.message import SipRequest, SipResponse, make_response, reason_phrase
from ..sip.offer_answer import NegotiatedMedia, NotAcceptable, accept_answer, answer_offer, make_offer
from ..sip.sdp import Direction, SdpError, SessionDescription, parse_sdp
from ..sip.transaction import TxKey
from ..sip.uri import NameAddr, SipUri, parse_name_addr
from .events import (
    Answered,
    CallEnded,
    CallEvent,
    CallState,
    DtmfReceived,
    EndReason,
    HoldChanged,
    MediaChanged,
    ReplacesTarget,
    Ringing,
    TransferProgress,
    TransferRequested,
)
from .rtp_ports import RtpPortReservation

if TYPE_CHECKING:
    from .sip_endpoint import ClientTransaction
    from .useragent import UserAgent

log = logging.getLogger(__name__)

SDP = "application/sdp"
_DTMF_RELAY_RE = re.compile(r"Signal\s*=\s*([0-9A-Da-d*#]|1[01])", re.IGNORECASE)
_DURATION_RE = re.compile(r"Duration\s*=\s*(\d+)", re.IGNORECASE)
_SIPFRAG_RE = re.compile(r"SIP/2\.0 ([1-6][0-9]{2})")


class CallError(Exception):
    """An operation the call's state does not allow, or a request the peer refused."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Call:
    """A SIP call leg.  Inbound legs start INCOMING; outbound legs are made by ``UserAgent.dial``."""

    def __init__(
        self,
        ua: UserAgent,
        *,
        inbound: bool,
        call_id: str,
        local_tag: str,
        rtp: RtpPortReservation,
    ) -> None:
        self._ua = ua
        self.inbound = inbound
        self.call_id = call_id
        self.local_tag = local_tag
        self.rtp = rtp
        self.state = CallState.INCOMING if inbound else CallState.CALLING
        self.dialog: Dialog | None = None
        self.media: NegotiatedMedia | None = None
        self.remote_offer: SessionDescription | None = None
        self.local_sdp: SessionDescription | None = None
        self.end: CallEnded | None = None
        self.remote_hold = False
        self.local_hold = False
        self.events: asyncio.Queue[CallEvent] = asyncio.Queue()
        self.ended = asyncio.Event()
        self.answered = asyncio.Event()
        # inbound INVITE server transaction
        self.invite: SipRequest | None = None
        self.invite_key: TxKey | None = None
        # outbound INVITE client transaction (the latest, after an auth retry)
        self.invite_client: ClientTransaction | None = None
        self._acked = asyncio.Event()
        self._session_id = ua.ids.session_id()
        self._sdp_version = 0
        self._reinvite_pending = False
        self._refer_seq: int | None = None
        self.replaces: Call | None = None  # the call an INVITE-with-Replaces takes over

    def __repr__(self) -> str:
        return f"<Call {self.call_id} {'in' if self.inbound else 'out'} {self.state.name}>"

    # --- who ------------------------------------------------------------------------------------

    @property
    def remote_party(self) -> NameAddr:
        if self.dialog is not None:
            return self.dialog.remote_party
        assert self.invite is not None
        return self.invite.from_ if self.inbound else self.invite.to

    @property
    def caller_number(self) -> str:
        uri = self.remote_party.uri
        return (uri.user_unescaped or "") if isinstance(uri, SipUri) else str(uri)

    # --- inbound --------------------------------------------------------------------------------

    def _start_inbound(self, invite: SipRequest, key: TxKey) -> None:
        self.invite = invite
        self.invite_key = key
        if invite.body:
            self.remote_offer = self._parse_body(invite)

    async def ring(self, *, early_media: bool = False) -> None:
        """Send 180 Ringing (or 183 with our SDP answer, for announcements before answering)."""
        self._require(CallState.INCOMING, CallState.RINGING)
        status = 183 if early_media else 180
        body = b""
        if early_media:
            body = self._negotiate_answer().to_bytes()
        response = self._invite_response(status, body)
        self._ensure_uas_dialog(response)
        self.state = CallState.RINGING
        self._ua.endpoint.send_response(self._key(), response)

    async def answer(self) -> NegotiatedMedia | None:
        """Send 200 OK with our SDP and wait for the ACK (the transaction layer retransmits)."""
        self._require(CallState.INCOMING, CallState.RINGING)
        if self.remote_offer is not None:
            body = (self.local_sdp or self._negotiate_answer()).to_bytes()
        else:
            # late offer (RFC 3261 §13.2.1): we offer in the 200, the answer comes in the ACK
            self.local_sdp = self._new_offer(Direction.SENDRECV)
            body = self.local_sdp.to_bytes()
        response = self._invite_response(200, body)
        self._ensure_uas_dialog(response)
        assert self.dialog is not None
        self.dialog.state = DialogState.CONFIRMED
        self.state = CallState.ESTABLISHED
        self._ua.endpoint.send_response(self._key(), response)
        self.answered.set()
        await self._wait_ack()
        return self.media

    async def reject(self, status: int = 486, reason: str | None = None) -> None:
        """Refuse an unanswered inbound call with a final error response."""
        self._require(CallState.INCOMING, CallState.RINGING)
        assert self.invite is not None
        response = make_response(self.invite, status, reason, to_tag=self.local_tag)
        self._ua.endpoint.send_response(self._key(), response)
        self._finish(CallEnded(EndReason.REJECTED, status))

    async def _wait_ack(self) -> None:
        waiter = asyncio.ensure_future(self._acked.wait())
        ender = asyncio.ensure_future(self.ended.wait())
        try:
            await asyncio.wait({waiter, ender}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            ender.cancel()

    def _invite_response(self, status: int, body: bytes) -> SipResponse:
        assert self.invite is not None
        response = make_response(
            self.invite, status, to_tag=self.local_tag, body=body, content_type=SDP if body else None
        )
        for rr in self.invite.headers.get_lines("Record-Route"):
            response.headers.add("Record-Route", rr)  # §12.1.1: the UAS copies Record-Route
        response.headers.add("Contact", self._ua.contact_for(self.invite))
        self._ua.add_capabilities(response.headers)
        return response

    def _ensure_uas_dialog(self, response: SipResponse) -> None:
        if self.dialog is None:
            assert self.invite is not None
            self.dialog = Dialog.as_uas(self.invite, response)
            self._ua.register_dialog(self)

    def _negotiate_answer(self) -> SessionDescription:
        assert self.remote_offer is not None
        self._sdp_version += 1
        answer, media = answer_offer(
            self.remote_offer,
            self._ua.media_capabilities(self.rtp.port),
            session_id=self._session_id,
            version=self._sdp_version,
            direction_wish=Direction.SENDONLY if self.local_hold else Direction.SENDRECV,
        )
        self.local_sdp = answer
        self._set_media(media)
        return answer

    def _new_offer(self, direction: Direction) -> SessionDescription:
        self._sdp_version += 1
        return make_offer(
            self._ua.media_capabilities(self.rtp.port),
            session_id=self._session_id,
            version=self._sdp_version,
            direction=direction,
        )

    def _set_media(self, media: NegotiatedMedia) -> None:
        changed = self.media is not None and media != self.media
        self.media = media
        if changed:
            self.events.put_nowait(MediaChanged(media))

    def _key(self) -> TxKey:
        assert self.invite_key is not None
        return self.invite_key

    # --- outbound -------------------------------------------------------------------------------

    def _on_invite_response(self, invite: SipRequest, response: SipResponse) -> None:
        """Every response to our INVITE, including 2xx retransmissions (each needs its ACK)."""
        if self.state is CallState.ENDED and not response.is_success:
            return
        if response.is_provisional:
            if response.status > 100 and self.state is CallState.CALLING:
                self.state = CallState.RINGING
                early = None
                if response.body and response.to.tag:
                    early = self._media_from_answer(response)
                self.events.put_nowait(Ringing(response.status, early))
            if response.to.tag and self.dialog is None:
                self.dialog = Dialog.as_uac(invite, response)
                self._ua.register_dialog(self)
            return
        if response.is_success:
            self._on_invite_2xx(invite, response)

    def _on_invite_2xx(self, invite: SipRequest, response: SipResponse) -> None:
        tag = response.to.tag or ""
        if self.dialog is not None and self.dialog.id.remote_tag != tag:
            if self.dialog.state is DialogState.CONFIRMED:
                # a second fork answered: ACK it and end that dialog at once (§13.2.2.4)
                extra = Dialog.as_uac(invite, response)
                self._ua.send_ack(extra.ack_for(invite.cseq.seq), extra)
                self._ua.spawn(self._ua.send_in_dialog(extra, extra.new_request("BYE")), "bye-extra-fork")
                return
            self._ua.forget_dialog(self)
            self.dialog = None
        if self.dialog is None:
            self.dialog = Dialog.as_uac(invite, response)
            self._ua.register_dialog(self)
        first = self.dialog.state is not DialogState.CONFIRMED or self.state is not CallState.ESTABLISHED
        self.dialog.accept_response(response)
        self._ua.send_ack(self.dialog.ack_for(invite.cseq.seq), self.dialog)
        if not first:
            return
        media = self._media_from_answer(response) if response.body else None
        if self.state is CallState.ENDED:
            # answered after we gave up (CANCEL raced the 200): the 2xx confirmed the dialog, so BYE it
            self.dialog.state = DialogState.CONFIRMED
            self._ua.spawn(
                self._ua.send_in_dialog(self.dialog, self.dialog.new_request("BYE")), "bye-late-2xx"
            )
            return
        self.state = CallState.ESTABLISHED
        self.answered.set()
        self.events.put_nowait(Answered(media))

    def _media_from_answer(self, response: SipResponse) -> NegotiatedMedia | None:
        if self.local_sdp is None:
            return None
        try:
            media = accept_answer(self.local_sdp, parse_sdp(response.body))
        except (SdpError, NotAcceptable) as exc:
            log.warning("call %s: unusable SDP answer: %s", self.call_id, exc)
            return None
        self._set_media(media)
        return media

    # --- in-dialog requests from the peer ----------------------------------------------------

    def _on_request(self, request: SipRequest, key: TxKey | None) -> None:
        method = request.method
        if method == "ACK":
            if request.body and self.local_sdp is not None and self.remote_offer is None:
                try:
                    self._set_media(accept_answer(self.local_sdp, parse_sdp(request.body)))
                except (SdpError, NotAcceptable) as exc:
                    log.warning("call %s: bad SDP in ACK: %s", self.call_id, exc)
            self._acked.set()
            return
        assert key is not None
        assert self.dialog is not None
        try:
            self.dialog.accept_request(request)
        except RemoteProtocolError as exc:
            self._respond(key, request, exc.status_hint, str(exc))
            return
        handler = {
            "BYE": self._on_bye,
            "INVITE": self._on_reinvite,
            "UPDATE": self._on_update,
            "INFO": self._on_info,
            "REFER": self._on_refer,
            "NOTIFY": self._on_notify,
            "OPTIONS": self._on_options,
        }.get(method)
        if handler is None:
            response = make_response(request, 501)
            self._ua.add_capabilities(response.headers)
            self._ua.endpoint.send_response(key, response)
            return
        handler(request, key)

    def _respond(self, key: TxKey, request: SipRequest, status: int, reason: str | None = None) -> None:
        self._ua.endpoint.send_response(key, make_response(request, status, reason))

    def _on_bye(self, request: SipRequest, key: TxKey) -> None:
        self._respond(key, request, 200)
        self._finish(CallEnded(EndReason.REMOTE_HANGUP))

    def _on_reinvite(self, request: SipRequest, key: TxKey) -> None:
        if self._reinvite_pending:
            self._respond(key, request, 491)  # glare (RFC 3261 §14.2)
            return
        body = b""
        if request.body:
            try:
                offer = parse_sdp(request.body)
                self.remote_offer = offer
                body = self._negotiate_answer().to_bytes()
            except SdpError as exc:
                self._respond(key, request, 400, f"Bad SDP: {exc}"[:100])
                return
            except NotAcceptable as exc:
                self._respond(key, request, 488)
                log.info("call %s: re-INVITE not acceptable: %s", self.call_id, exc)
                return
        else:
            self.local_sdp = self._new_offer(Direction.SENDONLY if self.local_hold else Direction.SENDRECV)
            body = self.local_sdp.to_bytes()
            self.remote_offer = None
        response = make_response(request, 200, body=body, content_type=SDP)
        response.headers.add("Contact", self._ua.contact_for(request))
        self._ua.add_capabilities(response.headers)
        self._ua.endpoint.send_response(key, response)
        if self.media is not None:
            hold = self.media.peer_holds
            if hold != self.remote_hold:
                self.remote_hold = hold
                self.events.put_nowait(HoldChanged(hold, self.media))

    def _on_update(self, request: SipRequest, key: TxKey) -> None:
        self._on_reinvite(request, key)

    def _on_info(self, request: SipRequest, key: TxKey) -> None:
        ctype = request.content_type
        text = request.body.decode("utf-8", "replace")
        digit: str | None = None
        duration: int | None = None
        if ctype == "application/dtmf-relay":
            match = _DTMF_RELAY_RE.search(text)
            if match:
                digit = _normalise_digit(match.group(1))
            dur = _DURATION_RE.search(text)
            duration = int(dur.group(1)) if dur else None
        elif ctype == "application/dtmf":
            value = text.strip()
            if value:
                digit = _normalise_digit(value)
        if digit is None and request.body:
            self._respond(key, request, 415)
            return
        self._respond(key, request, 200)
        if digit is not None:
            self.events.put_nowait(DtmfReceived(digit, duration, "info"))

    def _on_refer(self, request: SipRequest, key: TxKey) -> None:
        refer_to_text = request.headers.get("Refer-To")
        if refer_to_text is None or request.headers.count("Refer-To") != 1:
            self._respond(key, request, 400, "Missing or repeated Refer-To")
            return
        try:
            refer_to = parse_name_addr(refer_to_text)
        except RemoteProtocolError:
            self._respond(key, request, 400, "Malformed Refer-To")
            return
        replaces = _replaces_from_uri(refer_to)
        self._respond(key, request, 202)
        self._refer_seq = request.cseq.seq
        self.events.put_nowait(TransferRequested(refer_to, request.headers.get("Referred-By"), replaces))
        self.notify_transfer(100)

    def _on_notify(self, request: SipRequest, key: TxKey) -> None:
        self._respond(key, request, 200)
        if (request.headers.get("Event") or "").split(";")[0].strip().lower() == "refer":
            match = _SIPFRAG_RE.match(request.body.decode("utf-8", "replace"))
            state = (request.headers.get("Subscription-State") or "").lower()
            if match:
                self.events.put_nowait(TransferProgress(int(match.group(1)), state.startswith("terminated")))

    def _on_options(self, request: SipRequest, key: TxKey) -> None:
        response = make_response(request, 200)
        self._ua.add_capabilities(response.headers)
        self._ua.endpoint.send_response(key, response)

    def _on_cancel(self) -> None:
        """The caller gave up before we answered (the UA already sent 200 to CANCEL, 487 to INVITE)."""
        self._finish(CallEnded(EndReason.CANCELLED, 487))

    def _on_ack_timeout(self) -> None:
        """Our 2xx was never ACKed: end the dialog with BYE (RFC 3261 §13.3.1.4)."""
        if self.dialog is not None and self.state is CallState.ESTABLISHED:
            self._ua.spawn(self._ua.send_in_dialog(self.dialog, self.dialog.new_request("BYE")), "bye-no-ack")
        self._finish(CallEnded(EndReason.FAILED, 408, "no ACK for 200 OK"))

    # --- in-dialog requests we send -----------------------------------------------------------

    async def hangup(self) -> None:
        """End the call whatever its state: BYE, CANCEL or a 480 to an unanswered INVITE."""
        if self.state is CallState.ENDED:
            return
        if self.inbound and self.state in (CallState.INCOMING, CallState.RINGING):
            await self.reject(480)
            return
        if not self.inbound and self.state in (CallState.CALLING, CallState.RINGING):
            await self._ua.cancel_outbound(self)
            return
        assert self.dialog is not None
        dialog = self.dialog
        bye = dialog.new_request("BYE")
        self._finish(CallEnded(EndReason.LOCAL_HANGUP))
        await self._ua.send_in_dialog(dialog, bye)

    async def hold(self) -> None:
        """Put the peer on hold: re-INVITE with a=sendonly (we may still send music)."""
        await self._reoffer(Direction.SENDONLY, hold=True)

    async def unhold(self) -> None:
        await self._reoffer(Direction.SENDRECV, hold=False)

    async def _reoffer(self, direction: Direction, *, hold: bool) -> None:
        self._require(CallState.ESTABLISHED)
        assert self.dialog is not None
        if self._reinvite_pending:
            raise CallError("a re-INVITE is already in progress")
        self._reinvite_pending = True
        try:
            offer = self._new_offer(direction)
            request = self.dialog.new_request("INVITE", body=offer.to_bytes(), content_type=SDP)
            response = await self._ua.send_in_dialog(self.dialog, request, invite=True)
        finally:
            self._reinvite_pending = False
        if not response.is_success:
            raise CallError(f"re-INVITE refused with {response.status}", status=response.status)
        self.local_sdp = offer
        self.local_hold = hold
        if response.body:
            media = accept_answer(offer, parse_sdp(response.body))
            self._set_media(media)

    async def send_dtmf_info(self, digit: str, duration_ms: int = 160) -> None:
        """Send one DTMF digit as SIP INFO (application/dtmf-relay)."""
        self._require(CallState.ESTABLISHED)
        assert self.dialog is not None
        body = f"Signal={digit}\r\nDuration={duration_ms}\r\n".encode()
        request = self.dialog.new_request("INFO", body=body, content_type="application/dtmf-relay")
        response = await self._ua.send_in_dialog(self.dialog, request)
        if not response.is_success:
            raise CallError(f"INFO refused with {response.status}", status=response.status)

    async def refer(self, target: str, *, replaces: Call | None = None) -> None:
        """Ask the peer to call ``target`` (blind) or to replace ``replaces`` (attended, RFC 3891)."""
        self._require(CallState.ESTABLISHED)
        assert self.dialog is not None
        refer_to = f"<{target}>"
        if replaces is not None and replaces.dialog is not None:
            d = replaces.dialog.id
            value = f"{d.call_id};to-tag={d.remote_tag};from-tag={d.local_tag}"
            escaped = value.replace("@", "%40").replace(";", "%3B").replace("=", "%3D")
            refer_to = f"<{target}?Replaces={escaped}>"
        request = self.dialog.new_request(
            "REFER",
            extra_headers=[("Refer-To", refer_to), ("Referred-By", f"<{self._ua.aor}>")],
        )
        response = await self._ua.send_in_dialog(self.dialog, request)
        if not response.is_success:
            raise CallError(f"REFER refused with {response.status}", status=response.status)

    def notify_transfer(self, status: int, reason: str | None = None) -> None:
        """Report the progress of a transfer the peer asked for (RFC 3515 NOTIFY, sipfrag body)."""
        if self.dialog is None or self._refer_seq is None or self.dialog.state is DialogState.TERMINATED:
            return
        final = status >= 200
        body = f"SIP/2.0 {status} {reason or reason_phrase(status)}\r\n".encode()
        request = self.dialog.new_request(
            "NOTIFY",
            body=body,
            content_type="message/sipfrag;version=2.0",
            extra_headers=[
                ("Event", f"refer;id={self._refer_seq}"),
                ("Subscription-State", "terminated;reason=noresource" if final else "active;expires=60"),
            ],
        )
        self._ua.spawn(self._ua.send_in_dialog(self.dialog, request), "notify-refer")

    # --- waiting --------------------------------------------------------------------------------

    async def wait_ended(self) -> CallEnded:
        await self.ended.wait()
        assert self.end is not None
        return self.end

    async def next_event(self, timeout: float | None = None) -> CallEvent:
        return await asyncio.wait_for(self.events.get(), timeout)

    # --- internals ------------------------------------------------------------------------------

    def _require(self, *states: CallState) -> None:
        if self.state not in states:
            wanted = "/".join(s.name for s in states)
            raise CallError(f"call {self.call_id} is {self.state.name}, needs {wanted}")

    def _parse_body(self, message: SipRequest | SipResponse) -> SessionDescription | None:
        if message.content_type != SDP:
            return None
        return parse_sdp(message.body)

    def _finish(self, end: CallEnded) -> None:
        if self.state is CallState.ENDED:
            return
        self.state = CallState.ENDED
        self.end = end
        if self.dialog is not None:
            self.dialog.terminate()
        self.events.put_nowait(end)
        self.ended.set()
        self._ua.call_finished(self)


def _normalise_digit(value: str) -> str | None:
    value = value.strip().upper()
    if value == "10":
        return "*"
    if value == "11":
        return "#"
    if len(value) == 1 and value in "0123456789*#ABCD":
        return value
    return None


def _replaces_from_uri(refer_to: NameAddr) -> ReplacesTarget | None:
    """Pull ``Replaces`` out of a Refer-To URI's headers (``?Replaces=callid%3Bto-tag%3D...``)."""
    uri = refer_to.uri
    if not isinstance(uri, SipUri) or not uri.headers:
        return None
    for part in uri.headers.split("&"):
        name, _, value = part.partition("=")
        if name.lower() == "replaces":
            return parse_replaces(unquote(value))
    return None


def parse_replaces(value: str) -> ReplacesTarget | None:
    """Parse a Replaces header value (RFC 3891 §6.1); None when malformed."""
    call_id, *params = [p.strip() for p in value.split(";")]
    fields: dict[str, str] = {}
    for param in params:
        name, _, val = param.partition("=")
        fields[name.strip().lower()] = val.strip()
    if not call_id or "to-tag" not in fields or "from-tag" not in fields:
        return None
    return ReplacesTarget(call_id, fields["to-tag"], fields["from-tag"], "early-only" in fields)


__all__ = ["Call", "CallError", "Headers", "parse_replaces"]
