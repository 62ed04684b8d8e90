"""SIP messages: parsing, validation of the headers every layer relies on, and serialization.

``parse_message`` turns one datagram (or one framed stream message) into a :class:`SipRequest`
or :class:`SipResponse`, or raises :class:`ParseError` with a specific reason.  It never raises
anything else, whatever the bytes: the transport turns the error into a 400 or a drop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TypeAlias

from .errors import LocalProtocolError, MessageTooLarge, ParseError
from .grammar import WSP, excerpt, is_digits, is_token, parse_uint
from .headers import LIST_HEADERS, SINGLE_HEADERS, CSeq, Headers, Via, canonical_name, parse_cseq, parse_via
from .uri import NameAddr, SipUri, Uri, parse_name_addr, parse_name_addr_list, parse_uri

SIP_VERSION = "SIP/2.0"


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on untrusted input; anything larger is refused before it costs memory."""

    max_message: int = 65_535
    max_header_line: int = 8_192
    max_headers: int = 256
    max_body: int = 65_535


DEFAULT_LIMITS = Limits()

_REASONS: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    603: "Decline",
}


# Methods an RFC defines: a mismatch or a refusal names these differently from unknown ones.
KNOWN_METHODS: frozenset[str] = frozenset(
    {
        "INVITE",
        "ACK",
        "CANCEL",
        "BYE",
        "OPTIONS",
        "REGISTER",
        "PRACK",
        "SUBSCRIBE",
        "NOTIFY",
        "PUBLISH",
        "INFO",
        "REFER",
        "MESSAGE",
        "UPDATE",
    }
)


def reason_phrase(status: int) -> str:
    return _REASONS.get(status, "Unknown")


class _MessageBase:
    """Accessors shared by requests and responses; each parses its header on demand.

    :func:`parse_message` validates every header these accessors read, so on a parsed message
    they never raise; on a hand-built message they raise :class:`ParseError` for bad values.
    """

    headers: Headers
    body: bytes

    @property
    def call_id(self) -> str:
        value = self.headers.get("Call-ID")
        if value is None:
            raise ParseError("missing Call-ID")
        return value.strip(WSP)

    @property
    def cseq(self) -> CSeq:
        value = self.headers.get("CSeq")
        if value is None:
            raise ParseError("missing CSeq")
        return parse_cseq(value)

    @property
    def from_(self) -> NameAddr:
        return _address(self.headers, "From")

    @property
    def to(self) -> NameAddr:
        return _address(self.headers, "To")

    @property
    def vias(self) -> list[Via]:
        return [parse_via(v) for v in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via:
        values = self.headers.get_all("Via")
        if not values:
            raise ParseError("missing Via")
        return parse_via(values[0])

    @property
    def contacts(self) -> list[NameAddr]:
        return [a for line in self.headers.get_lines("Contact") for a in parse_name_addr_list(line)]

    @property
    def record_routes(self) -> list[NameAddr]:
        return [a for line in self.headers.get_lines("Record-Route") for a in parse_name_addr_list(line)]

    @property
    def routes(self) -> list[NameAddr]:
        return [a for line in self.headers.get_lines("Route") for a in parse_name_addr_list(line)]

    @property
    def content_type(self) -> str | None:
        """The media type, lower-cased, without parameters (``application/sdp``)."""
        value = self.headers.get("Content-Type")
        if value is None:
            return None
        return value.split(";", 1)[0].strip(WSP).lower()

    @property
    def max_forwards(self) -> int | None:
        value = self.headers.get("Max-Forwards")
        if value is None:
            return None
        return parse_uint(value, "Max-Forwards", maximum=255)

    @property
    def expires(self) -> int | None:
        value = self.headers.get("Expires")
        if value is None:
            return None
        return _parse_delta_seconds(value, "Expires")

    def header_tokens(self, name: str) -> list[str]:
        """Values of a token-list header (Require, Supported, Allow) lower-cased."""
        return [v.lower() for v in self.headers.get_all(name)]


def _address(headers: Headers, name: str) -> NameAddr:
    value = headers.get(name)
    if value is None:
        raise ParseError(f"missing {name}")
    return parse_name_addr(value)


def _without_length(headers: Headers) -> list[tuple[str, str]]:
    # Content-Length only restates len(body), which the serializer always writes: two messages
    # that differ in nothing else are the same message
    return [(n, v) for n, v in headers if n != "Content-Length"]


def _parse_delta_seconds(value: str, name: str) -> int:
    return parse_uint(value, name, maximum=2**32 - 1)


@dataclass(eq=False, slots=True)
class SipRequest(_MessageBase):
    method: str
    uri: Uri
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SipRequest)
            and (self.method, str(self.uri), self.body) == (other.method, str(other.uri), other.body)
            and _without_length(self.headers) == _without_length(other.headers)
        )

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {SIP_VERSION}"

    def to_bytes(self) -> bytes:
        return _serialize(self.start_line(), self.headers, self.body)

    @property
    def sip_uri(self) -> SipUri:
        if not isinstance(self.uri, SipUri):
            raise ParseError(f"Request-URI scheme {self.uri.scheme!r} not supported", status_hint=416)
        return self.uri

    def copy(self) -> SipRequest:
        return SipRequest(self.method, self.uri, self.headers.copy(), self.body)


