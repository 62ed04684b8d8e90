"""RtpSession (ccdaemon.media.session) on loopback: media, hold, DTMF, bad input, symmetric RTP, pacing.

No timing assertions: counts, order and content only. Pacing is checked on the deadlines handed to
``loop.call_at`` and on the RTP timestamps, which must agree with them exactly.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from ccdaemon.media.dtmf import DtmfDigit
from ccdaemon.media.g711 import PCMA, PCMU
from ccdaemon.media.rtp import RtpPacket
from ccdaemon.media.session import FLOOD_FACTOR, Pacer, RtpSession
from ccdaemon.media.ticker import TickScheduler
from ccdaemon.sip.offer_answer import NegotiatedMedia
from ccdaemon.sip.sdp import Direction, MediaFormat

PCMU_FMT = MediaFormat(0, "PCMU", 8000)
PCMA_FMT = MediaFormat(8, "PCMA", 8000)


def udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def media(
    remote_port: int,
    *,
    direction: Direction = Direction.SENDRECV,
    codec: MediaFormat = PCMU_FMT,
    dtmf: int | None = 101,
) -> NegotiatedMedia:
    return NegotiatedMedia(
        remote_address="127.0.0.1",
        remote_port=remote_port,
        codec=codec,
        dtmf_payload_type=dtmf,
        local_direction=direction,
        remote_direction=direction.reversed(),
        ptime=20,
    )


def tone_frames(count: int, freq: float = 440.0) -> list[bytes]:
    samples = [int(12000 * math.sin(2 * math.pi * freq * i / 8000)) for i in range(160 * count)]
    pcm = b"".join(s.to_bytes(2, "little", signed=True) for s in samples)
    return [pcm[i * 320 : (i + 1) * 320] for i in range(count)]


def source_of(frames: list[bytes]) -> Callable[[], bytes | None]:
    it: Iterator[bytes] = iter(frames)
    return lambda: next(it, None)


async def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


async def drain(sock: socket.socket, count: int, timeout: float = 5.0) -> list[RtpPacket]:
    loop = asyncio.get_running_loop()
    out = []
    for _ in range(count):
        data, _addr = await asyncio.wait_for(loop.sock_recvfrom(sock, 2048), timeout)
        out.append(RtpPacket.parse(data))
    return out


def nothing_waiting(sock: socket.socket) -> bool:
    try:
        sock.recvfrom(2048)
    except BlockingIOError:
        return True
    return False


def rtp(seq: int, payload: bytes, *, pt: int = 0, ssrc: int = 0xBEEF, ts: int | None = None) -> bytes:
    return RtpPacket(pt, seq, seq * 160 if ts is None else ts, ssrc, payload).to_bytes()


async def collect(session: RtpSession, count: int) -> list[bytes | None]:
    """Pull frames as the mixer would, keeping the jitter buffer near its target delay (no latency trim)."""
    now = asyncio.get_running_loop().time()
    got: list[bytes | None] = []
    while len(got) < count:
        await wait_until(lambda: session.stats.packets_received >= min(count, len(got) + 3))
        got.append(session.pull_frame(now + len(got) * 0.02))
    return got


async def test_tone_from_a_reaches_b_in_order() -> None:
    sa, sb = udp(), udp()
    a = RtpSession(sa, media(port(sb)), ssrc=0xA)
    b = RtpSession(sb, media(port(sa)), ssrc=0xB, symmetric=False)
    await a.start()
    await b.start()
    frames = tone_frames(25)
    a.play(source_of(frames))
    got = await collect(b, 25)
    a.close()
    b.close()
    assert got == [PCMU.decode(PCMU.encode(f)) for f in frames]  # exact G.711 round trip, in order
    for orig, dec in zip(frames, got, strict=True):
        assert dec is not None
        a_s, b_s = memoryview(orig).cast("h"), memoryview(dec).cast("h")
        assert all(abs(x - y) <= 512 for x, y in zip(a_s, b_s, strict=True))  # within µ-law step at 12000
    assert a.stats.packets_sent == 25 and a.stats.bytes_sent == 25 * 172
    assert b.stats.bytes_received == 25 * 172 and b.rx_stats.received == 24  # A.1 probation eats one
    assert b.stats.malformed == b.stats.unknown_pt == b.stats.wrong_source == 0


async def test_headers_marker_sequence_timestamp() -> None:
    sa, rx = udp(), udp()
    a = RtpSession(sa, media(port(rx)), ssrc=0x1234, initial_sequence=65530, initial_timestamp=2**32 - 320)
    await a.start()
    a.play(source_of(tone_frames(10)))
    packets = await drain(rx, 10)
    a.close()
    assert [p.sequence for p in packets] == [(65530 + i) % 65536 for i in range(10)]
    assert [p.timestamp for p in packets] == [(2**32 - 320 + 160 * i) % 2**32 for i in range(10)]
    assert [p.marker for p in packets] == [True] + [False] * 9
    assert {p.ssrc for p in packets} == {0x1234} and {p.payload_type for p in packets} == {0}
    assert all(len(p.payload) == 160 for p in packets)


@pytest.mark.parametrize("direction", [Direction.RECVONLY, Direction.INACTIVE])
async def test_hold_sends_nothing_then_resume_continues_stream(direction: Direction) -> None:
    sa, rx = udp(), udp()
    a = RtpSession(sa, media(port(rx), direction=direction), ssrc=7)
    await a.start()
    a.play(lambda: bytes(320))
    pacer = a.pacer
    assert pacer is not None
    await wait_until(lambda: pacer.n >= 10)
    assert a.stats.packets_sent == 0 and nothing_waiting(rx)
    # Resume with a codec change (re-INVITE): sequence continues, the clock ran on during hold.
    a.update(media(port(rx), codec=PCMA_FMT))
    packets = await drain(rx, 3)
    a.close()
    assert [p.sequence for p in packets] == [0, 1, 2]
    assert packets[0].marker and not packets[1].marker
    assert packets[0].timestamp >= 10 * 160 and packets[0].timestamp % 160 == 0
    assert [p.timestamp - packets[0].timestamp for p in packets] == [0, 160, 320]
    assert {p.payload_type for p in packets} == {8} and packets[0].payload == PCMA.silence(160)


async def test_dtmf_1123_hash_arrives_once_per_digit() -> None:
    sa, sb = udp(), udp()
    digits: list[DtmfDigit] = []
    a = RtpSession(sa, media(port(sb)), ssrc=0xA)
    b = RtpSession(sb, media(port(sa)), ssrc=0xB, on_dtmf=digits.append)
    await a.start()
    await b.start()
    a.play(lambda: bytes(320))  # audio around and between the events
    a.send_dtmf("1123#")
    await wait_until(lambda: len(digits) == 5)
    await wait_until(lambda: not a._dtmf_queue and not a._dtmf_packets)
    await wait_until(lambda: b.stats.packets_received == a.stats.packets_sent)
    a.close()
    b.close()
    assert "".join(d.digit for d in digits) == "1123#"
    assert all(d.duration_ms == 160 and d.ssrc == 0xA for d in digits)
    assert b.stats.dtmf_digits == 5 and b.stats.unknown_pt == 0


async def test_send_dtmf_without_telephone_event_is_refused() -> None:
    s = udp()
    a = RtpSession(s, media(9, dtmf=None), ssrc=1)
    with pytest.raises(ValueError):
        a.send_dtmf("1")
    s.close()


async def test_bad_input_is_counted_and_stream_survives() -> None:
    sb, peer, intruder = udp(), udp(), udp()
    b = RtpSession(sb, media(port(peer)), ssrc=0xB, symmetric=False)
    await b.start()
    dest = ("127.0.0.1", port(sb))
    frames = tone_frames(8)  # <= 10 buffered at any time: no jitter-buffer latency trim
    bad = [
        b"garbage, not RTP at all",
        b"\x80\x00",  # short
        bytes([0x40]) + bytes(20),  # version 1
        rtp(900, bytes(4), pt=96),  # unknown payload type
        rtp(901, bytes(2000)),  # oversized
        bytes([0xA0]) + bytes(11),  # padding flag without room
    ]
    for i, frame in enumerate(frames):
        peer.sendto(rtp(i, PCMU.encode(frame)), dest)
        peer.sendto(bad[i % len(bad)], dest)
        intruder.sendto(rtp(i, PCMU.encode(bytes(320)), ssrc=0xEE), dest)
        await asyncio.sleep(0)
    got = await collect(b, 8)
    await wait_until(lambda: b.stats.packets_received == 8 and b.stats.wrong_source == 8)
    await wait_until(lambda: b.stats.malformed + b.stats.unknown_pt == 8)
    b.close()
    assert got == [PCMU.decode(PCMU.encode(f)) for f in frames]
    assert b.stats.unknown_pt == 1 and b.stats.malformed == 7
    assert b.stats.last_source == ("127.0.0.1", port(peer)) and b.remote == ("127.0.0.1", port(peer))
    for s in (peer, intruder):
        s.close()


async def test_symmetric_latches_to_real_source() -> None:
    sb, nat, other = udp(), udp(), udp()
    b = RtpSession(sb, media(9), ssrc=0xB)  # SDP says port 9; the phone really sends from `nat`
    await b.start()
    dest = ("127.0.0.1", port(sb))
    nat.sendto(b"junk first: must not latch", dest)
    nat.sendto(rtp(0, bytes(4), pt=13), dest)  # CN, not negotiated: must not latch
    await wait_until(lambda: b.stats.malformed == 1 and b.stats.unknown_pt == 1)
    assert b.remote == ("127.0.0.1", 9)
    nat.sendto(rtp(1, PCMU.encode(bytes(320))), dest)
    await wait_until(lambda: b.stats.packets_received == 1)
    assert b.remote == ("127.0.0.1", port(nat)) and b.stats.latches == 1
    other.sendto(rtp(2, PCMU.encode(bytes(320))), dest)  # latched: a later stranger is dropped
    await wait_until(lambda: b.stats.wrong_source == 1)
    b.play(source_of(tone_frames(2)))
    packets = await drain(nat, 2)  # our audio goes back to where the phone's came from
    assert [p.sequence for p in packets] == [0, 1]
    assert b.remote == ("127.0.0.1", port(nat))
    b.close()
    for s in (nat, other):
        s.close()


async def test_flood_is_dropped() -> None:
    sb, peer = udp(), udp()
    b = RtpSession(sb, media(port(peer)), ssrc=0xB, symmetric=False)
    await b.start()
    dest = ("127.0.0.1", port(sb))
    sent = 0
    for batch in range(15):
        for i in range(20):
            peer.sendto(rtp(batch * 20 + i, bytes(160)), dest)
            sent += 1
        await asyncio.sleep(0.001)
    # Each tick reads at most MAX_READS_PER_TICK; the flood guard then drops what exceeds its rate and the
    # kernel drops what no longer fits the socket buffer. Wait until the socket is drained.
    seen = -1
    while seen != b.stats.packets_received + b.stats.flood_drops:
        seen = b.stats.packets_received + b.stats.flood_drops
        await asyncio.sleep(0.1)
    b.close()
    peer.close()
    assert b.stats.flood_drops > 0
    assert b.stats.packets_received <= FLOOD_FACTOR * 50  # the guard's budget for one second at 20 ms
    assert b.stats.packets_received + b.stats.flood_drops <= sent


def test_pacer_absolute_deadlines_and_skip() -> None:
    p = Pacer(1000.0, 0.02)
    deadlines = []
    now = 1000.0
    for _ in range(100):
        deadlines.append(p.deadline())
        now = p.deadline() + 0.015  # every callback 15 ms late: still no drift, no skip
        assert p.advance(now) == 0
    assert deadlines == [1000.0 + n * 0.02 for n in range(100)]
    # 3 frames late: caught up, not skipped. A 500 ms stall: skip to the current slot.
    assert p.advance(p.deadline() + 0.059) == 0
    n_before = p.n
    skipped = p.advance(p.deadline() + 0.51)  # tick n_before ran 510 ms late
    assert p.n == n_before + 25  # the slot `now` falls in
    assert skipped == 24  # n_before + 1 .. n_before + 24 never run
    assert p.deadline() == 1000.0 + p.n * 0.02


async def test_session_pacing_uses_absolute_call_at_deadlines_and_skips_a_stall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ticker = TickScheduler.for_loop(asyncio.get_running_loop())
    scheduled: list[float] = []
    real_call_at = ticker.call_at

    def recording_call_at(when: float, callback: Callable[[], None]) -> None:
        if getattr(callback, "__name__", "") == "_tick":
            scheduled.append(when)
        real_call_at(when, callback)

    monkeypatch.setattr(ticker, "call_at", recording_call_at)
    sa, rx = udp(), udp()
    a = RtpSession(sa, media(port(rx)), ssrc=1)
    await a.start()
    a.play(lambda: bytes(320))
    await wait_until(lambda: a.stats.packets_sent >= 10)
    time.sleep(0.3)  # block the loop: 15 frames missed
    sent_before = a.stats.packets_sent
    await wait_until(lambda: a.stats.packets_sent >= sent_before + 10)
    a.close()
    pacer = a.pacer
    assert pacer is not None
    t0 = pacer.t0
    ns = [round((w - t0) / 0.02) for w in scheduled]
    assert scheduled == [t0 + n * 0.02 for n in ns]  # exactly on the grid, never accumulated
    assert ns[0] == 0 and all(b > a for a, b in itertools.pairwise(ns))
    jumps = sum(b - a - 1 for a, b in itertools.pairwise(ns))
    assert jumps == a.stats.late_ticks_skipped >= 15 - 3 - 1
    # No burst: one packet per executed tick; the RTP clock jumped over the skipped slots.
    packets = await drain(rx, a.stats.packets_sent)
    seqs = [p.sequence for p in packets]
    assert seqs == list(range(len(packets)))
    ts_gaps = [(b.timestamp - a.timestamp) // 160 - 1 for a, b in itertools.pairwise(packets)]
    assert sum(ts_gaps) == a.stats.late_ticks_skipped
    assert all(p.timestamp == n * 160 for p, n in zip(packets, ns, strict=False))
    assert sum(p.marker for p in packets) == 1 + sum(1 for g in ts_gaps if g)


async def test_idle_leg_sends_nothing_and_resumes_on_the_grid() -> None:
    sa, rx = udp(), udp()
    a = RtpSession(sa, media(port(rx)), ssrc=0x99, initial_timestamp=0)
    await a.start()
    await asyncio.sleep(0.2)
    assert nothing_waiting(rx) and a.stats.packets_sent == 0
    a.play(source_of(tone_frames(5)))
    packets = await drain(rx, 5)
    a.close()
    # the RTP clock ran on over the idle ticks: the first timestamp is the tick's grid position
    first_tick = packets[0].timestamp // 160
    assert packets[0].timestamp % 160 == 0 and first_tick >= 10  # >= 0.2 s of 20 ms ticks went by
    assert [p.timestamp for p in packets] == [packets[0].timestamp + 160 * i for i in range(5)]
    assert packets[0].marker and not any(p.marker for p in packets[1:])


async def test_a_backlog_is_drained_in_one_tick_a_fresh_packet_ends_the_reads() -> None:
    sb, peer = udp(), udp()
    b = RtpSession(sb, media(port(peer)), ssrc=0xB, symmetric=False)
    await b.start()
    loop = asyncio.get_running_loop()
    # Stop the leg's own ticks from reading: take the pacer away (the tick returns at once without it).
    pacer, b._pacer = b._pacer, None
    dest = ("127.0.0.1", port(sb))
    for seq in range(3):
        peer.sendto(rtp(seq, bytes(160)), dest)
    await asyncio.sleep(0.05)
    # Every packet waited longer than a frame (as after a stall): all are read in one go.
    b._receive(loop.time())
    assert b.stats.packets_received == 3
    for seq in range(3, 6):
        peer.sendto(rtp(seq, bytes(160)), dest)  # loopback: queued on the socket when sendto returns
    # Fresh packets: one read per tick, the next one waits for the next tick.
    b._receive(loop.time())
    assert b.stats.packets_received == 4
    b._pacer = pacer
    b.close()
    peer.close()
