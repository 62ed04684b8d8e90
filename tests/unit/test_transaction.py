"""The transaction layer: the state x trigger table, timings in virtual time, matching, limits.

Every test drives a :class:`TransactionLayer` with bytes or parsed messages and a hand-advanced
``now``; nothing sleeps.  Helpers without a ``test_`` prefix are shared with
``test_transaction_lossy.py``.
"""

from __future__ import annotations

import importlib.util
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccdaemon.sip.address import Endpoint
from ccdaemon.sip.errors import LocalProtocolError
from ccdaemon.sip.message import SipMessage, SipRequest, SipResponse, make_response, parse_message
from ccdaemon.sip.transaction import (
    STATELESS_TAG_PREFIX,
    AckNotReceived,
    MessageRejected,
    RequestReceived,
    ResponseReceived,
    SipTimers,
    StrayResponse,
    TransactionLayer,
    Trigger,
    TxEvent,
    TxKey,
    TxKind,
    TxState,
    TxTerminated,
    TxTimedOut,
    TxTransportFailed,
)
from ccdaemon.sip.transaction_table import (
    CLIENT_KINDS,
    INITIAL_STATE,
    TIMER_TRIGGERS,
    TRANSITIONS,
    TU_TRIGGERS,
)

UAC = Endpoint("192.0.2.10", 5060)  # the peer that sends requests to the layer under test
UAS = Endpoint("192.0.2.20", 5060)  # the peer the layer under test sends requests to
ROOT = Path(__file__).resolve().parents[2]


# --- builders shared with the lossy tests ----------------------------------------------------


def request_bytes(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bKaaa",
    call_id: str = "call-1@192.0.2.10",
    cseq: int = 1,
    from_tag: str = "uac1",
    to_tag: str | None = None,
    via: str = "192.0.2.10:5060",
    transport: str = "UDP",
    via_params: str = "",
    ruri: str = "sip:queue@192.0.2.20",
    extra: Iterable[str] = (),
) -> bytes:
    branch_param = f";branch={branch}" if branch is not None else ""
    to = "<sip:queue@192.0.2.20>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/{transport} {via}{branch_param}{via_params}",
        "Max-Forwards: 70",
        f"From: <sip:caller@192.0.2.10>;tag={from_tag}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        *extra,
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


def request(method: str = "INVITE", **kwargs: object) -> SipRequest:
    message = parse_message(request_bytes(method, **kwargs))  # type: ignore[arg-type]
    assert isinstance(message, SipRequest)
    return message


def response(req: SipRequest, status: int, to_tag: str | None = "uas1") -> SipResponse:
    return make_response(req, status, to_tag=to_tag)


def ack_for_2xx(invite: SipRequest, ok: SipResponse, branch: str) -> SipRequest:
    """The ACK of a 2xx, as a dialog layer builds it: a new branch, To with the 2xx's tag."""
    return request(
        "ACK",
        branch=branch,
        call_id=invite.call_id,
        cseq=invite.cseq.seq,
        from_tag=invite.from_.tag or "",
        to_tag=ok.to.tag,
        via=invite.top_via.sent_by,
        transport=invite.top_via.transport,
    )


def ack_for_non_2xx(invite: SipRequest, final: SipResponse) -> SipRequest:
    return request(
        "ACK",
        branch=invite.top_via.branch,
        call_id=invite.call_id,
        cseq=invite.cseq.seq,
        from_tag=invite.from_.tag or "",
        to_tag=final.to.tag,
        via=invite.top_via.sent_by,
        transport=invite.top_via.transport,
    )


def events(layer: TransactionLayer) -> list[TxEvent]:
    out: list[TxEvent] = []
    while (event := layer.next_event()) is not None:
        out.append(event)
    return out


def sent(layer: TransactionLayer) -> list[tuple[SipMessage, Endpoint]]:
    return [(parse_message(data), dest) for data, dest in layer.datagrams_to_send()]


def statuses(items: list[tuple[SipMessage, Endpoint]]) -> list[int | str]:
    return [m.status if isinstance(m, SipResponse) else m.method for m, _ in items]


def run_until(layer: TransactionLayer, end: float) -> list[tuple[float, list[tuple[SipMessage, Endpoint]]]]:
    """Fire every timer up to ``end`` at its exact deadline; returns (time, what was sent)."""
    fired: list[tuple[float, list[tuple[SipMessage, Endpoint]]]] = []
    while (deadline := layer.get_timer()) is not None and deadline <= end:
        layer.handle_timer(now=deadline)
        fired.append((deadline, sent(layer)))
    return fired


def server_key(layer: TransactionLayer) -> TxKey:
    keys = [e.key for e in events(layer) if isinstance(e, RequestReceived) and e.key is not None]
    assert len(keys) == 1
    return keys[0]


# --- (1) the exhaustive state x trigger table -----------------------------------------------

_METHOD = {
    TxKind.INVITE_CLIENT: "INVITE",
    TxKind.NON_INVITE_CLIENT: "OPTIONS",
    TxKind.INVITE_SERVER: "INVITE",
    TxKind.NON_INVITE_SERVER: "OPTIONS",
}
_STATUS = {
    Trigger.RX_1XX: 180,
    Trigger.RX_2XX: 200,
    Trigger.RX_FINAL_ERR: 486,
    Trigger.TU_1XX: 180,
    Trigger.TU_2XX: 200,
    Trigger.TU_FINAL_ERR: 486,
}


def _paths() -> dict[tuple[TxKind, TxState], tuple[Trigger, ...]]:
    """Shortest message-only trigger sequence from the initial state to every state (BFS)."""
    paths: dict[tuple[TxKind, TxState], tuple[Trigger, ...]] = {}
    for kind, table in TRANSITIONS.items():
        queue: deque[tuple[TxState, tuple[Trigger, ...]]] = deque([(INITIAL_STATE[kind], ())])
        paths[(kind, INITIAL_STATE[kind])] = ()
        while queue:
            state, path = queue.popleft()
            for trigger, target in table[state].items():
                if trigger in TIMER_TRIGGERS or trigger is Trigger.TRANSPORT_ERROR:
                    continue
                if (kind, target) not in paths and target is not TxState.TERMINATED:
                    paths[(kind, target)] = (*path, trigger)
                    queue.append((target, (*path, trigger)))
    return paths


PATHS = _paths()


