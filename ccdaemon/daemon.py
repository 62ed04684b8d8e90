"""The daemon process: start telephony, tell systemd we are ready, run the background tasks, drain on stop.

Signals: SIGTERM/SIGINT stop gracefully (unregister, hang up) within a drain timeout, a second one stops at
once; SIGHUP re-reads the configuration and applies what can change at runtime (the log level).

Recordings: before any call is accepted the recordings directory is created (0750) and checked, recordings
a killed daemon left unfinished (``*.wav.part``) are repaired and renamed to ``*.wav``, and one
:class:`RecordingService` is started for the process and handed to the call flows in the :class:`AppContext`.
Old recordings are deleted at start-up and once a day.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

from ccdaemon.app.answering import AnsweringFlow
from ccdaemon.app.context import AppContext
from ccdaemon.config import ConfigError, RecordingSettings, Settings, is_wildcard, version
from ccdaemon.logging_setup import set_level
from ccdaemon.media.recorder import BYTES_PER_SECOND, RecordingService, repair_directory
from ccdaemon.media.retention import delete_expired, prepare_directory, world_accessible
from ccdaemon.sdnotify import Notifier
from ccdaemon.telephony.useragent import UserAgent

__all__ = [
    "DRAIN_TIMEOUT",
    "RECORDER_CLOSE_TIMEOUT",
    "RETENTION_INTERVAL",
    "RegistrationLike",
    "UserAgentLike",
    "resolve_contact_host",
    "route_source_address",
    "run",
    "serve",
]

log = logging.getLogger(__name__)

DRAIN_TIMEOUT: Final = 10.0  # seconds for unregistering and hanging up; below systemd's TimeoutStopSec
STATUS_INTERVAL: Final = 5.0  # seconds between checks of the state shown by `systemctl status`
ROUTE_TIMEOUT: Final = 5.0  # seconds for resolving the PBX name when picking the contact address
# seconds for the writer thread to finalize open recordings after the drain; with DRAIN_TIMEOUT well
# below systemd's TimeoutStopSec=30. What is not finalized in time stays a .part, repaired at the next start.
RECORDER_CLOSE_TIMEOUT: Final = 5.0
RETENTION_INTERVAL: Final = 24 * 3600.0  # seconds between retention passes (the first one runs at start)


class RegistrationLike(Protocol):
    """What the daemon reads from ``UserAgent.registration``."""

    @property
    def state(self) -> object: ...


class UserAgentLike(Protocol):
    """The slice of ``ccdaemon.telephony.useragent.UserAgent`` the process layer relies on."""

    @property
    def registration(self) -> RegistrationLike: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


TelephonyFactory = Callable[[Settings, AppContext], Awaitable[UserAgentLike | None]]
Reloader = Callable[[], Settings]


async def _start_telephony(settings: Settings, context: AppContext) -> UserAgentLike | None:
    """Create and start the user agent with the call flow.  The only place that knows the telephony API.

    ``start()`` binds the SIP transports and begins registering in the background: it must not wait
    for the PBX, or a PBX outage at boot would hold back READY and become a restart loop.
    """
    ua = UserAgent.from_settings(settings)
    ua.on_incoming_call(AnsweringFlow(context=context))
    await ua.start()
    return ua


# ---------------------------------------------------------------------------------------------------------
# Contact address


def route_source_address(host: str, port: int) -> str:
    """The local address the kernel would use to reach ``host:port`` (blocking: resolves names).

    Connecting a UDP socket sends nothing; it only selects the route and the source address.
    """
    family, kind, proto, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    with socket.socket(family, kind, proto) as probe:
        probe.connect(sockaddr)
        return str(probe.getsockname()[0])


async def resolve_contact_host(settings: Settings) -> str | None:
    """The address for Contact/Via/SDP: configured, the listen address, or the source address toward the
    PBX.  ``None`` if the route cannot be determined now (no network or DNS yet at boot)."""
    sip = settings.sip
    if sip.contact_host:
        return sip.contact_host
    if not is_wildcard(sip.listen_host):
        return sip.listen_host
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(route_source_address, settings.pbx.host, settings.pbx.port), ROUTE_TIMEOUT
        )
    except (OSError, TimeoutError) as exc:
        log.warning("cannot determine the address toward the PBX %s: %s", settings.pbx.host, exc)
        return None


async def _with_contact_host(settings: Settings) -> Settings:
    host = await resolve_contact_host(settings)
    if host is None or host == settings.sip.contact_host:
        return settings
    log.info("contact address: %s", host)
    return settings.model_copy(update={"sip": settings.sip.model_copy(update={"contact_host": host})})


# ---------------------------------------------------------------------------------------------------------
# Recordings


def _setup_recording_directory(config: RecordingSettings) -> list[Path] | None:
    """Blocking part of the start-up: create and check the directory, finish interrupted recordings.

    Returns the directories created, or None when recording is off and there is no directory (nothing to
    repair or expire). Raises ConfigError naming ``recording.directory``. The repair logs what it did.
    """
    directory = config.directory
    if config.enabled:
        try:
            created = prepare_directory(directory)
        except OSError as exc:
            # the failing path may be a parent ("/srv/file" in "/srv/file/recordings"): name it
            where = "" if exc.filename in (None, str(directory)) else f" ({exc.filename})"
            raise ConfigError(
                f"recording.directory: cannot use {str(directory)!r} for recordings: "
                f"{exc.strerror or exc}{where}",
                "recording.directory",
            ) from None
    elif os.path.isdir(directory):
        created = []  # off now, but files recorded earlier still get repaired and expire
    else:
        return None
    mode = world_accessible(directory)
    if mode is not None:
        log.warning(
            "recordings directory %s is open to every user (mode %04o); chmod 0750 keeps it to the "
            "service's group",
            directory,
            mode,
        )
    repair_directory(directory)  # opens only the *.wav.part files: quick however large the archive
    return created


async def _open_recordings(config: RecordingSettings) -> tuple[RecordingService | None, bool]:
    """Prepare the directory and start the writer thread; returns (service or None, directory usable)."""
    created = await asyncio.to_thread(_setup_recording_directory, config)
    if created is None:
        log.info("recording is off (recording.enabled = false)")
        return None, False
    for path in created:
        log.info("created recordings directory %s (mode 0750)", path)
    if not config.enabled:
        log.info("recording is off (recording.enabled = false); existing recordings in %s", config.directory)
        return None, True
    service = RecordingService(
        config.directory,
        flush_interval=config.flush_interval,
        fsync=config.fsync,
        max_buffered_seconds=config.max_buffered_seconds,
        repair_on_start=False,  # done above, before any call could create a file
    )
    keep = f"{config.retention_days} days" if config.retention_days else "forever"
    log.info(
        "recording calls to %s (stereo WAV, left caller, right agent side; kept %s)", config.directory, keep
    )
    return service, True


async def _close_recordings(service: RecordingService, timeout: float) -> None:
    """Finalize open recordings (for ``timeout`` seconds at most) and log what the recorder did."""
    await service.aclose(timeout)
    stats = service.stats
    unfinished = service.active
    trouble = stats.bytes_dropped or stats.bytes_lost or stats.io_errors or unfinished
    log.log(
        logging.WARNING if trouble else logging.INFO,
        "recordings: %d opened, %d finished, %.1f MiB written, %.1f s of audio dropped (writer behind), "
        "%.1f s lost (disk errors), %d I/O error(s)",
        stats.opened,
        stats.closed,
        stats.bytes_written / 2**20,
        stats.bytes_dropped / BYTES_PER_SECOND,
        stats.bytes_lost / BYTES_PER_SECOND,
        stats.io_errors,
    )
    if unfinished:
        log.warning(
            "%d recording(s) not finalized within %g s; they are repaired at the next start",
            unfinished,
            timeout,
        )


Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def _retention(
    directory: Path, days: int, *, interval: float = RETENTION_INTERVAL, clock: Clock = _utc_now
) -> None:
    """Delete recordings older than ``days`` now and every ``interval`` seconds.

    Never raises: housekeeping trouble is logged, and must not end the daemon (a failing background task
    does). Wall-clock time, because recording names carry the wall-clock start of the call.
    """
    while True:
        try:
            result = await asyncio.to_thread(delete_expired, directory, days, clock())
        except OSError as exc:
            log.warning("retention: cannot list recordings in %s: %s", directory, exc.strerror or exc)
        except Exception:
            log.exception("retention: pass over %s failed", directory)
        else:
            if result.deleted or result.errors:
                log.info(
                    "retention: deleted %d recording(s) older than %d days (%.1f MiB)%s",
                    len(result.deleted),
                    days,
                    result.bytes_freed / 2**20,
                    f", {result.errors} could not be deleted" if result.errors else "",
                )
        await asyncio.sleep(interval)


# ---------------------------------------------------------------------------------------------------------
# Background tasks


async def _watchdog(notifier: Notifier, interval: float) -> None:
    # Runs on the event loop on purpose: if the loop is blocked, pings stop and systemd restarts us.
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)


def _describe(ua: UserAgentLike | None) -> str:
    if ua is None:
        return "running without telephony"
    state = ua.registration.state
    return f"registration {getattr(state, 'name', state)!s}".lower()


async def _status_reporter(notifier: Notifier, ua: UserAgentLike | None) -> None:
    shown = ""
    while True:
        text = _describe(ua)
        if text != shown:
            notifier.status(text)
            shown = text
        await asyncio.sleep(STATUS_INTERVAL)


class _Control:
    """Signal handling: first stop signal drains, the second cuts the drain short; SIGHUP reloads."""

    def __init__(
        self, stop: asyncio.Event, settings: Settings, reload: Reloader | None, drain_timeout: float
    ) -> None:
        self.stop = stop
        self.drain_timeout = drain_timeout
        self.settings = settings
        self._reload = reload
        self._drain: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._installed: list[int] = []

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum, handler in (
            (signal.SIGTERM, self._on_stop),
            (signal.SIGINT, self._on_stop),
            (signal.SIGHUP, self._on_hup),
        ):
            try:
                loop.add_signal_handler(signum, handler, signum)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / not Unix
                log.debug("cannot handle %s here", signal.Signals(signum).name)
                continue
            self._installed.append(signum)

    def uninstall(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum in self._installed:
            loop.remove_signal_handler(signum)
        self._installed.clear()

    def _on_stop(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if not self.stop.is_set():
            log.info("%s: stopping (drain up to %g s; repeat to stop at once)", name, self.drain_timeout)
            self.stop.set()
        elif self._drain is not None and not self._drain.done():
            log.warning("%s again: stopping without waiting for the drain", name)
            self._drain.cancel()

    def _on_hup(self, signum: int) -> None:
        task = asyncio.get_running_loop().create_task(self.reload(), name="reload")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def reload(self) -> None:
        if self._reload is None:
            log.warning("SIGHUP: reload not supported (no configuration file to re-read)")
            return
        try:
            new = await asyncio.to_thread(self._reload)  # file I/O stays off the loop
        except ConfigError as exc:
            log.error("SIGHUP: configuration not reloaded, keeping the running one: %s", exc)
            return
        old = self.settings
        if new.log.level != old.log.level:
            set_level(new.log.level)
            log.info("SIGHUP: log level %s -> %s", old.log.level, new.log.level)
        restart = _changed_keys(old, new) - {"log.level"}
        if restart:
            log.warning("SIGHUP: changes take effect only after a restart: %s", ", ".join(sorted(restart)))
        elif new.log.level == old.log.level:
            log.info("SIGHUP: configuration unchanged")
        # Remember only what was applied, so the next SIGHUP still lists the changes waiting for a restart.
        self.settings = old.model_copy(update={"log": old.log.model_copy(update={"level": new.log.level})})

    async def drain(self, ua: UserAgentLike) -> None:
        self._drain = asyncio.create_task(_stop_ua(ua), name="drain")
        try:
            await asyncio.wait_for(asyncio.shield(self._drain), self.drain_timeout)
        except TimeoutError:
            log.warning("drain did not finish within %g s; stopping anyway", self.drain_timeout)
            self._drain.cancel()
        except asyncio.CancelledError:
            if not self._drain.cancelled():
                raise
            log.warning("drain cut short")
        with contextlib.suppress(asyncio.CancelledError):
            await self._drain


async def _stop_ua(ua: UserAgentLike) -> None:
    try:
        await ua.stop()
    except Exception:
        log.exception("error while stopping telephony")


def _changed_keys(old: Settings, new: Settings) -> set[str]:
    before, after = old.model_dump(), new.model_dump()
    return {
        f"{section}.{key}"
        for section, values in after.items()
        for key, value in values.items()
        if before[section].get(key) != value
    }


async def serve(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    reload: Reloader | None = None,
    drain_timeout: float = DRAIN_TIMEOUT,
    telephony: TelephonyFactory = _start_telephony,
    notifier: Notifier | None = None,
    recorder_close_timeout: float = RECORDER_CLOSE_TIMEOUT,
) -> None:
    """Run the daemon until ``stop`` is set or SIGTERM/SIGINT arrives.

    ``reload`` re-reads the configuration on SIGHUP; ``telephony`` and ``notifier`` are seams for tests.
    A background task that fails ends the daemon (the exception propagates, systemd restarts us).
    A bad recordings directory raises ConfigError (exit 78) before any call is accepted.
    """
    stop = stop if stop is not None else asyncio.Event()
    notifier = notifier if notifier is not None else Notifier.from_env()
    loop = asyncio.get_running_loop()
    control = _Control(stop, settings, reload, drain_timeout)
    control.install(loop)
    ua: UserAgentLike | None = None
    recordings: RecordingService | None = None
    try:
        log.info(
            "ccdaemon %s: sip %s on %s:%d, pbx %s:%d (%s) as %s, loop %s",
            version(),
            ",".join(settings.sip.transports),
            settings.sip.listen_host,
            settings.sip.listen_port,
            settings.pbx.host,
            settings.pbx.port,
            settings.pbx.transport,
            settings.pbx.username,
            type(loop).__module__.split(".")[0],
        )
        # Recordings first: a bad directory is a configuration error, found before anything else starts,
        # and interrupted recordings are repaired before a call can open a file.
        recordings, have_directory = await _open_recordings(settings.recording)
        context = AppContext(recordings=recordings)
        settings = await _with_contact_host(settings)
        ua = await telephony(settings, context)
        # READY means "listening", not "registered": the PBX may be down and we retry in the background.
        notifier.ready(_describe(ua))
        log.info("ready")
        background: dict[str, Coroutine[Any, Any, None]] = {"status": _status_reporter(notifier, ua)}
        if notifier.watchdog_interval is not None:
            background["watchdog"] = _watchdog(notifier, notifier.watchdog_interval)
        if have_directory and settings.recording.retention_days:
            background["retention"] = _retention(
                settings.recording.directory, settings.recording.retention_days
            )
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coro, name=name) for name, coro in background.items()]
            await stop.wait()
            for task in tasks:
                task.cancel()
    finally:
        notifier.stopping("stopping")
        if ua is not None:
            await control.drain(ua)
        if recordings is not None:  # after the drain: hanging up is what closes the calls' recordings
            await _close_recordings(recordings, recorder_close_timeout)
        control.uninstall(loop)
        notifier.close()
        log.info("stopped")


def run(settings: Settings, *, reload: Reloader | None = None) -> None:
    """Run :func:`serve` on uvloop when it is installed (about 3x cheaper per RTP packet), else asyncio."""
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415 -- optional extra "fast"
    except ImportError:
        asyncio.run(serve(settings, reload=reload))
    else:
        uvloop.run(serve(settings, reload=reload))
