"""The SIP transaction layer (RFC 3261 §17, RFC 6026, §8.2.2.2 merged requests), sans-I/O.

Three things drive a :class:`TransactionLayer`, each with the current time ``now`` as an argument:
messages from the network (:meth:`~TransactionLayer.receive_datagram`,
:meth:`~TransactionLayer.receive_message`), calls from the transaction user (TU: send a request,
a response, an ACK for a 2xx) and timers (:meth:`~TransactionLayer.handle_timer` once
:meth:`~TransactionLayer.get_timer` is due).  Output is pulled: :meth:`datagrams_to_send` and
:meth:`next_event`.  No clock, socket, task or random number is used here.

Which state follows which is data (:mod:`ccdaemon.sip.transaction_table`); the effects live in the
``_on_<trigger>`` handlers below, picked from a dict.

Decisions (also listed in ``docs/diagrams/transactions.md``):

* **100 Trying**: an INVITE server transaction sends 100 at once (§17.2.1 allows waiting 200 ms;
  answering at once stops Timer A retransmissions sooner and costs one datagram).
* **2xx retransmission** is done by this layer, not by the TU: in Accepted the 2xx is re-sent on
  Timer G (T1 doubling to T2, UDP only) until its ACK arrives, matched by Call-ID, CSeq number,
  From tag and To tag; no ACK by Timer L (64*T1) gives :class:`AckNotReceived`.  The ACK is still
  given to the TU as ``RequestReceived(key=None)`` (RFC 6026 §7.1).
* **CANCEL** gets its own server transaction when it matches an INVITE server transaction
  (§9.2); :attr:`RequestReceived.cancelled` names that INVITE while it is still unanswered.  The TU
  answers 200 to every CANCEL it sees and, when ``cancelled`` is set, 487 to that INVITE.  A
  CANCEL matching nothing is answered 481 here, statelessly, and reported as
  :class:`MessageRejected`.
* **Stateless replies** (400 unparsable, 481 CANCEL, 482 merged request, 503 over the per-peer
  limit, at most one a second per peer, then drops) carry a To tag starting with ``sl.``; the
  ACKs for them are absorbed.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from .address import Endpoint
from .errors import LocalProtocolError, ParseError, RemoteProtocolError
from .headers import Headers, Via
from .message import SipMessage, SipRequest, SipResponse, make_response, parse_message
from .transaction_table import (
    CLIENT_KINDS,
    INITIAL_STATE,
    SERVER_KINDS,
    TRANSITIONS,
    Trigger,
    TxKind,
    TxState,
)
from .validate import error_response_for_unparsable

MAGIC_COOKIE: Final = "z9hG4bK"
STATELESS_TAG_PREFIX: Final = "sl."
RETRY_AFTER_SECONDS: Final = 5
REFUSAL_INTERVAL: Final = 1.0  # at most one 503 per second to a peer over its limit; drop the rest
_DEFAULT_PORTS: Final[Mapping[str, int]] = {"udp": 5060, "tcp": 5060, "tls": 5061, "ws": 80, "wss": 443}


@dataclass(frozen=True, slots=True)
class TxKey:
    """Identifies a transaction (§17.1.3, §17.2.3).

    ``method`` is ``INVITE`` for an INVITE and for the ACK of a non-2xx; a CANCEL has its own key
    with the INVITE's branch.  ``sent_by`` (the top Via host[:port]) is set for server
    transactions only.  A request whose branch lacks the RFC 3261 cookie gets a synthetic branch
    built from the RFC 2543 matching fields.
    """

    branch: str
    method: str
    sent_by: str = ""


@dataclass(frozen=True, slots=True)
class SipTimers:
    """Timer values (§17.1.1.1): RTT estimate, maximum retransmit interval, max network lifetime."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    @property
    def timeout(self) -> float:
        """64*T1: Timers B, F, H, J (UDP), L and M."""
        return 64 * self.t1

    @property
    def timer_d(self) -> float:
        """Timer D on UDP: "at least 32 seconds" (§17.1.1.2)."""
        return max(32.0, self.timeout)


# --- events ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TxEvent:
    """Base class of everything :meth:`TransactionLayer.next_event` returns."""


@dataclass(frozen=True, slots=True)
class RequestReceived(TxEvent):
    """A new request for the TU (retransmissions are absorbed).

    ``key`` is the server transaction to answer with :meth:`TransactionLayer.send_response`; it is
    None for an ACK of a 2xx, which belongs to no transaction: the dialog layer handles it.
    ``request`` has ``received``/``rport`` added to its top Via (§18.2.1, RFC 3581).  For a
    CANCEL, ``cancelled`` is the INVITE server transaction it cancels while that INVITE has no
    final response yet: answer the CANCEL 200 and the INVITE 487.
    """

    request: SipRequest
    source: Endpoint
    key: TxKey | None
    cancelled: TxKey | None = None