class Harness:
    """One transaction of ``kind`` over UDP, driven only through the public API."""

    def __init__(self, kind: TxKind) -> None:
        self.kind = kind
        self.layer = TransactionLayer()
        self.now = 0.0
        self.req = request(_METHOD[kind])
        self.final: SipResponse | None = None
        if kind in CLIENT_KINDS:
            self.key = self.layer.send_request(self.req, UAS, now=0.0)
        else:
            self.layer.receive_message(self.req, UAC, now=0.0)
            self.key = server_key(self.layer)
        self.flush()

    def flush(self) -> None:
        self.layer.datagrams_to_send()
        events(self.layer)

    @property
    def state(self) -> TxState:
        snap = self.layer.snapshot().get(self.key)
        return TxState.TERMINATED if snap is None else snap.state

    def stimulate(self, trigger: Trigger) -> None:
        layer, now = self.layer, self.now
        if trigger in (Trigger.RX_1XX, Trigger.RX_2XX, Trigger.RX_FINAL_ERR):
            layer.receive_message(response(self.req, _STATUS[trigger]), UAS, now=now)
        elif trigger in TU_TRIGGERS:
            self.final = response(self.req, _STATUS[trigger])
            layer.send_response(self.key, self.final, now=now)
        elif trigger is Trigger.RX_REQUEST_RETRANSMIT:
            layer.receive_message(self.req, UAC, now=now)
        elif trigger is Trigger.RX_ACK:
            final = self.final or response(self.req, 486)
            if self.state is TxState.ACCEPTED:
                ack = ack_for_2xx(self.req, final, "z9hG4bKack")
            else:
                ack = ack_for_non_2xx(self.req, final)
            layer.receive_message(ack, UAC, now=now)
        elif trigger is Trigger.TRANSPORT_ERROR:
            layer.transport_failed(self.key, now=now)
        else:  # a timer: advance to its deadline (earlier timers of the state are self-loops)
            if trigger is Trigger.TIMER_B and self.state is TxState.PROCEEDING:
                cancel = request("CANCEL", branch=self.req.top_via.branch)
                layer.send_request(cancel, UAS, now=now)  # §9.1 re-arms Timer B
            deadline = dict(layer.snapshot()[self.key].timers)[trigger]
            self.now = deadline
            layer.handle_timer(now=deadline)


LEGAL = [
    (kind, state, trigger, target)
    for kind, table in TRANSITIONS.items()
    for state, row in table.items()
    for trigger, target in row.items()
]
ILLEGAL = [
    (kind, state, trigger)
    for kind, table in TRANSITIONS.items()
    for state, row in table.items()
    if state is not TxState.TERMINATED
    for trigger in Trigger
    if trigger not in row
]


def test_every_state_is_reachable_and_terminated_is_final() -> None:
    for kind, table in TRANSITIONS.items():
        for state in table:
            if state is not TxState.TERMINATED:
                assert (kind, state) in PATHS, (kind, state)
        assert table[TxState.TERMINATED] == {}
    assert len(LEGAL) == sum(len(row) for table in TRANSITIONS.values() for row in table.values())


@pytest.mark.parametrize(
    ("kind", "state", "trigger", "target"),
    LEGAL,
    ids=[f"{k.name}-{s.name}-{t.name}" for k, s, t, _ in LEGAL],
)
def test_legal_transition(kind: TxKind, state: TxState, trigger: Trigger, target: TxState) -> None:
    h = Harness(kind)
    for step in PATHS[(kind, state)]:
        h.stimulate(step)
    assert h.state is state
    h.flush()
    h.stimulate(trigger)
    assert h.state is target
    if target is TxState.TERMINATED:
        assert TxTerminated(h.key) in events(h.layer)
        assert h.layer.transaction_count() == 0


@pytest.mark.parametrize(
    ("kind", "state", "trigger"),
    ILLEGAL,
    ids=[f"{k.name}-{s.name}-{t.name}" for k, s, t in ILLEGAL],
)
def test_illegal_trigger_changes_nothing(kind: TxKind, state: TxState, trigger: Trigger) -> None:
    h = Harness(kind)
    for step in PATHS[(kind, state)]:
        h.stimulate(step)
    h.flush()
    before = h.layer.snapshot()[h.key]
    if trigger in TIMER_TRIGGERS:
        # a timer the table does not allow here is never armed here ...
        assert trigger not in dict(before.timers)
        # ... and injected anyway it is ignored
        assert h.layer._fire(h.layer._txs[h.key], trigger, h.now, None) is False
    elif trigger in TU_TRIGGERS:
        with pytest.raises(LocalProtocolError):
            h.layer.send_response(h.key, response(h.req, _STATUS[trigger]), now=h.now)
        assert h.layer.datagrams_to_send() == []
        assert events(h.layer) == []
    elif kind in CLIENT_KINDS and trigger in (Trigger.RX_REQUEST_RETRANSMIT, Trigger.RX_ACK):
        assert h.layer._fire(h.layer._txs[h.key], trigger, h.now, None) is False
    else:
        h.stimulate(trigger)
        assert h.layer.datagrams_to_send() == []  # absorbed: nothing re-sent
    assert h.layer.snapshot()[h.key] == before


# --- (2) scenarios in virtual time ------------------------------------------------------------


def test_invite_client_retransmits_on_timer_a_then_times_out_at_64_t1() -> None:
    layer = TransactionLayer()
    invite = request()
    key = layer.send_request(invite, UAS, now=0.0)
    assert key == TxKey("z9hG4bKaaa", "INVITE")
    assert sent(layer) == [(invite, UAS)]
    assert layer.get_timer() == 0.5
    layer.handle_timer(now=0.4999)
    assert sent(layer) == []
    fired = run_until(layer, 100.0)
    assert [t for t, _ in fired] == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 32.0]
    assert all(out == [(invite, UAS)] for _, out in fired[:-1])
    assert fired[-1][1] == []
    assert events(layer) == [TxTimedOut(key), TxTerminated(key)]
    assert layer.get_timer() is None
    assert layer.transaction_count() == 0


def test_invite_client_over_tcp_does_not_retransmit() -> None:
    layer = TransactionLayer()
    key = layer.send_request(request(transport="TCP"), Endpoint("192.0.2.20", 5060, "tcp"), now=10.0)
    layer.datagrams_to_send()
    assert layer.get_timer() == 42.0
    fired = run_until(layer, 100.0)
    assert [(t, out) for t, out in fired] == [(42.0, [])]
    assert events(layer) == [TxTimedOut(key), TxTerminated(key)]


