"""URIs, name-addrs and Via elements: examples plus hypothesis round trips.

The strategies here (``sip_uris``, ``name_addrs``, ``via_elements``) also feed the message
generators in ``test_message.py``.
"""

from __future__ import annotations

import ipaddress
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccdaemon.sip.errors import LocalProtocolError, ParseError
from ccdaemon.sip.grammar import TOKEN_CHARS, parse_params, quote, split_outside_quotes, unquote
from ccdaemon.sip.headers import Headers, Via, parse_via
from ccdaemon.sip.uri import (
    AbsoluteUri,
    NameAddr,
    SipUri,
    parse_name_addr,
    parse_name_addr_list,
    parse_sip_uri,
    parse_uri,
)


def property_settings(examples: int) -> settings:
    """Deterministic and quick by default; ``CCD_FUZZ_EXAMPLES=20000`` runs a deep random fuzz."""
    deep = int(os.environ.get("CCD_FUZZ_EXAMPLES", "0"))
    return settings(
        max_examples=deep or examples,
        derandomize=not deep,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


PROPERTY = property_settings(400)

# --- strategies ------------------------------------------------------------------------------

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_UNRESERVED = _ALNUM + "-_.!~*'()"
_HEX = "0123456789abcdefABCDEF"

tokens = st.text(alphabet=sorted(TOKEN_CHARS), min_size=1, max_size=10)
_escape = st.builds(lambda a, b: f"%{a}{b}", st.sampled_from(_HEX), st.sampled_from(_HEX))


def _escaped_text(extra: str, *, min_size: int = 1, max_size: int = 8) -> st.SearchStrategy[str]:
    """Strings of unreserved characters, ``extra`` and %-escapes (RFC 3261 §25.1)."""
    return st.lists(
        st.one_of(st.sampled_from(_UNRESERVED + extra), _escape), min_size=min_size, max_size=max_size
    ).map("".join)


_label = st.text(alphabet=_ALNUM, min_size=1, max_size=6)
hostnames = st.lists(
    st.one_of(_label, st.builds(lambda a, b: f"{a}-{b}", _label, _label)), min_size=1, max_size=4
).map(".".join)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(lambda a: f"[{a}]")
hosts = st.one_of(hostnames, ipv4, ipv6)
ports = st.one_of(st.none(), st.integers(0, 65535))
users = _escaped_text("&=+$,;?/")
passwords = _escaped_text("&=+$,", min_size=0)
_pchars = _escaped_text("[]/:&+$")
uri_params = st.lists(
    st.tuples(_pchars.map(str.lower), st.one_of(st.none(), _pchars)), max_size=3, unique_by=lambda p: p[0]
).map(tuple)
_hchars = _escaped_text("[]/?:+$")
uri_headers = st.one_of(
    st.none(),
    st.lists(st.builds(lambda n, v: f"{n}={v}", _hchars, _hchars | st.just("")), min_size=1, max_size=2).map(
        "&".join
    ),
)


@st.composite
def sip_uris(draw: st.DrawFn, *, with_headers: bool = True) -> SipUri:
    user = draw(st.one_of(st.none(), users))
    password = draw(st.one_of(st.none(), passwords)) if user is not None else None
    return SipUri(
        host=draw(hosts),
        user=user,
        password=password,
        port=draw(ports),
        scheme=draw(st.sampled_from(["sip", "sips"])),
        params=draw(uri_params),
        headers=draw(uri_headers) if with_headers else None,
    )


absolute_uris = st.builds(
    AbsoluteUri,
    st.sampled_from(["tel", "mailto", "urn", "isbn", "soap.beep", "x-a+b"]),
    _escaped_text(";/?:@&=+$,", max_size=12),
)

# any character but CR/LF: quote() escapes quotes, backslashes and controls
display_names = st.one_of(
    st.none(),
    st.lists(tokens, min_size=1, max_size=3).map(" ".join),  # serialized unquoted
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=12),
)
_printable = st.characters(blacklist_categories=["Cs", "Cc"])
_gen_value = st.one_of(tokens, st.text(_printable, max_size=8).map(quote))
header_params = st.lists(
    st.tuples(tokens.map(str.lower), st.one_of(st.none(), _gen_value)), max_size=3, unique_by=lambda p: p[0]
).map(tuple)


@st.composite
def name_addrs(draw: st.DrawFn) -> NameAddr:
    uri = draw(st.one_of(sip_uris(), absolute_uris))
    return NameAddr(uri=uri, display_name=draw(display_names), params=draw(header_params))


