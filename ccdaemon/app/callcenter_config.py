"""What the call-center flow needs to run, independent of where it came from (TOML or a test).

``ccdaemon.config`` builds it from the daemon's settings (``build_callcenter_config``); tests build it
directly. Everything here is a frozen value; the pure cores' own config types are reused as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..acd.announce import AnnouncementConfig
from ..acd.ivr import IvrConfig
from ..acd.model import AcdConfig

__all__ = ["AgentLine", "CallCenterConfig", "FeatureCodes", "QueueMedia"]


@dataclass(frozen=True, slots=True)
class AgentLine:
    """An agent of the ACD and the desk phone the daemon rings for them (through the PBX)."""

    agent_id: str
    target: str  # an extension ("201") dialled at the PBX, or a full SIP URI
    name: str = ""
    logged_in_at_start: bool = True  # until agents log in by feature code, the office can start them in


@dataclass(frozen=True, slots=True)
class FeatureCodes:
    """DTMF codes an agent keys on the desk phone (during a call, or calling the queue line)."""

    escalate: str = "*2"  # warm transfer to the supervisor
    login: str = "*11"
    logout: str = "*12"
    pause: str = "*13"  # optionally followed by a reason digit
    resume: str = "*14"
    end_wrap_up: str = "*15"


@dataclass(frozen=True, slots=True)
class QueueMedia:
    """What a waiting caller hears in one queue: music, and announcements by this policy."""

    music: str = "moh"  # a prompt id (looped) or an absolute path to a WAV file
    announcements: AnnouncementConfig = field(default_factory=AnnouncementConfig)
    language: str = "ja"


@dataclass(frozen=True, slots=True)
class CallCenterConfig:
    acd: AcdConfig
    ivr: IvrConfig
    agents: Mapping[str, AgentLine]
    queue_media: Mapping[str, QueueMedia] = field(default_factory=dict)  # by queue name; default if absent
    prompt_directories: tuple[Path, ...] = (Path("/etc/ccdaemon/prompts"), Path("/opt/ccdaemon/prompts"))
    language: str = "ja"  # prompts' language unless the IVR or a queue says otherwise
    supervisor: str | None = None  # extension or SIP URI for escalations
    feature_codes: FeatureCodes = field(default_factory=FeatureCodes)
    record: bool = True  # record bridged calls (when the daemon has a recordings service)
