"""The running user agent on the wire: RFC 4475 torture messages, retransmissions, containment,
in-dialog requests (INFO, REFER, Replaces) — driven by raw UDP from the test on loopback."""

from __future__ import annotations

import asyncio
import csv
import itertools
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from ccdaemon.media.ticker import TickScheduler
from ccdaemon.sip.address import Endpoint
from ccdaemon.sip.message import SipRequest, SipResponse, make_response
from ccdaemon.sip.transaction import SipTimers
from ccdaemon.telephony.call import Call
from ccdaemon.telephony.events import DtmfReceived, EndReason, TransferRequested
from ccdaemon.telephony.transport import MAX_CONNECTIONS_PER_HOST
from ccdaemon.telephony.useragent import UaConfig, UserAgent
from tests.integration.udp_client import UdpSipClient

pytestmark = pytest.mark.peers
RFC4475 = Path(__file__).parent.parent / "data" / "rfc4475"
_seq = itertools.count(1)


@asynccontextmanager
async def direct_ua(handler: Any = None, **overrides: Any) -> AsyncIterator[UserAgent]:
    """A UA with no PBX registration whose 'PBX' is 127.0.0.1, so the test may talk to it directly."""
    options: dict[str, Any] = dict(
        pbx_host="127.0.0.1",
        pbx_port=9,
        username="100",
        password="x",
        listen_host="127.0.0.1",
        listen_port=0,
        register=False,
        rtp_port_min=41000,
        rtp_port_max=42000,
    )
    options.update(overrides)
    ua = UserAgent(UaConfig(**options))
    if handler is not None:
        ua.on_incoming_call(handler)
    await ua.start()
    sent_to: list[Endpoint] = []
    real_send = ua.transports.send

    def guarded_send(data: bytes, dest: Endpoint) -> None:
        sent_to.append(dest)
        assert dest.host.startswith("127."), f"the daemon tried to send to {dest}"
        real_send(data, dest)

    ua.transports.send = guarded_send  # type: ignore[method-assign]
    try:
        yield ua
    finally:
        await ua.stop(drain=2)
    assert all(d.host.startswith("127.") for d in sent_to)


def ua_address(ua: UserAgent) -> tuple[str, int]:
    assert ua.transports.udp_address is not None
    return ua.transports.udp_address


def invite_bytes(
    client: UdpSipClient,
    *,
    branch: str | None = None,
    call_id: str | None = None,
    sdp_formats: str = "0 8 101",
    extra: str = "",
    cseq: int = 1,
) -> tuple[bytes, str]:
    n = next(_seq)
    branch = branch or f"z9hG4bKtest{n}"
    call_id = call_id or f"call-{n}@127.0.0.1"
    sdp = (
        "v=0\r\no=test 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio 49170 RTP/AVP {sdp_formats}\r\na=rtpmap:101 telephone-event/8000\r\n"
    )
    head = (
        f"INVITE sip:100@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{client.port};branch={branch};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:300@127.0.0.1>;tag=caller{n}\r\nTo: <sip:100@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:300@127.0.0.1:{client.port}>\r\n"
        f"{extra}Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n"
    )
    return (head + sdp).encode(), call_id


def in_dialog(
    client: UdpSipClient,
    method: str,
    response: SipResponse,
    cseq: int,
    *,
    branch: str,
    body: str = "",
    content_type: str | None = None,
    extra: str = "",
) -> bytes:
    """An in-dialog request from the caller side of the dialog ``response`` (our 200) created."""
    ctype = f"Content-Type: {content_type}\r\n" if content_type else ""
    contact = response.contacts[0].uri
    return (
        f"{method} {contact} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{client.port};branch={branch};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: {response.headers.get('From')}\r\nTo: {response.headers.get('To')}\r\n"
        f"Call-ID: {response.call_id}\r\nCSeq: {cseq} {method}\r\n{extra}{ctype}"
        f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
    ).encode()


class Answerer:
    def __init__(self, *, answer: bool = True, reject: int | None = None, transfers: bool = False) -> None:
        self.answer = answer
        self.reject = reject
        self.transfers = transfers
        self.calls: asyncio.Queue[Call] = asyncio.Queue()

    async def __call__(self, call: Call) -> None:
        call.accept_transfers = self.transfers
        await self.calls.put(call)
        if self.reject is not None:
            await call.reject(self.reject)
        elif self.answer:
            await call.answer()
        await call.wait_ended()


