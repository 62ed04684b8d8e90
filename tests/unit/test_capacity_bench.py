"""The media capacity benchmark's pure helpers (benchmarks/capacity.py): audio, pcap parsing, pacing,
kernel counters, snapshot arithmetic. The benchmark itself needs kamailio and sipp and is run by hand."""

from __future__ import annotations

import argparse
import math
import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import capacity


def ulaw_decode(code: int) -> int:
    """ITU-T G.711 µ-law expansion (reference for the encoder under test)."""
    code = ~code & 0xFF
    sign, exponent, mantissa = code & 0x80, (code >> 4) & 0x07, code & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return -magnitude if sign else magnitude


def test_ulaw_known_codes() -> None:
    assert capacity.ulaw_encode(0) == 0xFF
    assert capacity.ulaw_encode(-1) == 0x7F
    assert capacity.ulaw_encode(32767) == 0x80
    assert capacity.ulaw_encode(-32768) == 0x00


def test_ulaw_round_trip_stays_within_one_quantisation_step() -> None:
    for sample in range(-32768, 32768, 37):
        decoded = ulaw_decode(capacity.ulaw_encode(sample))
        step = 8 << max(0, (min(abs(sample), 32635) + 0x84).bit_length() - 8)
        assert abs(decoded - max(-32635, min(32635, sample))) <= step, sample


def test_tone_is_one_second_of_ulaw_that_loops_cleanly() -> None:
    tone = capacity.tone_pcmu(440.0)
    assert len(tone) == 8000
    assert tone[0] == capacity.ulaw_encode(0)
    peak = max(abs(ulaw_decode(b)) for b in tone)
    assert 0.2 * 32767 < peak < 0.3 * 32767


def _frame(src: int, dst: int, payload: bytes, *, proto: int = 17, ethertype: bytes = b"\x08\x00") -> bytes:
    udp = struct.pack("!HHHH", src, dst, 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, proto, 0, b"\x7f\0\0\1", b"\x7f\0\0\1"
    )
    return b"\0" * 12 + ethertype + ip + udp


def _pcap(records: list[tuple[float, bytes]], *, nanoseconds: bool = False, linktype: int = 1) -> bytes:
    magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
    out = struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for at, frame in records:
        seconds = int(at)
        fraction = round((at - seconds) * (1e9 if nanoseconds else 1e6))
        out += struct.pack("<IIII", seconds, fraction, len(frame), len(frame)) + frame
    return out


def _rtp(seq: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0x1234) + b"\xff" * 160


@pytest.mark.parametrize("nanoseconds", [False, True])
def test_read_pcap_yields_udp_packets_only(nanoseconds: bool) -> None:
    data = _pcap(
        [
            (1000.000100, _frame(20000, 40000, _rtp(7))),
            (1000.020200, _frame(40000, 20000, b"x")),
            (1000.030000, _frame(1, 2, b"tcp", proto=6)),
            (1000.040000, _frame(1, 2, b"ipv6", ethertype=b"\x86\xdd")),
        ],
        nanoseconds=nanoseconds,
    )
    packets = list(capacity.read_pcap(data))
    assert [(p.src_port, p.dst_port) for p in packets] == [(20000, 40000), (40000, 20000)]
    assert packets[0].at == pytest.approx(1000.0001, abs=1e-6)
    assert capacity.rtp_sequence(packets[0].payload) == 7
    assert capacity.rtp_sequence(packets[1].payload) is None


def test_read_pcap_refuses_pcapng() -> None:
    with pytest.raises(ValueError, match="pcapng"):
        list(capacity.read_pcap(b"\x0a\x0d\x0d\x0a" + b"\0" * 40))


def test_split_streams_by_direction_of_the_daemon_ports() -> None:
    packets = [
        capacity.UdpPacket(1.0, 20000, 40000, _rtp(1)),
        capacity.UdpPacket(1.0, 40000, 20000, _rtp(9)),
        capacity.UdpPacket(1.02, 20002, 40000, _rtp(2)),
        capacity.UdpPacket(1.02, 5060, 5070, b"sip"),
    ]
    sent, received = capacity.split_streams(packets, {20000, 20002})
    assert sent == {20000: [(1.0, 1)], 20002: [(1.02, 2)]}
    assert received == {20000: [(1.0, 9)]}


