#!/usr/bin/env python3
"""Call-setup benchmark: how many inbound call setups per second the real daemon answers.

Signalling only. Starts kamailio (the office PBX) and ``ccdaemon run`` (registered as extension 100,
answering every call at once with 200 OK + SDP) on free loopback ports in a temporary directory, then
for each rate runs sipp as the caller through kamailio (INVITE -> 200 -> ACK -> hold -> BYE -> 200) and
prints one table: attempted / successful / failed calls, retransmissions, achieved setups/s, setup
latency p50/p99 (INVITE to 200 OK, from sipp's response-time trace), the daemon's CPU and RSS and
kamailio's and sipp's CPU for context.  See benchmarks/README.md.

    .venv/bin/python benchmarks/call_setup.py --rates 50,100,200,300 --json /tmp/bench.json
    .venv/bin/python benchmarks/call_setup.py --rates 20 --calls-per-step 40      # CI smoke

Exit status: 0 every call succeeded, 1 some call failed or did not complete, 2 the set-up failed
(kamailio, the daemon or sipp did not start), 130 interrupted.  Every process started here is stopped by
its PID (and its process group) on the way out, also on Ctrl-C or SIGTERM.  Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import tomllib
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# The test harness's peers, reused read-only (kamailio config, free ports, process stopping, sipp argv).
from tests.peers.kamailio import Kamailio  # noqa: E402
from tests.peers.ports import LOOPBACK, free_port  # noqa: E402
from tests.peers.process import ManagedProcess, PeerError, tail  # noqa: E402
from tests.peers.sipp import SippStats, sipp_argv  # noqa: E402

SCENARIOS = Path(__file__).resolve().parent / "sipp"
DAEMON_USER = "100"  # the queue line the daemon registers as (tests.peers.kamailio.DEFAULT_USERS)
CALLER_USER = "300"  # a caller account on kamailio, used for the 407 digest with --auth
# RTP ports the daemon reserves per call: below Linux's ephemeral range (32768-60999), where every
# port handed to kamailio and sipp (free_port) comes from.
RTP_PORT_MIN = 20000
RTP_PORT_MAX = 29998
QUIET_OTHERS_PCT = 25.0  # CPU % of other processes above which a step counts as contended
RECV_TIMEOUT_MS = 10_000  # a call that hears nothing for this long fails instead of stalling its step
SLOW_SETUP_MS = 20.0  # --pcap: setups this slow are counted (and matched against GC pauses with --gc-log)
CLK_TCK = os.sysconf("SC_CLK_TCK")

EXIT_OK, EXIT_FAILED_CALLS, EXIT_SETUP, EXIT_INTERRUPTED = 0, 1, 2, 130


class SetupError(RuntimeError):
    """A peer or the daemon could not be started, or sipp could not run at all."""


class Interrupted(BaseException):
    """SIGTERM/SIGHUP received: unwind like Ctrl-C so every process is stopped."""


# ---------------------------------------------------------------------------------------------------------
# /proc readings


def proc_ticks(pid: int) -> int | None:
    """utime + stime of ``pid`` (all its threads) in clock ticks; None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may contain spaces and ')'
    return int(fields[11]) + int(fields[12])


def group_ticks(pgid: int) -> int:
    """utime + stime summed over every process in process group ``pgid`` (kamailio forks workers)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs from ``/proc/stat`` (idle and iowait are not busy)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return total - fields[3] - fields[4], total


def udp_drops(port: int) -> int:
    """Datagrams the kernel dropped for the UDP socket(s) bound to ``port`` (receive buffer full):
    the last column of ``/proc/net/udp``."""
    total = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 13 and int(fields[1].rsplit(":", 1)[1], 16) == port:
                total += int(fields[-1])
    return total


def proc_status_kib(pid: int, key: str) -> int | None:
    """A ``/proc/<pid>/status`` size field (``VmRSS``, ``VmHWM``) in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class CpuSampler:
    """Samples a PID's CPU ticks in a thread to find the busiest one-second window of a step."""

    def __init__(self, pid: int, interval: float = 0.1, window: float = 1.0) -> None:
        self.pid = pid
        self.interval = interval
        self.window = window
        self.samples: list[tuple[float, int]] = []
        self.peak_rss_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cpu-sampler-{pid}", daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            ticks = proc_ticks(self.pid)
            if ticks is not None:
                self.samples.append((time.monotonic(), ticks))
            rss = proc_status_kib(self.pid, "VmRSS")
            if rss is not None:
                self.peak_rss_kib = max(self.peak_rss_kib, rss)
            self._stop.wait(self.interval)

    def peak_percent(self) -> float:
        """Highest CPU % (100 = one core) over any ``window`` seconds of the samples."""
        best = math.nan
        start = 0
        for end in range(len(self.samples)):
            t_end, ticks_end = self.samples[end]
            while self.samples[start][0] < t_end - self.window - 1e-9:
                start += 1
            if start == end or t_end - self.samples[start][0] < self.window * 0.9:
                continue
            t_start, ticks_start = self.samples[start]
            pct = 100.0 * (ticks_end - ticks_start) / CLK_TCK / (t_end - t_start)
            best = pct if math.isnan(best) else max(best, pct)
        return best


# ---------------------------------------------------------------------------------------------------------
# The machine