@dataclass(eq=False, slots=True)
class SipResponse(_MessageBase):
    """A response; a constructed one with ``reason=""`` gets the standard phrase.

    A *parsed* response keeps its reason phrase as received, even when empty (RFC 4475 noreason).
    """

    status: int
    reason: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __post_init__(self) -> None:
        if not self.reason:
            self.reason = reason_phrase(self.status)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SipResponse)
            and (self.status, self.reason, self.body) == (other.status, other.reason, other.body)
            and _without_length(self.headers) == _without_length(other.headers)
        )

    def start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"

    def to_bytes(self) -> bytes:
        return _serialize(self.start_line(), self.headers, self.body)

    @property
    def is_provisional(self) -> bool:
        return self.status < 200

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def copy(self) -> SipResponse:
        copy = SipResponse(self.status, self.reason, self.headers.copy(), self.body)
        copy.reason = self.reason  # keep an empty phrase empty
        return copy


SipMessage: TypeAlias = SipRequest | SipResponse


def _serialize(start_line: str, headers: Headers, body: bytes) -> bytes:
    """The wire form; Content-Length always states ``len(body)``, where the header was or last."""
    if "\r" in start_line or "\n" in start_line:
        raise LocalProtocolError("CR or LF in the start line")
    lines = [start_line]
    length_written = False
    for name, value in headers:
        if name == "Content-Length":
            if not length_written:
                lines.append(f"Content-Length: {len(body)}")
                length_written = True
            continue
        lines.append(f"{name}: {value}")
    if not length_written:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


# --- parsing ---------------------------------------------------------------------------------

_METHOD_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
# SIP-Version is case-insensitive on receipt (RFC 3261 §7.1); a missing reason phrase is
# tolerated (RFC 4475 §3.1.1.13: "a liberal receiver would accept it anyway")
_STATUS_LINE_RE = re.compile(r"[Ss][Ii][Pp]/2\.0 ([1-9][0-9]{2})(?: (.*))?\Z", re.DOTALL)
_REQUEST_LINE_RE = re.compile(r"([^ ]+) ([^ ]+) ([Ss][Ii][Pp]/[^ ]+)\Z")
_HEADER_NAME_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
# control characters are only legal as quoted-pairs (intmeth's "\<NUL>"); CR is checked apart
_CTL_RE = re.compile(r"(?<!\\)[\x00-\x08\x0a-\x1f\x7f]")
_LINE_SPLIT_RE = re.compile(r"\r\n|\n")


def find_head_end(data: bytes | bytearray, start: int = 0) -> tuple[int, int] | None:
    """Locate the empty line ending the head: ``(head_end, body_start)`` or None.

    CRLF CRLF is the rule; bare LF LF from lenient senders is accepted too.  ``start`` lets a
    stream framer resume the search instead of rescanning its whole buffer on every read.
    """
    crlf = data.find(b"\r\n\r\n", start)
    lf = data.find(b"\n\n", start)
    if crlf < 0 and lf < 0:
        return None
    if crlf >= 0 and (lf < 0 or crlf <= lf):
        return crlf, crlf + 4
    return lf, lf + 2


