"""Tests of ccdaemon.config: every failure names its key; environment over file; secrets stay secret."""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from ccdaemon.config import (
    ConfigError,
    Settings,
    dump_toml,
    env_var_name,
    load_config,
    version,
)

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = '[pbx]\nhost = "127.0.0.1"\nusername = "201"\npassword = "hunter2-secret"\n'
NO_PASSWORD = '[pbx]\nhost = "127.0.0.1"\nusername = "201"\n'


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own CCDAEMON_* variables or a systemd credentials dir must not leak into tests."""
    for name in list(os.environ):
        if name.startswith("CCDAEMON_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str, name: str = "ccdaemon.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return caught.value


# --- a valid file and its defaults ---------------------------------------------------------------------


def test_minimal_file_gets_documented_defaults(tmp_path: Path) -> None:
    settings = load_config(write(tmp_path, MINIMAL))
    assert settings.sip.listen_host == "0.0.0.0"
    assert settings.sip.listen_port == 5070
    assert settings.sip.transports == ["udp", "tcp"]
    assert settings.sip.contact_host is None
    assert settings.sip.user_agent == f"ccdaemon/{version()}"
    assert (settings.sip.t1, settings.sip.t2, settings.sip.t4) == (0.5, 4.0, 5.0)
    assert settings.sip.max_message_bytes == 65_535
    assert settings.pbx.port == 5060
    assert settings.pbx.transport == "udp"
    assert settings.pbx.domain == "127.0.0.1"  # default port: not repeated in the domain
    assert settings.pbx.auth_username == "201"
    assert settings.pbx.password.get_secret_value() == "hunter2-secret"
    assert settings.pbx.register is True
    assert settings.pbx.register_expires == 120
    assert (settings.pbx.register_retry_min, settings.pbx.register_retry_max) == (5.0, 300.0)
    assert settings.pbx.keepalive_interval == 30.0
    assert settings.pbx.outbound_proxy is None
    assert settings.security.allowed_sources == []
    assert settings.security.unknown_source_policy == "reject"
    assert settings.security.max_transactions_per_peer == 500
    assert settings.security.max_calls == 500
    assert (settings.media.rtp_port_min, settings.media.rtp_port_max) == (20_000, 30_000)
    assert settings.media.codecs == ["PCMU", "PCMA"]
    assert settings.media.ptime == 20
    assert settings.media.symmetric_rtp is True
    assert settings.recording.enabled is False  # opt-in: callers must be told before they are recorded
    assert settings.recording.directory == Path("/var/lib/ccdaemon/recordings")
    assert settings.recording.retention_days == 90
    assert settings.recording.flush_interval == 0.5
    assert settings.recording.fsync is False
    assert settings.recording.max_buffered_seconds == 30.0
    assert (settings.log.level, settings.log.format) == ("INFO", "text")


@pytest.mark.parametrize(
    ("extra", "domain"),
    [
        ("port = 5080\n", "127.0.0.1:5080"),
        ('domain = "office.example"\n', "office.example"),
    ],
)
def test_domain_defaults_to_host_and_non_default_port(tmp_path: Path, extra: str, domain: str) -> None:
    text = MINIMAL + extra + ('[sip]\ntransports = ["udp", "tls"]\n' if "tls" in extra else "")
    assert load_config(write(tmp_path, text)).pbx.domain == domain


def test_tls_is_refused_until_it_exists(tmp_path: Path) -> None:
    text = MINIMAL + '[sip]\ntransports = ["udp", "tls"]\n'
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert str(info.value).startswith("sip.transports: tls is not available yet")


def test_values_are_normalised(tmp_path: Path) -> None:
    text = MINIMAL + (
        'transport = "TCP"\nauth_username = "auth201"\n'
        '[sip]\ntransports = ["UDP", "tcp"]\n[media]\ncodecs = ["pcma"]\n'
        '[log]\nlevel = "debug"\nformat = "JSON"\n'
        '[security]\nallowed_sources = ["192.0.2.7", "10.0.0.0/8", "2001:db8::/32"]\n'
    )
    settings = load_config(write(tmp_path, text))
    assert settings.pbx.transport == "tcp"
    assert settings.pbx.auth_username == "auth201"
    assert settings.sip.transports == ["udp", "tcp"]
    assert settings.media.codecs == ["PCMA"]
    assert (settings.log.level, settings.log.format) == ("DEBUG", "json")
    assert settings.security.allowed_sources == [
        ipaddress.ip_network("192.0.2.7/32"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::/32"),
    ]


# --- errors name the key -------------------------------------------------------------------------------


def test_missing_password_names_key_and_env_var(tmp_path: Path) -> None:
    error = error_of(tmp_path, NO_PASSWORD)
    assert error.key == "pbx.password"
    assert str(error).startswith(
        "pbx.password: field required (set it in the file or CCDAEMON_PBX__PASSWORD)"
    )
    assert "password_file" in str(error)


def test_missing_required_key_names_env_var(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[pbx]\nusername = "201"\npassword = "x"\n')
    assert str(error) == "pbx.host: field required (set it in the file or CCDAEMON_PBX__HOST)"


def test_missing_section(tmp_path: Path) -> None:
    error = error_of(tmp_path, "[sip]\nlisten_port = 5070\n")
    assert error.key == "pbx"
    assert "section [pbx] required" in str(error)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            MINIMAL + "[media]\nrtp_port_min = 30000\nrtp_port_max = 20000\n",
            "media.rtp_port_min: must be below media.rtp_port_max",
        ),
        (
            MINIMAL + "[media]\nrtp_port_min = 20000\nrtp_port_max = 20000\n",
            "media.rtp_port_min: must be below media.rtp_port_max",
        ),
        (MINIMAL + "[media]\nrtp_port_max = 30001\n", "media.rtp_port_max: must be even"),
        (
            MINIMAL + "[media]\nrtp_port_min = 80\n",
            "media.rtp_port_min: input should be greater than or equal to 1024",
        ),
        (MINIMAL + "[media]\nptime = 25\n", "media.ptime: must be a multiple of 10 ms"),
        (
            MINIMAL + '[media]\ncodecs = ["PCMU", "G729"]\n',
            "media.codecs[1]: input should be 'PCMU' or 'PCMA'",
        ),
        (MINIMAL + '[media]\ncodecs = ["PCMU", "pcmu"]\n', "media.codecs[1]: 'PCMU' is listed twice"),
        (MINIMAL + "[media]\ncodecs = []\n", "media.codecs: list should have at least 1 item"),
        (
            MINIMAL + "[sip]\nlisten_port = 70000\n",
            "sip.listen_port: input should be less than or equal to 65535",
        ),
        (MINIMAL + '[sip]\nlisten_port = "five"\n', "sip.listen_port: input should be a valid integer"),
        (MINIMAL + '[sip]\nlisten_host = "localhost"\n', "sip.listen_host: must be an IP address"),
        (
            MINIMAL + '[sip]\ntransports = ["udp", "sctp"]\n',
            "sip.transports[1]: input should be 'udp', 'tcp' or 'tls'",
        ),
        (MINIMAL + "[sip]\nt1 = 2.0\nt2 = 1.0\n", "sip.t2: must not be below sip.t1"),
        (MINIMAL + "[sip]\nmax_message_bytes = 100\n", "sip.max_message_bytes: input should be greater than"),
        (
            MINIMAL + '[sip]\ncontact_host = "not a host"\n',
            "sip.contact_host: not an IP address or host name",
        ),
        (MINIMAL + '[sip]\ntransports = ["tcp"]\n', "pbx.transport: 'udp' is not enabled in sip.transports"),
        (
            MINIMAL + "register_expires = 30\n",
            "pbx.register_expires: input should be greater than or equal to 60",
        ),
        (
            MINIMAL + "register_retry_min = 600\n",
            "pbx.register_retry_min: must not be above pbx.register_retry_max",
        ),
        (MINIMAL + 'outbound_proxy = "proxy.example:5060"\n', "pbx.outbound_proxy: must be a SIP URI"),
        (MINIMAL + 'transport = "sctp"\n', "pbx.transport: input should be 'udp', 'tcp' or 'tls'"),
        (
            '[pbx]\nhost = "sip:pbx.example"\nusername = "201"\npassword = "x"\n',
            "pbx.host: not an IP address",
        ),
        (
            '[pbx]\nhost = "127.0.0.1"\nusername = ""\npassword = "x"\n',
            "pbx.username: string should have at least",
        ),
        (
            MINIMAL + '[security]\nunknown_source_policy = "ignore"\n',
            "security.unknown_source_policy: input should be 'reject' or 'drop'",
        ),
        (
            MINIMAL + "[security]\nmax_calls = 0\n",
            "security.max_calls: input should be greater than or equal to 1",
        ),
        (
            MINIMAL + '[security]\nallowed_sources = ["10.0.0.0/8", "nonsense"]\n',
            "security.allowed_sources[1]: not an IP address or network: 'nonsense'",
        ),
        (
            MINIMAL + '[security]\nallowed_sources = ["10.1.2.3/16"]\n',
            "security.allowed_sources[0]: not an IP address or network: '10.1.2.3/16' "
            "(did you mean 10.1.0.0/16?)",
        ),
        (
            MINIMAL + '[log]\nlevel = "chatty"\n',
            "log.level: input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'",
        ),
        (MINIMAL + '[log]\nformat = "xml"\n', "log.format: input should be 'text' or 'json'"),
        (
            MINIMAL + '[recording]\ndirectory = "recordings"\n',
            "recording.directory: must be an absolute path, got 'recordings'",
        ),
        (
            MINIMAL + '[recording]\ndirectory = ""\n',
            "recording.directory: must be an absolute path",
        ),
        (
            MINIMAL + '[recording]\ndirectory = "/srv/rec\\u0000x"\n',
            "recording.directory: must not contain a NUL character",
        ),
        (
            MINIMAL + "[recording]\ndirectory = 5\n",
            "recording.directory: input is not a valid path",
        ),
        (
            MINIMAL + "[recording]\nretention_days = -1\n",
            "recording.retention_days: input should be greater than or equal to 0",
        ),
        (
            MINIMAL + "[recording]\nretention_days = 1.5\n",
            "recording.retention_days: input should be a valid integer",
        ),
        (
            MINIMAL + '[recording]\nenabled = "sometimes"\n',
            "recording.enabled: input should be a valid boolean",
        ),
        (
            MINIMAL + "[recording]\nflush_interval = 0\n",
            "recording.flush_interval: input should be greater than or equal to 0.1",
        ),
        (
            MINIMAL + "[recording]\nmax_buffered_seconds = 0.5\n",
            "recording.max_buffered_seconds: input should be greater than or equal to 1",
        ),
        (
            MINIMAL + "[recording]\nflush_interval = 5\nmax_buffered_seconds = 8\n",
            "recording.max_buffered_seconds: must be at least twice recording.flush_interval (5.0 s)",
        ),
        (
            MINIMAL + '[recording]\ndirectroy = "/srv/rec"\n',
            "recording.directroy: unknown key (did you mean 'directory'?)",
        ),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    error = error_of(tmp_path, text)
    assert str(error).startswith(message), str(error)
    assert error.key is not None and str(error).startswith(error.key + ":")
    assert "\n" not in str(error)


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    error = error_of(tmp_path, MINIMAL + "[sip]\nlisten_prot = 5070\n")
    assert str(error) == "sip.listen_prot: unknown key (did you mean 'listen_port'?)"
    assert error.key == "sip.listen_prot"


def test_unknown_key_typo_in_password(tmp_path: Path) -> None:
    error = error_of(tmp_path, NO_PASSWORD + 'pasword = "hunter2-secret"\n')
    # The first error is the one reported; the typo'd value itself is never echoed.
    assert "hunter2-secret" not in str(error)
    assert str(error).startswith(("pbx.pasword: unknown key (did you mean 'password'?)", "pbx.password:"))


def test_unknown_section(tmp_path: Path) -> None:
    error = error_of(tmp_path, MINIMAL + "[medai]\nptime = 20\n")
    assert str(error) == "medai: unknown section or key (did you mean 'media'?)"


def test_value_where_a_section_belongs(tmp_path: Path) -> None:
    assert (
        str(error_of(tmp_path, 'log = "debug"\n' + MINIMAL))
        == "log: must be a [log] table, not a single value"
    )


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[pbx]\nhost = "127.0.0.1"\nusername = 201 201\n')
    assert str(error).startswith(f"{tmp_path / 'ccdaemon.toml'}: TOML syntax error")
    assert "line 3" in str(error)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: configuration file not found"):
        load_config(tmp_path / "nope.toml")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[pbx]\nhost = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


# --- the environment -----------------------------------------------------------------------------------


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCDAEMON_PBX__PORT", "5099")
    monkeypatch.setenv("CCDAEMON_SIP__LISTEN_PORT", "6000")
    monkeypatch.setenv("CCDAEMON_LOG__LEVEL", "debug")
    settings = load_config(write(tmp_path, MINIMAL + "port = 5080\n[sip]\nlisten_port = 5070\n"))
    assert settings.pbx.port == 5099
    assert settings.pbx.domain == "127.0.0.1:5099"
    assert settings.sip.listen_port == 6000
    assert settings.log.level == "DEBUG"
    assert settings.pbx.username == "201"  # file values not overridden stay


def test_env_overrides_recording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCDAEMON_RECORDING__DIRECTORY", "/srv/recordings")
    monkeypatch.setenv("CCDAEMON_RECORDING__ENABLED", "true")
    monkeypatch.setenv("CCDAEMON_RECORDING__RETENTION_DAYS", "0")
    text = MINIMAL + '[recording]\ndirectory = "/var/rec"\nretention_days = 30\nfsync = true\n'
    recording = load_config(write(tmp_path, text)).recording
    assert recording.directory == Path("/srv/recordings")
    assert recording.enabled is True
    assert recording.retention_days == 0
    assert recording.fsync is True  # from the file, not overridden


def test_env_bad_recording_directory_names_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCDAEMON_RECORDING__DIRECTORY", "relative/dir")
    error = error_of(tmp_path, MINIMAL)
    assert error.key == "recording.directory"
    assert str(error) == "recording.directory: must be an absolute path, got 'relative/dir'"


def test_env_supplies_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCDAEMON_PBX__PASSWORD", "from-env")
    assert load_config(write(tmp_path, NO_PASSWORD)).pbx.password.get_secret_value() == "from-env"


@pytest.mark.parametrize("value", ["udp, tcp", '["udp", "tcp"]', "UDP,TCP"])
def test_env_lists_as_csv_or_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CCDAEMON_SIP__TRANSPORTS", value)
    assert load_config(write(tmp_path, MINIMAL)).sip.transports == ["udp", "tcp"]


def test_env_allowed_sources_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCDAEMON_SECURITY__ALLOWED_SOURCES", "10.0.0.0/8,192.0.2.1")
    settings = load_config(write(tmp_path, MINIMAL))
    assert [str(n) for n in settings.security.allowed_sources] == ["10.0.0.0/8", "192.0.2.1/32"]


def test_env_bad_json_list_names_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCDAEMON_SIP__TRANSPORTS", '["udp"')
    assert str(error_of(tmp_path, MINIMAL)).startswith("sip.transports: not a valid JSON list")


def test_env_bad_value_names_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCDAEMON_MEDIA__RTP_PORT_MIN", "lots")
    assert str(error_of(tmp_path, MINIMAL)).startswith("media.rtp_port_min: input should be a valid integer")


def test_env_typo_is_an_error_naming_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCDAEMON_PBX__PASWORD", "x")
    error = error_of(tmp_path, MINIMAL)
    assert str(error) == (
        "pbx.pasword: unknown key (did you mean 'password'?) (from the environment: CCDAEMON_PBX__PASWORD)"
    )


def test_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCDAEMON_PBX__HOST", "pbx.example.com")
    monkeypatch.setenv("CCDAEMON_PBX__USERNAME", "300")
    monkeypatch.setenv("CCDAEMON_PBX__PASSWORD", "p")
    settings = load_config(None)
    assert (settings.pbx.host, settings.pbx.domain, settings.pbx.username) == (
        "pbx.example.com",
        "pbx.example.com",
        "300",
    )


def test_environment_only_missing_explains_no_file() -> None:
    with pytest.raises(
        ConfigError, match=r"^pbx: section \[pbx\] required .*no configuration file was given"
    ):
        load_config(None)


def test_env_var_name() -> None:
    assert env_var_name("pbx", "password") == "CCDAEMON_PBX__PASSWORD"


def test_keyword_arguments_are_the_file_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCDAEMON_PBX__PORT", "5099")
    file_layer: dict[str, Any] = {
        "pbx": {"host": "127.0.0.1", "username": "1", "password": "p", "port": 5080}
    }
    settings = Settings(**file_layer)
    assert settings.pbx.port == 5099


# --- secrets -------------------------------------------------------------------------------------------


def test_password_file(tmp_path: Path) -> None:
    secret = write(tmp_path, "from-file\n", "pbx-password")
    settings = load_config(write(tmp_path, NO_PASSWORD + f'password_file = "{secret}"\n'))
    assert settings.pbx.password.get_secret_value() == "from-file"  # trailing newline is not the password


def test_password_file_missing_names_key(tmp_path: Path) -> None:
    error = error_of(tmp_path, NO_PASSWORD + f'password_file = "{tmp_path / "absent"}"\n')
    assert error.key == "pbx.password_file"
    assert str(error).startswith("pbx.password_file: cannot read password from")
    assert "No such file or directory" in str(error)


def test_password_file_empty(tmp_path: Path) -> None:
    secret = write(tmp_path, "\n", "pbx-password")
    assert "is empty" in str(error_of(tmp_path, NO_PASSWORD + f'password_file = "{secret}"\n'))


def test_password_and_password_file_conflict(tmp_path: Path) -> None:
    secret = write(tmp_path, "x", "pbx-password")
    error = error_of(tmp_path, MINIMAL + f'password_file = "{secret}"\n')
    assert str(error) == "pbx.password_file: set either pbx.password or pbx.password_file, not both"


def test_systemd_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "pbx-password").write_text("from-systemd")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    assert load_config(write(tmp_path, NO_PASSWORD)).pbx.password.get_secret_value() == "from-systemd"
    # An explicit password still wins over the credential.
    assert load_config(write(tmp_path, MINIMAL)).pbx.password.get_secret_value() == "hunter2-secret"


def test_credentials_directory_without_our_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert error_of(tmp_path, NO_PASSWORD).key == "pbx.password"


def test_secrets_never_shown(tmp_path: Path) -> None:
    settings = load_config(write(tmp_path, MINIMAL))
    for text in (
        repr(settings),
        str(settings),
        repr(settings.pbx),
        settings.model_dump_json(),
        dump_toml(settings),
    ):
        assert "hunter2-secret" not in text
    assert "**********" in dump_toml(settings)


def test_password_not_echoed_in_type_errors(tmp_path: Path) -> None:
    error = error_of(tmp_path, NO_PASSWORD + "password = 123456789\n")
    assert error.key == "pbx.password"
    assert "123456789" not in str(error)


# --- showing the effective configuration ---------------------------------------------------------------


def test_dump_toml_reads_back(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + '[security]\nallowed_sources = ["10.0.0.0/8"]\n[sip]\nuser_agent = "odd \\"name\\"\\u00e9"\n'
    )
    settings = load_config(write(tmp_path, text))
    dumped = dump_toml(settings)
    assert "# contact_host = (not set)" in dumped
    data = tomllib.loads(dumped)
    data["pbx"]["password"] = "hunter2-secret"
    again = Settings.model_validate(data)
    assert again.model_dump() == settings.model_dump()


# --- the shipped example and docs cover every key ------------------------------------------------------


def all_keys() -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = []
    for section, field in Settings.model_fields.items():
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        keys.extend((section, key) for key in model.model_fields)
    return keys


def test_example_config_is_valid_and_documents_every_key() -> None:
    path = ROOT / "config" / "example.toml"
    load_config(path)
    text = path.read_text(encoding="utf-8")
    sections = re.split(r"(?m)^\[(\w+)\]\s*$", text)
    by_section = dict(zip(sections[1::2], sections[2::2], strict=True))
    for section, key in all_keys():
        assert section in by_section, f"[{section}] missing from example.toml"
        assert re.search(rf"(?m)^#? ?{key} = ", by_section[section]), (
            f"{section}.{key} missing from example.toml"
        )


def test_configuration_reference_documents_every_key() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for section, key in all_keys():
        assert f"`{section}.{key}`" in text, f"{section}.{key} missing from docs/configuration.md"
        assert env_var_name(section, key) in text
