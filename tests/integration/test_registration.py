"""Registration with a real kamailio: digest, refresh, PBX restart, wrong password, unregister."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from ccdaemon.sip.message import SipRequest, make_response
from ccdaemon.sip.transaction import SipTimers
from ccdaemon.telephony.registration import RegistrationState
from ccdaemon.telephony.useragent import UaConfig, UserAgent
from tests.integration.daemon_ua import QUEUE_LINE, running_ua
from tests.integration.udp_client import UdpSipClient
from tests.peers.kamailio import Kamailio

pytestmark = pytest.mark.peers


async def test_registers_refreshes_and_unregisters(kamailio: Kamailio) -> None:
    async with running_ua(kamailio, register_expires=10) as (ua, _):
        contacts = await kamailio.wait_registered_async(QUEUE_LINE)
        assert contacts == [f"sip:{QUEUE_LINE}@127.0.0.1:{ua.transports.udp_address[1]}"]  # type: ignore[index]
        assert ua.registration.status.expires_in == 10
        first_cseq = ua.registration._cseq
        # refreshed at half the granted time: still registered after the first expiry would hit
        await asyncio.sleep(6)
        assert ua.registration._cseq > first_cseq
        assert ua.registration.state is RegistrationState.REGISTERED
        assert kamailio.registered_contacts(QUEUE_LINE)
    assert kamailio.registered_contacts(QUEUE_LINE) == []  # unregistered on stop


async def test_reregisters_after_pbx_restart(kamailio: Kamailio) -> None:
    async with running_ua(kamailio, register_expires=10) as (ua, _):
        await kamailio.wait_registered_async(QUEUE_LINE)
        await kamailio.restart_async()
        assert kamailio.registered_contacts(QUEUE_LINE) == []  # kamailio forgot us
        contacts = await kamailio.wait_registered_async(QUEUE_LINE, timeout=15)
        assert contacts
        assert ua.registration.state is RegistrationState.REGISTERED


async def test_pbx_down_then_up_backs_off_and_recovers(kamailio: Kamailio) -> None:
    kamailio.stop()
    # running_ua waits for registration, so with the PBX down the UA is started by hand
    ua = started_by_hand_ua(
        pbx_host=kamailio.host,
        pbx_port=kamailio.port,
        password=kamailio.users[QUEUE_LINE],
        register_retry_min=0.5,
        register_retry_max=2.0,
        register_expires=30,
        timers=_fast_timers(),
    )
    await ua.start()
    try:
        # Timer F is 64*T1 = 3.2 s here: the first REGISTER times out, then back-off retries
        await asyncio.sleep(4.0)
        assert ua.registration.state in (RegistrationState.RETRYING, RegistrationState.REGISTERING)
        assert ua.registration.status.last_status == 408
        kamailio.start()
        await asyncio.wait_for(ua.registration.registered.wait(), 10)
        assert kamailio.registered_contacts(QUEUE_LINE)
    finally:
        await ua.stop()


async def test_wrong_password_gives_one_clear_error_and_no_loop(
    kamailio: Kamailio, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    ua = started_by_hand_ua(
        pbx_host=kamailio.host,
        pbx_port=kamailio.port,
        password="not-the-password",
        register_retry_min=0.5,
        register_retry_max=60,
    )
    await ua.start()
    try:
        await asyncio.sleep(3)
        assert ua.registration.state is RegistrationState.AUTH_FAILED
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1
        message = errors[0].getMessage()
        assert f"account sip:{QUEUE_LINE}@" in message and "rejected the credentials" in message
        assert "not-the-password" not in caplog.text  # passwords are never logged
        # one REGISTER without credentials, one with: then silence (no tight loop)
        assert ua.registration._cseq == 2
    finally:
        await ua.stop()


def started_by_hand_ua(**options: Any) -> UserAgent:
    """A UA for tests where running_ua cannot be used (it waits for a registration)."""
    return UserAgent(UaConfig(username=QUEUE_LINE, listen_host="127.0.0.1", listen_port=0, **options))


def _fast_timers() -> SipTimers:
    return SipTimers(t1=0.05, t2=0.4, t4=0.5)


async def test_keepalive_reregisters_as_soon_as_the_pbx_is_back(kamailio: Kamailio) -> None:
    # refresh only every 30 s and a long back-off: only the keepalive can bring us back quickly
    async with running_ua(
        kamailio,
        register_expires=60,
        register_retry_min=60,
        register_retry_max=120,
        keepalive_interval=0.5,
        timers=_fast_timers(),
    ) as (ua, _):
        kamailio.stop()
        await asyncio.sleep(4.5)  # keepalive OPTIONS time out (64*T1 = 3.2 s): PBX unreachable
        kamailio.start()
        assert kamailio.registered_contacts(QUEUE_LINE) == []
        started = asyncio.get_running_loop().time()
        await kamailio.wait_registered_async(QUEUE_LINE, timeout=8)
        assert asyncio.get_running_loop().time() - started < 5
        assert ua.registration.state is RegistrationState.REGISTERED


async def test_requests_go_through_the_outbound_proxy(kamailio: Kamailio) -> None:
    # the "PBX" address is a dead port; only the outbound proxy (kamailio) can carry the REGISTER
    async with running_ua(
        kamailio, pbx_port=9, domain=kamailio.domain, outbound_proxy=f"sip:127.0.0.1:{kamailio.port};lr"
    ) as (ua, _):
        assert await kamailio.wait_registered_async(QUEUE_LINE)
        assert ua.pbx_endpoint.port == kamailio.port


async def test_nonsensical_423_backs_off_instead_of_looping() -> None:
    # a registrar that demands Min-Expires: 60 although we already ask for 120
    registrar = await UdpSipClient.open()
    ua = started_by_hand_ua(
        pbx_host="127.0.0.1",
        pbx_port=registrar.port,
        password="x",
        register_expires=120,
        register_retry_min=0.5,
        register_retry_max=2.0,
        keepalive_interval=0,
    )
    await ua.start()
    registers = 0
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.5
        while loop.time() < deadline:
            try:
                message = await registrar.receive(timeout=deadline - loop.time())
            except TimeoutError:
                break
            assert isinstance(message, SipRequest) and message.method == "REGISTER"
            registers += 1
            reply = make_response(message, 423, to_tag="r")
            reply.headers.add("Min-Expires", "60")
            assert ua.transports.udp_address is not None
            registrar.send(reply.to_bytes(), ua.transports.udp_address)
        assert ua.registration.status.last_status == 423
    finally:
        await ua.stop()
        registrar.close()
    assert 1 <= registers <= 4


async def test_unreachable_tcp_pbx_fails_fast_not_after_32_s() -> None:
    from tests.peers.ports import free_port  # noqa: PLC0415 -- only this test needs a closed port

    ua = started_by_hand_ua(
        pbx_host="127.0.0.1",
        pbx_port=free_port(),
        pbx_transport="tcp",
        password="x",
        register_retry_min=30,
        register_retry_max=60,
        keepalive_interval=0,
    )
    await ua.start()
    try:
        await asyncio.sleep(1.0)  # connection refused at once: the REGISTER fails without waiting for Timer F
        assert ua.registration.state is RegistrationState.RETRYING
        assert ua.registration.status.last_status == 503
    finally:
        await ua.stop()
