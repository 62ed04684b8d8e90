"""RFC 3264 offer/answer for the one audio stream of a call.

The daemon bridges audio only, so of every offer it accepts exactly one audio m= line (the first one
it can serve) and refuses all others with port 0.  The result of a negotiation is a frozen
:class:`NegotiatedMedia` that tells the media engine where to send, with which codec and payload
types, and in which directions.

Decisions worth knowing:

* The answer names one codec (the first of the offerer's list that we support, RFC 3264 §6.1) plus
  telephone-event with the offerer's payload type, so the media engine never has to follow a codec
  switch in mid-stream.
* ``c=0.0.0.0`` (RFC 2543 hold, RFC 3264 §8.4) means the peer cannot receive: we read its direction
  as sendonly (or inactive), answer recvonly (or inactive), and ``peer_holds`` is true.
* Only RTP/AVP and RTP/AVPF are served; an SRTP-only audio stream is refused like an unknown codec.

Pure code: no I/O, no clock, no randomness; session ids and versions are arguments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from .errors import RemoteProtocolError
from .sdp import (
    STATIC_PAYLOAD_TYPES,
    Direction,
    MediaDescription,
    MediaFormat,
    Origin,
    SessionDescription,
    revise,
)

__all__ = [
    "DTMF_EVENTS",
    "MediaCapabilities",
    "NegotiatedMedia",
    "NotAcceptable",
    "accept_answer",
    "answer_offer",
    "make_offer",
    "make_reoffer",
]

DTMF_EVENTS: Final = "0-15"  # RFC 4733 events 0-9, *, #, A-D: all a desk phone can send
DEFAULT_PTIME: Final = 20  # RFC 3551 §4.5 default packetization for G.711
HOLD_ADDRESS: Final = "0.0.0.0"
_SUPPORTED_PROTOCOLS: Final = frozenset({"RTP/AVP", "RTP/AVPF"})
_TELEPHONE_EVENT: Final = "telephone-event"
_NOT_A_CODEC: Final = frozenset({_TELEPHONE_EVENT, "cn", ""})  # formats that carry no speech


class NotAcceptable(RemoteProtocolError):
    """The peer's SDP cannot be served (no common codec, no audio, audio refused); answer 488."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status_hint=488)


def _is_speech(fmt: MediaFormat) -> bool:
    return fmt.encoding.lower() not in _NOT_A_CODEC


def _audio_codec_table() -> dict[str, MediaFormat]:
    """Codec name (upper case) -> its static format; the first payload type wins for DVI4 and L16."""
    table: dict[str, MediaFormat] = {}
    for fmt in STATIC_PAYLOAD_TYPES.values():
        if fmt.clock_rate < 90000 and _is_speech(fmt):  # the static video formats all run at 90 kHz
            table.setdefault(fmt.encoding.upper(), fmt)
    return table


_AUDIO_CODECS: Final = _audio_codec_table()


@dataclass(frozen=True, slots=True)
class MediaCapabilities:
    """What our side of a call can do: where it receives RTP and which codecs, in preference order.

    ``codecs`` are static RTP audio encodings (RFC 3551) by name, e.g. ``("PCMA", "PCMU")``.
    """

    address: str
    port: int
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    telephone_event: bool = True
    telephone_event_pt: int = 101
    ptime: int = DEFAULT_PTIME

    def __post_init__(self) -> None:
        if not self.codecs:
            raise ValueError("at least one codec is needed")
        unknown = [name for name in self.codecs if name.upper() not in _AUDIO_CODECS]
        if unknown:
            raise ValueError(f"unsupported codecs {unknown}; known: {sorted(_AUDIO_CODECS)}")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"RTP port {self.port} is outside 1..65535")
        if not 96 <= self.telephone_event_pt <= 127:
            raise ValueError(
                f"telephone-event payload type {self.telephone_event_pt} is not dynamic (96..127)"
            )
        if self.ptime <= 0:
            raise ValueError(f"ptime must be positive, not {self.ptime}")

    @property
    def formats(self) -> tuple[MediaFormat, ...]:
        """Our codecs as static formats, in our preference order."""
        return tuple(_AUDIO_CODECS[name.upper()] for name in self.codecs)


@dataclass(frozen=True, slots=True, kw_only=True)
class NegotiatedMedia:
    """The outcome of one offer/answer exchange for the audio stream."""

    remote_address: str
    """Where to send RTP (``0.0.0.0`` while an RFC 2543 hold is in force)."""
    remote_port: int
    codec: MediaFormat
    """The speech codec, with the payload type to use on the wire."""
    dtmf_payload_type: int | None
    """telephone-event (RFC 4733) payload type, or None when DTMF must not be sent as RTP events."""
    local_direction: Direction
    """What we may do: send if it ``sends``, expect media if it ``receives``."""
    remote_direction: Direction
    """What the peer stated (after reading ``c=0.0.0.0`` as 'cannot receive')."""
    ptime: int
    """Packetization (ms) for what we send: the peer's a=ptime when stated, else ours."""
    media_index: int = 0
    """Position of the audio m= line; a later offer in the dialog keeps it there (RFC 3264 §8)."""

    @property
    def peer_holds(self) -> bool:
        """The peer put us on hold: it does not want our media (sendonly or inactive, RFC 6337 §5.3)."""
        return not self.remote_direction.receives

    @property
    def may_send(self) -> bool:
        return self.local_direction.sends

    @property
    def may_receive(self) -> bool:
        return self.local_direction.receives


