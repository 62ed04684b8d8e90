"""Protocol corners exercised by sipp through kamailio: auth challenges, TCP, CANCEL, outbound legs."""

from __future__ import annotations

import asyncio

import pytest

from ccdaemon.app.answering import AnsweringFlow
from ccdaemon.telephony.events import CallState, EndReason
from tests.integration.daemon_ua import QUEUE_LINE, running_ua
from tests.peers.kamailio import Kamailio
from tests.peers.peerset import PeerSet
from tests.peers.sipp import run_sipp_async

pytestmark = pytest.mark.peers


async def test_sipp_callers_with_proxy_auth_are_answered(kamailio: Kamailio, peers: PeerSet) -> None:
    flow = AnsweringFlow()
    async with running_ua(kamailio, flow) as (ua, _):
        result = await run_sipp_async(
            "uac_invite_auth.xml",
            kamailio.address,
            workdir=peers.tmp_path,
            service=QUEUE_LINE,
            calls=20,
            rate=20,
            auth=("300", kamailio.users["300"]),
            keys={"caller": "300"},
            duration_ms=200,
        )
        assert result.ok, result.describe()
        assert result.stats.successful_calls == 20
        assert flow.answered == 20
        await _until(lambda: not ua.calls)


async def test_sipp_over_tcp_reaches_daemon_over_tcp(kamailio: Kamailio, peers: PeerSet) -> None:
    flow = AnsweringFlow()
    async with running_ua(kamailio, flow, pbx_transport="tcp") as (ua, _):
        contacts = kamailio.registered_contacts(QUEUE_LINE)
        assert contacts and contacts[0].endswith(";transport=tcp")
        result = await run_sipp_async(
            "uac_invite_auth.xml",
            kamailio.address,
            workdir=peers.tmp_path,
            service=QUEUE_LINE,
            calls=5,
            rate=5,
            transport="t1",
            auth=("301", kamailio.users["301"]),
            keys={"caller": "301"},
            duration_ms=200,
        )
        assert result.ok, result.describe()
        assert flow.answered == 5
        assert ua.transports._connections  # the calls came over a TCP connection


async def test_sipp_cancel_while_ringing(kamailio: Kamailio, peers: PeerSet) -> None:
    flow = AnsweringFlow(ring_seconds=10)
    async with running_ua(kamailio, flow) as (ua, _):
        result = await run_sipp_async(
            "uac_invite_cancel.xml",
            kamailio.address,
            workdir=peers.tmp_path,
            service=QUEUE_LINE,
            calls=3,
            rate=3,
            auth=("302", kamailio.users["302"]),
            keys={"caller": "302"},
            duration_ms=500,
        )
        assert result.ok, result.describe()
        await _until(lambda: flow.abandoned == 3)
        assert flow.answered == 0
        assert not ua.calls


async def test_outbound_call_to_sipp_agent(kamailio: Kamailio, peers: PeerSet) -> None:
    uas = peers.sipp_uas("uas_answer.xml")
    peers.register_with_sipp("202", uas.port)
    async with running_ua(kamailio) as (ua, _):
        call = await ua.dial("202", ring_timeout=10)
        await asyncio.wait_for(call.answered.wait(), 10)
        assert call.state is CallState.ESTABLISHED
        assert call.media is not None and call.media.remote_port > 0
        await call.hangup()
        assert call.end is not None and call.end.reason is EndReason.LOCAL_HANGUP
        uas.wait_calls(1)


async def _until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_in_dialog_refer_and_bye_answer_digest_challenges(kamailio: Kamailio, peers: PeerSet) -> None:
    # the far end challenges REFER and BYE (401, no qop: the RFC 2069 form) and verifies our digests
    uas = peers.sipp_uas(
        "uas_challenge_in_dialog.xml", keys={"authuser": QUEUE_LINE, "authpass": kamailio.users[QUEUE_LINE]}
    )
    peers.register_with_sipp("202", uas.port)
    async with running_ua(kamailio) as (ua, _):
        call = await ua.dial("202", ring_timeout=10)
        await asyncio.wait_for(call.answered.wait(), 10)
        await asyncio.wait_for(call.refer("sip:900@127.0.0.1"), 10)
        await call.hangup()
        stats = await asyncio.to_thread(uas.wait_calls, 1)
        assert stats.failed_calls == 0
