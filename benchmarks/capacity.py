#!/usr/bin/env python3
"""Media capacity benchmark: how many bridged and recorded calls the daemon carries (issue 3, item 11).

sipp callers (RTP: a looping µ-law tone) call through kamailio (the office PBX) to the daemon's queue line;
the daemon answers each call, dials an agent (extension 201 on kamailio, statically routed to a sipp UAS
that answers and streams its own tone), bridges the two legs and records both directions to a stereo WAV.
The daemon side is ``benchmarks/capacity_daemon.py``: the product's own UserAgent, Bridge and
RecordingService on the product's event loop (uvloop when installed). For each concurrency N the calls
build up at ``--rate`` calls/s, then during a steady window of ``--steady-seconds`` with all N calls up this
measures the daemon's CPU (per call), RSS (per call, over the idle daemon), RTP loss (the daemon's receiver
statistics), send ticks it skipped because it was late, kernel drops at its sockets, and the deviation of
its send intervals from 20 ms on the wire (dumpcap on a sample of legs). One table; see benchmarks/README.md.

    .venv/bin/python benchmarks/capacity.py --concurrency 50,100,200,400,800 --json capacity.json
    .venv/bin/python benchmarks/capacity.py --concurrency 10 --steady-seconds 3         # CI smoke, < 60 s

Exit status: 0 every call of every step was bridged and completed, 1 some were not, 2 the set-up failed,
130 interrupted. Every process started here is stopped by its PID (and process group) on the way out, also
on Ctrl-C or SIGTERM. Only 127.0.0.1 is used. The work directory (configs, logs, recordings, captures) is
removed unless a step failed or ``--keep``/``--workdir`` was given; recordings are removed after each step.
"""

from __future__ import annotations

import argparse
import array
import collections
import itertools
import json
import math
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import wave
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# The call-setup benchmark's /proc readings, config writer, process stopping and reporting helpers.
from call_setup import (  # noqa: E402
    CLK_TCK,
    CpuSampler,
    Interrupted,
    SetupError,
    export_ref,
    group_ticks,
    log_problems,
    machine_info,
    machine_ticks,
    parse_override,
    percentile,
    proc_status_kib,
    proc_ticks,
    render_toml,
    set_kamailio_shm,
    signals_unwind,
    stop_popen,
    summarize_sipp_errors,
)

# The test harness's peers, reused read-only (kamailio config, free ports, process stopping, sipp argv).
from tests.peers.kamailio import Kamailio  # noqa: E402
from tests.peers.ports import LOOPBACK, free_port  # noqa: E402
from tests.peers.process import ManagedProcess, PeerError, tail  # noqa: E402
from tests.peers.sipp import SippStats, SippUas, sipp_argv  # noqa: E402

SCENARIOS = Path(__file__).resolve().parent / "sipp"
RUNNER = Path(__file__).resolve().parent / "capacity_daemon.py"
DAEMON_USER = "100"  # the queue line the daemon registers as (tests.peers.kamailio.DEFAULT_USERS)
CALLER_USER = "300"
AGENT_EXTENSION = "201"  # routed by kamailio (static route) to the sipp agent UAS
# RTP ports of the daemon: below Linux's ephemeral range (32768-60999) where kamailio's and sipp's come from
RTP_PORT_MIN = 20000
RTP_PORT_MAX = 29998
PTIME_S = 0.020
TONE_FILE = "capacity_tone.pcmu"  # the scenarios' rtp_stream file, written into each sipp's cwd
CALLER_TONE_HZ = 440.0
AGENT_TONE_HZ = 1000.0
QUIET_OTHERS_PCT = 25.0
# The goal of issue 3, item 11
GOAL_CALLS = 500
GOAL_P99_MS = 2.0
GOAL_CPU_PER_CALL_PCT = 0.1

EXIT_OK, EXIT_FAILED_CALLS, EXIT_SETUP, EXIT_INTERRUPTED = 0, 1, 2, 130


# ---------------------------------------------------------------------------------------------------------
# Audio for sipp's rtp_stream: raw G.711 µ-law (sipp sends the file's bytes as they are, 160 per packet)