def test_invite_client_provisional_stops_timers_a_and_b() -> None:
    layer = TransactionLayer()
    invite = request()
    key = layer.send_request(invite, UAS, now=0.0)
    layer.handle_timer(now=0.5)
    ringing = response(invite, 180)
    layer.receive_message(ringing, UAS, now=0.7)
    assert events(layer) == [ResponseReceived(ringing, key)]
    assert layer.snapshot()[key].state is TxState.PROCEEDING
    assert layer.get_timer() is None  # a ringing phone may ring for minutes: the TU CANCELs


def test_invite_client_non_2xx_builds_the_ack_and_absorbs_retransmissions() -> None:
    layer = TransactionLayer()
    invite = request(extra=["Route: <sip:p1.example.com;lr>", "Route: <sip:p2.example.com;lr>"])
    key = layer.send_request(invite, UAS, now=0.0)
    layer.handle_timer(now=0.5)
    layer.datagrams_to_send()
    busy = response(invite, 486, to_tag="busy9")
    layer.receive_message(busy, UAS, now=0.7)
    assert events(layer) == [ResponseReceived(busy, key)]
    [(ack, dest)] = sent(layer)
    assert dest == UAS
    assert isinstance(ack, SipRequest)
    assert ack.method == "ACK"
    assert str(ack.uri) == str(invite.uri)
    assert [v.branch for v in ack.vias] == ["z9hG4bKaaa"]
    assert ack.headers.get("From") == invite.headers.get("From")
    assert ack.to.tag == "busy9"
    assert ack.call_id == invite.call_id
    assert (ack.cseq.seq, ack.cseq.method) == (1, "ACK")
    assert ack.headers.get_lines("Route") == invite.headers.get_lines("Route")
    assert layer.get_timer() == pytest.approx(32.7)  # Timer D
    layer.receive_message(busy, UAS, now=5.0)  # a retransmitted 486: ACK again, not to the TU
    assert statuses(sent(layer)) == ["ACK"]
    assert events(layer) == []
    run_until(layer, 40.0)
    assert events(layer) == [TxTerminated(key)]


def test_invite_client_non_2xx_over_tcp_terminates_at_once() -> None:
    layer = TransactionLayer()
    invite = request(transport="TCP")
    key = layer.send_request(invite, Endpoint("192.0.2.20", 5060, "tcp"), now=0.0)
    layer.datagrams_to_send()
    layer.receive_message(response(invite, 603), Endpoint("192.0.2.20", 5060, "tcp"), now=1.0)
    assert statuses(sent(layer)) == ["ACK"]  # Timer D = 0
    assert [type(e) for e in events(layer)] == [ResponseReceived, TxTerminated]
    assert layer.transaction_count() == 0 and layer.get_timer() is None
    del key


def test_invite_client_accepted_passes_every_2xx_until_timer_m() -> None:
    layer = TransactionLayer()
    invite = request()
    key = layer.send_request(invite, UAS, now=0.0)
    layer.datagrams_to_send()
    ok = response(invite, 200, to_tag="fork-a")
    layer.receive_message(ok, UAS, now=1.0)
    assert layer.snapshot()[key].state is TxState.ACCEPTED
    assert layer.get_timer() == 33.0  # Timer M = 64*T1
    assert layer.datagrams_to_send() == []  # the TU (dialog) ACKs a 2xx, not the transaction
    forked = response(invite, 200, to_tag="fork-b")
    layer.receive_message(ok, UAS, now=2.0)
    layer.receive_message(forked, UAS, now=2.5)
    layer.receive_message(response(invite, 486), UAS, now=3.0)  # ignored in Accepted
    assert events(layer) == [
        ResponseReceived(ok, key),
        ResponseReceived(ok, key),
        ResponseReceived(forked, key),
    ]
    run_until(layer, 33.0)
    assert events(layer) == [TxTerminated(key)]
    layer.receive_message(ok, UAS, now=40.0)
    assert events(layer) == [StrayResponse(ok, UAS)]


def test_cancel_rearms_timer_b_on_a_proceeding_invite() -> None:
    layer = TransactionLayer()
    invite = request()
    key = layer.send_request(invite, UAS, now=0.0)
    layer.receive_message(response(invite, 180), UAS, now=0.2)
    assert layer.get_timer() is None
    cancel = request("CANCEL", branch="z9hG4bKaaa")
    cancel_key = layer.send_request(cancel, UAS, now=10.0)
    assert cancel_key == TxKey("z9hG4bKaaa", "CANCEL")
    assert dict(layer.snapshot()[key].timers) == {Trigger.TIMER_B: 42.0}
    layer.receive_message(response(cancel, 200), UAS, now=10.1)
    events(layer)
    run_until(layer, 42.0)
    assert TxTimedOut(key) in events(layer)
    assert layer.transaction_count() == 0


def test_provisional_after_cancel_keeps_the_cancel_guard() -> None:
    layer = TransactionLayer()
    invite = request()
    key = layer.send_request(invite, UAS, now=0.0)
    ringing = response(invite, 180)
    layer.receive_message(ringing, UAS, now=0.2)
    layer.send_request(request("CANCEL"), UAS, now=5.0)
    layer.receive_message(ringing, UAS, now=6.0)  # a retransmitted 180 must not stop Timer B
    assert dict(layer.snapshot()[key].timers) == {Trigger.TIMER_B: 37.0}
    layer.receive_message(response(invite, 487), UAS, now=7.0)
    assert dict(layer.snapshot()[key].timers) == {Trigger.TIMER_D: 39.0}


def test_non_invite_client_timer_e_doubles_to_t2_and_f_times_out() -> None:
    layer = TransactionLayer()
    key = layer.send_request(request("OPTIONS"), UAS, now=0.0)
    layer.datagrams_to_send()
    fired = run_until(layer, 100.0)
    times = [t for t, _ in fired]
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5, 32.0]
    assert events(layer) == [TxTimedOut(key), TxTerminated(key)]


def test_non_invite_client_retransmits_every_t2_once_proceeding() -> None:
    layer = TransactionLayer()
    options = request("OPTIONS")
    key = layer.send_request(options, UAS, now=0.0)
    layer.receive_message(response(options, 100, to_tag=None), UAS, now=0.2)
    assert layer.snapshot()[key].state is TxState.PROCEEDING
    fired = run_until(layer, 12.0)
    assert [t for t, _ in fired] == [0.5, 4.5, 8.5]
    ok = response(options, 200)
    layer.receive_message(ok, UAS, now=9.0)
    assert layer.get_timer() == 14.0  # Timer K = T4
    layer.receive_message(ok, UAS, now=9.5)  # absorbed
    assert [type(e) for e in events(layer)] == [ResponseReceived, ResponseReceived]
    run_until(layer, 14.0)
    assert events(layer) == [TxTerminated(key)]