@dataclass(frozen=True, slots=True)
class ResponseReceived(TxEvent):
    """A response for client transaction ``key``.

    For an INVITE this includes every 2xx received in Accepted (retransmissions, and forks with
    other To tags): the TU must ACK each one with :meth:`TransactionLayer.send_ack` (RFC 6026).
    Final responses retransmitted to a finished non-INVITE or non-2xx INVITE are absorbed.
    """

    response: SipResponse
    key: TxKey


@dataclass(frozen=True, slots=True)
class StrayResponse(TxEvent):
    """A response matching no client transaction (e.g. a 2xx retransmitted after Timer M).

    The TU should ACK a stray 2xx to INVITE (and BYE it if it wants no such dialog); the rest it
    may ignore.
    """

    response: SipResponse
    source: Endpoint


@dataclass(frozen=True, slots=True)
class TxTimedOut(TxEvent):
    """Timer B or F (no final response), or Timer H (no ACK for a non-2xx final) fired."""

    key: TxKey


@dataclass(frozen=True, slots=True)
class TxTransportFailed(TxEvent):
    """The transport reported that it could not send for transaction ``key`` (§17.1.4, §17.2.4)."""

    key: TxKey


@dataclass(frozen=True, slots=True)
class TxTerminated(TxEvent):
    """Transaction ``key`` reached Terminated and was removed; its key may be reused."""

    key: TxKey


@dataclass(frozen=True, slots=True)
class AckNotReceived(TxEvent):
    """An INVITE server transaction sent a 2xx and no ACK came within 64*T1 (Timer L).

    The TU should end the dialog with BYE (§13.3.1.4).
    """

    key: TxKey


@dataclass(frozen=True, slots=True)
class MessageRejected(TxEvent):
    """A message was refused: unparsable, a response not for us, a merged request, a CANCEL
    matching nothing, or a peer over its limit.  ``reason`` says which and what was replied."""

    reason: str
    source: Endpoint


@dataclass(frozen=True, slots=True)
class TxSnapshot:
    """A read-only view of one transaction, for tests and metrics."""

    key: TxKey
    kind: TxKind
    state: TxState
    peer: Endpoint
    timers: tuple[tuple[Trigger, float], ...]  # armed timers with their deadlines, earliest first
    last_status: int | None  # latest response sent (server) or received (client)
    retransmits: int
    acked: bool  # INVITE server: the ACK for the final response arrived


# --- internal state -------------------------------------------------------------------------

_DialogMatch: TypeAlias = tuple[str, int, str]  # Call-ID, CSeq number, From tag
_MergeKey: TypeAlias = tuple[str, int, str, str]  # Call-ID, CSeq number, method, From tag
_HeapEntry: TypeAlias = tuple[float, int, TxKey, Trigger]  # deadline, token, key, trigger


@dataclass(frozen=True, slots=True)
class _RequestView:
    """What matching needs from a received request, read once before anything changes."""

    key: TxKey
    via: Via
    call_id: str
    seq: int
    from_tag: str
    to_tag: str | None

    @property
    def dialog_match(self) -> _DialogMatch:
        return (self.call_id, self.seq, self.from_tag)

    def merge_key(self, method: str) -> _MergeKey:
        return (self.call_id, self.seq, method, self.from_tag)


@dataclass(eq=False, slots=True)
class _Tx:
    """One transaction's mutable state; owned by the layer, never handed out."""

    key: TxKey
    kind: TxKind
    peer: Endpoint  # where requests (client) or responses (server) go
    request: SipRequest
    state: TxState = TxState.TERMINATED  # set from INITIAL_STATE in __post_init__
    request_bytes: bytes = b""  # client: the request on the wire
    ack_bytes: bytes | None = None  # INVITE client: the ACK of the non-2xx final
    response_bytes: bytes | None = None  # server: the latest response sent
    status: int | None = None
    to_tag: str | None = None  # server: the To tag of the final response
    acked: bool = False
    retransmits: int = 0
    timers: dict[Trigger, tuple[float, int]] = field(default_factory=dict)  # (deadline, heap token)
    intervals: dict[Trigger, float] = field(default_factory=dict)  # of Timers A, E, G
    fired_at: float = 0.0  # deadline of the timer being handled
    server_peer: str | None = None  # server: the host counted against the peer limit
    merge_key: _MergeKey | None = None
    dialog_match: _DialogMatch | None = None

    def __post_init__(self) -> None:
        self.state = INITIAL_STATE[self.kind]

    @property
    def reliable(self) -> bool:
        return self.peer.reliable

    @property
    def invite(self) -> bool:
        return self.kind in (TxKind.INVITE_CLIENT, TxKind.INVITE_SERVER)


_Handler: TypeAlias = Callable[[_Tx, TxState, float, SipMessage | None], None]


# Server states in which a transaction waits for the TU's answer: what the per-peer limit counts.
_AWAITING_TU: Final = frozenset({TxState.TRYING, TxState.PROCEEDING})


