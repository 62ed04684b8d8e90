"""RFC 4475 torture messages against the parser, the UAS checks and the stream framer.

``tests/data/rfc4475/EXPECTED.tsv`` says what each of the 49 messages must produce for ccdaemon,
a UA (not a proxy, not a registrar), and why.  The ``expected`` column is machine-read:
``parse`` / ``reject <status>`` (ParseError, then that error response built from the bytes) /
``drop`` (a response we discard) / ``respond <status>`` (check_request's answer) / ``accept``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from ccdaemon.sip.errors import ParseError
from ccdaemon.sip.framing import StreamError, StreamFramer
from ccdaemon.sip.grammar import is_token, parse_uint
from ccdaemon.sip.headers import parse_cseq, parse_via
from ccdaemon.sip.message import SipMessage, SipRequest, SipResponse, parse_message
from ccdaemon.sip.uri import AbsoluteUri, SipUri, parse_name_addr, parse_name_addr_list
from ccdaemon.sip.validate import check_request, check_response, error_response_for_unparsable

DATA = Path(__file__).resolve().parents[1] / "data" / "rfc4475"

# what ccdaemon serves as a UA (the daemon's configuration passes the same kind of sets)
POLICY = {
    "allowed_methods": frozenset(
        {"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE", "REFER", "NOTIFY", "PRACK"}
    ),
    "supported_extensions": frozenset({"replaces", "timer"}),
    "accepted_content_types": frozenset({"application/sdp", "application/dtmf-relay", "message/sipfrag"}),
}


def _read_tsv(name: str) -> dict[str, dict[str, str]]:
    with (DATA / name).open(encoding="utf-8", newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}


CASES = _read_tsv("CASES.tsv")
EXPECTED = _read_tsv("EXPECTED.tsv")


def _files(kind: str) -> list[str]:
    return [name for name, row in EXPECTED.items() if row["class"] == kind]


def _data(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_every_case_has_an_expectation() -> None:
    dat_files = sorted(p.name for p in DATA.glob("*.dat"))
    assert len(dat_files) == 49
    assert sorted(CASES) == dat_files == sorted(EXPECTED)
    for name, row in EXPECTED.items():
        assert row["class"] == CASES[name]["class"], name
        assert row["expected"].split()[0] in {"parse", "reject", "drop", "respond", "accept"}, name
        assert row["reason (RFC 4475 section; our role: a UA, not a proxy or registrar)"].strip(), name
    counts = {kind: len(_files(kind)) for kind in ("valid", "invalid", "semantic")}
    assert counts == {"valid": 13, "invalid": 19, "semantic": 17}


# --- valid: parse, every header readable, stable serialization ---------------------------------

_LIST_OF_ADDRESSES = ("Contact", "Route", "Record-Route")
_NUMBERS = {"Max-Forwards": 255, "Expires": 2**32 - 1, "Min-Expires": 2**32 - 1, "Content-Length": 2**32}
_TOKEN_LISTS = ("Require", "Proxy-Require", "Supported", "Allow", "Unsupported")


def assert_fully_readable(message: SipMessage) -> None:
    """Every header value is reachable and every structured header parses."""
    for name, value in message.headers:
        assert isinstance(value, str)
        message.headers.get_all(name)
        message.headers.get_lines(name)
        if name == "Via":
            for element in message.headers.get_all(name):
                parse_via(element)
        elif name in ("From", "To"):
            parse_name_addr(value)
        elif name in _LIST_OF_ADDRESSES:
            parse_name_addr_list(value)
        elif name == "CSeq":
            parse_cseq(value)
        elif name in _NUMBERS:
            parse_uint(value, name, maximum=_NUMBERS[name])
        elif name in _TOKEN_LISTS:
            assert all(is_token(t) for t in message.headers.get_all(name))
    assert message.call_id
    assert message.cseq.method
    assert message.from_.uri is not None
    assert message.to.uri is not None
    assert message.vias and message.top_via == message.vias[0]
    for accessor in ("contacts", "routes", "record_routes", "content_type", "max_forwards", "expires"):
        getattr(message, accessor)
    for name in _TOKEN_LISTS:
        message.header_tokens(name)


@pytest.mark.parametrize("name", _files("valid"))
def test_valid_message_parses_and_is_readable(name: str) -> None:
    message = parse_message(_data(name))
    assert_fully_readable(message)
    wire = message.to_bytes()
    again = parse_message(wire)
    assert again == message
    assert again.to_bytes() == wire
    assert parse_message(wire, datagram=False) == message  # a serialized message frames on TCP


def test_valid_details() -> None:
    wsinv = parse_message(_data("wsinv.dat"))
    assert isinstance(wsinv, SipRequest)
    assert wsinv.to.tag == "1918181833n"
    assert wsinv.from_.display_name == 'J Rosenberg \\"'
    assert wsinv.max_forwards == 68 and wsinv.cseq.seq == 9
    assert [(v.transport, v.host, v.branch) for v in wsinv.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    contact = wsinv.contacts[0]
    assert contact.display_name == 'Quoted string ""' and contact.param("q") == "0.33"
    assert wsinv.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert wsinv.headers.get("Subject") == ""
    assert len(wsinv.body) == 150

    intmeth = parse_message(_data("intmeth.dat"))
    assert isinstance(intmeth, SipRequest) and intmeth.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert intmeth.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"

    esc01 = parse_message(_data("esc01.dat"))
    assert isinstance(esc01, SipRequest) and isinstance(esc01.uri, SipUri)
    assert esc01.uri.user_unescaped == "sips:user@example.com"
    assert isinstance(esc01.to.uri, SipUri) and esc01.to.uri.user_unescaped == "user"

    escnull = parse_message(_data("escnull.dat"))
    users = [c.uri.user_unescaped for c in escnull.contacts if isinstance(c.uri, SipUri)]
    assert users == ["\x00", "\x00\x00"]

    esc02 = parse_message(_data("esc02.dat"))
    assert isinstance(esc02, SipRequest) and esc02.method == "RE%47IST%45R"
    assert len(esc02.contacts) == 2 and esc02.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"

    assert parse_message(_data("lwsdisp.dat")).from_.display_name == "caller"

    longreq = parse_message(_data("longreq.dat"))
    assert len(longreq.vias) == 34 and longreq.to.uri.scheme == "sip"

    dblreq = parse_message(_data("dblreq.dat"))  # the second request in the datagram is discarded
    assert isinstance(dblreq, SipRequest) and dblreq.method == "REGISTER" and dblreq.body == b""

    semiuri = parse_message(_data("semiuri.dat"))
    assert isinstance(semiuri, SipRequest) and isinstance(semiuri.uri, SipUri)
    assert semiuri.uri.user == "user;par=u%40example.net" and semiuri.uri.params == ()

    transports = parse_message(_data("transports.dat"))
    assert [v.transport for v in transports.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]

    mpart = parse_message(_data("mpart01.dat"))
    assert mpart.content_type == "multipart/mixed" and len(mpart.body) == 553

    unreason = parse_message(_data("unreason.dat"))
    assert isinstance(unreason, SipResponse)
    assert unreason.reason.startswith("= 2**3 * 5**2 но сто девяносто девять")

    noreason = parse_message(_data("noreason.dat"))
    assert isinstance(noreason, SipResponse) and noreason.status == 100 and noreason.reason == ""
    assert noreason.to_bytes().startswith(b"SIP/2.0 100 \r\n")


# --- invalid: ParseError, and the error response where one can be sent -------------------------


@pytest.mark.parametrize("name", _files("invalid"))
def test_invalid_message_is_rejected(name: str) -> None:
    data = _data(name)
    with pytest.raises(ParseError) as info:
        parse_message(data)
    _assert_outcome(name, data, info.value)


def _assert_outcome(name: str, data: bytes, error: ParseError) -> None:
    action, *status = EXPECTED[name]["expected"].split()
    wire = error_response_for_unparsable(data, error, to_tag="ccd1")
    if action == "drop":
        assert wire is None  # a response: nothing to answer
        return
    assert action == "reject"
    assert wire is not None, f"{name}: no error response built ({error})"
    assert wire.startswith(f"SIP/2.0 {status[0]} ".encode())
    head = wire.split(b"\r\n\r\n")[0].decode()
    assert "\r\nVia: " in head and "\r\nCSeq: " in head and "\r\nWarning: 399 ccdaemon " in head
    try:  # the copied headers are verbatim, so the reply parses only if they did
        reply = parse_message(wire)
    except ParseError:
        return
    assert isinstance(reply, SipResponse) and reply.status == int(status[0])
    assert reply.to.tag is not None


@pytest.mark.parametrize("name", [*_files("invalid"), "mcl01.dat"])
def test_invalid_message_on_a_stream(name: str) -> None:
    """Framed from TCP: never an exception; a framing error closes, a parse error does not."""
    framer = StreamFramer()
    items = framer.feed(_data(name))
    assert all(isinstance(item, StreamError) for item in items)
    if name in ("ncl.dat", "mcl01.dat"):  # Content-Length unusable: unrecoverable (§3.1.2.3, §3.3.9)
        assert framer.broken and len(items) == 1 and isinstance(items[0], StreamError) and items[0].fatal
    if name == "clerr.dat":  # waits for 9999 bytes that never come; the buffer stays bounded
        assert items == [] and not framer.broken and framer.buffered == len(_data(name))


# --- semantic: what the UAS answers ------------------------------------------------------------


@pytest.mark.parametrize("name", _files("semantic"))
def test_semantic_outcome(name: str) -> None:
    data = _data(name)
    action, *status = EXPECTED[name]["expected"].split()
    if action == "reject":
        with pytest.raises(ParseError) as info:
            parse_message(data)
        _assert_outcome(name, data, info.value)
        return
    message = parse_message(data)
    assert_fully_readable(message)
    if action == "drop":
        assert isinstance(message, SipResponse) and check_response(message) is not None
        return
    assert isinstance(message, SipRequest)
    response = check_request(message, **POLICY, to_tag="ccd1")
    if action == "accept":
        assert response is None
        return
    assert response is not None and response.status == int(status[0]), response
    assert response.to.tag == "ccd1" and response.call_id == message.call_id
    assert response.cseq == message.cseq
    assert response.headers.get_lines("Via") == message.headers.get_lines("Via")
    assert parse_message(response.to_bytes()) == response


def _check(name: str) -> SipResponse:
    message = parse_message(_data(name))
    assert isinstance(message, SipRequest)
    response = check_request(message, **POLICY)
    assert response is not None
    return response


def test_semantic_details() -> None:
    assert _check("unkscm.dat").status == 416
    assert _check("bext01.dat").headers.get("Unsupported") == "nothingSupportsThis, nothingSupportsThisEither"
    assert "application/sdp" in (_check("invut.dat").headers.get("Accept") or "")
    for name in ("unksm2.dat", "regaut01.dat", "cparam01.dat", "cparam02.dat", "regescrt.dat"):
        response = _check(name)
        assert response.status == 405
        assert response.headers.get_all("Allow") == sorted(POLICY["allowed_methods"])
    multi = _check("multi01.dat")
    assert multi.reason == "Bad Request (duplicated Max-Forwards, CSeq, Call-ID, From, To)"
    sdp01 = _check("sdp01.dat")
    assert sdp01.status == 406 and (sdp01.headers.get("Warning") or "").startswith("399 ")

    badbranch = parse_message(_data("badbranch.dat"))
    assert badbranch.top_via.branch == "z9hG4bK" and not badbranch.top_via.has_rfc3261_branch
    inv2543 = parse_message(_data("inv2543.dat"))
    assert inv2543.top_via.branch is None and inv2543.from_.tag is None and inv2543.max_forwards is None
    assert len(inv2543.body) > 0 and inv2543.content_type == "application/sdp"

    unksm2 = parse_message(_data("unksm2.dat"))
    assert isinstance(unksm2.to.uri, AbsoluteUri) and unksm2.to.uri.scheme == "isbn"
    assert [c.uri.scheme for c in unksm2.contacts] == ["name"]
    cparam01 = parse_message(_data("cparam01.dat")).contacts[0]
    assert cparam01.params == (("unknownparam", None),)
    assert isinstance(cparam01.uri, SipUri) and cparam01.uri.params == ()
    cparam02 = parse_message(_data("cparam02.dat")).contacts[0]
    assert cparam02.params == () and isinstance(cparam02.uri, SipUri)
    assert cparam02.uri.params == (("unknownparam", None),)
    regescrt = parse_message(_data("regescrt.dat")).contacts[0]
    assert isinstance(regescrt.uri, SipUri) and regescrt.uri.headers == "Route=%3Csip:sip.example.com%3E"

    bcast = parse_message(_data("bcast.dat"))
    assert isinstance(bcast, SipResponse) and bcast.vias[1].host == "255.255.255.255"


def test_summary_counts() -> None:
    """The figures the report quotes: every class behaves as EXPECTED.tsv says."""
    valid = sum(1 for n in _files("valid") if parse_message(_data(n)))
    invalid = 0
    for name in _files("invalid"):
        try:
            parse_message(_data(name))
        except ParseError:
            invalid += 1
    assert (valid, invalid) == (13, 19)