def _telephone_event(payload_type: int, clock_rate: int = 8000) -> MediaFormat:
    return MediaFormat(payload_type, _TELEPHONE_EVENT, clock_rate, fmtp=DTMF_EVENTS)


def _origin(caps: MediaCapabilities, session_id: int, version: int) -> Origin:
    return Origin("-", session_id, version, caps.address)


def make_offer(
    caps: MediaCapabilities, *, session_id: int, version: int, direction: Direction = Direction.SENDRECV
) -> SessionDescription:
    """Our offer for an outbound call: one audio stream with our codecs and telephone-event."""
    formats = caps.formats
    if caps.telephone_event:
        formats += (_telephone_event(caps.telephone_event_pt),)
    audio = MediaDescription(
        media="audio",
        port=caps.port,
        protocol="RTP/AVP",
        formats=formats,
        direction=direction,
        ptime=caps.ptime,
    )
    return SessionDescription(
        origin=_origin(caps, session_id, version), connection_address=caps.address, media=(audio,)
    )


def make_reoffer(previous: SessionDescription, *, direction: Direction) -> SessionDescription:
    """The offer of a re-INVITE that changes the direction of our streams (hold / resume).

    ``previous`` is the SDP we last sent in this dialog (offer or answer), so the m= lines keep their
    number and order (RFC 3264 §8); the o= version goes up only if the description really changes.
    """
    return revise(previous, previous.with_direction(direction))


# --- answering an offer ------------------------------------------------------------------------------


def _peer_direction(sd: SessionDescription, media: MediaDescription) -> Direction:
    """The direction the author of ``sd`` states, with ``c=0.0.0.0`` read as 'cannot receive'."""
    direction = sd.effective_direction(media)
    if sd.effective_connection(media) == HOLD_ADDRESS:
        return Direction.from_flags(sends=direction.sends, receives=False)
    return direction


def _is_dtmf_for(fmt: MediaFormat, codec: MediaFormat) -> bool:
    """telephone-event must run at the codec's clock rate (RFC 4733 §2.3.1)."""
    return fmt.encoding.lower() == _TELEPHONE_EVENT and fmt.clock_rate == codec.clock_rate


def _serves(media: MediaDescription) -> bool:
    """An active audio stream over a transport we can serve."""
    return (
        media.media.lower() == "audio"
        and not media.rejected
        and media.protocol.upper() in _SUPPORTED_PROTOCOLS
    )


def _pick_codec(media: MediaDescription, caps: MediaCapabilities) -> MediaFormat | None:
    """The first offered format we support; the offerer's order decides (RFC 3264 §6.1)."""
    ours = caps.formats
    return next((fmt for fmt in media.formats if any(fmt.same_codec(codec) for codec in ours)), None)


def _describe(sd: SessionDescription, limit: int = 300) -> str:
    """A short account of the streams in ``sd`` for the 488's log line (capped: it is the peer's text)."""
    parts = []
    for media in sd.media:
        formats = ", ".join(str(fmt) for fmt in media.formats) or " ".join(media.other_formats)
        state = " (port 0)" if media.rejected else ""
        parts.append(f"{media.media} {media.protocol}{state}: {formats or 'no formats'}")
    text = "; ".join(parts) or "no m= lines"
    return text if len(text) <= limit else text[:limit] + "..."


def _choose_stream(offer: SessionDescription, caps: MediaCapabilities) -> tuple[int, MediaFormat]:
    """Index of the audio m= line we accept and the codec to use, or NotAcceptable."""
    audio = [(index, media) for index, media in enumerate(offer.media) if _serves(media)]
    for index, media in audio:
        codec = _pick_codec(media, caps)
        if codec is not None:
            return index, codec
    if not audio:
        raise NotAcceptable(f"offer has no active RTP/AVP audio stream ({_describe(offer)})")
    raise NotAcceptable(
        f"no common audio codec: offered {_describe(offer)}; we support {', '.join(caps.codecs)}"
    )


def _rejected(media: MediaDescription) -> MediaDescription:
    """The answer to a stream we refuse: port 0 and the offered formats (RFC 3264 §6)."""
    formats = tuple(dataclasses.replace(fmt, fmtp=None) for fmt in media.formats)
    return MediaDescription(
        media=media.media, port=0, protocol=media.protocol, formats=formats, other_formats=media.other_formats
    )


def _send_ptime(media: MediaDescription, fallback: int) -> int:
    """The peer's a=ptime is what it wants to receive (RFC 4566 §6); a=maxptime caps our own choice."""
    if media.ptime is not None:
        return media.ptime
    maxptime = _int_attribute(media, "maxptime")
    return min(fallback, maxptime) if maxptime else fallback


