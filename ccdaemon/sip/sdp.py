"""SDP session descriptions (RFC 4566): parsing, validated values and serialization.

``parse_sdp`` turns an untrusted body into a frozen :class:`SessionDescription` or raises
:class:`SdpError` naming the line and the problem; it never raises anything else, whatever the bytes.
``SessionDescription.to_bytes`` writes the canonical form (CRLF, RFC 4566 line order), and
``parse_sdp(sd.to_bytes()) == sd`` holds for every valid value.

Parsing is strict where a mistake would change what we do with the media (numbers, m= and c= lines,
the rtpmap of a listed payload type) and lenient where real peers are sloppy: LF-only line ends,
blank lines, a missing t= line, lines of unknown type (ignored), session names that are not UTF-8
(read as Latin-1), and repeated rtpmap/fmtp/ptime/direction attributes (the first one counts, later
ones are kept verbatim in ``extra_attributes``).

Pure code: no I/O, no clock, no randomness.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from .errors import ParseError

__all__ = [
    "MAX_ATTRIBUTES",
    "MAX_FORMATS",
    "MAX_LINES",
    "MAX_MEDIA",
    "MAX_SDP_BYTES",
    "STATIC_PAYLOAD_TYPES",
    "Bandwidth",
    "Direction",
    "MediaDescription",
    "MediaFormat",
    "Origin",
    "SdpError",
    "SessionDescription",
    "Timing",
    "infer_address_type",
    "is_rtp_protocol",
    "parse_sdp",
    "revise",
    "static_format",
]

MAX_SDP_BYTES: Final = 64 * 1024
MAX_LINES: Final = 2048
MAX_MEDIA: Final = 64
MAX_FORMATS: Final = 128  # an RTP m= line cannot list more distinct payload types
MAX_ATTRIBUTES: Final = 256  # per section (session or one medium)

_ADDRESS_TYPES: Final = frozenset({"IP4", "IP6"})
_SESSION_EXTRA_ORDER: Final = "iuepzk"  # RFC 4566 §5 order of the lines kept verbatim
_MEDIA_EXTRA_ORDER: Final = "ik"
_MAX_DIGITS: Final = 40  # bounds int() on untrusted input; 64-bit ids need 20
_KNOWN_LINE_TYPES: Final = frozenset("vosiuepcbtrzkam")
_MEDIA_LINE_TYPES: Final = frozenset("icbkam")


class SdpError(ParseError):
    """An SDP body that is not well-formed (the request deserves a 400)."""


class Direction(enum.StrEnum):
    """Media direction attribute (RFC 4566 §6, RFC 3264 §5.1), from the point of view of its author."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @classmethod
    def from_flags(cls, *, sends: bool, receives: bool) -> Direction:
        if sends:
            return cls.SENDRECV if receives else cls.SENDONLY
        return cls.RECVONLY if receives else cls.INACTIVE

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    def reversed(self) -> Direction:
        """The same stream seen from the other end: our sendonly is the peer's recvonly."""
        return Direction.from_flags(sends=self.receives, receives=self.sends)

    def intersect(self, other: Direction) -> Direction:
        """What both allow: sending only if both say so, receiving only if both say so."""
        return Direction.from_flags(
            sends=self.sends and other.sends, receives=self.receives and other.receives
        )

    def answer(self, wish: Direction | None = None) -> Direction:
        """The direction an answerer states for this offered direction (RFC 3264 §6.1).

        ``wish`` is what the answerer would like (default sendrecv; sendonly to put the peer on hold);
        the result never allows more than the offer does: sendonly -> recvonly, recvonly -> sendonly,
        inactive -> inactive, sendrecv -> the wish.
        """
        return self.reversed().intersect(wish or Direction.SENDRECV)


def infer_address_type(address: str) -> str:
    """IP6 for an address containing a colon, IP4 otherwise (host names included)."""
    return "IP6" if ":" in address else "IP4"


def is_rtp_protocol(protocol: str) -> bool:
    """Whether an m= line with this protocol lists RTP payload types (RTP/AVP, UDP/TLS/RTP/SAVPF...)."""
    return "RTP/" in protocol.upper()


