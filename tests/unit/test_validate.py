"""UAS request checks (RFC 3261 §8.2), response acceptance and the 400 for unparsable bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccdaemon.sip.errors import MessageTooLarge, ParseError
from ccdaemon.sip.message import SipRequest, SipResponse, parse_message
from ccdaemon.sip.validate import (
    check_request,
    check_response,
    error_response_for_unparsable,
    max_forwards_for_next_hop,
)

from .test_message import mutated, sipish_bytes
from .test_rfc4475 import POLICY
from .test_uri import property_settings

PROPERTY = property_settings(300)


def req(
    method: str = "INVITE",
    *,
    uri: str = "sip:bob@h",
    extra: str = "",
    body: bytes = b"",
    content_type: str | None = "application/sdp",
) -> SipRequest:
    ctype = f"Content-Type: {content_type}\r\n" if body and content_type else ""
    data = (
        f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP pc;branch=z9hG4bKx\r\nFrom: <sip:a@h>;tag=a\r\n"
        f"To: <sip:bob@h>\r\nCall-ID: c@h\r\nCSeq: 7 {method}\r\nMax-Forwards: 70\r\n{extra}{ctype}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    message = parse_message(data)
    assert isinstance(message, SipRequest)
    return message


def check(request: SipRequest, **overrides: object) -> SipResponse | None:
    return check_request(request, **{**POLICY, "to_tag": "uas1", **overrides})  # type: ignore[arg-type]


def status(request: SipRequest, **overrides: object) -> int | None:
    response = check(request, **overrides)
    return None if response is None else response.status


SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


def test_plain_requests_pass() -> None:
    assert check(req(body=SDP)) is None
    assert check(req("OPTIONS")) is None
    assert check(req("BYE", extra="Require: Replaces\r\n")) is None  # extensions compare case-insensitively


def test_405_and_501_carry_allow() -> None:
    response = check(req("REGISTER"))
    assert response is not None and response.status == 405 and response.reason == "Method Not Allowed"
    assert response.headers.get_all("Allow") == sorted(POLICY["allowed_methods"])
    assert response.to.tag == "uas1"
    unknown = check(req("FROB"))
    assert unknown is not None and unknown.status == 501 and unknown.headers.get("Allow")
    assert status(req("invite")) == 501  # methods are case-sensitive


def test_ack_is_never_answered() -> None:
    assert check(req("ACK", uri="tel:+1", extra="Require: foo\r\n"), allowed_methods=frozenset()) is None


def test_416_for_request_uri_scheme_only() -> None:
    assert status(req(uri="tel:+15551234")) == 416
    assert status(req(uri="tel:+15551234"), supported_schemes=frozenset({"sip", "tel"})) is None
    assert status(req(uri="SIPS:bob@h")) is None
    to_tel = parse_message(req().to_bytes().replace(b"To: <sip:bob@h>", b"To: <tel:+1555>"))
    assert isinstance(to_tel, SipRequest) and check(to_tel) is None  # RFC 3261 §8.2.2.1


def test_400_names_duplicated_headers() -> None:
    response = check(req(extra="Call-ID: other@h\r\nMax-Forwards: 5\r\n"))
    assert response is not None and response.status == 400
    assert response.reason == "Bad Request (duplicated Call-ID, Max-Forwards)"


def test_420_lists_unknown_require_tags() -> None:
    response = check(
        req(extra="Require: timer, FooBar, foobar\r\nRequire: replaces, baz\r\nProxy-Require: nobody\r\n")
    )
    assert response is not None and response.status == 420
    assert response.headers.get_all("Unsupported") == ["FooBar", "baz"]
    assert status(req("CANCEL", extra="Require: foo\r\n")) is None  # ignored on CANCEL


def test_415_for_body_type_and_encoding() -> None:
    response = check(req(body=b"<xml/>", content_type="application/xml"))
    assert response is not None and response.status == 415
    assert response.headers.get_all("Accept") == sorted(POLICY["accepted_content_types"])
    assert response.headers.get("Accept-Encoding") is None
    gz = check(req(body=SDP, extra="Content-Encoding: gzip\r\n"))
    assert gz is not None and gz.status == 415 and gz.headers.get("Accept-Encoding") == "identity"
    assert gz.headers.get("Accept") is None
    assert status(req(body=SDP, extra="e: identity\r\n")) is None
    assert (
        status(
            req(body=SDP, extra="Content-Encoding: gzip\r\n"),
            accepted_encodings=frozenset({"identity", "GZIP"}),
        )
        is None
    )
    assert status(req(body=b"x", content_type="Application/SDP")) is None


def test_optional_bodies_and_missing_type() -> None:
    optional = "Content-Disposition: render;handling=optional\r\n"
    assert status(req(body=b"<x/>", content_type="application/x-unknown", extra=optional)) is None
    required = "Content-Disposition: render;handling=required\r\n"
    assert status(req(body=b"<x/>", content_type="application/x-unknown", extra=required)) == 415
    no_type = check(req(body=SDP, content_type=None))
    assert no_type is not None and no_type.status == 400 and "Content-Type" in no_type.reason
    malformed = check(
        req(body=b"<x/>", content_type="application/x-unknown", extra="Content-Disposition: render;;\r\n")
    )
    assert malformed is not None and malformed.status == 400 and "Content-Disposition" in malformed.reason


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/sdp", None),
        ("*/*", None),
        ("application/*", None),
        ("text/plain, application/sdp", None),
        ("APPLICATION/SDP;level=1", None),
        ("application/sdp;q=0.5", None),
        ("text/nobodyKnowsThis", 406),
        ("application/sdp;q=0", 406),
        ("application/sdp;q=0.000, text/*", 406),
        ("", 406),
        ("application", 400),
        ("application/sdp;q=2", 400),
        ("application/sdp;q=x", 400),
        ("a/b;;", 400),
    ],
)
def test_accept_for_invite(accept: str, expected: int | None) -> None:
    response = check(req(body=SDP, extra=f"Accept: {accept}\r\n"))
    assert (None if response is None else response.status) == expected
    if expected == 406:
        assert response is not None and (response.headers.get("Warning") or "").startswith('399 ccdaemon "')
    # only requests whose answer carries our SDP care
    assert check(req("OPTIONS", extra=f"Accept: {accept}\r\n")) is None or expected == 400
    assert check(req("UPDATE", extra=f"Accept: {accept}\r\n")) is None


def test_order_follows_rfc3261_section_8_2() -> None:
    everything = "Require: nope\r\nCall-ID: dup@h\r\nAccept: text/x\r\n"
    request = req("REGISTER", uri="tel:+1", extra=everything, body=b"?", content_type="x/y")
    assert status(request) == 405
    request = req(uri="tel:+1", extra=everything, body=b"?", content_type="x/y")
    assert status(request) == 416
    request = req(extra=everything, body=b"?", content_type="x/y")
    assert status(request) == 400
    request = req(extra="Require: nope\r\nAccept: text/x\r\n", body=b"?", content_type="x/y")
    assert status(request) == 420
    request = req(extra="Accept: text/x\r\n", body=b"?", content_type="x/y")
    assert status(request) == 415
    assert status(req(extra="Accept: text/x\r\n", body=SDP)) == 406


def test_bad_policy_values_are_tamed() -> None:
    response = check(req("FOO"), to_tag="not a token", agent="two words")
    assert response is not None and response.to.tag is None


def test_check_response_drops_extra_vias() -> None:
    one = parse_message(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP me;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n"
        b"To: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n"
    )
    assert isinstance(one, SipResponse) and check_response(one) is None
    two = parse_message(one.to_bytes().replace(b"z9hG4bK1\r\n", b"z9hG4bK1, SIP/2.0/UDP 255.255.255.255\r\n"))
    assert isinstance(two, SipResponse) and check_response(two) is not None


def test_max_forwards_for_next_hop() -> None:
    assert max_forwards_for_next_hop(req()) == 69
    zero = parse_message(req().to_bytes().replace(b"Max-Forwards: 70", b"Max-Forwards: 0"))
    assert isinstance(zero, SipRequest) and max_forwards_for_next_hop(zero) is None
    assert check(zero) is None  # addressed to us: processed normally (RFC 4475 zeromf)
    none = parse_message(req().to_bytes().replace(b"Max-Forwards: 70\r\n", b""))
    assert isinstance(none, SipRequest) and max_forwards_for_next_hop(none, default=20) == 20


# --- error_response_for_unparsable ------------------------------------------------------------

BROKEN = (
    b"INVITE sip:bob@h SIP/2.0\r\nv: SIP/2.0/UDP pc:5060;branch=z9hG4bKx\r\n"
    b"Via: SIP/2.0/UDP proxy;branch=z9hG4bKp\r\nf: <sip:a@h>;tag=a\r\nt: Bob\r\n <sip:bob@h>\r\n"
    b"i: call@h\r\nCSeq: 9 INVITE\r\nContact: <broken\r\nl: 0\r\n\r\n"
)


def _error(data: bytes) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_message(data)
    return info.value


def test_error_response_copies_what_routes_it() -> None:
    wire = error_response_for_unparsable(BROKEN, _error(BROKEN), to_tag="e1")
    assert wire is not None
    reply = parse_message(wire)
    assert isinstance(reply, SipResponse) and reply.status == 400
    assert [v.host for v in reply.vias] == ["pc", "proxy"]
    assert reply.from_.tag == "a" and reply.to.tag == "e1" and reply.to.display_name == "Bob"
    assert reply.call_id == "call@h" and str(reply.cseq) == "9 INVITE"
    warning = reply.headers.get("Warning") or ""
    assert warning.startswith('399 ccdaemon "') and "'<broken'" in warning


def test_error_response_status_hint() -> None:
    assert (error_response_for_unparsable(BROKEN, MessageTooLarge("big")) or b"").startswith(
        b"SIP/2.0 513 Message Too Large\r\n"
    )
    assert (error_response_for_unparsable(BROKEN, ParseError("v", status_hint=505)) or b"").startswith(
        b"SIP/2.0 505 Version Not Supported\r\n"
    )
    for odd in (200, 99, 1000):
        assert (error_response_for_unparsable(BROKEN, ParseError("x", status_hint=odd)) or b"").startswith(
            b"SIP/2.0 400 "
        )


def test_error_response_keeps_an_existing_to_tag() -> None:
    data = BROKEN.replace(b"t: Bob\r\n <sip:bob@h>", b"t: <sip:bob@h>;tag=old")
    reply = parse_message(error_response_for_unparsable(data, _error(data), to_tag="new") or b"")
    assert reply.to.tag == "old"


def test_error_text_is_sanitized_and_bounded() -> None:
    nasty = ParseError('a "quoted" \\ back\r\nInjected: 1\x00\x7f\x85' + "x" * 1000)
    wire = error_response_for_unparsable(BROKEN, nasty)
    assert wire is not None
    warning = next(line for line in wire.split(b"\r\n") if line.startswith(b"Warning:"))
    assert b"\n" not in warning and b"\x00" not in warning and len(warning) < 220
    assert warning.endswith(b'..."') and b'\\"quoted\\" \\\\ back' in warning
    reply = parse_message(wire)
    assert reply.headers.get("Injected") is None


@pytest.mark.parametrize(
    "data",
    [
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: 1 INVITE\r\n\r\n",  # a response
        BROKEN.replace(b"INVITE sip:bob@h SIP/2.0", b"ACK sip:bob@h SIP/2.0"),  # never answer ACK
        BROKEN.replace(b"v: SIP/2.0/UDP pc:5060;branch=z9hG4bKx\r\n", b"").replace(
            b"Via: SIP/2.0/UDP proxy;branch=z9hG4bKp\r\n", b""
        ),  # no Via: nowhere to send
        BROKEN.replace(b"CSeq: 9 INVITE\r\n", b""),  # nothing to match a transaction with
        BROKEN.replace(b"CSeq: 9 INVITE", b"CSeq: nine INVITE"),
        BROKEN.replace(b"v: SIP/2.0/UDP pc:5060", b"v: garbage"),
        BROKEN.replace(b"INVITE sip:bob@h SIP/2.0", b"INVITE sip:bob@h"),  # no version: not SIP
        b"",
        b"\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello on 5060
    ],
)
def test_no_error_response_for_hopeless_input(data: bytes) -> None:
    assert error_response_for_unparsable(data, ParseError("bad")) is None


@PROPERTY
@given(st.one_of(st.binary(max_size=400), sipish_bytes, mutated()), st.text(max_size=300))
def test_error_response_never_raises(data: bytes, text: str) -> None:
    wire = error_response_for_unparsable(data, ParseError(text), to_tag="t")
    if wire is not None:
        head = wire.split(b"\r\n\r\n")[0]
        assert wire.endswith(b"Content-Length: 0\r\n\r\n") and b"\n\n" not in head
        assert all(b"\r" not in line and b"\n" not in line for line in head.split(b"\r\n"))


@PROPERTY
@given(mutated())
def test_check_request_never_raises(data: bytes) -> None:
    try:
        message = parse_message(data)
    except ParseError:
        return
    if isinstance(message, SipRequest):
        for policy in (POLICY, {**POLICY, "allowed_methods": frozenset({message.method})}):
            response = check_request(message, **policy)  # type: ignore[arg-type]
            assert response is None or 400 <= response.status <= 699
    else:
        check_response(message)
