"""Daemon configuration: a TOML file, overridden by ``CCDAEMON_<SECTION>__<KEY>`` environment variables.

Every model forbids unknown keys, so a typo is an error instead of a silently ignored setting.  All
problems surface as one :class:`ConfigError` whose message starts with the dotted key
(``media.rtp_port_min: must be below media.rtp_port_max``); the CLI turns it into exit code 78
(EX_CONFIG), which systemd's ``RestartPreventExitStatus=78`` keeps from becoming a restart loop.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import tomllib
import warnings
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.exceptions import SettingsError

__all__ = [
    "ENV_PREFIX",
    "EX_CONFIG",
    "ConfigError",
    "LogSettings",
    "MediaSettings",
    "PbxSettings",
    "RecordingSettings",
    "SecuritySettings",
    "Settings",
    "SipSettings",
    "dump_toml",
    "env_var_name",
    "is_wildcard",
    "load_config",
    "version",
]

EX_CONFIG: Final = 78  # sysexits.h: configuration error
ENV_PREFIX: Final = "CCDAEMON_"
ENV_DELIMITER: Final = "__"
CREDENTIAL_NAME: Final = "pbx-password"  # systemd LoadCredential=pbx-password:...

Transport = Literal["udp", "tcp", "tls"]
Codec = Literal["PCMU", "PCMA"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_DEFAULT_TRANSPORTS: Final[tuple[Transport, ...]] = ("udp", "tcp")
_DEFAULT_CODECS: Final[tuple[Codec, ...]] = ("PCMU", "PCMA")


def version() -> str:
    """The installed package version (``0+unknown`` when running from an uninstalled checkout)."""
    try:
        return metadata.version("ccdaemon")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class ConfigError(Exception):
    """Bad configuration: ``str(error)`` is the message for the operator, ``key`` the dotted key if known."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.key = key


def _keyed(key: str, message: str) -> PydanticCustomError:
    """An error that names ``key`` relative to the validator's model (``"[2]"`` for a list element)."""
    return PydanticCustomError("ccdaemon_config", "{message}", {"key": key, "message": message})


def _split_csv(value: object) -> object:
    # Environment variables arrive as strings; accept "udp,tcp" as well as the JSON form '["udp","tcp"]'.
    if isinstance(value, str):
        if value.lstrip().startswith("["):
            raise _keyed("", f"not a valid JSON list: {value!r}")
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _no_duplicates(values: Sequence[str]) -> None:
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            raise _keyed(f"[{index}]", f"{value!r} is listed twice")
        seen.add(value)


_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")


def _check_host(value: str) -> str:
    """An IP literal or a DNS name; no scheme, port or brackets (those have their own keys)."""
    value = value.strip()
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if len(value) > 253 or not _HOSTNAME.fullmatch(value):
        hint = " (give the port in its own key)" if ":" in value else ""
        raise ValueError(f"not an IP address or host name: {value!r}{hint}")
    return value.lower()


def is_wildcard(host: str) -> bool:
    """Whether a listen address means "every interface" (and so is no use as a Contact address)."""
    return host in ("0.0.0.0", "::")


class _Section(BaseModel):
    # Typos are errors; defaults go through the same validators as given values.
    model_config = ConfigDict(extra="forbid", validate_default=True)


