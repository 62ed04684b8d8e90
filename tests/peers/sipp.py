"""sipp 3.6 runs: bounded UAC runs with parsed statistics, and background UAS processes.

Every run gets its own working directory (sipp writes its trace files into the cwd), its own signalling
port and its own media port (``-mp``: sipp binds it even when no RTP flows, so two sipps on the default
6000 collide). Scenarios live in ``tests/peers/sipp/``; their header comments name the ``-key`` values
they need.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import itertools
import math
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ports import LOOPBACK, assert_loopback, free_port, port_is_free, tcp_accepts
from .process import ManagedProcess, require_binary, tail, wait_until

SCENARIO_DIR = Path(__file__).with_name("sipp")
_run_ids = itertools.count(1)


def scenario_path(name: str | Path) -> Path:
    """A scenario from ``tests/peers/sipp/`` by file name (``.xml`` optional), or any existing path."""
    path = Path(name)
    if path.is_file():
        return path
    candidate = SCENARIO_DIR / (path.name if path.suffix else f"{path.name}.xml")
    if not candidate.is_file():
        known = ", ".join(sorted(p.name for p in SCENARIO_DIR.glob("*.xml")))
        raise FileNotFoundError(f"no sipp scenario {name!r}; known: {known}")
    return candidate


def _int(value: str | None) -> int:
    try:
        return int(float(value)) if value else 0
    except ValueError:
        return 0


@dataclass
class SippStats:
    """The last row of sipp's ``-trace_stat`` CSV (cumulative counters) plus ``-trace_rtt`` samples."""

    total_calls: int = 0
    successful_calls: int = 0
    failed_calls: int = 0
    retransmissions: int = 0
    out_of_call_messages: int = 0
    dead_call_messages: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    response_times_ms: dict[int, list[float]] = field(default_factory=dict)
    raw: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, stat_csv: Path, rtt_csvs: Sequence[Path] = ()) -> SippStats:
        stats = cls()
        if stat_csv.is_file():
            rows = list(csv.reader(stat_csv.read_text(errors="replace").splitlines(), delimiter=";"))
            if len(rows) >= 2:
                header, last = rows[0], rows[-1]
                stats.raw = {k: v for k, v in zip(header, last, strict=False) if k}
        raw = stats.raw
        stats.total_calls = _int(raw.get("TotalCallCreated"))
        stats.successful_calls = _int(raw.get("SuccessfulCall(C)"))
        stats.failed_calls = _int(raw.get("FailedCall(C)"))
        stats.retransmissions = _int(raw.get("Retransmissions(C)"))
        stats.out_of_call_messages = _int(raw.get("OutOfCallMsgs(C)"))
        stats.dead_call_messages = _int(raw.get("DeadCallMsgs(C)"))
        stats.failures = {
            k.removesuffix("(C)"): _int(v)
            for k, v in raw.items()
            if k.startswith("Failed") and k.endswith("(C)") and k != "FailedCall(C)" and _int(v)
        }
        for rtt_csv in rtt_csvs:
            for row in csv.reader(rtt_csv.read_text(errors="replace").splitlines(), delimiter=";"):
                if len(row) >= 3 and row[1].replace(".", "", 1).isdigit():
                    stats.response_times_ms.setdefault(_int(row[2]), []).append(float(row[1]))
        return stats

    def percentile(self, pct: float, rtd: int = 1) -> float:
        """Nearest-rank percentile (ms) of response-time timer ``rtd``; NaN without samples."""
        samples = sorted(self.response_times_ms.get(rtd, []))
        if not samples:
            return math.nan
        rank = max(1, math.ceil(pct / 100 * len(samples)))
        return samples[rank - 1]


