"""linphonec (liblinphone 5.1) as a desk phone that can do attended transfer (REFER with Replaces).

linphonec has no control socket we rely on: commands are written to its stdin (a pipe we keep open)
and its stdout is the event stream, captured to ``<workdir>/linphonec.log`` and searched by
``wait_for``. liblinphone's own debug log goes to ``<workdir>/liblinphone.log``.

Verified pitfalls (see tests/integration/test_harness.py):
- HOME must contain a writable ``.local/share/linphone``: when liblinphone cannot create its SQLite
  database the core stays in ``LinphoneGlobalStartup`` forever and never opens a SIP socket.
- ``[sip] bind_address=127.0.0.1`` with TCP/TLS disabled keeps it on loopback UDP only.
- No sound card: ``soundcard use files`` makes it play a WAV file as the microphone.
- Its Refer-To drops the port, so kamailio must route transfers (never the Refer-To literally).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from pathlib import Path

from .kamailio import Kamailio
from .ports import LOOPBACK, free_port, port_is_free
from .process import ManagedProcess, PeerError, require_binary, tail, wait_until


class Linphone:
    """One linphonec instance registered with a kamailio PBX."""

    def __init__(
        self,
        workdir: Path,
        user: str,
        password: str,
        pbx: Kamailio | str,
        *,
        auto_answer: bool = False,
        audio_source: Path | None = None,
        register: bool = True,
    ) -> None:
        self.binary = require_binary("linphonec", "linphone-cli")
        self.workdir = workdir
        self.home = workdir / "home"
        (self.home / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
        self.rc_path = workdir / "linphonerc"
        self.log_path = workdir / "linphonec.log"
        self.debug_log_path = workdir / "liblinphone.log"
        self.user = user
        self.password = password
        self.domain = pbx.domain if isinstance(pbx, Kamailio) else pbx
        self.auto_answer = auto_answer
        self.audio_source = audio_source
        self.register = register
        self.host = LOOPBACK
        self.sip_port = free_port()
        self.rtp_port = free_port(span=2)
        argv = [self.binary, "-c", str(self.rc_path), "-d", "6", "-l", str(self.debug_log_path)]
        if auto_answer:
            argv.append("-a")
        self._stdin_w: int | None = None
        self._argv = argv
        self._proc: ManagedProcess | None = None
        self._mark = 0

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.domain}"

    def render_rc(self) -> str:
        return f"""[sip]
sip_port={self.sip_port}
sip_tcp_port=0
sip_tls_port=0
bind_address={self.host}
use_ipv6=0
default_proxy=0
guess_hostname=0
contact="{self.user}" <sip:{self.user}@{self.host}>
register_only_when_network_is_up=0
register_only_when_upnp_is_ok=0
ping_with_options=0
inc_timeout=60
supported=replaces

[net]
firewall_policy=0

[rtp]
audio_rtp_port={self.rtp_port}
bind_address={self.host}
nortp_timeout=60

[sound]
echocancellation=0

[video]
capture=0
display=0

[proxy_0]
reg_proxy=<sip:{self.domain};transport=udp>
reg_identity="{self.user}" <sip:{self.user}@{self.domain}>
reg_expires=600
reg_sendregister={1 if self.register else 0}
publish=0
dial_escape_plus=0

