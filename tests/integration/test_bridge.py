"""A caller bridged to an agent through the daemon, recorded in stereo (issue 3, item 10)."""

from __future__ import annotations

import array
import asyncio
import wave
from pathlib import Path

import pytest

from ccdaemon.media.bridge import Bridge
from ccdaemon.media.recorder import RecordingService
from tests.integration.daemon_ua import QUEUE_LINE, running_ua
from tests.peers.audio import goertzel_power, rms, tone_present, write_tone
from tests.peers.kamailio import Kamailio
from tests.peers.peerset import PeerSet

pytestmark = pytest.mark.peers


def dominant(samples: array.array[int], frequency: float) -> float:
    """Share of the signal's power at ``frequency`` (about 1 for a clean tone)."""
    power = rms(samples) ** 2
    return 2 * goertzel_power(samples, 8000, frequency) / power if power else 0.0


def channels(path: Path) -> tuple[array.array[int], array.array[int]]:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        data = array.array("h", wav.readframes(wav.getnframes()))
    return data[0::2], data[1::2]


async def test_caller_and_agent_hear_each_other_and_the_recording_has_both(
    kamailio: Kamailio, peers: PeerSet, tmp_path: Path
) -> None:
    agent_tone = write_tone(tmp_path / "agent-1000hz.wav", 1000.0, 120.0)
    agent = peers.baresip("201", answermode="auto", audio_source=agent_tone, record=True)
    caller = peers.baresip("300")  # its microphone: 440 Hz
    service = RecordingService(tmp_path / "recordings")
    async with running_ua(kamailio) as (ua, calls):
        caller.dial(kamailio.uri(QUEUE_LINE))
        inbound = await calls.next_call()
        await asyncio.wait_for(inbound.answer(), 10)
        outbound = await ua.dial("201", ring_timeout=10)
        await asyncio.wait_for(outbound.answered.wait(), 10)
        recording = service.open_recording(inbound.call_id)
        bridge = Bridge(inbound, outbound, recorder=recording)
        bridge.start()
        await asyncio.sleep(4.0)
        bridge.stop()
        recording.close_recording()
        await recording.wait_closed()
        await outbound.hangup()
        caller.hangup()
        await asyncio.wait_for(inbound.wait_ended(), 10)
    await service.aclose()

    left, right = channels(recording.path)
    assert len(left) >= 3 * 8000  # about 4 s of audio
    steady = slice(8000, len(left) - 4000)  # skip set-up and the end
    assert dominant(left[steady], 440) > 0.8 and dominant(left[steady], 1000) < 0.05  # left = caller
    assert dominant(right[steady], 1000) > 0.8 and dominant(right[steady], 440) < 0.05  # right = agent
    heard_by_agent = [f for f in agent.recorded_files() if "dec" in f.name]
    assert heard_by_agent and tone_present(heard_by_agent[0], 440.0)  # the agent heard the caller
