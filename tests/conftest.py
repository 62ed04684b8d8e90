"""Shared fixtures: real SIP peers on loopback (see tests/peers/ and /work/shared/HARNESS.md).

Typical integration test::

    @pytest.mark.peers
    def test_agent_answers(kamailio, peers):
        agent = peers.baresip("201", answermode="auto")       # registered with kamailio
        caller = peers.baresip("300")
        caller.dial(kamailio.uri("201"))
        agent.wait_for_event("CALL_ESTABLISHED")

Every peer is stopped by PID when the test ends (phones before the PBX). When a test fails, the tail of
every peer log it produced is added to the report. A missing peer binary skips the test, or fails it
when the environment variable ``CI`` is set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers import Baresip, Kamailio, Linphone, Mosquitto, PeerSet, write_tone
from tests.peers.peerset import PEER_LOGS
from tests.peers.process import tail

PEER_LOG_TAIL_LINES = 150


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        for name, path in item.stash.get(PEER_LOGS, []):
            if path.is_file():
                report.sections.append((f"peer log: {name} [{path}]", tail(path, PEER_LOG_TAIL_LINES)))
    return report


@pytest.fixture(scope="session")
def tone_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 s of 440 Hz, 8 kHz mono: the default microphone of every phone (a call ends when it ends)."""
    return write_tone(tmp_path_factory.mktemp("audio") / "tone-440hz-120s.wav", 440.0, 120.0)


@pytest.fixture
def peers(request: pytest.FixtureRequest, tmp_path: Path, tone_wav: Path) -> Iterator[PeerSet]:
    """Factory for every kind of peer in this test; stops them all (reverse order) at teardown."""
    peer_set = PeerSet(tmp_path, request.node, tone_wav)
    try:
        yield peer_set
    finally:
        peer_set.stop_all()


@pytest.fixture
def make_kamailio(peers: PeerSet) -> Callable[..., Kamailio]:
    """``make_kamailio(users=..., require_invite_auth=..., trusted_sources=..., static_routes=...)``."""
    return peers.kamailio


@pytest.fixture
def kamailio(peers: PeerSet) -> Kamailio:
    """A started kamailio PBX with ``DEFAULT_USERS``; phones started through ``peers`` register here."""
    return peers.kamailio()


@pytest.fixture
def make_baresip(peers: PeerSet) -> Callable[..., Baresip]:
    """``make_baresip("201", answermode="manual", record=True)``: started and registered."""
    return peers.baresip


@pytest.fixture
def make_linphone(peers: PeerSet) -> Callable[..., Linphone]:
    return peers.linphone


@pytest.fixture
def mosquitto(peers: PeerSet) -> Mosquitto:
    """A started anonymous mosquitto broker on a free loopback port."""
    return peers.mosquitto()
