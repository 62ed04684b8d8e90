"""The header container and the structured headers every layer needs (Via, CSeq).

Header names are case-insensitive and have compact forms (RFC 3261 §7.3.3); the container keeps
canonical names so serialized messages look the way phones and proxies expect.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from .errors import LocalProtocolError, ParseError
from .grammar import (
    WSP,
    excerpt,
    format_params,
    is_digits,
    is_token,
    param_value,
    parse_params,
    parse_uint,
    split_outside_quotes,
    with_param,
)
from .uri import Params, parse_host_port

COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_CANONICAL: dict[str, str] = {
    name.lower(): name
    for name in (
        *COMPACT_FORMS.values(),
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Authentication-Info",
        "Authorization",
        "Call-Info",
        "Content-Disposition",
        "Content-Language",
        "CSeq",
        "Date",
        "Error-Info",
        "Expires",
        "In-Reply-To",
        "Max-Forwards",
        "Min-Expires",
        "MIME-Version",
        "Organization",
        "Priority",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "Record-Route",
        "Reply-To",
        "Replaces",
        "Require",
        "Retry-After",
        "Route",
        "Server",
        "Timestamp",
        "Unsupported",
        "User-Agent",
        "Warning",
        "WWW-Authenticate",
        "RSeq",
        "RAck",
        "Min-SE",
        "Subscription-State",
        "P-Asserted-Identity",
        "Privacy",
        "Path",
    )
}

# Headers whose values may be combined into one comma-separated line (RFC 3261 §7.3.1).
LIST_HEADERS: frozenset[str] = frozenset(
    {
        "via",
        "contact",
        "route",
        "record-route",
        "allow",
        "supported",
        "require",
        "proxy-require",
        "unsupported",
        "accept",
        "accept-encoding",
        "accept-language",
        "allow-events",
        "content-encoding",
        "content-language",
        "in-reply-to",
        "alert-info",
        "call-info",
        "error-info",
        "warning",
        "path",
    }
)

# Headers that must appear at most once (duplicates make a request unanswerable but with 400).
SINGLE_HEADERS: frozenset[str] = frozenset(
    {
        "call-id",
        "cseq",
        "from",
        "to",
        "max-forwards",
        "content-length",
        "content-type",
        "expires",
        "min-expires",
        "date",
        "refer-to",
        "replaces",
        "event",
        "subscription-state",
    }
)


def _checked(name: str, value: str) -> tuple[str, str]:
    """Refuse names and values that would corrupt the wire form (header injection)."""
    if not is_token(name):
        raise LocalProtocolError(f"header name {name!r} is not a token")
    # NUL and other controls may legally appear as quoted-pairs (RFC 4475 intmeth); CR/LF never
    if "\r" in value or "\n" in value:
        raise LocalProtocolError(f"header {name} value contains CR or LF")
    return canonical_name(name), value


def canonical_name(name: str) -> str:
    """The canonical spelling of a header name, expanding compact forms."""
    lower = name.lower()
    if lower in COMPACT_FORMS:
        return COMPACT_FORMS[lower]
    return _CANONICAL.get(lower, name)


class Headers:
    """An ordered multi-map of header fields.

    Stored one entry per header line as received; :meth:`get_all` splits comma-separated list
    headers so callers see one value per element.
    """

    __slots__ = ("_items",)
    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [_checked(n, v) for n, v in items]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def get(self, name: str) -> str | None:
        """The first line's value of ``name`` or None."""
        key = canonical_name(name).lower()
        for n, v in self._items:
            if n.lower() == key:
                return v
        return None

    def get_lines(self, name: str) -> list[str]:
        """Every line's value of ``name`` as received (not split at commas)."""
        key = canonical_name(name).lower()
        return [v for n, v in self._items if n.lower() == key]

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``; list headers are split at top-level commas."""
        lines = self.get_lines(name)
        if canonical_name(name).lower() not in LIST_HEADERS:
            return lines
        values: list[str] = []
        for line in lines:
            values.extend(v.strip(WSP) for v in split_outside_quotes(line, ",") if v.strip(WSP))
        return values

    def count(self, name: str) -> int:
        return len(self.get_lines(name))

    def add(self, name: str, value: str) -> None:
        self._items.append(_checked(name, value))

    def prepend(self, name: str, value: str) -> None:
        """Insert before the first line of ``name`` (or at the top): how a Via is pushed."""
        item = _checked(name, value)
        key = item[0].lower()
        for i, (n, _) in enumerate(self._items):
            if n.lower() == key:
                self._items.insert(i, item)
                return
        self._items.insert(0, item)

    def set(self, name: str, value: str) -> None:
        """Replace every line of ``name`` by one line, keeping the first one's position."""
        new = _checked(name, value)
        key = new[0].lower()
        for i, (n, _) in enumerate(self._items):
            if n.lower() == key:
                self._items[i] = new
                self._items = [item for j, item in enumerate(self._items) if j <= i or item[0].lower() != key]
                return
        self._items.append(new)

    def remove(self, name: str) -> None:
        key = canonical_name(name).lower()
        self._items = [(n, v) for n, v in self._items if n.lower() != key]

    def replace_all(self, name: str, values: Iterable[str]) -> None:
        """Replace every line of ``name`` by one line per value, at the first one's position."""
        key = canonical_name(name).lower()
        new = [_checked(name, v) for v in values]
        pos = next((i for i, (n, _) in enumerate(self._items) if n.lower() == key), len(self._items))
        rest = [(n, v) for n, v in self._items if n.lower() != key]
        before = sum(1 for n, _ in self._items[:pos] if n.lower() != key)
        self._items = rest[:before] + new + rest[before:]

    def copy(self) -> Headers:
        clone = Headers()
        clone._items = list(self._items)
        return clone


