"""Errors of the sans-I/O SIP core.

Local errors are mistakes of the code using the core (the transaction user); remote errors are
caused by what a peer sent.  A remote error carries the status code the peer should get back, so
the boundary can turn it into an automatic reply instead of letting it escape.
"""

from __future__ import annotations


class SipError(Exception):
    """Base class of every error raised by ``ccdaemon.sip``."""


class LocalProtocolError(SipError):
    """The transaction user asked for something the protocol does not allow."""


class RemoteProtocolError(SipError):
    """A peer sent something malformed or out of place.

    ``status_hint`` is the response a request deserves (400 malformed, 481 no transaction or
    dialog, 482 loop, 500 stale CSeq, ...); responses that fail get dropped instead.
    """

    def __init__(self, message: str, *, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class ParseError(RemoteProtocolError):
    """Bytes that are not a well-formed SIP message (or a header value that is not well-formed)."""


class MessageTooLarge(ParseError):
    """A message or header over the configured size limits."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status_hint=513)
