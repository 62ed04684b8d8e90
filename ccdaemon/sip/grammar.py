"""Lexical helpers shared by the header parsers (RFC 3261 §25).

SIP allows linear white space around most separators and commas or semicolons inside quoted
strings and angle brackets, so splitting must be quote- and bracket-aware.
"""

from __future__ import annotations

import re

from .errors import ParseError

TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_DIGITS_RE = re.compile(r"[0-9]+\Z")
_WSP_RUN_RE = re.compile(r"[ \t]+")
WSP = " \t"


def excerpt(text: str, limit: int = 80) -> str:
    """``repr`` of at most ``limit`` characters: error messages quote peer input, boundedly."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def is_token(text: str) -> bool:
    return bool(_TOKEN_RE.match(text))


def is_digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts '²' or '٣', which ``int`` rejects or misreads."""
    return bool(_DIGITS_RE.match(text))


def parse_uint(text: str, what: str, *, maximum: int) -> int:
    """Parse a non-negative decimal at most ``maximum``; raises ParseError naming ``what``.

    Leading zeros are allowed ("0068"); the length is bounded before ``int`` runs so a hostile
    100,000-digit value costs nothing (and never hits Python's int-from-str digit limit).
    """
    text = text.strip(WSP)
    significant = text.lstrip("0")
    if not is_digits(text) or len(significant) > len(str(maximum)) or int(significant or "0") > maximum:
        raise ParseError(f"malformed {what} {text[:40]!r}")
    return int(significant or "0")


def split_wsp(text: str) -> list[str]:
    """Split at runs of SP/HT only (``str.split()`` would also split at Unicode spaces)."""
    return [part for part in _WSP_RUN_RE.split(text) if part]


def split_outside_quotes(text: str, separator: str) -> list[str]:
    """Split ``text`` on ``separator`` where it is not inside a quoted string or ``<...>``.

    Raises ParseError for an unterminated quoted string or unbalanced angle brackets.
    """
    parts: list[str] = []
    current: list[str] = []
    in_quotes = False
    depth = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if in_quotes:
            current.append(ch)
            if ch == "\\" and i + 1 < len(text):
                current.append(text[i + 1])
                i += 1
            elif ch == '"':
                in_quotes = False
        elif ch == '"':
            in_quotes = True
            current.append(ch)
        elif ch == "<":
            depth += 1
            current.append(ch)
        elif ch == ">":
            depth -= 1
            if depth < 0:
                raise ParseError(f"unbalanced '>' in {excerpt(text)}")
            current.append(ch)
        elif ch == separator and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    if in_quotes:
        raise ParseError(f"unterminated quoted string in {excerpt(text)}")
    if depth:
        raise ParseError(f"unbalanced '<' in {excerpt(text)}")
    parts.append("".join(current))
    return parts


def unquote(text: str) -> str:
    """Return the content of a quoted string with its backslash escapes resolved."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise ParseError(f"not a quoted string: {excerpt(text)}")
    out: list[str] = []
    i = 1
    end = len(text) - 1
    while i < end:
        ch = text[i]
        if ch == "\\":
            if i + 1 >= end:
                raise ParseError(f"dangling escape in {excerpt(text)}")
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            raise ParseError(f"unescaped quote inside {excerpt(text)}")
        out.append(ch)
        i += 1
    return "".join(out)


_NEEDS_ESCAPE_RE = re.compile(r'[\\"\x00-\x08\x0b\x0c\x0e-\x1f\x7f]')


def quote(text: str) -> str:
    """Quote ``text`` as a SIP quoted-string (RFC 3261 §25.1).

    Backslash, quote and control characters become quoted-pairs (a raw control character would
    be refused by our own parser); CR and LF cannot be quoted at all and become spaces.
    """
    text = text.replace("\r", " ").replace("\n", " ")
    return '"' + _NEEDS_ESCAPE_RE.sub(lambda m: "\\" + m.group(), text) + '"'


def parse_params(text: str) -> tuple[tuple[str, str | None], ...]:
    """Parse ``;name=value;flag`` (the leading ';' optional) into ordered (name, value) pairs.

    Names are lower-cased (parameter names are case-insensitive); quoted values keep their
    quotes so the serializer can reproduce them.
    """
    params: list[tuple[str, str | None]] = []
    original = text
    text = text.strip(WSP)
    if not text:
        return ()
    if text.startswith(";"):
        text = text[1:]
    for raw in split_outside_quotes(text, ";"):
        item = raw.strip(WSP)
        if not item:
            raise ParseError(f"empty parameter in {original[:80]!r}")
        name, sep, value = item.partition("=")
        name = name.strip(WSP)
        if not is_token(name):
            raise ParseError(f"bad parameter name {excerpt(name)}")
        if not sep:
            params.append((name.lower(), None))
            continue
        value = value.strip(WSP)
        if value.startswith('"'):
            unquote(value)  # validates
        elif not value or not _is_param_value(value):
            raise ParseError(f"bad value for parameter {excerpt(name)}: {excerpt(value)}")
        params.append((name.lower(), value))
    return tuple(params)


_PARAM_VALUE_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~\[\]:]+\Z")


def _is_param_value(value: str) -> bool:
    # token, or an IPv6 reference (received=[::1]) which tokens cannot express
    return bool(_PARAM_VALUE_RE.match(value))


def format_params(params: tuple[tuple[str, str | None], ...]) -> str:
    return "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params)


def param_value(params: tuple[tuple[str, str | None], ...], name: str) -> str | None:
    """The value of parameter ``name`` (unquoted), '' for a flag, None when absent."""
    for key, value in params:
        if key == name:
            if value is None:
                return ""
            return unquote(value) if value.startswith('"') else value
        continue
    return None


def has_param(params: tuple[tuple[str, str | None], ...], name: str) -> bool:
    return any(key == name for key, _ in params)


def with_param(
    params: tuple[tuple[str, str | None], ...], name: str, value: str | None
) -> tuple[tuple[str, str | None], ...]:
    """Return ``params`` with ``name`` set: the first occurrence replaced in place, or appended."""
    out: list[tuple[str, str | None]] = []
    replaced = False
    for key, old in params:
        if key == name:
            if not replaced:
                out.append((name, value))
                replaced = True
            continue
        out.append((key, old))
    if not replaced:
        out.append((name, value))
    return tuple(out)


def without_param(
    params: tuple[tuple[str, str | None], ...], name: str
) -> tuple[tuple[str, str | None], ...]:
    return tuple((k, v) for k, v in params if k != name)
