"""The transaction state machines as data (RFC 3261 §17 with RFC 6026's Accepted state).

Everything that decides *which state follows which* lives in :data:`TRANSITIONS`; the effects
(send, retransmit, build the ACK, arm timers, tell the TU) live in the ``_on_<trigger>`` handlers
of :class:`ccdaemon.sip.transaction.TransactionLayer`.  A trigger missing from a state's row is
not a transition: a network or timer trigger is ignored (retransmissions the RFC says to absorb),
a TU trigger raises ``LocalProtocolError`` and changes nothing.  The diagrams in
``docs/diagrams/transactions.md`` and the exhaustive state x trigger test are generated from here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final


class TxKind(enum.Enum):
    INVITE_CLIENT = 1  # §17.1.1, RFC 6026 §7.2
    NON_INVITE_CLIENT = 2  # §17.1.2
    INVITE_SERVER = 3  # §17.2.1, RFC 6026 §7.1
    NON_INVITE_SERVER = 4  # §17.2.2


class TxState(enum.Enum):
    CALLING = 1
    TRYING = 2
    PROCEEDING = 3
    ACCEPTED = 4
    COMPLETED = 5
    CONFIRMED = 6
    TERMINATED = 7


class Trigger(enum.Enum):
    RX_1XX = 1  # provisional response received (client)
    RX_2XX = 2  # 2xx received (client)
    RX_FINAL_ERR = 3  # 300-699 received (client)
    RX_REQUEST_RETRANSMIT = 4  # the request again (server)
    RX_ACK = 5  # ACK matching an INVITE server transaction
    TU_1XX = 6  # the TU sends a provisional response (server)
    TU_2XX = 7  # the TU sends a 2xx (server)
    TU_FINAL_ERR = 8  # the TU sends 300-699 (server)
    TIMER_A = 9  # INVITE request retransmit (UDP)
    TIMER_B = 10  # INVITE transaction timeout
    TIMER_D = 11  # wait for final-response retransmissions (INVITE client)
    TIMER_E = 12  # non-INVITE request retransmit (UDP)
    TIMER_F = 13  # non-INVITE transaction timeout
    TIMER_G = 14  # INVITE final response retransmit (UDP); also the 2xx in Accepted
    TIMER_H = 15  # wait for ACK of a non-2xx
    TIMER_I = 16  # wait for ACK retransmissions
    TIMER_J = 17  # wait for non-INVITE request retransmissions
    TIMER_K = 18  # wait for non-INVITE response retransmissions
    TIMER_L = 19  # RFC 6026: Accepted, wait for INVITE retransmissions / the 2xx ACK
    TIMER_M = 20  # RFC 6026: Accepted, wait for 2xx retransmissions (client)
    TRANSPORT_ERROR = 21


_S = TxState
_T = Trigger

_INVITE_CLIENT: dict[TxState, dict[Trigger, TxState]] = {
    _S.CALLING: {
        _T.TIMER_A: _S.CALLING,
        _T.TIMER_B: _S.TERMINATED,
        _T.RX_1XX: _S.PROCEEDING,
        _T.RX_2XX: _S.ACCEPTED,
        _T.RX_FINAL_ERR: _S.COMPLETED,
        _T.TRANSPORT_ERROR: _S.TERMINATED,
    },
    _S.PROCEEDING: {
        _T.RX_1XX: _S.PROCEEDING,
        _T.RX_2XX: _S.ACCEPTED,
        _T.RX_FINAL_ERR: _S.COMPLETED,
        # Timer B is stopped by the first 1xx and armed again only when the TU sends a CANCEL:
        # no final within 64*T1 of the CANCEL ends the INVITE transaction (§9.1).
        _T.TIMER_B: _S.TERMINATED,
        _T.TRANSPORT_ERROR: _S.TERMINATED,
    },
    _S.ACCEPTED: {
        _T.RX_2XX: _S.ACCEPTED,  # RFC 6026 §8.4: every 2xx (retransmitted or forked) to the TU
        _T.TIMER_M: _S.TERMINATED,
    },
    _S.COMPLETED: {
        _T.RX_FINAL_ERR: _S.COMPLETED,  # §17.1.1.2: re-send the ACK
        _T.TIMER_D: _S.TERMINATED,
        _T.TRANSPORT_ERROR: _S.TERMINATED,
    },
    _S.TERMINATED: {},
}

_NON_INVITE_CLIENT: dict[TxState, dict[Trigger, TxState]] = {
    _S.TRYING: {
        _T.TIMER_E: _S.TRYING,
        _T.TIMER_F: _S.TERMINATED,
        _T.RX_1XX: _S.PROCEEDING,
        _T.RX_2XX: _S.COMPLETED,
        _T.RX_FINAL_ERR: _S.COMPLETED,
        _T.TRANSPORT_ERROR: _S.TERMINATED,
    },
    _S.PROCEEDING: {
        _T.TIMER_E: _S.PROCEEDING,
        _T.TIMER_F: _S.TERMINATED,
        _T.RX_1XX: _S.PROCEEDING,
        _T.RX_2XX: _S.COMPLETED,
        _T.RX_FINAL_ERR: _S.COMPLETED,
        _T.TRANSPORT_ERROR: _S.TERMINATED,
    },
    _S.COMPLETED: {
        _T.TIMER_K: _S.TERMINATED,  # response retransmissions are absorbed (§17.1.2.2)
    },
    _S.TERMINATED: {},
}

_INVITE_SERVER: dict[TxState, dict[Trigger, TxState]] = {
    _S.PROCEEDING: {
        _T.RX_REQUEST_RETRANSMIT: _S.PROCEEDING,  # re-send the latest provisional
        _T.TU_1XX: _S.PROCEEDING,
        _T.TU_2XX: _S.ACCEPTED,
        _T.TU_FINAL_ERR: _S.COMPLETED,
        _T.TRANSPORT_ERROR: _S.TERMINATED,
    },
    _S.ACCEPTED: {
        # INVITE retransmissions are absorbed (RFC 6026 §7.1): Timer G already re-sends the 2xx
        _T.RX_ACK: _S.ACCEPTED,  # the 2xx ACK: stop retransmitting, stay to absorb INVITEs
        _T.TIMER_G: _S.ACCEPTED,  # 2xx retransmit (§13.3.1.4), owned by this layer
        _T.TIMER_L: _S.TERMINATED,
        _T.TRANSPORT_ERROR: _S.ACCEPTED,  # inform the TU; stay, so INVITEs are still absorbed
    },
    _S.COMPLETED: {
        _T.RX_REQUEST_RETRANSMIT: _S.COMPLETED,
        _T.RX_ACK: _S.CONFIRMED,
        _T.TIMER_G: _S.COMPLETED,
        _T.TIMER_H: _S.TERMINATED,
        _T.TRANSPORT_ERROR: _S.TERMINATED,
    },
    _S.CONFIRMED: {
        _T.TIMER_I: _S.TERMINATED,  # ACK and INVITE retransmissions are absorbed (§17.2.1)
    },
    _S.TERMINATED: {},
}

_NON_INVITE_SERVER: dict[TxState, dict[Trigger, TxState]] = {
    _S.TRYING: {
        # request retransmissions are discarded in Trying (§17.2.2)
        _T.TU_1XX: _S.PROCEEDING,
        _T.TU_2XX: _S.COMPLETED,
        _T.TU_FINAL_ERR: _S.COMPLETED,
    },
    _S.PROCEEDING: {
        _T.RX_REQUEST_RETRANSMIT: _S.PROCEEDING,
        _T.TU_1XX: _S.PROCEEDING,
        _T.TU_2XX: _S.COMPLETED,
        _T.TU_FINAL_ERR: _S.COMPLETED,
        _T.TRANSPORT_ERROR: _S.TERMINATED,
    },
    _S.COMPLETED: {
        _T.RX_REQUEST_RETRANSMIT: _S.COMPLETED,
        _T.TIMER_J: _S.TERMINATED,
        _T.TRANSPORT_ERROR: _S.TERMINATED,
    },
    _S.TERMINATED: {},
}


def _freeze(
    table: dict[TxState, dict[Trigger, TxState]],
) -> Mapping[TxState, Mapping[Trigger, TxState]]:
    return MappingProxyType({state: MappingProxyType(row) for state, row in table.items()})


TRANSITIONS: Final[Mapping[TxKind, Mapping[TxState, Mapping[Trigger, TxState]]]] = MappingProxyType(
    {
        TxKind.INVITE_CLIENT: _freeze(_INVITE_CLIENT),
        TxKind.NON_INVITE_CLIENT: _freeze(_NON_INVITE_CLIENT),
        TxKind.INVITE_SERVER: _freeze(_INVITE_SERVER),
        TxKind.NON_INVITE_SERVER: _freeze(_NON_INVITE_SERVER),
    }
)

INITIAL_STATE: Final[Mapping[TxKind, TxState]] = MappingProxyType(
    {
        TxKind.INVITE_CLIENT: TxState.CALLING,
        TxKind.NON_INVITE_CLIENT: TxState.TRYING,
        TxKind.INVITE_SERVER: TxState.PROCEEDING,
        TxKind.NON_INVITE_SERVER: TxState.TRYING,
    }
)

CLIENT_KINDS: Final = frozenset({TxKind.INVITE_CLIENT, TxKind.NON_INVITE_CLIENT})
SERVER_KINDS: Final = frozenset({TxKind.INVITE_SERVER, TxKind.NON_INVITE_SERVER})
TU_TRIGGERS: Final = frozenset({Trigger.TU_1XX, Trigger.TU_2XX, Trigger.TU_FINAL_ERR})
TIMER_TRIGGERS: Final = frozenset(t for t in Trigger if t.name.startswith("TIMER_"))

__all__ = [
    "CLIENT_KINDS",
    "INITIAL_STATE",
    "SERVER_KINDS",
    "TIMER_TRIGGERS",
    "TRANSITIONS",
    "TU_TRIGGERS",
    "Trigger",
    "TxKind",
    "TxState",
]
