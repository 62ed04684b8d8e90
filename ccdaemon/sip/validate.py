"""What a UAS checks on a new request before the application sees it (RFC 3261 §8.2).

Pure functions over parsed messages (or, for :func:`error_response_for_unparsable`, raw bytes):
the caller gets the response to send, or None when the request may proceed.  The order follows
§8.2: method (405/501), then headers (416, duplicated single headers 400, Require 420), then
content (415) and what the answer must be able to carry (406).

Decisions for a UA (documented in ``tests/data/rfc4475/EXPECTED.tsv``):

- never 483: ccdaemon is the final target of the requests it receives; RFC 4475 §3.3.11 says an
  endpoint processes Max-Forwards: 0 normally.  :func:`max_forwards_for_next_hop` serves the
  B2BUA when it derives an outgoing leg from an incoming request (RFC 7332 style).
- never 416 for the To scheme: RFC 3261 §8.2.2.1 recommends accepting a To URI scheme a UAS
  does not know; only the Request-URI routes.
- REGISTER is refused with 405 like any method we do not serve (not a registrar; RFC 4475
  §3.3.7 names 405 for endpoints).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ParseError
from .grammar import WSP, is_token, param_value, parse_params, split_wsp
from .headers import canonical_name
from .message import (
    DEFAULT_LIMITS,
    KNOWN_METHODS,
    Limits,
    SipRequest,
    SipResponse,
    duplicated_single_headers,
    find_head_end,
    make_response,
    reason_phrase,
)
from .uri import parse_name_addr

DEFAULT_SCHEMES: frozenset[str] = frozenset({"sip", "sips"})
IDENTITY_ONLY: frozenset[str] = frozenset({"identity"})
_MAX_TEXT = 160  # bound on peer-influenced text we echo in a reason phrase or Warning


@dataclass(frozen=True, slots=True)
class _Policy:
    allowed_methods: frozenset[str]
    supported_extensions: frozenset[str]  # lower-cased
    accepted_content_types: frozenset[str]  # lower-cased
    accepted_encodings: frozenset[str]  # lower-cased
    supported_schemes: frozenset[str]  # lower-cased
    answer_content_type: str
    to_tag: str | None
    agent: str


def check_request(
    request: SipRequest,
    *,
    allowed_methods: frozenset[str],
    supported_extensions: frozenset[str],
    accepted_content_types: frozenset[str],
    accepted_encodings: frozenset[str] = IDENTITY_ONLY,
    supported_schemes: frozenset[str] = DEFAULT_SCHEMES,
    answer_content_type: str = "application/sdp",
    to_tag: str | None = None,
    agent: str = "ccdaemon",
) -> SipResponse | None:
    """The error response a UAS must send for ``request``, or None to let it through.

    ``allowed_methods`` are case-sensitive method names (methods are); extensions, content
    types and encodings compare case-insensitively.  ``answer_content_type`` is what our
    answer to an INVITE carries (checked against Accept).  ``to_tag`` is put on the To of the
    error response (RFC 3261 §8.2.6.2 wants one; the caller owns the ID factory).  ``agent``
    names us in Warning headers.  Never raises for a parsed request: a header we need but
    cannot read earns a 400 naming it.
    """
    if request.method == "ACK":
        return None  # nothing may answer an ACK (RFC 3261 §17.2.1); the dialog layer absorbs it
    policy = _Policy(
        allowed_methods=allowed_methods,
        supported_extensions=frozenset(e.lower() for e in supported_extensions),
        accepted_content_types=frozenset(t.lower() for t in accepted_content_types),
        accepted_encodings=frozenset(e.lower() for e in accepted_encodings),
        supported_schemes=frozenset(s.lower() for s in supported_schemes),
        answer_content_type=answer_content_type.lower(),
        to_tag=to_tag if to_tag is not None and is_token(to_tag) else None,
        agent=agent if is_token(agent) else "ccdaemon",
    )
    for check in _CHECKS:
        try:
            response = check(request, policy)
        except ParseError as exc:  # a header this check reads is malformed: that is the 400
            return _reply(request, policy, 400, f"Bad Request ({_sanitize(str(exc))})")
        if response is not None:
            return response
    return None


def _check_method(request: SipRequest, policy: _Policy) -> SipResponse | None:
    if request.method in policy.allowed_methods:
        return None
    # §8.2.1: 405 for a method we know but do not serve, 501 for one we do not recognize
    status = 405 if request.method in KNOWN_METHODS else 501
    response = _reply(request, policy, status)
    response.headers.add("Allow", ", ".join(sorted(policy.allowed_methods)))
    return response


def _check_scheme(request: SipRequest, policy: _Policy) -> SipResponse | None:
    if request.uri.scheme.lower() in policy.supported_schemes:
        return None
    return _reply(request, policy, 416)  # §8.2.2.1 (RFC 4475 unkscm, novelsc)


def _check_duplicates(request: SipRequest, policy: _Policy) -> SipResponse | None:
    names = duplicated_single_headers(request)
    if not names:
        return None
    return _reply(request, policy, 400, f"Bad Request (duplicated {', '.join(names)})")  # multi01


def _check_require(request: SipRequest, policy: _Policy) -> SipResponse | None:
    if request.method == "CANCEL":
        return None  # §8.2.2.3: Require is ignored on CANCEL (and ACK, handled earlier)
    unsupported: list[str] = []
    seen: set[str] = set()
    for tag in request.headers.get_all("Require"):
        key = tag.lower()
        if key not in policy.supported_extensions and key not in seen:
            seen.add(key)
            unsupported.append(tag)  # echo the spelling the UAC used
    if not unsupported:
        return None
    response = _reply(request, policy, 420)
    response.headers.add("Unsupported", ", ".join(unsupported))
    return response


def _check_body(request: SipRequest, policy: _Policy) -> SipResponse | None:
    if not request.body:
        return None
    content_type = request.content_type
    if content_type is None:
        return _reply(request, policy, 400, "Bad Request (body without Content-Type)")  # §20.15
    encodings = [e for e in request.header_tokens("Content-Encoding") if e]
    type_ok = content_type in policy.accepted_content_types
    encoding_ok = all(e in policy.accepted_encodings for e in encodings)
    if type_ok and encoding_ok:
        return None
    if _disposition_handling(request) == "optional":
        return None  # §20.11: a body marked optional may be ignored instead of refused
    response = _reply(request, policy, 415)  # §8.2.3 (RFC 4475 invut)
    if not type_ok:
        response.headers.add("Accept", ", ".join(sorted(policy.accepted_content_types)))
    if not encoding_ok:
        response.headers.add("Accept-Encoding", ", ".join(sorted(policy.accepted_encodings)))
    return response


def _disposition_handling(request: SipRequest) -> str | None:
    value = request.headers.get("Content-Disposition")
    if value is None:
        return None
    disposition, _, params = value.partition(";")
    if not is_token(disposition.strip(WSP)):
        raise ParseError(f"malformed Content-Disposition {value[:60]!r}")
    handling = param_value(_header_params("Content-Disposition", params), "handling")
    return handling.lower() if handling else None


def _header_params(header: str, text: str) -> tuple[tuple[str, str | None], ...]:
    try:
        return parse_params(text)
    except ParseError as exc:  # name the header: the 400's reason phrase is all the UAC sees
        raise ParseError(f"malformed {header}: {exc}") from exc


_QVALUE_RE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)\Z")


def _check_accept(request: SipRequest, policy: _Policy) -> SipResponse | None:
    # only requests whose answer must carry our body: INVITE, and an UPDATE carrying an offer
    if request.method != "INVITE" and not (request.method == "UPDATE" and request.body):
        return None
    if not request.headers.get_lines("Accept"):
        return None  # absent Accept means application/sdp (§20.1)
    for item in request.headers.get_all("Accept"):  # an empty Accept accepts nothing (§20.1)
        media, _, param_text = item.partition(";")
        kind, slash, sub = media.strip(WSP).lower().partition("/")
        if not slash or not is_token(kind) or not is_token(sub):
            raise ParseError(f"malformed Accept value {item[:60]!r}")
        q = param_value(_header_params("Accept", param_text), "q")
        if q is not None and not _QVALUE_RE.match(q):
            raise ParseError(f"malformed Accept q-value {q[:20]!r}")
        if q is not None and float(q) == 0:
            continue
        want_kind, _, want_sub = policy.answer_content_type.partition("/")
        if kind in ("*", want_kind) and sub in ("*", want_sub):
            return None
    # RFC 4475 §3.3.15 (sdp01): 406 with a 399 Warning, since we cannot answer in those types
    response = _reply(request, policy, 406, "Not Acceptable")
    response.headers.add("Warning", f'399 {policy.agent} "cannot answer in any type listed in Accept"')
    return response


_CHECKS: tuple[Callable[[SipRequest, _Policy], SipResponse | None], ...] = (
    _check_method,
    _check_scheme,
    _check_duplicates,
    _check_require,
    _check_body,
    _check_accept,
)


def _reply(request: SipRequest, policy: _Policy, status: int, reason: str | None = None) -> SipResponse:
    return make_response(request, status, reason, to_tag=policy.to_tag)


def check_response(response: SipResponse) -> str | None:
    """Why a UAC must drop ``response`` (a short reason for the log), or None to process it.

    RFC 3261 §8.1.3.3: a response with more than one Via was not meant for us (RFC 4475 bcast,
    whose second Via points at the broadcast address).
    """
    if len(response.headers.get_all("Via")) != 1:
        return "response does not carry exactly one Via"
    return None


def max_forwards_for_next_hop(request: SipRequest, *, default: int = 70) -> int | None:
    """Max-Forwards for a request the B2BUA derives from ``request``; None means answer 483.

    Not used for requests addressed to us (those are never refused with 483, see the module
    docstring); only when an incoming request is effectively forwarded (RFC 7332 §4.1).
    """
    value = request.max_forwards
    if value is None:
        return default
    return value - 1 if value > 0 else None


# --- a 400 from bytes that do not parse ---------------------------------------------------------

_LOOSE_VIA_RE = re.compile(r"[Ss][Ii][Pp][ \t]*/[ \t]*[^/ \t]+[ \t]*/[ \t]*[^ \t;,]+[ \t]+[^ \t;,]")
_LOOSE_CSEQ_RE = re.compile(r"[ \t]*[0-9]+[ \t]+[A-Za-z0-9\-.!%*_+`'~]+[ \t]*\Z")
_LOOSE_LINE_SPLIT_RE = re.compile(r"\r\n|\n|\r")
_COPIED = ("Via", "From", "To", "Call-ID", "CSeq")


def error_response_for_unparsable(
    data: bytes,
    error: ParseError,
    *,
    to_tag: str | None = None,
    agent: str = "ccdaemon",
    limits: Limits = DEFAULT_LIMITS,
) -> bytes | None:
    """A best-effort error response to bytes :func:`parse_message` refused, or None.

    Scans the head leniently for the request line, Via, From, To, Call-ID and CSeq.  Returns a
    response (status ``error.status_hint`` when it is a 4xx-6xx, else 400) copying those
    headers, with the error text in a ``Warning: 399`` header (sanitized, bounded), when the
    bytes look like a request other than ACK and carry at least a Via and a CSeq (enough for
    the UAC to match the response to its transaction, RFC 3261 §17.1.3).  Returns None for
    responses and hopeless garbage: those are dropped.  Never raises.
    """
    lines = _loose_lines(data, limits)
    if not lines or not _looks_like_request(lines[0]):
        return None
    copied: dict[str, list[str]] = {name: [] for name in _COPIED}
    for line in lines[1 : limits.max_headers + 1]:
        name, colon, value = line.partition(":")
        name = name.rstrip(WSP)
        if not colon or not is_token(name) or len(value) > limits.max_header_line:
            continue
        canonical = canonical_name(name)
        if canonical in copied:
            copied[canonical].append(_sanitize(value.strip(WSP), limits.max_header_line))
    vias = [v for v in copied["Via"] if v]
    cseqs = copied["CSeq"]
    if not vias or not _LOOSE_VIA_RE.match(vias[0]) or not cseqs or not _LOOSE_CSEQ_RE.match(cseqs[0]):
        return None
    status = error.status_hint if 400 <= error.status_hint <= 699 else 400
    out = [f"SIP/2.0 {status} {reason_phrase(status)}"]
    out.extend(f"Via: {via}" for via in vias)
    for name in ("From", "To", "Call-ID", "CSeq"):
        if copied[name]:
            value = copied[name][0]
            if name == "To" and to_tag is not None and is_token(to_tag) and _lacks_tag(value):
                value = f"{value};tag={to_tag}"
            out.append(f"{name}: {value}")
    warn_agent = agent if is_token(agent) else "ccdaemon"
    text = _sanitize(str(error), _MAX_TEXT).replace("\\", "\\\\").replace('"', '\\"')
    out.append(f'Warning: 399 {warn_agent} "{text}"')
    out.append("Content-Length: 0")
    return ("\r\n".join(out) + "\r\n\r\n").encode("utf-8", errors="replace")


def _loose_lines(data: bytes, limits: Limits) -> list[str]:
    """Unfolded head lines, decoding whatever UTF-8 is there; bounded by ``limits``."""
    data = data[: limits.max_message].lstrip(b"\r\n")
    found = find_head_end(data)
    head = data[: found[0]] if found else data
    lines: list[str] = []
    for raw in _LOOSE_LINE_SPLIT_RE.split(head.decode("utf-8", errors="replace")):
        if raw[:1] in (" ", "\t") and len(lines) > 1:
            if len(lines[-1]) <= limits.max_header_line:
                lines[-1] = lines[-1].rstrip(WSP) + " " + raw.strip(WSP)
        else:
            lines.append(raw)
        if len(lines) > limits.max_headers + 1:
            break
    return lines


def _looks_like_request(line: str) -> bool:
    fields = split_wsp(line)
    return (
        len(fields) >= 3
        and is_token(fields[0])
        and fields[0] != "ACK"  # never answer an ACK, even a broken one
        and fields[-1][:4].upper() == "SIP/"
        and line[:4].upper() != "SIP/"
    )


def _lacks_tag(to_value: str) -> bool:
    try:
        return parse_name_addr(to_value).tag is None
    except ParseError:
        return False  # a To we cannot parse is copied untouched


def _sanitize(text: str, limit: int = _MAX_TEXT) -> str:
    """Printable, single-line and bounded: safe in a reason phrase, quoted string or header."""
    cleaned = "".join(" " if c < " " or "\x7f" <= c <= "\x9f" else c for c in text[: limit + 1])
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


__all__ = [
    "DEFAULT_SCHEMES",
    "IDENTITY_ONLY",
    "check_request",
    "check_response",
    "error_response_for_unparsable",
    "max_forwards_for_next_hop",
]
