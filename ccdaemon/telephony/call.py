"""One call leg with an async API: answer, ring, reject, hang up, hold, transfer, DTMF.

The :class:`~ccdaemon.telephony.useragent.UserAgent` creates calls and routes every message of
their dialog here; a call turns messages into :mod:`events <ccdaemon.telephony.events>` on its
queue and application calls into SIP requests and responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import TYPE_CHECKING
from urllib.parse import unquote

from ..media.dtmf import DtmfDigit
from ..media.rtcp_session import RtcpSession, process_cname
from ..media.session import FrameSource, RtpSession
from ..sip.dialog import Dialog, DialogState
from ..sip.errors import RemoteProtocolError
from ..sip.headers import Headers
from ..sip.message import SipRequest, SipResponse, make_response, reason_phrase
from ..sip.offer_answer import (
    NegotiatedMedia,
    NotAcceptable,
    accept_answer,
    answer_offer,
    make_offer,
    make_reoffer,
)
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
EVENT_QUEUE_SIZE = 256
_DTMF_RELAY_RE = re.compile(r"Signal\s*=\s*(1[01]|[0-9A-Da-d*#])", re.IGNORECASE)  # 10/11 before 1
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
        # bounded: an application that never reads events must not make a long call grow
        self.events: asyncio.Queue[CallEvent] = asyncio.Queue(maxsize=EVENT_QUEUE_SIZE)
        self.dropped_events = 0
        # REFER is answered 202 only when the application will act on it (else 603)
        self.accept_transfers = False
        self.ended = asyncio.Event()
        self.answered = asyncio.Event()
        # inbound INVITE server transaction
        self.invite: SipRequest | None = None
        self.invite_key: TxKey | None = None
        # outbound INVITE client transaction (the latest, after an auth retry)
        self.invite_client: ClientTransaction | None = None
        self._acked = asyncio.Event()
        self._final_sent = False  # inbound: a final response to the INVITE went out
        self._cancel_pending = False  # outbound: CANCEL wanted, waiting for a provisional
        self._cancel_sent = False
        self._byed_tags: set[str] = set()  # outbound: remote tags we already sent BYE to
        self._ring_guard: asyncio.TimerHandle | None = None
        self._session_id = ua.ids.session_id()
        self._sdp_version = 0
        self._reinvite_pending = False
        self._refer_seq: int | None = None
        self._refer_sent = False
        self.replaces: Call | None = None  # the call an INVITE-with-Replaces takes over
        self.media_session: RtpSession | None = None  # the leg's RTP, once media is agreed
        self.rtcp_session: RtcpSession | None = None  # its RTCP, when the reservation has the odd port

    @property
    def key(self) -> tuple[str, str]:
        return (self.call_id, self.local_tag)

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

    def _arm_ring_guard(self, max_ring: float) -> None:
        """Never ring forever: the INVITE's Expires (§13.3.1.1) or our own limit ends it."""
        assert self.invite is not None
        expires = self.invite.expires
        limit = min(max_ring, expires) if expires else max_ring
        self._ring_guard = asyncio.get_running_loop().call_later(
            limit, self._ring_expired, expires is not None
        )

    def _ring_expired(self, by_expires: bool) -> None:
        if self.state in (CallState.INCOMING, CallState.RINGING):
            status = 487 if by_expires else 480
            self._send_final(status)
            self._finish(CallEnded(EndReason.FAILED, status, "ringing too long"))

    def _send_final(self, status: int, reason: str | None = None) -> None:
        """A final error response to our inbound INVITE, once."""
        if self._final_sent or self.invite is None or self.invite_key is None:
            return
        self._final_sent = True
        self._ua.endpoint.send_response(
            self.invite_key, make_response(self.invite, status, reason, to_tag=self.local_tag)
        )

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
        self._final_sent = True
        self._cancel_ring_guard()
        self._ua.endpoint.send_response(self._key(), response)
        self.answered.set()
        self._ensure_media_session()
        await self._wait_ack()
        return self.media

    async def reject(self, status: int = 486, reason: str | None = None) -> None:
        """Refuse an unanswered inbound call with a final error response."""
        self._require(CallState.INCOMING, CallState.RINGING)
        self._send_final(status, reason)
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

    def _reoffer_sdp(self, direction: Direction) -> SessionDescription:
        """Our next offer in this dialog: the last SDP we sent with a new direction, so the m= lines
        keep their number and order (RFC 3264 §8)."""
        if self.local_sdp is None:
            return self._new_offer(direction)
        return make_reoffer(self.local_sdp, direction=direction)

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
        if changed and self.media_session is not None:
            self.media_session.update(media)
        if changed:
            self._emit(MediaChanged(media))

    def _key(self) -> TxKey:
        assert self.invite_key is not None
        return self.invite_key

    # --- outbound -------------------------------------------------------------------------------

    def _on_invite_response(self, invite: SipRequest, response: SipResponse) -> None:
        """Every response to our INVITE, including 2xx retransmissions (each needs its ACK)."""
        if response.is_provisional:
            if self._cancel_pending:
                self._ua.send_cancel(self)  # §9.1: the CANCEL waited for this provisional
            if self.state is CallState.ENDED:
                return
            if response.status > 100 and self.state is CallState.CALLING:
                self.state = CallState.RINGING
                early = None
                if response.body and response.to.tag:
                    early = self._media_from_answer(response)
                self._emit(Ringing(response.status, early))
            if response.to.tag and self.dialog is None:
                self.dialog = Dialog.as_uac(invite, response)
                self._ua.register_dialog(self)
            return
        if response.is_success:
            self._on_invite_2xx(invite, response)

    def _on_invite_2xx(self, invite: SipRequest, response: SipResponse) -> None:
        tag = response.to.tag
        if not tag:  # cannot even be ACKed properly: a broken peer
            log.warning("call %s: 2xx without To tag ignored", self.call_id)
            self._finish(CallEnded(EndReason.FAILED, response.status, "2xx without To tag"))
            return
        if self.dialog is not None and self.dialog.id.remote_tag == tag:
            dialog = self.dialog
        elif self.state in (CallState.CALLING, CallState.RINGING) and (
            self.dialog is None or self.dialog.state is DialogState.EARLY
        ):
            # the first answer, perhaps from another fork than the one that rang: our dialog
            self._ua.forget_dialog(self)
            self.dialog = dialog = Dialog.as_uac(invite, response)
            self._ua.register_dialog(self)
        else:
            dialog = Dialog.as_uac(invite, response)  # a second fork answered as well
        dialog.accept_response(response)
        ack = dialog.ack_for(invite.cseq.seq)
        for name in ("Authorization", "Proxy-Authorization"):  # §13.2.2.4: the INVITE's credentials
            for value in invite.headers.get_lines(name):
                ack.headers.add(name, value)
        self._ua.send_ack(ack, dialog)  # every 2xx (RFC 6026)
        if dialog is not self.dialog or self.state is CallState.ENDED:
            self._bye_unwanted(dialog, tag)
            return
        if self.state is CallState.ESTABLISHED:
            return  # a retransmission: ACKed again above
        media = self._media_from_answer(response) if response.body else None
        if response.body and media is None:
            self._bye_unwanted(dialog, tag)
            self._finish(CallEnded(EndReason.FAILED, 488, "unusable SDP answer"))
            return
        self.state = CallState.ESTABLISHED
        self.answered.set()
        self._ensure_media_session()
        self._emit(Answered(media))

    def _bye_unwanted(self, dialog: Dialog, tag: str) -> None:
        """End a dialog a 2xx created that we do not want (late answer, extra fork): one BYE."""
        if tag in self._byed_tags:
            return
        self._byed_tags.add(tag)
        dialog.state = DialogState.CONFIRMED  # the 2xx confirmed it, even after our CANCEL
        self._ua.spawn(self._ua.send_in_dialog(dialog, dialog.new_request("BYE")), "bye-unwanted-2xx")

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
            self._on_ack(request)
            return
        assert key is not None
        if (
            self.state is CallState.ENDED
            or self.dialog is None
            or self.dialog.state is DialogState.TERMINATED
        ):
            self._respond(key, request, 481)  # crossed our BYE, or after the peer's
            return
        if method in ("INVITE", "UPDATE", "REFER") and self.dialog.state is DialogState.EARLY:
            # §14.2: no new offer while the first INVITE is unanswered
            response = make_response(request, 500 if method != "REFER" else 403)
            response.headers.add("Retry-After", "2")
            self._ua.endpoint.send_response(key, response)
            return
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

    def _on_ack(self, ack: SipRequest) -> None:
        awaiting_answer = (
            self.local_sdp is not None and self.remote_offer is None and not self._acked.is_set()
        )
        self._acked.set()
        if not awaiting_answer or self.state is not CallState.ESTABLISHED:
            return
        # late offer: we offered in the 200, the answer must be in this ACK (RFC 3264 §4)
        try:
            assert self.local_sdp is not None
            media = accept_answer(self.local_sdp, parse_sdp(ack.body))
        except (SdpError, NotAcceptable) as exc:
            log.warning("call %s: ACK without a usable SDP answer (%s): hanging up", self.call_id, exc)
            self._ua.spawn(self.hangup(), "bye-no-answer-in-ack")
            return
        self._set_media(media)
        self._ensure_media_session()
        self._report_hold_change()

    def _report_hold_change(self) -> None:
        if self.media is not None and self.media.peer_holds != self.remote_hold:
            self.remote_hold = self.media.peer_holds
            self._emit(HoldChanged(self.remote_hold, self.media))

    def _respond(self, key: TxKey, request: SipRequest, status: int, reason: str | None = None) -> None:
        self._ua.endpoint.send_response(key, make_response(request, status, reason))

    def _on_bye(self, request: SipRequest, key: TxKey) -> None:
        self._respond(key, request, 200)
        if self.inbound and not self._final_sent:
            self._send_final(487)  # BYE on an early dialog: the INVITE still needs its final (§15.1.2)
            self._finish(CallEnded(EndReason.CANCELLED, 487, "BYE before answer"))
            return
        self._finish(CallEnded(EndReason.REMOTE_HANGUP))

    def _on_reinvite(self, request: SipRequest, key: TxKey) -> None:
        if self._reinvite_pending:
            self._respond(key, request, 491)  # glare (RFC 3261 §14.2)
            return
        if request.body:
            body = self._answer_offer_in(request, key)
            if body is None:
                return
        else:
            # an offer-less re-INVITE: we offer in the 200, the answer comes in the ACK
            self.local_sdp = self._reoffer_sdp(Direction.SENDONLY if self.local_hold else Direction.SENDRECV)
            self.remote_offer = None
            self._acked.clear()
            body = self.local_sdp.to_bytes()
        self._send_session_response(request, key, body)
        if request.body:
            self._report_hold_change()

    def _on_update(self, request: SipRequest, key: TxKey) -> None:
        """UPDATE (RFC 3311): an offer gets an answer; without one (a session refresh) a bare 200."""
        if self._reinvite_pending:
            self._respond(key, request, 491)
            return
        body = b""
        if request.body:
            answered = self._answer_offer_in(request, key)
            if answered is None:
                return
            body = answered
        self._send_session_response(request, key, body)
        if request.body:
            self._report_hold_change()

    def _answer_offer_in(self, request: SipRequest, key: TxKey) -> bytes | None:
        """Our SDP answer to the offer in ``request``; None after answering 400/488 ourselves."""
        try:
            self.remote_offer = parse_sdp(request.body)
            return self._negotiate_answer().to_bytes()
        except SdpError as exc:
            self._respond(key, request, 400, f"Bad SDP: {exc}"[:100])
        except NotAcceptable as exc:
            self._respond(key, request, 488)
            log.info("call %s: %s not acceptable: %s", self.call_id, request.method, exc)
        return None

    def _send_session_response(self, request: SipRequest, key: TxKey, body: bytes) -> None:
        response = make_response(request, 200, body=body, content_type=SDP if body else None)
        response.headers.add("Contact", self._ua.contact_for(request))
        self._ua.add_capabilities(response.headers)
        self._ua.endpoint.send_response(key, response)

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
            self._emit(DtmfReceived(digit, duration, "info"))

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
        if not self.accept_transfers:
            # nobody would act on it: refuse rather than leave the phone's transfer hanging
            self._respond(key, request, 603, "Transfer Not Supported Here")
            return
        replaces = _replaces_from_uri(refer_to)
        self._respond(key, request, 202)
        self._refer_seq = request.cseq.seq
        self._emit(TransferRequested(refer_to, request.headers.get("Referred-By"), replaces))
        self.notify_transfer(100)

    def _on_notify(self, request: SipRequest, key: TxKey) -> None:
        event = (request.headers.get("Event") or "").split(";")[0].strip().lower()
        if event != "refer" or not self._refer_sent:
            self._respond(key, request, 481, "No Such Subscription")  # we subscribe to nothing else
            return
        self._respond(key, request, 200)
        match = _SIPFRAG_RE.match(request.body.decode("utf-8", "replace"))
        state = (request.headers.get("Subscription-State") or "").lower()
        if match:
            self._emit(TransferProgress(int(match.group(1)), state.startswith("terminated")))

    def _on_options(self, request: SipRequest, key: TxKey) -> None:
        response = make_response(request, 200)
        self._ua.add_capabilities(response.headers)
        self._ua.endpoint.send_response(key, response)

    def _on_cancel(self) -> None:
        """The caller gave up before we answered (the UA already sent 200 to CANCEL, 487 to INVITE)."""
        self._final_sent = True
        self._finish(CallEnded(EndReason.CANCELLED, 487))

    def _on_ack_timeout(self) -> None:
        """Our 2xx was never ACKed: end the dialog with BYE (RFC 3261 §13.3.1.4)."""
        if self.dialog is not None and self.state is CallState.ESTABLISHED:
            self._ua.spawn(self._ua.send_in_dialog(self.dialog, self.dialog.new_request("BYE")), "bye-no-ack")
        self._finish(CallEnded(EndReason.FAILED, 408, "no ACK for 200 OK"))

    def _on_dialog_lost(self, status: int) -> None:
        """A 481 (or a timeout of a re-INVITE/BYE) says the peer no longer knows this dialog."""
        self._finish(CallEnded(EndReason.FAILED, status, "dialog lost"))

    # --- in-dialog requests we send -----------------------------------------------------------

    async def hangup(self) -> None:
        """End the call whatever its state: BYE, CANCEL or a 480 to an unanswered INVITE."""
        if self.state is CallState.ENDED:
            return
        if self.inbound and self.state in (CallState.INCOMING, CallState.RINGING):
            await self.reject(480)
            return
        if not self.inbound and self.state in (CallState.CALLING, CallState.RINGING):
            self._ua.cancel_outbound(self)
            return
        dialog = self.dialog
        if dialog is None or dialog.state is DialogState.TERMINATED:
            self._finish(CallEnded(EndReason.LOCAL_HANGUP))
            return
        bye = dialog.new_request("BYE")
        self._finish(CallEnded(EndReason.LOCAL_HANGUP))
        if self.inbound and not self._acked.is_set():
            # §15: no BYE before the ACK of our 200 (or until it could no longer come)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._acked.wait(), self._ua.config.timers.timeout)
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
            offer = self._reoffer_sdp(direction)
            request = self.dialog.new_request("INVITE", body=offer.to_bytes(), content_type=SDP)
            response = await self._ua.send_in_dialog(self.dialog, request, invite=True)
        finally:
            self._reinvite_pending = False
        if not response.is_success:
            raise CallError(f"re-INVITE refused with {response.status}", status=response.status)
        try:
            media = accept_answer(offer, parse_sdp(response.body)) if response.body else None
        except (SdpError, NotAcceptable) as exc:
            # the session can no longer be described: end it rather than run on a guess
            await self.hangup()
            raise CallError(f"unusable SDP answer to re-INVITE: {exc}", status=488) from exc
        self.local_sdp = offer
        self.local_hold = hold
        if media is not None:
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
        self._refer_sent = True
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

    # --- media --------------------------------------------------------------------------------------

    def play(self, source: FrameSource | None) -> None:
        """Send audio from ``source`` (20 ms PCM16 frames, e.g. ``Player.next_frame``); None stops."""
        if self.media_session is None:
            raise CallError(f"call {self.call_id} has no media yet")
        self.media_session.play(source)

    def send_dtmf(self, digits: str) -> None:
        """Send DTMF as RFC 4733 events (the peer must have offered telephone-event)."""
        if self.media_session is None:
            raise CallError(f"call {self.call_id} has no media yet")
        self.media_session.send_dtmf(digits)

    def pull_frame(self) -> bytes | None:
        """The next received 20 ms of the peer's audio (PCM16), None for a gap."""
        if self.media_session is None:
            return None
        return self.media_session.pull_frame()

    def _ensure_media_session(self) -> None:
        """Start the leg's RTP once the call is up and media is agreed (answer, 2xx, or late-offer ACK)."""
        if (
            self.media_session is not None
            or self.media is None
            or self.state is not CallState.ESTABLISHED
            or self.rtp.socket is None
        ):
            return
        session = RtpSession(
            self.rtp.socket,
            self.media,
            ssrc=self._ua.ids.ssrc(),
            symmetric=self._ua.config.symmetric_rtp,
            on_dtmf=self._on_rtp_dtmf,
        )
        self.media_session = session
        self._ua.spawn(session.start(), f"rtp-{self.call_id}")
        self._start_rtcp(session)

    def _start_rtcp(self, session: RtpSession) -> None:
        if self.rtp.rtcp_socket is None:
            return
        self.rtcp_session = RtcpSession(
            self.rtp.rtcp_socket, session, cname=process_cname(self._ua.contact_host)
        )
        self._ua.spawn(self.rtcp_session.start(), f"rtcp-{self.call_id}")

    def _on_rtp_dtmf(self, digit: DtmfDigit) -> None:
        self._emit(DtmfReceived(digit.digit, digit.duration_ms, "rfc4733"))

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
        self._cancel_ring_guard()
        if self.rtcp_session is not None:
            self.rtcp_session.close()  # final report + BYE, before the reservation's sockets close
        if self.media_session is not None:
            self.media_session.close()
        if self.inbound and not self._final_sent:
            self._send_final(480)  # whatever ended it, the INVITE transaction must not live on
        self._emit(end, final=True)
        self.ended.set()
        self._ua.call_finished(self)

    def _cancel_ring_guard(self) -> None:
        if self._ring_guard is not None:
            self._ring_guard.cancel()
            self._ring_guard = None

    def _emit(self, event: CallEvent, *, final: bool = False) -> None:
        """Queue an event for the application; nothing after the end, drop-oldest when full."""
        if self.state is CallState.ENDED and not final:
            return
        if self.events.full():
            self.events.get_nowait()
            self.dropped_events += 1
        self.events.put_nowait(event)


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
