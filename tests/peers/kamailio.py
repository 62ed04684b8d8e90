"""Kamailio 5.6 as the office PBX: registrar + record-routing proxy on a free loopback port.

The config is generated from ``kamailio.cfg.tmpl`` (see the header of that file for which requests are
challenged). Kamailio runs in the foreground (``-DD -E``) in its own process group, logs to
``<workdir>/kamailio.log`` and exposes its RPC interface (ctl module, binrpc over loopback TCP) for
``kamcmd``, which is how registrations are read and how readiness is checked.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

from .ports import LOOPBACK, assert_loopback, free_port, port_is_free, released
from .process import ManagedProcess, PeerError, require_binary, wait_until

TEMPLATE = Path(__file__).with_name("kamailio.cfg.tmpl")

DEFAULT_USERS: dict[str, str] = {
    "100": "secret100",  # the daemon's queue line
    "201": "pw201",  # agents' desk phones
    "202": "pw202",
    "203": "pw203",
    "300": "pw300",  # callers
    "301": "pw301",
    "302": "pw302",
    "900": "pw900",  # supervisor
}

_USER_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")
_SECRET_RE = re.compile(r'^[^"\\\s$]+$')


def _quote(value: str, what: str, pattern: re.Pattern[str]) -> str:
    if not pattern.match(value):
        raise ValueError(f"{what} {value!r} cannot be written into kamailio.cfg safely")
    return f'"{value}"'


class Kamailio:
    """One kamailio instance. ``start()`` returns when it answers an OPTIONS ping on its SIP port."""

    def __init__(
        self,
        workdir: Path,
        *,
        users: Mapping[str, str] | None = None,
        require_invite_auth: bool = True,
        trusted_sources: Iterable[tuple[str, int]] = (),
        static_routes: Mapping[str, str] | None = None,
        fr_timer_ms: int = 5000,
        fr_inv_timer_ms: int = 30000,
        debug_level: int = 2,
        host: str = LOOPBACK,
        port: int | None = None,
    ) -> None:
        self.binary = require_binary("kamailio", "kamailio")
        self.kamcmd = require_binary("kamcmd", "kamailio")
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.require_invite_auth = require_invite_auth
        self.trusted_sources = [(assert_loopback(h), int(p)) for h, p in trusted_sources]
        self.static_routes = dict(static_routes or {})
        self.fr_timer_ms = fr_timer_ms
        self.fr_inv_timer_ms = fr_inv_timer_ms
        self.debug_level = debug_level
        self.host = assert_loopback(host)
        self.port = port if port is not None else free_port(host=host)
        self.ctl_port = free_port(host=host)
        self.config_path = workdir / "kamailio.cfg"
        self.log_path = workdir / "kamailio.log"
        self.rundir = workdir / "run"
        self.rundir.mkdir(exist_ok=True)
        self.starts = 0
        self._proc = ManagedProcess(
            "kamailio",
            [
                self.binary,
                "-DD",
                "-E",
                "-f",
                str(self.config_path),
                "-l",
                f"udp:{self.host}:{self.port}",
                "-l",
                f"tcp:{self.host}:{self.port}",
                "-Y",
                str(self.rundir),
                "-w",
                str(self.workdir),
                "-m",
                "64",
                "-M",
                "8",
            ],
            self.log_path,
            cwd=workdir,
        )

    # -- addresses ---------------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def domain(self) -> str:
        """``127.0.0.1:PORT``: the host part every AOR and Request-URI must use (port included)."""
        return f"{self.host}:{self.port}"

    def uri(self, user: str, transport: str | None = None) -> str:
        suffix = f";transport={transport}" if transport else ""
        return f"sip:{user}@{self.domain}{suffix}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def running(self) -> bool:
        return self._proc.running()

    # -- config ------------------------------------------------------------------------------------

    def render_config(self) -> str:
        lines: list[str] = []
        for user, password in self.users.items():
            _quote(user, "user", _USER_RE)
            lines.append(f"    $sht(users=>{user}) = {_quote(password, 'password', _SECRET_RE)};")
        lines += [f"    $sht(trusted=>{h}:{p}) = 1;" for h, p in self.trusted_sources]
        for user, target in self.static_routes.items():
            _quote(user, "user", _USER_RE)
            if not target.startswith("sip:"):
                raise ValueError(f"static route target must be a sip: URI, got {target!r}")
            lines.append(f"    $sht(routes=>{user}) = {_quote(target, 'route', _SECRET_RE)};")
        defines = "#!define REQUIRE_INVITE_AUTH" if self.require_invite_auth else ""
        values = {
            "debug_level": str(self.debug_level),
            "defines": defines,
            "ctl_port": str(self.ctl_port),
            "fr_timer_ms": str(self.fr_timer_ms),
            "fr_inv_timer_ms": str(self.fr_inv_timer_ms),
            "htable_init": "\n".join(lines) or "    $var(empty) = 0;",
        }
        text = TEMPLATE.read_text()
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        leftover = re.search(r"\{\{\w+\}\}", text)
        if leftover:
            raise AssertionError(f"unfilled placeholder {leftover.group(0)} in {TEMPLATE}")
        return text

    def write_config(self) -> Path:
        self.config_path.write_text(self.render_config())
        check = subprocess.run(
            [self.binary, "-c", "-f", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if check.returncode != 0:
            raise PeerError(f"kamailio -c rejected {self.config_path}:\n{check.stdout}{check.stderr}")
        return self.config_path

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> Kamailio:
        if self.starts == 0:
            for port in (self.port, self.ctl_port):
                if not port_is_free(port, self.host):
                    raise PeerError(f"kamailio port {self.host}:{port} is already in use")
        self.write_config()
        self._proc.start()
        self.starts += 1
        wait_until(self.ping, timeout, f"kamailio on {self.domain} did not answer OPTIONS", alive=self._proc)
        wait_until(self._rpc_ready, timeout, "kamailio RPC (ctl) not ready", alive=self._proc)
        return self

    def stop(self) -> int | None:
        return self._proc.stop()

    def restart(self, timeout: float = 10.0) -> Kamailio:
        """Stop and start again on the same ports: every registration is lost (usrloc is in memory)."""
        self.stop()
        wait_until(
            lambda: released(self.host, self.port) and released(self.host, self.ctl_port, udp=False),
            timeout,
            f"kamailio ports {self.port}/{self.ctl_port} not released",
        )
        return self.start(timeout)

    async def restart_async(self, timeout: float = 10.0) -> Kamailio:
        return await asyncio.to_thread(self.restart, timeout)

    def __enter__(self) -> Kamailio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- probes ------------------------------------------------------------------------------------

    def ping(self, timeout: float = 0.3) -> bool:
        """Send a SIP OPTIONS (no user part) over UDP; True on a 200 reply."""
        branch = "z9hG4bK-" + uuid.uuid4().hex[:16]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((self.host, 0))
            lport = sock.getsockname()[1]
            msg = (
                f"OPTIONS sip:{self.domain} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {self.host}:{lport};branch={branch};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:probe@{self.host}:{lport}>;tag={uuid.uuid4().hex[:8]}\r\n"
                f"To: <sip:{self.domain}>\r\n"
                f"Call-ID: {uuid.uuid4().hex}@{self.host}\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            sock.settimeout(timeout)
            try:
                sock.sendto(msg.encode(), self.address)
                data = sock.recv(65535)
            except OSError:
                return False
        return data.startswith(b"SIP/2.0 200")

    def rpc(self, *args: str, check: bool = True) -> str:
        """Run ``kamcmd`` against this instance's ctl socket and return its output."""
        result = subprocess.run(
            [self.kamcmd, "-s", f"tcp:{self.host}:{self.ctl_port}", *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if check and result.returncode != 0:
            raise PeerError(f"kamcmd {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def _rpc_ready(self) -> bool:
        try:
            return "kamailio" in self.rpc("core.version")
        except PeerError:
            return False

    def registered_contacts(self, user: str) -> list[str]:
        """Contact URIs currently registered for ``user`` (read from usrloc over RPC)."""
        # "s:" keeps kamcmd from sending numeric user names as integers
        out = self.rpc("ul.lookup", "location", f"s:{user}", check=False)
        return re.findall(r"^\s*Address:\s*(\S+)", out, re.MULTILINE)

    def wait_registered(self, user: str, timeout: float = 10.0, count: int = 1) -> list[str]:
        return wait_until(
            lambda: c if len(c := self.registered_contacts(user)) >= count else None,
            timeout,
            f"user {user} has not registered {count} contact(s) with kamailio {self.domain}",
            alive=self._proc,
        )

    async def wait_registered_async(self, user: str, timeout: float = 10.0, count: int = 1) -> list[str]:
        return await asyncio.to_thread(self.wait_registered, user, timeout, count)

    def trust(self, host: str, port: int) -> None:
        """Let initial requests from ``host:port`` in without a challenge (at runtime, via RPC)."""
        assert_loopback(host)
        self.rpc("htable.seti", "trusted", f"s:{host}:{port}", "1")
        self.trusted_sources.append((host, port))

    def log_text(self) -> str:
        return self._proc.log_text()

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        return self._proc.wait_for_log(pattern, timeout)

    def __repr__(self) -> str:
        return f"<Kamailio {self.domain} pid={self.pid}>"