def _check_text(value: str, what: str) -> None:
    """Free text must stay on its line and be encodable, or to_bytes would write another SDP."""
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"{what} must not contain CR, LF or NUL: {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} is not encodable as UTF-8: {value!r}") from exc


def _check_token(value: str, what: str) -> None:
    """Tokens are separated by whitespace on the wire, so they must not be empty or contain any."""
    _check_text(value, what)
    if not value or any(ch.isspace() for ch in value):
        raise ValueError(f"{what} must be a non-empty token without whitespace: {value!r}")


def _connection_type(address: str | None, address_type: str, what: str) -> str:
    """Validate a connection address and return its address type ("" when there is no address)."""
    if address is None:
        if address_type:
            raise ValueError(f"{what}: address type {address_type!r} without an address")
        return ""
    _check_token(address, what)
    address_type = address_type or infer_address_type(address)
    if address_type not in _ADDRESS_TYPES:
        raise ValueError(f"{what}: unsupported address type {address_type!r}")
    return address_type


def _sorted_extra_lines(lines: tuple[str, ...], order: str, what: str) -> tuple[str, ...]:
    """Validate verbatim ``x=value`` lines and put them in RFC 4566 order (stable within a type)."""
    for line in lines:
        if len(line) < 2 or line[1] != "=" or line[0] not in order:
            raise ValueError(f"{what}: extra line {line!r} must be one of {', '.join(order)} '=' lines")
        _check_text(line, what)
    return tuple(sorted(lines, key=lambda line: order.index(line[0])))


@dataclass(frozen=True, slots=True)
class MediaFormat:
    """One payload type of an RTP m= line with its rtpmap and fmtp.

    ``encoding == ""`` (with ``clock_rate == 0``) means the SDP gave no rtpmap for a payload type that
    is not in the static table: it is kept so the answer can echo it, but nobody can use it.
    """

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"payload type {self.payload_type} is outside 0..127")
        if self.encoding:
            _check_token(self.encoding, "encoding name")
            if "/" in self.encoding:
                raise ValueError(f"encoding name must not contain '/': {self.encoding!r}")
            if self.clock_rate <= 0 or self.channels <= 0:
                raise ValueError(f"{self.encoding}: clock rate and channels must be positive")
        elif self.clock_rate != 0 or self.channels != 1:
            raise ValueError("a format without encoding name must have clock rate 0 and 1 channel")
        if self.fmtp is not None:
            _check_text(self.fmtp, "fmtp")
            if not self.fmtp or self.fmtp != self.fmtp.strip():
                raise ValueError(f"fmtp must be non-empty without surrounding whitespace: {self.fmtp!r}")

    @property
    def rtpmap(self) -> str | None:
        """The rtpmap value after the payload type, e.g. ``opus/48000/2``; None when unknown."""
        if not self.encoding:
            return None
        suffix = f"/{self.channels}" if self.channels != 1 else ""
        return f"{self.encoding}/{self.clock_rate}{suffix}"

    def same_codec(self, other: MediaFormat) -> bool:
        """Same encoding (names are case-insensitive, RFC 4855 §3), clock rate and channels."""
        return (
            bool(self.encoding)
            and self.encoding.lower() == other.encoding.lower()
            and self.clock_rate == other.clock_rate
            and self.channels == other.channels
        )

    def __str__(self) -> str:
        return self.rtpmap or f"PT{self.payload_type}"


def _static(pt: int, encoding: str, clock_rate: int, channels: int = 1) -> tuple[int, MediaFormat]:
    return pt, MediaFormat(pt, encoding, clock_rate, channels)


