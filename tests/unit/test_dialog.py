"""Dialogs (RFC 3261 §12) as pure values: creation from either side, in-dialog requests, CSeq."""

from __future__ import annotations

import pytest

from ccdaemon.sip.dialog import Dialog, DialogId, DialogState, DialogTable
from ccdaemon.sip.errors import LocalProtocolError, RemoteProtocolError
from ccdaemon.sip.message import SipRequest, SipResponse, make_response, parse_message
from ccdaemon.sip.uri import SipUri

INVITE = (
    b"INVITE sip:100@pbx.example:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKpbx1\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.9:5062;branch=z9hG4bKphone1\r\n"
    b"Record-Route: <sip:10.0.0.1:5060;lr;ftag=ct>\r\n"
    b"Record-Route: <sip:10.0.0.2;lr>\r\n"
    b'Max-Forwards: 69\r\nFrom: "Caller" <sip:300@pbx.example>;tag=ct\r\nTo: <sip:100@pbx.example>\r\n'
    b"Call-ID: abc@10.0.0.9\r\nCSeq: 7 INVITE\r\nContact: <sip:300@10.0.0.9:5062>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def invite() -> SipRequest:
    message = parse_message(INVITE)
    assert isinstance(message, SipRequest)
    return message


def uas_dialog(status: int = 200) -> Dialog:
    request = invite()
    response = make_response(request, status, to_tag="us")
    response.headers.add("Contact", "<sip:100@10.0.0.5:5070>")
    return Dialog.as_uas(request, response)


def test_uas_dialog_from_invite_and_2xx() -> None:
    dialog = uas_dialog()
    assert dialog.id == DialogId("abc@10.0.0.9", "us", "ct")
    assert dialog.state is DialogState.CONFIRMED
    assert dialog.remote_seq == 7
    assert dialog.remote_target == SipUri(host="10.0.0.9", user="300", port=5062)
    # the UAS keeps Record-Route order: the first element is the hop nearest to it
    assert [str(r.uri) for r in dialog.route_set] == ["sip:10.0.0.1:5060;lr;ftag=ct", "sip:10.0.0.2;lr"]
    assert str(dialog.next_hop()) == "sip:10.0.0.1:5060;lr;ftag=ct"


def test_uas_early_dialog_from_180_with_tag() -> None:
    assert uas_dialog(180).state is DialogState.EARLY


def test_bye_from_uas_side_swaps_from_and_to_and_routes() -> None:
    dialog = uas_dialog()
    bye = dialog.new_request("BYE")
    assert bye.method == "BYE"
    assert str(bye.uri) == "sip:300@10.0.0.9:5062"  # remote target
    assert bye.from_.tag == "us" and bye.to.tag == "ct"
    assert bye.cseq.seq == 1 and bye.cseq.method == "BYE"
    assert bye.headers.get_lines("Route") == ["<sip:10.0.0.1:5060;lr;ftag=ct>", "<sip:10.0.0.2;lr>"]
    assert bye.headers.get("Contact") is None
    assert dialog.new_request("INFO").cseq.seq == 2  # local CSeq grows per request


def test_uac_dialog_reverses_record_route_and_acks_with_invite_cseq() -> None:
    request = invite()
    response = make_response(request, 200, to_tag="callee")
    response.headers.add("Contact", "<sip:201@10.0.0.20:5060>")
    for rr in request.headers.get_lines("Record-Route"):
        response.headers.add("Record-Route", rr)
    dialog = Dialog.as_uac(request, response)
    assert dialog.id == DialogId("abc@10.0.0.9", "ct", "callee")
    assert [str(r.uri) for r in dialog.route_set] == ["sip:10.0.0.2;lr", "sip:10.0.0.1:5060;lr;ftag=ct"]
    ack = dialog.ack_for(7)
    assert ack.method == "ACK" and ack.cseq.seq == 7 and ack.cseq.method == "ACK"
    assert str(ack.uri) == "sip:201@10.0.0.20:5060"
    assert dialog.new_request("BYE").cseq.seq == 8


def test_strict_router_goes_into_request_uri() -> None:
    request = invite()
    request.headers.replace_all("Record-Route", ["<sip:10.0.0.1:5060>"])  # no ;lr: RFC 2543 proxy
    response = make_response(request, 200, to_tag="us")
    dialog = Dialog.as_uas(request, response)
    bye = dialog.new_request("BYE")
    assert str(bye.uri) == "sip:10.0.0.1:5060"
    assert bye.headers.get_lines("Route") == ["<sip:300@10.0.0.9:5062>"]


def test_stale_cseq_is_refused_with_500_and_target_refreshed_by_reinvite() -> None:
    dialog = uas_dialog()
    request = invite()
    request.headers.set("CSeq", "7 INFO")
    request.method = "INFO"
    with pytest.raises(RemoteProtocolError) as info:
        dialog.accept_request(request)
    assert info.value.status_hint == 500
    reinvite = invite()
    reinvite.headers.set("CSeq", "8 INVITE")
    reinvite.headers.set("Contact", "<sip:300@10.0.0.99:5062>")
    dialog.accept_request(reinvite)
    assert dialog.remote_seq == 8
    assert str(dialog.remote_target) == "sip:300@10.0.0.99:5062"


def test_bye_terminates_and_no_request_after() -> None:
    dialog = uas_dialog()
    bye = invite()
    bye.method = "BYE"
    bye.headers.set("CSeq", "8 BYE")
    dialog.accept_request(bye)
    assert dialog.state is DialogState.TERMINATED
    with pytest.raises(LocalProtocolError):
        dialog.new_request("INFO")


def test_ack_and_cancel_are_not_new_requests() -> None:
    dialog = uas_dialog()
    for method in ("ACK", "CANCEL"):
        with pytest.raises(LocalProtocolError):
            dialog.new_request(method)


def test_early_uac_dialog_confirmed_by_2xx_and_ended_by_error() -> None:
    request = invite()
    ringing = make_response(request, 180, to_tag="callee")
    dialog = Dialog.as_uac(request, ringing)
    assert dialog.state is DialogState.EARLY
    ok = make_response(request, 200, to_tag="callee")
    ok.headers.add("Contact", "<sip:201@10.0.0.21>")
    dialog.accept_response(ok)
    assert dialog.state is DialogState.CONFIRMED
    assert str(dialog.remote_target) == "sip:201@10.0.0.21"
    other = Dialog.as_uac(request, ringing)
    other.accept_response(make_response(request, 486, to_tag="callee"))
    assert other.state is DialogState.TERMINATED


def test_481_to_in_dialog_request_ends_dialog() -> None:
    dialog = uas_dialog()
    info = dialog.new_request("INFO")
    info.headers.add("Via", "SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bKx")
    dialog.accept_response(SipResponse(481, headers=make_response(info, 481).headers))
    assert dialog.state is DialogState.TERMINATED


def test_dialog_table_matches_requests_and_responses() -> None:
    table = DialogTable()
    dialog = uas_dialog()
    table.add(dialog)
    bye_in = invite()
    bye_in.method = "BYE"
    bye_in.headers.set("To", "<sip:100@pbx.example>;tag=us")
    bye_in.headers.set("CSeq", "8 BYE")
    assert table.match(bye_in) is dialog
    ours = dialog.new_request("BYE")
    response = make_response(ours, 200)
    # a response to our request: From carries our tag, To the remote one
    assert table.match(response) is dialog
    assert table.by_call_id("abc@10.0.0.9") == [dialog]
    table.discard(dialog.id)
    assert len(table) == 0 and table.match(bye_in) is None


def test_rfc2543_invite_without_contact_targets_the_from_uri() -> None:
    request = invite()
    request.headers.remove("Contact")
    dialog = Dialog.as_uas(request, make_response(request, 200, to_tag="us"))
    assert str(dialog.remote_target) == "sip:300@pbx.example"
