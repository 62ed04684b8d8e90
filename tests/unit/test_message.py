"""SIP messages: parse / serialize properties, fuzzing, size limits and make_response.

Properties (hypothesis, deterministic):
  (a) any bytes -> parse_message returns or raises ParseError, never anything else
      (datagram and stream mode); whatever parses is fully readable and re-serializes stably;
  (b) generated well-formed requests and responses parse to what was generated, and
      parse -> to_bytes -> parse gives an equal message;
  (c) mutated RFC 4475 messages never crash the parser, the UAS checks or the error responder;
  (d) size limits raise MessageTooLarge (status_hint 513).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccdaemon.sip import message as message_module
from ccdaemon.sip.errors import LocalProtocolError, MessageTooLarge, ParseError
from ccdaemon.sip.grammar import quote
from ccdaemon.sip.headers import Headers
from ccdaemon.sip.message import (
    Limits,
    SipRequest,
    SipResponse,
    content_length_of_head,
    duplicated_single_headers,
    make_response,
    parse_message,
)
from ccdaemon.sip.uri import NameAddr, SipUri, parse_uri
from ccdaemon.sip.validate import check_request, error_response_for_unparsable

from .test_rfc4475 import POLICY, assert_fully_readable
from .test_uri import (
    absolute_uris,
    display_names,
    header_params,
    property_settings,
    sip_uris,
    tokens,
    via_elements,
)

PROPERTY = property_settings(400)
DATA = Path(__file__).resolve().parents[1] / "data" / "rfc4475"
VALID = sorted(
    p
    for p in DATA.glob("*.dat")
    if p.name
    in {
        "wsinv.dat",
        "intmeth.dat",
        "esc01.dat",
        "escnull.dat",
        "esc02.dat",
        "lwsdisp.dat",
        "longreq.dat",
        "dblreq.dat",
        "semiuri.dat",
        "transports.dat",
        "mpart01.dat",
        "unreason.dat",
        "noreason.dat",
    }
)
ALL_CASES = sorted(DATA.glob("*.dat"))


def exercise(data: bytes, *, datagram: bool = True, limits: Limits = message_module.DEFAULT_LIMITS) -> None:
    """Everything the daemon does with untrusted bytes; only ParseError may come out of parsing.

    Calls the private ``_parse`` so the defensive catch-all in ``parse_message`` cannot hide a
    stray ValueError from the property tests.
    """
    try:
        message = message_module._parse(data, limits, datagram)
    except ParseError as exc:
        assert isinstance(exc.status_hint, int)
        assert len(str(exc)) < 400  # error texts quote peer input, but boundedly (they get logged)
        wire = error_response_for_unparsable(data, exc, to_tag="t0")
        assert wire is None or wire.startswith(b"SIP/2.0 ")
        return
    assert_fully_readable(message)
    again = parse_message(message.to_bytes())
    assert again == message
    assert again.to_bytes() == message.to_bytes()
    if isinstance(message, SipRequest):
        response = check_request(message, **POLICY, to_tag="t0")
        if response is not None:
            assert parse_message(response.to_bytes()) == response


# --- (a) arbitrary bytes -----------------------------------------------------------------------

_FRAGMENTS = [
    "INVITE",
    "OPTIONS",
    "ACK",
    "SIP/2.0",
    "SIP/2.0 200 OK",
    " ",
    "  ",
    "\t",
    "\r\n",
    "\n",
    "\r",
    "\r\n ",
    "\r\n\r\n",
    ":",
    ";",
    ",",
    "=",
    "<",
    ">",
    '"',
    "\\",
    "@",
    "%",
    "%4",
    "%41",
    "sip:",
    "sips:",
    "tel:",
    "[",
    "]",
    "::1",
    "Via",
    "v",
    "From",
    "f",
    "To",
    "t",
    "Call-ID",
    "i",
    "CSeq",
    "Content-Length",
    "l",
    "Max-Forwards",
    "Contact",
    "m",
    "Route",
    "Require",
    "Content-Type",
    "Date",
    "Expires",
    "tag",
    "branch",
    "z9hG4bK",
    "rport",
    "ttl",
    "SIP/2.0/UDP",
    "h.example.com",
    "5060",
    "0",
    "1",
    "99999999999",
    "-1",
    "²",
    "٣",
    "\x00",
    "\x7f",
    "é",
    "\udcff",
    "*",
    "?",
    "&",
    "a",
    "b",
]
sipish_bytes = st.lists(st.sampled_from(_FRAGMENTS), max_size=60).map(
    lambda parts: "".join(parts).encode("utf-8", errors="surrogateescape")
)


@PROPERTY
@given(st.binary(max_size=600))
def test_any_bytes_parse_or_parse_error(data: bytes) -> None:
    exercise(data)
    exercise(data, datagram=False)


@PROPERTY
@given(sipish_bytes)
def test_sip_like_bytes_parse_or_parse_error(data: bytes) -> None:
    exercise(data)
    exercise(data, datagram=False)


_PREFIX = [
    "Via: SIP/2.0/UDP h;branch=z9hG4bK1",
    "From: <sip:a@h>;tag=1",
    "To: <sip:b@h>",
    "Call-ID: c1",
    "CSeq: 1 INVITE",
]


_NAMES = [
    "Via",
    "v",
    "From",
    "f",
    "To",
    "t",
    "Call-ID",
    "i",
    "CSeq",
    "Contact",
    "m",
    "Route",
    "Record-Route",
    "Max-Forwards",
    "Expires",
    "Content-Length",
    "l",
    "Content-Type",
    "c",
    "Require",
    "Supported",
    "Allow",
    "Accept",
    "Content-Encoding",
    "Content-Disposition",
    "Date",
    "Warning",
    "X-Ext",
]
_noise = st.lists(st.sampled_from(_FRAGMENTS), max_size=12).map("".join)
header_lines = st.lists(
    st.builds(
        lambda n, sep, v: f"{n}{sep}{v}\r\n",
        st.sampled_from(_NAMES),
        st.sampled_from([":", ": ", " : "]),
        _noise,
    ),
    max_size=5,
).map("".join)


@PROPERTY
@given(st.one_of(header_lines, _noise), st.sampled_from([None, *_PREFIX]))
def test_sip_like_head_with_valid_prefix(tail: str, drop: str | None) -> None:
    """A valid head (minus one required header, sometimes) followed by SIP-ish header lines."""
    head = "INVITE sip:a@h SIP/2.0\r\n" + "".join(f"{line}\r\n" for line in _PREFIX if line != drop)
    data = (head + tail + "\r\n\r\n").encode("utf-8", errors="surrogateescape")
    exercise(data)
    exercise(data, datagram=False)


@pytest.mark.parametrize("value", ["", " ", ",", " , ", ";", "<>", '""', "0", "*"])
@pytest.mark.parametrize(
    "name",
    [
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Route",
        "Max-Forwards",
        "Expires",
        "Content-Length",
        "Require",
        "Accept",
        "Date",
        "Content-Type",
    ],
)
def test_degenerate_values_of_every_structured_header(name: str, value: str) -> None:
    kept = "".join(f"{line}\r\n" for line in _PREFIX if not line.startswith(name))
    head = "INVITE sip:a@h SIP/2.0\r\n" + kept
    exercise(f"{head}{name}:{value}\r\n\r\n".encode())


# --- (b) generated well-formed messages round trip ---------------------------------------------

_COMPACT = {
    "Via": "v",
    "From": "f",
    "To": "t",
    "Call-ID": "i",
    "Contact": "m",
    "Content-Type": "c",
    "Content-Length": "l",
    "Subject": "s",
    "Supported": "k",
}


@st.composite
def header_names(draw: st.DrawFn, name: str) -> str:
    """A spelling of ``name``: canonical, compact, or in random case."""
    choice = draw(st.sampled_from(["canonical", "compact", "case"]))
    if choice == "compact" and name in _COMPACT:
        return _COMPACT[name]
    if choice == "case":
        return "".join(c.upper() if draw(st.booleans()) else c.lower() for c in name)
    return name


@st.composite
def folded(draw: st.DrawFn, value: str) -> str:
    """``value`` with some single spaces turned into line folds (CRLF + white space)."""
    out = []
    for i, c in enumerate(value):
        neighbours = value[i - 1 : i] + value[i + 1 : i + 2]
        single = c == " " and len(neighbours) == 2 and " " not in neighbours and "\t" not in neighbours
        if single and i > 0 and draw(st.integers(0, 3)) == 0:
            out.append(draw(st.sampled_from(["\r\n ", "\r\n\t", "\r\n   "])))
        else:
            out.append(c)
    return "".join(out)


_text = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=20)


@st.composite
def generated_messages(draw: st.DrawFn) -> tuple[bytes, dict[str, object]]:
    """Bytes of a well-formed request or response, and the facts the parse must reproduce."""
    facts: dict[str, object] = {}
    is_request = draw(st.booleans())
    method = draw(st.one_of(st.sampled_from(["INVITE", "OPTIONS", "BYE", "REFER", "NOTIFY"]), tokens))
    if is_request:
        uri = draw(st.one_of(sip_uris(with_headers=False), absolute_uris))
        start = f"{method} {uri} SIP/2.0"
        facts.update(method=method, uri=str(uri))
    else:
        status = draw(st.integers(100, 699))
        reason = draw(_text).strip(" \t")
        start = f"SIP/2.0 {status} {reason}"
        facts.update(status=status, reason=reason)

    vias = draw(st.lists(via_elements(), min_size=1, max_size=4))
    from_ = NameAddr(uri=draw(sip_uris()), display_name=draw(display_names), params=(("tag", draw(tokens)),))
    to = NameAddr(
        uri=draw(st.one_of(sip_uris(), absolute_uris)),
        display_name=draw(display_names),
        params=draw(header_params),
    )
    call_id = draw(tokens) + draw(st.sampled_from(["", "@" + "h.example.com"]))
    seq = draw(st.integers(0, 2**31 - 1))
    contacts = draw(
        st.lists(
            st.builds(NameAddr, uri=sip_uris(), display_name=display_names, params=header_params), max_size=3
        )
    )
    body = draw(st.one_of(st.just(b""), st.binary(max_size=200)))
    extension = draw(
        st.lists(
            st.tuples(tokens.map(lambda t: "X-" + t), _text.map(str.strip)),
            max_size=3,
            unique_by=lambda h: h[0].lower(),
        )
    )

    fields: list[tuple[str, str]] = []
    # several Via elements share a line now and then (comma-separated)
    i = 0
    while i < len(vias):
        take = draw(st.integers(1, len(vias) - i))
        fields.append(("Via", " , ".join(str(v) for v in vias[i : i + take])))
        i += take
    fields += [
        ("From", str(from_)),
        ("To", str(to)),
        ("Call-ID", call_id),
        ("CSeq", f"{seq} {method}"),
        ("Max-Forwards", str(draw(st.integers(0, 255)))),
    ]
    if contacts:
        fields.append(("Contact", ", ".join(str(c) for c in contacts)))
    fields += extension
    if body:
        content_type = draw(st.sampled_from(["application/sdp", "text/plain;charset=utf-8"]))
        fields.append(("Content-Type", content_type))
    order = draw(st.permutations(range(len(fields))))
    # Via lines must keep their relative order; everything else may move
    via_lines = iter([f for f in fields if f[0] == "Via"])
    shuffled = [fields[k] for k in order]
    shuffled = [next(via_lines) if name == "Via" else (name, value) for name, value in shuffled]

    lines = [start]
    for name, value in shuffled:
        sep = draw(st.sampled_from([": ", ":", " : ", ":\t"]))
        lines.append(f"{draw(header_names(name))}{sep}{draw(folded(value))}")
    if draw(st.booleans()) or body:
        lines.append(f"{draw(header_names('Content-Length'))}: {len(body)}")
    facts.update(
        vias=vias,
        from_=from_,
        to=to,
        call_id=call_id,
        seq=seq,
        contacts=contacts,
        body=body,
        extension=extension,
    )
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body
    return data, facts


@property_settings(150)
@given(generated_messages())
def test_generated_messages_parse_and_round_trip(generated: tuple[bytes, dict[str, object]]) -> None:
    data, facts = generated
    message = parse_message(data)
    if "method" in facts:
        assert isinstance(message, SipRequest)
        assert message.method == facts["method"] and str(message.uri) == facts["uri"]
    else:
        assert isinstance(message, SipResponse)
        assert (message.status, message.reason) == (facts["status"], facts["reason"])
    assert message.vias == facts["vias"]
    assert message.from_ == facts["from_"]
    assert message.to == facts["to"]
    assert message.call_id == facts["call_id"] and message.cseq.seq == facts["seq"]
    assert message.contacts == facts["contacts"]
    assert message.body == facts["body"]
    for name, value in facts["extension"]:  # type: ignore[attr-defined]
        assert message.headers.get(name) == value

    wire = message.to_bytes()
    again = parse_message(wire)
    assert again == message
    assert again.to_bytes() == wire
    assert parse_message(wire, datagram=False) == message


# --- (c) mutated RFC 4475 messages ------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    source = draw(st.one_of(st.sampled_from(VALID), st.sampled_from(ALL_CASES)))
    data = bytearray(source.read_bytes())
    head_end = data.find(b"\r\n\r\n")
    # mostly the head, where the parser lives; truncation rarely (it mostly yields "no empty line")
    kinds = ["flip", "set", "set", "insert", "insert", "delete", "duplicate", "duplicate", "truncate"]
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        kind = draw(st.sampled_from(kinds))
        limit = head_end if 0 < head_end < len(data) and kind != "truncate" else len(data)
        pos = draw(st.integers(0, max(0, min(limit, len(data)) - 1)))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[pos] = draw(st.sampled_from(b'\r\n \t:;,<>"\\%@=\x00\xff0'))
        elif kind == "insert":
            inserts = [b"\r\n", b" ", b";", b",", b'"', b"\r\n\r\n", b"%", b"\xc3"]
            data[pos:pos] = draw(st.sampled_from(inserts))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del data[pos:]
        else:  # duplicate a line
            start = data.rfind(b"\n", 0, pos) + 1
            end = data.find(b"\n", pos)
            if end > start:
                data[start:start] = data[start : end + 1]
    return bytes(data)


@PROPERTY
@given(mutated())
def test_mutated_rfc4475_messages_never_crash(data: bytes) -> None:
    exercise(data)
    exercise(data, datagram=False)


# --- (d) size limits ---------------------------------------------------------------------------

_SMALL = Limits(max_message=2_000, max_header_line=200, max_headers=12, max_body=500)


def _request(extra: str = "", body: bytes = b"") -> bytes:
    return (
        "OPTIONS sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n"
        f"To: <sip:b@h>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


@pytest.mark.parametrize(
    "data",
    [
        _request("X-Pad: " + "a" * 2_000 + "\r\n"),  # whole message
        _request("X-Pad: " + "a" * 300 + "\r\n"),  # one line
        _request("X-Pad: a\r\n" + " b\r\n" * 150),  # one folded header growing past the line limit
        _request("".join(f"X-{i}: v\r\n" for i in range(20))),  # too many header lines
        _request(body=b"x" * 600),  # body
        _request().replace(b"Content-Length: 0", b"Content-Length: 999999999999999999999"),
    ],
    ids=["message", "line", "folded", "headers", "body", "content-length"],
)
def test_size_limits(data: bytes) -> None:
    for datagram in (True, False):
        with pytest.raises(MessageTooLarge) as info:
            parse_message(data, limits=_SMALL, datagram=datagram)
        assert info.value.status_hint == 513


@PROPERTY
@given(st.integers(0, 40), st.integers(0, 400), st.integers(0, 700))
def test_limits_are_exact(headers: int, line: int, body: int) -> None:
    extra = "".join(f"X-{i}: v\r\n" for i in range(headers)) + f"X-Line: {'a' * line}\r\n"
    data = _request(extra, b"b" * body)
    count = headers + 7  # Via, From, To, Call-ID, CSeq, X-Line, Content-Length
    too_large = len(data) > 2_000 or len("X-Line: ") + line > 200 or count > 12 or body > 500
    try:
        parse_message(data, limits=_SMALL)
    except MessageTooLarge:
        assert too_large
    else:
        assert not too_large


def test_oversize_digit_strings_are_parse_errors() -> None:
    for header in ("Max-Forwards", "Expires", "Min-Expires"):
        with pytest.raises(ParseError):
            parse_message(_request(f"{header}: {'9' * 5_000}\r\n"))
    with pytest.raises(ParseError):  # int() of > 4300 digits would raise ValueError
        parse_message(_request("CSeq: " + "1" * 5_000 + " OPTIONS\r\n"))
    assert parse_message(_request("Max-Forwards: " + "0" * 300 + "70\r\n")).max_forwards == 70


# --- parser details ----------------------------------------------------------------------------


def test_content_length_is_normalized_and_serialized_in_place() -> None:
    data = _request("Subject: x\r\n").replace(b"Content-Length: 0", b"l:   0004") + b"bodyEXTRA"
    message = parse_message(data)
    assert message.body == b"body" and message.headers.get("Content-Length") == "4"
    assert [n for n, _ in message.headers][-1] == "Content-Length"
    assert message.to_bytes().endswith(b"Content-Length: 4\r\n\r\nbody")
    built = SipRequest(
        "OPTIONS", parse_uri("sip:a@h"), Headers([("Content-Length", "99"), ("Subject", "s")]), b"abc"
    )
    assert built.to_bytes().startswith(b"OPTIONS sip:a@h SIP/2.0\r\nContent-Length: 3\r\nSubject: s")


def test_stream_mode_is_strict_about_length() -> None:
    with pytest.raises(ParseError, match="missing Content-Length"):
        parse_message(_request().replace(b"Content-Length: 0\r\n", b""), datagram=False)
    with pytest.raises(ParseError, match="after the body"):
        parse_message(_request() + b"junk", datagram=False)
    assert parse_message(_request().replace(b"Content-Length: 0\r\n", b"") + b"rest").body == b"rest"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (_request("X: a\rb\r\n"), "bare CR"),
        (_request("X: a\r\n b\rc\r\n"), "bare CR"),  # inside a continuation line
        (_request("X: a\x00b\r\n"), "control character"),
        (_request("X: a\x1bb\r\n"), "control character"),
        (_request("X: a\r\n").replace(b"X: a", b"X: \xff"), "not UTF-8"),
        (b"\r\n\r\n", "no empty line"),  # keep-alives only
        (_request().replace(b"Via: SIP/2.0/UDP h;branch=z9hG4bK1", b"Via:"), "empty Via"),
        (_request().replace(b"Via: SIP/2.0/UDP h;branch=z9hG4bK1", b"Via: ,"), "empty Via"),
        (b" OPTIONS sip:a@h SIP/2.0\r\n\r\n", None),
        (_request().replace(b"SIP/2.0\r\n", b"SIP/2.0\r\n continued\r\n", 1), "continuation line"),
        (_request().replace(b"OPTIONS sip", b"options sip"), "CSeq method"),
    ],
)
def test_malformed_heads(data: bytes, match: str | None) -> None:
    with pytest.raises(ParseError, match=match):
        parse_message(data)


def test_quoted_pair_controls_are_allowed() -> None:
    message = parse_message(_request().replace(b"To: <sip:b@h>", b'To: "a\\\x00b" <sip:b@h>'))
    assert message.to.display_name == "a\x00b"


def test_start_lines() -> None:
    response = parse_message(_request().replace(b"OPTIONS sip:a@h SIP/2.0", b"sip/2.0 180"))
    assert isinstance(response, SipResponse) and (response.status, response.reason) == (180, "")
    assert response.to_bytes().startswith(b"SIP/2.0 180 \r\n")
    assert response.copy().reason == "" and response.copy() == response
    request = parse_message(_request().replace(b"SIP/2.0\r\n", b"sip/2.0\r\n", 1))
    assert isinstance(request, SipRequest) and request.to_bytes().startswith(b"OPTIONS sip:a@h SIP/2.0\r\n")
    with pytest.raises(ParseError) as info:
        parse_message(_request().replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1))
    assert info.value.status_hint == 505
    with pytest.raises(ParseError) as info:
        parse_message(_request().replace(b"OPTIONS sip", b"FOO sip"))
    assert info.value.status_hint == 501  # unknown method + CSeq mismatch (RFC 4475 mismatch02)
    assert SipResponse(486).reason == "Busy Here"


def test_serializer_refuses_injection() -> None:
    response = SipResponse(200, "OK\r\nX-Injected: 1")
    with pytest.raises(LocalProtocolError):
        response.to_bytes()
    with pytest.raises(LocalProtocolError):
        Headers([("Subject", "a\nb")])
    with pytest.raises(LocalProtocolError):
        Headers().add("Bad Name", "v")


def test_content_length_of_head() -> None:
    assert content_length_of_head(b"INVITE x SIP/2.0\r\nl: 12") == 12
    assert content_length_of_head(b"INVITE x SIP/2.0\r\nContent-Length:\r\n 7") == 7
    assert content_length_of_head(b"INVITE x SIP/2.0\r\nSubject: l: 5") is None
    assert content_length_of_head(b"INVITE x SIP/2.0\r\nl: 5\r\nContent-Length: 5") == 5
    for bad in (b"l: -1", b"l: five", b"l: 1\r\nl: 2", b"l: \xd9\xa3"):
        with pytest.raises(ParseError):
            content_length_of_head(b"INVITE x SIP/2.0\r\n" + bad)


def test_duplicated_single_headers() -> None:
    message = parse_message(
        _request("Call-ID: c2\r\nExpires: 5\r\nExpires: 6\r\nContact: <sip:x@h>\r\nContact: <sip:y@h>\r\n")
    )
    assert duplicated_single_headers(message) == ["Call-ID", "Expires"]


# --- make_response -----------------------------------------------------------------------------

INVITE = (
    b"INVITE sip:bob@h SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP proxy;branch=z9hG4bKp, SIP/2.0/UDP pc;branch=z9hG4bKa\r\n"
    b"Via: SIP/2.0/TCP origin;branch=z9hG4bKo\r\n"
    b'From: "Alice" <sip:alice@h>;tag=a1\r\nTo: Bob <sip:bob@h>\r\nCall-ID: call-1@h\r\n'
    b"CSeq: 314 INVITE\r\nTimestamp: 54\r\nMax-Forwards: 70\r\nContact: <sip:alice@pc>\r\n"
    b"Subject: hi\r\nContent-Length: 0\r\n\r\n"
)


def _invite() -> SipRequest:
    request = parse_message(INVITE)
    assert isinstance(request, SipRequest)
    return request


def test_make_response_copies_the_transaction_headers() -> None:
    request = _invite()
    response = make_response(request, 180, to_tag="b9")
    assert response.start_line() == "SIP/2.0 180 Ringing"
    assert response.headers.get_lines("Via") == request.headers.get_lines("Via")
    assert response.headers.get("From") == request.headers.get("From")
    assert response.headers.get("To") == "Bob <sip:bob@h>;tag=b9" and response.to.tag == "b9"
    assert response.call_id == "call-1@h" and response.cseq == request.cseq
    assert [n for n, _ in response.headers] == ["Via", "Via", "From", "To", "Call-ID", "CSeq"]
    assert parse_message(response.to_bytes()) == response


def test_make_response_keeps_an_existing_tag() -> None:
    request = parse_message(INVITE.replace(b"To: Bob <sip:bob@h>", b"To: Bob <sip:bob@h>;tag=old"))
    assert isinstance(request, SipRequest)
    assert make_response(request, 200, to_tag="new").to.tag == "old"


def test_make_response_100_has_no_tag_and_echoes_timestamp() -> None:
    trying = make_response(_invite(), 100, to_tag="b9")
    assert trying.to.tag is None and trying.reason == "Trying"
    assert trying.headers.get("Timestamp") == "54"
    assert make_response(_invite(), 180).headers.get("Timestamp") is None


def test_make_response_without_tag_reason_and_body() -> None:
    response = make_response(_invite(), 488, "Not Here", body=b"v=0\r\n", content_type="application/sdp")
    assert response.to.tag is None and response.reason == "Not Here"
    assert response.content_type == "application/sdp" and response.body == b"v=0\r\n"
    assert b"Content-Length: 5\r\n" in response.to_bytes()
    with pytest.raises(LocalProtocolError):
        make_response(_invite(), 200, to_tag="bad tag")


def test_make_response_for_addr_spec_to() -> None:
    request = parse_message(INVITE.replace(b"To: Bob <sip:bob@h>", b"t: sip:bob@h;user=phone"))
    assert isinstance(request, SipRequest)
    response = make_response(request, 200, to_tag="z")
    assert response.to.tag == "z" and response.to.param("user") == "phone"


def test_message_equality_and_copy() -> None:
    request = _invite()
    copy = request.copy()
    assert copy == request and copy is not request and copy.headers is not request.headers
    copy.headers.add("X", "1")
    assert copy != request
    assert request != make_response(request, 200)
    # Content-Length restates the body: it does not make two messages different
    headers = Headers([h for h in request.headers if h[0] != "Content-Length"])
    without = SipRequest(request.method, request.uri, headers)
    assert without == request


def test_display_names_survive_serialization() -> None:
    for name in ('Say "hi"', "back\\slash", "nul\x00", "Bob Smith", "", "  padded "):
        address = NameAddr(uri=SipUri(host="h", user="u"), display_name=name)
        assert parse_message(_request().replace(b"To: <sip:b@h>", f"To: {address}".encode())).to == address
    assert quote("a") == '"a"'
