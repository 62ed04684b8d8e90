"""RTCP with a real peer: baresip (libre) reports on its port + 1, the daemon answers with SRs it can use.

Proof that our SR reached baresip and parsed there: its report block about our stream carries the LSR of one
of our SRs (otherwise no round trip can be computed, see RtcpReporter.round_trip).
"""

from __future__ import annotations

import asyncio

import pytest

from ccdaemon.media.player import Player
from tests.integration.daemon_ua import QUEUE_LINE, running_ua
from tests.peers.kamailio import Kamailio
from tests.peers.peerset import PeerSet

pytestmark = pytest.mark.peers

# Our first report is due 1.0-3.1 s after the call starts, the next 2.1-6.2 s later (5 s minimum,
# randomised); libre reports every few seconds as well. 12 s leaves room for one late round on each side.
DEADLINE = 12.0


async def test_rtcp_reports_flow_both_ways_with_baresip(kamailio: Kamailio, peers: PeerSet) -> None:
    caller = peers.baresip("300")
    async with running_ua(kamailio) as (_ua, calls):
        caller.dial(kamailio.uri(QUEUE_LINE))
        call = await calls.next_call()
        await asyncio.wait_for(call.answer(), 10)
        await caller.wait_for_event_async("CALL_ESTABLISHED")
        call.play(Player([bytes(320 * 50)], loop=True).next_frame)  # we send RTP: our reports are SRs
        rtcp = call.rtcp_session
        assert rtcp is not None
        assert rtcp.local_address[1] == call.rtp.port + 1

        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while loop.time() < deadline:
            view = rtcp.peer_reception
            if view is not None and view.round_trip is not None:
                break
            await asyncio.sleep(0.1)
        stats = rtcp.stats
        assert stats.sr_received + stats.rr_received >= 1, f"no report from baresip: {stats}"
        assert stats.sr_sent >= 1, f"no SR sent: {stats}"
        view = rtcp.peer_reception
        assert view is not None, f"baresip never reported on our stream: {stats}"
        assert view.round_trip is not None and 0 <= view.round_trip < 0.5  # loopback
        assert view.fraction_lost == 0.0 and view.cumulative_lost <= 0
        assert view.highest_sequence > 0
        assert stats.malformed == 0 and stats.wrong_source == 0
        assert rtcp.reporter.peer_cname  # baresip's SDES CNAME

        caller.hangup()
        await asyncio.wait_for(call.wait_ended(), 10)
        assert rtcp.closed and stats.bye_sent == 1  # the final report carried our BYE
