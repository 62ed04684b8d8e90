"""Tests of ccdaemon.logging_setup: redaction, UTC millisecond timestamps, text and JSON lines."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from ccdaemon.logging_setup import redact, setup_logging, shutdown_logging

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        (
            'REGISTER sip:pbx SIP/2.0\r\nAuthorization: Digest username="201", response="6629fae4"\r\n',
            "6629fae4",
        ),
        ('sent Proxy-Authorization: Digest response="6629fae4", nonce="n"', "6629fae4"),
        ("password=hunter2 user=bob", "hunter2"),
        ("pbx password: 'hunter 2'", "hunter 2"),
        ('{"password": "hunter2", "x": 1}', "hunter2"),
        ("passwd=hunter2&user=x", "hunter2"),
    ],
)
def test_redact_removes_secrets(text: str, leak: str) -> None:
    assert leak not in redact(text)
    assert "<redacted>" in redact(text)


def test_redact_keeps_ordinary_text() -> None:
    line = 'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nWWW-Authenticate: Digest realm="pbx"'
    assert redact(line) == line


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    yield stream
    shutdown_logging()


def test_text_lines(captured: io.StringIO) -> None:
    setup_logging("INFO", "text", captured)
    log = logging.getLogger("ccdaemon.test")
    log.debug("not shown")
    log.info("user %s password=%s", "201", "hunter2")
    try:
        raise ValueError("password=inside-traceback")
    except ValueError:
        log.exception("failed")
    shutdown_logging()
    lines = captured.getvalue().splitlines()
    assert re.fullmatch(rf"{STAMP} INFO ccdaemon\.test: user 201 password=<redacted>", lines[0])
    assert re.fullmatch(rf"{STAMP} ERROR ccdaemon\.test: failed", lines[1])
    assert "Traceback" in captured.getvalue()
    assert "hunter2" not in captured.getvalue()
    assert "inside-traceback" not in captured.getvalue()


def test_json_lines(captured: io.StringIO) -> None:
    setup_logging("DEBUG", "json", captured)
    log = logging.getLogger("ccdaemon.test")
    log.debug("call %s", "abc", extra={"call_id": "abc", "password": "hunter2"})
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        log.exception("boom")
    shutdown_logging()
    first, second = (json.loads(line) for line in captured.getvalue().splitlines())
    assert re.fullmatch(STAMP, first["time"])
    assert first["level"] == "DEBUG" and first["logger"] == "ccdaemon.test" and first["message"] == "call abc"
    assert first["call_id"] == "abc"
    assert first["password"] == "<redacted>"
    assert second["message"] == "boom" and "ZeroDivisionError" in second["exc"]


def test_setup_twice_replaces_the_handler(captured: io.StringIO) -> None:
    root = logging.getLogger()
    before = len(root.handlers)
    setup_logging("INFO", "text", captured)
    setup_logging("INFO", "text", captured)
    assert len(root.handlers) == before + 1
    shutdown_logging()
    assert len(root.handlers) == before
