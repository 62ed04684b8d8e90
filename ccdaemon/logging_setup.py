"""Log lines to stderr (journald under systemd): text or JSON, UTC timestamps with milliseconds.

Records go through a queue to a writer thread, so a slow stderr reader never stalls the event loop.
Secrets are redacted before a record leaves the calling thread, whatever the formatter.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import re
import sys
import traceback
from datetime import UTC, datetime
from typing import Final, Literal, TextIO

__all__ = [
    "JsonFormatter",
    "RedactFilter",
    "TextFormatter",
    "redact",
    "set_level",
    "setup_logging",
    "shutdown_logging",
]

REDACTED: Final = "<redacted>"
_SECRETS: Final = (
    # Digest credentials in SIP messages (the response is a password hash: brute-forceable).
    # Everything up to the end of the line goes: the parameters follow the scheme name.
    re.compile(r"(?i)\b((?:proxy-)?authorization[ \t]*[=:][ \t]*)[^\r\n]+"),
    # password=..., password: ..., "password": "..." in any line someone decided to log.
    re.compile(r"(?i)\b(pass(?:word|wd)?[\"']?[ \t]*[=:][ \t]*)(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"),
)
_SECRET_NAME: Final = re.compile(r"(?i)pass|authoriz|secret|token")
# Attributes every LogRecord has; anything else was passed via extra= and belongs in the JSON object.
_STANDARD: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def redact(text: str) -> str:
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


class RedactFilter(logging.Filter):
    """Renders message and traceback now, with secrets removed; later handlers see only the result."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        record.exc_info = None  # the text above is what gets logged; drop frames (and their locals)
        for key in vars(record).keys() - _STANDARD:
            if _SECRET_NAME.search(key):
                setattr(record, key, REDACTED)
        return True


def _utc(record: logging.LogRecord) -> str:
    stamp = datetime.fromtimestamp(record.created, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


class TextFormatter(logging.Formatter):
    """``2024-05-01T09:30:00.123Z INFO ccdaemon.daemon: message``"""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_utc(record)} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, ``exc``, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": _utc(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            entry["exc"] = record.exc_text
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        return json.dumps(entry, default=str, ensure_ascii=False)


class _QueueHandler(logging.handlers.QueueHandler):
    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # RedactFilter already rendered the message; the stock prepare() would fold the traceback into
        # the message text, which the JSON formatter keeps apart.
        return record


_listener: logging.handlers.QueueListener | None = None
_handler: logging.Handler | None = None


def setup_logging(
    level: str = "INFO", fmt: Literal["text", "json"] = "text", stream: TextIO | None = None
) -> logging.handlers.QueueListener:
    """Route all logging to ``stream`` (stderr) via a writer thread; call again to reconfigure."""
    global _listener, _handler  # noqa: PLW0603 -- one logging setup per process, replaced when called again
    shutdown_logging()
    writer = logging.StreamHandler(stream if stream is not None else sys.stderr)
    writer.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = _QueueHandler(records)
    handler.addFilter(RedactFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    _handler = handler
    _listener = logging.handlers.QueueListener(records, writer)
    _listener.start()
    return _listener


def set_level(level: str) -> None:
    logging.getLogger().setLevel(level)


def shutdown_logging() -> None:
    """Flush queued records and stop the writer thread (call before the process exits)."""
    global _listener, _handler  # noqa: PLW0603
    if _handler is not None:
        logging.getLogger().removeHandler(_handler)
        _handler = None
    if _listener is not None:
        _listener.stop()
        _listener = None
