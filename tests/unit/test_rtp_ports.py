"""RTP port reservations (ccdaemon.telephony.rtp_ports): even RTP port + odd RTCP port, held and released
together, on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import pytest

from ccdaemon.telephony.rtp_ports import PortRangeExhausted, RtpPortAllocator, RtpPortReservation

HOST = "127.0.0.1"


def bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_block(size: int) -> int:
    """An even port P with P .. P+size-1 free for UDP right now."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((HOST, 0))
            base = int(probe.getsockname()[1])
        base -= base % 2
        if base + size < 65536 and all(bindable(p) for p in range(base, base + size)):
            return base
    raise RuntimeError("no free block of UDP ports")


@contextlib.contextmanager
def occupied(port: int) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, port))
    try:
        yield sock
    finally:
        sock.close()


def port_of(sock: socket.socket | None) -> int:
    assert sock is not None
    return int(sock.getsockname()[1])


def test_reserves_an_even_rtp_port_and_the_odd_rtcp_port_above_it() -> None:
    base = free_block(4)
    reservation = RtpPortAllocator(HOST, base, base + 4).allocate()
    try:
        assert reservation.port == base and reservation.port % 2 == 0
        assert port_of(reservation.socket) == base
        assert port_of(reservation.rtcp_socket) == base + 1
        assert reservation.rtcp_port == base + 1
        for sock in (reservation.socket, reservation.rtcp_socket):
            assert sock is not None and sock.getblocking() is False
        assert not bindable(base) and not bindable(base + 1)  # held
    finally:
        reservation.release()
    assert bindable(base) and bindable(base + 1)  # released together


def test_release_is_idempotent() -> None:
    base = free_block(2)
    reservation = RtpPortAllocator(HOST, base, base + 2).allocate()
    reservation.release()
    reservation.release()
    assert reservation.socket is None and reservation.rtcp_socket is None


def test_pair_skipped_when_the_rtcp_port_is_taken() -> None:
    base = free_block(4)
    with occupied(base + 1):
        reservation = RtpPortAllocator(HOST, base, base + 4).allocate()
        try:
            assert (reservation.port, port_of(reservation.rtcp_socket)) == (base + 2, base + 3)
            assert bindable(base)  # the even port of the skipped pair was given back
        finally:
            reservation.release()


def test_pair_skipped_when_the_rtp_port_is_taken() -> None:
    base = free_block(4)
    with occupied(base):
        reservation = RtpPortAllocator(HOST, base, base + 4).allocate()
        try:
            assert reservation.port == base + 2
        finally:
            reservation.release()


def test_exhausted_when_every_pair_has_a_taken_port() -> None:
    base = free_block(4)
    with occupied(base + 1), occupied(base + 2):
        with pytest.raises(PortRangeExhausted, match="pair"):
            RtpPortAllocator(HOST, base, base + 4).allocate()
        assert bindable(base) and bindable(base + 3)  # nothing leaked by the failed attempts


def test_round_robin_stays_inside_the_range_and_wraps() -> None:
    base = free_block(6)
    allocator = RtpPortAllocator(HOST, base, base + 6)
    first = [allocator.allocate() for _ in range(3)]
    try:
        assert [r.port for r in first] == [base, base + 2, base + 4]  # the last pair ends at high - 1
        with pytest.raises(PortRangeExhausted):
            allocator.allocate()
        first[1].release()
        again = allocator.allocate()
        assert again.port == base + 2
        again.release()
    finally:
        for r in first:
            r.release()


def test_odd_low_bound_starts_at_the_next_even_port() -> None:
    base = free_block(4)
    reservation = RtpPortAllocator(HOST, base - 1, base + 4).allocate()
    try:
        assert reservation.port == base
    finally:
        reservation.release()


def test_rtp_only_mode_keeps_the_old_behaviour() -> None:
    base = free_block(2)
    reservation = RtpPortAllocator(HOST, base, base + 2, rtcp=False).allocate()
    try:
        assert reservation.port == base
        assert reservation.rtcp_socket is None and reservation.rtcp_port is None
        assert bindable(base + 1)
    finally:
        reservation.release()


def test_reservation_without_rtcp_socket_is_compatible() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    reservation = RtpPortReservation(sock, 1234)
    assert (reservation.port, reservation.rtcp_socket, reservation.rtcp_port) == (1234, None, None)
    reservation.release()
    assert sock.fileno() == -1
