"""Smoke tests of the real-peer harness itself: real peers only, no ccdaemon code.

If one of these fails, integration tests of the daemon cannot be trusted on this machine.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.peers import (
    Kamailio,
    PeerError,
    PeerSet,
    free_port,
    require_binary,
    run_sipp_async,
    tone_present,
)
from tests.peers.ports import port_is_free, released

pytestmark = pytest.mark.peers


# -- harness plumbing (no peers needed) ---------------------------------------------------------------


def test_free_port_skips_ports_bound_with_reuseaddr() -> None:
    """kamailio binds a used UDP port silently, so a port held with SO_REUSEADDR must count as used."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        assert not port_is_free(port)
    base = free_port(span=2)
    assert port_is_free(base) and port_is_free(base + 1)
    assert free_port() not in {base, base + 1}  # never handed out twice


def test_only_loopback_is_accepted() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        free_port(host="0.0.0.0")


def test_missing_binary_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-peer"):
        require_binary("no-such-peer", "no-such-package")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set and a real peer is missing"):
        require_binary("no-such-peer", "no-such-package")


# -- kamailio + baresip -------------------------------------------------------------------------------


def test_two_baresips_call_through_kamailio(kamailio: Kamailio, peers: PeerSet) -> None:
    agent = peers.baresip("201", answermode="manual", record=True)
    caller = peers.baresip("300")
    # baresip registers a unique contact user: sip:201-0x...@127.0.0.1:SIP_PORT
    (contact,) = kamailio.registered_contacts("201")
    assert contact.startswith("sip:201-") and contact.endswith(f"@127.0.0.1:{agent.sip_port}")

    caller.dial(kamailio.uri("201"))
    ringing = agent.wait_for_event("CALL_INCOMING")
    assert ringing.peer_uri.startswith("sip:300@")
    caller.wait_for_event("CALL_RINGING")
    agent.accept()
    incoming = agent.wait_for_event("CALL_ESTABLISHED")
    outgoing = caller.wait_for_event("CALL_ESTABLISHED")
    assert incoming.direction == "incoming" and incoming.peer_uri.startswith("sip:300@")
    assert outgoing.direction == "outgoing"
    # the INVITE was challenged with 407 (proxy auth) before it was let through
    assert "SIP/2.0 407 Proxy Authentication Required" in caller.log_text()

    caller.send_dtmf("12#")
    digits = [agent.wait_for_event("CALL_DTMF_START").param for _ in range(3)]
    assert digits == ["1", "2", "#"]

    caller.hangup()
    agent.wait_for_event("CALL_CLOSED")
    caller.wait_for_event("CALL_CLOSED")
    heard = [f for f in agent.recorded_files() if f.name.endswith("-dec.wav")]
    assert heard and tone_present(heard[0], 440.0), "the agent should have heard the caller's 440 Hz tone"


def test_unregistered_callee_gets_404_and_busy_callee_486(kamailio: Kamailio, peers: PeerSet) -> None:
    busy = peers.sipp_uas("uas_busy.xml", service="202")
    peers.register_with_sipp("202", busy.port)
    caller = peers.baresip("300")

    caller.dial(kamailio.uri("203"))  # configured user, never registered
    closed = caller.wait_for_event("CALL_CLOSED")
    assert "404" in closed.param

    caller.dial(kamailio.uri("202"))
    closed = caller.wait_for_event("CALL_CLOSED")
    assert "486" in closed.param


def test_cancel_while_ringing(kamailio: Kamailio, peers: PeerSet) -> None:
    agent = peers.baresip("201", answermode="manual")
    result = peers.run_sipp(
        "uac_invite_cancel.xml", service="201", auth=("300", "pw300"), keys={"caller": "300"}, duration_ms=300
    )
    result.check()
    agent.wait_for_event("CALL_INCOMING")
    agent.wait_for_event("CALL_CLOSED")


# -- sipp ---------------------------------------------------------------------------------------------