def test_pacing_counts_a_skipped_tick_as_one_long_interval() -> None:
    steady = [(i * 0.020, i) for i in range(50)]
    skipped = [(i * 0.020, i) for i in range(10)] + [(0.220 + i * 0.020, 10 + i) for i in range(10)]
    result = capacity.pacing([steady, skipped])
    assert result.streams == 2
    assert result.packets == 70
    assert result.expected == 50 + 21  # the second stream spans 21 slots but sent 20
    assert result.sequence_gaps == 0
    assert result.max_dev_ms == pytest.approx(20.0)
    assert result.p50_dev_ms == pytest.approx(0.0, abs=1e-9)
    assert result.over_2ms == 1


def test_pacing_sees_sequence_gaps_and_wraparound() -> None:
    stream = [(0.0, 65534), (0.02, 65535), (0.04, 0), (0.08, 2)]
    result = capacity.pacing([stream])
    assert result.sequence_gaps == 1
    assert result.mean_interval_ms == pytest.approx(80 / 3)


def test_pacing_of_nothing_is_nan() -> None:
    result = capacity.pacing([[]])
    assert result.streams == 0
    assert math.isnan(result.p99_dev_ms)


def test_kernel_counters() -> None:
    snmp = (
        "Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n"
        "Udp: 100 2 7 90 7 0\n"
        "UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n"
        "UdpLite: 0 0 0 0 0 0\n"
    )
    assert capacity.parse_snmp_udp(snmp)["RcvbufErrors"] == 7
    udp = (
        "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode "
        "ref pointer drops\n"
        " 1: 0100007F:4E20 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 1 2 0000 3\n"
        " 2: 0100007F:4E22 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 2 2 0000 4\n"
        " 3: 0100007F:B3B0 00000000:0000 07 00000000:00034000 00:00000000 00000000 0 0 3 2 0000 900\n"
    )
    assert capacity.udp_socket_drops(udp, lambda port: 20000 <= port <= 29998) == (2, 7)


def test_window_delta_sums_both_roles_and_keeps_maxima() -> None:
    def snap(sent: float, lost: float, jitter: float) -> dict[str, object]:
        return {
            "legs": {
                "caller": {"totals": {"packets_sent": sent, "rx_lost": lost, "rx_jitter_ms_max": jitter}},
                "agent": {"totals": {"packets_sent": sent, "rx_lost": 0.0}},
            }
        }

    delta = capacity.window_delta(snap(100, 1, 3.0), snap(150, 3, 2.0))
    assert delta == {"packets_sent": 100.0, "rx_lost": 2.0, "rx_jitter_ms_max": 2.0}


def test_sample_ports_alternates_roles_lowest_first() -> None:
    ports = [["caller", 20004, 1], ["agent", 20002, 1], ["caller", 20000, 1], ["agent", 20006, 1]]
    assert capacity.sample_ports(ports, 3) == [20002, 20000, 20006]
    assert capacity.sample_ports(ports, 10) == [20002, 20000, 20006, 20004]
    assert capacity.sample_ports([], 5) == []


def test_parse_concurrency() -> None:
    assert capacity.parse_concurrency("50, 100,200") == [50, 100, 200]
    for bad in ("", "10,x", "0", "-5"):
        with pytest.raises(argparse.ArgumentTypeError):
            capacity.parse_concurrency(bad)


def test_goal_misses_name_each_criterion() -> None:
    good = capacity.StepResult(concurrency=500, rate=50, calls_up=500, pcap=True)
    good.loss_pct, good.cpu_per_call_pct = 0.0, 0.05
    good.sent_pacing.p99_dev_ms = 1.5
    assert good.goal_misses() == []
    bad = capacity.StepResult(concurrency=500, rate=50, calls_up=480, pcap=True, rtp_lost=3, kernel_drops=2)
    bad.loss_pct, bad.cpu_per_call_pct, bad.late_ticks_skipped = 0.01, 0.2, 4
    bad.sent_pacing.p99_dev_ms = 2.5
    bad.jb_overflow_drops = 10
    assert len(bad.goal_misses()) == 7