@st.composite
def via_elements(draw: st.DrawFn) -> Via:
    reserved = ("rport", "ttl", "branch")  # generated below with valid values
    params = list(draw(header_params.filter(lambda ps: all(n not in reserved for n, _ in ps))))
    if draw(st.booleans()):
        params.insert(0, ("branch", "z9hG4bK" + draw(tokens)))
    if draw(st.booleans()):
        params.append(("rport", draw(st.one_of(st.none(), st.integers(0, 65535).map(str)))))
    if draw(st.booleans()):
        params.append(("received", draw(st.one_of(ipv4, ipv6))))
    return Via(
        transport=draw(st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS", "X-NEW"])),
        host=draw(hosts),
        port=draw(ports),
        params=tuple(params),
    )


# --- round trips -----------------------------------------------------------------------------


@PROPERTY
@given(sip_uris())
def test_sip_uri_round_trip(uri: SipUri) -> None:
    text = str(uri)
    parsed = parse_uri(text)
    assert parsed == uri
    assert str(parsed) == text
    assert parsed.same_as(uri)


@PROPERTY
@given(absolute_uris)
def test_absolute_uri_round_trip(uri: AbsoluteUri) -> None:
    assert parse_uri(str(uri)) == uri


@PROPERTY
@given(name_addrs())
def test_name_addr_round_trip(address: NameAddr) -> None:
    text = str(address)
    parsed = parse_name_addr(text)
    assert parsed.uri == address.uri and parsed.params == address.params
    # unquoted display names are normalized to single spaces; quoted ones come back exactly
    assert parsed.display_name == address.display_name
    assert str(parsed) == text


@PROPERTY
@given(st.lists(name_addrs(), min_size=1, max_size=4))
def test_name_addr_list_round_trip(addresses: list[NameAddr]) -> None:
    text = " , ".join(str(a) for a in addresses)
    assert parse_name_addr_list(text) == [parse_name_addr(str(a)) for a in addresses]


@PROPERTY
@given(via_elements())
def test_via_round_trip(via: Via) -> None:
    parsed = parse_via(str(via))
    assert parsed == via
    assert parsed.rport == (int(via.rport) if via.rport is not None else None)


@PROPERTY
@given(st.text(max_size=60))
def test_quote_round_trip(text: str) -> None:
    expected = text.replace("\r", " ").replace("\n", " ")
    assert unquote(quote(text)) == expected
    assert split_outside_quotes(quote(text) + ",x", ",")[-1] == "x"


# --- arbitrary text never raises anything but ParseError ---------------------------------------

_uri_alphabet = st.sampled_from(
    [*_UNRESERVED, *';?@:=&%[]<>" ,\t/\\+$#', "sip:", "sips:", "%4", "\x00", "²", "٣"]
)
uri_like = st.one_of(
    st.text(max_size=40),
    st.lists(_uri_alphabet, max_size=30).map(lambda parts: "sip:" + "".join(parts)),
    st.lists(_uri_alphabet, max_size=30).map("".join),
)


@PROPERTY
@given(uri_like)
def test_parsers_raise_only_parse_error(text: str) -> None:
    for parser in (parse_uri, parse_name_addr, parse_name_addr_list, parse_via, parse_params):
        try:
            result = parser(text)
        except ParseError:
            continue
        if isinstance(result, (SipUri, AbsoluteUri)):
            assert parse_uri(str(result)) == result  # whatever parses, re-serializes stably
        if isinstance(result, Via):
            assert parse_via(str(result)) == result


# --- examples ----------------------------------------------------------------------------------


def test_sip_uri_parts() -> None:
    uri = parse_sip_uri("SIPS:alice:secret@Example.COM:5061;Transport=TLS;lr?subject=hi&x=")
    parts = (uri.scheme, uri.user, uri.password, uri.host, uri.port)
    assert parts == ("sips", "alice", "secret", "Example.COM", 5061)
    assert uri.params == (("transport", "TLS"), ("lr", None)) and uri.transport == "tls"
    assert uri.headers == "subject=hi&x=" and uri.host_port == "Example.COM:5061"
    assert str(uri) == "sips:alice:secret@Example.COM:5061;transport=TLS;lr?subject=hi&x="


def test_user_unescaping() -> None:
    assert parse_sip_uri("sip:%61lice@h").user_unescaped == "alice"
    assert parse_sip_uri("sip:M%C3%BCller@h").user_unescaped == "Müller"  # UTF-8 octets
    assert parse_sip_uri("sip:bad%FF@h").user_unescaped == "bad\ufffd"  # never raises
    assert parse_sip_uri("sip:%61@h").same_as(parse_sip_uri("sip:a@H"))


@pytest.mark.parametrize(
    "text",
    [
        "sip:[::1]:5060",
        "sip:user@[2001:db8::1];transport=tcp",
        "sip:h:0",
        "sip:h:65535",
        "sip:user;par=u%40example.net@example.com",
        "tel:+1-201-555-0123;phone-context=example.com",
        "urn:service:sos",
        "soap.beep://192.0.2.103:3002",
    ],
)
def test_valid_uris(text: str) -> None:
    assert str(parse_uri(text)).lower() == text.lower()


@pytest.mark.parametrize(
    "text",
    [
        "sip:",
        "sip:@h",
        "sip:h:65536",
        "sip:h:99999999999",
        "sip:h:²",
        "sip:h:٣",
        "sip:h: 5060",
        "sip:[::1",
        "sip:[::g]",
        "sip:[1.2.3.4]",
        "sip:[::1]x",
        "sip:h;",
        "sip:h;a=",
        "sip:us er@h",
        "sip:%zz@h",
        "nocolon",
        "1abc:x",
        "tel:",
        "tel:a b",
        "tel:caf\u00e9",
        "tel:\x00",
        "x:<y>",
    ],
)
def test_invalid_uris(text: str) -> None:
    with pytest.raises(ParseError):
        parse_uri(text)


def test_parse_sip_uri_refuses_other_schemes_with_416() -> None:
    with pytest.raises(ParseError) as info:
        parse_sip_uri("tel:+123")
    assert info.value.status_hint == 416


def test_name_addr_forms() -> None:
    plain = parse_name_addr("sip:a@h;tag=1;user=phone")  # addr-spec: params belong to the header
    assert plain.tag == "1" and plain.param("user") == "phone" and isinstance(plain.uri, SipUri)
    assert plain.uri.params == ()
    quoted = parse_name_addr('"A \\"B\\" \\\\ C" <sip:a@h;lr>;tag=x')
    assert quoted.display_name == 'A "B" \\ C' and quoted.tag == "x"
    assert parse_name_addr("Bob  Smith <sip:b@h>").display_name == "Bob Smith"
    assert parse_name_addr("*").wildcard and str(parse_name_addr("*")) == "*"
    assert str(NameAddr(uri=parse_uri("sip:a@h"), display_name="Bob Smith")) == "Bob Smith <sip:a@h>"
    assert str(NameAddr(uri=parse_uri("sip:a@h"), display_name="Bob, Jr.")) == '"Bob, Jr." <sip:a@h>'
    assert parse_name_addr("<sip:a@h>").with_tag("t9").tag == "t9"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Bell, Alexander <sip:a@h>",
        '"unterminated <sip:a@h>',
        "< sip:a@h >",
        "<sip:a@h",
        "sip:a@h?x=y",
        "sip:a@h,sip:b@h",
        "<sip:a@h> junk",
        "a\u3000b <sip:a@h>",
        "<sip:a@h>;;",
    ],
)
def test_invalid_name_addrs(text: str) -> None:
    with pytest.raises(ParseError):
        parse_name_addr(text)