def ulaw_encode(sample: int) -> int:
    """One 16-bit linear sample to G.711 µ-law (ITU-T G.711, bias 0x84, clip 32635)."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(-sample if sample < 0 else sample, 32635) + 0x84
    exponent = max(0, magnitude.bit_length() - 8)  # segment: position of the top bit above bit 7
    exponent = min(exponent, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def tone_pcmu(frequency: float, seconds: float = 1.0, amplitude: float = 0.25, rate: int = 8000) -> bytes:
    """A sine as raw µ-law; a whole number of periods per second, so it loops without a click."""
    count = round(seconds * rate)
    step = 2 * math.pi * frequency / rate
    peak = 32767 * amplitude
    return bytes(ulaw_encode(round(peak * math.sin(step * n))) for n in range(count))


# ---------------------------------------------------------------------------------------------------------
# Captures: classic pcap (dumpcap -P), parsed here; UDP over IPv4 on loopback


@dataclass(frozen=True)
class UdpPacket:
    at: float  # capture time, epoch seconds
    src_port: int
    dst_port: int
    payload: bytes


_LINK_HEADER = {1: 14, 0: 4, 108: 4, 101: 0, 113: 16, 276: 20}  # EN10MB, NULL, LOOP, RAW, SLL, SLL2


def read_pcap(data: bytes) -> Iterator[UdpPacket]:
    """The UDP/IPv4 packets of a classic pcap file (µs or ns timestamps, either byte order)."""
    if len(data) < 24:
        return
    magic = data[:4]
    formats = {
        b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
        b"\xa1\xb2\xc3\xd4": (">", 1e-6),
        b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
        b"\xa1\xb2\x3c\x4d": (">", 1e-9),
    }
    if magic not in formats:
        raise ValueError("not a classic pcap file (pcapng? capture with dumpcap -P)")
    endian, unit = formats[magic]
    linktype = struct.unpack_from(endian + "I", data, 20)[0] & 0x0FFFFFFF
    if linktype not in _LINK_HEADER:
        raise ValueError(f"unsupported pcap link type {linktype}")
    link = _LINK_HEADER[linktype]
    record = struct.Struct(endian + "IIII")
    offset = 24
    while offset + record.size <= len(data):
        seconds, fraction, caplen, _ = record.unpack_from(data, offset)
        offset += record.size
        frame = data[offset : offset + caplen]
        offset += caplen
        if linktype == 1 and frame[12:14] != b"\x08\x00":
            continue  # not IPv4
        ip = frame[link:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue  # not IPv4 / not UDP
        ihl = (ip[0] & 0x0F) * 4
        udp = ip[ihl:]
        if len(udp) < 8:
            continue
        src, dst, length = struct.unpack_from("!HHH", udp, 0)
        yield UdpPacket(seconds + fraction * unit, src, dst, udp[8:length])


def rtp_sequence(payload: bytes) -> int | None:
    """The RTP sequence number (RFC 3550 §5.1) of a version-2 packet, else None."""
    if len(payload) < 12 or payload[0] >> 6 != 2:
        return None
    return int.from_bytes(payload[2:4], "big")


@dataclass
class PacingResult:
    """Send-interval figures of a set of RTP streams (intervals pooled over every stream)."""

    streams: int = 0
    packets: int = 0
    expected: int = 0  # per stream: (last - first) / ptime + 1, summed
    sequence_gaps: int = 0  # RTP sequence numbers missing between captured packets
    mean_interval_ms: float = math.nan
    p50_dev_ms: float = math.nan
    p99_dev_ms: float = math.nan
    max_dev_ms: float = math.nan
    over_2ms: int = 0  # intervals off by more than 2 ms


def pacing(streams: Iterable[Sequence[tuple[float, int | None]]], ptime: float = PTIME_S) -> PacingResult:
    """Deviation |interval - ptime| of each stream's consecutive packets ((time, RTP sequence) in
    capture order), pooled; ms. A skipped tick shows as one long interval, not as a gap excluded."""
    result = PacingResult()
    deviations: list[float] = []
    intervals_sum = 0.0
    for stream in streams:
        if not stream:
            continue
        result.streams += 1
        result.packets += len(stream)
        result.expected += round((stream[-1][0] - stream[0][0]) / ptime) + 1
        for (t0, s0), (t1, s1) in itertools.pairwise(stream):
            interval = t1 - t0
            intervals_sum += interval
            deviations.append(abs(interval - ptime) * 1000)
            if s0 is not None and s1 is not None:
                result.sequence_gaps += max(0, (s1 - s0) % 65536 - 1)
    if deviations:
        result.mean_interval_ms = 1000 * intervals_sum / len(deviations)
        result.p50_dev_ms = percentile(deviations, 50)
        result.p99_dev_ms = percentile(deviations, 99)
        result.max_dev_ms = max(deviations)
        result.over_2ms = sum(1 for d in deviations if d > 2.0)
    return result


def split_streams(
    packets: Iterable[UdpPacket], daemon_ports: set[int]
) -> tuple[dict[int, list[tuple[float, int | None]]], dict[int, list[tuple[float, int | None]]]]:
    """(sent by the daemon, received by the daemon) per daemon RTP port: (time, RTP sequence) lists."""
    sent: dict[int, list[tuple[float, int | None]]] = collections.defaultdict(list)
    received: dict[int, list[tuple[float, int | None]]] = collections.defaultdict(list)
    for packet in packets:
        if packet.src_port in daemon_ports:
            sent[packet.src_port].append((packet.at, rtp_sequence(packet.payload)))
        elif packet.dst_port in daemon_ports:
            received[packet.dst_port].append((packet.at, rtp_sequence(packet.payload)))
    return dict(sent), dict(received)


# ---------------------------------------------------------------------------------------------------------
# Kernel counters


def parse_snmp_udp(text: str) -> dict[str, int]:
    """The ``Udp:`` counters of ``/proc/net/snmp`` (header line + value line)."""
    lines = [line.split() for line in text.splitlines() if line.startswith("Udp:")]
    if len(lines) < 2:
        return {}
    return {k: int(v) for k, v in zip(lines[0][1:], lines[1][1:], strict=False)}


def udp_socket_drops(text: str, wanted: Callable[[int], bool]) -> tuple[int, int]:
    """(sockets, dropped datagrams) of the UDP sockets in ``/proc/net/udp`` text whose local port is
    ``wanted`` (the ``drops`` column: receive buffer full)."""
    sockets = drops = 0
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 13:
            continue
        try:
            port = int(fields[1].rsplit(":", 1)[1], 16)
        except (IndexError, ValueError):
            continue
        if wanted(port):
            sockets += 1
            drops += int(fields[-1])
    return sockets, drops


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------------------------
# The daemon's snapshots


def leg_totals(snapshot: dict[str, Any]) -> dict[str, float]:
    """Counters summed over both roles (caller and agent legs) of one runner snapshot."""
    total: dict[str, float] = collections.defaultdict(float)
    for role in snapshot.get("legs", {}).values():
        for key, value in role.get("totals", {}).items():
            if isinstance(value, int | float):
                total[key] += value
    return dict(total)


def window_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """What the counters of both roles grew by between two snapshots (maxima are taken from ``after``)."""
    a, b = leg_totals(before), leg_totals(after)
    return {k: (v if k.endswith("_max") else v - a.get(k, 0.0)) for k, v in b.items()}


def parse_concurrency(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--concurrency wants integers separated by commas: {text!r}"
        ) from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError("--concurrency wants positive integers")
    return values


# ---------------------------------------------------------------------------------------------------------
# One step's result


@dataclass
class StepResult:
    concurrency: int
    rate: float
    hold_s: float = 0.0
    calls_up: int = 0  # bridges active at both ends of the window (the smaller)
    calls_up_start: int = 0
    ramp_s: float = math.nan  # from the first INVITE to N bridges
    window_s: float = 0.0
    legs_with_media: int = 0
    # sipp
    caller_calls: int = 0
    caller_ok: int = 0
    caller_failed: int = 0
    caller_retrans: int = 0
    agent_ok: int = 0
    agent_failed: int = 0
    # the daemon
    daemon_cpu_pct: float = math.nan
    cpu_per_call_pct: float = math.nan
    daemon_cpu_peak_1s_pct: float = math.nan
    rss_idle_mib: float = math.nan
    rss_mib: float = math.nan
    rss_per_call_kib: float = math.nan
    rtp_expected: int = 0  # in the window, both directions the daemon receives (RtpReceiverStats)
    rtp_lost: int = 0
    loss_pct: float = math.nan
    packets_sent: int = 0
    tx_pct: float = math.nan  # packets sent / (legs x window / ptime)
    late_ticks_skipped: int = 0
    send_drops: int = (
        0  # packets the session could not hand to the kernel (send buffer full), if it counts them
    )
    rx_jitter_max_ms: float = math.nan  # highest RFC 3550 interarrival jitter of a received stream (end)
    jb_underruns: int = 0
    jb_late: int = 0
    jb_overflow_drops: int = 0
    session_drops: int = 0  # malformed + unknown PT + wrong source + flood drops
    kernel_drops: int = 0  # at the daemon's sockets (RTP range + SIP port), /proc/net/udp
    kernel_rcvbuf_errors_all: int = 0  # every UDP socket of the machine (sipp never reads its RTP socket)
    lag_p99_ms: float = math.nan
    lag_max_ms: float = math.nan
    gc_collections: list[int] = field(default_factory=list)  # in the window, per generation
    # the wire (sample of legs)
    pcap: bool = False
    pcap_legs: int = 0
    pcap_dropped: int | None = None
    sent_pacing: PacingResult = field(default_factory=PacingResult)
    received_pacing: PacingResult = field(default_factory=PacingResult)
    # recorder
    recordings_opened: int = 0
    recording_files: int = 0
    recording_mib: float = 0.0
    recorder_bytes_dropped: int = 0
    recorder_bytes_lost: int = 0
    recorder_io_errors: int = 0
    recording_check: str = ""
    # context
    sipp_cpu_pct: float = math.nan
    kamailio_cpu_pct: float = math.nan
    others_cpu_pct: float = math.nan
    counters: dict[str, int] = field(default_factory=dict)
    agent_fail_reasons: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    workdir: str = ""

    @property
    def ok(self) -> bool:
        return (
            self.calls_up == self.concurrency
            and self.caller_failed == 0
            and self.caller_ok == self.concurrency
            and self.counters.get("handler_errors", 0) == 0
        )

    def goal_misses(self) -> list[str]:
        """Why this step misses the goal's per-call criteria (empty: met)."""
        misses = []
        if self.calls_up < self.concurrency:
            misses.append(f"{self.calls_up}/{self.concurrency} calls up")
        if self.rtp_lost > 0 or math.isnan(self.loss_pct):
            misses.append(f"loss {_fmt(self.loss_pct, 3)} %")
        if self.late_ticks_skipped:
            misses.append(f"{self.late_ticks_skipped} skipped ticks")
        if self.send_drops:
            misses.append(f"{self.send_drops} sends dropped")
        if self.jb_late + self.jb_overflow_drops:
            misses.append(f"{self.jb_late + self.jb_overflow_drops} frames dropped by jitter buffers")
        if self.kernel_drops:
            misses.append(f"{self.kernel_drops} kernel drops")
        if self.pcap and not self.sent_pacing.p99_dev_ms <= GOAL_P99_MS:
            misses.append(f"p99 deviation {_fmt(self.sent_pacing.p99_dev_ms, 2)} ms")
        if not self.cpu_per_call_pct <= GOAL_CPU_PER_CALL_PCT:
            misses.append(f"{_fmt(self.cpu_per_call_pct, 3)} % CPU per call")
        return misses