def _int_attribute(media: MediaDescription, name: str) -> int | None:
    for attribute in media.extra_attributes:
        key, _, value = attribute.partition(":")
        if key.lower() == name and value.isascii() and value.isdigit() and len(value) <= 6:
            return int(value)
    return None


def _remote_address(sd: SessionDescription, media: MediaDescription) -> str:
    address = sd.effective_connection(media)
    if address is None:  # parse_sdp refuses this, but a hand-built description may not
        raise NotAcceptable(f"{media.media} stream on port {media.port} has no connection address")
    return address


def answer_offer(
    offer: SessionDescription,
    caps: MediaCapabilities,
    *,
    session_id: int,
    version: int,
    direction_wish: Direction = Direction.SENDRECV,
) -> tuple[SessionDescription, NegotiatedMedia]:
    """Answer a peer's offer: accept the first audio stream we can serve, refuse every other stream.

    ``direction_wish`` is what we would like (SENDONLY keeps the peer on hold during a re-INVITE);
    the answered direction never allows more than the offer (see :meth:`Direction.answer`).
    Raises :class:`NotAcceptable` (488) when no audio stream can be served.
    """
    index, codec = _choose_stream(offer, caps)
    offered = offer.media[index]
    dtmf = next((fmt for fmt in offered.formats if _is_dtmf_for(fmt, codec)), None)
    if not caps.telephone_event:
        dtmf = None
    remote_direction = _peer_direction(offer, offered)
    local_direction = remote_direction.answer(direction_wish)
    formats = (codec,) if dtmf is None else (codec, _telephone_event(dtmf.payload_type, dtmf.clock_rate))
    accepted = MediaDescription(
        media=offered.media,
        port=caps.port,
        protocol=offered.protocol,
        formats=formats,
        direction=local_direction,
        ptime=caps.ptime,
    )
    media = tuple(accepted if i == index else _rejected(m) for i, m in enumerate(offer.media))
    answer = SessionDescription(
        origin=_origin(caps, session_id, version), connection_address=caps.address, media=media
    )
    negotiated = NegotiatedMedia(
        remote_address=_remote_address(offer, offered),
        remote_port=offered.port,
        codec=codec,
        dtmf_payload_type=None if dtmf is None else dtmf.payload_type,
        local_direction=local_direction,
        remote_direction=remote_direction,
        ptime=_send_ptime(offered, caps.ptime),
        media_index=index,
    )
    return answer, negotiated


# --- accepting an answer to our offer ----------------------------------------------------------------


def _our_audio(offer: SessionDescription) -> Iterator[tuple[int, MediaDescription]]:
    return ((index, media) for index, media in enumerate(offer.media) if _serves(media))


def _matching(answered: MediaFormat, offered: tuple[MediaFormat, ...]) -> bool:
    return any(answered.same_codec(fmt) for fmt in offered)


def accept_answer(offer: SessionDescription, answer: SessionDescription) -> NegotiatedMedia:
    """Check the peer's answer to our ``offer`` and say what was agreed.

    Formats are matched by name and clock rate, and the answer's payload type numbers are the ones to
    send with (RFC 3264 §5.1: numbers in an SDP are what its author receives).  Extra formats the
    answerer adds are ignored; NotAcceptable (488) when it refused the audio stream, changed the
    m= lines, or kept none of the codecs we offered.
    """
    ours = next(_our_audio(offer), None)
    if ours is None:
        raise ValueError("our offer has no active audio stream")  # our own mistake, not the peer's
    index, offered = ours
    if len(answer.media) != len(offer.media):
        raise NotAcceptable(f"answer has {len(answer.media)} m= lines, our offer had {len(offer.media)}")
    answered = answer.media[index]
    if (
        answered.media.lower() != offered.media.lower()
        or answered.protocol.upper() != offered.protocol.upper()
    ):
        raise NotAcceptable(f"answer turned {offered.media} {offered.protocol} into {_describe(answer)}")
    if answered.rejected:
        raise NotAcceptable("peer refused the audio stream (port 0)")
    offered_codecs = tuple(fmt for fmt in offered.formats if _is_speech(fmt))
    codec = next((f for f in answered.formats if _is_speech(f) and _matching(f, offered_codecs)), None)
    if codec is None:
        offered_names = ", ".join(str(fmt) for fmt in offered_codecs)
        raise NotAcceptable(f"answer keeps none of our codecs ({offered_names}): {_describe(answer)}")
    we_offered_dtmf = any(_is_dtmf_for(fmt, codec) for fmt in offered.formats)
    dtmf = next((f for f in answered.formats if _is_dtmf_for(f, codec)), None) if we_offered_dtmf else None
    remote_direction = _peer_direction(answer, answered)
    return NegotiatedMedia(
        remote_address=_remote_address(answer, answered),
        remote_port=answered.port,
        codec=codec,
        dtmf_payload_type=None if dtmf is None else dtmf.payload_type,
        local_direction=offer.effective_direction(offered).intersect(remote_direction.reversed()),
        remote_direction=remote_direction,
        ptime=_send_ptime(answered, offered.ptime or DEFAULT_PTIME),
        media_index=index,
    )
