"""Dialogs (RFC 3261 §12): the state two user agents share for the life of a call.

Pure: built from an INVITE and the response that created the dialog, it stamps in-dialog
requests with the right Call-ID, tags, CSeq, Request-URI and Route set, and checks the remote
CSeq of what arrives.  Retransmitting a 2xx until its ACK is done by the transaction layer
(RFC 6026 Accepted state), so a dialog has no timers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import LocalProtocolError, RemoteProtocolError
from .headers import CSeq, Headers
from .message import SipMessage, SipRequest, SipResponse
from .uri import NameAddr, SipUri, Uri


@dataclass(frozen=True, slots=True)
class DialogId:
    call_id: str
    local_tag: str
    remote_tag: str


class DialogState(enum.Enum):
    EARLY = 1
    CONFIRMED = 2
    TERMINATED = 3


# Methods that refresh the remote target when they carry a Contact (RFC 3261 §12.2; RFC 3311).
_TARGET_REFRESH = frozenset({"INVITE", "UPDATE"})


class Dialog:
    """One dialog, created from either side of a dialog-creating INVITE."""

    def __init__(
        self,
        *,
        dialog_id: DialogId,
        state: DialogState,
        local_party: NameAddr,
        remote_party: NameAddr,
        local_seq: int,
        remote_seq: int | None,
        remote_target: Uri,
        route_set: list[NameAddr],
        local_contact: str,
        is_uac: bool,
    ) -> None:
        self.id = dialog_id
        self.state = state
        self.local_party = local_party  # our From (UAC) / To (UAS), with our tag
        self.remote_party = remote_party
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_contact = local_contact
        self.is_uac = is_uac

    def __repr__(self) -> str:
        return f"<Dialog {self.id.call_id} {self.state.name} {'uac' if self.is_uac else 'uas'}>"

    # --- creation ------------------------------------------------------------------------------

    @classmethod
    def as_uas(cls, invite: SipRequest, response: SipResponse) -> Dialog:
        """The dialog we hold after sending ``response`` (1xx with tag, or 2xx) to ``invite``."""
        local = response.to
        if local.tag is None:
            raise LocalProtocolError("a dialog-creating response needs a To tag")
        remote = invite.from_
        contacts = invite.contacts
        # RFC 2543 INVITEs may lack Contact: the From URI is then the remote target
        target: Uri = contacts[0].uri if contacts else remote.uri
        return cls(
            dialog_id=DialogId(invite.call_id, local.tag, remote.tag or ""),
            state=DialogState.CONFIRMED if response.is_success else DialogState.EARLY,
            local_party=local,
            remote_party=remote,
            local_seq=0,
            remote_seq=invite.cseq.seq,
            remote_target=target,
            route_set=list(invite.record_routes),  # UAS keeps Record-Route order
            local_contact=response.headers.get("Contact") or "",
            is_uac=False,
        )

    @classmethod
    def as_uac(cls, invite: SipRequest, response: SipResponse) -> Dialog:
        """The dialog created by a 1xx-with-tag or 2xx ``response`` to our ``invite``."""
        remote = response.to
        if remote.tag is None:
            raise RemoteProtocolError("dialog-creating response without To tag")
        local = invite.from_
        contacts = response.contacts
        target: Uri = contacts[0].uri if contacts else invite.uri
        return cls(
            dialog_id=DialogId(invite.call_id, local.tag or "", remote.tag),
            state=DialogState.CONFIRMED if response.is_success else DialogState.EARLY,
            local_party=local,
            remote_party=remote,
            local_seq=invite.cseq.seq,
            remote_seq=None,
            remote_target=target,
            route_set=list(reversed(response.record_routes)),  # UAC reverses Record-Route
            local_contact=invite.headers.get("Contact") or "",
            is_uac=True,
        )

    # --- requests we send ------------------------------------------------------------------------

    def new_request(
        self,
        method: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        extra_headers: list[tuple[str, str]] | None = None,
    ) -> SipRequest:
        """An in-dialog request without Via (the transport layer adds Via and branch)."""
        if self.state is DialogState.TERMINATED:
            raise LocalProtocolError(f"cannot send {method} in a terminated dialog")
        if method in ("ACK", "CANCEL"):
            raise LocalProtocolError(f"{method} is not a new in-dialog request; use ack_for()")
        self.local_seq += 1
        return self._build(method, CSeq(self.local_seq, method), body, content_type, extra_headers)

    def ack_for(self, invite_seq: int, *, body: bytes = b"", content_type: str | None = None) -> SipRequest:
        """The ACK for a 2xx to the INVITE with CSeq number ``invite_seq`` (RFC 3261 §13.2.2.4)."""
        return self._build("ACK", CSeq(invite_seq, "ACK"), body, content_type, None)

    def _build(
        self,
        method: str,
        cseq: CSeq,
        body: bytes,
        content_type: str | None,
        extra_headers: list[tuple[str, str]] | None,
    ) -> SipRequest:
        headers = Headers()
        request_uri: Uri = self.remote_target
        routes = [str(r) for r in self.route_set]
        if (
            self.route_set
            and isinstance(self.route_set[0].uri, SipUri)
            and self.route_set[0].uri.param("lr") is None
        ):
            # strict router (RFC 2543): it goes in the Request-URI, the target becomes the last Route
            request_uri = self.route_set[0].uri
            routes = [str(r) for r in self.route_set[1:]] + [f"<{self.remote_target}>"]
        for route in routes:
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        headers.add("From", str(self.local_party))
        headers.add("To", str(self.remote_party))
        headers.add("Call-ID", self.id.call_id)
        headers.add("CSeq", str(cseq))
        if method not in ("ACK", "BYE", "CANCEL") and self.local_contact:
            headers.add("Contact", self.local_contact)
        for name, value in extra_headers or []:
            headers.add(name, value)
        if content_type is not None:
            headers.add("Content-Type", content_type)
        return SipRequest(method, request_uri, headers, body)

    def next_hop(self) -> Uri:
        """The URI whose host and port the request is sent to (first Route, else the target)."""
        if self.route_set:
            return self.route_set[0].uri
        return self.remote_target

    # --- what arrives -----------------------------------------------------------------------------

    def accept_request(self, request: SipRequest) -> None:
        """Check and record an in-dialog request (RFC 3261 §12.2.2).

        Raises RemoteProtocolError(500) for a CSeq lower than one already seen.
        """
        if request.method in ("ACK", "CANCEL"):
            return
        seq = request.cseq.seq
        if self.remote_seq is not None and seq <= self.remote_seq:
            raise RemoteProtocolError(f"CSeq {seq} not above {self.remote_seq}", status_hint=500)
        self.remote_seq = seq
        if request.method in _TARGET_REFRESH:
            self._refresh_target(request)
        if request.method == "BYE":
            self.state = DialogState.TERMINATED

    def accept_response(self, response: SipResponse) -> None:
        """Record a response to a request we sent in this dialog."""
        method = response.cseq.method
        if method == "INVITE" and response.is_success:
            if self.state is DialogState.EARLY:
                self.state = DialogState.CONFIRMED
                if self.is_uac:
                    # the 2xx's Record-Route is authoritative for the route set (§12.1.2)
                    self.route_set = list(reversed(response.record_routes))
            self._refresh_target(response)
        elif method == "INVITE" and response.status >= 300 and self.state is DialogState.EARLY:
            self.state = DialogState.TERMINATED
        elif method == "UPDATE" and response.is_success:
            self._refresh_target(response)
        elif method == "BYE" or response.status in (481, 408):
            # 481/408 to an in-dialog request end the dialog (RFC 5057 summarised)
            self.state = DialogState.TERMINATED

    def terminate(self) -> None:
        self.state = DialogState.TERMINATED

    def _refresh_target(self, message: SipMessage) -> None:
        contacts = message.contacts
        if contacts:
            self.remote_target = contacts[0].uri


def dialog_id_of_request(request: SipRequest) -> DialogId | None:
    """The id a received in-dialog request belongs to, from our side (None without To tag)."""
    to_tag = request.to.tag
    if not to_tag:
        return None
    return DialogId(request.call_id, to_tag, request.from_.tag or "")


def dialog_id_of_response(response: SipResponse) -> DialogId | None:
    """The id a response to our request belongs to, from our side."""
    to_tag = response.to.tag
    if not to_tag:
        return None
    return DialogId(response.call_id, response.from_.tag or "", to_tag)


class DialogTable:
    """Dialogs by id; bounded by the caller (one per call leg)."""

    def __init__(self) -> None:
        self._dialogs: dict[DialogId, Dialog] = {}

    def __len__(self) -> int:
        return len(self._dialogs)

    def add(self, dialog: Dialog) -> None:
        self._dialogs[dialog.id] = dialog

    def get(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.get(dialog_id)

    def discard(self, dialog_id: DialogId) -> None:
        self._dialogs.pop(dialog_id, None)

    def match(self, message: SipMessage) -> Dialog | None:
        dialog_id = (
            dialog_id_of_request(message)
            if isinstance(message, SipRequest)
            else dialog_id_of_response(message)
        )
        return None if dialog_id is None else self._dialogs.get(dialog_id)

    def by_call_id(self, call_id: str) -> list[Dialog]:
        return [d for d in self._dialogs.values() if d.id.call_id == call_id]
