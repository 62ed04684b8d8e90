"""linphonec as a desk phone against the daemon: hold/resume and the transfer button (REFER + Replaces)."""

from __future__ import annotations

import asyncio

import pytest

from ccdaemon.telephony.call import Call
from ccdaemon.telephony.events import CallEnded, HoldChanged, TransferRequested
from tests.integration.daemon_ua import QUEUE_LINE, running_ua
from tests.peers.kamailio import Kamailio
from tests.peers.peerset import PeerSet

pytestmark = pytest.mark.peers


async def _first(call: Call, kind: type) -> object:
    while True:
        event = await call.next_event(timeout=15)
        if isinstance(event, kind):
            return event
        if isinstance(event, CallEnded):
            raise AssertionError(f"call ended while waiting for {kind.__name__}: {event}")


async def test_linphone_caller_holds_and_resumes(kamailio: Kamailio, peers: PeerSet) -> None:
    phone = peers.linphone("300")
    async with running_ua(kamailio) as (_ua, calls):
        placing = asyncio.ensure_future(
            asyncio.to_thread(phone.call, kamailio.uri(QUEUE_LINE), wait_connected=True)
        )
        call = await calls.next_call()
        await asyncio.wait_for(call.answer(), 10)
        await placing
        await asyncio.to_thread(phone.hold)
        held = await _first(call, HoldChanged)
        assert isinstance(held, HoldChanged) and held.remote_hold
        await asyncio.to_thread(phone.resume)
        resumed = await _first(call, HoldChanged)
        assert isinstance(resumed, HoldChanged) and not resumed.remote_hold
        await asyncio.to_thread(phone.terminate)
        await asyncio.wait_for(call.wait_ended(), 10)


async def test_desk_phone_transfer_button_reaches_the_daemon(kamailio: Kamailio, peers: PeerSet) -> None:
    # the agent (linphonec) talks to the daemon, calls the supervisor, and presses "transfer":
    # a REFER with Replaces arrives in the daemon's dialog and is understood
    agent = peers.linphone("201")
    peers.baresip("900", answermode="auto")
    async with running_ua(kamailio) as (ua, _):
        call = await ua.dial("201", ring_timeout=15)
        call.accept_transfers = True
        first = await asyncio.to_thread(agent.wait_incoming)
        await asyncio.to_thread(agent.answer, first)
        await asyncio.wait_for(call.answered.wait(), 10)
        await asyncio.to_thread(agent.hold)
        second = await asyncio.to_thread(agent.call, kamailio.uri("900"), wait_connected=True)
        await asyncio.to_thread(agent.transfer, second, call_id=first)
        requested = await _first(call, TransferRequested)
        assert isinstance(requested, TransferRequested)
        assert requested.replaces is not None  # attended transfer: the dialog agent <-> supervisor
        assert str(requested.refer_to.uri).startswith("sip:900@")
        call.notify_transfer(603)  # nobody acts on it yet (issue 4): tell the phone it failed
        await call.hangup()
