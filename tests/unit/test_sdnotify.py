"""Tests of ccdaemon.sdnotify and of what serve() tells systemd: real datagrams on a temporary socket."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ccdaemon.app.context import AppContext
from ccdaemon.config import Settings
from ccdaemon.daemon import UserAgentLike, serve
from ccdaemon.sdnotify import Notifier


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    # A short directory: AF_UNIX paths are limited to 108 bytes and pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="sdn", dir="/tmp") as directory:
        path = str(Path(directory) / "notify")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        server.bind(path)
        server.settimeout(5)
        yield server, path
        server.close()


def receive(server: socket.socket) -> str:
    return server.recv(4096).decode()


def test_ready_status_watchdog_stopping(notify_socket: tuple[socket.socket, str]) -> None:
    server, path = notify_socket
    notifier = Notifier(path)
    assert notifier.enabled
    assert notifier.ready("listening")
    assert receive(server) == "READY=1\nSTATUS=listening"
    assert notifier.status("registration registered\nsecond line")
    assert receive(server) == "STATUS=registration registered second line"
    assert notifier.watchdog()
    assert receive(server) == "WATCHDOG=1"
    assert notifier.stopping()
    assert receive(server) == "STOPPING=1"
    notifier.close()


def test_abstract_namespace() -> None:
    name = f"@ccdaemon-test-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name[1:])
    server.settimeout(5)
    try:
        notifier = Notifier.from_env({"NOTIFY_SOCKET": name})
        assert notifier.ready()
        assert receive(server) == "READY=1"
        notifier.close()
    finally:
        server.close()


def test_without_notify_socket_is_a_no_op() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.watchdog()
    assert notifier.watchdog_interval is None


def test_vanished_socket_does_not_raise(tmp_path: Path) -> None:
    notifier = Notifier(str(tmp_path / "gone"))
    assert notifier.notify("READY=1") is False


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),  # WatchdogSec=30 -> ping every 15 s
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_the_timeout(env: dict[str, str], interval: float | None) -> None:
    assert Notifier.from_env({"NOTIFY_SOCKET": "/run/x", **env}).watchdog_interval == interval


# --- what serve() tells systemd ----------------------------------------------------------------------------


class FakeRegistration:
    state = "registered"


class FakeUserAgent:
    def __init__(self) -> None:
        self.registration = FakeRegistration()
        self.stopped = False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True


def settings() -> Settings:
    return Settings.model_validate(
        {
            "pbx": {"host": "127.0.0.1", "username": "201", "password": "p"},
            "sip": {"contact_host": "127.0.0.1"},
            # never the machine's real recordings (retention would apply to them)
            "recording": {"directory": "/nonexistent/ccdaemon-test-recordings"},
        }
    )


async def test_serve_notifies_ready_watchdog_and_stopping(notify_socket: tuple[socket.socket, str]) -> None:
    server, path = notify_socket
    server.setblocking(False)
    loop = asyncio.get_running_loop()
    ua = FakeUserAgent()

    async def telephony(_: Settings, __: AppContext) -> UserAgentLike:
        return ua

    stop = asyncio.Event()
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "40000"})  # ping every 20 ms
    task = asyncio.create_task(serve(settings(), stop=stop, telephony=telephony, notifier=notifier))
    received: list[str] = []
    while sum("WATCHDOG=1" in d for d in received) < 3:
        received.append((await asyncio.wait_for(loop.sock_recv(server, 4096), 5)).decode())
    assert received[0] == "READY=1\nSTATUS=registration registered"
    assert "STATUS=registration registered" in received  # the status reporter's first report
    stop.set()
    await asyncio.wait_for(task, 5)
    rest = []
    while True:
        try:
            rest.append(server.recv(4096).decode())
        except BlockingIOError:
            break
    assert rest[-1] == "STOPPING=1\nSTATUS=stopping"
    assert ua.stopped
