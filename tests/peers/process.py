"""Start, watch and stop one peer process; find peer binaries.

Every peer runs in its own session (process group) with stdout and stderr going to a log file in the
test's tmp_path. ``stop()`` signals the PID we started (SIGTERM, wait, SIGKILL) and then makes sure no
child of that process is left in its process group (kamailio forks workers). Nothing else is ever
signalled: no names, no pkill.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest

T = TypeVar("T")


class PeerError(RuntimeError):
    """A peer did not start, exited early, or did not reach the expected state."""


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def require_binary(name: str, package: str) -> str:
    """Return the path of ``name``; fail the test in CI (``CI`` set), skip it otherwise."""
    path = shutil.which(name) or next(
        (str(Path(d) / name) for d in ("/usr/sbin", "/sbin") if (Path(d) / name).is_file()), None
    )
    if path is not None:
        return path
    message = f"{name} not found: install the Debian package '{package}' (see .ci/run)"
    if in_ci():
        pytest.fail(f"CI is set and a real peer is missing: {message}", pytrace=False)
    pytest.skip(message)


def tail(path: Path, max_lines: int = 200) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"(no log file {path})"
    skipped = len(lines) - max_lines
    head = [f"... {skipped} earlier lines in {path}"] if skipped > 0 else []
    return "\n".join(head + lines[-max_lines:])


class ManagedProcess:
    """One child process with its output in ``log_path``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self.stdin = stdin
        self.stop_signal = stop_signal
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running():
            raise PeerError(f"{self.name} already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log.write(f"=== {time.strftime('%H:%M:%S')} start: {' '.join(self.argv)}\n".encode())
        self._log.flush()
        env = {**os.environ, **self.env} if self.env is not None else None
        self._proc = subprocess.Popen(
            self.argv,
            stdin=self.stdin,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
            env=env,
            start_new_session=True,
        )

    def stop(self, timeout: float = 5.0) -> int | None:
        """Stop the process we started: stop_signal, wait, stop_signal again, wait, SIGKILL; then reap
        whatever is left in its process group."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            # a second stop signal forces peers that wait on the network before exiting (baresip
            # un-registers on SIGTERM and waits for the registrar; a second SIGTERM quits at once)
            for grace in (min(1.0, timeout), timeout):
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(self.stop_signal)
                try:
                    proc.wait(grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout)
        self._reap_group(proc.pid, timeout)
        if self._log is not None:
            self._log.write(f"=== {time.strftime('%H:%M:%S')} exited with {proc.returncode}\n".encode())
            self._log.close()
            self._log = None
        return proc.returncode

    @staticmethod
    def _reap_group(pgid: int, timeout: float) -> None:
        """Children left in the session we created (pgid = our child's PID): SIGTERM, then SIGKILL."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):
                return
            deadline = time.monotonic() + timeout / 2
            while time.monotonic() < deadline:
                try:
                    os.killpg(pgid, 0)
                except (ProcessLookupError, PermissionError):
                    return
                time.sleep(0.02)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(
        self, pattern: str | re.Pattern[str], timeout: float = 10.0, *, start: int = 0
    ) -> re.Match[str]:
        """Poll the log (from character offset ``start``) until ``pattern`` matches; fail fast on exit."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        return wait_until(
            lambda: regex.search(self.log_text(), start),
            timeout,
            f"{self.name}: no log line matching {regex.pattern!r}",
            alive=self,
        )


def wait_until(
    probe: Callable[[], T | None],
    timeout: float,
    what: str,
    *,
    alive: ManagedProcess | None = None,
    interval: float = 0.02,
) -> T:
    """Call ``probe`` until it returns something truthy; raise ``PeerError`` with context on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if alive is not None and not alive.running():
            raise PeerError(
                f"{what}: {alive.name} exited with {alive.returncode}\n{tail(alive.log_path, 40)}"
            )
        if time.monotonic() >= deadline:
            log = f"\n{tail(alive.log_path, 40)}" if alive is not None else ""
            raise PeerError(f"{what} (after {timeout:.1f}s){log}")
        time.sleep(interval)
