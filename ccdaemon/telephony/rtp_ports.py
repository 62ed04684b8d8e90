"""RTP port reservations: an even UDP port per call leg, held open so nobody else takes it.

The media engine later receives on the reserved socket; signalling only needs the number for SDP.
"""

from __future__ import annotations

import socket


class PortRangeExhausted(Exception):
    """Every even port of the configured RTP range is in use."""


class RtpPortReservation:
    def __init__(self, sock: socket.socket, port: int) -> None:
        self.socket: socket.socket | None = sock
        self.port = port

    def release(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None


class RtpPortAllocator:
    """Hands out even ports from [low, high) round-robin, skipping ports the OS has in use."""

    def __init__(self, host: str, low: int, high: int) -> None:
        self._host = host
        self._low = low + (low % 2)
        self._high = high
        self._next = self._low

    def allocate(self) -> RtpPortReservation:
        span = (self._high - self._low) // 2
        for _ in range(max(span, 1)):
            port = self._next
            self._next += 2
            if self._next >= self._high:
                self._next = self._low
            sock = socket.socket(socket.AF_INET6 if ":" in self._host else socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((self._host, port))
            except OSError:
                sock.close()
                continue
            sock.setblocking(False)
            return RtpPortReservation(sock, port)
        raise PortRangeExhausted(f"no free even UDP port in {self._low}-{self._high} on {self._host}")