def split_head_and_body(data: bytes) -> tuple[bytes, bytes]:
    """Split at the first empty line (CRLF CRLF, or bare LF LF from lenient senders)."""
    found = find_head_end(data)
    if found is None:
        raise ParseError("no empty line after the headers")
    head_end, body_start = found
    return data[:head_end], data[body_start:]


def content_length_of_head(head: bytes, limits: Limits = DEFAULT_LIMITS) -> int | None:
    """The Content-Length a head announces (None when absent), for a stream framer.

    Works on raw bytes before the full parse so framing never depends on the rest of the head
    being valid.  Raises ParseError for a malformed or conflicting value, MessageTooLarge past
    ``limits.max_body``.
    """
    text = head.decode("latin-1")  # only ASCII matters here; never fails
    values: list[str] = []
    current: str | None = None
    for raw in _LINE_SPLIT_RE.split(text)[1:]:
        if raw[:1] in (" ", "\t"):
            if current is not None:
                current += " " + raw.strip(WSP)
            continue
        if current is not None:
            values.append(current)
            current = None
        name, colon, value = raw.partition(":")
        if colon and name.rstrip(WSP).lower() in ("content-length", "l"):
            current = value.strip(WSP)
    if current is not None:
        values.append(current)
    return _content_length(values, limits)


def _content_length(values: list[str], limits: Limits) -> int | None:
    if not values:
        return None
    distinct = {v.strip(WSP) for v in values}
    if len(distinct) > 1:
        raise ParseError("conflicting Content-Length headers")
    value = distinct.pop()
    if not is_digits(value):
        raise ParseError(f"malformed Content-Length {value[:40]!r}")
    if len(value.lstrip("0")) > 10 or int(value.lstrip("0") or "0") > limits.max_body:
        raise MessageTooLarge(f"Content-Length {value[:40]} exceeds {limits.max_body}")
    return int(value.lstrip("0") or "0")


def parse_message(data: bytes, *, limits: Limits = DEFAULT_LIMITS, datagram: bool = True) -> SipMessage:
    """Parse one message; for a datagram the body is cut to Content-Length (RFC 3261 §18.3).

    With ``datagram=False`` (one message framed from a stream) Content-Length is mandatory and
    must match the body exactly.  The parsed message states its real body length in exactly
    one Content-Length header, so parse -> ``to_bytes`` -> parse gives an equal message.

    Raises only :class:`ParseError` (or its subclass :class:`MessageTooLarge`).
    """
    try:
        return _parse(data, limits, datagram)
    except ParseError:
        raise
    except (ValueError, UnicodeError, OverflowError, IndexError, RecursionError) as exc:
        # defence in depth only: the property tests drive _parse directly, so any bug that
        # lands here is found there; on the wire it still becomes a 400, not a crash
        raise ParseError(f"unparseable message: {exc}") from exc


def _parse(data: bytes, limits: Limits, datagram: bool) -> SipMessage:
    if len(data) > limits.max_message:
        raise MessageTooLarge(f"message of {len(data)} bytes exceeds {limits.max_message}")
    data = data.lstrip(b"\r\n")  # keep-alive CRLFs before a message are allowed
    head, body = split_head_and_body(data)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"headers are not UTF-8 (byte {exc.start})") from exc
    lines = _unfold(text, limits)
    if not lines or not lines[0]:
        raise ParseError("empty start line")
    headers = _parse_header_lines(lines[1:], limits)
    body = _frame_body(headers, body, limits, datagram)
    message = _parse_start_line(lines[0], headers, body)
    validate_message(message)
    return message


def _unfold(text: str, limits: Limits) -> list[str]:
    """Split into logical lines, joining continuation lines (leading SP/HT) with one space."""
    lines: list[str] = []
    for raw in _LINE_SPLIT_RE.split(text):
        if len(raw) > limits.max_header_line:
            raise MessageTooLarge(f"header line of {len(raw)} characters exceeds {limits.max_header_line}")
        if "\r" in raw:
            raise ParseError("bare CR in the message head")
        ctl = _CTL_RE.search(raw)
        if ctl:
            raise ParseError(f"control character {ctl.group()!r} in the message head")
        if raw[:1] in (" ", "\t"):
            if not lines:
                raise ParseError("message starts with white space")
            if len(lines) == 1:
                raise ParseError("continuation line after the start line")
            lines[-1] = lines[-1].rstrip(WSP) + " " + raw.strip(WSP)
            if len(lines[-1]) > limits.max_header_line:
                raise MessageTooLarge(f"folded header exceeds {limits.max_header_line} characters")
        else:
            lines.append(raw)
            if len(lines) > limits.max_headers + 1:
                raise MessageTooLarge(f"more than {limits.max_headers} header lines")
    return lines