# RFC 3551 §6 table 4 and 5; these need no rtpmap.  G722 says 8000 for historical reasons (RFC 3551 §4.5.2).
STATIC_PAYLOAD_TYPES: Final[Mapping[int, MediaFormat]] = dict(
    [
        _static(0, "PCMU", 8000),
        _static(3, "GSM", 8000),
        _static(4, "G723", 8000),
        _static(5, "DVI4", 8000),
        _static(6, "DVI4", 16000),
        _static(7, "LPC", 8000),
        _static(8, "PCMA", 8000),
        _static(9, "G722", 8000),
        _static(10, "L16", 44100, 2),
        _static(11, "L16", 44100),
        _static(12, "QCELP", 8000),
        _static(13, "CN", 8000),
        _static(14, "MPA", 90000),
        _static(15, "G728", 8000),
        _static(16, "DVI4", 11025),
        _static(17, "DVI4", 22050),
        _static(18, "G729", 8000),
        _static(25, "CelB", 90000),
        _static(26, "JPEG", 90000),
        _static(28, "nv", 90000),
        _static(31, "H261", 90000),
        _static(32, "MPV", 90000),
        _static(33, "MP2T", 90000),
        _static(34, "H263", 90000),
    ]
)


def static_format(payload_type: int) -> MediaFormat | None:
    """The RFC 3551 format of a static payload type, or None."""
    return STATIC_PAYLOAD_TYPES.get(payload_type)


@dataclass(frozen=True, slots=True)
class Origin:
    """The o= line.  ``address_type`` is inferred from the address when not given."""

    username: str
    session_id: int
    session_version: int
    address: str
    address_type: str = ""

    def __post_init__(self) -> None:
        _check_token(self.username, "origin username")
        if self.session_id < 0 or self.session_version < 0:
            raise ValueError("origin session id and version must not be negative")
        object.__setattr__(self, "address_type", _connection_type(self.address, self.address_type, "origin"))

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} IN {self.address_type} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """A b= line, e.g. ``Bandwidth("AS", 64)`` (kbit/s)."""

    kind: str
    value: int

    def __post_init__(self) -> None:
        _check_token(self.kind, "bandwidth type")
        if ":" in self.kind or self.value < 0:
            raise ValueError(f"invalid bandwidth {self.kind!r}:{self.value}")

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