def test_sipp_register_with_digest(kamailio: Kamailio, peers: PeerSet) -> None:
    result = peers.register_with_sipp("301", contact_port=5999)
    assert result.stats.successful_calls == 1
    assert kamailio.registered_contacts("301") == ["sip:301@127.0.0.1:5999;transport=UDP"]
    assert result.stats.percentile(50, rtd=2) < 1000

    wrong = peers.run_sipp(
        "uac_register_auth.xml",
        service="302",
        auth=("302", "not-the-password"),
        keys={"contact_port": "5998", "expires": "60"},
    )
    assert not wrong.ok and wrong.stats.failed_calls == 1
    assert kamailio.registered_contacts("302") == []


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_sipp_calls_through_kamailio(kamailio: Kamailio, peers: PeerSet, transport: str) -> None:
    uas = peers.sipp_uas("uas_answer.xml", service="202")
    peers.register_with_sipp("202", uas.port)
    result = peers.run_sipp(
        "uac_invite_auth.xml",
        service="202",
        calls=20,
        rate=40,
        limit=10,
        auth=("300", "pw300"),
        keys={"caller": "300"},
        transport=transport,
        timeout_s=20,
    ).check()
    assert result.stats.successful_calls == 20
    assert result.stats.failed_calls == 0
    assert result.stats.retransmissions == 0
    assert len(result.stats.response_times_ms[2]) == 20  # INVITE(with credentials) -> 200 OK
    uas.wait_calls(20)


def test_trusted_sources_and_static_routes(make_kamailio: Callable[..., Kamailio], peers: PeerSet) -> None:
    """Load runs: a trusted sipp port skips the 407, and a static route needs no REGISTER."""
    uas = peers.sipp_uas("uas_answer.xml", service="250")
    trusted_port = free_port()
    pbx = make_kamailio(trusted_sources=[("127.0.0.1", trusted_port)], static_routes={"250": uas.contact()})
    call = {"service": "250", "keys": {"caller": "300"}}

    peers.run_sipp("uac_invite_noauth.xml", pbx, calls=5, rate=50, local_port=trusted_port, **call).check()

    challenged = peers.run_sipp("uac_invite_noauth.xml", pbx, **call)
    assert challenged.stats.failed_calls == 1
    assert challenged.message_log is not None
    assert "SIP/2.0 407 Proxy Authentication Required" in challenged.message_log.read_text()

    later_port = free_port()
    pbx.trust("127.0.0.1", later_port)  # at runtime, over kamailio's RPC
    peers.run_sipp("uac_invite_noauth.xml", pbx, local_port=later_port, **call).check()
    uas.wait_calls(6)


def test_pbx_without_invite_auth(make_kamailio: Callable[..., Kamailio], peers: PeerSet) -> None:
    uas = peers.sipp_uas("uas_answer.xml", service="250")
    pbx = make_kamailio(require_invite_auth=False, static_routes={"250": uas.contact()})
    result = peers.run_sipp(
        "uac_invite_noauth.xml", pbx, service="250", calls=3, rate=30, keys={"caller": "999"}
    )
    assert result.check().stats.successful_calls == 3
    # REGISTER is still challenged
    assert not peers.run_sipp(
        "uac_register_auth.xml",
        pbx,
        service="201",
        auth=("201", "wrong"),
        keys={"contact_port": "5999", "expires": "60"},
    ).ok


def test_no_answer_times_out_with_408(make_kamailio: Callable[..., Kamailio], peers: PeerSet) -> None:
    pbx = make_kamailio(fr_inv_timer_ms=1000)
    ringing = peers.sipp_uas("uas_ring_no_answer.xml", service="202")
    peers.register_with_sipp("202", ringing.port)
    caller = peers.baresip("300")

    caller.dial(pbx.uri("202"))
    caller.wait_for_event("CALL_RINGING")
    closed = caller.wait_for_event("CALL_CLOSED", timeout=5)
    assert "408" in closed.param
    ringing.wait_calls(1)  # kamailio CANCELled the ringing branch: CANCEL, 200, 487, ACK


def test_kamailio_restart_drops_registrations(kamailio: Kamailio, peers: PeerSet) -> None:
    phone = peers.baresip("201")
    assert kamailio.registered_contacts("201")
    old_pid, port = kamailio.pid, kamailio.port

    kamailio.restart()

    assert kamailio.pid != old_pid and kamailio.port == port
    assert kamailio.registered_contacts("201") == []
    assert phone.running()


def test_phone_stops_promptly_when_the_pbx_is_gone(kamailio: Kamailio, peers: PeerSet) -> None:
    """baresip un-registers on SIGTERM and would wait ~30 s for a dead registrar; stop() forces it."""
    phone = peers.baresip("201")
    kamailio.stop()
    started = time.monotonic()
    phone.stop()
    assert not phone.running()
    assert time.monotonic() - started < 4.0


