"""RFC 4733 DTMF from sipp: play_dtmf (payload type 96, own SSRC, no marker) and the shipped PT 101 pcaps."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ccdaemon.telephony.call import Call
from ccdaemon.telephony.events import DtmfReceived
from tests.integration.test_protocol import direct_ua, ua_address
from tests.peers.sipp import run_sipp_async

pytestmark = pytest.mark.peers


@pytest.mark.parametrize(
    ("scenario", "payload_type", "expected"),
    [("uac_dtmf.xml", 96, "1123#"), ("uac_dtmf_pcap.xml", 101, "123#")],
)
async def test_sipp_dtmf_arrives_exactly(
    scenario: str, payload_type: int, expected: str, tmp_path: Path
) -> None:
    digits: list[str] = []
    answered: asyncio.Queue[Call] = asyncio.Queue()

    async def answer_and_listen(call: Call) -> None:
        await call.answer()
        await answered.put(call)
        while True:
            event = await call.next_event()
            if isinstance(event, DtmfReceived):
                digits.append(event.digit)

    async with direct_ua(answer_and_listen) as ua:
        result = await run_sipp_async(
            scenario,
            ua_address(ua),
            workdir=tmp_path,
            service="100",
            calls=1,
            keys={"digits": "1123#"},
            timeout_s=20,
        )
        assert result.ok, result.describe()
        call = await asyncio.wait_for(answered.get(), 1)
        assert call.media is not None and call.media.dtmf_payload_type == payload_type
    assert "".join(digits) == expected
