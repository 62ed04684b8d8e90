"""mosquitto 2.0 broker on a free loopback port, in the foreground, logging to a file.

``restart()`` keeps the port, which is how tests simulate a broker outage. Anonymous access by default;
``users={"name": "password"}`` plus ``acl`` lines switch on a password file and an ACL file.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from .ports import LOOPBACK, free_port, port_is_free, released, tcp_accepts
from .process import ManagedProcess, PeerError, require_binary, tail, wait_until


class Mosquitto:
    def __init__(
        self,
        workdir: Path,
        *,
        users: Mapping[str, str] | None = None,
        acl: Sequence[str] = (),
        port: int | None = None,
    ) -> None:
        self.binary = require_binary("mosquitto", "mosquitto")
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = LOOPBACK
        self.port = port if port is not None else free_port()
        self.users = dict(users or {})
        self.acl = list(acl)
        self.config_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        self.starts = 0
        self._proc = ManagedProcess(
            "mosquitto", [self.binary, "-c", str(self.config_path)], self.log_path, cwd=workdir
        )

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def render_config(self) -> str:
        lines = [
            "per_listener_settings false",
            f"listener {self.port} {self.host}",
            "log_dest stderr",
            "log_type all",
            "connection_messages true",
            "persistence false",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # otherwise mosquitto drops to 'mosquitto' and cannot read our files
        if self.users:
            lines += ["allow_anonymous false", f"password_file {self.workdir / 'passwd'}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl:
            lines.append(f"acl_file {self.workdir / 'acl'}")
        return "\n".join(lines) + "\n"

    def _write_password_file(self) -> None:
        passwd = self.workdir / "passwd"
        passwd.write_text("")
        passwd.chmod(0o600)
        helper = require_binary("mosquitto_passwd", "mosquitto")
        for user, password in self.users.items():
            subprocess.run(
                [helper, "-b", str(passwd), user, password], check=True, capture_output=True, timeout=10
            )

    def start(self, timeout: float = 10.0) -> Mosquitto:
        self.starts += 1
        if self.starts == 1 and not port_is_free(self.port, self.host):
            raise PeerError(f"mosquitto port {self.host}:{self.port} is already in use")
        self.config_path.write_text(self.render_config())
        if self.users:
            self._write_password_file()
        if self.acl:
            acl = self.workdir / "acl"
            acl.write_text("\n".join(self.acl) + "\n")
            acl.chmod(0o600)
        self._proc.start()
        try:
            wait_until(
                lambda: tcp_accepts(self.host, self.port),
                timeout,
                f"mosquitto does not listen on {self.host}:{self.port}",
                alive=self._proc,
            )
        except PeerError as exc:
            raise PeerError(f"{exc}\n{tail(self.log_path, 30)}") from None
        return self

    def stop(self) -> int | None:
        return self._proc.stop()

    def restart(self, timeout: float = 10.0) -> Mosquitto:
        self.stop()
        wait_until(lambda: released(self.host, self.port, udp=False), timeout, "mosquitto port not released")
        return self.start(timeout)

    async def restart_async(self, timeout: float = 10.0) -> Mosquitto:
        return await asyncio.to_thread(self.restart, timeout)

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def running(self) -> bool:
        return self._proc.running()

    def log_text(self) -> str:
        return self._proc.log_text()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Mosquitto {self.host}:{self.port} pid={self.pid}>"