def test_stop_releases_every_port(tmp_path: Path) -> None:
    with PeerSet(tmp_path, None) as local:
        pbx = local.kamailio()
        pid = pbx.pid
        assert pid is not None
    assert not pbx.running()
    assert released(pbx.host, pbx.port) and released(pbx.host, pbx.ctl_port, udp=False)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# -- linphone -----------------------------------------------------------------------------------------


def test_linphone_registers_calls_baresip_and_holds(kamailio: Kamailio, peers: PeerSet) -> None:
    agent = peers.baresip("201", answermode="auto")
    supervisor = peers.linphone("900")
    assert kamailio.registered_contacts("900") == [f"sip:900@127.0.0.1:{supervisor.sip_port};transport=udp"]

    supervisor.call(kamailio.uri("201"), wait_connected=True)
    agent.wait_for_event("CALL_ESTABLISHED")

    supervisor.hold()
    agent.wait_for_event("CALL_REMOTE_SDP", predicate=lambda e: e.param == "offer")
    assert "a=sendonly" in agent.log_text()
    supervisor.resume()
    agent.wait_for_event("CALL_REMOTE_SDP", predicate=lambda e: e.param == "offer")

    supervisor.terminate()
    agent.wait_for_event("CALL_CLOSED")


def test_linphone_attended_transfer_sends_refer_with_replaces(kamailio: Kamailio, peers: PeerSet) -> None:
    """linphonec is the harness's only peer that sends REFER with Replaces (attended transfer)."""
    caller = peers.baresip("300", call_transfer=False)  # refuses the REFER instead of dialling port 5060
    peers.baresip("900")
    agent = peers.linphone("201")

    first = agent.call(kamailio.uri("300"), wait_connected=True)
    agent.hold()
    second = agent.call(kamailio.uri("900"), wait_connected=True)
    agent.transfer(second, call_id=first)

    refer_to = caller.wait_for_log(r"Refer-To: <sip:900@127\.0\.0\.1\?Replaces=[^>]+>").group(0)
    assert ":" not in refer_to.split("@", 1)[1].split("?")[0], "linphonec drops the port from Refer-To"
    assert re.search(r"REQ REFER sip:", kamailio.log_text())


async def test_async_helpers_do_not_block_the_loop(kamailio: Kamailio, peers: PeerSet) -> None:
    """Waits run in worker threads, so a daemon on the test's event loop keeps running meanwhile."""
    agent = peers.baresip("201")
    caller = peers.baresip("300")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        caller.dial(kamailio.uri("201"))
        await agent.wait_for_event_async("CALL_ESTABLISHED")
        await caller.wait_for_event_async("CALL_ESTABLISHED")
        caller.hangup()
        await agent.wait_for_event_async("CALL_CLOSED")
        await kamailio.restart_async()
        result = await run_sipp_async(
            "uac_register_auth.xml",
            kamailio.address,
            workdir=peers.tmp_path,
            service="301",
            auth=("301", "pw301"),
            keys={"contact_port": "5999", "expires": "60"},
        )
        assert result.check().stats.successful_calls == 1
        await kamailio.wait_registered_async("301")
    finally:
        task.cancel()
    assert ticks > 5


# -- mosquitto ----------------------------------------------------------------------------------------


def test_mosquitto_publish_subscribe_and_restart(peers: PeerSet) -> None:
    broker = peers.mosquitto()
    sub_bin = require_binary("mosquitto_sub", "mosquitto-clients")
    pub_bin = require_binary("mosquitto_pub", "mosquitto-clients")
    host, port = broker.address
    common = ["-h", host, "-p", str(port), "-t", "ccdaemon/test", "-q", "1"]

    broker.restart()  # same port afterwards: how tests simulate a broker outage

    # a retained message needs no subscriber race: publish first, then read it back
    subprocess.run([pub_bin, *common, "-r", "-m", "hello"], check=True, timeout=10)
    got = subprocess.run(
        [sub_bin, *common, "-C", "1", "-W", "5"], check=True, capture_output=True, text=True, timeout=10
    )
    assert got.stdout.strip() == "hello"


def test_peer_error_carries_the_log(kamailio: Kamailio) -> None:
    with pytest.raises(PeerError, match="has not registered"):
        kamailio.wait_registered("nobody", timeout=0.2)
