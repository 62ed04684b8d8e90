"""SIP URIs (RFC 3261 §19.1) and the name-addr form used by From, To, Contact and Route.

Parsed values are frozen; their ``__str__`` gives the wire form.  Unknown schemes are kept as
:class:`AbsoluteUri` so an element can answer 416 instead of failing to parse the message.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from typing import TypeAlias
from urllib.parse import unquote as _percent_decode

from .errors import ParseError
from .grammar import (
    WSP,
    excerpt,
    format_params,
    is_token,
    param_value,
    parse_params,
    parse_uint,
    quote,
    split_outside_quotes,
    split_wsp,
    unquote,
    with_param,
)

Params: TypeAlias = tuple[tuple[str, str | None], ...]

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*\Z")
_USER_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+\Z")
_PASSWORD_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*\Z")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9.])?\Z")
_IPV6_RE = re.compile(r"\[[0-9A-Fa-f:.]+\]\Z")
_URI_PARAM_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|%[0-9A-Fa-f]{2})+\Z")
_HEADER_PART_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})*\Z")
# RFC 2396 uric (reserved / unreserved / escaped) plus brackets for IPv6 hosts: printable ASCII
# only, so a foreign URI can never smuggle white space or control characters into a header.
_OPAQUE_RE = re.compile(r"(?:[A-Za-z0-9\-_.!~*'();/?:@&=+$,\[\]]|%[0-9A-Fa-f]{2})+\Z")


def _unescape(text: str) -> str:
    # %-escapes are UTF-8 octets (RFC 3261 §19.1.2); an invalid sequence must not raise
    return _percent_decode(text, encoding="utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI; ``user`` and parameters are kept as written (escaped)."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    scheme: str = "sip"
    params: Params = ()
    headers: str | None = None  # the part after '?', kept verbatim

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            userinfo = self.user
            if self.password is not None:
                userinfo += ":" + self.password
            userinfo += "@"
        port = f":{self.port}" if self.port is not None else ""
        headers = f"?{self.headers}" if self.headers is not None else ""
        return f"{self.scheme}:{userinfo}{self.host}{port}{format_params(self.params)}{headers}"

    def param(self, name: str) -> str | None:
        return param_value(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> SipUri:
        return replace(self, params=with_param(self.params, name, value))

    @property
    def transport(self) -> str:
        return (self.param("transport") or "udp").lower()

    @property
    def user_unescaped(self) -> str | None:
        return None if self.user is None else _unescape(self.user)

    @property
    def host_port(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def same_as(self, other: Uri) -> bool:
        """URI equality (RFC 3261 §19.1.4, the parts that matter for routing and matching)."""
        if not isinstance(other, SipUri):
            return False
        return (
            self.scheme == other.scheme
            and self.user_unescaped == other.user_unescaped
            and self.host.lower() == other.host.lower()
            and self.port == other.port
            and self.transport == other.transport
        )


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """Any URI whose scheme we do not interpret (``tel:``, ``mailto:``, unknown schemes)."""

    scheme: str
    opaque: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"

    def same_as(self, other: Uri) -> bool:
        return isinstance(other, AbsoluteUri) and str(self).lower() == str(other).lower()


Uri: TypeAlias = SipUri | AbsoluteUri


def parse_uri(text: str) -> Uri:
    """Parse an absolute URI; ``sip``/``sips`` fully, any other scheme as :class:`AbsoluteUri`."""
    scheme, sep, rest = text.partition(":")
    if not sep or not _SCHEME_RE.match(scheme):
        raise ParseError(f"not a URI: {excerpt(text)}")
    scheme = scheme.lower()
    if scheme not in ("sip", "sips"):
        if not rest or not _OPAQUE_RE.match(rest):
            raise ParseError(f"malformed {scheme} URI: {excerpt(text)}")
        return AbsoluteUri(scheme, rest)
    return _parse_sip_uri(scheme, rest, text)


def parse_sip_uri(text: str) -> SipUri:
    uri = parse_uri(text)
    if not isinstance(uri, SipUri):
        raise ParseError(f"not a sip: URI: {excerpt(text)}", status_hint=416)
    return uri


def _parse_sip_uri(scheme: str, rest: str, text: str) -> SipUri:
    headers: str | None = None
    if "?" in rest:
        # '?' is legal inside the user part, so only a '?' after the host starts the headers
        at = rest.find("@")
        qpos = rest.find("?", at + 1 if at >= 0 else 0)
        if qpos >= 0:
            rest, headers = rest[:qpos], rest[qpos + 1 :]
            if not _HEADER_PART_RE.match(headers.replace("=", "").replace("&", "")):
                raise ParseError(f"malformed headers in URI {excerpt(text)}")
    user: str | None = None
    password: str | None = None
    if "@" in rest:
        userinfo, _, rest = rest.partition("@")
        user, _, pw = userinfo.partition(":")
        password = pw if ":" in userinfo else None
        if not _USER_RE.match(user):
            raise ParseError(f"malformed user part in URI {excerpt(text)}")
        if password is not None and not _PASSWORD_RE.match(password):
            raise ParseError(f"malformed password in URI {excerpt(text)}")
    hostport, semi, param_text = rest.partition(";")
    host, port = parse_host_port(hostport, text)
    params: Params = ()
    if semi:
        items: list[tuple[str, str | None]] = []
        for item in param_text.split(";"):
            name, eq, value = item.partition("=")
            if not name or not _URI_PARAM_RE.match(name) or (eq and not _URI_PARAM_RE.match(value)):
                raise ParseError(f"malformed parameter {excerpt(item)} in URI {excerpt(text)}")
            items.append((name.lower(), value if eq else None))
        params = tuple(items)
    return SipUri(
        host=host, user=user, password=password, port=port, scheme=scheme, params=params, headers=headers
    )


def parse_host_port(hostport: str, context: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (IPv6 in brackets); raises ParseError naming ``context``."""
    port: int | None = None
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ParseError(f"unterminated IPv6 reference in {excerpt(context)}")
        host, tail = hostport[: end + 1], hostport[end + 1 :]
        if tail:
            if not tail.startswith(":"):
                raise ParseError(f"garbage after IPv6 host in {excerpt(context)}")
            port = _parse_port(tail[1:], context)
        if not _IPV6_RE.match(host) or not _is_ipv6(host[1:-1]):
            raise ParseError(f"malformed IPv6 host in {excerpt(context)}")
        return host, port
    host, colon, port_text = hostport.partition(":")
    if colon:
        port = _parse_port(port_text, context)
    if not host or not _HOSTNAME_RE.match(host):
        raise ParseError(f"malformed host {excerpt(host)} in {excerpt(context)}")
    return host, port


