"""Free loopback ports for real peers.

Kamailio (and baresip) set SO_REUSEADDR and bind an already-used UDP port without any error, so a
port is only handed out when a plain bind (no SO_REUSEADDR) succeeds for *both* UDP and TCP on every
port of the requested span. Ports handed out in this process are remembered and never handed out
twice, so two fixtures of one test cannot collide with each other even before their peers bind.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time

LOOPBACK = "127.0.0.1"

_lock = threading.Lock()
_handed_out: set[int] = set()


def assert_loopback(host: str) -> str:
    """Return ``host`` if it is an IPv4 loopback address (127.0.0.0/8), raise ``ValueError`` otherwise."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"peers may only use loopback IP literals, got {host!r}") from None
    if address.version != 4 or not address.is_loopback:
        raise ValueError(f"peers may only use 127.0.0.0/8, got {host!r}")
    return host


def _bindable(port: int, host: str) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when ``port`` can be bound for both UDP and TCP on ``host`` right now."""
    return _bindable(port, assert_loopback(host))


def free_port(span: int = 1, host: str = LOOPBACK, attempts: int = 200) -> int:
    """Return a port P such that P .. P+span-1 are free for UDP and TCP on ``host``.

    ``span=2`` is what baresip needs (it binds SIP port + 1 for TLS); sipp with ``-mp`` media wants a
    few more. The candidate comes from the kernel (bind to port 0), so it lies in the ephemeral range.
    """
    assert_loopback(host)
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((host, 0))
            base = int(probe.getsockname()[1])
        if base + span - 1 > 65535:
            continue
        candidates = range(base, base + span)
        with _lock:
            if any(p in _handed_out for p in candidates):
                continue
            if all(_bindable(p, host) for p in candidates):
                _handed_out.update(candidates)
                return base
    raise RuntimeError(f"no free span of {span} port(s) on {host} after {attempts} attempts")


def tcp_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts a TCP connection on ``host:port`` right now."""
    try:
        with socket.create_connection((assert_loopback(host), port), timeout=timeout):
            return True
    except OSError:
        return False


def udp_bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((assert_loopback(host), port))
        except OSError:
            return False
    return True


def released(host: str, port: int, *, udp: bool = True, tcp: bool = True) -> bool:
    """True when no process holds ``port`` any more: UDP bindable, TCP refusing connections.

    Unlike ``port_is_free`` this ignores TCP TIME_WAIT left by a stopped server, which blocks a plain
    bind for a minute but not the server itself (kamailio and mosquitto rebind with SO_REUSEADDR).
    """
    return (not udp or udp_bindable(host, port)) and (not tcp or not tcp_accepts(host, port, 0.2))


def wait_for_tcp(host: str, port: int, timeout: float = 10.0, interval: float = 0.02) -> None:
    """Block until something accepts TCP connections on ``host:port``; ``TimeoutError`` otherwise."""
    deadline = time.monotonic() + timeout
    while not tcp_accepts(host, port):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing listens on tcp {host}:{port} after {timeout:.1f}s")
        time.sleep(interval)