@dataclass(frozen=True, slots=True)
class Timing:
    """A t= line and the r= lines that belong to it (kept verbatim: SIP sessions use ``t=0 0``)."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.start < 0 or self.stop < 0:
            raise ValueError("timing values must not be negative")
        for repeat in self.repeats:
            _check_text(repeat, "r= line")


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaDescription:
    """One m= section.

    RTP media list their payload types in ``formats``; other protocols (``udptl``, ``TCP/MSRP``...) list
    opaque tokens in ``other_formats``.  ``direction``/``connection_address`` are None when not stated
    at media level: use :meth:`SessionDescription.effective_direction` and ``effective_connection``.
    ``extra_attributes`` holds what is not modelled; a direction, ptime, or rtpmap/fmtp of a listed payload
    type put there would be read back into the modelled fields.
    """

    media: str
    port: int
    protocol: str
    formats: tuple[MediaFormat, ...] = ()
    other_formats: tuple[str, ...] = ()
    port_count: int = 1
    connection_address: str | None = None
    connection_address_type: str = ""
    direction: Direction | None = None
    ptime: int | None = None
    bandwidths: tuple[Bandwidth, ...] = ()
    extra_lines: tuple[str, ...] = ()  # i= and k= lines, verbatim with their "x=" prefix
    extra_attributes: tuple[str, ...] = ()  # other a= values, verbatim, in order

    def __post_init__(self) -> None:
        _check_token(self.media, "media type")
        _check_token(self.protocol, "media protocol")
        if not 0 <= self.port <= 65535 or not 1 <= self.port_count <= 65535:
            raise ValueError(f"invalid port {self.port}/{self.port_count}")
        self._check_formats()
        address_type = _connection_type(self.connection_address, self.connection_address_type, "media")
        object.__setattr__(self, "connection_address_type", address_type)
        if self.ptime is not None and self.ptime <= 0:
            raise ValueError(f"ptime must be positive, not {self.ptime}")
        sorted_lines = _sorted_extra_lines(self.extra_lines, _MEDIA_EXTRA_ORDER, "media")
        object.__setattr__(self, "extra_lines", sorted_lines)
        for attribute in self.extra_attributes:
            _check_text(attribute, "attribute")
            if not attribute:
                raise ValueError("empty attribute")

    def _check_formats(self) -> None:
        if self.is_rtp:
            if self.other_formats:
                raise ValueError(f"{self.protocol} lists payload types, not {self.other_formats!r}")
            payload_types = [fmt.payload_type for fmt in self.formats]
            if len(set(payload_types)) != len(payload_types):
                raise ValueError(f"duplicate payload type in {payload_types}")
        elif self.formats:
            raise ValueError(f"{self.protocol} is not RTP: formats must go to other_formats")
        for token in self.other_formats:
            _check_token(token, "media format")

    @property
    def is_rtp(self) -> bool:
        return is_rtp_protocol(self.protocol)

    @property
    def rejected(self) -> bool:
        """Port 0 marks a stream that was refused or removed (RFC 3264 §6, §8.2)."""
        return self.port == 0

    def format_for(self, payload_type: int) -> MediaFormat | None:
        return next((fmt for fmt in self.formats if fmt.payload_type == payload_type), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionDescription:
    """A whole SDP body; session-level connection and direction apply to media not stating their own."""

    origin: Origin
    session_name: str = "-"
    connection_address: str | None = None
    connection_address_type: str = ""
    direction: Direction | None = None
    media: tuple[MediaDescription, ...] = ()
    timing: tuple[Timing, ...] = (Timing(),)
    bandwidths: tuple[Bandwidth, ...] = ()
    extra_lines: tuple[str, ...] = ()  # i=, u=, e=, p=, z=, k= lines, verbatim with their "x=" prefix
    extra_attributes: tuple[str, ...] = ()  # other session-level a= values, verbatim, in order

    def __post_init__(self) -> None:
        _check_text(self.session_name, "session name")
        address_type = _connection_type(self.connection_address, self.connection_address_type, "session")
        object.__setattr__(self, "connection_address_type", address_type)
        if not self.timing:
            raise ValueError("a session description needs at least one t= line")
        sorted_lines = _sorted_extra_lines(self.extra_lines, _SESSION_EXTRA_ORDER, "session")
        object.__setattr__(self, "extra_lines", sorted_lines)
        for attribute in self.extra_attributes:
            _check_text(attribute, "attribute")
            if not attribute:
                raise ValueError("empty attribute")
        for index, medium in enumerate(self.media):
            if not medium.rejected and self.effective_connection(medium) is None:
                raise ValueError(f"media {index + 1} ({medium.media}) has no connection address")

    def effective_direction(self, media: MediaDescription) -> Direction:
        """Media level overrides session level; nothing stated means sendrecv (RFC 3264 §5.1)."""
        return media.direction or self.direction or Direction.SENDRECV

    def effective_connection(self, media: MediaDescription) -> str | None:
        """The c= address that applies to ``media`` (media level overrides session level)."""
        return media.connection_address if media.connection_address is not None else self.connection_address

    def with_direction(self, direction: Direction) -> SessionDescription:
        """The same description with ``direction`` stated on every active m= line (version unchanged)."""
        media = tuple(m if m.rejected else dataclasses.replace(m, direction=direction) for m in self.media)
        return dataclasses.replace(self, direction=None, media=media)

    def next_version(self) -> SessionDescription:
        """The same description with the o= version incremented, as any changed SDP needs (RFC 3264 §8)."""
        origin = dataclasses.replace(self.origin, session_version=self.origin.session_version + 1)
        return dataclasses.replace(self, origin=origin)

    def to_bytes(self) -> bytes:
        """Canonical RFC 4566 form: CRLF line ends, lines in v o s i u e p c b t r z k a m order."""
        return ("\r\n".join(_session_lines(self)) + "\r\n").encode("utf-8")


def revise(previous: SessionDescription, candidate: SessionDescription) -> SessionDescription:
    """The description to send next in a session that last sent ``previous`` (RFC 3264 §8).

    The o= line keeps its username, session id and address; the version goes up by one when anything
    else changed, and an unchanged description is returned as it was (a session refresh must not bump it).
    """
    unchanged = dataclasses.replace(candidate, origin=previous.origin)
    if unchanged == previous:
        return previous
    return unchanged.next_version()


# --- serialization -----------------------------------------------------------------------------------


def _connection_line(address: str | None, address_type: str) -> list[str]:
    return [] if address is None else [f"c=IN {address_type} {address}"]


def _session_lines(sd: SessionDescription) -> list[str]:
    lines = ["v=0", f"o={sd.origin}", f"s={sd.session_name}"]
    lines += [line for line in sd.extra_lines if line[0] in "iuep"]
    lines += _connection_line(sd.connection_address, sd.connection_address_type)
    lines += [f"b={bandwidth}" for bandwidth in sd.bandwidths]
    for timing in sd.timing:
        lines.append(f"t={timing.start} {timing.stop}")
        lines += [f"r={repeat}" for repeat in timing.repeats]
    lines += [line for line in sd.extra_lines if line[0] in "zk"]
    if sd.direction is not None:
        lines.append(f"a={sd.direction}")
    lines += [f"a={attribute}" for attribute in sd.extra_attributes]
    for medium in sd.media:
        lines += _media_lines(medium)
    return lines


def _media_lines(md: MediaDescription) -> list[str]:
    port = f"{md.port}/{md.port_count}" if md.port_count != 1 else str(md.port)
    tokens = [str(fmt.payload_type) for fmt in md.formats] if md.is_rtp else list(md.other_formats)
    lines = [" ".join([f"m={md.media}", port, md.protocol, *tokens])]
    lines += [line for line in md.extra_lines if line[0] == "i"]
    lines += _connection_line(md.connection_address, md.connection_address_type)
    lines += [f"b={bandwidth}" for bandwidth in md.bandwidths]
    lines += [line for line in md.extra_lines if line[0] == "k"]
    for fmt in md.formats:
        if fmt.rtpmap is not None:
            lines.append(f"a=rtpmap:{fmt.payload_type} {fmt.rtpmap}")
        if fmt.fmtp is not None:
            lines.append(f"a=fmtp:{fmt.payload_type} {fmt.fmtp}")
    if md.ptime is not None:
        lines.append(f"a=ptime:{md.ptime}")
    if md.direction is not None:
        lines.append(f"a={md.direction}")
    lines += [f"a={attribute}" for attribute in md.extra_attributes]
    return lines


# --- parsing -----------------------------------------------------------------------------------------


def _shorten(text: str, limit: int = 60) -> str:
    """Quote untrusted text for an error message without letting it flood the log."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _parse_int(text: str, what: str) -> int:
    # int() alone would accept "+1", " 1", "1_0" and non-ASCII digits.
    if not text.isascii() or not text.isdigit() or len(text) > _MAX_DIGITS:
        raise ValueError(f"{what} is not a number: {_shorten(text)}")
    return int(text)