def _first_line(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "?"
    for line in (out.stdout + out.stderr).splitlines():
        if line.strip():
            return line.strip()
    return "?"


def git_state(ref: str | None = None) -> str:
    """The commit the daemon runs from: ``ref`` (exported, so exact), or the working tree's HEAD with
    ``+dirty`` when ccdaemon/ has uncommitted changes."""
    if ref is not None:
        return resolve_ref(ref) + " (exported with --ref)"
    commit = _first_line(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"])
    if not re.fullmatch(r"[0-9a-f]{7,40}", commit):
        return "unknown"
    status = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "ccdaemon", "pyproject.toml"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return commit + ("+dirty" if status.stdout.strip() else "")


def resolve_ref(ref: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", "--short=12", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if out.returncode != 0:
        raise SetupError(f"--ref {ref!r}: not a commit of {REPO}: {out.stderr.strip()}")
    return out.stdout.strip()


def export_ref(ref: str, workdir: Path) -> Path:
    """``git archive`` the ``ccdaemon`` package of commit ``ref`` into ``workdir``: a directory that,
    first on the daemon's PYTHONPATH, replaces the (editable, possibly half-edited) working tree."""
    commit = resolve_ref(ref)
    dest = workdir / f"source-{commit}"
    dest.mkdir(parents=True, exist_ok=True)
    archive = workdir / f"source-{commit}.tar"
    subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", "-o", str(archive), commit, "ccdaemon"],
        check=True,
        timeout=60,
    )
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    archive.unlink()
    return dest


def machine_info(daemon_python: Path, ref: str | None = None) -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    probe = (
        "import importlib.util, sys; "
        "print(sys.version.split()[0], importlib.util.find_spec('uvloop') is not None)"
    )
    daemon_py = _first_line([str(daemon_python), "-c", probe]).split()
    sipp_version = re.search(r"SIPp v?(\S+)", _first_line(["sipp", "-v"]))
    kamailio_version = re.search(r"version: kamailio (\S+)", _first_line(["kamailio", "-v"]))
    return {
        "ccdaemon_commit": git_state(ref),
        "hostname": platform.node(),
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": daemon_py[0] if daemon_py else platform.python_version(),
        "uvloop": len(daemon_py) > 1 and daemon_py[1] == "True",
        "sipp": sipp_version.group(1).rstrip("-") if sipp_version else "?",
        "kamailio": kamailio_version.group(1) if kamailio_version else "?",
        "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
    }


# ---------------------------------------------------------------------------------------------------------
# Daemon configuration


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def render_toml(config: dict[str, dict[str, Any]]) -> str:
    parts = []
    for section, values in config.items():
        parts.append(f"[{section}]")
        parts += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
        parts.append("")
    return "\n".join(parts)


def parse_override(text: str) -> tuple[str, str, Any]:
    """``section.key=value`` (value as TOML, else a plain string) from ``--set``."""
    name, sep, raw = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not section or not key:
        raise argparse.ArgumentTypeError(f"--set wants SECTION.KEY=VALUE, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, key, value


def daemon_config(
    kamailio: Kamailio, sip_port: int, transport: str, overrides: Sequence[tuple[str, str, Any]]
) -> dict[str, dict[str, Any]]:
    config: dict[str, dict[str, Any]] = {
        "sip": {"listen_host": LOOPBACK, "listen_port": sip_port, "transports": ["udp", "tcp"]},
        "pbx": {
            "host": kamailio.host,
            "port": kamailio.port,
            "transport": transport,
            "username": DAEMON_USER,
            "password": kamailio.users[DAEMON_USER],
        },
        "media": {"rtp_port_min": RTP_PORT_MIN, "rtp_port_max": RTP_PORT_MAX},
        "log": {"level": "WARNING"},
    }
    for section, key, value in overrides:
        config.setdefault(section, {})[key] = value
    return config


# ---------------------------------------------------------------------------------------------------------
# sipp results


@dataclass
class RttSample:
    at_ms: float  # wall clock (epoch ms) when the timer stopped: the 200 OK arrived
    rt_ms: float
    rtd: int


def read_rtt(paths: Sequence[Path]) -> list[RttSample]:
    """sipp's ``-trace_rtt`` CSV: ``Date_ms;response_time_ms;rtd_no`` (both times in milliseconds)."""
    samples = []
    for path in paths:
        for row in csv.reader(path.read_text(errors="replace").splitlines(), delimiter=";"):
            if len(row) < 3:
                continue
            try:
                samples.append(RttSample(float(row[0]), float(row[1]), int(row[2])))
            except ValueError:
                continue  # the header line
    return samples


def resolution(values: Sequence[float]) -> float:
    """The largest step every value is a multiple of (sipp's clock granularity), from whole ms."""
    whole = {round(v) for v in values if v > 0}
    if not whole or any(abs(v - round(v)) > 1e-6 for v in values):
        return math.nan
    return float(math.gcd(*whole))


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile; NaN without values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


_SIPP_EVENT_RE = re.compile(
    r"\d+\.\d{6}: (.*?)(?=\d{4}-\d\d-\d\d\t\d\d:\d\d:\d\d\.\d{6}\t\d+\.\d{6}: |\Z)", re.DOTALL
)
_RECEIVED_RE = re.compile(r"received '\s*([^\r\n']*)")
_CSEQ_RE = re.compile(r"^CSeq:\s*\d+\s+(\w+)", re.MULTILINE)
_EXPECTING_RE = re.compile(r"while expecting '([^']*)'")


def summarize_sipp_errors(path: Path, limit: int = 6) -> list[str]:
    """The distinct events in sipp's ``-trace_err`` file, most frequent first, with counts.

    An event is "date<TAB>time<TAB>epoch: text", where the text may carry a whole SIP message; a
    received message is reduced to its first line and CSeq method.
    """
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    counts: collections.Counter[str] = collections.Counter()
    for match in _SIPP_EVENT_RE.finditer(text):
        event = match.group(1)
        first = event.split("\n", 1)[0]
        received = _RECEIVED_RE.search(first)
        if received:
            what = "dead call" if first.startswith("Dead call") else "call aborted"
            cseq = _CSEQ_RE.search(event)
            expecting = _EXPECTING_RE.search(first)
            key = f"{what}: received '{received.group(1).strip()}' to {cseq.group(1) if cseq else '?'}"
            if expecting:
                key += f" while expecting {expecting.group(1)}"
        else:
            key = re.sub(r"'[^']*@[^']*'", "'CALL-ID'", first.strip())
            key = re.sub(r"\d+", "N", key)[:140]
        counts[key] += 1
    return [f"{n} x {kind}" for kind, n in counts.most_common(limit)]


def log_problems(text: str, limit: int = 5) -> list[str]:
    """Distinct log lines (numbers masked) with counts, most frequent first."""
    counts: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        if not line.strip() or line.startswith("==="):
            continue
        counts[re.sub(r"\d+", "N", line.strip())[:160]] += 1
    return [f"{n} x {kind}" for kind, n in counts.most_common(limit)]


# ---------------------------------------------------------------------------------------------------------
# Wire-level setup latency (--pcap): sipp's clock has 4 ms resolution, a capture has microseconds


class Capture:
    """dumpcap on loopback for one step, only the caller <-> kamailio leg (kamailio's port, not the
    daemon's), so the file holds what sipp sent and received."""

    def __init__(self, path: Path, kamailio_port: int, daemon_port: int) -> None:
        self.path = path
        self.filter = f"port {kamailio_port} and not port {daemon_port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = path.with_suffix(".log")
        self.dropped: int | None = None

    def start(self, timeout: float = 5.0) -> None:
        dumpcap = shutil.which("dumpcap") or "/usr/bin/dumpcap"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [dumpcap, "-i", "lo", "-B", "32", "-f", self.filter, "-w", str(self.path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while _size(self.path) == 0 or "Capturing on" not in _read_from(self.log_path, 0):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SetupError(f"dumpcap did not start:\n{tail(self.log_path, 10)}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_popen(self.proc, grace=5.0)  # SIGTERM: dumpcap flushes and prints its statistics
        self.proc = None
        found = re.search(r"Packets dropped:\s*(\d+)|dropped[^0-9]*(\d+)", _read_from(self.log_path, 0))
        if found:
            self.dropped = int(found.group(1) or found.group(2))


def wire_setups(pcap: Path, kamailio_port: int) -> list[tuple[float, float]]:
    """(epoch of the first INVITE, milliseconds until its 200 OK) for each call: the first INVITE sent to
    kamailio and the first 200 OK for INVITE received from it.

    Over TCP one frame may carry several SIP messages; every frame goes one way only (sipp, the UAC,
    sends requests and receives responses), so the per-message fields stay aligned.
    """
    tshark = shutil.which("tshark") or "/usr/bin/tshark"
    out = subprocess.run(
        [
            tshark, "-r", str(pcap), "-n",
            "-d", f"udp.port=={kamailio_port},sip", "-d", f"tcp.port=={kamailio_port},sip",
            "-Y", "sip", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|", "-E", "separator=\t",
            "-e", "frame.time_epoch", "-e", "udp.dstport", "-e", "tcp.dstport",
            "-e", "sip.Call-ID", "-e", "sip.CSeq.method", "-e", "sip.Status-Code",
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise SetupError(f"tshark could not read {pcap}: {out.stderr.strip()[:500]}")
    invites: dict[str, float] = {}
    answers: dict[str, float] = {}
    for line in out.stdout.splitlines():
        fields = line.split("\t")
        if len(fields) < 6:
            continue
        at, udp_dst, tcp_dst, call_ids, methods, statuses = fields[:6]
        dst = udp_dst or tcp_dst
        ids, cseq_methods = call_ids.split("|"), methods.split("|")
        if dst == str(kamailio_port):
            for call_id, method in zip(ids, cseq_methods, strict=False):
                if method == "INVITE":
                    invites.setdefault(call_id, float(at))
        else:
            for call_id, method, status in zip(ids, cseq_methods, statuses.split("|"), strict=False):
                if method == "INVITE" and status == "200":
                    answers.setdefault(call_id, float(at))
    return [(t0, 1000 * (answers[c] - t0)) for c, t0 in invites.items() if c in answers]


# ---------------------------------------------------------------------------------------------------------
# One step


@dataclass
class StepResult:
    rate: float
    calls_requested: int
    concurrency_limit: int
    attempted: int = 0
    successful: int = 0
    failed: int = 0
    incomplete: int = 0
    retransmissions: int = 0
    daemon_udp_drops: int | None = None  # UDP: datagrams dropped at the daemon's SIP socket (buffer full)
    setups_per_s: float = math.nan
    latency_p50_ms: float = math.nan
    latency_p99_ms: float = math.nan
    latency_max_ms: float = math.nan
    latency_samples: int = 0
    latency_resolution_ms: float = math.nan  # the step in which sipp's response times come (its clock)
    wire_p50_ms: float = math.nan  # --pcap: the same latency from a loopback capture (microseconds)
    wire_p99_ms: float = math.nan
    wire_max_ms: float = math.nan
    wire_samples: int = 0
    capture_dropped: int | None = None
    gc_full_collections: int | None = None  # --gc-log: the daemon's generation-2 collections in the step
    gc_full_max_ms: float = math.nan
    gc_full_total_ms: float = math.nan
    gc_tracked_objects: int | None = None  # objects the last full collection of the step had to walk
    slow_setups: int | None = None  # --pcap: setups slower than SLOW_SETUP_MS on the wire
    slow_setups_during_gc: int | None = None  # ... of which a full collection ran while they waited
    daemon_cpu_pct: float = math.nan
    daemon_cpu_peak_1s_pct: float = math.nan
    daemon_rss_mib: float = math.nan
    daemon_rss_peak_mib: float = math.nan
    kamailio_cpu_pct: float = math.nan
    sipp_cpu_pct: float = math.nan
    machine_busy_pct: float = math.nan  # every CPU of the machine, 100 = one core
    others_cpu_pct: float = math.nan  # machine busy minus daemon, kamailio, sipp: someone else's load
    wall_s: float = 0.0
    sipp_exit: int | None = None
    sipp_failures: dict[str, int] = field(default_factory=dict)
    sipp_errors: list[str] = field(default_factory=list)
    daemon_log_lines: int = 0
    daemon_log: list[str] = field(default_factory=list)
    kamailio_log_lines: int = 0
    kamailio_log: list[str] = field(default_factory=list)
    workdir: str = ""

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.incomplete == 0 and self.successful == self.calls_requested


class Bench:
    """kamailio + the daemon, started once; ``step()`` runs one sipp load step against them."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.ccdaemon = find_ccdaemon()
        self.kamailio: Kamailio | None = None
        self.daemon: ManagedProcess | None = None
        self.daemon_config: dict[str, dict[str, Any]] = {}
        self.sipp_port = free_port()
        self.sipp_media_port = free_port(span=4)
        self._sipp: subprocess.Popen[bytes] | None = None
        self._capture: Capture | None = None
        self.gc_log = workdir / "ccdaemon-gc.log"

    # -- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> None:
        args = self.args
        try:
            self.kamailio = Kamailio(
                self.workdir / "kamailio",
                require_invite_auth=args.auth,
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
        sip_port = free_port()
        self.daemon_config = daemon_config(kamailio, sip_port, args.transport, args.overrides)
        config_path = self.workdir / "ccdaemon.toml"
        config_path.write_text(render_toml(self.daemon_config))
        config_path.chmod(0o600)
        env: dict[str, str] = {}
        python_path = [p for p in [os.environ.get("PYTHONPATH")] if p]
        if args.loop == "asyncio":
            python_path.insert(0, str(without_uvloop(self.workdir)))
        if args.ref is not None:
            python_path.insert(0, str(export_ref(args.ref, self.workdir)))
        if args.gc_log or args.gc_threshold:
            python_path.insert(0, str(gc_tracer(self.workdir)))
        if args.gc_log:
            env["BENCH_GC_LOG"] = str(self.gc_log)
        if args.gc_threshold:
            env["BENCH_GC_THRESHOLD"] = args.gc_threshold
        if python_path:
            env["PYTHONPATH"] = os.pathsep.join(python_path)
        self.daemon = ManagedProcess(
            "ccdaemon",
            [str(self.ccdaemon), "run", "--config", str(config_path)],
            self.workdir / "ccdaemon.log",
            cwd=self.workdir,
            env=env,
        )
        self.daemon.start()
        deadline = time.monotonic() + args.register_timeout
        while not kamailio.registered_contacts(DAEMON_USER):
            if not self.daemon.running():
                raise SetupError(
                    f"ccdaemon exited with {self.daemon.returncode} before registering:\n"
                    + tail(self.daemon.log_path, 40)
                )
            if time.monotonic() > deadline:
                raise SetupError(
                    f"ccdaemon did not register as {DAEMON_USER} with kamailio {kamailio.domain} within "
                    f"{args.register_timeout:g}s\n--- ccdaemon log ---\n{tail(self.daemon.log_path, 40)}"
                    f"\n--- kamailio log ---\n{tail(kamailio.log_path, 40)}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop sipp, the daemon, then kamailio: each by its PID and process group."""
        if self._sipp is not None:
            stop_popen(self._sipp)
            self._sipp = None
        if self._capture is not None:
            self._capture.stop()
            self._capture = None
        for proc in (self.daemon, self.kamailio):
            if proc is None:
                continue
            try:
                proc.stop()
            except Exception as exc:  # keep stopping the others
                print(f"warning: stopping {proc!r} failed: {exc}", file=sys.stderr)

    @property
    def daemon_pid(self) -> int:
        assert self.daemon is not None and self.daemon.pid is not None
        return self.daemon.pid

    # -- one load step -------------------------------------------------------------------------------------

    def step(self, rate: float, calls: int, index: int) -> StepResult:
        args = self.args
        kamailio = self.kamailio
        assert kamailio is not None and self.daemon is not None
        if not self.daemon.running():
            raise SetupError(f"ccdaemon is no longer running (exit {self.daemon.returncode})")
        hold_s = args.hold_ms / 1000
        limit = args.limit or max(50, math.ceil(2 * rate * (1 + hold_s)))
        result = StepResult(rate=rate, calls_requested=calls, concurrency_limit=limit)
        cwd = self.workdir / f"step-{index:02d}-{rate:g}cps"
        cwd.mkdir()
        result.workdir = str(cwd)
        timeout_s = calls / rate + hold_s + RECV_TIMEOUT_MS / 1000 + 30
        argv = sipp_argv(
            SCENARIOS / ("uac_setup_auth.xml" if args.auth else "uac_setup.xml"),
            kamailio.address,
            local_port=self.sipp_port,
            media_port=self.sipp_media_port,
            service=DAEMON_USER,
            calls=calls,
            rate=rate,
            limit=limit,
            timeout_s=timeout_s,
            transport="t1" if args.transport == "tcp" else "u1",
            auth=(CALLER_USER, kamailio.users[CALLER_USER]) if args.auth else None,
            keys={"caller": CALLER_USER},
            duration_ms=args.hold_ms,
            trace=True,
            trace_messages=args.trace_messages,
            extra=["-recv_timeout", str(RECV_TIMEOUT_MS)],
        )
        (cwd / "argv.txt").write_text(" ".join(argv) + "\n")
        daemon_log_at = _size(self.daemon.log_path)
        kamailio_log_at = _size(kamailio.log_path)

        capture: Capture | None = None
        if args.pcap:
            capture = Capture(cwd / "sip.pcapng", kamailio.port, self.daemon_config["sip"]["listen_port"])
            self._capture = capture
            capture.start()
        pid = self.daemon_pid
        sip_port = int(self.daemon_config["sip"]["listen_port"])
        drops_before = udp_drops(sip_port)
        daemon_before = proc_ticks(pid) or 0
        kamailio_before = group_ticks(kamailio.pid or -1)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        machine_before = machine_ticks()
        started = time.monotonic()
        started_epoch = time.time()
        with CpuSampler(pid) as sampler, (cwd / "sipp.log").open("wb") as log:
            self._sipp = subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                result.sipp_exit = self._sipp.wait(timeout_s + 15)
            except subprocess.TimeoutExpired:
                log.write(f"\n=== killed by call_setup.py: sipp overran -timeout {timeout_s:g}s\n".encode())
                result.sipp_exit = stop_popen(self._sipp)
            self._sipp = None
        wall = time.monotonic() - started
        daemon_after = proc_ticks(pid)
        if args.transport == "udp":
            result.daemon_udp_drops = udp_drops(sip_port) - drops_before
        kamailio_after = group_ticks(kamailio.pid or -1)
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        machine_after = machine_ticks()
        if capture is not None:
            capture.stop()
            self._capture = None

        result.wall_s = wall
        if daemon_after is not None:
            result.daemon_cpu_pct = 100.0 * (daemon_after - daemon_before) / CLK_TCK / wall
        result.daemon_cpu_peak_1s_pct = sampler.peak_percent()
        rss = proc_status_kib(pid, "VmRSS")
        result.daemon_rss_mib = rss / 1024 if rss is not None else math.nan
        result.daemon_rss_peak_mib = max(sampler.peak_rss_kib, rss or 0) / 1024
        result.kamailio_cpu_pct = 100.0 * (kamailio_after - kamailio_before) / CLK_TCK / wall
        sipp_cpu = (children_after.ru_utime + children_after.ru_stime) - (
            children_before.ru_utime + children_before.ru_stime
        )
        result.sipp_cpu_pct = 100.0 * sipp_cpu / wall
        busy = machine_after[0] - machine_before[0]
        ncpu = os.cpu_count() or 1
        result.machine_busy_pct = 100.0 * ncpu * busy / max(1, machine_after[1] - machine_before[1])
        result.others_cpu_pct = max(
            0.0,
            result.machine_busy_pct - result.daemon_cpu_pct - result.kamailio_cpu_pct - result.sipp_cpu_pct,
        )

        stats = SippStats.parse(cwd / "stats.csv")
        result.attempted = stats.total_calls
        result.successful = stats.successful_calls
        result.failed = stats.failed_calls
        result.incomplete = max(0, calls - stats.successful_calls - stats.failed_calls)
        result.retransmissions = stats.retransmissions
        result.sipp_failures = stats.failures
        if result.sipp_exit not in (0, 1) and stats.total_calls == 0:
            raise SetupError(f"sipp could not run (exit {result.sipp_exit}):\n{tail(cwd / 'sipp.log', 30)}")

        setups = [s for s in read_rtt(sorted(cwd.glob("*_rtt.csv"))) if s.rtd == 1]
        times = [s.rt_ms for s in setups]
        result.latency_samples = len(times)
        result.latency_p50_ms = percentile(times, 50)
        result.latency_p99_ms = percentile(times, 99)
        result.latency_max_ms = max(times) if times else math.nan
        result.latency_resolution_ms = resolution(times)
        if len(setups) >= 2:
            span_s = (max(s.at_ms for s in setups) - min(s.at_ms for s in setups)) / 1000
            result.setups_per_s = (len(setups) - 1) / span_s if span_s > 0 else math.nan
        elif wall > 0:
            result.setups_per_s = result.successful / wall

        full_gcs: list[GcPause] = []
        if args.gc_log:
            pauses = read_gc_log(self.gc_log, started_epoch, time.time())
            full_gcs = [p for p in pauses if p.generation == 2]
            full = [p.ms for p in full_gcs]
            result.gc_full_collections = len(full)
            result.gc_full_max_ms = max(full) if full else math.nan
            result.gc_full_total_ms = sum(full)
            result.gc_tracked_objects = full_gcs[-1].tracked if full_gcs else None
        if capture is not None:
            on_wire = wire_setups(capture.path, kamailio.port)
            wire = [ms for _, ms in on_wire]
            slow = [(at, ms) for at, ms in on_wire if ms >= SLOW_SETUP_MS]
            result.slow_setups = len(slow)
            if args.gc_log:
                result.slow_setups_during_gc = sum(
                    1
                    for at, ms in slow
                    if any(p.at <= at + ms / 1000 and at <= p.at + p.ms / 1000 for p in full_gcs)
                )
            result.wire_samples = len(wire)
            result.wire_p50_ms = percentile(wire, 50)
            result.wire_p99_ms = percentile(wire, 99)
            result.wire_max_ms = max(wire) if wire else math.nan
            result.capture_dropped = capture.dropped
        result.sipp_errors = summarize_sipp_errors(cwd / "errors.log")
        daemon_text = _read_from(self.daemon.log_path, daemon_log_at)
        result.daemon_log_lines = len([line for line in daemon_text.splitlines() if line.strip()])
        result.daemon_log = log_problems(daemon_text)
        kamailio_text = _read_from(kamailio.log_path, kamailio_log_at)
        result.kamailio_log_lines = len([line for line in kamailio_text.splitlines() if line.strip()])
        result.kamailio_log = log_problems(kamailio_text)
        return result


def set_kamailio_shm(kamailio: Kamailio, megabytes: int) -> None:
    """The harness starts kamailio with ``-m 64`` (MB of shared memory), enough for tests; at a few
    hundred calls/s tm's transactions outgrow it ("out of mem", 500 replies), so give it more."""
    argv = kamailio._proc.argv  # the harness's own argv, adjusted here instead of editing tests/
    if "-m" in argv:
        argv[argv.index("-m") + 1] = str(megabytes)


def others_cpu_pct(bench: Bench, seconds: float = 1.0) -> float:
    """CPU % (100 = one core) used over ``seconds`` by processes that are not the daemon or kamailio."""
    daemon_pid = bench.daemon.pid if bench.daemon else None
    kamailio_pid = bench.kamailio.pid if bench.kamailio else None
    ncpu = os.cpu_count() or 1

    def ours() -> int:
        total = (proc_ticks(daemon_pid) or 0) if daemon_pid else 0
        return total + (group_ticks(kamailio_pid) if kamailio_pid else 0)

    busy0, total0 = machine_ticks()
    ours0 = ours()
    time.sleep(seconds)
    busy1, total1 = machine_ticks()
    ours1 = ours()
    machine_pct = 100.0 * ncpu * (busy1 - busy0) / max(1, total1 - total0)
    return max(0.0, machine_pct - 100.0 * (ours1 - ours0) / CLK_TCK / seconds)


def wait_quiet(bench: Bench, max_wait: float, threshold: float = QUIET_OTHERS_PCT) -> float:
    """Wait (up to ``max_wait`` s) until the rest of the machine uses less than ``threshold`` % CPU."""
    deadline = time.monotonic() + max_wait
    while True:
        load = others_cpu_pct(bench)
        if load < threshold or time.monotonic() >= deadline:
            return load
        print(f"(others use {load:.0f}% CPU, waiting)", end=" ", flush=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def stop_popen(proc: subprocess.Popen[bytes], grace: float = 3.0) -> int:
    """SIGTERM the process (and its session's group), wait, then SIGKILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything it left in the session we created for it
    return proc.returncode


GC_TRACER = """\
# Written by benchmarks/call_setup.py (--gc-log, --gc-threshold) for its daemon; not part of ccdaemon.
import gc, os, time

_threshold = os.environ.get("BENCH_GC_THRESHOLD")
if _threshold:
    gc.set_threshold(*(int(v) for v in _threshold.split(",")))
_path = os.environ.get("BENCH_GC_LOG")
if _path:
    _out = open(_path, "a", buffering=1)
    _began = [0.0, 0.0]

    def _on_gc(phase, info):
        if phase == "start":
            _began[0], _began[1] = time.time(), time.perf_counter()
            return
        ms = (time.perf_counter() - _began[1]) * 1000
        if info["generation"] == 2 or ms >= 5:
            tracked = len(gc.get_objects(2)) if info["generation"] == 2 else -1
            _out.write(f"{_began[0]:.6f} {info['generation']} {ms:.3f} {info['collected']} {tracked}\\n")

    gc.callbacks.append(_on_gc)
"""


def gc_tracer(workdir: Path) -> Path:
    """A directory with a ``sitecustomize`` that logs every full (generation 2) collection of the
    daemon, and any other taking 5 ms or more, as ``epoch generation milliseconds collected tracked``
    (tracked = objects in the oldest generation after a full collection, else -1)."""
    shim = workdir / "gc-trace"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "sitecustomize.py").write_text(GC_TRACER)
    return shim


@dataclass
class GcPause:
    at: float  # epoch seconds
    generation: int
    ms: float
    tracked: int = -1


def read_gc_log(path: Path, since: float, until: float) -> list[GcPause]:
    pauses = []
    for line in _read_from(path, 0).splitlines():
        parts = line.split()
        if len(parts) >= 3 and since <= float(parts[0]) <= until:
            tracked = int(parts[4]) if len(parts) >= 5 else -1
            pauses.append(GcPause(float(parts[0]), int(parts[1]), float(parts[2]), tracked))
    return pauses


def without_uvloop(workdir: Path) -> Path:
    """A directory that, first on PYTHONPATH, makes ``import uvloop`` fail: ``ccdaemon.daemon.run``
    then falls back to the standard asyncio loop (``--loop asyncio``)."""
    shim = workdir / "no-uvloop"
    (shim / "uvloop").mkdir(parents=True, exist_ok=True)
    (shim / "uvloop" / "__init__.py").write_text(
        'raise ImportError("uvloop disabled by benchmarks/call_setup.py --loop asyncio")\n'
    )
    return shim


def find_ccdaemon() -> Path:
    """The ``ccdaemon`` entry point next to this interpreter (the project's venv), else on PATH."""
    beside = Path(sys.executable).parent / "ccdaemon"
    if beside.is_file():
        return beside
    found = shutil.which("ccdaemon")
    if found is None:
        raise SetupError(
            "ccdaemon not found: run with the project's venv (.venv/bin/python) after pip install"
        )
    return Path(found)


# ---------------------------------------------------------------------------------------------------------
# Output


def _fmt(value: float, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


Column = tuple[str, Callable[[StepResult], str]]

COLUMNS: list[Column] = [
    ("rate/s", lambda r: f"{r.rate:g}"),
    ("calls", lambda r: str(r.attempted)),
    ("ok", lambda r: str(r.successful)),
    ("failed", lambda r: str(r.failed)),
    ("incompl", lambda r: str(r.incomplete)),
    ("retrans", lambda r: str(r.retransmissions)),
    ("drops", lambda r: "-" if r.daemon_udp_drops is None else str(r.daemon_udp_drops)),
    ("setups/s", lambda r: _fmt(r.setups_per_s)),
    ("p50 ms", lambda r: _fmt(r.latency_p50_ms, 0)),
    ("p99 ms", lambda r: _fmt(r.latency_p99_ms, 0)),
    ("max ms", lambda r: _fmt(r.latency_max_ms, 0)),
]
WIRE_COLUMNS: list[Column] = [
    ("wire p50", lambda r: _fmt(r.wire_p50_ms, 2)),
    ("wire p99", lambda r: _fmt(r.wire_p99_ms, 2)),
    ("wire max", lambda r: _fmt(r.wire_max_ms, 1)),
]
CPU_COLUMNS: list[Column] = [
    ("daemon CPU%", lambda r: _fmt(r.daemon_cpu_pct)),
    ("peak 1s%", lambda r: _fmt(r.daemon_cpu_peak_1s_pct)),
    ("RSS MiB", lambda r: _fmt(r.daemon_rss_mib)),
    ("kamailio CPU%", lambda r: _fmt(r.kamailio_cpu_pct)),
    ("sipp CPU%", lambda r: _fmt(r.sipp_cpu_pct)),
    ("others CPU%", lambda r: _fmt(r.others_cpu_pct)),
]


def render_table(results: Sequence[StepResult], *, wire: bool = False) -> str:
    columns = COLUMNS + (WIRE_COLUMNS if wire else []) + CPU_COLUMNS
    header = [name for name, _ in columns]
    rows = [[cell(r) for _, cell in columns] for r in results]
    widths = [max(len(header[i]), *(len(row[i]) for row in rows)) for i in range(len(header))]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def render_header(machine: dict[str, Any], args: argparse.Namespace, bench: Bench | None) -> str:
    overrides = ", ".join(f"{s}.{k}={v!r}" for s, k, v in args.overrides) or "none"
    env = sorted(k for k in os.environ if k.startswith("CCDAEMON_"))
    uvloop = "no"
    if machine["uvloop"]:
        uvloop = "installed but hidden (--loop asyncio)" if args.loop == "asyncio" else "yes"
    lines = [
        f"ccdaemon call-setup benchmark  {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"machine: {machine['hostname']}, nproc={machine['nproc']} (usable {machine['cpus_usable']}), "
        f"CPU {machine['cpu_model']}, Linux {machine['kernel']}, "
        f"load before {' '.join(machine['loadavg_before'])}",
        f"daemon: ccdaemon {machine['ccdaemon_commit']}, Python {machine['python']}, uvloop {uvloop}; "
        f"peers: kamailio {machine['kamailio']}, sipp {machine['sipp']}",
        f"load: sipp -> kamailio -> ccdaemon over {args.transport.upper()}, auth "
        f"{'yes (407 digest per call)' if args.auth else 'no (kamailio does not challenge callers)'}, "
        f"hold {args.hold_ms} ms; daemon config overrides: {overrides}"
        + (f"; daemon gc.set_threshold({args.gc_threshold})" if args.gc_threshold else "")
        + (f"; environment: {', '.join(env)}" if env else ""),
        f"CPU% = share of one core over the step ({100 * (machine['nproc'] or 1)} = every core here); "
        "others = the rest of the machine (not ours); drops = datagrams the kernel dropped at the "
        "daemon's SIP socket (receive buffer full)",
        "setup latency = first INVITE sent -> 200 OK received"
        + (" (incl. the 407 round trip)" if args.auth else "")
        + ": p50/p99/max from sipp's -trace_rtt (ms; see the resolution note below)"
        + ("; wire = the same from a loopback capture (us resolution)" if args.pcap else ""),
    ]
    if bench is not None and bench.daemon is not None:
        lines.append(f"logs: {bench.workdir}")
    return "\n".join(lines)


def problems_text(results: Sequence[StepResult]) -> str:
    out = []
    for r in results:
        notes = []
        if r.sipp_failures:
            notes.append(f"  sipp failure counters: {r.sipp_failures}")
        if r.gc_full_collections:
            notes.append(
                f"  daemon: {r.gc_full_collections} full GC collection(s), "
                f"longest {r.gc_full_max_ms:.0f} ms, total {r.gc_full_total_ms:.0f} ms, "
                f"{r.gc_tracked_objects} objects in the oldest generation after the last one"
            )
        if r.slow_setups:
            during = (
                "" if r.slow_setups_during_gc is None else f", {r.slow_setups_during_gc} while a full GC ran"
            )
            notes.append(f"  wire: {r.slow_setups} setup(s) took >= {SLOW_SETUP_MS:g} ms{during}")
        notes += [f"  sipp: {line}" for line in r.sipp_errors]
        notes += [f"  ccdaemon log: {line}" for line in r.daemon_log]
        if not r.ok:
            notes += [f"  kamailio log: {line}" for line in r.kamailio_log]
        if notes:
            out.append(f"rate {r.rate:g}/s ({r.workdir}):")
            out += notes
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
        "benchmark": "call_setup",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "parameters": {
            "rates": args.rates,
            "calls_per_step": args.calls_per_step,
            "step_seconds": args.step_seconds,
            "hold_ms": args.hold_ms,
            "transport": args.transport,
            "auth": args.auth,
            "limit": args.limit,
            "settle_s": args.settle_s,
            "kamailio_shm_mb": args.kamailio_shm_mb,
            "kamailio_debug": args.kamailio_debug,
            "recv_timeout_ms": RECV_TIMEOUT_MS,
            "pcap": args.pcap,
            "loop": args.loop,
            "ref": args.ref,
            "gc_log": args.gc_log,
            "gc_threshold": args.gc_threshold,
        },
        "daemon_config": config,
        "units": {
            "latency": "ms, first INVITE sent -> 200 OK received at sipp (-trace_rtt, rtd 1; sipp's clock "
            "has the kernel's coarse resolution, 4 ms here)",
            "wire_latency": "ms, the same from a dumpcap capture of the sipp <-> kamailio leg (--pcap)",
            "cpu_pct": "percent of one core over the step wall time (/proc/<pid>/stat utime+stime)",
            "rss_mib": "MiB (/proc/<pid>/status VmRSS)",
            "setups_per_s": "(n-1) / (last 200 OK - first 200 OK) over the step's successful setups",
        },
        "steps": [_json_safe({**asdict(r), "ok": r.ok}) for r in results],
        "exit_code": exit_code,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------------------
# Main


def parse_rates(text: str) -> list[float]:
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rates wants numbers separated by commas, got {text!r}") from None
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError("--rates wants positive numbers")
    return rates


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Call setups per second answered by the real ccdaemon (sipp -> kamailio -> ccdaemon, "
        "signalling only). Prints a table; exit 1 when any call failed.",
    )
    parser.add_argument(
        "--rates",
        type=parse_rates,
        default=parse_rates("50,100,200,300"),
        help="calls per second, one step each (default 50,100,200,300)",
    )
    parser.add_argument(
        "--calls-per-step",
        type=int,
        default=None,
        metavar="N",
        help="calls in each step (default: rate x --step-seconds)",
    )
    parser.add_argument(
        "--step-seconds",
        type=float,
        default=10.0,
        help="step length when --calls-per-step is not given (default 10)",
    )
    parser.add_argument(
        "--hold-ms", type=int, default=0, help="time between ACK and BYE (sipp -d), default 0"
    )
    parser.add_argument(
        "--transport",
        choices=("udp", "tcp"),
        default="udp",
        help="sipp->kamailio and kamailio<->daemon transport (default udp)",
    )
    parser.add_argument(
        "--auth",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="kamailio challenges every INVITE with 407 and sipp answers it (default: no)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="sipp -l, most calls open at once (default max(50, 2 x rate x (1 + hold s)))",
    )
    parser.add_argument("--settle-s", type=float, default=2.0, help="idle seconds between steps (default 2)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=parse_override,
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="extra daemon configuration, e.g. security.max_calls=2000 (repeatable; shown in the header)",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write results as JSON")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where logs go (default: a temp dir, removed when every call succeeded)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir even when all went well")
    parser.add_argument(
        "--trace-messages",
        action="store_true",
        help="sipp -trace_msg (every SIP message; slows sipp at high rates)",
    )
    parser.add_argument(
        "--kamailio-debug",
        type=int,
        default=1,
        help="kamailio debug level (default 1 = warnings; 2 logs every request)",
    )
    parser.add_argument(
        "--ref",
        default=None,
        metavar="COMMIT",
        help="run the daemon from this commit's ccdaemon/ (git archive into the work dir) instead of the "
        "working tree: compares commits and ignores uncommitted edits",
    )
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio"),
        default="auto",
        help="daemon event loop: auto = uvloop when installed (what `ccdaemon run` does), asyncio = "
        "hide uvloop from the daemon",
    )
    parser.add_argument(
        "--pcap",
        action="store_true",
        help="also capture the caller <-> kamailio leg (dumpcap) and measure setup latency on the wire",
    )
    parser.add_argument(
        "--gc-log",
        action="store_true",
        help="log the daemon's garbage collections (a sitecustomize on its PYTHONPATH) and report full "
        "collections per step; with --pcap, also how many slow setups waited for one",
    )
    parser.add_argument(
        "--gc-threshold",
        default=None,
        metavar="G0[,G1[,G2]]",
        help="experiment: gc.set_threshold() in the daemon before it starts (0 = no automatic GC); "
        "shown in the header",
    )
    parser.add_argument(
        "--kamailio-shm-mb",
        type=int,
        default=256,
        help="kamailio shared memory in MB (the harness's 64 runs out near 400 calls/s)",
    )
    parser.add_argument(
        "--quiet-wait-s",
        type=float,
        default=0.0,
        help=f"before each step, wait up to this long until other processes on the machine use less "
        f"than {QUIET_OTHERS_PCT:g}%% CPU (default 0: do not wait)",
    )
    parser.add_argument(
        "--register-timeout",
        type=float,
        default=20.0,
        help="seconds to wait for the daemon's registration (default 20)",
    )
    return parser


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


@contextlib.contextmanager
def signals_unwind() -> Iterator[None]:
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    # Ctrl-C raises KeyboardInterrupt, also when started in the background (where SIGINT is ignored)
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


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
    if args.calls_per_step is not None and args.calls_per_step <= 0:
        print("--calls-per-step must be positive", file=sys.stderr)
        return EXIT_SETUP
    own_workdir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="ccdaemon-bench-")) if own_workdir else args.workdir.resolve()
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
                machine = machine_info(bench.ccdaemon.parent / "python", args.ref)
                print(render_header(machine, args, None), flush=True)
                bench.start()
                print(
                    f"kamailio {bench.kamailio!r}, ccdaemon pid {bench.daemon_pid} registered as "
                    f"{DAEMON_USER}; logs in {workdir}",
                    flush=True,
                )
                for index, rate in enumerate(args.rates, 1):
                    if index > 1 and args.settle_s > 0:
                        time.sleep(args.settle_s)
                    calls = args.calls_per_step or max(1, round(rate * args.step_seconds))
                    if args.quiet_wait_s > 0:
                        wait_quiet(bench, args.quiet_wait_s)
                    print(
                        f"step {index}/{len(args.rates)}: {calls} calls at {rate:g}/s ...",
                        end=" ",
                        flush=True,
                    )
                    result = bench.step(rate, calls, index)
                    results.append(result)
                    print(
                        f"{result.successful} ok, {result.failed} failed, {result.incomplete} incomplete, "
                        f"p99 {_fmt(result.latency_p99_ms, 2)} ms",
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
                    # a second Ctrl-C must not cut the clean-up short: hold signals until all are stopped
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
        print(render_header(machine, args, bench))
        print(render_table(results, wire=args.pcap))
        steps = {r.latency_resolution_ms for r in results if not math.isnan(r.latency_resolution_ms)}
        if steps and max(steps) > 1:
            print(
                f"\nnote: sipp's response times came in multiples of {max(steps):g} ms (its clock follows "
                "the kernel's coarse tick): its p50/p99 are +-that much"
                + ("; the wire columns are exact" if args.pcap else "; --pcap measures them on the wire")
            )
        contended = [r for r in results if r.others_cpu_pct > QUIET_OTHERS_PCT]
        if contended:
            print(
                f"\nwarning: other processes used more than {QUIET_OTHERS_PCT:g}% CPU during the step(s) at "
                + ", ".join(f"{r.rate:g}/s ({r.others_cpu_pct:.0f}%)" for r in contended)
                + ": those figures are contended (see --quiet-wait-s)"
            )
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