def test_via_forms() -> None:
    via = parse_via("SIP  /  2.0 / udp  host.example.com : 5060 ;branch=z9hG4bKabc;rport;received=[::1]")
    assert (via.transport, via.host, via.port, via.branch) == ("UDP", "host.example.com", 5060, "z9hG4bKabc")
    assert via.wants_rport and via.rport is None and via.received == "[::1]" and via.has_rfc3261_branch
    assert parse_via("SIP/2.0/TCP [2001:db8::1]:5061;rport=5062").rport == 5062
    assert parse_via("SIP/2.0/UDP h;branch=z9hG4bK").has_rfc3261_branch is False
    assert parse_via("SIP/2.0/UDP h").has_rfc3261_branch is False
    assert parse_via("SIP/2.0/UDP h;branch=1234").has_rfc3261_branch is False
    assert str(parse_via("sip/2.0/tls h:1;ttl=0")) == "SIP/2.0/TLS h:1;ttl=0"


@pytest.mark.parametrize(
    "text",
    [
        "SIP/2.0/UDP",
        "SIP/2.0/UDPhost",
        "SIP/3.0/UDP h",
        "HTTP/2.0/UDP h",
        "SIP/2.0/UDP h;rport=x",
        "SIP/2.0/UDP h;rport=70000",
        "SIP/2.0/UDP h;ttl=256",
        "SIP/2.0/UDP h;ttl",
        "SIP/2.0/UDP h;branch=",
        "SIP/2.0/UDP h:²",
        "SIP/2.0/UDP [::1",
        "SIP/2.0/UDP h;;",
        "SIP/2.0/UDP a b",
    ],
)
def test_invalid_vias(text: str) -> None:
    with pytest.raises(ParseError):
        parse_via(text)


def test_via_with_many_spaces_is_fast() -> None:
    # the old sent-by regex backtracked quadratically on runs of white space
    text = "SIP/2.0/UDP h" + " " * 8000 + "x"
    start = time.perf_counter()
    with pytest.raises(ParseError):
        parse_via(text)
    assert time.perf_counter() - start < 0.5


def test_ipv6_hosts_are_real_addresses() -> None:
    for text in ("sip:[::ffff:192.0.2.1]", "sip:[2001:db8:0:0:0:0:0:1]:5060"):
        host = parse_sip_uri(text).host
        ipaddress.IPv6Address(host[1:-1])


def test_quote_never_emits_raw_line_breaks() -> None:
    with pytest.raises(LocalProtocolError):
        Headers().add("Subject", "a\r\nInjected: yes")
    assert "\r" not in quote("a\r\nb") and "\n" not in quote("a\r\nb")