@dataclass(slots=True)
class _Section:
    """The lines of one section (session or one medium), collected before attributes are interpreted."""

    line: int
    media: str = ""
    port: int = 0
    port_count: int = 1
    protocol: str = ""
    payload_types: list[int] = field(default_factory=list)
    other_formats: list[str] = field(default_factory=list)
    connection: tuple[str, str] | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    extra_lines: list[str] = field(default_factory=list)
    attributes: list[tuple[int, str]] = field(default_factory=list)


@dataclass(slots=True)
class _Attributes:
    """The attributes of a section, sorted into what we model and what we keep verbatim."""

    direction: Direction | None = None
    ptime: int | None = None
    rtpmaps: dict[int, tuple[str, int, int]] = field(default_factory=dict)
    fmtps: dict[int, str] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)


class _Parser:
    """Feeds lines into sections; every ValueError raised here becomes an SdpError naming the line."""

    def __init__(self) -> None:
        self.session = _Section(line=1)
        self.media: list[_Section] = []
        self.origin: Origin | None = None
        self.session_name: str | None = None
        self.timing: list[Timing] = []
        self.handlers: dict[str, Callable[[str], None]] = {
            "v": self._on_version,
            "o": self._on_origin,
            "s": self._on_session_name,
            "c": self._on_connection,
            "b": self._on_bandwidth,
            "t": self._on_timing,
            "r": self._on_repeat,
            "a": self._on_attribute,
            "m": self._on_media,
        }
        self.line = 0  # the line being interpreted, 0 once no single line is to blame
        self.seen_version = False

    @property
    def section(self) -> _Section:
        return self.media[-1] if self.media else self.session

    def feed(self, line: int, kind: str, value: str) -> None:
        self.line = line
        if kind not in _KNOWN_LINE_TYPES:
            return  # an extension we do not know; parsers commonly skip these rather than fail the call
        if self.media and kind not in _MEDIA_LINE_TYPES:
            raise ValueError(f"'{kind}=' is not allowed after the first m= line")
        if kind in _SESSION_EXTRA_ORDER:
            self.section.extra_lines.append(f"{kind}={value}")
        else:
            self.handlers[kind](value)

    def _on_version(self, value: str) -> None:
        if self.seen_version:
            raise ValueError("duplicate v= line")
        if value != "0":
            raise ValueError(f"unsupported SDP version {_shorten(value)} (only v=0)")
        self.seen_version = True

    def _on_origin(self, value: str) -> None:
        if self.origin is not None:
            raise ValueError("duplicate o= line")
        fields = value.split()
        if len(fields) != 6:
            raise ValueError(f"o= needs 6 fields, got {len(fields)}: {_shorten(value)}")
        username, session_id, version, net_type, address_type, address = fields
        _check_net_type(net_type)
        self.origin = Origin(
            username,
            _parse_int(session_id, "o= session id"),
            _parse_int(version, "o= session version"),
            address,
            address_type.upper(),
        )

    def _on_session_name(self, value: str) -> None:
        if self.session_name is not None:
            raise ValueError("duplicate s= line")
        self.session_name = value

    def _on_connection(self, value: str) -> None:
        if self.section.connection is not None:
            raise ValueError("duplicate c= line in one section")
        fields = value.split()
        if len(fields) != 3:
            raise ValueError(f"c= needs 3 fields, got {len(fields)}: {_shorten(value)}")
        _check_net_type(fields[0])
        address_type, address = fields[1].upper(), fields[2]
        _connection_type(address, address_type, "c=")
        self.section.connection = (address, address_type)

    def _on_bandwidth(self, value: str) -> None:
        kind, colon, amount = value.partition(":")
        if not colon:
            raise ValueError(f"b= needs <type>:<kbit/s>: {_shorten(value)}")
        self.section.bandwidths.append(Bandwidth(kind, _parse_int(amount, "b= bandwidth")))

    def _on_timing(self, value: str) -> None:
        fields = value.split()
        if len(fields) != 2:
            raise ValueError(f"t= needs 2 fields: {_shorten(value)}")
        self.timing.append(Timing(_parse_int(fields[0], "t= start"), _parse_int(fields[1], "t= stop")))

    def _on_repeat(self, value: str) -> None:
        if not self.timing:
            raise ValueError("r= line before any t= line")
        last = self.timing[-1]
        self.timing[-1] = dataclasses.replace(last, repeats=(*last.repeats, value))

    def _on_attribute(self, value: str) -> None:
        if not value:
            raise ValueError("empty a= line")
        if len(self.section.attributes) >= MAX_ATTRIBUTES:
            raise ValueError(f"more than {MAX_ATTRIBUTES} a= lines in one section")
        self.section.attributes.append((self.line, value))

    def _on_media(self, value: str) -> None:
        if len(self.media) >= MAX_MEDIA:
            raise ValueError(f"more than {MAX_MEDIA} m= lines")
        fields = value.split()
        if len(fields) < 3:
            raise ValueError(f"m= needs <media> <port> <proto> <fmt>...: {_shorten(value)}")
        media, ports, protocol, formats = fields[0], fields[1], fields[2], fields[3:]
        if len(formats) > MAX_FORMATS:
            raise ValueError(f"more than {MAX_FORMATS} formats on one m= line")
        section = _Section(line=self.line, media=media, protocol=protocol)
        port, slash, count = ports.partition("/")
        section.port = _parse_int(port, "m= port")
        section.port_count = _parse_int(count, "m= port count") if slash else 1
        if section.port > 65535 or not 1 <= section.port_count <= 65535:
            raise ValueError(f"m= port out of range: {_shorten(ports)}")
        if is_rtp_protocol(protocol):
            section.payload_types = _parse_payload_types(formats)
        else:
            section.other_formats = formats
        self.media.append(section)

    def finish(self) -> SessionDescription:
        self.line = 0
        if self.origin is None:
            raise ValueError("missing o= line")
        if self.session_name is None:
            raise ValueError("missing s= line")
        session_attributes = _sort_attributes(self.session.attributes, None)
        address, address_type = self.session.connection or (None, "")
        media = tuple(self._finish_media(section, address is not None) for section in self.media)
        self.line = 0
        return SessionDescription(
            origin=self.origin,
            session_name=self.session_name,
            connection_address=address,
            connection_address_type=address_type,
            direction=session_attributes.direction,
            media=media,
            timing=tuple(self.timing) or (Timing(),),  # some embedded stacks omit t=
            bandwidths=tuple(self.session.bandwidths),
            extra_lines=tuple(self.session.extra_lines),
            extra_attributes=tuple(session_attributes.extra),
        )

    def _finish_media(self, section: _Section, session_has_connection: bool) -> MediaDescription:
        self.line = section.line
        if section.port != 0 and section.connection is None and not session_has_connection:
            raise ValueError("m= line without c= line and no session-level c= line")
        attributes = _sort_attributes(section.attributes, section.payload_types)
        address, address_type = section.connection or (None, "")
        return MediaDescription(
            media=section.media,
            port=section.port,
            protocol=section.protocol,
            formats=tuple(_media_format(pt, attributes) for pt in section.payload_types),
            other_formats=tuple(section.other_formats),
            port_count=section.port_count,
            connection_address=address,
            connection_address_type=address_type,
            direction=attributes.direction,
            ptime=attributes.ptime,
            bandwidths=tuple(section.bandwidths),
            extra_lines=tuple(section.extra_lines),
            extra_attributes=tuple(attributes.extra),
        )