class TransactionLayer:
    """All client and server transactions of one SIP endpoint."""

    def __init__(
        self,
        *,
        timers: SipTimers = SipTimers(),
        max_server_transactions_per_peer: int = 500,
        local_sent_by: Callable[[Endpoint], bool] | None = None,
    ) -> None:
        self._timers = timers
        self._max_per_peer = max_server_transactions_per_peer
        self._local_sent_by = local_sent_by
        self._txs: dict[TxKey, _Tx] = {}
        self._heap: list[_HeapEntry] = []
        self._tokens = itertools.count(1)
        self._armed = 0  # live entries in the heap; the rest are stale and get compacted away
        self._immediate: list[tuple[_Tx, Trigger]] = []  # zero-length timers (reliable transports)
        self._now = float("-inf")
        self._out: list[tuple[bytes, Endpoint]] = []
        self._events: deque[TxEvent] = deque()
        self._peer_counts: dict[str, int] = {}
        self._refused_at: dict[str, float] = {}  # only peers at their limit
        self._merge_index: dict[_MergeKey, TxKey] = {}
        self._ack_index: dict[_DialogMatch, TxKey] = {}  # INVITE server txs in Accepted
        self._handlers: dict[Trigger, _Handler] = {
            Trigger.RX_1XX: self._on_rx_1xx,
            Trigger.RX_2XX: self._on_rx_2xx,
            Trigger.RX_FINAL_ERR: self._on_rx_final_err,
            Trigger.RX_REQUEST_RETRANSMIT: self._on_rx_request_retransmit,
            Trigger.RX_ACK: self._on_rx_ack,
            Trigger.TU_1XX: self._on_tu_1xx,
            Trigger.TU_2XX: self._on_tu_final,
            Trigger.TU_FINAL_ERR: self._on_tu_final,
            Trigger.TIMER_A: self._on_timer_a,
            Trigger.TIMER_B: self._on_timeout,
            Trigger.TIMER_D: self._on_wait_over,
            Trigger.TIMER_E: self._on_timer_e,
            Trigger.TIMER_F: self._on_timeout,
            Trigger.TIMER_G: self._on_timer_g,
            Trigger.TIMER_H: self._on_timeout,
            Trigger.TIMER_I: self._on_wait_over,
            Trigger.TIMER_J: self._on_wait_over,
            Trigger.TIMER_K: self._on_wait_over,
            Trigger.TIMER_L: self._on_timer_l,
            Trigger.TIMER_M: self._on_wait_over,
            Trigger.TRANSPORT_ERROR: self._on_transport_error,
        }

    # --- inputs from the network -------------------------------------------------------------

    def receive_datagram(self, data: bytes, source: Endpoint, *, now: float) -> None:
        """Handle one UDP datagram.  Never raises: bad input becomes a reply or an event."""
        now = self._clock(now)
        try:
            message = parse_message(data, datagram=True)
        except ParseError as error:
            # a 400 (or 513, 505) when the head still names Via and CSeq; never to a response/ACK
            tag = STATELESS_TAG_PREFIX + hashlib.blake2s(data, digest_size=6).hexdigest()
            reply = error_response_for_unparsable(data, error, to_tag=tag)
            if reply is not None:
                self._out.append((reply, source))
            self._emit(MessageRejected(f"unparsable message: {error}", source))
            return
        self._receive(message, source, now)

    def set_local_sent_by(self, predicate: Callable[[Endpoint], bool] | None) -> None:
        """Replace the check on response Vias (the adapter learns its bound ports late)."""
        self._local_sent_by = predicate

    def receive_message(self, message: SipMessage, source: Endpoint, *, now: float) -> None:
        """Handle one message framed by a stream transport.  Never raises."""
        self._receive(message, source, self._clock(now))

    # --- inputs from the TU ------------------------------------------------------------------

    def send_request(self, request: SipRequest, dest: Endpoint, *, now: float) -> TxKey:
        """Start a client transaction.  The request must carry a top Via with a z9hG4bK branch."""
        if request.method == "ACK":
            raise LocalProtocolError("an ACK is no transaction: use send_ack")
        try:
            branch = request.top_via.branch
            cseq = request.cseq
        except ParseError as error:
            raise LocalProtocolError(f"request cannot be sent: {error}") from error
        if cseq.method != request.method:
            raise LocalProtocolError(f"CSeq method {cseq.method} differs from {request.method}")
        if branch is None or not branch.startswith(MAGIC_COOKIE) or branch == MAGIC_COOKIE:
            raise LocalProtocolError(f"top Via branch {branch!r} lacks the z9hG4bK cookie (§8.1.1.7)")
        key = TxKey(branch, request.method)
        if key in self._txs:
            raise LocalProtocolError(f"a client transaction {key} already exists")
        now = self._clock(now)
        kind = TxKind.INVITE_CLIENT if request.method == "INVITE" else TxKind.NON_INVITE_CLIENT
        tx = _Tx(key, kind, dest, request.copy())
        tx.request_bytes = tx.request.to_bytes()
        self._txs[key] = tx
        self._out.append((tx.request_bytes, dest))
        retransmit, timeout = (
            (Trigger.TIMER_A, Trigger.TIMER_B) if tx.invite else (Trigger.TIMER_E, Trigger.TIMER_F)
        )
        if not tx.reliable:
            self._arm_interval(tx, retransmit, self._timers.t1, now)
        self._arm(tx, timeout, self._timers.timeout, now)
        if request.method == "CANCEL":
            self._guard_cancelled_invite(branch, now)
        return key

    def send_ack(self, ack: SipRequest, dest: Endpoint) -> None:
        """Send the ACK for a 2xx, built by the dialog layer; no transaction (§13.2.2.4)."""
        if ack.method != "ACK":
            raise LocalProtocolError(f"send_ack got a {ack.method}")
        self._out.append((ack.to_bytes(), dest))

    def send_response(self, key: TxKey, response: SipResponse, *, now: float) -> None:
        """Send a response on server transaction ``key``.

        Raises LocalProtocolError, changing nothing, for an unknown key, a second final response
        or a provisional response after the final one.
        """
        tx = self._txs.get(key)
        if tx is None or tx.kind not in SERVER_KINDS:
            raise LocalProtocolError(f"no server transaction {key}")
        status = response.status
        if not 100 <= status <= 699:
            raise LocalProtocolError(f"status {status} out of range")
        trigger = Trigger.TU_1XX if status < 200 else Trigger.TU_2XX if status < 300 else Trigger.TU_FINAL_ERR
        if trigger not in TRANSITIONS[tx.kind][tx.state]:
            raise LocalProtocolError(
                f"cannot send {status} on {tx.kind.name} transaction in {tx.state.name} ({trigger.name})"
            )
        try:
            response.to  # noqa: B018 - the handlers read the To tag; fail here, before any change
        except ParseError as error:
            raise LocalProtocolError(f"response cannot be sent: {error}") from error
        self._fire(tx, trigger, self._clock(now), response)

    def send_stateless(self, message: SipMessage, dest: Endpoint) -> None:
        """Send a message outside any transaction (e.g. a stateless reply chosen by the TU)."""
        self._out.append((message.to_bytes(), dest))

    def transport_failed(self, key: TxKey, *, now: float) -> None:
        """The transport could not send for ``key``.  A key already gone is ignored (a race)."""
        tx = self._txs.get(key)
        if tx is not None:
            self._fire(tx, Trigger.TRANSPORT_ERROR, self._clock(now), None)

    def destination_unreachable(self, dest: Endpoint, *, now: float) -> None:
        """A connection to ``dest`` could not be made: fail every transaction that sends there
        (§17.1.4/§17.2.4) at once instead of after 64*T1.  Rare, so a scan is fine."""
        now = self._clock(now)
        for tx in [t for t in self._txs.values() if t.peer == dest]:
            if self._txs.get(tx.key) is tx:
                self._fire(tx, Trigger.TRANSPORT_ERROR, now, None)

    # --- timers and output -------------------------------------------------------------------

    def handle_timer(self, *, now: float) -> None:
        """Fire every timer due at ``now``, earliest first."""
        now = self._clock(now)
        while self._heap and self._heap[0][0] <= now:  # not cached: _compact() swaps the list
            deadline, token, key, trigger = heapq.heappop(self._heap)
            tx = self._txs.get(key)
            if tx is None or tx.timers.get(trigger, (0.0, 0))[1] != token:
                continue  # stale: cancelled, re-armed or its transaction is gone
            del tx.timers[trigger]
            self._armed -= 1
            tx.fired_at = deadline
            self._fire(tx, trigger, now, None)

    def get_timer(self) -> float | None:
        """The earliest deadline of all transactions, or None."""
        heap = self._heap
        while heap:
            _, token, key, trigger = heap[0]
            tx = self._txs.get(key)
            if tx is not None and tx.timers.get(trigger, (0.0, 0))[1] == token:
                return heap[0][0]
            heapq.heappop(heap)
        return None

    def datagrams_to_send(self) -> list[tuple[bytes, Endpoint]]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> TxEvent | None:
        return self._events.popleft() if self._events else None

    def transaction_count(self) -> int:
        return len(self._txs)

    def snapshot(self) -> dict[TxKey, TxSnapshot]:
        """A fresh read-only view of every live transaction."""
        return {key: _snapshot(tx) for key, tx in self._txs.items()}

    # --- receiving ---------------------------------------------------------------------------

    def _receive(self, message: SipMessage, source: Endpoint, now: float) -> None:
        try:
            if isinstance(message, SipRequest):
                self._receive_request(message, source, now)
            else:
                self._receive_response(message, source, now)
        except RemoteProtocolError as error:  # raised only while reading, before any change
            self._emit(MessageRejected(f"malformed message: {error}", source))

    def _receive_request(self, request: SipRequest, source: Endpoint, now: float) -> None:
        view = _view_request(request)
        if request.method == "ACK":
            self._receive_ack(request, view, source, now)
            return
        tx = self._txs.get(view.key)
        if tx is not None:
            self._fire(tx, Trigger.RX_REQUEST_RETRANSMIT, now, request)
            return
        request = _stamp_received(request, view.via, source)
        merge_key = view.merge_key(request.method)
        if view.to_tag is None and merge_key in self._merge_index:
            self._reject(request, view, source, 482, "merged request (§8.2.2.2)")
            return
        cancelled: TxKey | None = None
        if request.method == "CANCEL":
            invite = self._txs.get(TxKey(view.key.branch, "INVITE", view.key.sent_by))
            if invite is None:
                self._reject(request, view, source, 481, "CANCEL matches no INVITE (§9.2)")
                return
            if invite.state is TxState.PROCEEDING:
                cancelled = invite.key
        if not self._admit(request, view, source, now):
            return
        kind = TxKind.INVITE_SERVER if request.method == "INVITE" else TxKind.NON_INVITE_SERVER
        tx = _Tx(view.key, kind, source, request)
        tx.server_peer = source.host
        tx.merge_key = merge_key
        tx.dialog_match = view.dialog_match
        self._txs[tx.key] = tx
        self._peer_counts[source.host] = self._peer_counts.get(source.host, 0) + 1
        self._merge_index.setdefault(merge_key, tx.key)
        if tx.invite:  # §17.2.1: 100 Trying at once, so the client stops Timer A
            self._send_response(tx, make_response(request, 100))
        self._emit(RequestReceived(request, source, tx.key, cancelled))

    def _receive_ack(self, ack: SipRequest, view: _RequestView, source: Endpoint, now: float) -> None:
        tx = self._txs.get(view.key)
        if tx is not None and tx.kind is TxKind.INVITE_SERVER:
            if tx.state is TxState.PROCEEDING:
                return  # an ACK before any final response: nothing to acknowledge
            if tx.state is not TxState.ACCEPTED and (
                view.key.branch.startswith(MAGIC_COOKIE) or view.to_tag == tx.to_tag
            ):
                self._fire(tx, Trigger.RX_ACK, now, ack)  # ACK of a non-2xx: absorbed (§17.2.1)
                return
        target = tx if tx is not None and tx.state is TxState.ACCEPTED else self._match_2xx_ack(view)
        if target is not None:
            self._fire(target, Trigger.RX_ACK, now, ack)
        elif view.to_tag is None or view.to_tag.startswith(STATELESS_TAG_PREFIX):
            return  # the ACK of a stateless non-2xx reply
        self._emit(RequestReceived(ack, source, None))  # RFC 6026 §7.1: 2xx ACKs go to the TU

    def _match_2xx_ack(self, view: _RequestView) -> _Tx | None:
        key = self._ack_index.get(view.dialog_match)
        tx = self._txs.get(key) if key is not None else None
        if tx is None or tx.state is not TxState.ACCEPTED:
            return None
        if tx.to_tag is not None and tx.to_tag != view.to_tag:
            return None
        return tx

    def _receive_response(self, response: SipResponse, source: Endpoint, now: float) -> None:
        vias = response.vias
        cseq = response.cseq
        if len(vias) != 1:  # §18.1.2: a response with more than one Via is not for a UA
            self._emit(MessageRejected(f"response with {len(vias)} Via values dropped", source))
            return
        if self._local_sent_by is not None and not self._local_sent_by(_via_endpoint(vias[0])):
            self._emit(MessageRejected(f"response for {vias[0].sent_by} is not ours: dropped", source))
            return
        branch = vias[0].branch
        tx = self._txs.get(TxKey(branch, cseq.method)) if branch else None
        if tx is None or tx.kind not in CLIENT_KINDS:
            self._emit(StrayResponse(response, source))
            return
        status = response.status
        trigger = Trigger.RX_1XX if status < 200 else Trigger.RX_2XX if status < 300 else Trigger.RX_FINAL_ERR
        if not self._fire(tx, trigger, now, response) and trigger is Trigger.RX_2XX and tx.invite:
            self._emit(StrayResponse(response, source))  # a 2xx after a non-2xx: still needs an ACK

    def _admit(self, request: SipRequest, view: _RequestView, source: Endpoint, now: float) -> bool:
        """Bound the requests per peer host that still wait for the TU (answered ones only absorb
        retransmissions for a while and cost no work): 503 at most once a second, then drop.

        A busy PBX finishes hundreds of BYEs and INFOs a minute; counting those would lock it out.
        """
        if self._peer_counts.get(source.host, 0) < self._max_per_peer:
            return True
        last = self._refused_at.get(source.host)
        if last is not None and now - last < REFUSAL_INTERVAL:
            self._emit(MessageRejected(f"{source.host} over its transaction limit: dropped", source))
            return False
        self._refused_at[source.host] = now
        self._reject(request, view, source, 503, f"{source.host} over its transaction limit")
        return False

    def _reject(
        self, request: SipRequest, view: _RequestView, source: Endpoint, status: int, reason: str
    ) -> None:
        """Answer statelessly and report it."""
        tag = None if view.to_tag is not None else _stateless_tag(view)
        response = make_response(request, status, to_tag=tag)
        if status == 503:
            response.headers.add("Retry-After", str(RETRY_AFTER_SECONDS))
        self._out.append((response.to_bytes(), source))
        self._emit(MessageRejected(f"{reason}: answered {status}", source))

    # --- the state machine -------------------------------------------------------------------

    def _fire(self, tx: _Tx, trigger: Trigger, now: float, message: SipMessage | None) -> bool:
        """Apply ``trigger`` if the table allows it in the current state; False if ignored."""
        target = TRANSITIONS[tx.kind][tx.state].get(trigger)
        if target is None:
            return False
        self._handlers[trigger](tx, target, now, message)
        tx.state = target
        if target not in _AWAITING_TU:
            self._release_peer(tx)  # answered: it only absorbs retransmissions now
        if target is TxState.TERMINATED:
            self._remove(tx)
        while self._immediate:  # zero-length Timers D, I, J, K on reliable transports
            itx, itrigger = self._immediate.pop()
            if self._txs.get(itx.key) is itx:
                self._fire(itx, itrigger, now, None)
        return True

    # Each handler runs with tx.state still the old state; ``new`` is the state being entered.

    def _on_rx_1xx(self, tx: _Tx, new: TxState, now: float, message: SipMessage | None) -> None:
        if tx.invite and tx.state is TxState.CALLING:  # §17.1.1.2 (a later CANCEL re-arms B)
            self._cancel(tx, Trigger.TIMER_A, Trigger.TIMER_B)
        self._to_tu(tx, message)

    def _on_rx_2xx(self, tx: _Tx, new: TxState, now: float, message: SipMessage | None) -> None:
        if not tx.invite:
            self._complete_client(tx, now, message)
            return
        if tx.state is not TxState.ACCEPTED:  # RFC 6026 §7.2: wait for more 2xx until Timer M
            self._cancel(tx, Trigger.TIMER_A, Trigger.TIMER_B)
            self._arm(tx, Trigger.TIMER_M, self._timers.timeout, now)
        self._to_tu(tx, message)

    def _on_rx_final_err(self, tx: _Tx, new: TxState, now: float, message: SipMessage | None) -> None:
        if not tx.invite:
            self._complete_client(tx, now, message)
            return
        if tx.state is TxState.COMPLETED:  # a retransmitted final: re-send the ACK (§17.1.1.2)
            if tx.ack_bytes is not None:
                self._out.append((tx.ack_bytes, tx.peer))
            return
        to_value = message.headers.get("To") if isinstance(message, SipResponse) else None
        tx.ack_bytes = _ack_for(tx.request, to_value).to_bytes()
        self._out.append((tx.ack_bytes, tx.peer))
        self._cancel(tx, Trigger.TIMER_A, Trigger.TIMER_B)
        self._arm(tx, Trigger.TIMER_D, 0.0 if tx.reliable else self._timers.timer_d, now)
        self._to_tu(tx, message)

    def _complete_client(self, tx: _Tx, now: float, message: SipMessage | None) -> None:
        """Non-INVITE client: a final response ends retransmission, Timer K absorbs copies."""
        self._cancel(tx, Trigger.TIMER_E, Trigger.TIMER_F)
        self._arm(tx, Trigger.TIMER_K, 0.0 if tx.reliable else self._timers.t4, now)
        self._to_tu(tx, message)

    def _on_rx_request_retransmit(
        self, tx: _Tx, new: TxState, now: float, message: SipMessage | None
    ) -> None:
        if tx.response_bytes is not None:  # §17.2.1, §17.2.2: re-send the latest response
            self._out.append((tx.response_bytes, tx.peer))

    def _on_rx_ack(self, tx: _Tx, new: TxState, now: float, message: SipMessage | None) -> None:
        tx.acked = True
        if tx.state is TxState.ACCEPTED:
            self._cancel(tx, Trigger.TIMER_G)  # the 2xx arrived; Timer L keeps absorbing INVITEs
            return
        self._cancel(tx, Trigger.TIMER_G, Trigger.TIMER_H)
        self._arm(tx, Trigger.TIMER_I, 0.0 if tx.reliable else self._timers.t4, now)

    def _on_tu_1xx(self, tx: _Tx, new: TxState, now: float, message: SipMessage | None) -> None:
        if isinstance(message, SipResponse):
            self._send_response(tx, message)

    def _on_tu_final(self, tx: _Tx, new: TxState, now: float, message: SipMessage | None) -> None:
        if isinstance(message, SipResponse):
            self._send_response(tx, message)
            tx.to_tag = message.to.tag
        if not tx.invite:  # §17.2.2: Timer J absorbs request retransmissions
            self._arm(tx, Trigger.TIMER_J, 0.0 if tx.reliable else self._timers.timeout, now)
            return
        if not tx.reliable:  # Timer G: the final (2xx too, §13.3.1.4) is re-sent until the ACK
            self._arm_interval(tx, Trigger.TIMER_G, self._timers.t1, now)
        if new is TxState.ACCEPTED:
            self._arm(tx, Trigger.TIMER_L, self._timers.timeout, now)
            if tx.dialog_match is not None:
                self._ack_index[tx.dialog_match] = tx.key
        else:
            self._arm(tx, Trigger.TIMER_H, self._timers.timeout, now)

    def _on_timer_a(self, tx: _Tx, new: TxState, now: float, message: SipMessage | None) -> None:
        self._retransmit_request(tx)
        self._rearm_interval(tx, Trigger.TIMER_A, 2 * tx.intervals[Trigger.TIMER_A], now)

    def _on_timer_e(self, tx: _Tx, new: TxState, now: float, message: SipMessage | None) -> None:
        self._retransmit_request(tx)
        t2 = self._timers.t2  # §17.1.2.2: doubling up to T2; T2 once a provisional arrived
        interval = t2 if tx.state is TxState.PROCEEDING else min(2 * tx.intervals[Trigger.TIMER_E], t2)
        self._rearm_interval(tx, Trigger.TIMER_E, interval, now)

    def _on_timer_g(self, tx: _Tx, new: TxState, now: float, message: SipMessage | None) -> None:
        if tx.response_bytes is not None:
            self._out.append((tx.response_bytes, tx.peer))
            tx.retransmits += 1
        interval = min(2 * tx.intervals[Trigger.TIMER_G], self._timers.t2)
        self._rearm_interval(tx, Trigger.TIMER_G, interval, now)

    def _on_timer_l(self, tx: _Tx, new: TxState, now: float, message: SipMessage | None) -> None:
        if not tx.acked:
            self._emit(AckNotReceived(tx.key))

    def _on_timeout(self, tx: _Tx, new: TxState, now: float, message: SipMessage | None) -> None:
        self._emit(TxTimedOut(tx.key))  # Timers B, F, H

    def _on_wait_over(self, tx: _Tx, new: TxState, now: float, message: SipMessage | None) -> None:
        """Timers D, I, J, K, M: the absorbing wait is over; Terminated follows."""

    def _on_transport_error(self, tx: _Tx, new: TxState, now: float, message: SipMessage | None) -> None:
        self._emit(TxTransportFailed(tx.key))
        self._cancel(tx, Trigger.TIMER_G)  # Accepted stays (to absorb INVITEs) but stops sending

    # --- effects -----------------------------------------------------------------------------

    def _to_tu(self, tx: _Tx, message: SipMessage | None) -> None:
        if isinstance(message, SipResponse):
            tx.status = message.status
            self._emit(ResponseReceived(message, tx.key))

    def _send_response(self, tx: _Tx, response: SipResponse) -> None:
        tx.response_bytes = response.to_bytes()
        tx.status = response.status
        self._out.append((tx.response_bytes, tx.peer))  # to the source: symmetric, NAT-friendly

    def _retransmit_request(self, tx: _Tx) -> None:
        self._out.append((tx.request_bytes, tx.peer))
        tx.retransmits += 1

    def _guard_cancelled_invite(self, branch: str, now: float) -> None:
        """§9.1: an INVITE with no final response 64*T1 after its CANCEL is given up."""
        invite = self._txs.get(TxKey(branch, "INVITE"))
        if invite is not None and invite.state is TxState.PROCEEDING:
            self._arm(invite, Trigger.TIMER_B, self._timers.timeout, now)

    def _release_peer(self, tx: _Tx) -> None:
        """Stop counting ``tx`` against its peer's limit (once it is answered or removed)."""
        host = tx.server_peer
        if host is None:
            return
        tx.server_peer = None
        count = self._peer_counts[host] - 1
        if count:
            self._peer_counts[host] = count
        else:
            del self._peer_counts[host]
        if count < self._max_per_peer:
            self._refused_at.pop(host, None)

    def _emit(self, event: TxEvent) -> None:
        self._events.append(event)

    def _remove(self, tx: _Tx) -> None:
        del self._txs[tx.key]
        self._armed -= len(tx.timers)
        tx.timers.clear()
        self._compact()
        self._release_peer(tx)
        if tx.merge_key is not None and self._merge_index.get(tx.merge_key) == tx.key:
            del self._merge_index[tx.merge_key]
        if tx.dialog_match is not None and self._ack_index.get(tx.dialog_match) == tx.key:
            del self._ack_index[tx.dialog_match]
        self._emit(TxTerminated(tx.key))

    # --- timer bookkeeping: one heap, stale entries skipped lazily ---------------------------

    def _clock(self, now: float) -> float:
        """Time never runs backwards inside the layer, whatever the caller passes."""
        self._now = max(self._now, now)
        return self._now

    def _arm(self, tx: _Tx, trigger: Trigger, delay: float, now: float) -> None:
        if delay <= 0:
            self._immediate.append((tx, trigger))
            return
        self._arm_at(tx, trigger, now + delay)

    def _arm_at(self, tx: _Tx, trigger: Trigger, deadline: float) -> None:
        token = next(self._tokens)
        if trigger not in tx.timers:
            self._armed += 1
        tx.timers[trigger] = (deadline, token)
        heapq.heappush(self._heap, (deadline, token, tx.key, trigger))
        self._compact()

    def _compact(self) -> None:
        """Rebuild the heap when stale entries outnumber live ones 3:1 (amortized O(1))."""
        if len(self._heap) > 64 and len(self._heap) > 4 * self._armed:
            self._heap = [
                (due, tok, t.key, trig) for t in self._txs.values() for trig, (due, tok) in t.timers.items()
            ]
            heapq.heapify(self._heap)

    def _arm_interval(self, tx: _Tx, trigger: Trigger, interval: float, now: float) -> None:
        tx.intervals[trigger] = interval
        self._arm_at(tx, trigger, now + interval)

    def _rearm_interval(self, tx: _Tx, trigger: Trigger, interval: float, now: float) -> None:
        """Next retransmission counted from when the timer was due, so lateness does not drift;
        a timer handled very late does not burst the missed copies."""
        tx.intervals[trigger] = interval
        deadline = tx.fired_at + interval
        self._arm_at(tx, trigger, deadline if deadline > now else now + interval)

    def _cancel(self, tx: _Tx, *triggers: Trigger) -> None:
        for trigger in triggers:
            if tx.timers.pop(trigger, None) is not None:
                self._armed -= 1


