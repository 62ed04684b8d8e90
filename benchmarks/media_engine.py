#!/usr/bin/env python3
"""Media engine cost without SIP: N bridged, recorded calls on loopback fed by a load process.

Each call is two ``RtpSession`` legs joined by a ``Bridge`` with a stereo recording tap, exactly as the
daemon runs them, but set up directly (no signalling) so the figures are the engine's own. A separate
load process plays the two phones of every call: it sends one 20 ms PCMU packet per leg per tick from
one socket and counts what comes back. The table gives, per N, the engine process's CPU (user + system,
so the kernel's UDP work is included) in % of one core per call, RSS per call, the RTP loss in both
directions and the send-interval deviation measured inside the engine process at ``sendto``.

    .venv/bin/python benchmarks/media_engine.py --calls 50,100,200 --seconds 10
    .venv/bin/python benchmarks/media_engine.py --calls 20 --seconds 3 --no-uvloop

The load process is Python too and needs about as much CPU as the engine; on a 2-core machine the engine
figures stay meaningful while the two together fit in the two cores. For the full path (sipp phones,
kamailio, SIP) see ``capacity.py``. Only 127.0.0.1 is used; the load process is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ccdaemon.media import g711  # noqa: E402
from ccdaemon.media.bridge import Bridge  # noqa: E402
from ccdaemon.media.recorder import RecordingService  # noqa: E402
from ccdaemon.media.session import RtpSession  # noqa: E402
from ccdaemon.sip.offer_answer import NegotiatedMedia  # noqa: E402
from ccdaemon.sip.sdp import Direction, MediaFormat  # noqa: E402

PTIME = 0.020
HOST = "127.0.0.1"
_RTP = struct.Struct("!BBHII")


# --- the load process ---------------------------------------------------------------------------------


def _tone_payload(freq: float, seconds: float = 1.0) -> list[bytes]:
    samples = [int(8000 * math.sin(2 * math.pi * freq * n / 8000)) for n in range(int(8000 * seconds))]
    pcm = struct.pack(f"<{len(samples)}h", *samples)
    ulaw = g711.ulaw_encode(pcm)
    return [ulaw[i : i + 160] for i in range(0, len(ulaw), 160)]


def run_loadgen(sock: socket.socket, ports: list[int], seconds: float) -> dict[str, Any]:
    """Send 50 packets/s to every port from one bound socket; count what comes back."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    sock.setblocking(False)
    frames = _tone_payload(440.0)
    received = 0
    t0 = time.monotonic()
    n = 0
    sent = 0
    late = 0
    end = t0 + seconds
    while True:
        deadline = t0 + n * PTIME
        now = time.monotonic()
        if deadline > end:
            break
        # Drain while waiting for the tick.
        while now < deadline:
            try:
                while True:
                    sock.recv(2048)
                    received += 1
            except BlockingIOError:
                pass
            pause = min(deadline - now, 0.002)
            if pause > 0:
                time.sleep(pause)
            now = time.monotonic()
        if now - deadline > PTIME:
            late += 1
        payload = frames[n % len(frames)]
        for i, port in enumerate(ports):
            header = _RTP.pack(0x80, 0, n & 0xFFFF, (n * 160) & 0xFFFFFFFF, 0x1000 + i)
            try:
                sock.sendto(header + payload, (HOST, port))
                sent += 1
            except BlockingIOError:
                pass
        n += 1
    drain_end = time.monotonic() + 0.3
    while time.monotonic() < drain_end:
        try:
            sock.recv(2048)
            received += 1
        except BlockingIOError:
            time.sleep(0.005)
    return {"sent": sent, "received": received, "ticks": n, "late_ticks": late}


# --- the engine side ----------------------------------------------------------------------------------


class _Leg:
    """What Bridge needs from a call leg, over a bare RtpSession (Call does the same)."""

    def __init__(self, session: RtpSession) -> None:
        self.session = session

    def play(self, source: Any) -> None:
        self.session.play(source)

    def pull_frame(self) -> bytes | None:
        return self.session.pull_frame()


@dataclass
class StepResult:
    calls: int
    cpu_percent: float
    cpu_per_call: float
    rss_mib: float
    rss_per_call_kib: float
    sent_by_engine: int
    expected_from_engine: int
    loadgen_sent: int
    engine_received: int
    engine_lost: int
    skipped_ticks: int
    dev_p99_ms: float
    dev_max_ms: float
    recorded_bytes: int


def _media(port: int) -> NegotiatedMedia:
    return NegotiatedMedia(
        remote_address=HOST,
        remote_port=port,
        codec=MediaFormat(0, "PCMU", 8000),
        dtmf_payload_type=101,
        local_direction=Direction.SENDRECV,
        remote_direction=Direction.SENDRECV,
        ptime=20,
    )