def _check_net_type(net_type: str) -> None:
    if net_type.upper() != "IN":
        raise ValueError(f"unsupported network type {_shorten(net_type)} (only IN)")


def _parse_payload_types(formats: list[str]) -> list[int]:
    payload_types: list[int] = []
    for token in formats:
        pt = _parse_int(token, "payload type")
        if pt > 127:
            raise ValueError(f"payload type {pt} is outside 0..127")
        if pt in payload_types:
            raise ValueError(f"payload type {pt} listed twice on one m= line")
        payload_types.append(pt)
    return payload_types


def _sort_attributes(attributes: Iterable[tuple[int, str]], payload_types: list[int] | None) -> _Attributes:
    """Pick out what we model; ``payload_types`` is None at session level and for non-RTP media."""
    result = _Attributes()
    for line, value in attributes:
        try:
            if not _absorb_attribute(result, value, payload_types):
                result.extra.append(value)
        except ValueError as exc:
            raise SdpError(f"SDP line {line}: {exc}") from exc
    return result


def _absorb_attribute(result: _Attributes, value: str, payload_types: list[int] | None) -> bool:
    """Record an attribute we model; False means keep it verbatim (unknown, repeated or not ours)."""
    name, colon, rest = value.partition(":")
    name = name.lower()
    if not colon and name in _DIRECTIONS:
        if result.direction is not None:
            return False
        result.direction = Direction(name)
        return True
    if payload_types is None:
        return False
    if name == "ptime":
        if result.ptime is not None or not rest.isascii() or not rest.isdigit() or len(rest) > 6:
            return False
        result.ptime = int(rest) or None
        return result.ptime is not None
    if name == "rtpmap":
        return _absorb_rtpmap(result, rest, payload_types)
    if name == "fmtp":
        return _absorb_fmtp(result, rest, payload_types)
    return False