class SipSettings(_Section):
    """``[sip]``: where the daemon listens and how its SIP layer behaves."""

    listen_host: str = "0.0.0.0"
    listen_port: int = Field(default=5070, ge=0, le=65535)  # 0 = any free port (tests)
    transports: list[Transport] = Field(default_factory=lambda: list(_DEFAULT_TRANSPORTS), min_length=1)
    contact_host: str | None = None  # None: listen_host, or the route's source address to the PBX
    user_agent: str = Field(default_factory=lambda: f"ccdaemon/{version()}", min_length=1)
    t1: float = Field(default=0.5, gt=0, le=10)  # RFC 3261 timer T1 (RTT estimate), seconds
    t2: float = Field(
        default=4.0, gt=0, le=64
    )  # maximum retransmit interval for non-INVITE requests, seconds
    t4: float = Field(default=5.0, gt=0, le=64)  # maximum time a message stays in the network, seconds
    max_message_bytes: int = Field(default=65_535, ge=2048, le=1_048_576)

    @field_validator("listen_host")
    @classmethod
    def _listen_ip(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            raise ValueError("must be an IP address to bind to (0.0.0.0 for all)") from None

    @field_validator("contact_host")
    @classmethod
    def _contact(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else _check_host(value)

    @field_validator("transports", mode="before")
    @classmethod
    def _transports_in(cls, value: object) -> object:
        value = _split_csv(value)
        return [v.lower() if isinstance(v, str) else v for v in value] if isinstance(value, list) else value

    @field_validator("transports")
    @classmethod
    def _transports_unique(cls, value: list[Transport]) -> list[Transport]:
        _no_duplicates(value)
        if "tls" in value:
            # the transport interface carries "tls" end to end, but no TLS socket exists yet:
            # refusing here beats a daemon that starts and silently never listens on it
            raise ValueError(
                "tls is not available yet; use udp and/or tcp (see docs/decisions/0003-transports.md)"
            )
        return value

    @model_validator(mode="after")
    def _timers(self) -> SipSettings:
        if self.t2 < self.t1:
            raise _keyed("t2", f"must not be below sip.t1 ({self.t1} s)")
        return self


# "register" is also ABCMeta.register on the class; instances read the field, so the warning is noise.
warnings.filterwarnings("ignore", message='Field name "register" in "PbxSettings"', category=UserWarning)


class PbxSettings(_Section):
    """``[pbx]``: the office PBX the daemon registers with as the queue line extension."""

    host: str
    port: int = Field(default=5060, ge=1, le=65535)
    transport: Transport = "udp"
    domain: str = ""  # "": host, plus :port unless it is the transport's default port
    username: str = Field(min_length=1)
    auth_username: str = ""  # "": same as username
    password_file: Path | None = None
    password: SecretStr = SecretStr("")  # "": read password_file or $CREDENTIALS_DIRECTORY/pbx-password
    register: bool = True
    register_expires: int = Field(default=120, ge=60, le=86_400)
    register_retry_min: float = Field(default=5.0, gt=0, le=3600)
    register_retry_max: float = Field(default=300.0, gt=0, le=86_400)
    keepalive_interval: float = Field(default=30.0, ge=0, le=3600)  # OPTIONS to the PBX; 0 = off
    outbound_proxy: str | None = None

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return _check_host(value)

    @field_validator("transport", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("username", "auth_username", "domain")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("outbound_proxy")
    @classmethod
    def _proxy(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        # A SIP URI (sip:proxy.example.com:5060;lr) is what RFC 3261 calls the outbound proxy.
        if not re.fullmatch(r"sips?:[^\s@]+", value, flags=re.IGNORECASE):
            raise ValueError(f"must be a SIP URI such as 'sip:proxy.example.com:5060;lr', got {value!r}")
        return value

    @model_validator(mode="after")
    def _derive(self) -> PbxSettings:
        if self.register_retry_min > self.register_retry_max:
            raise _keyed("register_retry_min", "must not be above pbx.register_retry_max")
        if not self.auth_username:
            self.auth_username = self.username
        if not self.domain:
            default_port = 5061 if self.transport == "tls" else 5060
            host = f"[{self.host}]" if ":" in self.host else self.host
            self.domain = host if self.port == default_port else f"{host}:{self.port}"
        self.password = SecretStr(self._resolve_password())
        return self

    def _resolve_password(self) -> str:
        direct = self.password.get_secret_value()
        if direct and self.password_file is not None:
            raise _keyed("password_file", "set either pbx.password or pbx.password_file, not both")
        if direct:
            return direct
        if self.password_file is not None:
            return _read_secret(self.password_file, "password_file")
        credentials = os.environ.get("CREDENTIALS_DIRECTORY")
        if credentials and (Path(credentials) / CREDENTIAL_NAME).exists():
            return _read_secret(Path(credentials) / CREDENTIAL_NAME, "password")
        raise _keyed(
            "password",
            f"field required (set it in the file or {env_var_name('pbx', 'password')}); alternatives: "
            f"pbx.password_file, or the systemd credential {CREDENTIAL_NAME!r} (LoadCredential=)",
        )


def _read_secret(path: Path, key: str) -> str:
    try:
        # Files written by `echo` end in a newline that is not part of the password.
        secret = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise _keyed(key, f"cannot read password from {str(path)!r}: {reason}") from None
    if not secret:
        raise _keyed(key, f"password file {str(path)!r} is empty")
    return secret


class SecuritySettings(_Section):
    """``[security]``: who may talk to the daemon and how much state one peer may hold."""

    allowed_sources: list[Network] = Field(default_factory=list)  # besides the PBX
    unknown_source_policy: Literal["reject", "drop"] = "reject"  # 403 or silence
    max_transactions_per_peer: int = Field(default=500, ge=1, le=100_000)
    max_calls: int = Field(default=500, ge=1, le=100_000)

    @field_validator("unknown_source_policy", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("allowed_sources", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        value = _split_csv(value)
        if not isinstance(value, list):
            return value
        networks: list[object] = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                networks.append(item)  # let pydantic report the type
                continue
            try:
                # strict: "10.0.0.1/24" is more likely a mistake than a way to write 10.0.0.0/24
                networks.append(ipaddress.ip_network(item.strip(), strict=True))
            except ValueError as exc:
                hint = ""
                if "host bits set" in str(exc):
                    hint = f" (did you mean {ipaddress.ip_network(item.strip(), strict=False)}?)"
                raise _keyed(f"[{index}]", f"not an IP address or network: {item!r}{hint}") from None
        return networks


class MediaSettings(_Section):
    """``[media]``: RTP ports and codecs."""

    rtp_port_min: int = Field(default=20_000, ge=1024, le=65_534)
    rtp_port_max: int = Field(default=30_000, ge=1024, le=65_534)
    codecs: list[Codec] = Field(default_factory=lambda: list(_DEFAULT_CODECS), min_length=1)
    ptime: int = Field(default=20, ge=10, le=60)
    symmetric_rtp: bool = True
    overload_lateness_ms: int = Field(default=20, ge=0, le=1000)

    @field_validator("rtp_port_min", "rtp_port_max")
    @classmethod
    def _even(cls, value: int) -> int:
        # RTP takes the even port, RTCP the odd one above it (RFC 3550 §11).
        if value % 2:
            raise ValueError("must be even (RTP uses even ports)")
        return value

    @field_validator("codecs", mode="before")
    @classmethod
    def _codecs_in(cls, value: object) -> object:
        value = _split_csv(value)
        return [v.upper() if isinstance(v, str) else v for v in value] if isinstance(value, list) else value

    @field_validator("codecs")
    @classmethod
    def _codecs_unique(cls, value: list[Codec]) -> list[Codec]:
        _no_duplicates(value)
        return value

    @field_validator("ptime")
    @classmethod
    def _ptime(cls, value: int) -> int:
        if value % 10:
            raise ValueError("must be a multiple of 10 ms")
        return value

    @model_validator(mode="after")
    def _range(self) -> MediaSettings:
        if self.rtp_port_min >= self.rtp_port_max:
            raise _keyed("rtp_port_min", "must be below media.rtp_port_max")
        return self


class RecordingSettings(_Section):
    """``[recording]``: stereo WAV files of bridged calls (left = caller, right = the agent side)."""

    # Off by default: in many countries callers must be told before they are recorded, and the IVR
    # announcement does not exist yet. Turning it on is a decision for the operator, not a default.
    enabled: bool = False
    directory: Path = Path("/var/lib/ccdaemon/recordings")  # systemd StateDirectory= + "recordings"
    retention_days: int = Field(default=90, ge=0, le=36_500)  # 0 = keep forever
    flush_interval: float = Field(default=0.5, ge=0.1, le=10)  # seconds; the most audio a kill can lose
    fsync: bool = False
    max_buffered_seconds: float = Field(default=30.0, ge=1, le=600)  # per call, while the disk lags

    @field_validator("directory")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if "\x00" in str(value):
            raise ValueError("must not contain a NUL character")
        if not value.is_absolute():
            # under systemd the working directory is /, so a relative path would not mean what it seems
            raise ValueError(f"must be an absolute path, got {str(value)!r}")
        return value

    @model_validator(mode="after")
    def _buffer(self) -> RecordingSettings:
        # the writer empties the buffer every flush_interval; a buffer that small drops audio at every hiccup
        if self.max_buffered_seconds < 2 * self.flush_interval:
            raise _keyed(
                "max_buffered_seconds",
                f"must be at least twice recording.flush_interval ({self.flush_interval} s)",
            )
        return self


class LogSettings(_Section):
    """``[log]``: verbosity and line format on stderr (journald)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class _EnvSource(EnvSettingsSource):
    """Environment source that hands undecodable values to the validators instead of failing.

    The stock source raises a ``SettingsError`` naming only the section when a list is not JSON;
    passing the raw string on lets ``"udp,tcp"`` work and lets a real mistake be reported by key.
    """

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            return value


class Settings(BaseSettings):
    """The whole configuration.  Keyword arguments (and ``model_validate`` data) are the file layer;
    ``CCDAEMON_*`` environment variables win over them.  The daemon uses :func:`load_config`.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        extra="forbid",
        validate_default=True,
    )

    sip: SipSettings = Field(default_factory=SipSettings)
    pbx: PbxSettings
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    recording: RecordingSettings = Field(default_factory=RecordingSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment above the file (passed in as init kwargs); no .env files, no secrets dir magic.
        return (_EnvSource(settings_cls), init_settings)

    @model_validator(mode="after")
    def _cross_section(self) -> Settings:
        if self.pbx.transport not in self.sip.transports:
            raise _keyed(
                "pbx.transport",
                f"{self.pbx.transport!r} is not enabled in sip.transports {self.sip.transports}",
            )
        return self


# ---------------------------------------------------------------------------------------------------------
# Loading and error reporting


def env_var_name(*loc: str) -> str:
    """``env_var_name("pbx", "password")`` -> ``CCDAEMON_PBX__PASSWORD``."""
    return ENV_PREFIX + ENV_DELIMITER.join(part.upper() for part in loc)


def load_config(path: Path | None) -> Settings:
    """Read ``path`` (TOML; ``None`` = environment only), apply the environment, validate.

    Raises :class:`ConfigError` with one message naming the offending key.
    """
    data = _read_toml(path) if path is not None else {}
    _check_sections(data, path)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise _to_config_error(exc, data, path) from None
    except SettingsError as exc:  # a source failed before validation; rare with _EnvSource
        raise ConfigError(f"environment: {exc}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    # pydantic-settings silently ignores a missing file; an operator must hear about it.
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration file: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        # The message already ends in "(at line N, column M)".
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None


def _check_sections(data: Mapping[str, Any], path: Path | None) -> None:
    # Checked here and not by pydantic: top-level keys become BaseSettings init kwargs, where names
    # like "_env_file" have a special meaning.
    for key, value in data.items():
        if key not in Settings.model_fields:
            raise ConfigError(f"{key}: unknown section or key{_suggest(key, Settings.model_fields)}", key)
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: must be a [{key}] table, not a single value", key)


def _suggest(name: str, candidates: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _format_loc(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int) or (isinstance(part, str) and part.startswith("[")):
            out += f"[{part}]" if isinstance(part, int) else part
        elif part:
            out += f".{part}" if out else part
    return out


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class that holds the last element of ``loc`` (for "did you mean" and required fields)."""
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _in_file(data: Mapping[str, Any], loc: Sequence[str | int]) -> bool:
    node: Any = data
    for part in loc:
        found = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        )
        if not found:
            return False
        node = node[part]
    return True


def _to_config_error(exc: ValidationError, data: Mapping[str, Any], path: Path | None) -> ConfigError:
    error = exc.errors()[0]  # the first problem, stated precisely; fixing it reveals the next
    loc: list[str | int] = list(error["loc"])
    ctx = error.get("ctx") or {}
    if error["type"] == "ccdaemon_config" and ctx.get("key"):
        loc.extend(str(ctx["key"]).split("."))
    key = _format_loc(loc)
    kind = error["type"]
    str_loc = [str(p) for p in loc if isinstance(p, str)]

    if kind == "ccdaemon_config":
        message = str(ctx["message"])
    elif kind == "missing":
        model = _model_at(loc)
        field = model.model_fields.get(str(loc[-1])) if model is not None else None
        annotation = field.annotation if field is not None else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            needed = [name for name, f in annotation.model_fields.items() if f.is_required()]
            if annotation is PbxSettings:
                needed.append("password")
            message = f"section [{key}] required (with at least {', '.join(needed[:-1])} and {needed[-1]})"
        else:
            message = f"field required (set it in the file or {env_var_name(*str_loc)})"
        if path is None:
            message += "; no configuration file was given (--config), only the environment was read"
    elif kind == "extra_forbidden":
        model = _model_at(loc)
        hint = _suggest(str(loc[-1]), model.model_fields) if model is not None else ""
        origin = "" if _in_file(data, loc) else f" (from the environment: {env_var_name(*str_loc)})"
        message = f"unknown key{hint}{origin}"
    else:
        message = error["msg"].removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
        value = error.get("input")
        secret = any("password" in str(p) for p in loc)
        if not secret and isinstance(value, (str, int, float, bool)) and repr(value) not in message:
            message += f" (got {value!r})"
    return ConfigError(f"{key}: {message}" if key else message, key or None)


# ---------------------------------------------------------------------------------------------------------
# Showing the effective configuration


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def dump_toml(settings: Settings) -> str:
    """The effective configuration as TOML, secrets masked; unset optional keys appear as comments."""
    lines: list[str] = []
    for section, values in settings.model_dump(mode="json").items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if value is None:
                lines.append(f"# {key} = (not set)")
            else:
                lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)
