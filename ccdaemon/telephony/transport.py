"""SIP over UDP and TCP: sockets only.  Parsing and framing stay in the sans-I/O core.

Datagrams are handed up as bytes; TCP byte streams are cut into messages by
:class:`ccdaemon.sip.framing.StreamFramer`.  A TLS transport would be another
``asyncio.Protocol`` fed by the same framer (the ``Endpoint.transport`` is already carried).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import cast

from ..sip.address import Endpoint
from ..sip.errors import ParseError
from ..sip.framing import StreamFramer
from ..sip.message import DEFAULT_LIMITS, Limits, SipMessage

log = logging.getLogger(__name__)

DatagramHandler = Callable[[bytes, Endpoint], None]
MessageHandler = Callable[[SipMessage, Endpoint], None]
ErrorHandler = Callable[[ParseError, Endpoint], None]

_MAX_PENDING_CONNECT_BYTES = 256 * 1024
# A burst of calls (or a GC pause) must not overflow the kernel's default ~208 KiB buffer: a
# dropped INVITE costs the caller a 500 ms retransmission. The kernel caps it at net.core.rmem_max.
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024
MAX_CONNECTIONS_PER_HOST = 32  # a PBX needs one or two; more from one host is a flood
MAX_CONNECTIONS = 1024


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, manager: TransportManager) -> None:
        self._manager = manager

    def datagram_received(self, data: bytes, addr: tuple[str, int] | tuple[str, int, int, int]) -> None:
        self._manager.on_datagram(data, Endpoint(addr[0], addr[1], "udp"))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: the transaction timers deal with the loss
        log.debug("UDP error: %s", exc)


class _TcpProtocol(asyncio.Protocol):
    def __init__(self, manager: TransportManager, limits: Limits) -> None:
        self._manager = manager
        self._framer = StreamFramer(limits=limits)
        self.transport: asyncio.WriteTransport | None = None
        self.peer: Endpoint | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not an asyncio.Transport subclass: rely on the methods only
        self.transport = cast(asyncio.WriteTransport, transport)
        host, port = transport.get_extra_info("peername")[:2]
        peer = Endpoint(host, port, "tcp")
        if not self._manager.register_connection(peer, self):
            transport.close()  # over the bound: refuse before reading a byte
            return
        self.peer = peer

    def data_received(self, data: bytes) -> None:
        if self.peer is None:
            return
        for item in self._framer.feed(data):
            if isinstance(item, ParseError):
                self._manager.on_stream_error(item, self.peer)
            else:
                self._manager.on_message(item, self.peer)
        if self._framer.pong_needed and self.transport is not None:
            self.transport.write(b"\r\n")
        if self._framer.broken and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            self._manager.unregister_connection(self.peer, self)

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


class TransportManager:
    """Owns the listening sockets and TCP connections; sends to an :class:`Endpoint`."""

    def __init__(
        self,
        *,
        on_datagram: DatagramHandler,
        on_message: MessageHandler,
        on_stream_error: ErrorHandler,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.on_datagram = on_datagram
        self.on_message = on_message
        self.on_stream_error = on_stream_error
        self.on_unreachable: Callable[[Endpoint], None] = lambda dest: None
        self._limits = limits
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp_server: asyncio.Server | None = None
        self._connections: dict[tuple[str, int], _TcpProtocol] = {}
        self._connecting: dict[tuple[str, int], list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.udp_address: tuple[str, int] | None = None
        self.refused_connections = 0
        self.tcp_address: tuple[str, int] | None = None

    async def listen_udp(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(host, port)
        )
        self._udp = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
                granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2  # Linux reports 2x
                if granted < UDP_RECEIVE_BUFFER:
                    log.info(
                        "SIP receive buffer is %d KiB (capped by net.core.rmem_max); %d KiB absorbs "
                        "call bursts better, see docs/deployment.md",
                        granted // 1024,
                        UDP_RECEIVE_BUFFER // 1024,
                    )
            except OSError as exc:
                log.warning("could not enlarge the SIP receive buffer: %s", exc)
        self.udp_address = transport.get_extra_info("sockname")[:2]
        return self.udp_address

    async def listen_tcp(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self._tcp_server = await loop.create_server(
            lambda: _TcpProtocol(self, self._limits), host=host, port=port, reuse_address=True
        )
        sock = self._tcp_server.sockets[0]
        self.tcp_address = sock.getsockname()[:2]
        return self.tcp_address

    def register_connection(self, peer: Endpoint, protocol: _TcpProtocol) -> bool:
        """Track a connection; False when the total or per-host bound is reached."""
        same_host = sum(1 for host, _ in self._connections if host == peer.host)
        if len(self._connections) >= MAX_CONNECTIONS or same_host >= MAX_CONNECTIONS_PER_HOST:
            self.refused_connections += 1
            log.warning("refused TCP connection from %s: too many connections", peer)
            return False
        self._connections[(peer.host, peer.port)] = protocol
        return True

    def unregister_connection(self, peer: Endpoint, protocol: _TcpProtocol) -> None:
        if self._connections.get((peer.host, peer.port)) is protocol:
            del self._connections[(peer.host, peer.port)]

    def send(self, data: bytes, dest: Endpoint) -> None:
        """Send without blocking; TCP connects on first use and queues until connected."""
        if dest.transport == "udp":
            if self._udp is None:
                log.warning("no UDP socket to send to %s", dest)
                return
            self._udp.sendto(data, (dest.host, dest.port))
            return
        key = (dest.host, dest.port)
        conn = self._connections.get(key)
        if conn is not None:
            conn.send(data)
            return
        pending = self._connecting.get(key)
        if pending is not None:
            if sum(map(len, pending)) + len(data) <= _MAX_PENDING_CONNECT_BYTES:
                pending.append(data)
            return
        self._connecting[key] = [data]
        task = asyncio.get_running_loop().create_task(self._connect(key), name=f"sip-tcp-connect-{dest}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, key: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(lambda: _TcpProtocol(self, self._limits), key[0], key[1]), timeout=10
            )
        except (OSError, TimeoutError) as exc:
            log.warning("TCP connect to %s:%s failed: %s", key[0], key[1], exc)
            self._connecting.pop(key, None)
            self.on_unreachable(Endpoint(key[0], key[1], "tcp"))
            return
        for data in self._connecting.pop(key, []):
            protocol.send(data)

    def has_connection(self, dest: Endpoint) -> bool:
        return (dest.host, dest.port) in self._connections

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self._connections.values()):
            if conn.transport is not None:
                conn.transport.close()
        self._connections.clear()
        if self._tcp_server is not None:
            self._tcp_server.close()
            await self._tcp_server.wait_closed()
            self._tcp_server = None
            self.tcp_address = None
        if self._udp is not None:
            self._udp.close()
            self._udp = None
            self.udp_address = None