_DIRECTIONS: Final = frozenset(direction.value for direction in Direction)


def _listed_payload_type(text: str, payload_types: list[int]) -> int | None:
    """The payload type an rtpmap/fmtp refers to, if it is one the m= line lists."""
    if not text.isascii() or not text.isdigit() or len(text) > 3:
        return None
    pt = int(text)
    return pt if pt in payload_types else None


def _absorb_rtpmap(result: _Attributes, rest: str, payload_types: list[int]) -> bool:
    """Record a listed payload type's rtpmap; a malformed one is kept verbatim and ignored.

    Real offers carry odd rtpmaps for codecs nobody uses (RFC 4475's ``a=rtpmap:31 LPC``); failing
    the whole call for them would turn a harmless oddity into a lost caller.
    """
    fields = rest.split()
    pt = _listed_payload_type(fields[0], payload_types) if fields else None
    if pt is None or pt in result.rtpmaps or len(fields) != 2:
        return False
    parts = fields[1].split("/")
    if len(parts) not in (2, 3) or not parts[0]:
        return False
    if not all(p.isascii() and p.isdigit() and len(p) <= 9 for p in parts[1:]):
        return False
    clock_rate = int(parts[1])
    channels = int(parts[2]) if len(parts) == 3 else 1
    if clock_rate == 0 or channels == 0:
        return False
    result.rtpmaps[pt] = (parts[0], clock_rate, channels)
    return True