def test_non_invite_client_over_tcp_timer_k_is_zero() -> None:
    layer = TransactionLayer()
    bye = request("BYE", transport="TCP")
    key = layer.send_request(bye, Endpoint("192.0.2.20", 5060, "tcp"), now=0.0)
    assert layer.get_timer() == 32.0  # F only, no E
    layer.receive_message(response(bye, 200), UAS, now=0.1)
    assert [type(e) for e in events(layer)] == [ResponseReceived, TxTerminated]
    assert layer.get_timer() is None
    del key


def test_invite_server_sends_100_at_once_and_resends_the_latest_response() -> None:
    layer = TransactionLayer()
    invite = request()
    layer.receive_message(invite, UAC, now=0.0)
    [event] = events(layer)
    assert isinstance(event, RequestReceived)
    assert event.key == TxKey("z9hG4bKaaa", "INVITE", "192.0.2.10:5060")
    assert event.request == invite and event.cancelled is None
    [(trying, dest)] = sent(layer)
    assert dest == UAC
    assert isinstance(trying, SipResponse) and trying.status == 100 and trying.to.tag is None
    layer.receive_message(invite, UAC, now=0.5)
    assert statuses(sent(layer)) == [100]
    assert events(layer) == []  # a retransmission is not a new request
    layer.send_response(event.key, response(invite, 180), now=1.0)
    assert statuses(sent(layer)) == [180]
    layer.receive_message(invite, UAC, now=1.5)
    assert statuses(sent(layer)) == [180]
    assert layer.get_timer() is None  # Proceeding waits for the TU


def test_invite_server_non_2xx_timer_g_then_h() -> None:
    layer = TransactionLayer()
    invite = request()
    layer.receive_message(invite, UAC, now=0.0)
    key = server_key(layer)
    layer.datagrams_to_send()
    layer.send_response(key, response(invite, 486), now=2.0)
    assert statuses(sent(layer)) == [486]
    fired = run_until(layer, 100.0)
    offsets = [round(t - 2.0, 6) for t, _ in fired]
    assert offsets == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5, 32.0]
    assert all(statuses(out) == [486] for _, out in fired[:-1])
    assert events(layer) == [TxTimedOut(key), TxTerminated(key)]  # no dialog, so no AckNotReceived


def test_invite_server_ack_confirms_and_timer_i_absorbs() -> None:
    layer = TransactionLayer()
    invite = request()
    layer.receive_message(invite, UAC, now=0.0)
    key = server_key(layer)
    busy = response(invite, 486)
    layer.send_response(key, busy, now=0.0)
    layer.handle_timer(now=0.5)
    layer.datagrams_to_send()
    ack = ack_for_non_2xx(invite, busy)
    layer.receive_message(ack, UAC, now=0.8)
    snap = layer.snapshot()[key]
    assert snap.state is TxState.CONFIRMED and snap.acked
    assert layer.get_timer() == pytest.approx(5.8)  # Timer I = T4
    layer.receive_message(ack, UAC, now=1.0)
    layer.receive_message(invite, UAC, now=1.1)
    assert layer.datagrams_to_send() == [] and events(layer) == []  # absorbed, not to the TU
    run_until(layer, 10.0)
    assert events(layer) == [TxTerminated(key)]


def test_invite_server_over_tcp_ack_ends_the_transaction_at_once() -> None:
    layer = TransactionLayer()
    src = Endpoint("192.0.2.10", 40000, "tcp")
    invite = request(transport="TCP")
    layer.receive_message(invite, src, now=0.0)
    key = server_key(layer)
    busy = response(invite, 486)
    layer.send_response(key, busy, now=0.0)
    assert layer.get_timer() == 32.0  # Timer H only, no G on a reliable transport
    layer.receive_message(ack_for_non_2xx(invite, busy), src, now=0.1)
    assert events(layer) == [TxTerminated(key)]  # Confirmed, then Timer I = 0
    assert layer.get_timer() is None


def test_invite_server_2xx_is_retransmitted_by_the_layer_until_the_ack() -> None:
    layer = TransactionLayer()
    invite = request()
    layer.receive_message(invite, UAC, now=0.0)
    key = server_key(layer)
    layer.datagrams_to_send()
    ok = response(invite, 200, to_tag="uas-tag")
    layer.send_response(key, ok, now=1.0)
    assert statuses(sent(layer)) == [200]
    fired = run_until(layer, 4.6)
    assert [(t, statuses(out)) for t, out in fired] == [(1.5, [200]), (2.5, [200]), (4.5, [200])]
    layer.receive_message(invite, UAC, now=4.7)  # absorbed in Accepted (RFC 6026)
    assert layer.datagrams_to_send() == [] and events(layer) == []
    ack = ack_for_2xx(invite, ok, "z9hG4bKack1")
    layer.receive_message(ack, UAC, now=5.0)
    assert events(layer) == [RequestReceived(ack, UAC, None)]
    snap = layer.snapshot()[key]
    assert snap.state is TxState.ACCEPTED and snap.acked
    assert dict(snap.timers) == {Trigger.TIMER_L: 33.0}
    run_until(layer, 40.0)
    assert layer.datagrams_to_send() == []
    assert events(layer) == [TxTerminated(key)]  # acked: no AckNotReceived


def test_invite_server_2xx_without_ack_reports_ack_not_received_at_timer_l() -> None:
    layer = TransactionLayer()
    invite = request()
    layer.receive_message(invite, UAC, now=0.0)
    key = server_key(layer)
    ok = response(invite, 200)
    layer.send_response(key, ok, now=0.0)
    layer.datagrams_to_send()
    wrong = ack_for_2xx(invite, response(invite, 200, to_tag="someone-else"), "z9hG4bKack2")
    layer.receive_message(wrong, UAC, now=0.2)  # another dialog's ACK: still for the TU
    assert events(layer) == [RequestReceived(wrong, UAC, None)]
    fired = run_until(layer, 32.0)
    times = [t for t, out in fired if out]
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert fired[-1][0] == 32.0
    assert events(layer) == [AckNotReceived(key), TxTerminated(key)]


def test_invite_server_2xx_over_tcp_is_not_retransmitted() -> None:
    layer = TransactionLayer()
    src = Endpoint("192.0.2.10", 40000, "tcp")
    invite = request(transport="TCP")
    layer.receive_message(invite, src, now=0.0)
    key = server_key(layer)
    layer.send_response(key, response(invite, 200), now=0.0)
    assert statuses(sent(layer)) == [100, 200]
    assert layer.get_timer() == 32.0  # Timer L only
    run_until(layer, 32.0)
    assert layer.datagrams_to_send() == []
    assert events(layer) == [AckNotReceived(key), TxTerminated(key)]