@dataclass(frozen=True)
class Readings:
    """Counters read at one end of the window (CPU in clock ticks)."""

    at: float
    daemon_ticks: int
    sipp_ticks: int
    tool_ticks: int
    kamailio_ticks: int
    machine: tuple[int, int]
    daemon_drops: int
    rcvbuf_errors: int
    rss_kib: int | None


# ---------------------------------------------------------------------------------------------------------
# Capture of a sample of the daemon's legs


class Capture:
    """dumpcap on loopback, classic pcap, headers only, for the given daemon RTP ports (both ways)."""

    def __init__(self, path: Path, ports: Sequence[int]) -> None:
        self.path = path
        self.ports = list(ports)
        self.filter = "udp and (" + " or ".join(f"port {p}" for p in self.ports) + ")"
        self.log_path = path.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.dropped: int | None = None

    def start(self, timeout: float = 10.0) -> None:
        dumpcap = shutil.which("dumpcap") or "/usr/bin/dumpcap"
        argv = [dumpcap, "-i", "lo", "-P", "-s", "96", "-B", "64", "-f", self.filter, "-w", str(self.path)]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while "Capturing on" not in _read(str(self.log_path)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SetupError(f"dumpcap did not start:\n{tail(self.log_path, 10)}")
            time.sleep(0.02)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_popen(self.proc, grace=5.0)  # SIGTERM: dumpcap flushes and prints its statistics
        self.proc = None
        text = _read(str(self.log_path))
        dropped = [int(v) for v in _DUMPCAP_DROPPED.findall(text)]
        self.dropped = sum(dropped) if dropped else None


_DUMPCAP_DROPPED = re.compile(r"received/dropped on interface '[^']*': \d+/(\d+)")


# ---------------------------------------------------------------------------------------------------------
# The benchmark


class Bench:
    """kamailio (started once) and, per step: the agent sipp, the daemon runner, the caller sipp."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.kamailio: Kamailio | None = None
        self.daemon_port = free_port()
        self.caller_port = free_port()
        self.caller_media_port = free_port(span=4)
        self.agent_port = free_port()
        self.daemon_config: dict[str, dict[str, Any]] = {}
        self.pythonpath: list[str] = []
        # per step
        self.runner: ManagedProcess | None = None
        self.agents: SippUas | None = None
        self.callers: subprocess.Popen[bytes] | None = None
        self.capture: Capture | None = None
        self._status: Path | None = None
        self._seq = 0

    # -- life cycle --------------------------------------------------------------------------------------

    def start(self) -> None:
        args = self.args
        try:
            self.kamailio = Kamailio(
                self.workdir / "kamailio",
                require_invite_auth=False,
                static_routes={AGENT_EXTENSION: f"sip:agent@{LOOPBACK}:{self.agent_port}"},
                debug_level=args.kamailio_debug,
            )
            set_kamailio_shm(self.kamailio, args.kamailio_shm_mb)
            self.kamailio.start()
        except PeerError as exc:
            raise SetupError(f"kamailio did not start: {exc}") from None
        except BaseException as exc:
            if type(exc).__name__ in ("Skipped", "Failed"):  # pytest.skip/fail from require_binary
                raise SetupError(str(exc)) from None
            raise
        kamailio = self.kamailio
        most = max(args.concurrency)
        config: dict[str, dict[str, Any]] = {
            "sip": {"listen_host": LOOPBACK, "listen_port": self.daemon_port, "transports": ["udp"]},
            "pbx": {
                "host": kamailio.host,
                "port": kamailio.port,
                "transport": "udp",
                "username": DAEMON_USER,
                "password": kamailio.users[DAEMON_USER],
            },
            "security": {"max_calls": max(500, 2 * most + 100)},  # two legs per bridged call
            "media": {"rtp_port_min": RTP_PORT_MIN, "rtp_port_max": RTP_PORT_MAX},
            "log": {"level": "WARNING"},
        }
        if os.environ.get("PYTHONPATH"):
            self.pythonpath.append(os.environ["PYTHONPATH"])
        code_root = REPO
        if args.ref is not None:
            code_root = export_ref(args.ref, self.workdir)
            self.pythonpath.insert(0, str(code_root))
        if "overload_lateness_ms" in (code_root / "ccdaemon" / "config.py").read_text():
            # The benchmark measures the engine past its capacity too: call admission off (the daemon
            # would otherwise answer new calls 503 once its ticks run late, as in production).
            config["media"]["overload_lateness_ms"] = 0
        for section, key, value in args.overrides:
            config.setdefault(section, {})[key] = value
        self.daemon_config = config
        path = self.workdir / "ccdaemon.toml"
        path.write_text(render_toml(config))
        path.chmod(0o600)

    def stop(self) -> None:
        """Stop whatever runs: caller sipp, capture, the runner, the agent sipp, kamailio (by PID)."""
        self._stop_step()
        if self.kamailio is not None:
            try:
                self.kamailio.stop()
            except Exception as exc:
                print(f"warning: stopping kamailio failed: {exc}", file=sys.stderr)

    def _stop_step(self) -> None:
        if self.callers is not None:
            stop_popen(self.callers)
            self.callers = None
        if self.capture is not None:
            self.capture.stop()
            self.capture = None
        for proc in (self.runner, self.agents):
            if proc is None:
                continue
            try:
                proc.stop()
            except Exception as exc:  # keep stopping the others
                print(f"warning: stopping {proc!r} failed: {exc}", file=sys.stderr)
        self.runner = None
        self.agents = None

    # -- the runner --------------------------------------------------------------------------------------

    def _start_runner(self, cwd: Path, recordings: Path) -> None:
        args = self.args
        self._status = cwd / "daemon-status.json"
        self._seq = 0
        env: dict[str, str] = {}
        if self.pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(self.pythonpath)
        argv = [
            sys.executable,
            str(RUNNER),
            "--config",
            str(self.workdir / "ccdaemon.toml"),
            "--agent",
            AGENT_EXTENSION,
            "--recordings",
            str(recordings),
            "--status",
            str(self._status),
        ]
        if not args.uvloop:
            argv.append("--no-uvloop")
        self.runner = ManagedProcess("capacity-daemon", argv, cwd / "daemon.log", cwd=cwd, env=env)
        self.runner.start()
        assert self.kamailio is not None
        deadline = time.monotonic() + args.register_timeout
        while True:
            doc = self._read_status()
            if doc is not None and doc.get("registered") and self.kamailio.registered_contacts(DAEMON_USER):
                return
            if not self.runner.running():
                raise SetupError(
                    f"the daemon runner exited with {self.runner.returncode}:\n"
                    + tail(self.runner.log_path, 40)
                )
            if time.monotonic() > deadline:
                raise SetupError(
                    f"the daemon runner did not register as {DAEMON_USER} within {args.register_timeout:g} s"
                    f"\n--- runner log ---\n{tail(self.runner.log_path, 40)}"
                    f"\n--- kamailio log ---\n{tail(self.kamailio.log_path, 40)}"
                )
            if doc is not None:
                self.snapshot()  # refresh "registered"
            time.sleep(0.1)

    def _read_status(self) -> dict[str, Any] | None:
        if self._status is None:
            return None
        try:
            doc = json.loads(self._status.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(doc, dict):
            return None
        self._seq = max(self._seq, int(doc.get("seq", 0)))
        return doc

    def snapshot(self, timeout: float = 15.0) -> dict[str, Any]:
        """Ask the runner for a fresh snapshot (SIGUSR1) and wait for it."""
        runner = self.runner
        assert runner is not None and runner.pid is not None
        before = self._seq
        os.kill(runner.pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while True:
            doc = self._read_status()
            if doc is not None and int(doc.get("seq", 0)) > before:
                return doc
            if not runner.running():
                raise SetupError(
                    f"the daemon runner died (exit {runner.returncode}):\n{tail(runner.log_path, 40)}"
                )
            if time.monotonic() > deadline:
                raise SetupError(f"the daemon runner wrote no snapshot within {timeout:g} s")
            time.sleep(0.01)

    def _stop_runner(self) -> dict[str, Any] | None:
        """SIGTERM: the runner hangs up what is left, closes the recorder and writes its final snapshot."""
        runner = self.runner
        if runner is None:
            return None
        runner.stop(timeout=self.args.drain_timeout)
        self.runner = None
        doc = self._read_status()
        return doc if doc is not None and doc.get("final") else None

    # -- one step ----------------------------------------------------------------------------------------

    def step(self, index: int, concurrency: int) -> StepResult:
        args = self.args
        kamailio = self.kamailio
        assert kamailio is not None
        rate = args.rate
        ramp_s = concurrency / rate
        grace_s = max(args.ramp_grace, ramp_s)
        hold_s = ramp_s + grace_s + args.settle_seconds + args.steady_seconds + 5.0
        result = StepResult(concurrency=concurrency, rate=rate, hold_s=round(hold_s, 1), pcap=args.pcap)
        cwd = self.workdir / f"step-{index:02d}-{concurrency}calls"
        cwd.mkdir()
        result.workdir = str(cwd)
        recordings = cwd / "recordings"

        # 1. the agents: a sipp UAS answering every call and streaming its tone
        agents = SippUas(
            cwd,
            SCENARIOS / "uas_agent_rtp.xml",
            service="agent",
            port=self.agent_port,
            trace_messages=args.trace_messages,
        )
        (agents.cwd / TONE_FILE).write_bytes(tone_pcmu(AGENT_TONE_HZ))
        self.agents = agents
        try:
            agents.start()
        except PeerError as exc:
            raise SetupError(f"the agent sipp did not start: {exc}") from None

        # 2. the daemon, registered; its idle footprint
        self._start_runner(cwd, recordings)
        runner = self.runner
        assert runner is not None and runner.pid is not None
        pid = runner.pid
        time.sleep(1.0)
        self.snapshot()
        rss_idle = proc_status_kib(pid, "VmRSS")
        result.rss_idle_mib = rss_idle / 1024 if rss_idle is not None else math.nan

        # 3. the callers
        caller_cwd = cwd / "callers"
        caller_cwd.mkdir()
        (caller_cwd / TONE_FILE).write_bytes(tone_pcmu(CALLER_TONE_HZ))
        timeout_s = hold_s + ramp_s + 60
        argv = sipp_argv(
            SCENARIOS / "uac_rtp.xml",
            kamailio.address,
            local_port=self.caller_port,
            media_port=self.caller_media_port,
            service=DAEMON_USER,
            calls=concurrency,
            rate=rate,
            limit=concurrency,
            timeout_s=timeout_s,
            keys={"caller": CALLER_USER},
            duration_ms=round(hold_s * 1000),
            trace=True,
            trace_messages=args.trace_messages,
        )
        (caller_cwd / "argv.txt").write_text(" ".join(argv) + "\n")
        started = time.monotonic()
        with (caller_cwd / "sipp.log").open("wb") as log:
            self.callers = subprocess.Popen(
                argv,
                cwd=caller_cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        callers = self.callers

        # 4. the ramp: until N bridges are up (or the grace period is over)
        deadline = started + ramp_s + grace_s
        doc = self.snapshot()
        shown = -1
        while doc.get("bridges_active", 0) < concurrency and time.monotonic() < deadline:
            if callers.poll() is not None:
                break
            time.sleep(0.5)
            doc = self.snapshot()
            up = int(doc.get("bridges_active", 0))
            if up != shown and not args.quiet:
                print(f"\r  ramp: {up}/{concurrency} bridged", end="", flush=True)
                shown = up
        if not args.quiet:
            print("", flush=True)
        if doc.get("bridges_active", 0) >= concurrency:
            result.ramp_s = time.monotonic() - started
        time.sleep(args.settle_seconds)

        # 5. the steady window (capture first, so it covers the whole window)
        doc = self.snapshot()
        captured: list[int] = []
        if args.pcap:
            captured = sample_ports(doc.get("ports", []), args.pcap_legs)
            if captured:
                self.capture = Capture(cwd / "rtp.pcap", captured)
                self.capture.start()
                result.pcap_legs = len(captured)
        sipp_pids = [p for p in (callers.pid, agents.process.pid) if p is not None]
        tool_pids = [p for p in [self.capture.pid if self.capture else None] if p is not None]
        a = self.snapshot()
        before = self._readings(pid, sipp_pids, tool_pids)
        with CpuSampler(pid) as sampler:
            time.sleep(args.steady_seconds)
        after = self._readings(pid, sipp_pids, tool_pids)
        b = self.snapshot()
        if self.capture is not None:
            self.capture.stop()
            result.pcap_dropped = self.capture.dropped
            self.capture = None

        # 6. figures of the window
        self._window_figures(result, a, b, before, after)
        result.daemon_cpu_peak_1s_pct = sampler.peak_percent()
        if after.rss_kib is not None and rss_idle is not None and result.calls_up:
            result.rss_per_call_kib = (after.rss_kib - rss_idle) / result.calls_up
        if captured:
            self._analyse_capture(cwd / "rtp.pcap", captured, result)

        # 7. the calls end by themselves (sipp hangs up after its hold time); then the runner and agents stop
        remaining = started + timeout_s + 15 - time.monotonic()
        try:
            callers.wait(max(1.0, remaining))
        except subprocess.TimeoutExpired:
            result.problems.append("caller sipp overran its -timeout and was killed")
            stop_popen(callers)
        self.callers = None
        final = self._stop_runner()
        dialed = int((final or b).get("counters", {}).get("agents_dialed", 0))
        settle = time.monotonic() + 5.0  # the agents' last BYE + 500 ms timewait, and a stats dump (200 ms)
        while time.monotonic() < settle:
            stats = agents.stats()
            if stats.successful_calls + stats.failed_calls >= dialed:
                break
            time.sleep(0.2)
        agents.stop()
        self.agents = None
        caller_stats = SippStats.parse(caller_cwd / "stats.csv")
        result.caller_calls = caller_stats.total_calls
        result.caller_ok = caller_stats.successful_calls
        result.caller_failed = caller_stats.failed_calls
        result.caller_retrans = caller_stats.retransmissions
        agent_stats = agents.stats()
        result.agent_ok = agent_stats.successful_calls
        result.agent_failed = agent_stats.failed_calls
        end = final or b
        result.counters = {k: int(v) for k, v in end.get("counters", {}).items()}
        result.agent_fail_reasons = dict(end.get("agent_fail_reasons", {}))
        recorder = end.get("recorder", {})
        result.recordings_opened = result.counters.get("recordings_opened", 0)
        result.recorder_bytes_dropped = int(recorder.get("bytes_dropped", 0))
        result.recorder_bytes_lost = int(recorder.get("bytes_lost", 0))
        result.recorder_io_errors = int(recorder.get("io_errors", 0))
        files = (final or {}).get("recording_files", {})
        result.recording_files = int(files.get("count", 0))
        result.recording_mib = int(files.get("bytes", 0)) / 2**20
        if final is None:
            result.problems.append("the daemon runner wrote no final snapshot (killed?)")
        result.recording_check = check_recordings(sorted(recordings.glob("*.wav"))[:5])
        if not args.keep_recordings:
            shutil.rmtree(recordings, ignore_errors=True)
        result.problems += [
            f"caller sipp: {line}" for line in summarize_sipp_errors(caller_cwd / "errors.log")
        ]
        result.problems += [
            f"agent sipp: {line}" for line in summarize_sipp_errors(agents.cwd / "errors.log")
        ]
        result.problems += [f"daemon log: {line}" for line in log_problems(_read(str(cwd / "daemon.log")))]
        return result

    def _readings(self, pid: int, sipp_pids: Sequence[int], tool_pids: Sequence[int]) -> Readings:
        assert self.kamailio is not None
        sip_port = self.daemon_port
        _, drops = udp_socket_drops(
            _read("/proc/net/udp"), lambda p: RTP_PORT_MIN <= p <= RTP_PORT_MAX or p == sip_port
        )
        return Readings(
            at=time.monotonic(),
            daemon_ticks=proc_ticks(pid) or 0,
            sipp_ticks=sum(proc_ticks(p) or 0 for p in sipp_pids),
            tool_ticks=sum(proc_ticks(p) or 0 for p in tool_pids),
            kamailio_ticks=group_ticks(self.kamailio.pid or -1),
            machine=machine_ticks(),
            daemon_drops=drops,
            rcvbuf_errors=parse_snmp_udp(_read("/proc/net/snmp")).get("RcvbufErrors", 0),
            rss_kib=proc_status_kib(pid, "VmRSS"),
        )

    @staticmethod
    def _window_figures(
        result: StepResult, a: dict[str, Any], b: dict[str, Any], r0: Readings, r1: Readings
    ) -> None:
        """Fill ``result`` from the runner's snapshots and the /proc readings at both ends of the window."""
        wall = r1.at - r0.at
        result.window_s = wall
        result.calls_up_start = int(a.get("bridges_active", 0))
        result.calls_up = min(result.calls_up_start, int(b.get("bridges_active", 0)))
        result.legs_with_media = sum(int(r.get("live_with_media", 0)) for r in b.get("legs", {}).values())
        result.daemon_cpu_pct = 100.0 * (r1.daemon_ticks - r0.daemon_ticks) / CLK_TCK / wall
        if result.calls_up:
            result.cpu_per_call_pct = result.daemon_cpu_pct / result.calls_up
        result.rss_mib = r1.rss_kib / 1024 if r1.rss_kib is not None else math.nan
        delta = window_delta(a, b)
        result.rtp_expected = int(delta.get("rx_expected", 0))
        result.rtp_lost = int(delta.get("rx_lost", 0))
        if result.rtp_expected > 0:
            result.loss_pct = 100.0 * result.rtp_lost / result.rtp_expected
        result.packets_sent = int(delta.get("packets_sent", 0))
        span = float(b.get("monotonic", 0)) - float(a.get("monotonic", 0))  # the runner's own clock
        if result.legs_with_media and span > 0:
            result.tx_pct = 100.0 * result.packets_sent / (result.legs_with_media * span / PTIME_S)
        result.late_ticks_skipped = int(delta.get("late_ticks_skipped", 0))
        result.send_drops = int(delta.get("send_drops", 0))
        result.rx_jitter_max_ms = delta.get("rx_jitter_ms_max", math.nan)
        result.jb_underruns = int(delta.get("jb_underruns", 0))
        result.jb_late = int(delta.get("jb_late", 0))
        result.jb_overflow_drops = int(delta.get("jb_overflow_drops", 0))
        result.session_drops = int(
            sum(delta.get(k, 0) for k in ("malformed", "unknown_pt", "wrong_source", "flood_drops"))
        )
        result.kernel_drops = r1.daemon_drops - r0.daemon_drops
        result.kernel_rcvbuf_errors_all = r1.rcvbuf_errors - r0.rcvbuf_errors
        lag = [float(v) for v in b.get("lag_ms", [])]
        result.lag_p99_ms = percentile(lag, 99)
        result.lag_max_ms = max(lag) if lag else math.nan
        gc_a = a.get("gc", {}).get("collections", [])
        gc_b = b.get("gc", {}).get("collections", [])
        result.gc_collections = [int(y) - int(x) for x, y in zip(gc_a, gc_b, strict=False)]
        result.sipp_cpu_pct = 100.0 * (r1.sipp_ticks - r0.sipp_ticks) / CLK_TCK / wall
        result.kamailio_cpu_pct = 100.0 * (r1.kamailio_ticks - r0.kamailio_ticks) / CLK_TCK / wall
        tools_pct = 100.0 * (r1.tool_ticks - r0.tool_ticks) / CLK_TCK / wall  # dumpcap
        ncpu = os.cpu_count() or 1
        busy = 100.0 * ncpu * (r1.machine[0] - r0.machine[0]) / max(1, r1.machine[1] - r0.machine[1])
        ours = result.daemon_cpu_pct + result.sipp_cpu_pct + result.kamailio_cpu_pct + tools_pct
        result.others_cpu_pct = max(0.0, busy - ours)

    def _analyse_capture(self, path: Path, ports: Sequence[int], result: StepResult) -> None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            result.problems.append(f"capture unreadable: {exc}")
            return
        sent, received = split_streams(read_pcap(data), set(ports))
        result.sent_pacing = pacing(sent.values())
        result.received_pacing = pacing(received.values())


def sample_ports(ports: Sequence[Sequence[Any]], count: int) -> list[int]:
    """Up to ``count`` daemon RTP ports of live legs, half callers' and half agents' (lowest first)."""
    by_role: dict[str, list[int]] = collections.defaultdict(list)
    for entry in ports:
        if len(entry) >= 2:
            by_role[str(entry[0])].append(int(entry[1]))
    roles = sorted(by_role)
    for role in roles:
        by_role[role].sort()
    chosen: list[int] = []
    index = 0
    while len(chosen) < count and any(index < len(by_role[r]) for r in roles):
        for role in roles:
            if index < len(by_role[role]) and len(chosen) < count:
                chosen.append(by_role[role][index])
        index += 1
    return chosen


def check_recordings(paths: Sequence[Path]) -> str:
    """A glance at a few recordings: stereo 8 kHz, and the share of 20 ms blocks that carry sound on the
    left (caller) and right (agent) channel."""
    if not paths:
        return "no recordings"
    parts = []
    for path in paths:
        try:
            with wave.open(str(path), "rb") as wav:
                if wav.getnchannels() != 2 or wav.getframerate() != 8000 or wav.getsampwidth() != 2:
                    parts.append(f"{path.name}: unexpected format")
                    continue
                frames = wav.readframes(wav.getnframes())
        except (OSError, wave.Error, EOFError) as exc:
            parts.append(f"{path.name}: {exc}")
            continue
        samples = array.array("h", frames)
        if sys.byteorder != "little":
            samples.byteswap()
        blocks = len(samples) // 320
        loud = [0, 0]
        for block in range(blocks):
            chunk = samples[block * 320 : (block + 1) * 320]
            for channel in (0, 1):
                if max(abs(v) for v in chunk[channel::2]) > 500:
                    loud[channel] += 1
        seconds = blocks * 0.02
        if blocks:
            parts.append(f"{seconds:.0f}s L {100 * loud[0] / blocks:.0f}% R {100 * loud[1] / blocks:.0f}%")
        else:
            parts.append("empty")
    return f"{len(paths)} checked: " + ", ".join(parts)


def others_cpu_pct(exclude_pgid: int | None, seconds: float = 1.0) -> float:
    """CPU % (100 = one core) used over ``seconds`` by processes other than kamailio's group."""
    ncpu = os.cpu_count() or 1
    busy0, total0 = machine_ticks()
    ours0 = group_ticks(exclude_pgid) if exclude_pgid else 0
    time.sleep(seconds)
    busy1, total1 = machine_ticks()
    ours1 = group_ticks(exclude_pgid) if exclude_pgid else 0
    return max(
        0.0, 100.0 * ncpu * (busy1 - busy0) / max(1, total1 - total0) - 100.0 * (ours1 - ours0) / CLK_TCK
    )


def wait_quiet(bench: Bench, max_wait: float) -> float:
    """Wait (up to ``max_wait`` s) until the rest of the machine uses less than QUIET_OTHERS_PCT % CPU."""
    started = time.monotonic()
    load = others_cpu_pct(bench.kamailio.pid if bench.kamailio else None)
    if load >= QUIET_OTHERS_PCT:
        print(f"  waiting for a quiet machine (others use {load:.0f}% CPU) ...", end="", flush=True)
        while load >= QUIET_OTHERS_PCT and time.monotonic() - started < max_wait:
            load = others_cpu_pct(bench.kamailio.pid if bench.kamailio else None)
        print(f" {time.monotonic() - started:.0f} s, now {load:.0f}%", flush=True)
    return load


# ---------------------------------------------------------------------------------------------------------
# Output


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


Column = tuple[str, Callable[[StepResult], str]]

COLUMNS: list[Column] = [
    ("N", lambda r: str(r.concurrency)),
    ("calls up", lambda r: str(r.calls_up)),
    ("daemon CPU%", lambda r: _fmt(r.daemon_cpu_pct)),
    ("CPU%/call", lambda r: _fmt(r.cpu_per_call_pct, 3)),
    ("RSS MiB", lambda r: _fmt(r.rss_mib)),
    ("RSS KiB/call", lambda r: _fmt(r.rss_per_call_kib, 0)),
    ("RTP loss%", lambda r: _fmt(r.loss_pct, 3)),
    ("skipped ticks", lambda r: str(r.late_ticks_skipped)),
    ("kernel drops", lambda r: str(r.kernel_drops)),
    ("p99 dev ms", lambda r: _fmt(r.sent_pacing.p99_dev_ms, 2) if r.pcap else "no pcap"),
    ("max dev ms", lambda r: _fmt(r.sent_pacing.max_dev_ms, 1) if r.pcap else "no pcap"),
    ("sipp CPU%", lambda r: _fmt(r.sipp_cpu_pct)),
    ("kamailio CPU%", lambda r: _fmt(r.kamailio_cpu_pct)),
    ("others CPU%", lambda r: _fmt(r.others_cpu_pct)),
]

DETAIL_COLUMNS: list[Column] = [
    ("N", lambda r: str(r.concurrency)),
    ("ramp s", lambda r: _fmt(r.ramp_s)),
    ("callers ok/failed", lambda r: f"{r.caller_ok}/{r.caller_failed}"),
    ("agents ok/failed", lambda r: f"{r.agent_ok}/{r.agent_failed}"),
    ("peak 1s%", lambda r: _fmt(r.daemon_cpu_peak_1s_pct)),
    ("tx%", lambda r: _fmt(r.tx_pct, 2)),
    ("send drops", lambda r: str(r.send_drops)),
    ("rx expected", lambda r: str(r.rtp_expected)),
    ("jb underruns", lambda r: str(r.jb_underruns)),
    ("jb dropped", lambda r: str(r.jb_late + r.jb_overflow_drops)),
    ("jitter max ms", lambda r: _fmt(r.rx_jitter_max_ms, 2)),
    ("loop lag p99/max ms", lambda r: f"{_fmt(r.lag_p99_ms, 1)}/{_fmt(r.lag_max_ms, 1)}"),
    ("GC gen0/1/2", lambda r: "/".join(str(v) for v in r.gc_collections) or "-"),
    ("pcap legs pkts/exp", lambda r: f"{r.pcap_legs} {r.sent_pacing.packets}/{r.sent_pacing.expected}"),
    (
        "in p99/max ms",
        lambda r: f"{_fmt(r.received_pacing.p99_dev_ms, 2)}/{_fmt(r.received_pacing.max_dev_ms, 1)}",
    ),
    ("rec files MiB", lambda r: f"{r.recording_files} {r.recording_mib:.0f}"),
    ("rec dropped B", lambda r: str(r.recorder_bytes_dropped + r.recorder_bytes_lost)),
]


def render_table(results: Sequence[StepResult], columns: Sequence[Column] = COLUMNS) -> str:
    header = [name for name, _ in columns]
    rows = [[cell(r) for _, cell in columns] for r in results]
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(len(header))]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def render_header(machine: dict[str, Any], args: argparse.Namespace) -> str:
    overrides = ", ".join(f"{s}.{k}={v!r}" for s, k, v in args.overrides) or "none"
    loop = "uvloop" if machine.get("uvloop") and args.uvloop else "asyncio"
    if machine.get("uvloop") and not args.uvloop:
        loop += " (uvloop installed, --no-uvloop)"
    return "\n".join(
        [
            f"ccdaemon media capacity benchmark  {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
            f"machine: {machine.get('hostname')}, nproc={machine.get('nproc')} "
            f"(usable {machine.get('cpus_usable')}), CPU {machine.get('cpu_model')}, "
            f"Linux {machine.get('kernel')}, "
            f"load before {' '.join(machine.get('loadavg_before', []))}",
            f"daemon: ccdaemon {machine.get('ccdaemon_commit')}, Python {machine.get('python')}, "
            f"loop {loop}; "
            f"peers: kamailio {machine.get('kamailio')}, sipp {machine.get('sipp')}",
            f"load: sipp callers -> kamailio -> daemon (answer, dial agent {AGENT_EXTENSION} via kamailio -> "
            f"sipp UAS, bridge, stereo WAV); PCMU 20 ms both ways on every leg; {args.rate:g} calls/s ramp, "
            f"{args.settle_seconds:g} s settle, {args.steady_seconds:g} s steady window; "
            f"config overrides: {overrides}",
            "CPU% = share of one core over the window (200 = both cores); per call = daemon CPU% / calls up; "
            "RSS/call = (RSS in the window - idle RSS) / calls up",
            "loss = the daemon's RtpReceiverStats (expected - received) over both legs of every call; "
            "skipped ticks = sends the daemon dropped because its loop was late; kernel drops = datagrams "
            "dropped at the daemon's sockets; p99/max dev = |send interval - 20 ms| of the daemon's RTP "
            "on the wire"
            + (f" (dumpcap, {args.pcap_legs} legs)" if args.pcap else " (not measured: --no-pcap)"),
        ]
    )


