"""``ccdaemon`` command line: ``run`` the daemon, ``check-config``; report commands join this group later.

Exit codes: 0 success, 1 runtime failure, 78 (EX_CONFIG) bad configuration -- systemd does not restart
on 78 (``RestartPreventExitStatus=78``), so a typo is not retried forever.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import NoReturn

import click

from ccdaemon.config import EX_CONFIG, ConfigError, Settings, dump_toml, load_config, version
from ccdaemon.logging_setup import setup_logging, shutdown_logging

__all__ = ["main"]

log = logging.getLogger("ccdaemon")

_config_option = click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),  # existence is checked by load_config (exit 78)
    envvar="CCDAEMON_CONFIG",
    show_envvar=True,
    help="TOML configuration file; CCDAEMON_<SECTION>__<KEY> environment variables override it.",
)


def _load_or_exit(path: Path | None) -> Settings:
    try:
        return load_config(path)
    except ConfigError as exc:
        _config_failure(exc)


def _config_failure(exc: ConfigError) -> NoReturn:
    click.echo(f"ccdaemon: configuration error: {exc}", err=True)
    sys.exit(EX_CONFIG)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(version(), "-V", "--version", prog_name="ccdaemon", message="%(prog)s %(version)s")
def main() -> None:
    """ccdaemon: call-center daemon, a SIP back-to-back user agent registered with your PBX."""


@main.command()
@_config_option
def run(config_path: Path | None) -> None:
    """Run the daemon in the foreground (systemd: Type=notify) until SIGTERM or SIGINT.

    SIGHUP re-reads the configuration file and applies the log level; other changes need a restart.
    """
    settings = _load_or_exit(config_path)
    setup_logging(settings.log.level, settings.log.format)
    # Imported here so that `--help` and `check-config` do not load the asyncio/telephony stack.
    from ccdaemon.daemon import run as run_daemon  # noqa: PLC0415

    def reload() -> Settings:
        return load_config(config_path)

    try:
        run_daemon(settings, reload=reload if config_path is not None else None)
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        sys.exit(130)
    except ConfigError as exc:
        _config_failure(exc)
    except OSError as exc:  # e.g. the SIP port is taken: the message says it all, no traceback needed
        log.critical("cannot run: %s", exc)
        sys.exit(1)
    except Exception:
        log.critical("daemon failed", exc_info=True)
        sys.exit(1)
    finally:
        shutdown_logging()


@main.command("check-config")
@_config_option
@click.option(
    "--format",
    "output",
    type=click.Choice(["toml", "json"]),
    default="toml",
    show_default=True,
    help="How to print the effective configuration.",
)
def check_config(config_path: Path | None, output: str) -> None:
    """Validate the configuration and print the effective values (file + environment), secrets masked."""
    settings = _load_or_exit(config_path)
    if output == "json":
        click.echo(json.dumps(settings.model_dump(mode="json"), indent=2))
    else:
        click.echo(dump_toml(settings), nl=False)
    click.echo("configuration OK", err=True)


if __name__ == "__main__":
    main()