# --- helpers ---------------------------------------------------------------------------------


def _view_request(request: SipRequest) -> _RequestView:
    """Read the matching fields (§17.2.3); raises RemoteProtocolError, changing nothing."""
    via = request.top_via
    cseq = request.cseq
    call_id = request.call_id
    from_tag = request.from_.tag or ""
    to_tag = request.to.tag
    method = "INVITE" if request.method == "ACK" else request.method
    host = via.host.lower()
    sent_by = host if via.port is None else f"{host}:{via.port}"
    branch = via.branch
    if branch is None or not branch.startswith(MAGIC_COOKIE):
        # RFC 2543 peers: match on Request-URI, From tag, Call-ID, CSeq number and top Via; the
        # To tag is left out so the ACK (which carries the response's tag) finds its INVITE.
        branch = "|".join(("rfc2543", str(request.uri), from_tag, call_id, str(cseq.seq), str(via)))
    return _RequestView(TxKey(branch, method, sent_by), via, call_id, cseq.seq, from_tag, to_tag)


def _stamp_received(request: SipRequest, top: Via, source: Endpoint) -> SipRequest:
    """Add ``received`` (§18.2.1) and fill ``rport`` (RFC 3581) in the top Via, on a copy."""
    via = top
    if via.host.strip("[]").lower() != source.host.lower() or via.wants_rport:
        via = via.with_param("received", source.host)
    if via.wants_rport:
        via = via.with_param("rport", str(source.port))
    if via is top:
        return request
    stamped = request.copy()
    stamped.headers.replace_all("Via", [str(via), *request.headers.get_all("Via")[1:]])
    return stamped


