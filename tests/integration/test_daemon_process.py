"""The real daemon process (`ccdaemon run --config`) against kamailio and a baresip caller."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest

from ccdaemon.media.recorder import wav_header
from tests.peers.kamailio import Kamailio
from tests.peers.peerset import PeerSet
from tests.peers.ports import free_port

pytestmark = pytest.mark.peers
CCDAEMON = [sys.executable, "-m", "ccdaemon.cli"]


def _config(tmp_path: Path, kamailio: Kamailio, *, password: str, transport: str = "udp") -> Path:
    rtp = free_port(span=4)
    path = tmp_path / "ccdaemon.toml"
    path.write_text(
        f"""
[sip]
listen_host = "127.0.0.1"
listen_port = {free_port()}

[pbx]
host = "{kamailio.host}"
port = {kamailio.port}
username = "100"
password = "{password}"
register_expires = 60
transport = "{transport}"

[media]
rtp_port_min = {rtp - rtp % 2 + 2}
rtp_port_max = {rtp - rtp % 2 + 402}

[log]
level = "INFO"
"""
    )
    return path


def test_daemon_registers_answers_and_unregisters_on_sigterm(
    kamailio: Kamailio, peers: PeerSet, tmp_path: Path
) -> None:
    config = _config(tmp_path, kamailio, password=kamailio.users["100"])
    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*CCDAEMON, "run", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        kamailio.wait_registered("100", timeout=10)
        caller = peers.baresip("300")
        caller.dial(kamailio.uri("100"))
        caller.wait_for_event("CALL_ESTABLISHED", timeout=10)
        caller.hangup()
        caller.wait_for_event("CALL_CLOSED", timeout=10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert kamailio.registered_contacts("100") == []  # unregistered on the way out
    text = log_path.read_text()
    assert "secret" not in text and kamailio.users["100"] not in text  # no password in the log


def test_daemon_over_tcp_with_its_production_event_loop(
    kamailio: Kamailio, peers: PeerSet, tmp_path: Path
) -> None:
    # the daemon process runs on uvloop when installed (pytest's loop is asyncio's): TCP broke there once
    config = _config(tmp_path, kamailio, password=kamailio.users["100"], transport="tcp")
    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*CCDAEMON, "run", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        contacts = kamailio.wait_registered("100", timeout=10)
        assert contacts[0].endswith(";transport=tcp")
        caller = peers.baresip("300")
        caller.dial(kamailio.uri("100"))
        caller.wait_for_event("CALL_ESTABLISHED", timeout=10)
        caller.hangup()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in log_path.read_text()


def test_bad_config_exits_78_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[pbx]\nhost = "127.0.0.1"\nusername = "100"\npassword = "x"\n\n[media]\nrtp_port_min = 30000\n'
        "rtp_port_max = 20000\n"
    )
    result = subprocess.run(
        [*CCDAEMON, "run", "--config", str(path)],
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
        env={**os.environ, "NOTIFY_SOCKET": ""},
    )
    assert result.returncode == 78
    assert "media.rtp_port_min" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_wrong_password_logs_one_error_naming_account(kamailio: Kamailio, tmp_path: Path) -> None:
    config = _config(tmp_path, kamailio, password="wrong-password")
    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*CCDAEMON, "run", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        time.sleep(3)
        assert proc.poll() is None  # keeps running (a PBX may be fixed later) but does not loop
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    text = log_path.read_text()
    errors = [line for line in text.splitlines() if "rejected the credentials" in line]
    assert len(errors) == 1, text
    assert "sip:100@" in errors[0]
    assert "wrong-password" not in text


def test_sip_port_in_use_is_one_clear_error(kamailio: Kamailio, tmp_path: Path) -> None:
    config = _config(tmp_path, kamailio, password=kamailio.users["100"])
    port = int(config.read_text().split("listen_port = ")[1].split()[0])

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", port))
        result = subprocess.run(
            [*CCDAEMON, "run", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    assert f"cannot listen for SIP on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def _recording_config(tmp_path: Path, directory: Path) -> Path:
    # no PBX listens on that port: the daemon starts anyway and keeps registering in the background
    path = tmp_path / "ccdaemon.toml"
    path.write_text(
        f"""