def _parse_header_lines(lines: list[str], limits: Limits) -> Headers:
    if len(lines) > limits.max_headers:
        raise MessageTooLarge(f"{len(lines)} header lines exceed {limits.max_headers}")
    items: list[tuple[str, str]] = []
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon:
            raise ParseError(f"header line without a colon: {line[:60]!r}")
        name = name.rstrip(WSP)
        if not _HEADER_NAME_RE.match(name):
            raise ParseError(f"malformed header name {name[:60]!r}")
        items.append((name, value.strip(WSP)))
    return Headers(items)


def _frame_body(headers: Headers, body: bytes, limits: Limits, datagram: bool) -> bytes:
    length = _content_length(headers.get_lines("Content-Length"), limits)
    if length is None:
        if not datagram:
            raise ParseError("missing Content-Length on a stream transport")
        length = len(body)  # RFC 2543 senders (inv2543): the body is the rest of the datagram
        if length > limits.max_body:
            raise MessageTooLarge(f"body of {length} bytes exceeds {limits.max_body}")
    if len(body) < length:
        raise ParseError(f"Content-Length {length} larger than the {len(body)} body bytes received")
    if not datagram and len(body) > length:
        raise ParseError(f"{len(body) - length} bytes after the body of a stream message")
    # one Content-Length stating the real length, where the first one was (or last)
    headers.set("Content-Length", str(length))
    return body[:length]


def _parse_start_line(line: str, headers: Headers, body: bytes) -> SipMessage:
    if line[:4].upper() == "SIP/":
        match = _STATUS_LINE_RE.match(line)
        if not match:
            raise ParseError(f"malformed status line {line[:80]!r}")
        response = SipResponse(int(match.group(1)), "", headers, body)
        response.reason = match.group(2) or ""  # as received, even when empty
        return response
    match = _REQUEST_LINE_RE.match(line)
    if not match:
        raise ParseError(f"malformed request line {line[:80]!r}")
    method, uri_text, version = match.groups()
    if version.upper() != SIP_VERSION:
        raise ParseError(f"unsupported protocol version {version[:20]!r}", status_hint=505)
    if not _METHOD_RE.match(method):
        raise ParseError(f"malformed method {method[:40]!r}")
    if uri_text.startswith("<") or uri_text.endswith(">"):
        raise ParseError("Request-URI enclosed in <>")
    uri = parse_uri(uri_text)
    if isinstance(uri, SipUri) and uri.headers is not None:
        raise ParseError("Request-URI carries URI headers")
    return SipRequest(method, uri, headers, body)


_DATE_RE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT\Z"
)


def validate_message(message: SipMessage) -> None:
    """Check the headers every layer depends on, so later accessors cannot fail.

    Raises ParseError naming the first problem.  Semantic checks that deserve a specific status
    (416, 420, 415, 405) belong to :mod:`ccdaemon.sip.validate`, not here.
    """
    headers = message.headers
    for name in ("Call-ID", "CSeq", "From", "To", "Via"):
        if headers.get(name) is None:
            raise ParseError(f"missing {name} header")
    # every line, not just the first: a duplicate must be readable too (a request with one gets
    # a 400 from validate.check_request, which has to read it to say so)
    for call_id in headers.get_lines("Call-ID"):
        if not call_id or any(c in call_id for c in " \t"):
            raise ParseError(f"malformed Call-ID {call_id[:80]!r}")
    for value in headers.get_lines("CSeq"):
        parse_cseq(value)
    for name in ("From", "To"):
        for value in headers.get_lines(name):
            parse_name_addr(value)
    for value in headers.get_lines("Max-Forwards"):
        parse_uint(value, "Max-Forwards", maximum=255)
    for value in headers.get_lines("Expires"):
        _parse_delta_seconds(value, "Expires")
    cseq = message.cseq
    # each accessor parses and so validates its header
    if not message.vias:
        raise ParseError("empty Via header")  # top_via must work on every parsed message
    message.contacts  # noqa: B018
    message.routes  # noqa: B018
    message.record_routes  # noqa: B018
    _validate_optional(headers)
    if isinstance(message, SipRequest):
        if cseq.method != message.method:
            # RFC 4475 §3.1.2.18: an unknown method with a mismatch prefers 501 over 400
            hint = 400 if message.method in KNOWN_METHODS else 501
            raise ParseError(
                f"CSeq method {cseq.method} differs from request method {message.method}", status_hint=hint
            )
    elif not 100 <= message.status <= 699:
        raise ParseError(f"status code {message.status} out of range")


