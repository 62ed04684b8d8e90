"""RTP port reservations: an even UDP port per call leg for RTP and the odd port above it for RTCP
(RFC 3550 §11), both bound and held open so nobody else takes them, and released together.

The media engine later receives on the reserved sockets; signalling only needs the RTP number for SDP.
"""

from __future__ import annotations

import socket


class PortRangeExhausted(Exception):
    """Every port pair of the configured RTP range is in use."""


class RtpPortReservation:
    def __init__(self, sock: socket.socket, port: int, rtcp_socket: socket.socket | None = None) -> None:
        self.socket: socket.socket | None = sock
        self.port = port
        self.rtcp_socket = rtcp_socket  # bound to port + 1; None when the allocator reserves RTP only

    @property
    def rtcp_port(self) -> int | None:
        return self.port + 1 if self.rtcp_socket is not None else None

    def release(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None
        if self.rtcp_socket is not None:
            self.rtcp_socket.close()
            self.rtcp_socket = None


class RtpPortAllocator:
    """Hands out even ports from [low, high) round-robin, skipping ports the OS has in use.

    With ``rtcp`` (the default) each reservation is a pair, even port for RTP and port + 1 for RTCP,
    both inside [low, high); a pair is skipped when either port is taken.
    """

    def __init__(self, host: str, low: int, high: int, *, rtcp: bool = True) -> None:
        self._host = host
        self._low = low + (low % 2)
        self._high = high
        self._rtcp = rtcp
        self._last = high - 2 if rtcp else high - 1  # highest usable even port is <= this
        self._next = self._low

    def allocate(self) -> RtpPortReservation:
        span = (self._last - self._low) // 2 + 1
        for _ in range(span):  # empty when the range cannot hold one port (pair)
            port = self._next
            self._next += 2
            if self._next > self._last:
                self._next = self._low
            rtp = self._bind(port)
            if rtp is None:
                continue
            if not self._rtcp:
                return RtpPortReservation(rtp, port)
            rtcp = self._bind(port + 1)
            if rtcp is None:
                rtp.close()
                continue
            return RtpPortReservation(rtp, port, rtcp)
        what = "even/odd UDP port pair" if self._rtcp else "even UDP port"
        raise PortRangeExhausted(f"no free {what} in {self._low}-{self._high} on {self._host}")

    def _bind(self, port: int) -> socket.socket | None:
        sock = socket.socket(socket.AF_INET6 if ":" in self._host else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self._host, port))
        except OSError:
            sock.close()
            return None
        sock.setblocking(False)
        return sock