@dataclass
class SippResult:
    argv: list[str]
    returncode: int
    stats: SippStats
    workdir: Path
    log_path: Path
    error_log: Path
    message_log: Path | None
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.stats.failed_calls == 0

    def describe(self) -> str:
        s = self.stats
        parts = [
            f"sipp exit={self.returncode} calls={s.total_calls} ok={s.successful_calls} "
            f"failed={s.failed_calls} retrans={s.retransmissions} failures={s.failures} "
            f"in {self.duration_s:.2f}s (cwd {self.workdir})",
            f"argv: {' '.join(self.argv)}",
        ]
        if self.error_log.is_file():
            parts.append("--- errors log ---\n" + tail(self.error_log, 60))
        parts.append("--- screen/stdout ---\n" + tail(self.log_path, 60))
        if self.message_log is not None and self.message_log.is_file():
            parts.append("--- messages ---\n" + tail(self.message_log, 120))
        return "\n".join(parts)

    def check(self) -> SippResult:
        """Raise ``AssertionError`` with the sipp logs unless every call succeeded."""
        if not self.ok:
            raise AssertionError(self.describe())
        return self


def sipp_argv(
    scenario: str | Path,
    target: tuple[str, int] | None,
    *,
    local_port: int,
    media_port: int,
    service: str | None = None,
    calls: int | None = 1,
    rate: float = 10.0,
    rate_period_ms: int | None = None,
    limit: int | None = None,
    timeout_s: float | None = 30.0,
    transport: str = "u1",
    auth: tuple[str, str] | None = None,
    keys: Mapping[str, str] | None = None,
    duration_ms: int = 0,
    trace: bool = True,
    trace_messages: bool = False,
    extra: Sequence[str] = (),
) -> list[str]:
    argv = [require_binary("sipp", "sip-tester")]
    if target is not None:
        host, port = target
        argv.append(f"{assert_loopback(host)}:{port}")
    argv += ["-sf", str(scenario_path(scenario))]
    argv += ["-i", LOOPBACK, "-p", str(local_port), "-mi", LOOPBACK, "-mp", str(media_port)]
    argv += ["-t", transport, "-nostdin", "-d", str(duration_ms)]
    if service is not None:
        argv += ["-s", service]
    if calls is not None:
        argv += ["-m", str(calls)]
    argv += ["-r", f"{rate:g}"]
    if rate_period_ms is not None:
        argv += ["-rp", str(rate_period_ms)]
    if limit is not None:
        argv += ["-l", str(limit)]
    if timeout_s is not None:
        argv += ["-timeout", f"{timeout_s:g}s", "-timeout_error"]
    if auth is not None:
        argv += ["-au", auth[0], "-ap", auth[1]]
    for name, value in (keys or {}).items():
        argv += ["-key", name, str(value)]
    if trace:
        argv += ["-trace_stat", "-stf", "stats.csv", "-fd", "200ms"]
        argv += ["-trace_rtt", "-rtt_freq", "1"]
        argv += ["-trace_err", "-error_file", "errors.log"]
        argv += ["-trace_screen", "-screen_file", "screen.log"]
    if trace_messages:
        argv += ["-trace_msg", "-message_file", "messages.log"]
    argv += list(extra)
    return argv


def _workdir(base: Path, label: str) -> Path:
    path = base / f"sipp-{next(_run_ids):02d}-{label}"
    path.mkdir(parents=True, exist_ok=False)
    return path


def run_sipp(
    scenario: str | Path,
    target: tuple[str, int],
    *,
    workdir: Path,
    service: str | None = None,
    calls: int = 1,
    rate: float = 10.0,
    limit: int | None = None,
    timeout_s: float = 30.0,
    transport: str = "u1",
    auth: tuple[str, str] | None = None,
    keys: Mapping[str, str] | None = None,
    duration_ms: int = 0,
    local_port: int | None = None,
    trace_messages: bool | None = None,
    extra: Sequence[str] = (),
) -> SippResult:
    """Run a bounded sipp client to completion (``-m calls``, ``-timeout``) and parse its statistics.

    ``workdir`` is a parent directory; the run gets its own ``sipp-NN-<scenario>`` subdirectory.
    """
    cwd = _workdir(workdir, scenario_path(scenario).stem)
    local_port = local_port if local_port is not None else free_port()
    trace_messages = calls <= 100 if trace_messages is None else trace_messages
    argv = sipp_argv(
        scenario,
        target,
        local_port=local_port,
        media_port=free_port(span=4),
        service=service,
        calls=calls,
        rate=rate,
        limit=limit,
        timeout_s=timeout_s,
        transport=transport,
        auth=auth,
        keys=keys,
        duration_ms=duration_ms,
        trace_messages=trace_messages,
        extra=extra,
    )
    log_path = cwd / "sipp.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            returncode = proc.wait(timeout_s + 15)
        except subprocess.TimeoutExpired:
            proc.kill()
            returncode = proc.wait()
            log.write(f"\n=== killed: sipp overran -timeout {timeout_s}s by 15s\n".encode())
    duration = time.monotonic() - started
    return SippResult(
        argv=argv,
        returncode=returncode,
        stats=SippStats.parse(cwd / "stats.csv", sorted(cwd.glob("*_rtt.csv"))),
        workdir=cwd,
        log_path=log_path,
        error_log=cwd / "errors.log",
        message_log=cwd / "messages.log" if trace_messages else None,
        duration_s=duration,
    )