def test_non_invite_server_trying_proceeding_completed() -> None:
    layer = TransactionLayer()
    bye = request("BYE", to_tag="uas1")
    layer.receive_message(bye, UAC, now=0.0)
    key = server_key(layer)
    assert layer.datagrams_to_send() == []  # no automatic 100 for non-INVITE
    layer.receive_message(bye, UAC, now=0.5)
    assert layer.datagrams_to_send() == []  # discarded in Trying
    layer.send_response(key, response(bye, 100, to_tag=None), now=1.0)
    layer.receive_message(bye, UAC, now=1.5)
    assert statuses(sent(layer)) == [100, 100]
    layer.send_response(key, response(bye, 200), now=2.0)
    assert layer.get_timer() == 34.0  # Timer J = 64*T1
    layer.receive_message(bye, UAC, now=3.0)
    assert statuses(sent(layer)) == [200, 200]
    assert events(layer) == []
    run_until(layer, 34.0)
    assert events(layer) == [TxTerminated(key)]
    layer.receive_message(bye, UAC, now=35.0)  # after Timer J it is a new request again
    assert isinstance(events(layer)[0], RequestReceived)


def test_non_invite_server_over_tcp_terminates_when_answered() -> None:
    layer = TransactionLayer()
    src = Endpoint("192.0.2.10", 40000, "tcp")
    options = request("OPTIONS", transport="TCP")
    layer.receive_message(options, src, now=0.0)
    key = server_key(layer)
    layer.send_response(key, response(options, 200), now=0.1)
    assert [(m.status, d) for m, d in sent(layer) if isinstance(m, SipResponse)] == [(200, src)]
    assert events(layer) == [TxTerminated(key)]


# --- matching (§17.2.3, RFC 2543, §8.2.2.2, §9.2) -------------------------------------------


def test_same_branch_from_another_sent_by_is_another_transaction() -> None:
    layer = TransactionLayer()
    layer.receive_message(request("OPTIONS"), UAC, now=0.0)
    other = request("OPTIONS", via="198.51.100.7:5060", call_id="other")
    layer.receive_message(other, Endpoint("198.51.100.7", 5060), now=0.0)
    keys = [e.key for e in events(layer) if isinstance(e, RequestReceived)]
    assert keys == [
        TxKey("z9hG4bKaaa", "OPTIONS", "192.0.2.10:5060"),
        TxKey("z9hG4bKaaa", "OPTIONS", "198.51.100.7:5060"),
    ]


def test_cancel_gets_its_own_transaction_and_names_the_invite() -> None:
    layer = TransactionLayer()
    invite = request()
    layer.receive_message(invite, UAC, now=0.0)
    invite_key = server_key(layer)
    layer.send_response(invite_key, response(invite, 180), now=0.1)
    cancel = request("CANCEL")
    layer.receive_message(cancel, UAC, now=1.0)
    [event] = events(layer)
    assert isinstance(event, RequestReceived) and event.key is not None
    assert event.key == TxKey("z9hG4bKaaa", "CANCEL", "192.0.2.10:5060")
    assert event.cancelled == invite_key
    layer.datagrams_to_send()
    layer.send_response(event.key, response(cancel, 200), now=1.0)
    layer.send_response(invite_key, response(invite, 487), now=1.0)
    assert statuses(sent(layer)) == [200, 487]


def test_cancel_after_the_final_response_cancels_nothing() -> None:
    layer = TransactionLayer()
    invite = request()
    layer.receive_message(invite, UAC, now=0.0)
    invite_key = server_key(layer)
    layer.send_response(invite_key, response(invite, 200), now=0.1)
    layer.receive_message(request("CANCEL"), UAC, now=0.2)
    [event] = events(layer)
    assert isinstance(event, RequestReceived) and event.key is not None and event.cancelled is None


def test_cancel_matching_nothing_is_answered_481_statelessly() -> None:
    layer = TransactionLayer()
    layer.receive_message(request("CANCEL"), UAC, now=0.0)
    [(reply, dest)] = sent(layer)
    assert isinstance(reply, SipResponse) and reply.status == 481 and dest == UAC
    assert (reply.to.tag or "").startswith(STATELESS_TAG_PREFIX)
    [event] = events(layer)
    assert isinstance(event, MessageRejected) and "481" in event.reason
    assert layer.transaction_count() == 0


def test_rfc2543_request_without_cookie_matches_on_fields() -> None:
    layer = TransactionLayer()
    invite = request(branch=None)
    layer.receive_message(invite, UAC, now=0.0)
    key = server_key(layer)
    assert key.branch.startswith("rfc2543|")
    layer.receive_message(invite, UAC, now=0.5)
    assert events(layer) == []  # the retransmission matched
    assert statuses(sent(layer)) == [100, 100]
    busy = response(invite, 486)
    layer.send_response(key, busy, now=1.0)
    layer.receive_message(ack_for_non_2xx(invite, busy), UAC, now=1.2)
    assert layer.snapshot()[key].state is TxState.CONFIRMED
    assert events(layer) == []


def test_rfc2543_ack_of_a_2xx_goes_to_the_tu() -> None:
    layer = TransactionLayer()
    invite = request(branch="old-style-1")
    layer.receive_message(invite, UAC, now=0.0)
    key = server_key(layer)
    ok = response(invite, 200)
    layer.send_response(key, ok, now=0.0)
    ack = request("ACK", branch="old-style-1", to_tag=ok.to.tag)  # same Via as the INVITE
    layer.receive_message(ack, UAC, now=0.3)
    assert events(layer) == [RequestReceived(ack, UAC, None)]  # RFC 6026 §6
    assert layer.snapshot()[key].acked


def test_merged_request_gets_482_and_no_transaction() -> None:
    layer = TransactionLayer()
    layer.receive_message(request(), UAC, now=0.0)
    server_key(layer)
    layer.datagrams_to_send()
    merged = request(branch="z9hG4bKother-path", via="198.51.100.9:5060")
    proxy = Endpoint("198.51.100.9", 5060)
    layer.receive_message(merged, proxy, now=0.1)
    [(reply, dest)] = sent(layer)
    assert isinstance(reply, SipResponse) and reply.status == 482 and dest == proxy
    assert [type(e) for e in events(layer)] == [MessageRejected]
    assert layer.transaction_count() == 1
    ack = ack_for_non_2xx(merged, reply)
    layer.receive_message(ack, proxy, now=0.2)  # the ACK of a stateless reply is absorbed
    assert events(layer) == [] and layer.datagrams_to_send() == []


