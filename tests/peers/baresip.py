"""baresip 1.0 as a desk phone / caller, driven over ``ctrl_tcp`` (JSON in netstrings).

Each instance has its own config directory (``config``, ``accounts``), a SIP port P on 127.0.0.1 (it
also binds P+1 for TLS, so ports are taken two at a time), a ``ctrl_tcp`` port, ``aufile`` as the
microphone (a long WAV: the call ends when the file ends), ``alsa,null`` as the speaker and optionally
``sndfile`` recording both directions of every call into ``<workdir>/recordings``.

The account is added with the ``uanew`` command once the control connection is open (baresip does not
buffer events, so an account in the accounts file registers before anyone hears REGISTER_OK). A reader
thread keeps every event from then on, so ``wait_for_event`` never misses one that arrived early.

Pitfalls seen with baresip 1.0 here:
- with ``answermode=auto`` there is no CALL_INCOMING event, only CALL_ESTABLISHED;
- ``sndfile`` names files ``dump-<date-time to the second>-enc|dec.wav`` and reopens them on every
  re-INVITE (hold/resume): the recording of the part before the re-INVITE is overwritten;
- ``ausine`` only runs at 48 kHz, so the default microphone is a generated 8 kHz WAV;
- on SIGTERM it un-registers and waits for the registrar (about 30 s when the PBX is gone); a second
  SIGTERM makes it quit at once (``ManagedProcess.stop`` does that after 1 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .audio import write_tone
from .kamailio import Kamailio
from .ports import LOOPBACK, free_port, tcp_accepts
from .process import ManagedProcess, PeerError, require_binary, tail, wait_until

MODULE_DIRS = (
    "/usr/lib/baresip/modules",
    "/usr/lib/x86_64-linux-gnu/baresip/modules",
    "/usr/local/lib/baresip/modules",
)


@dataclass(frozen=True)
class BaresipEvent:
    """One ``ctrl_tcp`` event, e.g. ``type="CALL_ESTABLISHED"``, ``klass="call"``."""

    type: str
    klass: str
    account_aor: str
    direction: str
    peer_uri: str
    call_id: str
    param: str
    received_at: float
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BaresipEvent:
        return cls(
            type=str(data.get("type", "")),
            klass=str(data.get("class", "")),
            account_aor=str(data.get("accountaor", "")),
            direction=str(data.get("direction", "")),
            peer_uri=str(data.get("peeruri", "")),
            call_id=str(data.get("id", "")),
            param=str(data.get("param", "")),
            received_at=time.monotonic(),
            raw=data,
        )


class CtrlTcpClient:
    """Netstring JSON client for baresip's ``ctrl_tcp``: commands with tokens, and an event log."""

    def __init__(self, host: str, port: int, name: str = "baresip") -> None:
        self.name = name
        self._sock = socket.create_connection((host, port), timeout=5)
        self._sock.settimeout(None)
        self._tokens = itertools.count(1)
        self._cond = threading.Condition()
        self._responses: dict[str, dict[str, Any]] = {}
        self.events: list[BaresipEvent] = []
        self._consumed: set[int] = set()
        self._closed = False
        self._reader = threading.Thread(target=self._read_loop, name=f"{name}-ctrl", daemon=True)
        self._reader.start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._reader.join(2)

    def _read_loop(self) -> None:
        buf = b""
        while True:
            try:
                chunk = self._sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._closed = True
                    self._cond.notify_all()
                return
            buf += chunk
            while True:
                colon = buf.find(b":")
                if colon < 0:
                    break
                length = int(buf[:colon])
                end = colon + 1 + length
                if len(buf) < end + 1:
                    break
                payload, buf = buf[colon + 1 : end], buf[end + 1 :]
                self._dispatch(json.loads(payload))

    def _dispatch(self, message: dict[str, Any]) -> None:
        with self._cond:
            if message.get("response"):
                self._responses[str(message.get("token", ""))] = message
            elif message.get("event"):
                self.events.append(BaresipEvent.from_json(message))
            self._cond.notify_all()

    def command(self, command: str, params: str = "", timeout: float = 5.0) -> str:
        """Run a baresip command (``dial``, ``hangup``, ...); return its text or raise ``PeerError``."""
        token = f"t{next(self._tokens)}"
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self._sock.sendall(b"%d:%s," % (len(body), body))
        deadline = time.monotonic() + timeout
        with self._cond:
            while token not in self._responses:
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    raise PeerError(f"{self.name}: no response to {command} {params!r}")
                self._cond.wait(remaining)
            response = self._responses.pop(token)
        if not response.get("ok", False):
            raise PeerError(f"{self.name}: command {command} {params!r} failed: {response.get('data')!r}")
        return str(response.get("data", ""))

    def wait_for_event(
        self,
        event_type: str,
        timeout: float = 10.0,
        predicate: Callable[[BaresipEvent], bool] | None = None,
    ) -> BaresipEvent:
        """Return (and consume) the oldest not yet consumed event of ``event_type``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index, event in enumerate(self.events):
                    if index in self._consumed or event.type != event_type:
                        continue
                    if predicate is None or predicate(event):
                        self._consumed.add(index)
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    seen = ", ".join(e.type for e in self.events) or "none"
                    state = "connection closed" if self._closed else f"{timeout:.1f}s passed"
                    raise PeerError(f"{self.name}: no {event_type} event ({state}); events so far: {seen}")
                self._cond.wait(remaining)


class Baresip:
    """One baresip user agent registered (by default) with a kamailio PBX."""

    def __init__(
        self,
        workdir: Path,
        user: str,
        password: str | None,
        pbx: Kamailio | str,
        *,
        answermode: str = "auto",
        audio_source: Path | None = None,
        record: bool = False,
        transport: str = "udp",
        register: bool = True,
        regint: int = 600,
        call_transfer: bool = True,
        sip_trace: bool = True,
        extra_config: dict[str, str] | None = None,
    ) -> None:
        if answermode not in {"auto", "manual", "early"}:
            raise ValueError(f"answermode must be auto, manual or early, got {answermode!r}")
        self.binary = require_binary("baresip", "baresip-core")
        self.module_path = next((d for d in MODULE_DIRS if Path(d, "ctrl_tcp.so").is_file()), None)
        if self.module_path is None:
            raise PeerError(f"baresip modules (ctrl_tcp.so) not found in any of {MODULE_DIRS}")
        self.workdir = workdir
        self.config_dir = workdir / "config"
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.recordings = workdir / "recordings"
        self.user = user
        self.password = password
        self.domain = pbx.domain if isinstance(pbx, Kamailio) else pbx
        self.answermode = answermode
        self.audio_source = audio_source
        self.record = record
        self.transport = transport
        self.register = register
        self.regint = regint
        self.call_transfer = call_transfer
        self.extra_config = dict(extra_config or {})
        self.host = LOOPBACK
        self.sip_port = free_port(span=2)  # baresip binds SIP port + 1 for TLS
        self.ctrl_port = free_port()
        self.log_path = workdir / "baresip.log"
        argv = [self.binary, "-f", str(self.config_dir), "-n", self.host]
        if sip_trace:
            argv.append("-s")
        self._proc = ManagedProcess(f"baresip:{user}", argv, self.log_path, cwd=workdir)
        self.ctrl: CtrlTcpClient | None = None

    # -- config ------------------------------------------------------------------------------------

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.domain}"

    @property
    def contact(self) -> str:
        return f"sip:{self.user}@{self.host}:{self.sip_port}"

    def render_config(self) -> str:
        if self.audio_source is None:
            # ausine only runs at 48 kHz (it fails the call at 8 kHz): use a generated WAV instead
            self.audio_source = write_tone(self.workdir / "tone-440hz-120s.wav")
        source = f"aufile,{self.audio_source}"
        settings: dict[str, str] = {
            "poll_method": "epoll",
            "sip_listen": f"{self.host}:{self.sip_port}",
            "call_local_timeout": "120",
            "call_max_calls": "4",
            "audio_path": "/usr/share/baresip",
            "audio_player": "alsa,null",
            "audio_source": source,
            "audio_alert": "alsa,null",
            "audio_level": "no",
            "rtp_stats": "yes",
            "jitter_buffer_delay": "1-10",
            "module_path": str(self.module_path),
            "ctrl_tcp_listen": f"{self.host}:{self.ctrl_port}",
            "snd_path": str(self.recordings),
            **self.extra_config,
        }
        modules = ["g711.so", "alsa.so", "aufile.so"]
        if self.record:
            modules.append("sndfile.so")
        lines = [f"{key}\t{value}" for key, value in settings.items()]
        lines += [f"module\t{m}" for m in modules]
        lines += ["module_tmp\tuuid.so", "module_tmp\taccount.so"]
        lines += ["module_app\tmenu.so", "module_app\tctrl_tcp.so"]
        return "\n".join(lines) + "\n"

    def render_accounts(self) -> str:
        uri = f"<sip:{self.user}@{self.domain};transport={self.transport}>"
        params = [f"answermode={self.answermode}", "audio_codecs=pcmu,pcma", "ptime=20"]
        if self.password is not None:
            params.insert(0, f"auth_pass={self.password}")
        params.append(f"regint={self.regint if self.register else 0}")
        if not self.call_transfer:
            params.append("call_transfer=no")  # REFER is refused instead of followed
        return uri + "".join(f";{p}" for p in params) + "\n"

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0, wait_registered: bool | None = None) -> Baresip:
        if self.record:
            self.recordings.mkdir(exist_ok=True)
        (self.config_dir / "config").write_text(self.render_config())
        # The account is added over ctrl_tcp (uanew) once connected: baresip does not buffer events, so
        # an account in the accounts file could register before anyone listens for REGISTER_OK.
        (self.config_dir / "accounts").write_text("")
        (self.config_dir / "contacts").write_text("")
        self._proc.start()
        deadline = time.monotonic() + timeout
        wait_until(
            lambda: tcp_accepts(self.host, self.ctrl_port),
            timeout,
            f"baresip ctrl_tcp port {self.ctrl_port} not open",
            alive=self._proc,
        )
        self.ctrl = CtrlTcpClient(self.host, self.ctrl_port, name=f"baresip {self.user}")
        self.ctrl.command("uanew", self.render_accounts().strip())
        if wait_registered if wait_registered is not None else self.register:
            self.wait_registered(max(0.5, deadline - time.monotonic()))
        return self

    def stop(self) -> int | None:
        if self.ctrl is not None:
            self.ctrl.close()
            self.ctrl = None
        return self._proc.stop()

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def running(self) -> bool:
        return self._proc.running()

    def __enter__(self) -> Baresip:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_text(self) -> str:
        return self._proc.log_text()

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Poll baresip's output (with ``sip_trace`` every SIP message is in it) for ``pattern``."""
        return self._proc.wait_for_log(pattern, timeout)

    # -- control -----------------------------------------------------------------------------------

    def _client(self) -> CtrlTcpClient:
        if self.ctrl is None:
            raise PeerError(f"baresip {self.user} is not started")
        return self.ctrl

    def command(self, command: str, params: str = "") -> str:
        return self._client().command(command, params)

    def dial(self, uri: str) -> str:
        """Place a call (``uri`` like ``sip:100@127.0.0.1:PORT``); watch for CALL_* events after."""
        return self.command("dial", uri)

    def accept(self) -> str:
        return self.command("accept")

    def hangup(self) -> str:
        return self.command("hangup")

    def hold(self) -> str:
        return self.command("hold")

    def resume(self) -> str:
        return self.command("resume")

    def send_dtmf(self, digits: str) -> str:
        """Send DTMF (RFC 4733 telephone-events) on the current call: 0-9, *, #, A-D."""
        allowed = set("0123456789*#ABCDabcd")
        if not digits or not set(digits) <= allowed:
            raise ValueError(f"DTMF digits must be from {''.join(sorted(allowed))}, got {digits!r}")
        return self.command("sndcode", digits)

    def transfer(self, uri: str) -> str:
        """Blind transfer (REFER) of the current call to ``uri``."""
        return self.command("transfer", uri)

    def list_calls(self) -> str:
        return self.command("listcalls")

    @property
    def events(self) -> list[BaresipEvent]:
        return list(self._client().events)

    def wait_for_event(
        self,
        event_type: str,
        timeout: float = 10.0,
        predicate: Callable[[BaresipEvent], bool] | None = None,
    ) -> BaresipEvent:
        return self._client().wait_for_event(event_type, timeout, predicate)

    async def wait_for_event_async(
        self,
        event_type: str,
        timeout: float = 10.0,
        predicate: Callable[[BaresipEvent], bool] | None = None,
    ) -> BaresipEvent:
        return await asyncio.to_thread(self.wait_for_event, event_type, timeout, predicate)

    def wait_registered(self, timeout: float = 10.0) -> BaresipEvent:
        try:
            return self.wait_for_event("REGISTER_OK", timeout)
        except PeerError as exc:
            raise PeerError(f"{exc}\n{tail(self.log_path, 40)}") from None

    def recorded_files(self) -> list[Path]:
        return sorted(self.recordings.glob("*.wav")) if self.recordings.is_dir() else []

    def __repr__(self) -> str:
        return f"<Baresip {self.aor} sip={self.host}:{self.sip_port} pid={self.pid}>"