def _stateless_tag(view: _RequestView) -> str:
    """A To tag for stateless replies: deterministic (no RNG here), recognisable in the ACK."""
    digest = hashlib.blake2s(f"{view.key}".encode(), digest_size=6).hexdigest()
    return STATELESS_TAG_PREFIX + digest


def _ack_for(invite: SipRequest, to_value: str | None) -> SipRequest:
    """The ACK of a non-2xx final (§17.1.1.3): the INVITE's Request-URI, top Via (same branch),
    From, Call-ID, CSeq number and Route; To from the response."""
    headers = Headers()
    headers.add("Via", invite.headers.get_all("Via")[0])
    headers.add("Max-Forwards", "70")
    headers.add("From", invite.headers.get("From") or "")
    headers.add("To", to_value if to_value is not None else invite.headers.get("To") or "")
    headers.add("Call-ID", invite.headers.get("Call-ID") or "")
    headers.add("CSeq", f"{invite.cseq.seq} ACK")
    for route in invite.headers.get_lines("Route"):
        headers.add("Route", route)
    return SipRequest("ACK", invite.uri, headers)


def _via_endpoint(via: Via) -> Endpoint:
    transport = via.transport.lower()
    port = via.port if via.port is not None else _DEFAULT_PORTS.get(transport, 5060)
    return Endpoint(via.host.strip("[]"), port, transport)


def _snapshot(tx: _Tx) -> TxSnapshot:
    timers = tuple(sorted(((t, d) for t, (d, _) in tx.timers.items()), key=lambda item: item[1]))
    return TxSnapshot(tx.key, tx.kind, tx.state, tx.peer, timers, tx.status, tx.retransmits, tx.acked)


__all__ = [
    "MAGIC_COOKIE",
    "STATELESS_TAG_PREFIX",
    "AckNotReceived",
    "MessageRejected",
    "RequestReceived",
    "ResponseReceived",
    "SipTimers",
    "StrayResponse",
    "TransactionLayer",
    "Trigger",
    "TxEvent",
    "TxKey",
    "TxKind",
    "TxSnapshot",
    "TxState",
    "TxTerminated",
    "TxTimedOut",
    "TxTransportFailed",
]