def test_request_with_to_tag_is_never_treated_as_merged() -> None:
    layer = TransactionLayer()
    layer.receive_message(request("BYE", to_tag="t1"), UAC, now=0.0)
    layer.receive_message(request("BYE", to_tag="t1", branch="z9hG4bKnew"), UAC, now=0.1)
    assert [type(e) for e in events(layer)] == [RequestReceived, RequestReceived]


def test_ack_without_any_transaction_goes_to_the_tu() -> None:
    layer = TransactionLayer()
    ack = request("ACK", to_tag="dlg", branch="z9hG4bKlate")
    layer.receive_message(ack, UAC, now=0.0)
    assert events(layer) == [RequestReceived(ack, UAC, None)]
    assert layer.datagrams_to_send() == []


def test_ack_before_any_final_is_ignored() -> None:
    layer = TransactionLayer()
    invite = request()
    layer.receive_message(invite, UAC, now=0.0)
    key = server_key(layer)
    layer.datagrams_to_send()
    before = layer.snapshot()
    layer.receive_message(ack_for_non_2xx(invite, response(invite, 486)), UAC, now=0.1)
    assert layer.snapshot() == before and events(layer) == []
    del key


def test_received_and_rport_are_added_to_the_top_via() -> None:
    layer = TransactionLayer()
    nat = Endpoint("203.0.113.5", 61000)
    invite = request(via="10.0.0.5:5060", via_params=";rport")
    layer.receive_message(invite, nat, now=0.0)
    [event] = events(layer)
    assert isinstance(event, RequestReceived)
    top = event.request.top_via
    assert (top.received, top.rport) == ("203.0.113.5", 61000)
    [(trying, dest)] = sent(layer)
    assert dest == nat and trying.top_via.rport == 61000
    assert invite.top_via.received is None  # the caller's message is not modified


def test_responses_with_a_foreign_via_are_dropped() -> None:
    ours = Endpoint("192.0.2.10", 5060)
    layer = TransactionLayer(local_sent_by=lambda ep: ep == ours)
    invite = request()
    key = layer.send_request(invite, UAS, now=0.0)
    spoofed = make_response(request(via="203.0.113.66:5060"), 200, to_tag="x")
    layer.receive_message(spoofed, UAS, now=0.1)
    [event] = events(layer)
    assert isinstance(event, MessageRejected) and "not ours" in event.reason
    ok = response(invite, 200)
    layer.receive_message(ok, UAS, now=0.2)
    assert events(layer) == [ResponseReceived(ok, key)]


def test_response_with_two_vias_is_dropped() -> None:
    layer = TransactionLayer()
    invite = request()
    layer.send_request(invite, UAS, now=0.0)
    two = response(invite, 200)
    two.headers.add("Via", "SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKx")
    layer.receive_message(two, UAS, now=0.1)
    assert [type(e) for e in events(layer)] == [MessageRejected]


def test_stray_responses_are_reported() -> None:
    layer = TransactionLayer()
    ok = response(request(), 200)
    layer.receive_message(ok, UAS, now=0.0)
    assert events(layer) == [StrayResponse(ok, UAS)]


def test_peer_over_its_limit_gets_503_then_is_dropped() -> None:
    layer = TransactionLayer(max_server_transactions_per_peer=3)
    for i in range(3):
        layer.receive_message(request("OPTIONS", branch=f"z9hG4bK{i}", call_id=f"c{i}"), UAC, now=0.0)
    assert layer.transaction_count() == 3
    events(layer)
    flood = [request("OPTIONS", branch=f"z9hG4bKf{i}", call_id=f"f{i}") for i in range(3)]
    layer.receive_message(flood[0], UAC, now=0.1)
    [(reply, _)] = sent(layer)
    assert isinstance(reply, SipResponse) and reply.status == 503
    assert reply.headers.get("Retry-After") == "5"
    layer.receive_message(flood[1], UAC, now=0.5)
    assert layer.datagrams_to_send() == []  # a flood: dropped
    layer.receive_message(flood[2], UAC, now=1.2)
    assert statuses(sent(layer)) == [503]
    assert [type(e) for e in events(layer)] == [MessageRejected] * 3
    layer.receive_message(request("OPTIONS", branch="z9hG4bK0", call_id="c0"), UAC, now=1.3)
    assert events(layer) == []  # retransmissions of live transactions still match
    other = Endpoint("192.0.2.99", 5060)
    layer.receive_message(request("OPTIONS", via="192.0.2.99:5060"), other, now=1.3)
    assert [type(e) for e in events(layer)] == [RequestReceived]
    assert layer.transaction_count() == 4


def test_answered_transactions_do_not_count_against_the_peer_limit() -> None:
    # a busy PBX finishes many BYEs/INFOs a minute; their 32 s of Timer J must not lock it out
    layer = TransactionLayer(max_server_transactions_per_peer=3)
    for i in range(50):
        req = request("INFO", branch=f"z9hG4bKi{i}", call_id=f"i{i}")
        layer.receive_message(req, UAC, now=i * 0.01)
        [event] = events(layer)
        assert isinstance(event, RequestReceived) and event.key is not None
        layer.send_response(event.key, response(req, 200), now=i * 0.01)
    assert layer.transaction_count() == 50  # all still absorbing retransmissions
    assert 503 not in statuses(sent(layer))
    for i in range(3):  # three left unanswered fill the limit
        layer.receive_message(request("OPTIONS", branch=f"z9hG4bKp{i}", call_id=f"p{i}"), UAC, now=1.0)
    events(layer)
    layer.receive_message(request("OPTIONS", branch="z9hG4bKover", call_id="over"), UAC, now=1.0)
    assert statuses(sent(layer)) == [503]


def test_unreachable_destination_fails_its_transactions_at_once() -> None:
    layer = TransactionLayer()
    dest = Endpoint("127.0.0.1", 5060, "tcp")
    key = layer.send_request(request("OPTIONS", branch="z9hG4bKtcp1"), dest, now=0.0)
    other = layer.send_request(request("OPTIONS", branch="z9hG4bKudp1"), UAS, now=0.0)
    events(layer)
    layer.destination_unreachable(dest, now=0.1)
    assert TxTransportFailed(key) in events(layer)
    assert layer.transaction_count() == 1 and other in layer.snapshot()