async def run_sipp_async(scenario: str | Path, target: tuple[str, int], **kwargs: Any) -> SippResult:
    """``run_sipp`` in a worker thread, so an asyncio test (and a daemon on its loop) keeps running."""
    return await asyncio.to_thread(functools.partial(run_sipp, scenario, target, **kwargs))


class SippUas:
    """A sipp server scenario running in the background until ``stop()`` (or until ``-m`` calls)."""

    def __init__(
        self,
        workdir: Path,
        scenario: str | Path = "uas_answer.xml",
        *,
        service: str = "uas",
        port: int | None = None,
        transport: str = "u1",
        calls: int | None = None,
        keys: Mapping[str, str] | None = None,
        duration_ms: int = 0,
        trace_messages: bool = True,
        extra: Sequence[str] = (),
    ) -> None:
        self.cwd = _workdir(workdir, scenario_path(scenario).stem)
        self.host = LOOPBACK
        self.port = port if port is not None else free_port()
        self.transport = transport
        self.service = service
        argv = sipp_argv(
            scenario,
            None,
            local_port=self.port,
            media_port=free_port(span=4),
            service=service,
            calls=calls,
            timeout_s=None,
            transport=transport,
            keys=keys,
            duration_ms=duration_ms,
            trace_messages=trace_messages,
            extra=extra,
        )
        self.process = ManagedProcess(f"sipp-uas:{self.port}", argv, self.cwd / "sipp.log", cwd=self.cwd)
        self.log_path = self.process.log_path

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def contact(self, user: str | None = None) -> str:
        suffix = ";transport=tcp" if self.transport.startswith("t") else ""
        return f"sip:{user or self.service}@{self.host}:{self.port}{suffix}"

    def start(self, timeout: float = 10.0) -> SippUas:
        self.process.start()
        if self.transport.startswith("t"):
            wait_until(
                lambda: tcp_accepts(self.host, self.port), timeout, "sipp UAS TCP port", alive=self.process
            )
        else:
            wait_until(
                lambda: not port_is_free(self.port, self.host),
                timeout,
                f"sipp UAS did not bind {self.host}:{self.port}",
                alive=self.process,
            )
        return self

    def stop(self) -> int | None:
        return self.process.stop()

    def stats(self) -> SippStats:
        return SippStats.parse(self.cwd / "stats.csv", sorted(self.cwd.glob("*_rtt.csv")))

    def wait_calls(self, successful: int, timeout: float = 10.0) -> SippStats:
        """Wait until the UAS's statistics file shows ``successful`` completed calls."""
        return wait_until(
            lambda: s if (s := self.stats()).successful_calls >= successful else None,
            timeout,
            f"sipp UAS did not complete {successful} call(s) (stats are dumped every 200 ms)",
        )


def start_sipp_uas(workdir: Path, scenario: str | Path = "uas_answer.xml", **kwargs: Any) -> SippUas:
    """Start a background sipp UAS (see ``SippUas``); the caller must ``stop()`` it (``PeerSet`` does)."""
    return SippUas(workdir, scenario, **kwargs).start()
