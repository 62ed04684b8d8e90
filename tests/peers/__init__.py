"""Real SIP peers for integration tests: kamailio (the office PBX), baresip and linphonec (phones),
sipp (load and scripted SIP), mosquitto (MQTT broker), plus test audio helpers.

Everything binds 127.0.0.1 on ports from ``ports.free_port``; every process is started by a fixture
and stopped by PID when the test ends. Fixtures are in ``tests/conftest.py``.
"""

from .audio import read_wav, tone_present, write_silence, write_tone
from .baresip import Baresip, BaresipEvent
from .kamailio import DEFAULT_USERS, Kamailio
from .linphone import Linphone
from .mosquitto import Mosquitto
from .peerset import PeerSet
from .ports import LOOPBACK, free_port
from .process import PeerError, in_ci, require_binary
from .sipp import SippResult, SippStats, SippUas, run_sipp, run_sipp_async, scenario_path, start_sipp_uas

__all__ = [
    "DEFAULT_USERS",
    "LOOPBACK",
    "Baresip",
    "BaresipEvent",
    "Kamailio",
    "Linphone",
    "Mosquitto",
    "PeerError",
    "PeerSet",
    "SippResult",
    "SippStats",
    "SippUas",
    "free_port",
    "in_ci",
    "read_wav",
    "require_binary",
    "run_sipp",
    "run_sipp_async",
    "scenario_path",
    "start_sipp_uas",
    "tone_present",
    "write_silence",
    "write_tone",
]
