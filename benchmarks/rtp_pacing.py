"""RTP send pacing of one RtpSession, measured at a loopback receiver (issue 3, item 2).

    .venv/bin/python benchmarks/rtp_pacing.py [--seconds 10]

A receiver thread (blocking socket, off the event loop) stamps each packet with ``time.monotonic_ns``; the
table gives packets, mean interval and the p50/p99/max absolute deviation of intervals from ptime, once with
the stdlib asyncio loop and once with uvloop (when installed). A measurement, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import socket
import statistics
import threading
import time
from collections.abc import Callable

from ccdaemon.media.session import RtpSession
from ccdaemon.sip.offer_answer import NegotiatedMedia
from ccdaemon.sip.sdp import Direction, MediaFormat

FRAME = bytes(320)


def _receiver(sock: socket.socket, stamps: list[int], stop: threading.Event) -> None:
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            sock.recv(2048)
        except TimeoutError:
            continue
        stamps.append(time.monotonic_ns())


async def _run(seconds: float, rx_port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    media = NegotiatedMedia(
        remote_address="127.0.0.1",
        remote_port=rx_port,
        codec=MediaFormat(0, "PCMU", 8000),
        dtmf_payload_type=101,
        local_direction=Direction.SENDRECV,
        remote_direction=Direction.SENDRECV,
        ptime=20,
    )
    session = RtpSession(sock, media, ssrc=0x5EED)
    await session.start()
    session.play(lambda: FRAME)
    await asyncio.sleep(seconds)
    session.close()


def measure(name: str, runner: Callable[[float, int], None], seconds: float) -> str:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    stamps: list[int] = []
    stop = threading.Event()
    thread = threading.Thread(target=_receiver, args=(rx, stamps, stop), daemon=True)
    thread.start()
    runner(seconds, int(rx.getsockname()[1]))
    time.sleep(0.3)
    stop.set()
    thread.join()
    rx.close()
    intervals = [(b - a) / 1e6 for a, b in itertools.pairwise(stamps)]
    dev = sorted(abs(i - 20.0) for i in intervals)
    if not dev:
        return f"{name:<10} no packets"

    def pct(p: float) -> float:
        return dev[min(len(dev) - 1, int(p * len(dev)))]

    return (
        f"{name:<10} {len(stamps):>8} {statistics.fmean(intervals):>10.3f} "
        f"{pct(0.50):>9.3f} {pct(0.99):>9.3f} {dev[-1]:>9.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"one RtpSession, ptime 20 ms, {args.seconds:g} s; expected packets ~ {args.seconds / 0.02:.0f}")
    print(f"{'loop':<10} {'packets':>8} {'mean ms':>10} {'p50 dev':>9} {'p99 dev':>9} {'max dev':>9}")
    print(measure("asyncio", lambda s, p: asyncio.run(_run(s, p)), args.seconds))
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        print("uvloop     not installed")
        return
    print(measure("uvloop", lambda s, p: uvloop.run(_run(s, p)), args.seconds))


if __name__ == "__main__":
    main()
