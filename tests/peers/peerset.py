"""The per-test set of real peers behind the pytest fixtures in ``tests/conftest.py``.

A ``PeerSet`` gives every peer its own directory under the test's ``tmp_path``, remembers every log file
(the conftest hook prints their tails when the test fails) and stops every peer it started, in reverse
order, when the test ends: phones and sipp before the PBX they are registered with.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from .baresip import Baresip
from .kamailio import Kamailio
from .linphone import Linphone
from .mosquitto import Mosquitto
from .sipp import SippResult, SippUas, run_sipp

PEER_LOGS = pytest.StashKey[list[tuple[str, Path]]]()


class _Stoppable(Protocol):
    def stop(self) -> int | None: ...


P = TypeVar("P", bound=_Stoppable)


class PeerSet:
    def __init__(self, tmp_path: Path, node: pytest.Item | None, tone_wav: Path | None = None) -> None:
        self.tmp_path = tmp_path
        self.node = node
        self.tone_wav = tone_wav
        self._started: list[tuple[str, _Stoppable]] = []
        self._counter = itertools.count(1)
        self.default_pbx: Kamailio | None = None

    # -- bookkeeping -------------------------------------------------------------------------------

    def workdir(self, label: str) -> Path:
        path = self.tmp_path / f"{next(self._counter):02d}-{label}"
        path.mkdir(parents=True)
        return path

    def log(self, name: str, path: Path) -> None:
        if self.node is not None:
            self.node.stash.setdefault(PEER_LOGS, []).append((name, path))

    def _started_peer(self, name: str, peer: P, start: Callable[[], object]) -> P:
        # registered before start(): a peer that fails half-way is still stopped and its log shown
        self._started.append((name, peer))
        start()
        return peer

    def stop_all(self) -> None:
        errors: list[str] = []
        while self._started:
            name, peer = self._started.pop()
            try:
                peer.stop()
            except Exception as exc:  # keep stopping the others
                errors.append(f"{name}: {exc!r}")
        if errors:
            raise RuntimeError("stopping peers failed: " + "; ".join(errors))

    # -- peers -------------------------------------------------------------------------------------

    def kamailio(self, **kwargs: Any) -> Kamailio:
        """Start a kamailio PBX (see ``Kamailio`` for options); the first one becomes the default PBX."""
        workdir = self.workdir("kamailio")
        pbx = Kamailio(workdir, **kwargs)
        self.log(f"kamailio {pbx.domain}", pbx.log_path)
        self._started_peer("kamailio", pbx, pbx.start)
        if self.default_pbx is None:
            self.default_pbx = pbx
        return pbx

    def _pbx_and_password(
        self, user: str, password: str | None, pbx: Kamailio | None
    ) -> tuple[Kamailio, str]:
        pbx = pbx or self.default_pbx
        if pbx is None:
            raise RuntimeError("no kamailio started in this test: use the kamailio fixture or pass pbx=")
        if password is None:
            if user not in pbx.users:
                raise KeyError(f"user {user!r} is not configured in {pbx!r}; pass password=")
            password = pbx.users[user]
        return pbx, password

    def baresip(
        self,
        user: str,
        *,
        password: str | None = None,
        pbx: Kamailio | None = None,
        audio_source: Path | None = None,
        **kwargs: Any,
    ) -> Baresip:
        """Start baresip as ``user`` (password taken from the PBX's user table) and wait for REGISTER_OK."""
        pbx, password = self._pbx_and_password(user, password, pbx)
        phone = Baresip(
            self.workdir(f"baresip-{user}"),
            user,
            password,
            pbx,
            audio_source=audio_source or self.tone_wav,
            **kwargs,
        )
        self.log(f"baresip {user}", phone.log_path)
        return self._started_peer(f"baresip {user}", phone, phone.start)

    def linphone(
        self,
        user: str,
        *,
        password: str | None = None,
        pbx: Kamailio | None = None,
        audio_source: Path | None = None,
        **kwargs: Any,
    ) -> Linphone:
        pbx, password = self._pbx_and_password(user, password, pbx)
        phone = Linphone(
            self.workdir(f"linphone-{user}"),
            user,
            password,
            pbx,
            audio_source=audio_source or self.tone_wav,
            **kwargs,
        )
        self.log(f"linphonec {user}", phone.log_path)
        self.log(f"liblinphone {user} (debug)", phone.debug_log_path)
        return self._started_peer(f"linphonec {user}", phone, phone.start)

    def mosquitto(self, **kwargs: Any) -> Mosquitto:
        broker = Mosquitto(self.workdir("mosquitto"), **kwargs)
        self.log("mosquitto", broker.log_path)
        return self._started_peer("mosquitto", broker, broker.start)

    def sipp_uas(self, scenario: str | Path = "uas_answer.xml", **kwargs: Any) -> SippUas:
        uas = SippUas(self.tmp_path, scenario, **kwargs)
        self.log(f"sipp UAS {uas.port}", uas.log_path)
        self.log(f"sipp UAS {uas.port} messages", uas.cwd / "messages.log")
        return self._started_peer(f"sipp UAS {uas.port}", uas, uas.start)

    def run_sipp(
        self, scenario: str | Path, target: Kamailio | tuple[str, int] | None = None, **kwargs: Any
    ) -> SippResult:
        """Run a bounded sipp client against ``target`` (default: the default PBX); see ``run_sipp``."""
        if target is None:
            if self.default_pbx is None:
                raise RuntimeError("no kamailio started in this test: pass target=")
            target = self.default_pbx
        address = target.address if isinstance(target, Kamailio) else target
        result = run_sipp(scenario, address, workdir=self.tmp_path, **kwargs)
        for name in ("sipp.log", "errors.log", "messages.log"):
            if (result.workdir / name).is_file():
                self.log(f"sipp {result.workdir.name} {name}", result.workdir / name)
        return result

    def register_with_sipp(
        self,
        user: str,
        contact_port: int,
        *,
        password: str | None = None,
        pbx: Kamailio | None = None,
        expires: int = 3600,
        transport: str = "u1",
    ) -> SippResult:
        """REGISTER ``user`` (digest auth) with Contact ``127.0.0.1:contact_port``, e.g. a sipp UAS."""
        pbx, password = self._pbx_and_password(user, password, pbx)
        keys: Mapping[str, str] = {"contact_port": str(contact_port), "expires": str(expires)}
        result = self.run_sipp(
            "uac_register_auth.xml", pbx, service=user, auth=(user, password), keys=keys, transport=transport
        )
        return result.check()

    def __enter__(self) -> PeerSet:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop_all()
