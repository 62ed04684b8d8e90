"""Audio through a real call: the daemon plays to a baresip caller, hears its tone and its RFC 4733 DTMF."""

from __future__ import annotations

import array
import asyncio
import math

import pytest

from ccdaemon.media.player import Player
from ccdaemon.telephony.events import DtmfReceived
from tests.integration.daemon_ua import QUEUE_LINE, running_ua
from tests.peers.audio import goertzel_power, rms, tone_present
from tests.peers.kamailio import Kamailio
from tests.peers.peerset import PeerSet

pytestmark = pytest.mark.peers


def tone_pcm(frequency: float, seconds: float, amplitude: float = 0.3) -> bytes:
    samples = array.array(
        "h",
        (
            int(amplitude * 32767 * math.sin(2 * math.pi * frequency * n / 8000))
            for n in range(int(seconds * 8000))
        ),
    )
    return samples.tobytes()


async def test_daemon_plays_to_caller_hears_its_tone_and_dtmf(kamailio: Kamailio, peers: PeerSet) -> None:
    caller = peers.baresip("300", record=True)  # its microphone: 440 Hz
    async with running_ua(kamailio) as (_ua, calls):
        caller.dial(kamailio.uri(QUEUE_LINE))
        call = await calls.next_call()
        await asyncio.wait_for(call.answer(), 10)
        await caller.wait_for_event_async("CALL_ESTABLISHED")
        call.play(Player([tone_pcm(1000, 1.0)], loop=True).next_frame)  # music on hold, in effect
        await asyncio.sleep(1.0)

        heard = array.array("h")
        for _ in range(50):  # what the caller says, as the mixer would pull it every 20 ms
            frame = call.pull_frame()
            if frame is not None:
                heard.frombytes(frame)
            await asyncio.sleep(0.02)
        assert len(heard) >= 160 * 25
        assert 2 * goertzel_power(heard, 8000, 440) / rms(heard) ** 2 > 0.5  # the caller's 440 Hz

        caller.send_dtmf("1123#")
        digits: list[str] = []
        while len(digits) < 5:
            event = await call.next_event(timeout=10)
            if isinstance(event, DtmfReceived):
                assert event.via == "rfc4733"
                digits.append(event.digit)
        assert "".join(digits) == "1123#"
        caller.hangup()
        await asyncio.wait_for(call.wait_ended(), 10)
        assert call.media_session is not None and call.media_session.stats.malformed == 0

    received = [f for f in caller.recorded_files() if "dec" in f.name]
    assert received, f"no decoded-audio recording among {caller.recorded_files()}"
    assert tone_present(received[0], 1000.0)  # the caller heard the daemon's 1 kHz