# --- RFC 4475 through the running daemon -------------------------------------------------------


def _expected() -> list[tuple[str, str, str]]:
    with (RFC4475 / "EXPECTED.tsv").open(newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    return [(r[0], r[1], r[2]) for r in rows[1:]]


async def test_rfc4475_messages_get_the_expected_reply() -> None:
    cases = _expected()

    async def one(name: str) -> tuple[str, list[int]]:
        # a fresh daemon per message: several cases reuse branches, Call-IDs and tags, and to a
        # single daemon they would rightly look like retransmissions or merged requests
        async with direct_ua(Answerer(reject=486)) as ua:
            client = await UdpSipClient.open()
            client.send((RFC4475 / name).read_bytes(), ua_address(ua))
            statuses = await client.statuses(window=0.6)
            client.close()
            assert [r.status for r in await _options_from("127.0.0.1", ua)] == [200]  # still serving
            return name, statuses

    results = dict(await asyncio.gather(*(one(name) for name, _, _ in cases)))
    mismatches: list[str] = []
    for name, klass, expected in cases:
        finals = [s for s in results[name] if s >= 200]
        action, _, status = expected.partition(" ")
        is_request = not (RFC4475 / name).read_bytes().startswith(b"SIP/")
        if action in ("reject", "respond"):
            ok = finals[:1] == [int(status)]
        elif action == "drop":
            ok = not results[name]
        elif is_request:  # parse / accept: understood, so not refused as malformed
            ok = bool(finals) and finals[0] not in (400, 505, 513)
        else:
            ok = not results[name]  # a valid response matching nothing of ours is absorbed
        if not ok:
            mismatches.append(f"{name} ({klass}): expected {expected}, got {results[name]}")
    assert not mismatches, "\n".join(mismatches)


# --- transactions on the wire --------------------------------------------------------------------


async def test_200_ok_is_retransmitted_until_ack() -> None:
    answerer = Answerer()
    async with direct_ua(answerer) as ua:
        client = await UdpSipClient.open()
        data, _ = invite_bytes(client)
        client.send(data, ua_address(ua))
        responses = await client.responses(window=2.2)  # T1=0.5: 200 at 0, 0.5, 1.5
        oks = [r for r in responses if r.status == 200]
        assert len(oks) == 3, [r.status for r in responses]
        assert len({r.to.tag for r in oks}) == 1
        ok = oks[0]
        client.send(in_dialog(client, "ACK", ok, 1, branch="z9hG4bKack1"), ua_address(ua))
        assert await client.responses(window=2.5) == []  # the ACK stopped the retransmissions
        call = await answerer.calls.get()
        assert call._acked.is_set()
        client.close()


async def test_retransmitted_invite_creates_one_call() -> None:
    answerer = Answerer(answer=False)
    async with direct_ua(answerer) as ua:
        client = await UdpSipClient.open()
        data, _ = invite_bytes(client)
        client.send(data, ua_address(ua))
        client.send(data, ua_address(ua))
        await asyncio.sleep(0.3)
        client.send(data, ua_address(ua))
        responses = await client.responses(window=0.5)
        assert [r.status for r in responses].count(100) >= 2  # each retransmission gets the last reply
        assert answerer.calls.qsize() == 1
        assert len(ua.calls) == 1
        client.close()


async def test_missing_ack_ends_call_with_bye() -> None:
    answerer = Answerer()
    async with direct_ua(answerer, timers=SipTimers(t1=0.05, t2=0.4, t4=0.5)) as ua:
        client = await UdpSipClient.open()
        data, _ = invite_bytes(client)
        client.send(data, ua_address(ua))
        call = await asyncio.wait_for(answerer.calls.get(), 2)
        end = await asyncio.wait_for(call.wait_ended(), 6)  # Timer L = 64*T1 = 3.2 s
        assert end.reason is EndReason.FAILED
        methods = []
        while not client.inbox.empty():
            message = await client.receive()
            if isinstance(message, SipRequest):
                methods.append(message.method)
        assert "BYE" in methods
        client.close()


async def test_unacceptable_sdp_gets_488() -> None:
    answerer = Answerer()
    async with direct_ua(answerer) as ua:
        client = await UdpSipClient.open()
        data, _ = invite_bytes(client, sdp_formats="9")  # G.722 only
        client.send(data, ua_address(ua))
        finals = {r.status for r in await client.responses(window=1) if r.status >= 200}
        assert finals == {488}  # (retransmitted until ACKed, which this client does not do)
        assert answerer.calls.empty()
        client.close()


async def test_options_answered_with_capabilities() -> None:
    async with direct_ua() as ua:
        client = await UdpSipClient.open()
        client.send(
            (
                "OPTIONS sip:100@127.0.0.1 SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{client.port};branch=z9hG4bKo1\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:mon@127.0.0.1>;tag=1\r\nTo: <sip:100@127.0.0.1>\r\n"
                "Call-ID: opt1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            ).encode(),
            ua_address(ua),
        )
        (response,) = await client.responses(window=0.5)
        assert response.status == 200
        assert {"invite", "refer", "info", "cancel"} <= set(response.header_tokens("Allow"))
        client.close()


# --- containment ---------------------------------------------------------------------------------


async def _options_from(source_host: str, ua: UserAgent) -> list[SipResponse]:
    client = await UdpSipClient.open(source_host)
    try:
        client.send(
            (
                "OPTIONS sip:100@127.0.0.1 SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {source_host}:{client.port};branch=z9hG4bKc{next(_seq)}\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:scan@127.0.0.1>;tag=1\r\nTo: <sip:100@127.0.0.1>\r\n"
                f"Call-ID: scan{next(_seq)}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            ).encode(),
            ua_address(ua),
        )
        return await client.responses(window=0.5)
    finally:
        client.close()


async def test_unknown_source_rejected_with_403() -> None:
    async with direct_ua() as ua:
        assert [r.status for r in await _options_from("127.0.0.2", ua)] == [403]
        assert [r.status for r in await _options_from("127.0.0.1", ua)] == [200]  # the PBX


async def test_unknown_source_dropped_when_configured() -> None:
    async with direct_ua(unknown_source_policy="drop") as ua:
        assert await _options_from("127.0.0.2", ua) == []
        assert ua.endpoint.dropped_sources == 1


async def test_allow_list_admits_a_source() -> None:
    async with direct_ua(allowed_sources=("127.0.0.2/32",)) as ua:
        assert [r.status for r in await _options_from("127.0.0.2", ua)] == [200]
        assert [r.status for r in await _options_from("127.0.0.3", ua)] == [403]


async def test_garbage_never_stops_the_daemon(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    rng = random.Random(4475)
    async with direct_ua() as ua:
        client = await UdpSipClient.open()
        valid = (RFC4475 / "wsinv.dat").read_bytes()
        for _ in range(300):
            blob = bytearray(valid)
            for _ in range(rng.randint(1, 20)):
                blob[rng.randrange(len(blob))] = rng.randrange(256)
            client.send(bytes(blob[: rng.randint(1, len(blob))]), ua_address(ua))
        client.send(b"INVITE " + b"x" * 60000, ua_address(ua))
        client.send(b"\x00" * 5, ua_address(ua))
        await client.responses(window=1.0)
        client.close()
        assert [r.status for r in await _options_from("127.0.0.1", ua)] == [200]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_per_peer_transaction_limit() -> None:
    answerer = Answerer(answer=False)  # never answers: every INVITE keeps its transaction
    async with direct_ua(answerer, max_transactions_per_peer=20, max_calls=1000) as ua:
        client = await UdpSipClient.open()
        for _ in range(30):
            client.send(invite_bytes(client)[0], ua_address(ua))
        statuses = [r.status for r in await client.responses(window=1.0)]
        assert statuses.count(100) == 20
        assert 503 in statuses  # refused beyond the limit (the 503 itself is rate-limited)
        assert len(ua.calls) == 20
        client.close()


async def test_new_calls_are_refused_while_the_media_engine_is_behind(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    answerer = Answerer(answer=False)
    async with direct_ua(answerer, overload_lateness=0.02) as ua:
        client = await UdpSipClient.open()
        ticker = TickScheduler.for_loop(asyncio.get_running_loop())
        monkeypatch.setattr(ticker, "late_share", lambda now: 0.9)  # most ticks late: overloaded
        monkeypatch.setattr(ticker, "lateness", lambda now: 0.150)
        caplog.set_level(logging.WARNING)
        for _ in range(3):
            client.send(invite_bytes(client)[0], ua_address(ua))
        refused = [r for r in await client.responses(window=0.5) if r.status >= 200]
        assert [(r.status, r.reason, r.headers.get("Retry-After")) for r in refused] == [
            (503, "Media Overloaded", "10")
        ] * 3
        assert not ua.calls and ua.overload_refusals == 3
        warnings = [r.getMessage() for r in caplog.records if "media engine overloaded" in r.getMessage()]
        assert len(warnings) == 1 and "90% of its ticks over 20 ms late, worst 150 ms" in warnings[0]
        monkeypatch.setattr(ticker, "late_share", lambda now: 0.1)  # a stall, not an overload: calls taken
        client.send(invite_bytes(client)[0], ua_address(ua))
        assert 100 in [r.status for r in await client.responses(window=0.5)]
        assert len(ua.calls) == 1
        client.close()


# --- in-dialog requests --------------------------------------------------------------------------


async def _established(ua: UserAgent, answerer: Answerer, client: UdpSipClient) -> tuple[Call, SipResponse]:
    data, _ = invite_bytes(client)
    client.send(data, ua_address(ua))
    while True:
        message = await client.receive()
        if isinstance(message, SipResponse) and message.status == 200:
            break
    client.send(in_dialog(client, "ACK", message, 1, branch="z9hG4bKackx"), ua_address(ua))
    call = await answerer.calls.get()
    await asyncio.sleep(0.05)
    return call, message


def send_info_dtmf(
    client: UdpSipClient, ua: UserAgent, ok: SipResponse, bodies: list[str], *, first_seq: int
) -> None:
    for seq, body in enumerate(bodies, start=first_seq):
        request = in_dialog(
            client,
            "INFO",
            ok,
            seq,
            branch=f"z9hG4bKinfo{seq}",
            body=body,
            content_type="application/dtmf-relay",
        )
        client.send(request, ua_address(ua))


async def collect_digits(call: Call, count: int) -> list[str]:
    digits: list[str] = []
    while len(digits) < count:
        event = await call.next_event(timeout=2)
        if isinstance(event, DtmfReceived):
            digits.append(event.digit)
    return digits


async def test_info_dtmf_is_delivered() -> None:
    answerer = Answerer()
    async with direct_ua(answerer) as ua:
        client = await UdpSipClient.open()
        call, ok = await _established(ua, answerer, client)
        send_info_dtmf(client, ua, ok, [f"Signal={d}\r\nDuration=160\r\n" for d in "1123#"], first_seq=2)
        digits = await collect_digits(call, 5)
        assert "".join(digits) == "1123#"
        client.close()


async def test_refer_without_a_taker_is_declined() -> None:
    answerer = Answerer()  # the application does not handle transfers
    async with direct_ua(answerer) as ua:
        client = await UdpSipClient.open()
        _, ok = await _established(ua, answerer, client)
        client.send(
            in_dialog(
                client, "REFER", ok, 2, branch="z9hG4bKrefer0", extra="Refer-To: <sip:900@127.0.0.1>\r\n"
            ),
            ua_address(ua),
        )
        assert {r.status for r in await client.responses(window=0.5)} == {603}
        client.close()


async def test_refer_with_replaces_is_understood_and_notified() -> None:
    answerer = Answerer(transfers=True)
    async with direct_ua(answerer) as ua:
        client = await UdpSipClient.open()
        call, ok = await _established(ua, answerer, client)
        refer_to = "<sip:900@127.0.0.1?Replaces=abc%40host%3Bto-tag%3D11%3Bfrom-tag%3D22>"
        client.send(
            in_dialog(client, "REFER", ok, 2, branch="z9hG4bKrefer", extra=f"Refer-To: {refer_to}\r\n"),
            ua_address(ua),
        )
        event = await call.next_event(timeout=2)
        assert isinstance(event, TransferRequested)
        assert event.replaces is not None
        assert (event.replaces.call_id, event.replaces.to_tag, event.replaces.from_tag) == (
            "abc@host",
            "11",
            "22",
        )
        seen: list[str] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2
        while loop.time() < deadline and "NOTIFY" not in seen:
            message = await client.receive()
            seen.append(message.method if isinstance(message, SipRequest) else str(message.status))
        assert "202" in seen and "NOTIFY" in seen
        client.close()


async def test_invite_with_replaces_finds_the_dialog() -> None:
    answerer = Answerer()
    async with direct_ua(answerer) as ua:
        client = await UdpSipClient.open()
        call, _ok = await _established(ua, answerer, client)
        d = call.dialog
        assert d is not None
        replaces = f"Replaces: {d.id.call_id};to-tag={d.id.local_tag};from-tag={d.id.remote_tag}\r\n"
        client2 = await UdpSipClient.open()
        client2.send(invite_bytes(client2, extra=replaces)[0], ua_address(ua))
        new_call = await asyncio.wait_for(answerer.calls.get(), 2)
        assert new_call.replaces is call
        wrong = "Replaces: nosuchcall;to-tag=1;from-tag=2\r\n"
        client3 = await UdpSipClient.open()
        client3.send(invite_bytes(client3, extra=wrong)[0], ua_address(ua))
        assert {r.status for r in await client3.responses(window=0.5) if r.status >= 200} == {481}
        for c in (client, client2, client3):
            c.close()


async def test_debug_trace_shows_sip_without_credentials(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ccdaemon.sip.trace")
    async with direct_ua() as ua:
        client = await UdpSipClient.open()
        client.send(
            (
                "OPTIONS sip:100@127.0.0.1 SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{client.port};branch=z9hG4bKtrace\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:mon@127.0.0.1>;tag=1\r\nTo: <sip:100@127.0.0.1>\r\n"
                'Call-ID: trace1\r\nCSeq: 1 OPTIONS\r\nAuthorization: Digest username="x", response="abc"\r\n'
                "Content-Length: 0\r\n\r\n"
            ).encode(),
            ua_address(ua),
        )
        await client.responses(window=0.5)
        client.close()
    text = caplog.text
    assert "OPTIONS sip:100@127.0.0.1" in text and "SIP/2.0 200 OK" in text
    assert "Authorization: <redacted>" in text and 'response="abc"' not in text


async def test_late_offer_invite_gets_our_offer_and_answer_in_ack() -> None:
    answerer = Answerer()
    async with direct_ua(answerer) as ua:
        client = await UdpSipClient.open()
        data, _ = invite_bytes(client)
        head, _, _ = data.partition(b"Content-Type")
        client.send(head + b"Content-Length: 0\r\n\r\n", ua_address(ua))  # INVITE without SDP
        while True:
            message = await client.receive()
            if isinstance(message, SipResponse) and message.status == 200:
                break
        assert message.content_type == "application/sdp" and b"m=audio" in message.body
        answer = (
            "v=0\r\no=test 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            "m=audio 49172 RTP/AVP 8\r\n"
        )
        client.send(
            in_dialog(
                client, "ACK", message, 1, branch="z9hG4bKlate", body=answer, content_type="application/sdp"
            ),
            ua_address(ua),
        )
        call = await answerer.calls.get()
        await asyncio.sleep(0.1)
        assert call.media is not None
        assert (call.media.codec.encoding, call.media.remote_port) == ("PCMA", 49172)
        client.close()


async def test_early_media_183_carries_the_answer() -> None:
    class EarlyMedia(Answerer):
        async def __call__(self, call: Call) -> None:
            await self.calls.put(call)
            await call.ring(early_media=True)
            await call.wait_ended()

    async with direct_ua(EarlyMedia()) as ua:
        client = await UdpSipClient.open()
        client.send(invite_bytes(client)[0], ua_address(ua))
        responses = await client.responses(window=0.5)
        early = [r for r in responses if r.status == 183]
        assert early and b"m=audio" in early[0].body and early[0].to.tag
        client.close()


async def test_tcp_connections_per_host_are_bounded() -> None:
    async with direct_ua() as ua:
        assert ua.transports.tcp_address is not None
        host, port = ua.transports.tcp_address
        writers = []
        for _ in range(MAX_CONNECTIONS_PER_HOST + 5):
            _, writer = await asyncio.open_connection(host, port)
            writers.append(writer)
        await asyncio.sleep(0.2)
        assert len(ua.transports._connections) == MAX_CONNECTIONS_PER_HOST
        assert ua.transports.refused_connections == 5
        for writer in writers:
            writer.close()
        assert [r.status for r in await _options_from("127.0.0.1", ua)] == [200]  # UDP unaffected


async def test_unparsable_request_over_tcp_gets_400_before_close() -> None:
    async with direct_ua() as ua:
        assert ua.transports.tcp_address is not None
        reader, writer = await asyncio.open_connection(*ua.transports.tcp_address)
        writer.write((RFC4475 / "mcl01.dat").read_bytes())  # conflicting Content-Length: fatal framing
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(4096), 2)
        assert reply.startswith(b"SIP/2.0 400 ")
        assert await asyncio.wait_for(reader.read(4096), 2) == b""  # then the connection is closed
        writer.close()


# --- regressions found in review -------------------------------------------------------------------


async def test_bye_on_early_dialog_gets_487_for_the_invite() -> None:
    class Ringer(Answerer):
        async def __call__(self, call: Call) -> None:
            await self.calls.put(call)
            await call.ring()
            await call.wait_ended()

    answerer = Ringer()
    async with direct_ua(answerer) as ua:
        client = await UdpSipClient.open()
        client.send(invite_bytes(client)[0], ua_address(ua))
        ringing = next(r for r in await client.responses(window=0.5) if r.status == 180)
        client.send(in_dialog(client, "BYE", ringing, 2, branch="z9hG4bKearlybye"), ua_address(ua))
        statuses = {(r.status, r.cseq.method) for r in await client.responses(window=0.5)}
        assert (200, "BYE") in statuses and (487, "INVITE") in statuses
        call = await answerer.calls.get()
        assert call.end is not None and call.end.reason is EndReason.CANCELLED
        assert not ua.calls
        client.close()


async def test_handler_that_never_answers_leaves_no_ringing_call() -> None:
    async def walk_away(call: Call) -> None:
        return None

    async with direct_ua(walk_away) as ua:
        client = await UdpSipClient.open()
        client.send(invite_bytes(client)[0], ua_address(ua))
        finals = {r.status for r in await client.responses(window=0.5) if r.status >= 200}
        assert finals == {480}
        assert not ua.calls
        client.close()


async def test_requests_on_an_ended_call_get_481() -> None:
    answerer = Answerer()
    async with direct_ua(answerer) as ua:
        client = await UdpSipClient.open()
        call, ok = await _established(ua, answerer, client)
        client.send(in_dialog(client, "BYE", ok, 2, branch="z9hG4bKbye1"), ua_address(ua))
        await call.wait_ended()
        await client.responses(window=0.2)
        client.send(in_dialog(client, "INFO", ok, 3, branch="z9hG4bKlateinfo"), ua_address(ua))
        assert {r.status for r in await client.responses(window=0.5)} == {481}
        client.close()


async def test_update_without_sdp_gets_a_bare_200_and_dtmf_codes_10_11() -> None:
    answerer = Answerer()
    async with direct_ua(answerer) as ua:
        client = await UdpSipClient.open()
        call, ok = await _established(ua, answerer, client)
        client.send(in_dialog(client, "UPDATE", ok, 2, branch="z9hG4bKupd"), ua_address(ua))
        (response,) = [r for r in await client.responses(window=0.5) if r.cseq.method == "UPDATE"]
        assert response.status == 200 and response.body == b""
        send_info_dtmf(client, ua, ok, ["Signal=10\r\n", "Signal=11\r\n"], first_seq=3)
        digits = await collect_digits(call, 2)
        assert digits == ["*", "#"]
        client.close()


async def test_every_2xx_to_our_reinvite_is_acked() -> None:
    answerer = Answerer()
    async with direct_ua(answerer) as ua:
        client = await UdpSipClient.open()
        call, _ = await _established(ua, answerer, client)
        hold = asyncio.ensure_future(call.hold())
        reinvite = await client.receive()
        assert isinstance(reinvite, SipRequest) and reinvite.method == "INVITE"
        assert b"a=sendonly" in reinvite.body
        ok = SipResponse(200, headers=make_response(reinvite, 200, to_tag=None).headers, body=b"")
        ok.headers.add("Contact", f"<sip:300@127.0.0.1:{client.port}>")
        sdp = (
            b"v=0\r\no=test 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            b"m=audio 49170 RTP/AVP 0\r\na=recvonly\r\n"
        )
        ok.body = sdp
        ok.headers.add("Content-Type", "application/sdp")
        for _ in range(3):  # our 200 "retransmitted" twice, as if the first ACK were lost
            client.send(ok.to_bytes(), ua_address(ua))
            await asyncio.sleep(0.05)
        await asyncio.wait_for(hold, 2)
        acks = 0
        while not client.inbox.empty():
            message = await client.receive()
            acks += isinstance(message, SipRequest) and message.method == "ACK"
        assert acks == 3
        client.close()


async def test_hangup_right_after_dial_sends_nothing() -> None:
    async with direct_ua() as ua:
        call = await ua.dial("201")
        await call.hangup()
        await asyncio.sleep(0.2)
        assert ua.layer.transaction_count() == 0
        assert call.end is not None and call.end.reason is EndReason.LOCAL_HANGUP
