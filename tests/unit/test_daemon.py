"""Tests of ccdaemon.daemon: start, graceful and forced stop, drain timeout, SIGHUP reload, contact host."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ccdaemon.app.context import AppContext
from ccdaemon.config import ConfigError, Settings
from ccdaemon.daemon import UserAgentLike, resolve_contact_host, route_source_address, serve
from ccdaemon.sdnotify import Notifier


def make_settings(**sip: Any) -> Settings:
    return Settings.model_validate(
        {
            "pbx": {"host": "127.0.0.1", "port": 5080, "username": "201", "password": "p"},
            "sip": sip,
            # never the machine's real recordings (retention would apply to them)
            "recording": {"directory": "/nonexistent/ccdaemon-test-recordings"},
        }
    )


class FakeRegistration:
    state = "unregistered"


class FakeUserAgent:
    def __init__(self, stop_takes: float = 0.0) -> None:
        self.registration = FakeRegistration()
        self.started_with: Settings | None = None
        self.stop_takes = stop_takes
        self.stop_finished = False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        await asyncio.sleep(self.stop_takes)
        self.stop_finished = True


def factory(ua: FakeUserAgent) -> Callable[[Settings, AppContext], Any]:
    async def telephony(settings: Settings, _: AppContext) -> UserAgentLike:
        ua.started_with = settings
        await ua.start()
        return ua

    return telephony


@pytest.fixture
def root_level() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


async def started(ua: FakeUserAgent) -> None:
    for _ in range(500):
        if ua.started_with is not None:
            await asyncio.sleep(0.01)  # let serve() reach its main wait
            return
        await asyncio.sleep(0.01)
    raise AssertionError("serve() did not start telephony")


async def test_stop_event_drains_the_user_agent() -> None:
    ua = FakeUserAgent()
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve(make_settings(), stop=stop, telephony=factory(ua), notifier=Notifier(None))
    )
    await started(ua)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert ua.stop_finished


async def test_contact_host_is_resolved_before_telephony_starts() -> None:
    ua = FakeUserAgent()
    stop = asyncio.Event()
    stop.set()
    await serve(make_settings(), stop=stop, telephony=factory(ua), notifier=Notifier(None))
    assert ua.started_with is not None
    assert ua.started_with.sip.contact_host == "127.0.0.1"  # the route to the PBX on loopback


async def test_drain_timeout_bounds_the_stop() -> None:
    ua = FakeUserAgent(stop_takes=30)
    stop = asyncio.Event()
    stop.set()
    began = time.monotonic()
    await serve(make_settings(), stop=stop, drain_timeout=0.2, telephony=factory(ua), notifier=Notifier(None))
    assert time.monotonic() - began < 5
    assert not ua.stop_finished


async def test_sigterm_stops_and_second_signal_cuts_the_drain_short() -> None:
    ua = FakeUserAgent(stop_takes=30)
    task = asyncio.create_task(serve(make_settings(), telephony=factory(ua), notifier=Notifier(None)))
    await started(ua)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.sleep(0.1)
    assert not task.done()  # draining
    os.kill(os.getpid(), signal.SIGINT)
    await asyncio.wait_for(task, 5)
    assert not ua.stop_finished
    # The handlers are gone again: the default SIGINT handler is back.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


async def test_sighup_reloads_the_log_level(root_level: None, caplog: pytest.LogCaptureFixture) -> None:
    ua = FakeUserAgent()
    stop = asyncio.Event()
    logging.getLogger().setLevel("INFO")
    calls = []

    def reload() -> Settings:
        calls.append(1)
        if len(calls) == 1:
            new = make_settings(listen_port=6000)
            return new.model_copy(update={"log": new.log.model_copy(update={"level": "DEBUG"})})
        raise ConfigError("pbx.host: field required")

    task = asyncio.create_task(
        serve(make_settings(), stop=stop, reload=reload, telephony=factory(ua), notifier=Notifier(None))
    )
    await started(ua)
    caplog.set_level("INFO", logger="ccdaemon")
    os.kill(os.getpid(), signal.SIGHUP)
    for _ in range(200):
        if logging.getLogger().level == logging.DEBUG:
            break
        await asyncio.sleep(0.01)
    assert logging.getLogger().level == logging.DEBUG
    os.kill(os.getpid(), signal.SIGHUP)  # now the file is broken: keep running, say why
    for _ in range(200):
        if "configuration not reloaded" in caplog.text:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert "sip.listen_port" in caplog.text  # needs a restart, and the log says so
    assert "configuration not reloaded, keeping the running one: pbx.host: field required" in caplog.text


async def test_failed_start_propagates_without_ready() -> None:
    sent: list[str] = []

    class Recorder(Notifier):
        def notify(self, *assignments: str) -> bool:
            sent.extend(assignments)
            return True

    async def telephony(_: Settings, __: AppContext) -> UserAgentLike:
        raise OSError(98, "Address already in use")

    with pytest.raises(OSError, match="Address already in use"):
        await serve(make_settings(), telephony=telephony, notifier=Recorder(None))
    assert "READY=1" not in sent
    assert "STOPPING=1" in sent


async def test_contact_host_choices() -> None:
    assert (
        await resolve_contact_host(make_settings(contact_host="pbx-facing.example")) == "pbx-facing.example"
    )
    assert await resolve_contact_host(make_settings(listen_host="127.0.0.2")) == "127.0.0.2"
    assert await resolve_contact_host(make_settings()) == "127.0.0.1"


def test_route_source_address() -> None:
    assert route_source_address("127.0.0.1", 5060) == "127.0.0.1"