def _rss_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def run_step(calls: int, seconds: float, record_dir: Path, sample: int) -> StepResult:
    loop = asyncio.get_running_loop()
    rss0 = _rss_kib()
    service = RecordingService(record_dir, repair_on_start=False)
    socks = []
    for _ in range(2 * calls):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((HOST, 0))
        s.setblocking(False)
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    # Start the load process first: its address is where the engine sends (symmetric latching would
    # find it anyway; setting it avoids sending the first packets nowhere).
    proc = subprocess.Popen(
        [sys.executable, __file__, "--loadgen", "--seconds", str(seconds + 2.0)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(ports) + "\n")
    proc.stdin.flush()
    peer_port = int(proc.stdout.readline())
    sessions: list[RtpSession] = []
    bridges: list[Bridge] = []
    writers = []
    send_times: list[list[float]] = [[] for _ in range(sample)]
    try:
        for i in range(calls):
            legs = []
            for j in range(2):
                session = RtpSession(socks[2 * i + j], _media(peer_port), ssrc=0x2000 + 2 * i + j)
                await session.start()
                sessions.append(session)
                legs.append(_Leg(session))
            writer = service.open_recording(f"bench-{i}")
            writers.append(writer)
            bridge = Bridge(legs[0], legs[1], recorder=writer)
            bridge.start()
            bridges.append(bridge)
        for k in range(min(sample, len(sessions))):
            _instrument(sessions[k], send_times[k], loop)
        await asyncio.sleep(1.0)  # settle: jitter buffers filled, recordings opened
        cpu0, t0 = _cpu(), time.monotonic()
        sent0 = sum(s.stats.packets_sent for s in sessions)
        recv0 = sum(s.stats.packets_received for s in sessions)
        skipped0 = sum(s.stats.late_ticks_skipped for s in sessions)
        for times in send_times:
            times.clear()
        await asyncio.sleep(seconds)
        cpu1, t1 = _cpu(), time.monotonic()
        sent1 = sum(s.stats.packets_sent for s in sessions)
        recv1 = sum(s.stats.packets_received for s in sessions)
        skipped1 = sum(s.stats.late_ticks_skipped for s in sessions)
        rss1 = _rss_kib()
        lost = sum(max(0, s.rx_stats.lost) for s in sessions)
    finally:
        for bridge in bridges:
            bridge.stop()
        for session in sessions:
            session.close()
        for writer in writers:
            writer.close_recording()
        await service.aclose()
        out, _ = proc.communicate(timeout=30)
    load = json.loads(out.strip().splitlines()[-1])
    window = t1 - t0
    devs = sorted(abs((b - a) - PTIME) * 1000 for times in send_times for a, b in itertools.pairwise(times))
    cpu_pct = 100 * (cpu1 - cpu0) / window
    return StepResult(
        calls=calls,
        cpu_percent=cpu_pct,
        cpu_per_call=cpu_pct / calls,
        rss_mib=rss1 / 1024,
        rss_per_call_kib=(rss1 - rss0) / calls,
        sent_by_engine=sent1 - sent0,
        expected_from_engine=round(2 * calls * window / PTIME),
        loadgen_sent=int(load["sent"]),
        engine_received=recv1 - recv0,
        engine_lost=lost,
        skipped_ticks=skipped1 - skipped0,
        dev_p99_ms=devs[int(0.99 * (len(devs) - 1))] if devs else math.nan,
        dev_max_ms=devs[-1] if devs else math.nan,
        recorded_bytes=service.stats.bytes_written,
    )


def _instrument(session: RtpSession, times: list[float], loop: asyncio.AbstractEventLoop) -> None:
    """Record the loop time of every packet this leg sends (wraps the one send method)."""
    original = session._send

    def timed(data: bytes) -> None:
        times.append(time.monotonic())
        original(data)

    session._send = timed  # type: ignore[method-assign]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", default="50,100,200", help="comma-separated numbers of concurrent calls")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per step")
    parser.add_argument("--sample", type=int, default=20, help="legs whose send intervals are measured")
    parser.add_argument("--no-uvloop", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        return _loadgen_main(json.loads(sys.stdin.readline()), args.seconds)
    use_uvloop = False
    if not args.no_uvloop:
        try:
            import uvloop  # noqa: PLC0415 - optional accelerator

            use_uvloop = True
        except ImportError:
            pass
    results = []
    for calls in (int(c) for c in args.calls.split(",")):
        with tempfile.TemporaryDirectory(prefix="ccd-media-") as tmp:
            if use_uvloop:
                result = uvloop.run(run_step(calls, args.seconds, Path(tmp), args.sample))
            else:
                result = asyncio.run(run_step(calls, args.seconds, Path(tmp), args.sample))
        results.append(result)
        _print_row(result, header=len(results) == 1, loop_name="uvloop" if use_uvloop else "asyncio")
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2))
    return 0


def _loadgen_main(ports: list[int], seconds: float) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    print(sock.getsockname()[1], flush=True)  # the engine sends there
    print(json.dumps(run_loadgen(sock, ports, seconds)), flush=True)
    return 0


def _print_row(r: StepResult, *, header: bool, loop_name: str) -> None:
    if header:
        print(f"loop: {loop_name}, python {sys.version.split()[0]}, pid {os.getpid()}")
        print(
            "| calls | CPU % | CPU %/call | RSS MiB | RSS KiB/call | engine sent/expected | "
            "engine recv | lost (RTP seq) | skipped ticks | p99 dev ms | max dev ms |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {r.calls} | {r.cpu_percent:.1f} | {r.cpu_per_call:.3f} | {r.rss_mib:.0f} | "
        f"{r.rss_per_call_kib:.0f} | {r.sent_by_engine}/{r.expected_from_engine} | "
        f"{r.engine_received} | {r.engine_lost} | {r.skipped_ticks} | "
        f"{r.dev_p99_ms:.2f} | {r.dev_max_ms:.2f} |",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
