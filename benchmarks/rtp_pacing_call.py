"""RTP pacing of a real call, measured on the wire with dumpcap/tshark (issue 3, item 2).

A baresip caller calls the daemon's user agent through kamailio on loopback; the daemon answers and
plays a looping 1 kHz tone for ``--seconds`` (default 60). dumpcap captures the daemon's RTP leaving
its port; tshark gives each packet's capture time. Prints packets vs duration/20 ms, the mean
interval and the deviation from 20 ms (p50/p99/max). Loopback only; every process started here is
stopped by the harness (by PID). Run: ``.venv/bin/python benchmarks/rtp_pacing_call.py``.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import itertools
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ccdaemon.media.player import Player
from tests.integration.daemon_ua import QUEUE_LINE, running_ua
from tests.peers.audio import write_tone
from tests.peers.peerset import PeerSet

T = TypeVar("T")


def tone(frequency: float, seconds: float) -> bytes:
    return array.array(
        "h",
        (int(0.3 * 32767 * math.sin(2 * math.pi * frequency * n / 8000)) for n in range(int(seconds * 8000))),
    ).tobytes()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))]


async def measure(seconds: float, workdir: Path) -> tuple[int, list[float]]:
    peers = PeerSet(workdir, None, write_tone(workdir / "caller.wav", 440.0, seconds + 60))
    try:
        kamailio = peers.kamailio()
        caller = peers.baresip("300")
        async with running_ua(kamailio) as (_ua, calls):
            caller.dial(kamailio.uri(QUEUE_LINE))
            call = await calls.next_call()
            port = call.rtp.port
            pcap = workdir / "rtp.pcap"
            dumpcap = shutil.which("dumpcap") or "/usr/sbin/dumpcap"
            capture = subprocess.Popen(
                [dumpcap, "-q", "-i", "lo", "-f", f"udp and src port {port}", "-w", str(pcap)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                await asyncio.sleep(1.0)  # dumpcap ready
                await call.answer()
                call.play(Player([tone(1000.0, 1.0)], loop=True).next_frame)
                await asyncio.sleep(seconds)
                call.play(None)
                await asyncio.sleep(0.5)
            finally:
                capture.terminate()
                capture.wait(10)
            await call.hangup()
    finally:
        peers.stop_all()
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-n", "-T", "fields", "-e", "frame.time_epoch"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    times = [float(t) for t in out]
    intervals = [(b - a) * 1000 for a, b in itertools.pairwise(times)]
    return len(times), intervals


def run(coro: Coroutine[Any, Any, T]) -> tuple[T, str]:
    """On uvloop when installed, as the daemon runs."""
    try:
        import uvloop  # noqa: PLC0415 -- optional extra "fast"
    except ImportError:
        return asyncio.run(coro), "asyncio"
    return uvloop.run(coro), "uvloop"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ccdaemon-pacing-") as tmp:
        started = time.monotonic()
        (packets, intervals), loop_name = run(measure(args.seconds, Path(tmp)))
        took = time.monotonic() - started
    deviations = [abs(i - 20.0) for i in intervals]
    expected = args.seconds / 0.020
    print(f"RTP pacing of one answered call, {args.seconds:g} s of tone, loop {loop_name}, run {took:.0f} s")
    print("packets  expected  mean ms   p50 dev ms  p99 dev ms  max dev ms")
    p50, p99 = percentile(deviations, 50), percentile(deviations, 99)
    mean = statistics.fmean(intervals)
    print(f"{packets:7d}  {expected:8.0f}  {mean:7.3f}  {p50:10.3f}  {p99:10.3f}  {max(deviations):10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
