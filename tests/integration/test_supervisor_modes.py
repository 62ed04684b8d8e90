"""A supervisor monitors, whispers to the agent, barges in and leaves one bridged call (issue 3, item 8);
a warm transfer to the supervisor keeps one continuous recording (item 7).

Three baresip phones, each with its own tone as microphone: the caller 440 Hz, the agent 1000 Hz, the
supervisor 2500 Hz (no harmonic or intermodulation product of the other two lies near it). The daemon
bridges caller and agent, dials the supervisor and switches modes every ``PHASE`` seconds on one call:
monitor -> whisper -> barge -> detached. Each phone records what it hears; the test cuts those recordings
(and the daemon's own stereo recording) into half-second windows, labels each window by whether the
supervisor's tone is in it, and checks the order of the labelled stretches against the modes.
"""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest

from ccdaemon.media.bridge import Bridge
from ccdaemon.media.player import Player
from ccdaemon.media.recorder import RecordingService
from tests.integration.daemon_ua import QUEUE_LINE, running_ua
from tests.peers.audio import read_wav, tone_samples, write_tone
from tests.peers.baresip import Baresip
from tests.peers.kamailio import Kamailio
from tests.peers.peerset import PeerSet

pytestmark = pytest.mark.peers

CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ = 440.0, 1000.0, 2500.0
MUSIC_HZ = 700.0  # hold music in the transfer test
PHASE = 2.5  # seconds per mode
WINDOW = 0.5  # seconds per analysed window
PRESENT, ABSENT = 0.1, 0.02  # share of a window's power at a tone: above = heard, below = not heard


def share(window: np.ndarray, rate: int, frequency: float) -> float:
    """Share of the window's power at ``frequency`` (one DFT bin, as Goertzel; about 1 for a pure tone)."""
    x = window.astype(np.float64) / 32768
    power = float(np.mean(x * x))
    if power < 1e-6:  # about -60 dBFS: nothing heard
        return 0.0
    n = np.arange(len(x))
    bin_ = np.dot(x, np.exp(-2j * np.pi * frequency * n / rate)) / len(x)
    return float(2 * abs(bin_) ** 2 / power)


def windows(samples: np.ndarray, rate: int) -> list[np.ndarray]:
    size = round(WINDOW * rate)
    return [samples[i : i + size] for i in range(0, len(samples) - size + 1, size)]


def audible(window: np.ndarray) -> bool:
    return float(np.sqrt(np.mean((window.astype(np.float64) / 32768) ** 2))) > 0.01


def stretches(parts: list[np.ndarray], rate: int, frequency: float) -> list[bool]:
    """Whether ``frequency`` is heard, as the sequence of stretches of at least two audible windows (a
    single window, or one between the thresholds, is a mode switch falling inside it)."""
    labels: list[bool | None] = []
    for part in parts:
        if not audible(part):
            continue
        value = share(part, rate, frequency)
        labels.append(True if value >= PRESENT else False if value <= ABSENT else None)
    runs: list[tuple[bool | None, int]] = []
    for label in labels:
        if runs and runs[-1][0] == label:
            runs[-1] = (label, runs[-1][1] + 1)
        else:
            runs.append((label, 1))
    result: list[bool] = []
    for label, count in runs:
        if label is not None and count >= 2 and (not result or result[-1] != label):
            result.append(label)
    return result


def heard(phone: Baresip) -> tuple[np.ndarray, int]:
    """What ``phone`` heard: its sndfile ``dec`` recording (one file: no re-INVITE in this call)."""
    files = [f for f in phone.recorded_files() if "dec" in f.name]
    assert len(files) == 1, files
    samples, rate = read_wav(files[0])
    return np.frombuffer(samples.tobytes(), np.int16), rate