def goal_text(results: Sequence[StepResult], pcap: bool) -> str:
    met = [r for r in results if not r.goal_misses()]
    lines = [
        f"goal: >= {GOAL_CALLS} concurrent bridged + recorded calls with 0 loss, p99 deviation <= "
        f"{GOAL_P99_MS:g} ms, <= {GOAL_CPU_PER_CALL_PCT:g} % of a core per call"
        + ("" if pcap else " (p99 not measured: --no-pcap)")
    ]
    for r in results:
        misses = r.goal_misses()
        lines.append(
            f"  N={r.concurrency}: " + ("criteria met" if not misses else "missed: " + ", ".join(misses))
        )
    best = max((r.concurrency for r in met), default=0)
    verdict = "MET" if best >= GOAL_CALLS else "NOT MET"
    lines.append(f"  largest N meeting every criterion: {best or 'none'} -> goal {verdict}")
    return "\n".join(lines)


def problems_text(results: Sequence[StepResult]) -> str:
    out = []
    for r in results:
        notes = list(r.problems)
        if r.agent_fail_reasons:
            notes.append(f"agent legs not answered: {r.agent_fail_reasons}")
        errors = r.counters.get("handler_errors", 0)
        if errors:
            notes.append(f"{errors} call flow error(s) in the runner (see its log)")
        if notes:
            out.append(f"N={r.concurrency} ({r.workdir}):")
            out += [f"  {n}" for n in notes]
    return "\n".join(out)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def write_json(
    path: Path,
    machine: dict[str, Any],
    args: argparse.Namespace,
    bench: Bench,
    results: Sequence[StepResult],
    exit_code: int,
) -> None:
    config = {s: dict(v) for s, v in bench.daemon_config.items()}
    if "pbx" in config and "password" in config["pbx"]:
        config["pbx"]["password"] = "**********"
    doc = {
        "benchmark": "capacity",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "parameters": {
            "concurrency": args.concurrency,
            "rate": args.rate,
            "settle_seconds": args.settle_seconds,
            "steady_seconds": args.steady_seconds,
            "ramp_grace": args.ramp_grace,
            "uvloop": args.uvloop,
            "pcap": args.pcap,
            "pcap_legs": args.pcap_legs,
            "ref": args.ref,
            "kamailio_shm_mb": args.kamailio_shm_mb,
        },
        "daemon_config": config,
        "goal": {"calls": GOAL_CALLS, "p99_dev_ms": GOAL_P99_MS, "cpu_per_call_pct": GOAL_CPU_PER_CALL_PCT},
        "steps": [_json_safe({**asdict(r), "ok": r.ok, "goal_misses": r.goal_misses()}) for r in results],
        "exit_code": exit_code,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------------------
# Main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Concurrent bridged + recorded calls the real ccdaemon carries (sipp callers with RTP -> "
        "kamailio -> daemon -> kamailio -> sipp agents with RTP). Prints a table; exit 1 when a call failed.",
    )
    parser.add_argument(
        "--concurrency",
        type=parse_concurrency,
        default=parse_concurrency("50,100,200,400,800"),
        help="concurrent calls, one step each (default 50,100,200,400,800)",
    )
    parser.add_argument(
        "--rate", type=float, default=50.0, help="calls per second while building up (default 50)"
    )
    parser.add_argument(
        "--steady-seconds", type=float, default=20.0, help="measured window with every call up (default 20)"
    )
    parser.add_argument(
        "--settle-seconds", type=float, default=2.0, help="wait after the ramp before measuring (default 2)"
    )
    parser.add_argument(
        "--ramp-grace",
        type=float,
        default=5.0,
        help="extra seconds (at least the nominal ramp time) for the calls to come up (default 5)",
    )
    parser.add_argument(
        "--uvloop",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="daemon on uvloop when installed (default), --no-uvloop: the stock asyncio loop",
    )
    parser.add_argument(
        "--pcap",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure send intervals on the wire with dumpcap (default: when dumpcap is installed and we may "
        "capture on lo)",
    )
    parser.add_argument(
        "--pcap-legs", type=int, default=20, help="legs captured (default 20, half each role)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=parse_override,
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="extra daemon configuration, e.g. log.level=INFO (repeatable; shown in the header)",
    )
    parser.add_argument(
        "--ref",
        default=None,
        metavar="COMMIT",
        help="run the daemon from this commit's ccdaemon/ (git archive) instead of the working tree",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write results as JSON")
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir even when all went well")
    parser.add_argument("--keep-recordings", action="store_true", help="do not delete each step's recordings")
    parser.add_argument("--trace-messages", action="store_true", help="sipp -trace_msg (slow at scale)")
    parser.add_argument("--kamailio-debug", type=int, default=1, help="kamailio debug level (default 1)")
    parser.add_argument(
        "--kamailio-shm-mb", type=int, default=256, help="kamailio shared memory (default 256)"
    )
    parser.add_argument(
        "--register-timeout", type=float, default=20.0, help="seconds to wait for registration"
    )
    parser.add_argument("--drain-timeout", type=float, default=20.0, help="seconds for the runner to exit")
    parser.add_argument(
        "--quiet-wait-s",
        type=float,
        default=0.0,
        help="before each step wait up to this long until other processes use less than "
        f"{QUIET_OTHERS_PCT:g}%% CPU (default 0: do not wait)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def pcap_possible() -> tuple[bool, str]:
    dumpcap = shutil.which("dumpcap") or ("/usr/bin/dumpcap" if Path("/usr/bin/dumpcap").is_file() else None)
    if dumpcap is None:
        return False, "dumpcap not installed (Debian package tshark)"
    if os.geteuid() != 0:
        caps = subprocess.run(["getcap", dumpcap], capture_output=True, text=True, check=False).stdout
        if "cap_net_raw" not in caps:
            return False, "not root and dumpcap has no cap_net_raw"
    return True, ""


def check_binaries() -> None:
    missing = [
        f"{name} (Debian package {package})"
        for name, package in (("kamailio", "kamailio"), ("kamcmd", "kamailio"), ("sipp", "sip-tester"))
        if shutil.which(name) is None and not Path("/usr/sbin", name).is_file()
    ]
    if missing:
        raise SetupError("missing: " + ", ".join(missing) + " (see .ci/run)")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if max(args.concurrency) * 2 > (RTP_PORT_MAX - RTP_PORT_MIN) // 2:
        print("--concurrency: more legs than the daemon's RTP port range holds", file=sys.stderr)
        return EXIT_SETUP
    possible, why = pcap_possible()
    if args.pcap is None:
        args.pcap = possible
        if not possible:
            print(f"note: no wire measurement ({why}); p99/max deviation columns stay empty", file=sys.stderr)
    elif args.pcap and not possible:
        print(f"--pcap: {why}", file=sys.stderr)
        return EXIT_SETUP
    own_workdir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="ccdaemon-capacity-")) if own_workdir else args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    results: list[StepResult] = []
    exit_code = EXIT_SETUP
    bench: Bench | None = None
    machine: dict[str, Any] = {}
    try:
        with signals_unwind():
            try:
                check_binaries()
                bench = Bench(args, workdir)
                machine = machine_info(Path(sys.executable), args.ref)
                print(render_header(machine, args), flush=True)
                bench.start()
                print(f"kamailio {bench.kamailio!r}; work directory {workdir}", flush=True)
                for index, concurrency in enumerate(args.concurrency, 1):
                    if args.quiet_wait_s > 0:
                        wait_quiet(bench, args.quiet_wait_s)
                    print(f"step {index}/{len(args.concurrency)}: {concurrency} calls ...", flush=True)
                    result = bench.step(index, concurrency)
                    results.append(result)
                    print(
                        f"  {result.calls_up} up, daemon {_fmt(result.daemon_cpu_pct)} % CPU, loss "
                        f"{_fmt(result.loss_pct, 3)} %, p99 dev {_fmt(result.sent_pacing.p99_dev_ms, 2)} ms; "
                        f"sipp {result.caller_ok} ok / {result.caller_failed} failed",
                        flush=True,
                    )
                exit_code = EXIT_OK if all(r.ok for r in results) else EXIT_FAILED_CALLS
            except SetupError as exc:
                print(f"\nsetup failed: {exc}", file=sys.stderr)
                exit_code = EXIT_SETUP
            except Exception:
                traceback.print_exc()
                print(
                    "\nthe benchmark itself failed (above); every started process is stopped", file=sys.stderr
                )
                exit_code = EXIT_SETUP
            finally:
                if bench is not None:
                    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
                    signal.pthread_sigmask(signal.SIG_BLOCK, held)
                    try:
                        bench.stop()
                    finally:
                        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
    except (KeyboardInterrupt, Interrupted) as exc:
        print(
            f"\ninterrupted ({type(exc).__name__} {exc}); every started process was stopped", file=sys.stderr
        )
        exit_code = EXIT_INTERRUPTED
    if results:
        print()
        print(render_header(machine, args))
        print(render_table(results))
        print("\ndetails:")
        print(render_table(results, DETAIL_COLUMNS))
        print()
        print(goal_text(results, args.pcap))
        contended = [r for r in results if r.others_cpu_pct > QUIET_OTHERS_PCT]
        if contended:
            print(
                f"\nwarning: other processes used more than {QUIET_OTHERS_PCT:g}% CPU during the window at N="
                + ", ".join(f"{r.concurrency} ({r.others_cpu_pct:.0f}%)" for r in contended)
                + ": those figures are contended (see --quiet-wait-s)"
            )
        print(
            "\nrecordings (a few per step: length, share of 20 ms blocks with sound; L = caller, R = agent):"
        )
        for r in results:
            print(f"  N={r.concurrency}: {r.recording_check}")
        problems = problems_text(results)
        if problems:
            print("\nwhat the logs say:\n" + problems)
    if args.json is not None and bench is not None:
        write_json(args.json, machine, args, bench, results, exit_code)
        print(f"JSON: {args.json}")
    keep = args.keep or not own_workdir or exit_code != EXIT_OK
    if keep:
        print(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
