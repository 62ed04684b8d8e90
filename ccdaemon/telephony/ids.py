"""Identifiers for the SIP core: the only place that draws random numbers.

The sans-I/O core takes these as arguments so tests can use deterministic ids.
"""

from __future__ import annotations

import secrets

BRANCH_COOKIE = "z9hG4bK"  # RFC 3261 §8.1.1.7 magic cookie


class IdFactory:
    """Unpredictable Call-IDs, tags, branches and cnonces (never repeating across restarts)."""

    def __init__(self, host: str = "ccdaemon") -> None:
        self._host = host

    def call_id(self) -> str:
        return f"{secrets.token_hex(12)}@{self._host}"

    def tag(self) -> str:
        return secrets.token_hex(6)

    def branch(self) -> str:
        return BRANCH_COOKIE + secrets.token_hex(10)

    def cnonce(self) -> str:
        return secrets.token_hex(8)

    def ssrc(self) -> int:
        return secrets.randbits(32)

    def session_id(self) -> int:
        return secrets.randbelow(2**31 - 1) + 1
