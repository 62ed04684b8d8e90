"""StreamFramer: SIP over TCP/TLS fed whole, byte by byte, split everywhere, several per read."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccdaemon.sip.errors import MessageTooLarge, ParseError
from ccdaemon.sip.framing import StreamError, StreamFramer
from ccdaemon.sip.message import Limits, SipMessage, SipRequest, SipResponse, parse_message
from ccdaemon.sip.validate import error_response_for_unparsable

from .test_uri import property_settings

PROPERTY = property_settings(300)
DATA = Path(__file__).resolve().parents[1] / "data" / "rfc4475"


def request(n: int = 1, body: bytes = b"", *, extra: str = "") -> bytes:
    return (
        f"MESSAGE sip:a@h SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK{n}\r\nFrom: <sip:a@h>;tag=f{n}\r\n"
        f"To: <sip:b@h>\r\nCall-ID: call-{n}\r\nCSeq: {n} MESSAGE\r\n{extra}Content-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def response(n: int = 1) -> bytes:
    return (
        f"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK{n}\r\nFrom: <sip:a@h>;tag=f{n}\r\n"
        f"To: <sip:b@h>;tag=t\r\nCall-ID: call-{n}\r\nCSeq: {n} MESSAGE\r\nl: 0\r\n\r\n"
    ).encode()


STREAM = [request(1, b"hello"), response(2), request(3, b"\r\n\r\nbody with blank lines\r\n\r\n"), request(4)]


def feed_chunks(chunks: list[bytes], framer: StreamFramer | None = None) -> list[SipMessage | ParseError]:
    framer = framer or StreamFramer()
    out: list[SipMessage | ParseError] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    return out


def expected(messages: list[bytes]) -> list[SipMessage]:
    return [parse_message(m, datagram=False) for m in messages]


def test_whole_stream_in_one_read() -> None:
    framer = StreamFramer()
    assert framer.feed(b"".join(STREAM)) == expected(STREAM)
    assert framer.buffered == 0 and not framer.broken and not framer.pong_needed


def test_byte_by_byte() -> None:
    data = b"".join(STREAM)
    assert feed_chunks([data[i : i + 1] for i in range(len(data))]) == expected(STREAM)


@pytest.mark.parametrize("message", [STREAM[0], STREAM[2]])
def test_split_at_every_position(message: bytes) -> None:
    data = message + STREAM[1]
    for cut in range(len(data) + 1):
        assert feed_chunks([data[:cut], data[cut:]]) == expected([message, STREAM[1]]), cut


@PROPERTY
@given(st.lists(st.sampled_from(STREAM), min_size=1, max_size=6), st.data())
def test_any_chunking_gives_the_same_messages(messages: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    framer = StreamFramer()
    assert feed_chunks(chunks, framer) == expected(messages)
    assert framer.buffered == 0


def test_rfc4475_valid_messages_frame() -> None:
    for name in ("wsinv.dat", "esc01.dat", "longreq.dat", "mpart01.dat", "unreason.dat", "noreason.dat"):
        data = (DATA / name).read_bytes()
        message = parse_message(data)
        wire = message.to_bytes()
        assert feed_chunks([wire, wire]) == [message, message], name


def test_keepalives_and_ping_pong() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n") == [] and not framer.pong_needed  # a lone CRLF: pong or padding
    assert framer.feed(b"\r\n") == [] and framer.pong_needed  # the two make a ping (RFC 5626)
    assert framer.feed(b"") == [] and not framer.pong_needed  # answered once, per feed
    assert framer.feed(b"\r\n\r\n" + STREAM[0] + b"\r\n") == expected([STREAM[0]]) and framer.pong_needed
    assert framer.feed(b"\r") == [] and not framer.pong_needed and framer.buffered == 1
    # CRLF (previous read) + CR + LF (this read) make a ping across three reads
    assert framer.feed(b"\n" + STREAM[1]) == expected([STREAM[1]]) and framer.pong_needed
    assert framer.feed(b"\r\n" + STREAM[2]) == expected([STREAM[2]]) and not framer.pong_needed
    assert framer.feed(b"\r\n\r\n\r\n\r\n") == [] and framer.pong_needed and framer.buffered == 0
    assert framer.feed(b"\n\n" + STREAM[3]) == expected([STREAM[3]])  # bare LFs are skipped too


def test_many_keepalives_are_cheap() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n" * 200_000) == [] and framer.pong_needed and framer.buffered == 0


def test_waits_for_the_body() -> None:
    framer = StreamFramer()
    message = request(9, b"x" * 100)
    assert framer.feed(message[:-1]) == [] and framer.buffered == len(message) - 1
    assert framer.feed(message[-1:]) == expected([message])


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (request().replace(b"Content-Length: 0\r\n", b""), "missing Content-Length"),
        (request().replace(b"Content-Length: 0", b"Content-Length: -5"), "malformed Content-Length"),
        (request().replace(b"Content-Length: 0", b"Content-Length: five"), "malformed Content-Length"),
        (request(extra="l: 3\r\n"), "conflicting Content-Length"),
        ((DATA / "mcl01.dat").read_bytes(), "conflicting Content-Length"),
        ((DATA / "ncl.dat").read_bytes(), "malformed Content-Length"),
    ],
)
def test_bad_content_length_is_fatal(data: bytes, match: str) -> None:
    framer = StreamFramer()
    items = framer.feed(data + STREAM[0])
    assert len(items) == 1 and framer.broken
    error = items[0]
    assert isinstance(error, StreamError) and error.fatal and match in str(error)
    assert error.data == data[: data.find(b"\r\n\r\n") + 4]  # the head, to answer from
    assert framer.feed(STREAM[0]) == [] and framer.buffered == 0  # broken: nothing more


def test_fatal_error_still_gets_a_400() -> None:
    framer = StreamFramer()
    (error,) = framer.feed((DATA / "mcl01.dat").read_bytes())
    assert isinstance(error, StreamError)
    wire = error_response_for_unparsable(error.data, error, to_tag="x")
    assert wire is not None and wire.startswith(b"SIP/2.0 400 Bad Request\r\n")


def test_unparsable_message_is_reported_and_the_stream_goes_on() -> None:
    bad = request(5).replace(b"To: <sip:b@h>", b'To: "unterminated <sip:b@h>')
    framer = StreamFramer()
    items = framer.feed(STREAM[0] + bad + STREAM[1])
    assert items[0] == expected([STREAM[0]])[0] and items[2] == expected([STREAM[1]])[0]
    error = items[1]
    assert isinstance(error, StreamError) and not error.fatal and error.data == bad
    assert not framer.broken
    wire = error_response_for_unparsable(error.data, error)
    assert wire is not None and b"Call-ID: call-5\r\n" in wire


SMALL = Limits(max_message=1_000, max_header_line=300, max_headers=20, max_body=400)


def test_oversize_body_is_fatal() -> None:
    framer = StreamFramer(limits=SMALL)
    (error,) = framer.feed(request(1).replace(b"Content-Length: 0", b"Content-Length: 401"))
    assert isinstance(error, StreamError) and error.fatal and isinstance(error.cause, MessageTooLarge)
    assert error.status_hint == 513


def test_oversize_message_is_fatal_before_the_body_arrives() -> None:
    framer = StreamFramer(limits=SMALL)
    head = request(1, extra="X-Pad: " + "p" * 250 + "\r\nX-Pad2: " + "p" * 250 + "\r\n")
    items = framer.feed(head.replace(b"Content-Length: 0", b"Content-Length: 390"))
    assert len(items) == 1 and isinstance(items[0], StreamError) and items[0].status_hint == 513
    assert framer.broken and framer.buffered == 0


def test_endless_head_is_fatal_and_buffer_stays_bounded() -> None:
    framer = StreamFramer(limits=SMALL)
    chunk = b"X-Header: " + b"a" * 88 + b"\r\n"  # 100 bytes, never an empty line
    for _ in range(10):
        assert framer.feed(chunk) == []
        assert framer.buffered <= SMALL.max_message
    items = framer.feed(chunk)
    assert len(items) == 1 and isinstance(items[0], StreamError) and items[0].fatal
    assert isinstance(items[0].cause, MessageTooLarge) and framer.broken


@PROPERTY
@given(st.binary(max_size=400), st.lists(st.integers(1, 50), max_size=10))
def test_garbage_never_raises(data: bytes, sizes: list[int]) -> None:
    framer = StreamFramer(limits=SMALL)
    pos = 0
    for size in [*sizes, len(data)]:
        for item in framer.feed(data[pos : pos + size]):
            assert isinstance(item, (SipRequest, SipResponse, StreamError))
        pos += size
        assert framer.buffered <= SMALL.max_message


@PROPERTY
@given(
    st.lists(st.sampled_from([*STREAM, b"\r\n", b"\r\n\r\n", b"GARBAGE\r\n\r\n", b"\n"]), max_size=8),
    st.integers(1, 64),
)
def test_mixed_stream_fixed_chunk_size(parts: list[bytes], size: int) -> None:
    stream = b"".join(parts)
    whole = feed_chunks([stream])
    chunked = feed_chunks([stream[i : i + size] for i in range(0, len(stream), size)])
    assert [type(x) for x in chunked] == [type(x) for x in whole]
    assert [x for x in chunked if not isinstance(x, ParseError)] == [
        x for x in whole if not isinstance(x, ParseError)
    ]