def test_unparsable_request_gets_400_and_garbage_is_dropped() -> None:
    layer = TransactionLayer()
    broken = request_bytes("OPTIONS").replace(b"Max-Forwards: 70", b"Max-Forwards: many")
    layer.receive_datagram(broken, UAC, now=0.0)
    [(reply, dest)] = sent(layer)
    assert isinstance(reply, SipResponse) and reply.status == 400 and dest == UAC
    assert reply.top_via.branch == "z9hG4bKaaa"
    layer.receive_datagram(b"SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n", UAS, now=0.0)
    layer.receive_datagram(b"\x00\xff garbage", UAS, now=0.0)
    assert layer.datagrams_to_send() == []
    assert [type(e) for e in events(layer)] == [MessageRejected] * 3
    assert layer.transaction_count() == 0


def test_a_good_datagram_is_handled_like_a_message() -> None:
    layer = TransactionLayer()
    layer.receive_datagram(request_bytes("OPTIONS"), UAC, now=0.0)
    assert [type(e) for e in events(layer)] == [RequestReceived]


def test_tu_misuse_raises_and_changes_nothing() -> None:
    layer = TransactionLayer()
    invite = request()
    layer.receive_message(invite, UAC, now=0.0)
    key = server_key(layer)
    layer.send_response(key, response(invite, 486), now=0.0)
    client_key = layer.send_request(request("OPTIONS", branch="z9hG4bKc"), UAS, now=0.0)
    layer.datagrams_to_send()
    before = layer.snapshot()
    misuse: list[Callable[[], object]] = [
        lambda: layer.send_response(key, response(invite, 200), now=1.0),  # a second final
        lambda: layer.send_response(key, response(invite, 180), now=1.0),  # 1xx after the final
        lambda: layer.send_response(TxKey("nope", "INVITE", "x"), response(invite, 200), now=1.0),
        lambda: layer.send_response(client_key, response(invite, 200), now=1.0),
        lambda: layer.send_response(key, SipResponse(99, "x", invite.headers.copy()), now=1.0),
        lambda: layer.send_request(request("ACK"), UAS, now=1.0),
        lambda: layer.send_request(request("OPTIONS", branch="no-cookie"), UAS, now=1.0),
        lambda: layer.send_request(request("OPTIONS", branch="z9hG4bKc"), UAS, now=1.0),  # duplicate
        lambda: layer.send_request(SipRequest("OPTIONS", invite.uri, invite.headers.copy()), UAS, now=1.0),
        lambda: layer.send_ack(invite, UAS),
    ]
    for call in misuse:
        with pytest.raises(LocalProtocolError):
            call()
        assert layer.snapshot() == before
        assert layer.datagrams_to_send() == [] and events(layer) == []


def test_send_ack_and_send_stateless_only_queue_datagrams() -> None:
    layer = TransactionLayer()
    invite = request()
    ack = ack_for_2xx(invite, response(invite, 200), "z9hG4bKa2")
    layer.send_ack(ack, UAS)
    reply = response(request("OPTIONS"), 405)
    layer.send_stateless(reply, UAC)
    assert sent(layer) == [(ack, UAS), (reply, UAC)]
    assert layer.transaction_count() == 0 and layer.get_timer() is None


def test_transport_failure() -> None:
    layer = TransactionLayer()
    key = layer.send_request(request(), UAS, now=0.0)
    layer.transport_failed(TxKey("gone", "INVITE"), now=0.1)  # a race with termination: ignored
    layer.transport_failed(key, now=0.1)
    assert events(layer) == [TxTransportFailed(key), TxTerminated(key)]
    invite = request(branch="z9hG4bKsrv")
    layer.receive_message(invite, UAC, now=1.0)
    skey = server_key(layer)
    layer.send_response(skey, response(invite, 200), now=1.0)
    layer.transport_failed(skey, now=1.1)
    snap = layer.snapshot()[skey]
    assert snap.state is TxState.ACCEPTED  # keeps absorbing INVITE retransmissions
    assert dict(snap.timers) == {Trigger.TIMER_L: 33.0}  # but stops re-sending the 2xx
    assert events(layer) == [TxTransportFailed(skey)]


def test_time_never_runs_backwards() -> None:
    layer = TransactionLayer()
    layer.handle_timer(now=100.0)
    key = layer.send_request(request("OPTIONS"), UAS, now=50.0)  # treated as 100.0
    assert layer.get_timer() == 100.5
    del key


def test_late_timer_does_not_burst_retransmissions() -> None:
    layer = TransactionLayer()
    layer.send_request(request(), UAS, now=0.0)
    layer.datagrams_to_send()
    layer.handle_timer(now=5.0)  # the adapter slept through 0.5, 1.5 and 3.5
    assert len(layer.datagrams_to_send()) == 1
    assert layer.get_timer() == 6.0  # 5.0 + the next interval (2*T1), not a catch-up burst


def test_many_transactions_share_one_heap() -> None:
    layer = TransactionLayer(max_server_transactions_per_peer=10_000)
    template = request("OPTIONS")
    for i in range(2000):
        client_req = template.copy()
        client_req.headers.set("Via", f"SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKc{i}")
        layer.send_request(client_req, UAS, now=i * 0.001)
        server_req = template.copy()
        server_req.headers.set("Via", f"SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKs{i}")
        server_req.headers.set("Call-ID", f"s{i}")
        layer.receive_message(server_req, UAC, now=i * 0.001)
    for event in events(layer):
        if isinstance(event, RequestReceived) and event.key is not None:
            layer.send_response(event.key, response(event.request, 200), now=3.0)
    assert layer.transaction_count() == 4000
    fired = 0
    while (deadline := layer.get_timer()) is not None:
        layer.handle_timer(now=deadline)
        layer.datagrams_to_send()
        fired += 1
        assert len(layer._heap) <= 4 * layer._armed + 64  # stale entries are compacted away
    assert fired > 2000 and layer.transaction_count() == 0
    assert layer._heap == []


def test_diagrams_are_generated_from_the_table() -> None:
    spec = importlib.util.spec_from_file_location(
        "make_state_diagrams", ROOT / "scripts/make_state_diagrams.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "docs/diagrams/transactions.md").read_text() == module.render()


# --- (4) properties ---------------------------------------------------------------------------

_CLIENT_STEP = st.tuples(
    st.floats(min_value=0.0, max_value=6.0, allow_nan=False),
    st.sampled_from(["100", "180", "200", "404", "timer", "transport"]),
)


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(_CLIENT_STEP, max_size=25), tcp=st.booleans())
def test_non_invite_client_always_ends_by_64_t1_plus_t4(steps: list[tuple[float, str]], tcp: bool) -> None:
    timers = SipTimers()
    limit = 64 * timers.t1 + timers.t4
    layer = TransactionLayer(timers=timers)
    dest = Endpoint("192.0.2.20", 5060, "tcp" if tcp else "udp")
    options = request("OPTIONS", transport="TCP" if tcp else "UDP")
    layer.send_request(options, dest, now=0.0)
    now = 0.0
    for dt, action in steps:
        now += dt
        if action == "timer":
            layer.handle_timer(now=now)
        elif action == "transport":
            layer.transport_failed(TxKey("z9hG4bKaaa", "OPTIONS"), now=now)
        else:
            layer.receive_message(response(options, int(action)), dest, now=now)
        deadline = layer.get_timer()
        assert deadline is None or deadline <= limit
    layer.handle_timer(now=max(now, limit))
    assert layer.transaction_count() == 0
    assert layer.get_timer() is None