def _parse_port(text: str, context: str) -> int:
    if not text or text != text.strip(WSP):
        raise ParseError(f"malformed port {excerpt(text)} in {excerpt(context)}")
    return parse_uint(text, f"port in {context!r}", maximum=65535)


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class NameAddr:
    """``"Display" <uri>;params`` — the value of From, To, Contact, Route, Record-Route, Refer-To."""

    uri: Uri
    display_name: str | None = None
    params: Params = ()
    wildcard: bool = False  # "Contact: *"

    def __str__(self) -> str:
        if self.wildcard:
            return "*"
        display = ""
        if self.display_name is not None:
            # tokens separated by single spaces survive unquoted; anything else needs quotes
            words = self.display_name.split(" ")
            plain = all(is_token(w) for w in words)
            display = (self.display_name if plain else quote(self.display_name)) + " "
        return f"{display}<{self.uri}>{format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        return param_value(self.params, "tag")

    def param(self, name: str) -> str | None:
        return param_value(self.params, name)

    def with_param(self, name: str, value: str | None) -> NameAddr:
        return replace(self, params=with_param(self.params, name, value))

    def with_tag(self, tag: str) -> NameAddr:
        return self.with_param("tag", tag)


def parse_name_addr(text: str) -> NameAddr:
    """Parse one name-addr or addr-spec with its header parameters."""
    text = text.strip(WSP)
    if text == "*":
        return NameAddr(uri=AbsoluteUri("*", "*"), wildcard=True)
    if not text:
        raise ParseError("empty address")
    lt = _find_unquoted(text, "<")
    if lt < 0:
        # addr-spec form: the first ';' starts header parameters, not URI parameters (§20.10)
        uri_text, _, param_text = text.partition(";")
        uri_text = uri_text.strip(WSP)
        # a URI with ',', '?' or ';' must be in <> (RFC 3261 §20)
        if any(c in uri_text for c in ' \t"<>?,'):
            raise ParseError(f"malformed address {excerpt(text)}")
        params = _header_params(";" + param_text if param_text else "", text)
        return NameAddr(uri=parse_uri(uri_text), params=params)
    gt = text.find(">", lt)
    if gt < 0:
        raise ParseError(f"missing '>' in address {excerpt(text)}")
    display_text = text[:lt].strip(WSP)
    display: str | None = None
    if display_text:
        if display_text.startswith('"'):
            display = unquote(display_text)
        else:
            words = split_wsp(display_text)
            if not all(is_token(w) for w in words):
                raise ParseError(f"display name needs quotes: {excerpt(display_text)}")
            display = " ".join(words)
    uri_text = text[lt + 1 : gt]
    if uri_text != uri_text.strip(WSP) or not uri_text:
        raise ParseError(f"white space inside <> in {excerpt(text)}")
    return NameAddr(
        uri=parse_uri(uri_text), display_name=display, params=_header_params(text[gt + 1 :], text)
    )


def _header_params(param_text: str, context: str) -> Params:
    param_text = param_text.strip(WSP)
    if param_text and not param_text.startswith(";"):
        raise ParseError(f"garbage after address in {excerpt(context)}")
    return parse_params(param_text)


def _find_unquoted(text: str, target: str) -> int:
    in_quotes = False
    i = 0
    while i < len(text):
        ch = text[i]
        if in_quotes:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quotes = False
        elif ch == '"':
            in_quotes = True
        elif ch == target:
            return i
        i += 1
    return -1


def parse_name_addr_list(text: str) -> list[NameAddr]:
    """Parse a comma-separated list of addresses (Contact, Route, Record-Route)."""
    return [parse_name_addr(part) for part in split_outside_quotes(text, ",") if part.strip(WSP)]