[sip]
listen_host = "127.0.0.1"
listen_port = {free_port()}

[pbx]
host = "127.0.0.1"
port = {free_port()}
username = "100"
password = "x"

[recording]
enabled = true
directory = "{directory}"
"""
    )
    return path


def _wait_for_line(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = path.read_text()
        if text in log:
            return log
        assert proc.poll() is None, f"daemon exited with {proc.returncode}:\n{log}"
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged within {timeout} s:\n{path.read_text()}")


def test_stale_recording_is_repaired_at_start_and_stats_logged_at_stop(tmp_path: Path) -> None:
    directory = tmp_path / "recordings"
    directory.mkdir()
    # what a SIGKILL between the recorder's data write and header update leaves behind
    audio = bytes(range(256)) * 125  # 32000 bytes: 1 s of 8 kHz stereo
    stale = directory / "killed-call_20240501T101502.123Z.wav.part"
    stale.write_bytes(wav_header(0) + audio + b"\x01\x02")  # plus a torn sample frame
    with wave.open(str(stale), "rb") as wav:
        assert wav.getnframes() == 0
    repaired_path = directory / "killed-call_20240501T101502.123Z.wav"
    # a recording finished long ago is not opened at start-up (not even one with a stale header)
    finished = directory / "finished-call_20240501T090000.000Z.wav"
    finished.write_bytes(wav_header(0) + audio)
    untouched = directory / "notes.txt"
    untouched.write_text("not a recording")

    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*CCDAEMON, "run", "--config", str(_recording_config(tmp_path, directory))],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NOTIFY_SOCKET": ""},
        )
    try:
        _wait_for_line(log_path, "ccdaemon.daemon: ready", proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log_path.read_text()
    # repaired before the daemon could accept a call
    repaired = f"repaired 1 recording(s) left incomplete by an unclean stop: {repaired_path.name}\n"
    assert text.count("repaired") == 1  # one line, not one from the recorder and one from the daemon
    assert text.index(repaired) < text.index("ccdaemon.daemon: ready")
    assert not stale.exists()
    with wave.open(str(repaired_path), "rb") as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getnframes()) == (2, 8000, 8000)
        assert wav.readframes(8000) == audio
    assert finished.read_bytes() == wav_header(0) + audio
    assert untouched.read_text() == "not a recording"
    assert "recordings: 0 opened, 0 finished" in text
    assert "Traceback" not in text


def test_recording_directory_is_created_with_mode_0750(tmp_path: Path) -> None:
    directory = tmp_path / "state" / "recordings"
    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*CCDAEMON, "run", "--config", str(_recording_config(tmp_path, directory))],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NOTIFY_SOCKET": ""},
        )
    try:
        _wait_for_line(log_path, "ccdaemon.daemon: ready", proc)
        assert stat.S_IMODE(directory.stat().st_mode) == 0o750
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def test_bad_recording_directory_exits_78_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    directory = tmp_path / "a-file" / "recordings"
    result = subprocess.run(
        [*CCDAEMON, "run", "--config", str(_recording_config(tmp_path, directory))],
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
        env={**os.environ, "NOTIFY_SOCKET": ""},
    )
    assert result.returncode == 78
    errors = [line for line in result.stderr.splitlines() if "recording.directory" in line]
    assert errors == [
        f"ccdaemon: configuration error: recording.directory: cannot use '{directory}' for recordings: "
        "Not a directory"
    ], result.stderr
    assert "Traceback" not in result.stderr
    assert " ready" not in result.stderr


def test_bad_recording_directory_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "ccdaemon.toml"
    path.write_text('[pbx]\nhost = "127.0.0.1"\nusername = "100"\npassword = "x"\n')
    result = subprocess.run(
        [*CCDAEMON, "check-config", "--config", str(path)],
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
        env={**os.environ, "CCDAEMON_RECORDING__DIRECTORY": "recordings"},
    )
    assert result.returncode == 78
    assert result.stderr.strip() == (
        "ccdaemon: configuration error: recording.directory: must be an absolute path, got 'recordings'"
    )
