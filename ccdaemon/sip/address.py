"""Where a message came from or goes to: host, port and transport."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A transport address.  ``transport`` is ``udp``, ``tcp`` or ``tls`` (lower case)."""

    host: str
    port: int
    transport: str = "udp"

    @property
    def reliable(self) -> bool:
        """Stream transports retransmit for us, so the SIP timers that resend are not armed."""
        return self.transport != "udp"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"