def _validate_optional(headers: Headers) -> None:
    # list headers must split into elements, so get_all() cannot fail on a parsed message
    for name in {n for n, _ in headers if n.lower() in LIST_HEADERS}:
        headers.get_all(name)
    date = headers.get("Date")
    if date is not None:
        if not _DATE_RE.match(date.strip(WSP)):
            raise ParseError(f"malformed Date {excerpt(date)}")
        try:
            parsedate_to_datetime(date)
        except (TypeError, ValueError) as exc:
            raise ParseError(f"malformed Date {excerpt(date)}") from exc
    content_type = headers.get("Content-Type")
    if content_type is not None:
        media = content_type.split(";", 1)[0].strip(WSP)
        kind, slash, sub = media.partition("/")
        if not slash or not is_token(kind.strip(WSP)) or not is_token(sub.strip(WSP)):
            raise ParseError(f"malformed Content-Type {excerpt(content_type)}")
    for name in ("Require", "Proxy-Require", "Supported", "Allow", "Unsupported"):
        for token in headers.get_all(name):
            if not is_token(token):
                raise ParseError(f"malformed {name} value {excerpt(token)}")
    for value in headers.get_lines("Min-Expires"):
        _parse_delta_seconds(value, "Min-Expires")


def duplicated_single_headers(message: SipMessage) -> list[str]:
    """Names of headers that must appear once but appear more often (a request gets 400)."""
    counts: dict[str, int] = {}
    for name, _ in message.headers:
        key = name.lower()
        if key in SINGLE_HEADERS:
            counts[key] = counts.get(key, 0) + 1
    return [canonical_name(key) for key, n in counts.items() if n > 1]


# --- construction helpers ----------------------------------------------------------------------


def make_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    body: bytes = b"",
    content_type: str | None = None,
) -> SipResponse:
    """A response copying Via, From, To, Call-ID and CSeq from ``request`` (RFC 3261 §8.2.6).

    ``to_tag`` is added to To unless it already carries one (or the status is 100).  The tag is
    appended to To as received rather than re-serializing the address, so the UAC sees its own
    To value byte for byte plus ``;tag=``.
    """
    if to_tag is not None and not is_token(to_tag):
        raise LocalProtocolError(f"To tag {to_tag!r} is not a token")
    headers = Headers()
    for via in request.headers.get_lines("Via"):
        headers.add("Via", via)
    headers.add("From", request.headers.get("From") or "")
    to_value = request.headers.get("To") or ""
    if to_tag is not None and status != 100 and parse_name_addr(to_value).tag is None:
        to_value = f"{to_value};tag={to_tag}"
    headers.add("To", to_value)
    headers.add("Call-ID", request.headers.get("Call-ID") or "")
    headers.add("CSeq", request.headers.get("CSeq") or "")
    if status == 100 and request.headers.get("Timestamp") is not None:
        headers.add("Timestamp", request.headers.get("Timestamp") or "")
    if content_type is not None:
        headers.add("Content-Type", content_type)
    return SipResponse(status, reason or reason_phrase(status), headers, body)


__all__ = [
    "DEFAULT_LIMITS",
    "KNOWN_METHODS",
    "Limits",
    "SipMessage",
    "SipRequest",
    "SipResponse",
    "content_length_of_head",
    "duplicated_single_headers",
    "find_head_end",
    "make_response",
    "parse_message",
    "reason_phrase",
    "validate_message",
]
