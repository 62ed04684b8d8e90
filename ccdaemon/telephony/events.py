"""What a :class:`~ccdaemon.telephony.call.Call` reports to the application."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..sip.offer_answer import NegotiatedMedia
from ..sip.uri import NameAddr


class CallState(enum.Enum):
    INCOMING = "incoming"  # inbound INVITE received, not answered yet
    CALLING = "calling"  # outbound INVITE sent, nothing heard back
    RINGING = "ringing"  # outbound: 180/183 received; inbound: 180 sent
    ESTABLISHED = "established"
    ENDED = "ended"


class EndReason(enum.Enum):
    LOCAL_HANGUP = "local_hangup"
    REMOTE_HANGUP = "remote_hangup"
    CANCELLED = "cancelled"  # the caller gave up while it was ringing
    REJECTED = "rejected"  # we or the callee answered with a final error
    NO_ANSWER = "no_answer"  # outbound ring timeout: we sent CANCEL
    FAILED = "failed"  # transaction timeout, missing ACK, transport failure
    REPLACED = "replaced"  # another INVITE took this dialog over (RFC 3891)


@dataclass(frozen=True, slots=True)
class CallEnded:
    reason: EndReason
    status: int | None = None  # the SIP status behind the end, when there is one
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Ringing:
    status: int  # 180 or 183
    early_media: NegotiatedMedia | None = None


@dataclass(frozen=True, slots=True)
class Answered:
    media: NegotiatedMedia | None


@dataclass(frozen=True, slots=True)
class HoldChanged:
    """The peer put us on hold (or took us off), by a re-INVITE with sendonly/inactive."""

    remote_hold: bool
    media: NegotiatedMedia


@dataclass(frozen=True, slots=True)
class MediaChanged:
    media: NegotiatedMedia


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    digit: str
    duration_ms: int | None = None
    via: str = "info"


@dataclass(frozen=True, slots=True)
class TransferRequested:
    """The peer sent REFER (a desk phone's transfer button); already answered with 202.

    ``replaces`` carries the dialog named by ``Refer-To: ...?Replaces=`` (attended transfer).
    The application reports progress with ``Call.notify_transfer(status)``.
    """

    refer_to: NameAddr
    referred_by: str | None
    replaces: ReplacesTarget | None


@dataclass(frozen=True, slots=True)
class TransferProgress:
    """A NOTIFY for a REFER we sent: the sipfrag status line of the new call."""

    status: int
    final: bool


@dataclass(frozen=True, slots=True)
class ReplacesTarget:
    call_id: str
    to_tag: str
    from_tag: str
    early_only: bool = False


CallEvent = (
    CallEnded
    | Ringing
    | Answered
    | HoldChanged
    | MediaChanged
    | DtmfReceived
    | TransferRequested
    | TransferProgress
)
