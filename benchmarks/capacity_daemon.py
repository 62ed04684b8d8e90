#!/usr/bin/env python3
"""Daemon side of the media capacity benchmark: ``benchmarks/capacity.py`` starts it (benchmarks/README.md).

The product's own code, wired as the bridged-call flow of a call center: settings from a TOML file
(``ccdaemon.config.load_config``), logging as ``ccdaemon run`` sets it up, the event loop the daemon uses
(uvloop when importable, ``--no-uvloop`` for the stock asyncio loop), and ``UserAgent.from_settings``
registered with the PBX. Every inbound call is

1. answered (``call.answer()``, waits for the ACK),
2. bridged to an agent: ``ua.dial(--agent)`` through the PBX, waiting for the 200,
3. connected with ``Bridge(caller, agent, recorder=writer)``, the writer from
   ``RecordingService.open_recording(call_id)`` in ``--recordings``,
4. until either leg ends; then the other leg is hung up, the bridge stopped, the recording closed.

Control (only the driver talks to it):

* ``SIGUSR1``: write a JSON snapshot to ``--status`` (atomically: temp file + rename), with a sequence
  number ``seq`` the driver waits for: RTP counters of every leg (live + ended, per role), receiver loss
  (``RtpReceiverStats`` expected/lost), the recorder's counters, active bridges, the RTP ports of the live
  legs (the driver samples the legs it captures from them), event-loop lag samples since the previous
  snapshot, garbage collections.
* ``SIGTERM``/``SIGINT``: hang up every call (``UserAgent.stop``: BYE, unregister), close the recorder, write
  the final snapshot (``"final": true``, with the recording files counted) and exit 0.

Nothing here is part of ccdaemon and nothing in ccdaemon is changed: only public entry points are used,
plus two read-only peeks for diagnostics (a session's jitter buffer counters, when present).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Iterable
from pathlib import Path
from typing import Any

import ccdaemon
from ccdaemon.config import ConfigError, Settings, load_config
from ccdaemon.logging_setup import setup_logging, shutdown_logging
from ccdaemon.media.bridge import Bridge
from ccdaemon.media.recorder import RecordingService
from ccdaemon.telephony.call import Call
from ccdaemon.telephony.events import CallState
from ccdaemon.telephony.useragent import UserAgent

log = logging.getLogger("capacity_daemon")

ROLES = ("caller", "agent")
LAG_PERIOD_S = 0.1  # event-loop lag probe: how late a 100 ms sleep wakes up
MAX_LAG_SAMPLES = 100_000


# ---------------------------------------------------------------------------------------------------------
# Reading the product's statistics objects (defensively: the media engine is being changed)


def int_fields(obj: object) -> dict[str, int]:
    """The integer counters of a stats object (a dataclass, slotted or not, or a plain object)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        names = [f.name for f in dataclasses.fields(obj)]
    elif hasattr(obj, "__dict__"):
        names = list(vars(obj))
    else:
        names = list(getattr(obj, "__slots__", ()))
    out: dict[str, int] = {}
    for name in names:
        value = getattr(obj, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            out[name] = value
    return out


def number(obj: object, name: str) -> float:
    """``obj.name`` as a number, whether it is an attribute, a property or a method; 0 if missing."""
    value = getattr(obj, name, None)
    if callable(value):
        try:
            value = value()
        except Exception:
            return 0.0
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def leg_figures(call: Call) -> dict[str, float]:
    """Every counter of one leg's RTP session: sender/receiver (``stats``), RFC 3550 reception
    (``rx_``), jitter buffer (``jb_``, when the session has one)."""
    session = call.media_session
    if session is None:
        return {}
    figures: dict[str, float] = {k: float(v) for k, v in int_fields(session.stats).items()}
    rx = getattr(session, "rx_stats", None)
    if rx is not None:
        figures["rx_expected"] = number(rx, "expected")
        figures["rx_received"] = number(rx, "received")
        figures["rx_lost"] = number(rx, "lost")
        figures["rx_ssrc_resets"] = number(rx, "resets")
        clock = number(rx, "clock_rate") or 8000.0
        figures["rx_jitter_ms"] = 1000.0 * number(rx, "jitter") / clock
    jitter = getattr(session, "_jitter", None)  # diagnostics only: the jitter buffer's own counters
    jb_stats = getattr(jitter, "stats", None)
    if jb_stats is not None:
        figures.update({f"jb_{k}": float(v) for k, v in int_fields(jb_stats).items()})
    return figures


def add_into(total: dict[str, float], figures: dict[str, float]) -> None:
    for key, value in figures.items():
        if key == "rx_jitter_ms":
            total["rx_jitter_ms_max"] = max(total.get("rx_jitter_ms_max", 0.0), value)
            total["rx_jitter_ms_sum"] = total.get("rx_jitter_ms_sum", 0.0) + value
        else:
            total[key] = total.get(key, 0.0) + value


# ---------------------------------------------------------------------------------------------------------
# The call flow


class Runner:
    def __init__(self, settings: Settings, args: argparse.Namespace) -> None:
        self.settings = settings
        self.args = args
        self.agent_target: str = args.agent
        self.status_path: Path = args.status
        self.recordings: Path = args.recordings
        self.ua: UserAgent | None = None
        self.recorder: RecordingService | None = None
        self.seq = 0
        self.started_wall = time.time()
        # live legs by role; ended legs are folded into ended_totals (so sums never jump backwards)
        self.live: dict[str, set[Call]] = {role: set() for role in ROLES}
        self.ended_totals: dict[str, dict[str, float]] = {role: {} for role in ROLES}
        self.ended_legs: dict[str, int] = dict.fromkeys(ROLES, 0)
        self.bridges: set[Bridge] = set()
        self.counters: dict[str, int] = {
            "offered": 0,
            "answered": 0,
            "answer_failed": 0,
            "agents_dialed": 0,
            "agents_answered": 0,
            "agents_failed": 0,
            "bridges_started": 0,
            "bridges_ended": 0,
            "recordings_opened": 0,
            "handler_errors": 0,
            "caller_hung_up_first": 0,
            "agent_hung_up_first": 0,
        }
        self.agent_fail_reasons: dict[str, int] = {}
        self.lag_ms: list[float] = []
        self.lag_max_ms = 0.0
        self._writes: set[asyncio.Task[None]] = set()

    # -- the flow ----------------------------------------------------------------------------------------

    async def on_call(self, caller: Call) -> None:
        """The incoming-call handler: connect, then (whatever happened, unless cancelled by
        ``UserAgent.stop``, which hangs up every call itself) hang up what is left."""
        self.counters["offered"] += 1
        legs: dict[str, Call] = {"caller": caller}
        try:
            await self._connect(caller, legs)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.counters["handler_errors"] += 1
            log.exception("bridged-call flow failed for %s", caller.call_id)
        try:
            for leg in legs.values():
                if leg.state is not CallState.ENDED:
                    await leg.hangup()
        except Exception:
            self.counters["handler_errors"] += 1
            log.exception("hanging up %s failed", caller.call_id)
        finally:
            for role, leg in legs.items():
                self._untrack(role, leg)

    async def _connect(self, caller: Call, legs: dict[str, Call]) -> None:
        """Answer, dial the agent, bridge with a recording until either leg ends."""
        ua = self.ua
        assert ua is not None and self.recorder is not None
        await caller.answer()
        if not established(caller):
            self.counters["answer_failed"] += 1
            return
        self.counters["answered"] += 1
        self._track("caller", caller)
        agent = await ua.dial(self.agent_target, ring_timeout=self.args.ring_timeout)
        legs["agent"] = agent
        self.counters["agents_dialed"] += 1
        await first_of(agent.answered.wait(), agent.ended.wait(), caller.ended.wait())
        if not established(agent) or not established(caller):
            self.counters["agents_failed"] += 1
            end = agent.end
            reason = f"{end.reason.value} {end.status or ''}".strip() if end else agent.state.value
            if not established(caller):
                reason = "caller left while the agent rang"
            self.agent_fail_reasons[reason] = self.agent_fail_reasons.get(reason, 0) + 1
            return
        self.counters["agents_answered"] += 1
        self._track("agent", agent)
        writer = self.recorder.open_recording(caller.call_id)
        self.counters["recordings_opened"] += 1
        bridge = Bridge(caller, agent, recorder=writer)
        try:
            bridge.start()
            self.bridges.add(bridge)
            self.counters["bridges_started"] += 1
            await first_of(caller.ended.wait(), agent.ended.wait())
            first = "agent_hung_up_first" if established(caller) else "caller_hung_up_first"
            self.counters[first] += 1
        finally:
            bridge.stop()
            if bridge in self.bridges:
                self.bridges.discard(bridge)
                self.counters["bridges_ended"] += 1
            writer.close_recording()  # the writer thread finalizes the file; non-blocking

    def _track(self, role: str, call: Call) -> None:
        self.live[role].add(call)

    def _untrack(self, role: str, call: Call) -> None:
        if call in self.live[role]:
            self.live[role].discard(call)
            add_into(self.ended_totals[role], leg_figures(call))
            self.ended_legs[role] += 1

    # -- snapshots ---------------------------------------------------------------------------------------

    def snapshot(self, *, final: bool = False) -> dict[str, Any]:
        self.seq += 1
        loop = asyncio.get_running_loop()
        legs: dict[str, dict[str, Any]] = {}
        ports: list[list[Any]] = []
        for role in ROLES:
            total = dict(self.ended_totals[role])
            with_media = 0
            for call in self.live[role]:
                figures = leg_figures(call)
                if figures:
                    with_media += 1
                add_into(total, figures)
                ports.append([role, call.rtp.port, int(figures.get("packets_sent", 0))])
            legs[role] = {
                "live": len(self.live[role]),
                "live_with_media": with_media,
                "ended": self.ended_legs[role],
                "totals": total,
            }
        lag, self.lag_ms = self.lag_ms, []
        recorder = self.recorder
        doc: dict[str, Any] = {
            "seq": self.seq,
            "final": final,
            "pid": os.getpid(),
            "monotonic": time.monotonic(),
            "wall": time.time(),
            "loop": type(loop).__module__.split(".")[0],
            "python": sys.version.split()[0],
            "ccdaemon_file": str(Path(ccdaemon.__file__).resolve().parent),
            "registered": self._registered(),
            "ua_calls": len(self.ua.calls) if self.ua is not None else 0,
            "bridges_active": len(self.bridges),
            "counters": dict(self.counters),
            "agent_fail_reasons": dict(self.agent_fail_reasons),
            "legs": legs,
            "ports": ports,
            "recorder": {**dataclasses.asdict(recorder.stats), "active": recorder.active} if recorder else {},
            "lag_ms": [round(v, 3) for v in lag],
            "lag_max_ms": round(self.lag_max_ms, 3),
            "gc": {
                "counts": list(gc.get_count()),
                "collections": [s.get("collections", 0) for s in gc.get_stats()],
                "collected": [s.get("collected", 0) for s in gc.get_stats()],
            },
        }
        return doc

    def _registered(self) -> bool:
        ua = self.ua
        if ua is None:
            return False
        state = getattr(ua.registration, "state", None)
        return str(getattr(state, "name", state)).lower() == "registered"

    async def write_snapshot(self, *, final: bool = False, extra: dict[str, Any] | None = None) -> None:
        doc = self.snapshot(final=final)
        if extra:
            doc.update(extra)
        text = json.dumps(doc, separators=(",", ":"))
        await asyncio.to_thread(_write_atomic, self.status_path, text)

    def request_snapshot(self) -> None:
        task = asyncio.get_running_loop().create_task(self.write_snapshot(), name="snapshot")
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def lag_probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(LAG_PERIOD_S)
            lag = max(0.0, (loop.time() - before - LAG_PERIOD_S) * 1000)
            if len(self.lag_ms) < MAX_LAG_SAMPLES:
                self.lag_ms.append(lag)
            self.lag_max_ms = max(self.lag_max_ms, lag)

    # -- life cycle --------------------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, self.request_snapshot)
        self.recordings.mkdir(parents=True, exist_ok=True)
        # the daemon's [recording] tuning when this ccdaemon has the section (the directory is ours)
        tuning: dict[str, Any] = {}
        recording = getattr(self.settings, "recording", None)
        for name in ("flush_interval", "fsync", "max_buffered_seconds"):
            if recording is not None and hasattr(recording, name):
                tuning[name] = getattr(recording, name)
        self.recorder = RecordingService(self.recordings, repair_on_start=False, **tuning)
        ua = UserAgent.from_settings(self.settings)
        self.ua = ua
        ua.on_incoming_call(self.on_call)
        await ua.start()
        print(  # "=== " lines are the harness's own in the log, not problems of the daemon
            f"=== capacity runner pid {os.getpid()} ready: loop {type(loop).__module__.split('.')[0]}, "
            f"sip {self.settings.sip.listen_host}:{self.settings.sip.listen_port}, "
            f"agent {self.agent_target}, "
            f"ccdaemon from {Path(ccdaemon.__file__).resolve().parent}",
            file=sys.stderr,
            flush=True,
        )
        lag = loop.create_task(self.lag_probe(), name="lag-probe")
        await self.write_snapshot()
        try:
            await stop.wait()
        finally:
            lag.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lag
            await ua.stop(drain=self.args.drain)
            await self.recorder.aclose()
            for task in list(self._writes):
                with contextlib.suppress(Exception):
                    await task
            files = await asyncio.to_thread(_count_wavs, self.recordings)
            await self.write_snapshot(final=True, extra={"recording_files": files})


def established(call: Call) -> bool:
    """A function, not an inline test: the state changes while we await (mypy would keep it narrowed)."""
    return call.state is CallState.ESTABLISHED


async def first_of(*waits: Awaitable[Any]) -> None:
    """Wait until the first of ``waits`` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _count_wavs(directory: Path) -> dict[str, int]:
    sizes: Iterable[int] = (p.stat().st_size for p in directory.glob("*.wav"))
    count = total = 0
    for size in sizes:
        count += 1
        total += size
    return {"count": count, "bytes": total}


# ---------------------------------------------------------------------------------------------------------
# Main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="ccdaemon capacity benchmark: the daemon-side runner")
    parser.add_argument("--config", type=Path, required=True, help="daemon TOML (as for `ccdaemon run`)")
    parser.add_argument("--agent", required=True, help="what each call is bridged to (extension or SIP URI)")
    parser.add_argument("--recordings", type=Path, required=True, help="directory for the WAV recordings")
    parser.add_argument("--status", type=Path, required=True, help="JSON snapshot file (SIGUSR1, exit)")
    parser.add_argument("--ring-timeout", type=float, default=10.0, help="seconds an agent may ring")
    parser.add_argument("--drain", type=float, default=10.0, help="seconds to hang up calls on SIGTERM")
    parser.add_argument(
        "--no-uvloop", action="store_true", help="run on the stock asyncio loop even if uvloop is installed"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_config(args.config)
    except ConfigError as exc:
        print(f"capacity_daemon: configuration error: {exc}", file=sys.stderr)
        return 78
    setup_logging(settings.log.level, settings.log.format)
    runner = Runner(settings, args)
    try:
        if args.no_uvloop:
            asyncio.run(runner.run())
        else:
            try:
                import uvloop  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415 -- optional
            except ImportError:
                asyncio.run(runner.run())
            else:
                uvloop.run(runner.run())
    except KeyboardInterrupt:
        return 130
    except Exception:
        log.critical("capacity runner failed", exc_info=True)
        return 1
    finally:
        shutdown_logging()
    return 0


if __name__ == "__main__":
    sys.exit(main())
