"""Cutting a TCP/TLS byte stream into SIP messages (RFC 3261 §18.3, RFC 5626 §4.4.1).

On a stream, Content-Length is the only frame boundary, so it is mandatory and a bad one cannot
be recovered from: the framer reports the error and marks itself ``broken``, and the transport
closes the connection.  A message that frames correctly but does not parse is reported and the
stream goes on.  Sans-I/O: bytes in, messages and errors out; the transport writes the pong.
"""

from __future__ import annotations

from .errors import MessageTooLarge, ParseError
from .message import (
    DEFAULT_LIMITS,
    Limits,
    SipMessage,
    content_length_of_head,
    find_head_end,
    parse_message,
)


class StreamError(ParseError):
    """A :class:`ParseError` from a stream, with the bytes it concerns.

    ``data`` is the whole framed message (or, for a framing error, the head received so far), so
    the transport can answer with :func:`ccdaemon.sip.validate.error_response_for_unparsable`.
    ``fatal`` says the stream lost its framing: the connection must be closed.  ``cause`` is the
    original error (``MessageTooLarge`` keeps its ``status_hint`` 513 here as well).
    """

    def __init__(self, cause: ParseError, data: bytes, *, fatal: bool) -> None:
        super().__init__(str(cause), status_hint=cause.status_hint)
        self.cause = cause
        self.data = data
        self.fatal = fatal


class StreamFramer:
    """Feed it what a stream delivers; it returns each complete message or error, in order.

    Between messages CRLFs are keep-alives and skipped; a double CRLF is an RFC 5626 ping, after
    which :attr:`pong_needed` is true until the next :meth:`feed` (answer with one CRLF).  At most
    ``limits.max_message`` bytes stay buffered between calls; an oversize head or message, or a
    missing, malformed or conflicting Content-Length, is fatal.
    """

    def __init__(self, *, limits: Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._buffer = bytearray()
        self._scan_from = 0  # where the search for the end of the head resumes
        self._frame: tuple[int, int] | None = None  # (body start, body length) once the head is known
        self._crlf_run = 0  # CRLFs seen in a row between messages
        self._pong = False
        self.broken = False

    @property
    def pong_needed(self) -> bool:
        """True when the last :meth:`feed` received a keep-alive ping (CRLF CRLF)."""
        return self._pong

    @property
    def buffered(self) -> int:
        """Bytes held back, waiting for the rest of a message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[SipMessage | ParseError]:
        """Consume ``data``; return the messages and errors it completed (empty once broken)."""
        self._pong = False
        if self.broken:
            return []
        self._buffer += data
        out: list[SipMessage | ParseError] = []
        while not self.broken:
            item = self._next()
            if item is None:
                break
            out.append(item)
        return out

    def _next(self) -> SipMessage | ParseError | None:
        if self._frame is None:
            self._skip_keepalives()
            if not self._buffer:
                return None
            found = find_head_end(self._buffer, self._scan_from)
            if found is None:
                if len(self._buffer) > self._limits.max_message:
                    limit = self._limits.max_message
                    return self._fail(MessageTooLarge(f"no end of head within {limit} bytes"))
                self._scan_from = max(0, len(self._buffer) - 3)  # a terminator may straddle reads
                return None
            head_end, body_start = found
            try:
                length = content_length_of_head(bytes(self._buffer[:head_end]), self._limits)
            except ParseError as exc:
                return self._fail(exc, body_start)
            if length is None:
                return self._fail(ParseError("missing Content-Length on a stream transport"), body_start)
            size = body_start + length
            if size > self._limits.max_message:
                too_large = MessageTooLarge(f"message of {size} bytes exceeds {self._limits.max_message}")
                return self._fail(too_large, body_start)
            self._frame = (body_start, length)
        body_start, length = self._frame
        total = body_start + length
        if len(self._buffer) < total:
            return None
        raw = bytes(self._buffer[:total])
        del self._buffer[:total]
        self._frame = None
        self._scan_from = 0
        try:
            return parse_message(raw, limits=self._limits, datagram=False)
        except ParseError as exc:
            return StreamError(exc, raw, fatal=False)  # framing held: the stream goes on

    def _skip_keepalives(self) -> None:
        # count first, delete once: deleting 2 bytes at a time from the front of a large
        # buffer of CRLFs would be quadratic
        buf = self._buffer
        i = 0
        while i < len(buf):
            if buf[i : i + 2] == b"\r\n":
                i += 2
                self._crlf_run += 1
                if self._crlf_run == 2:
                    self._pong = True  # RFC 5626 ping; a lone CRLF (a pong, or padding) is not
                    self._crlf_run = 0
            elif buf[i : i + 1] == b"\n":
                i += 1  # lenient senders' bare LF
            elif buf[i:] == b"\r":
                break  # half a CRLF: wait for the rest
            else:
                self._crlf_run = 0  # a message starts
                break
        if i:
            del buf[:i]
            self._scan_from = 0

    def _fail(self, error: ParseError, head_len: int | None = None) -> StreamError:
        data = bytes(self._buffer[: head_len if head_len is not None else self._limits.max_message])
        self.broken = True
        self._buffer.clear()
        return StreamError(error, data, fatal=True)


__all__ = ["StreamError", "StreamFramer"]