_BRANCHES = ["z9hG4bK1", "z9hG4bK2", "z9hG4bK3", "legacy-4", None]
_SOURCES = [UAC, Endpoint("198.51.100.2", 5060), Endpoint("192.0.2.10", 5070, "tcp")]
_OPS = st.one_of(
    st.tuples(
        st.just("rx_request"),
        st.sampled_from(["INVITE", "OPTIONS", "BYE", "CANCEL", "ACK"]),
        st.sampled_from(_BRANCHES),
        st.sampled_from([None, "t1", "sl.x"]),
        st.integers(1, 2),
        st.integers(0, len(_SOURCES) - 1),
    ),
    st.tuples(
        st.just("rx_response"),
        st.sampled_from([100, 180, 200, 202, 404, 486, 487, 603]),
        st.sampled_from(_BRANCHES),
        st.sampled_from(["INVITE", "OPTIONS", "CANCEL"]),
    ),
    st.tuples(
        st.just("send_request"), st.sampled_from(["INVITE", "OPTIONS", "CANCEL"]), st.sampled_from(_BRANCHES)
    ),
    st.tuples(st.just("tu_response"), st.integers(0, 10), st.sampled_from([100, 180, 200, 486])),
    st.tuples(st.just("transport_failed"), st.integers(0, 10)),
    st.tuples(st.just("timer"), st.floats(min_value=-1.0, max_value=20.0, allow_nan=False)),
    st.tuples(st.just("garbage"), st.binary(max_size=60)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_OPS, max_size=40))
def test_random_sequences_never_raise_and_leave_no_terminated_transaction(
    ops: list[tuple[Any, ...]],
) -> None:
    layer = TransactionLayer(max_server_transactions_per_peer=4)
    now = 0.0
    keys: list[TxKey] = []
    requests: dict[TxKey, SipRequest] = {}
    for op in ops:
        kind = op[0]
        before = layer.snapshot()
        armed_before = {(k, t, d) for k, s in before.items() for t, d in s.timers}
        misuse = False
        if kind == "rx_request":
            _, method, branch, to_tag, cseq, src = op
            req = request(method, branch=branch, to_tag=to_tag, cseq=cseq)
            layer.receive_message(req, _SOURCES[src], now=now)
        elif kind == "rx_response":
            _, status, branch, method = op
            req = request(method, branch=branch)
            layer.receive_message(response(req, status), UAS, now=now)
        elif kind == "send_request":
            _, method, branch = op
            req = request(method, branch=branch)
            try:
                requests[layer.send_request(req, UAS, now=now)] = req
            except LocalProtocolError:
                misuse = True
        elif kind == "tu_response" and keys:
            _, index, status = op
            key = keys[index % len(keys)]
            try:
                layer.send_response(key, response(requests[key], status), now=now)
            except LocalProtocolError:
                misuse = True
        elif kind == "transport_failed" and keys:
            layer.transport_failed(keys[op[1] % len(keys)], now=now)
        elif kind == "timer":
            then = now + op[1]
            layer.handle_timer(now=then)  # a negative step: the layer keeps its own clock
            now = max(now, then)
            deadline = layer.get_timer()
            assert deadline is None or deadline > now
        elif kind == "garbage":
            layer.receive_datagram(op[1], UAC, now=now)
        if misuse:
            assert layer.snapshot() == before
        for event in events(layer):
            if isinstance(event, RequestReceived) and event.key is not None:
                keys.append(event.key)
                requests[event.key] = event.request
        snapshot = layer.snapshot()
        assert all(s.state is not TxState.TERMINATED for s in snapshot.values())
        for key, snap in snapshot.items():
            for trigger, deadline in snap.timers:
                if (key, trigger, deadline) not in armed_before:
                    assert deadline >= now  # timers never go backwards
        layer.datagrams_to_send()


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from(
        [
            request_bytes("INVITE"),
            request_bytes("ACK", to_tag="t"),
            request_bytes("CANCEL"),
            response(request(), 200).to_bytes(),
            response(request("OPTIONS"), 486).to_bytes(),
        ]
    ),
    edits=st.lists(st.tuples(st.integers(0, 400), st.binary(max_size=4)), max_size=6),
)
def test_mutated_datagrams_never_raise(base: bytes, edits: list[tuple[int, bytes]]) -> None:
    layer = TransactionLayer()
    layer.send_request(request(), UAS, now=0.0)
    layer.receive_message(request(branch="z9hG4bKbbb"), UAC, now=0.0)
    data = bytearray(base)
    for position, chunk in edits:
        at = position % (len(data) + 1)
        data[at : at + len(chunk)] = chunk
    layer.receive_datagram(bytes(data), UAC, now=1.0)
    layer.receive_datagram(bytes(data), UAS, now=1.0)
    layer.handle_timer(now=100.0)  # only INVITE server transactions waiting for the TU remain
    assert all(s.state is TxState.PROCEEDING for s in layer.snapshot().values())


@settings(max_examples=200, deadline=None)
@given(times=st.lists(st.floats(min_value=0.0, max_value=80.0, allow_nan=False), min_size=1, max_size=30))
def test_get_timer_is_always_after_the_latest_now(times: list[float]) -> None:
    layer = TransactionLayer()
    invite = request()
    layer.send_request(invite, UAS, now=0.0)
    layer.send_request(request("OPTIONS", branch="z9hG4bKo"), UAS, now=0.0)
    layer.receive_message(request("INVITE", branch="z9hG4bKs"), UAC, now=0.0)
    key = server_key(layer)
    layer.send_response(key, response(invite, 200), now=0.0)
    latest = 0.0
    for t in times:
        latest = max(latest, t)
        layer.handle_timer(now=t)  # may go "backwards": the layer keeps its own clock
        deadline = layer.get_timer()
        assert deadline is None or deadline > latest