def stereo(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        data = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    return data[0::2], data[1::2]


def tone_everywhere(parts: list[np.ndarray], rate: int, frequency: float, *, skip: int = 1) -> bool:
    """``frequency`` is heard in every audible window (but the first ``skip`` ones: call set-up)."""
    values = [share(p, rate, frequency) for p in parts if audible(p)][skip:]
    return bool(values) and min(values) >= PRESENT


def three_phones(peers: PeerSet, tmp_path: Path) -> tuple[Baresip, Baresip, Baresip]:
    """Caller (440 Hz), agent 201 (1000 Hz) and supervisor 202 (2500 Hz), each recording what it hears."""
    agent = peers.baresip(
        "201",
        answermode="auto",
        audio_source=write_tone(tmp_path / "agent.wav", AGENT_HZ, 120.0),
        record=True,
    )
    supervisor = peers.baresip(
        "202",
        answermode="auto",
        audio_source=write_tone(tmp_path / "supervisor.wav", SUPERVISOR_HZ, 120.0),
        record=True,
    )
    caller = peers.baresip("300", record=True)  # its microphone: the default 440 Hz
    return caller, agent, supervisor


async def test_monitor_whisper_barge_and_detach_on_one_call(
    kamailio: Kamailio, peers: PeerSet, tmp_path: Path
) -> None:
    caller, agent, supervisor = three_phones(peers, tmp_path)
    service = RecordingService(tmp_path / "recordings")
    async with running_ua(kamailio) as (ua, calls):
        caller.dial(kamailio.uri(QUEUE_LINE))
        inbound = await calls.next_call()
        await asyncio.wait_for(inbound.answer(), 10)
        agent_leg = await ua.dial("201", ring_timeout=10)
        supervisor_leg = await ua.dial("202", ring_timeout=10)
        await asyncio.wait_for(agent_leg.answered.wait(), 10)
        await asyncio.wait_for(supervisor_leg.answered.wait(), 10)
        recording = service.open_recording(inbound.call_id)
        bridge = Bridge(inbound, agent_leg, recorder=recording)
        bridge.start()
        bridge.attach(supervisor_leg, "monitor")
        await asyncio.sleep(PHASE)
        bridge.set_mode("whisper")
        await asyncio.sleep(PHASE)
        bridge.set_mode("barge")
        await asyncio.sleep(PHASE)
        assert bridge.detach() is supervisor_leg
        await asyncio.sleep(PHASE)
        bridge.stop()
        recording.close_recording()
        await recording.wait_closed()
        await supervisor_leg.hangup()
        await agent_leg.hangup()
        caller.hangup()
        await asyncio.wait_for(inbound.wait_ended(), 10)
    await service.aclose()

    # The caller hears the supervisor only while barging; the agent while whispered to and barging.
    samples, rate = heard(caller)
    parts = windows(samples, rate)
    assert stretches(parts, rate, SUPERVISOR_HZ) == [False, True, False]
    assert tone_everywhere(parts, rate, AGENT_HZ)
    samples, rate = heard(agent)
    parts = windows(samples, rate)
    assert stretches(parts, rate, SUPERVISOR_HZ) == [False, True, False]
    assert tone_everywhere(parts, rate, CALLER_HZ)
    # ... for two phases (whisper + barge) and one phase (barge): about 2 x 5 and 5 windows
    agent_hears_supervisor = sum(share(p, rate, SUPERVISOR_HZ) >= PRESENT for p in parts if audible(p))
    assert abs(agent_hears_supervisor - 2 * PHASE / WINDOW) <= 2
    samples, rate = heard(caller)
    caller_hears_supervisor = sum(
        share(p, rate, SUPERVISOR_HZ) >= PRESENT for p in windows(samples, rate) if audible(p)
    )
    assert abs(caller_hears_supervisor - PHASE / WINDOW) <= 2

    # The supervisor hears caller and agent in every mode (it hears nothing once detached).
    samples, rate = heard(supervisor)
    parts = [p for p in windows(samples, rate) if audible(p)][1:]
    both = [p for p in parts if share(p, rate, CALLER_HZ) >= PRESENT and share(p, rate, AGENT_HZ) >= PRESENT]
    assert len(both) >= 3 * PHASE / WINDOW - 2
    assert all(share(p, rate, SUPERVISOR_HZ) <= ABSENT for p in parts)  # nobody sends it its own voice

    # The recording: left the caller only; right the agent, plus the supervisor only while barging.
    left, right = stereo(recording.path)
    assert len(left) >= 4 * PHASE * 8000 * 0.9
    assert tone_everywhere(windows(left, 8000), 8000, CALLER_HZ)
    assert stretches(windows(left, 8000), 8000, SUPERVISOR_HZ) == [False]
    assert stretches(windows(left, 8000), 8000, AGENT_HZ) == [False]
    assert tone_everywhere(windows(right, 8000), 8000, AGENT_HZ)
    assert stretches(windows(right, 8000), 8000, SUPERVISOR_HZ) == [False, True, False]
    recorded_barge = sum(share(p, 8000, SUPERVISOR_HZ) >= PRESENT for p in windows(right, 8000))
    assert abs(recorded_barge - PHASE / WINDOW) <= 2


async def test_warm_transfer_to_the_supervisor_keeps_one_recording(
    kamailio: Kamailio, peers: PeerSet, tmp_path: Path
) -> None:
    """Talk, then the caller on hold with music while agent and supervisor consult, then the supervisor
    takes the call: the caller hears agent, music, supervisor; the recording runs on without a gap."""
    caller, agent, supervisor = three_phones(peers, tmp_path)
    music = Player([tone_samples([MUSIC_HZ], 1.0).tobytes()], loop=True)
    service = RecordingService(tmp_path / "recordings")
    async with running_ua(kamailio) as (ua, calls):
        caller.dial(kamailio.uri(QUEUE_LINE))
        inbound = await calls.next_call()
        await asyncio.wait_for(inbound.answer(), 10)
        agent_leg = await ua.dial("201", ring_timeout=10)
        await asyncio.wait_for(agent_leg.answered.wait(), 10)
        recording = service.open_recording(inbound.call_id)
        bridge = Bridge(inbound, agent_leg, recorder=recording)
        bridge.start()
        await asyncio.sleep(PHASE)
        bridge.hold_caller(music.next_frame)
        supervisor_leg = await ua.dial("202", ring_timeout=10)  # while the caller waits: part of the hold
        await asyncio.wait_for(supervisor_leg.answered.wait(), 10)
        bridge.attach(supervisor_leg, "barge")  # consultation: agent and supervisor hear each other
        await asyncio.sleep(PHASE)
        assert bridge.replace_agent(supervisor_leg) is agent_leg
        bridge.resume_caller()
        await agent_leg.hangup()  # the agent goes to wrap-up
        await asyncio.sleep(PHASE)
        bridge.stop()
        recording.close_recording()
        await recording.wait_closed()
        await supervisor_leg.hangup()
        caller.hangup()
        await asyncio.wait_for(inbound.wait_ended(), 10)
    await service.aclose()

    samples, rate = heard(caller)
    parts = windows(samples, rate)
    assert stretches(parts, rate, AGENT_HZ) == [True, False]
    assert stretches(parts, rate, MUSIC_HZ) == [False, True, False]
    assert stretches(parts, rate, SUPERVISOR_HZ) == [False, True]
    samples, rate = heard(agent)
    parts = windows(samples, rate)
    assert stretches(parts, rate, CALLER_HZ) == [True, False]  # not the caller on hold
    assert stretches(parts, rate, SUPERVISOR_HZ) == [False, True]  # the consultation
    samples, rate = heard(supervisor)
    parts = windows(samples, rate)
    assert stretches(parts, rate, AGENT_HZ) == [True, False]
    assert stretches(parts, rate, CALLER_HZ) == [False, True]

    left, right = stereo(recording.path)
    parts_left, parts_right = windows(left, 8000), windows(right, 8000)
    # one recording, no gap: talk + hold (with the supervisor's set-up) + talk, the caller on the left
    # throughout (silent on hold only if its phone is; baresip keeps sending its tone)
    assert len(left) >= 3 * PHASE * 8000 * 0.9
    assert tone_everywhere(parts_left, 8000, CALLER_HZ)
    # right: the agent, then silence (consultation and music are not recorded), then the supervisor
    assert stretches(parts_right, 8000, AGENT_HZ) == [True, False]
    assert stretches(parts_right, 8000, SUPERVISOR_HZ) == [False, True]
    assert all(share(p, 8000, MUSIC_HZ) <= ABSENT for p in parts_right)
    silent = [not audible(p) for p in parts_right]
    assert sum(silent) >= PHASE / WINDOW - 1
    first, last = silent.index(True), len(silent) - 1 - silent[::-1].index(True)
    assert all(silent[first : last + 1])  # one silent stretch: the hold
