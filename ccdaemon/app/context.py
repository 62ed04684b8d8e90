"""What the daemon hands to call flows: the process-wide services a flow may use."""

from __future__ import annotations

from dataclasses import dataclass

from ..media.recorder import RecordingService

__all__ = ["AppContext"]


@dataclass(frozen=True, slots=True)
class AppContext:
    """Built once by the daemon before telephony starts; shared by every call.

    ``recordings`` is None when ``recording.enabled`` is false: a flow checks it instead of the config.
    """

    recordings: RecordingService | None = None