[auth_info_0]
username={self.user}
passwd={self.password}
"""

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> Linphone:
        if not (port_is_free(self.sip_port) and port_is_free(self.rtp_port)):
            raise PeerError(f"linphonec ports {self.sip_port}/{self.rtp_port} are taken")
        self.rc_path.write_text(self.render_rc())
        read_fd, self._stdin_w = os.pipe()
        self._proc = ManagedProcess(
            f"linphonec:{self.user}",
            self._argv,
            self.log_path,
            cwd=self.workdir,
            env={"HOME": str(self.home)},
            stdin=read_fd,
        )
        try:
            self._proc.start()
        finally:
            os.close(read_fd)
        self.send("soundcard use files")
        if self.audio_source is not None:
            self.send(f"play {self.audio_source}")
        if self.register:
            self.wait_registered(timeout)
        else:
            self.send("states global")
            self.wait_for(r"LinphoneGlobalOn", timeout)
        return self

    def stop(self, timeout: float = 5.0) -> int | None:
        if self._proc is None:
            return None
        if self._proc.running() and self._stdin_w is not None:
            # "quit" unregisters; fall back to SIGTERM/SIGKILL in ManagedProcess.stop
            with contextlib.suppress(OSError):
                self.send("quit")
            with contextlib.suppress(PeerError):
                wait_until(
                    lambda: not self._proc.running() if self._proc else True, timeout, "linphonec quit"
                )
        if self._stdin_w is not None:
            with contextlib.suppress(OSError):
                os.close(self._stdin_w)
            self._stdin_w = None
        return self._proc.stop()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.running()

    def __enter__(self) -> Linphone:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- I/O ---------------------------------------------------------------------------------------

    def output(self) -> str:
        return self._proc.log_text() if self._proc else ""

    def send(self, line: str) -> None:
        """Write one command line to linphonec's stdin. Output after this point is what ``wait_for`` sees."""
        if self._stdin_w is None or not self.running():
            raise PeerError(f"linphonec {self.user} is not running\n{tail(self.log_path, 30)}")
        if "\n" in line:
            raise ValueError("one command per call")
        self._mark = len(self.output())
        os.write(self._stdin_w, line.encode() + b"\n")

    def wait_for(
        self, pattern: str, timeout: float = 10.0, *, since_last_command: bool = True
    ) -> re.Match[str]:
        """Wait until linphonec's output (after the last command, by default) matches ``pattern``."""
        if self._proc is None:
            raise PeerError("linphonec not started")
        start = self._mark if since_last_command else 0
        regex = re.compile(pattern)
        return wait_until(
            lambda: regex.search(self.output(), start),
            timeout,
            f"linphonec {self.user}: no output matching {pattern!r}",
            alive=self._proc,
        )

    async def wait_for_async(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        return await asyncio.to_thread(self.wait_for, pattern, timeout)

    def command(self, line: str, expect: str | None = None, timeout: float = 10.0) -> str:
        """Send a command; with ``expect``, wait for that output and return the match text."""
        self.send(line)
        if expect is None:
            return ""
        return self.wait_for(expect, timeout).group(0)

    # -- phone actions -----------------------------------------------------------------------------

    def wait_registered(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.send("status register")
            try:
                self.wait_for(
                    r"registered(=-1|, identity=.*)", min(2.0, max(0.1, deadline - time.monotonic()))
                )
            except PeerError:
                pass
            else:
                if re.search(r"registered, identity=", self.output()[self._mark :]):
                    return
            if time.monotonic() >= deadline:
                raise PeerError(
                    f"linphonec {self.user} did not register with {self.domain}\n{tail(self.log_path, 30)}"
                )
            time.sleep(0.2)

    def call(self, uri: str, *, wait_connected: bool = False, timeout: float = 10.0) -> int:
        """Dial ``uri``; return linphonec's call id (optionally after ``connected``)."""
        self.send(f"call {uri}")
        call_id = int(self.wait_for(r"assigned id (\d+)", timeout).group(1))
        if wait_connected:
            self.wait_for(rf"Call {call_id} with .* connected", timeout)
        return call_id

    def wait_incoming(self, timeout: float = 10.0) -> int:
        """Wait for an incoming call (output since start); return its call id."""
        match = self.wait_for(
            r"Receiving new incoming call from .*, assigned id (\d+)", timeout, since_last_command=False
        )
        return int(match.group(1))

    def answer(self, call_id: int | None = None, timeout: float = 10.0) -> None:
        self.send("answer" if call_id is None else f"answer {call_id}")
        self.wait_for(r"Call \d+ with .* connected", timeout)

    def hold(self, call_id: int | None = None, timeout: float = 10.0) -> None:
        """``pause``: re-INVITE with a=sendonly; returns once linphonec reports the call paused."""
        if call_id is not None:
            raise ValueError("linphonec's pause only acts on the current call")
        self.send("pause")
        self.wait_for(r"Call \d+ with .* is now paused", timeout)

    def resume(self, call_id: int | None = None, timeout: float = 10.0) -> None:
        """``resume``: re-INVITE back to sendrecv; returns once media is re-established."""
        self.send("resume" if call_id is None else f"resume {call_id}")
        self.wait_for(r"(?s)Resuming call \d+.*Media streams established", timeout)

    def transfer(self, target: str | int, call_id: int | None = None) -> None:
        """Blind transfer to a URI, or attended transfer (REFER with Replaces) to another call id."""
        if isinstance(target, int):
            if call_id is None:
                raise ValueError(
                    "attended transfer needs both call ids: transfer(other_call, call_id=this_call)"
                )
            self.send(f"transfer {call_id} --to-call {target}")
        else:
            self.send(f"transfer {target}" if call_id is None else f"transfer {call_id} {target}")

    def terminate(self, call_id: int | None = None, timeout: float = 10.0) -> None:
        self.send("terminate" if call_id is None else f"terminate {call_id}")
        self.wait_for(r"Call \d+ .*(ended|terminated)|No active call", timeout)

    def calls(self) -> str:
        self.send("calls")
        return self.wait_for(r"(?s)(No active call|-----.*?-----\s*\n.*?\n)", 5).group(0)

    def __repr__(self) -> str:
        return f"<Linphone {self.aor} sip={self.host}:{self.sip_port} pid={self.pid}>"