# sent-protocol only; sent-by is split by hand.  (A single regex ending in "(\S.*?)[ \t]*\Z"
# backtracks quadratically on a Via full of spaces: an 8 KB line cost seconds.)
_SENT_PROTOCOL_RE = re.compile(
    r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*/"
    r"[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)"
)
MAGIC_COOKIE = "z9hG4bK"


@dataclass(frozen=True, slots=True)
class Via:
    """One Via element: ``SIP/2.0/UDP host:port;branch=...;rport``."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        return param_value(self.params, "branch")

    @property
    def received(self) -> str | None:
        return param_value(self.params, "received")

    @property
    def rport(self) -> int | None:
        value = param_value(self.params, "rport")
        return int(value) if value and is_digits(value) and len(value) <= 5 else None

    @property
    def has_rfc3261_branch(self) -> bool:
        """True for an RFC 3261 branch: the magic cookie *and* something after it.

        A bare ``z9hG4bK`` (RFC 4475 badbranch) or no branch at all (RFC 2543 peers, inv2543)
        means the transaction layer must fall back to RFC 2543 matching (§17.2.3).
        """
        branch = self.branch
        return branch is not None and branch.startswith(MAGIC_COOKIE) and len(branch) > len(MAGIC_COOKIE)

    @property
    def wants_rport(self) -> bool:
        return any(name == "rport" for name, _ in self.params)

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def with_param(self, name: str, value: str | None) -> Via:
        return replace(self, params=with_param(self.params, name, value))


def parse_via(text: str) -> Via:
    """Parse one Via element (not a comma-separated list)."""
    head, _, param_text = text.partition(";")
    head = head.strip(WSP)
    match = _SENT_PROTOCOL_RE.match(head)
    sent_by = head[match.end() :] if match else ""
    if not match or sent_by[:1] not in (" ", "\t"):
        raise ParseError(f"malformed Via {text[:80]!r}")
    name, version, transport = match.groups()
    if name.upper() != "SIP" or version != "2.0":
        raise ParseError(f"Via with unsupported protocol {excerpt(name + '/' + version)}")
    host, port = parse_host_port(_squeeze_sent_by(sent_by.strip(WSP)), text[:80])
    params = parse_params(param_text)
    _check_via_params(params, text)
    return Via(transport=transport.upper(), host=host, port=port, params=params)


def _squeeze_sent_by(sent_by: str) -> str:
    """Drop the SWS that RFC 3261 allows around the ':' before the port ("host : 5060")."""
    bracket = sent_by.rfind("]")
    colon = sent_by.rfind(":")
    if colon <= bracket or (bracket < 0 and sent_by.count(":") != 1):
        return sent_by  # no port separator (or a bare IPv6 address: left for the host check)
    return sent_by[:colon].rstrip(WSP) + ":" + sent_by[colon + 1 :].lstrip(WSP)


def _check_via_params(params: Params, text: str) -> None:
    # the parameters other layers read as numbers must be numbers (RFC 3261 §20.42, RFC 3581)
    for name, value in params:
        if name == "rport" and value is not None:
            parse_uint(value, "Via rport", maximum=65535)
        elif name == "ttl":
            parse_uint(value or "", "Via ttl", maximum=255)
        elif name == "branch" and not value:
            raise ParseError(f"empty branch in Via {text[:80]!r}")


@dataclass(frozen=True, slots=True)
class CSeq:
    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


_CSEQ_RE = re.compile(r"[ \t]*([0-9]+)[ \t]+([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*\Z")


def parse_cseq(text: str) -> CSeq:
    match = _CSEQ_RE.match(text)
    if not match:
        raise ParseError(f"malformed CSeq {text[:80]!r}")
    # RFC 3261 §8.1.1.5: a 32-bit number below 2**31 (leading zeros allowed: wsinv's "0009")
    seq = parse_uint(match.group(1), "CSeq number", maximum=2**31 - 1)
    return CSeq(seq, match.group(2))
