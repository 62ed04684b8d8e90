"""Tests of the ccdaemon command line (click's CliRunner; the daemon itself is replaced by a recorder)."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ccdaemon import daemon
from ccdaemon.cli import main
from ccdaemon.config import EX_CONFIG, Settings, version

VALID = '[pbx]\nhost = "127.0.0.1"\nport = 5080\nusername = "201"\npassword = "hunter2-secret"\n'


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CCDAEMON_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)


def config(tmp_path: Path, text: str = VALID) -> str:
    path = tmp_path / "ccdaemon.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "run" in result.stdout and "check-config" in result.stdout


@pytest.mark.parametrize("command", ["run", "check-config"])
def test_subcommand_help(command: str) -> None:
    result = CliRunner().invoke(main, [command, "-h"])
    assert result.exit_code == 0
    assert "--config" in result.stdout and "CCDAEMON_CONFIG" in result.stdout


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"ccdaemon {version()}"


def test_check_config_prints_effective_toml_without_secrets(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["check-config", "--config", config(tmp_path)], env={"CCDAEMON_LOG__LEVEL": "debug"}
    )
    assert result.exit_code == 0, result.stderr
    assert "hunter2-secret" not in result.output
    effective = tomllib.loads(result.stdout)
    assert effective["pbx"]["domain"] == "127.0.0.1:5080"
    assert effective["pbx"]["password"] == "**********"
    assert effective["log"]["level"] == "DEBUG"  # the environment is part of the effective configuration
    assert "configuration OK" in result.stderr


def test_check_config_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check-config", "-c", config(tmp_path), "--format", "json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["sip"]["listen_port"] == 5070


def test_config_from_environment_variable(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check-config"], env={"CCDAEMON_CONFIG": config(tmp_path)})
    assert result.exit_code == 0


@pytest.mark.parametrize("command", ["run", "check-config"])
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[pbx]\nhost = "127.0.0.1"\nusername = "201"\n', "pbx.password: field required"),
        (
            VALID + "[media]\nrtp_port_min = 30000\nrtp_port_max = 20000\n",
            "media.rtp_port_min: must be below",
        ),
        (VALID + "[sip]\nlisten_prot = 1\n", "sip.listen_prot: unknown key"),
        ("[pbx\n", "TOML syntax error"),
    ],
)
def test_bad_config_exits_78_with_the_key_on_stderr(
    tmp_path: Path, command: str, text: str, message: str
) -> None:
    result = CliRunner().invoke(main, [command, "--config", config(tmp_path, text)])
    assert result.exit_code == EX_CONFIG == 78
    assert result.stderr.startswith("ccdaemon: configuration error: ")
    assert message in result.stderr
    assert result.stdout == ""


def test_missing_config_file_exits_78(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["run", "--config", str(tmp_path / "absent.toml")])
    assert result.exit_code == 78
    assert "absent.toml: configuration file not found" in result.stderr


def test_run_starts_the_daemon_with_a_reloader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run(settings: Settings, *, reload: Any = None) -> None:
        seen["settings"] = settings
        seen["reloaded"] = reload() if reload is not None else None

    monkeypatch.setattr(daemon, "run", fake_run)
    result = CliRunner().invoke(main, ["run", "--config", config(tmp_path)])
    assert result.exit_code == 0, result.output
    assert seen["settings"].pbx.port == 5080
    assert isinstance(seen["reloaded"], Settings)


def test_run_failure_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run(settings: Settings, *, reload: Any = None) -> None:
        raise OSError(98, "Address already in use")

    monkeypatch.setattr(daemon, "run", fake_run)
    result = CliRunner().invoke(main, ["run", "--config", config(tmp_path)])
    assert result.exit_code == 1