def _absorb_fmtp(result: _Attributes, rest: str, payload_types: list[int]) -> bool:
    fields = rest.split(None, 1)
    pt = _listed_payload_type(fields[0], payload_types) if fields else None
    if pt is None or pt in result.fmtps:
        return False
    params = fields[1].strip() if len(fields) == 2 else ""
    if params:
        result.fmtps[pt] = params
    return True  # an empty fmtp says nothing; dropping it loses nothing


def _media_format(pt: int, attributes: _Attributes) -> MediaFormat:
    fmtp = attributes.fmtps.get(pt)
    if pt in attributes.rtpmaps:
        encoding, clock_rate, channels = attributes.rtpmaps[pt]
        return MediaFormat(pt, encoding, clock_rate, channels, fmtp)
    known = static_format(pt)
    if known is not None:
        return dataclasses.replace(known, fmtp=fmtp)
    return MediaFormat(pt, "", 0, 1, fmtp)


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        if len(data) > MAX_SDP_BYTES:
            raise SdpError(f"SDP of {len(data)} characters exceeds the {MAX_SDP_BYTES} byte limit")
        return data
    if len(data) > MAX_SDP_BYTES:
        raise SdpError(f"SDP of {len(data)} bytes exceeds the {MAX_SDP_BYTES} byte limit")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Old phones write s= in their locale; every byte is valid Latin-1, and the rest is ASCII.
        return data.decode("latin-1")


def _split_lines(text: str) -> list[tuple[int, str, str]]:
    """(line number, type letter, value) for each non-blank line; CRLF and bare LF both end a line."""
    if "\0" in text:
        raise SdpError("SDP contains a NUL character")
    raw_lines = text.split("\n")
    if len(raw_lines) > MAX_LINES:
        raise SdpError(f"SDP has more than {MAX_LINES} lines")
    result = []
    for number, raw in enumerate(raw_lines, start=1):
        line = raw.removesuffix("\r")
        if not line:
            continue
        if "\r" in line:
            raise SdpError(f"SDP line {number}: stray CR inside the line")
        if len(line) < 2 or line[1] != "=" or not (line[0].isascii() and line[0].isalpha()):
            raise SdpError(f"SDP line {number}: expected <letter>=<value>, got {_shorten(line)}")
        result.append((number, line[0], line[2:]))
    return result


def parse_sdp(data: bytes | str) -> SessionDescription:
    """Parse an SDP body; raises :class:`SdpError` (and nothing else) when it is not usable."""
    lines = _split_lines(_decode(data))
    if not lines:
        raise SdpError("empty SDP")
    if lines[0][1] != "v":
        raise SdpError(f"SDP line {lines[0][0]}: SDP must start with v=0")
    parser = _Parser()
    for number, kind, value in lines:
        try:
            parser.feed(number, kind, value)
        except ValueError as exc:
            raise SdpError(f"SDP line {number}: {exc}") from exc
    try:
        return parser.finish()
    except ValueError as exc:
        # The value classes re-check their invariants; a violation found there is still the peer's fault.
        where = f"SDP line {parser.line}" if parser.line else "SDP"
        raise SdpError(f"{where}: {exc}") from exc
