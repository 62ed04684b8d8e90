"""RFC 3264 offer/answer for the audio stream (ccdaemon.sip.offer_answer)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccdaemon.sip.errors import RemoteProtocolError
from ccdaemon.sip.offer_answer import (
    MediaCapabilities,
    NegotiatedMedia,
    NotAcceptable,
    accept_answer,
    answer_offer,
    make_offer,
    make_reoffer,
)
from ccdaemon.sip.sdp import (
    Direction,
    MediaDescription,
    MediaFormat,
    Origin,
    SdpError,
    SessionDescription,
    parse_sdp,
)
from tests.unit.test_sdp import (
    BARESIP,
    CISCO_HOLD,
    IPV6,
    KAMAILIO_RTPENGINE,
    LINPHONE,
    SIPP_UAC,
    SIPP_UAC_PCAP,
    WEBRTC,
    crlf,
    session_descriptions,
)

S, R, SR, IA = Direction.SENDONLY, Direction.RECVONLY, Direction.SENDRECV, Direction.INACTIVE
CAPS = MediaCapabilities("192.0.2.10", 40000)
PCMU = MediaFormat(0, "PCMU", 8000)
PCMA = MediaFormat(8, "PCMA", 8000)
TE101 = MediaFormat(101, "telephone-event", 8000, fmtp="0-15")


def answer(
    offer: bytes | str | SessionDescription, caps: MediaCapabilities = CAPS, **kwargs: Direction
) -> tuple[SessionDescription, NegotiatedMedia]:
    sd = offer if isinstance(offer, SessionDescription) else parse_sdp(offer)
    return answer_offer(sd, caps, session_id=777, version=1, **kwargs)


def offer_with(media_lines: str, *, connection: str = "198.51.100.7") -> bytes:
    return crlf(f"v=0\no=peer 5 5 IN IP4 {connection}\ns=-\nc=IN IP4 {connection}\nt=0 0\n" + media_lines)


# --- capabilities and our offers -----------------------------------------------------------------------


def test_make_offer_lists_our_codecs_then_telephone_event() -> None:
    offer = make_offer(CAPS, session_id=42, version=3)
    assert offer.to_bytes() == crlf("""
v=0
o=- 42 3 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
m=audio 40000 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
""")
    assert parse_sdp(offer.to_bytes()) == offer


def test_make_offer_options() -> None:
    caps = MediaCapabilities("2001:db8::10", 5000, codecs=("pcma",), telephone_event=False, ptime=30)
    offer = make_offer(caps, session_id=1, version=1, direction=S)
    (audio,) = offer.media
    assert audio.formats == (PCMA,)
    assert audio.direction is S
    assert audio.ptime == 30
    assert offer.connection_address_type == "IP6"
    assert offer.origin.address_type == "IP6"


def test_make_offer_with_dynamic_telephone_event_96() -> None:
    offer = make_offer(MediaCapabilities("h", 1, telephone_event_pt=96), session_id=1, version=1)
    assert offer.media[0].formats[-1] == MediaFormat(96, "telephone-event", 8000, fmtp="0-15")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"codecs": ()}, "at least one codec"),
        ({"codecs": ("PCMU", "opus")}, "unsupported codecs ['opus']"),
        ({"codecs": ("CN",)}, "unsupported codecs ['CN']"),
        ({"codecs": ("H261",)}, "unsupported codecs ['H261']"),
        ({"port": 0}, "RTP port 0"),
        ({"port": 65536}, "RTP port 65536"),
        ({"telephone_event_pt": 8}, "not dynamic"),
        ({"telephone_event_pt": 128}, "not dynamic"),
        ({"ptime": 0}, "ptime must be positive"),
    ],
)
def test_capabilities_are_validated(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"address": "h", "port": 1, **kwargs}
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        MediaCapabilities(**arguments)  # type: ignore[arg-type]


def test_capabilities_formats_map_names_to_static_payload_types() -> None:
    assert MediaCapabilities("h", 1, codecs=("PCMA", "g722", "PCMU")).formats == (
        PCMA,
        MediaFormat(9, "G722", 8000),
        PCMU,
    )


# --- answering real offers -----------------------------------------------------------------------------


def test_answer_sipp_offer() -> None:
    sdp, media = answer(SIPP_UAC)
    assert sdp.to_bytes() == crlf("""
v=0
o=- 777 1 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
m=audio 40000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=ptime:20
a=sendrecv
""")
    assert media == NegotiatedMedia(
        remote_address="127.0.0.1",
        remote_port=6000,
        codec=PCMU,
        dtmf_payload_type=None,
        local_direction=SR,
        remote_direction=SR,
        ptime=20,
        media_index=0,
    )
    assert not media.peer_holds and media.may_send and media.may_receive


def test_answer_sipp_pcma_with_dtmf_keeps_our_event_list() -> None:
    sdp, media = answer(SIPP_UAC_PCAP)
    assert media.codec == PCMA
    assert media.dtmf_payload_type == 101
    assert sdp.media[0].formats == (PCMA, TE101)


def test_answer_baresip_picks_first_supported_codec_in_offerers_order() -> None:
    # Offered: opus, G722, PCMU, PCMA.  Our own preference (PCMA first) does not matter.
    _, media = answer(BARESIP, MediaCapabilities("192.0.2.10", 40000, codecs=("PCMA", "PCMU")))
    assert media.codec == PCMU
    assert media.dtmf_payload_type == 101
    # with G722 enabled it is the first we support
    _, media = answer(BARESIP, MediaCapabilities("192.0.2.10", 40000, codecs=("PCMA", "G722")))
    assert media.codec == MediaFormat(9, "G722", 8000)


def test_answer_linphone_offer_rejects_video_and_picks_the_8khz_telephone_event() -> None:
    sdp, media = answer(LINPHONE)
    assert media.codec == PCMU
    assert media.dtmf_payload_type == 100  # not 101 (48 kHz) or 99 (16 kHz)
    audio, video = sdp.media
    assert audio.formats == (PCMU, MediaFormat(100, "telephone-event", 8000, fmtp="0-15"))
    assert video.port == 0
    assert [f.payload_type for f in video.formats] == [96, 97]
    assert video.protocol == "RTP/AVP"
    assert video.direction is None
    assert all(f.fmtp is None for f in video.formats)
    assert b"m=video 0 RTP/AVP 96 97\r\n" in sdp.to_bytes()


def test_answer_kamailio_forwarded_offer() -> None:
    sdp, media = answer(KAMAILIO_RTPENGINE)
    assert (media.remote_address, media.remote_port) == ("203.0.113.10", 30000)
    assert media.codec == PCMU
    assert media.dtmf_payload_type == 101
    assert "rtcp:30001" not in sdp.media[0].extra_attributes  # we never echo the peer's attributes


def test_answer_ipv6_offer() -> None:
    _, media = answer(IPV6)
    assert media.remote_address == "2001:db8::1"
    assert media.codec == PCMA


def test_answer_webrtc_offer_is_not_acceptable() -> None:
    with pytest.raises(NotAcceptable, match=r"no active RTP/AVP audio stream.*UDP/TLS/RTP/SAVPF"):
        answer(WEBRTC)


@pytest.mark.parametrize(
    "offer", [SIPP_UAC, SIPP_UAC_PCAP, BARESIP, LINPHONE, KAMAILIO_RTPENGINE, CISCO_HOLD, IPV6]
)
def test_answers_are_well_formed_and_match_the_offer(offer: bytes) -> None:
    sdp, media = answer(offer)
    parsed = parse_sdp(offer)
    assert parse_sdp(sdp.to_bytes()) == sdp
    assert len(sdp.media) == len(parsed.media)
    assert [m.media for m in sdp.media] == [m.media for m in parsed.media]
    assert [m.port != 0 for m in sdp.media].count(True) == 1
    assert sdp.media[media.media_index].port == CAPS.port
    # the answerer's view of its answer agrees with what the offerer will compute
    assert accept_answer(parsed, sdp).codec.same_codec(media.codec)


# --- codecs and telephone-event ------------------------------------------------------------------------


def test_telephone_event_with_payload_type_96() -> None:
    sdp, media = answer(
        offer_with("m=audio 5000 RTP/AVP 8 96\na=rtpmap:96 telephone-event/8000\na=fmtp:96 0-16")
    )
    assert media.dtmf_payload_type == 96
    assert sdp.media[0].formats == (PCMA, MediaFormat(96, "telephone-event", 8000, fmtp="0-15"))
    assert b"a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n" in sdp.to_bytes()


def test_telephone_event_name_is_case_insensitive() -> None:
    _, media = answer(offer_with("m=audio 5000 RTP/AVP 0 97\na=rtpmap:97 Telephone-Event/8000"))
    assert media.dtmf_payload_type == 97


def test_telephone_event_at_another_clock_rate_is_not_used() -> None:
    sdp, media = answer(offer_with("m=audio 5000 RTP/AVP 0 101\na=rtpmap:101 telephone-event/16000"))
    assert media.dtmf_payload_type is None
    assert sdp.media[0].formats == (PCMU,)


def test_telephone_event_disabled_in_caps() -> None:
    sdp, media = answer(SIPP_UAC_PCAP, MediaCapabilities("192.0.2.10", 40000, telephone_event=False))
    assert media.dtmf_payload_type is None
    assert sdp.media[0].formats == (PCMA,)


def test_g711_under_a_dynamic_payload_type_keeps_the_offerers_number() -> None:
    sdp, media = answer(offer_with("m=audio 5000 RTP/AVP 97\na=rtpmap:97 pcma/8000"))
    assert media.codec == MediaFormat(97, "pcma", 8000)
    assert sdp.media[0].formats == (MediaFormat(97, "pcma", 8000),)


def test_codec_at_the_wrong_clock_rate_does_not_match() -> None:
    with pytest.raises(NotAcceptable, match="PCMU/16000"):
        answer(offer_with("m=audio 5000 RTP/AVP 96\na=rtpmap:96 PCMU/16000"))


def test_codec_fmtp_is_echoed() -> None:
    caps = MediaCapabilities("h", 1, codecs=("G729",))
    sdp, media = answer(KAMAILIO_RTPENGINE, caps)
    assert media.codec == MediaFormat(18, "G729", 8000, fmtp="annexb=no")
    assert b"a=fmtp:18 annexb=no\r\n" in sdp.to_bytes()


def test_offered_comfort_noise_and_unknown_formats_are_not_chosen() -> None:
    _, media = answer(offer_with("m=audio 5000 RTP/AVP 13 99 8"))
    assert media.codec == PCMA


# --- which m= line -------------------------------------------------------------------------------------


def test_first_audio_line_without_a_common_codec_is_skipped() -> None:
    offer = offer_with("m=audio 5000 RTP/AVP 18\nm=audio 5002 RTP/AVP 8\n")
    sdp, media = answer(offer)
    assert media.media_index == 1
    assert media.remote_port == 5002
    assert [m.port for m in sdp.media] == [0, CAPS.port]
    assert sdp.media[0].formats == (MediaFormat(18, "G729", 8000),)


def test_audio_line_with_port_zero_is_skipped() -> None:
    sdp, media = answer(offer_with("m=audio 0 RTP/AVP 0\nm=audio 5002 RTP/AVP 0\n"))
    assert media.media_index == 1
    assert [m.port for m in sdp.media] == [0, CAPS.port]


def test_only_the_first_usable_audio_line_is_accepted() -> None:
    sdp, media = answer(offer_with("m=audio 5000 RTP/AVP 0\nm=audio 5002 RTP/AVP 0\n"))
    assert media.media_index == 0
    assert [m.port for m in sdp.media] == [CAPS.port, 0]


def test_srtp_audio_is_skipped_for_plain_rtp_audio() -> None:
    sdp, media = answer(
        offer_with(
            "m=audio 5000 RTP/SAVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\nm=audio 5002 RTP/AVP 0\n"
        )
    )
    assert media.media_index == 1
    assert sdp.media[0] == MediaDescription(media="audio", port=0, protocol="RTP/SAVP", formats=(PCMU,))


def test_avpf_is_answered_with_avpf() -> None:
    sdp, _ = answer(offer_with("m=audio 5000 RTP/AVPF 0\na=rtcp-fb:* nack\n"))
    assert sdp.media[0].protocol == "RTP/AVPF"


def test_non_rtp_streams_are_refused_with_their_formats() -> None:
    sdp, _ = answer(offer_with("m=audio 5000 RTP/AVP 0\nm=image 6000 udptl t38\nm=message 7000 TCP/MSRP *\n"))
    assert sdp.media[1] == MediaDescription(media="image", port=0, protocol="udptl", other_formats=("t38",))
    assert sdp.media[2] == MediaDescription(
        media="message", port=0, protocol="TCP/MSRP", other_formats=("*",)
    )


def test_media_type_is_matched_case_insensitively() -> None:
    sdp, _ = answer(offer_with("m=AUDIO 5000 rtp/avp 0\n"))
    assert (sdp.media[0].media, sdp.media[0].protocol) == ("AUDIO", "rtp/avp")


# --- 488 -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("media_lines", "message"),
    [
        (
            "m=audio 5000 RTP/AVP 18 4\n",
            "no common audio codec: offered audio RTP/AVP: G729/8000, G723/8000; we su",
        ),
        ("m=audio 5000 RTP/AVP 96\na=rtpmap:96 opus/48000/2\n", "offered audio RTP/AVP: opus/48000/2"),
        ("m=audio 5000 RTP/AVP 99\n", "offered audio RTP/AVP: PT99"),
        ("m=audio 5000 RTP/AVP 101\na=rtpmap:101 telephone-event/8000\n", "telephone-event/8000"),
        ("m=video 5000 RTP/AVP 31\n", "offer has no active RTP/AVP audio stream (video RTP/AVP: H261/90000)"),
        ("m=audio 0 RTP/AVP 0\n", "no active RTP/AVP audio stream (audio RTP/AVP (port 0): PCMU/8000)"),
        ("m=audio 5000 RTP/SAVP 0\n", "no active RTP/AVP audio stream (audio RTP/SAVP: PCMU/8000)"),
        ("m=image 5000 udptl t38\n", "(image udptl: t38)"),
        ("", "no active RTP/AVP audio stream (no m= lines)"),
    ],
)
def test_not_acceptable(media_lines: str, message: str) -> None:
    with pytest.raises(NotAcceptable) as info:
        answer(offer_with(media_lines))
    assert message in str(info.value)
    assert info.value.status_hint == 488
    assert isinstance(info.value, RemoteProtocolError)
    assert not isinstance(info.value, SdpError)


def test_not_acceptable_names_our_codecs() -> None:
    with pytest.raises(NotAcceptable, match=r"we support PCMA, PCMU$"):
        answer(offer_with("m=audio 5000 RTP/AVP 18\n"), MediaCapabilities("h", 1, codecs=("PCMA", "PCMU")))


def test_not_acceptable_message_is_bounded() -> None:
    many = "".join(f"m=video 0 RTP/AVP {' '.join(str(pt) for pt in range(96, 128))}\n" for _ in range(60))
    with pytest.raises(NotAcceptable) as info:
        answer(offer_with(many))
    assert len(str(info.value)) < 400


def test_hand_built_offer_without_connection_is_not_acceptable() -> None:
    offer = SessionDescription(origin=Origin("-", 1, 1, "h"), connection_address="h")
    audio = MediaDescription(media="audio", port=1, protocol="RTP/AVP", formats=(PCMU,))
    object.__setattr__(offer, "media", (audio,))  # bypass the invariant check, as a buggy caller might
    object.__setattr__(offer, "connection_address", None)
    with pytest.raises(NotAcceptable, match="no connection address"):
        answer(offer)


# --- directions and hold -------------------------------------------------------------------------------


def with_direction(direction: str, *, at: str = "media", connection: str = "198.51.100.7") -> bytes:
    session = f"a={direction}\n" if at == "session" else ""
    media = f"a={direction}\n" if at == "media" else ""
    return crlf(
        f"v=0\no=peer 5 5 IN IP4 {connection}\ns=-\nc=IN IP4 {connection}\nt=0 0\n{session}"
        f"m=audio 5000 RTP/AVP 0 101\na=rtpmap:101 telephone-event/8000\n{media}"
    )


@pytest.mark.parametrize(
    ("offered", "wish", "ours", "peer_holds"),
    [
        (SR, SR, SR, False),
        (S, SR, R, True),  # the peer puts us on hold
        (R, SR, S, False),
        (IA, SR, IA, True),
        (SR, S, S, False),  # we put the peer on hold
        (S, S, IA, True),  # both hold
        (R, S, S, False),
        (SR, IA, IA, False),
        (SR, R, R, False),
    ],
)
@pytest.mark.parametrize("at", ["media", "session"])
def test_answer_direction(
    offered: Direction, wish: Direction, ours: Direction, peer_holds: bool, at: str
) -> None:
    sdp, media = answer(with_direction(offered, at=at), direction_wish=wish)
    assert sdp.media[0].direction is ours
    assert sdp.direction is None
    assert media.local_direction is ours
    assert media.remote_direction is offered
    assert media.peer_holds is peer_holds
    assert media.may_send is ours.sends
    assert media.may_receive is ours.receives


def test_no_direction_means_sendrecv_and_our_answer_states_it() -> None:
    sdp, media = answer(SIPP_UAC)
    assert media.remote_direction is SR
    assert b"a=sendrecv\r\n" in sdp.to_bytes()


def test_media_level_direction_overrides_session_level() -> None:
    offer = crlf(
        "v=0\no=peer 5 5 IN IP4 198.51.100.7\ns=-\nc=IN IP4 198.51.100.7\nt=0 0\na=sendonly\n"
        "m=audio 5000 RTP/AVP 0\na=sendrecv\n"
    )
    _, media = answer(offer)
    assert media.remote_direction is SR


@pytest.mark.parametrize(
    ("offered", "ours"),
    [("sendrecv", R), ("sendonly", R), ("recvonly", IA), ("inactive", IA)],
)
def test_rfc2543_hold_with_zero_connection(offered: str, ours: Direction) -> None:
    # c=0.0.0.0: the peer cannot receive, whatever it states; we only listen (RFC 3264 §8.4).
    sdp, media = answer(with_direction(offered, connection="0.0.0.0"))
    assert media.local_direction is ours
    assert not media.remote_direction.receives
    assert media.peer_holds
    assert not media.may_send
    assert media.remote_address == "0.0.0.0"
    assert sdp.connection_address == CAPS.address  # we still say where we receive


def test_cisco_hold_offer() -> None:
    sdp, media = answer(CISCO_HOLD)
    assert media.local_direction is R
    assert media.remote_direction is S
    assert media.peer_holds
    assert media.dtmf_payload_type == 101
    assert b"a=recvonly\r\n" in sdp.to_bytes()


def test_media_level_zero_connection_overrides_a_real_session_address() -> None:
    offer = crlf(
        "v=0\no=peer 5 5 IN IP4 198.51.100.7\ns=-\nc=IN IP4 198.51.100.7\nt=0 0\n"
        "m=audio 5000 RTP/AVP 0\nc=IN IP4 0.0.0.0\n"
    )
    assert answer(offer)[1].peer_holds


def test_unhold_after_zero_connection_hold() -> None:
    _, held = answer(CISCO_HOLD)
    resumed = CISCO_HOLD.replace(b"0.0.0.0", b"10.1.1.1")
    _, media = answer(resumed)
    assert held.peer_holds and not media.peer_holds
    assert media.local_direction is SR


# --- ptime ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "ptime"),
    [("", 20), ("a=ptime:30\n", 30), ("a=ptime:10\n", 10), ("a=maxptime:10\n", 10), ("a=maxptime:40\n", 20),
     ("a=ptime:40\na=maxptime:60\n", 40), ("a=maxptime:x\n", 20)],
)  # fmt: skip
def test_send_ptime_follows_the_peer(attributes: str, ptime: int) -> None:
    sdp, media = answer(offer_with("m=audio 5000 RTP/AVP 0\n" + attributes))
    assert media.ptime == ptime
    assert sdp.media[0].ptime == CAPS.ptime  # what we want to receive


# --- accepting answers to our offers -------------------------------------------------------------------

OUR_OFFER = make_offer(CAPS, session_id=1, version=1)


def peer_answer(media_lines: str, *, connection: str = "198.51.100.7") -> SessionDescription:
    return parse_sdp(offer_with(media_lines, connection=connection))


def test_accept_answer() -> None:
    media = accept_answer(
        OUR_OFFER, peer_answer("m=audio 6000 RTP/AVP 8 101\na=rtpmap:101 telephone-event/8000\na=sendrecv")
    )
    assert media == NegotiatedMedia(
        remote_address="198.51.100.7",
        remote_port=6000,
        codec=PCMA,
        dtmf_payload_type=101,
        local_direction=SR,
        remote_direction=SR,
        ptime=20,
        media_index=0,
    )


def test_accept_answer_uses_the_answerers_telephone_event_number() -> None:
    media = accept_answer(
        OUR_OFFER, peer_answer("m=audio 6000 RTP/AVP 0 96\na=rtpmap:96 telephone-event/8000")
    )
    assert media.dtmf_payload_type == 96


def test_accept_answer_without_telephone_event() -> None:
    assert accept_answer(OUR_OFFER, peer_answer("m=audio 6000 RTP/AVP 0")).dtmf_payload_type is None


def test_accept_answer_ignores_telephone_event_we_did_not_offer() -> None:
    offer = make_offer(dataclasses.replace(CAPS, telephone_event=False), session_id=1, version=1)
    answered = peer_answer("m=audio 6000 RTP/AVP 0 101\na=rtpmap:101 telephone-event/8000")
    assert accept_answer(offer, answered).dtmf_payload_type is None


def test_accept_answer_skips_extra_formats_the_answerer_added() -> None:
    media = accept_answer(OUR_OFFER, peer_answer("m=audio 6000 RTP/AVP 18 96 0\na=rtpmap:96 opus/48000/2"))
    assert media.codec == PCMU


def test_accept_answer_uses_the_answers_order() -> None:
    assert accept_answer(OUR_OFFER, peer_answer("m=audio 6000 RTP/AVP 8 0")).codec == PCMA


def test_accept_answer_ptime() -> None:
    assert accept_answer(OUR_OFFER, peer_answer("m=audio 6000 RTP/AVP 0\na=ptime:30")).ptime == 30
    offer = make_offer(dataclasses.replace(CAPS, ptime=40), session_id=1, version=1)
    assert accept_answer(offer, peer_answer("m=audio 6000 RTP/AVP 0")).ptime == 40


@pytest.mark.parametrize(
    ("offered", "answered", "ours", "peer_holds"),
    [
        (SR, SR, SR, False),
        (S, R, S, False),  # our hold acknowledged
        (S, IA, IA, True),
        (SR, S, R, True),  # the answerer holds us
        (SR, R, S, False),
        (IA, IA, IA, True),
        (S, SR, S, False),  # a sloppy answer cannot grant us more than we offered
    ],
)
def test_accept_answer_directions(
    offered: Direction, answered: Direction, ours: Direction, peer_holds: bool
) -> None:
    offer = make_offer(CAPS, session_id=1, version=1, direction=offered)
    media = accept_answer(offer, peer_answer(f"m=audio 6000 RTP/AVP 0\na={answered}"))
    assert media.local_direction is ours
    assert media.remote_direction is answered
    assert media.peer_holds is peer_holds


def test_accept_answer_with_zero_connection() -> None:
    media = accept_answer(OUR_OFFER, peer_answer("m=audio 6000 RTP/AVP 0", connection="0.0.0.0"))
    assert media.remote_direction is S
    assert media.local_direction is R
    assert media.peer_holds


@pytest.mark.parametrize(
    ("media_lines", "message"),
    [
        ("m=audio 0 RTP/AVP 0", "peer refused the audio stream (port 0)"),
        (
            "m=audio 6000 RTP/AVP 18",
            "answer keeps none of our codecs (PCMU/8000, PCMA/8000): audio RTP/AVP: G729",
        ),
        ("m=audio 6000 RTP/AVP 101\na=rtpmap:101 telephone-event/8000", "answer keeps none of our codecs"),
        ("m=audio 6000 RTP/AVP 0\nm=video 0 RTP/AVP 31", "answer has 2 m= lines, our offer had 1"),
        ("", "answer has 0 m= lines, our offer had 1"),
        ("m=video 6000 RTP/AVP 31", "answer turned audio RTP/AVP into video RTP/AVP: H261/90000"),
        ("m=audio 6000 RTP/SAVP 0", "answer turned audio RTP/AVP into audio RTP/SAVP"),
    ],
)
def test_accept_answer_not_acceptable(media_lines: str, message: str) -> None:
    with pytest.raises(NotAcceptable) as info:
        accept_answer(OUR_OFFER, peer_answer(media_lines))
    assert message in str(info.value)
    assert info.value.status_hint == 488


def test_accept_answer_to_an_offer_without_audio_is_our_mistake() -> None:
    offer = dataclasses.replace(OUR_OFFER, media=())
    with pytest.raises(ValueError, match="no active audio stream"):
        accept_answer(offer, peer_answer(""))


# --- re-offers: hold and resume ------------------------------------------------------------------------


def test_hold_reoffer_bumps_version_and_changes_only_direction() -> None:
    held = make_reoffer(OUR_OFFER, direction=S)
    assert held.origin.session_version == OUR_OFFER.origin.session_version + 1
    assert held.origin.session_id == OUR_OFFER.origin.session_id
    assert held.media[0] == dataclasses.replace(OUR_OFFER.media[0], direction=S)
    assert b"a=sendonly\r\n" in held.to_bytes()


def test_reoffer_without_change_keeps_the_version() -> None:
    # a session refresh re-INVITE must not look like a new description (RFC 3264 §8)
    assert make_reoffer(OUR_OFFER, direction=SR) is OUR_OFFER


def test_hold_and_resume_round_trip() -> None:
    held = make_reoffer(OUR_OFFER, direction=S)
    resumed = make_reoffer(held, direction=SR)
    assert resumed.origin.session_version == OUR_OFFER.origin.session_version + 2
    assert dataclasses.replace(resumed, origin=OUR_OFFER.origin) == OUR_OFFER


def test_reoffer_after_answering_keeps_refused_streams() -> None:
    sdp, _ = answer(LINPHONE)
    held = make_reoffer(sdp, direction=S)
    assert [m.port for m in held.media] == [CAPS.port, 0]
    assert held.media[0].direction is S
    assert held.media[1] == sdp.media[1]
    # the peer answers our hold with recvonly; we may send (music on hold) but not receive
    peer_view = answer_offer(held, MediaCapabilities("198.51.100.7", 7078), session_id=9, version=2)
    media = accept_answer(held, peer_view[0])
    assert media.local_direction is S
    assert not media.peer_holds


def test_peer_hold_reinvite_then_our_answer_revision() -> None:
    _, first = answer(BARESIP)
    hold_offer = parse_sdp(BARESIP.replace(b"a=sendrecv", b"a=sendonly"))
    second_answer, second = answer_offer(hold_offer, CAPS, session_id=777, version=2)
    assert first.local_direction is SR
    assert second.local_direction is R
    assert second.peer_holds
    assert second_answer.origin.session_version == 2


# --- properties ----------------------------------------------------------------------------------------

codec_names = st.sampled_from(["PCMU", "PCMA", "G722", "G729", "GSM"])
codec_lists = st.lists(codec_names, min_size=1, max_size=5, unique=True).map(tuple)
directions = st.sampled_from(list(Direction))


@settings(max_examples=300)
@given(codec_lists, codec_lists, st.booleans(), st.booleans(), directions, directions, st.integers(96, 127))
def test_both_sides_agree(
    offered: tuple[str, ...],
    supported: tuple[str, ...],
    offer_dtmf: bool,
    answer_dtmf: bool,
    offer_direction: Direction,
    wish: Direction,
    dtmf_pt: int,
) -> None:
    alice = MediaCapabilities("10.0.0.1", 4000, offered, offer_dtmf, dtmf_pt)
    bob = MediaCapabilities("10.0.0.2", 5000, supported, answer_dtmf)
    offer = make_offer(alice, session_id=1, version=1, direction=offer_direction)
    common = [name for name in offered if name in supported]
    if not common:
        with pytest.raises(NotAcceptable):
            answer_offer(offer, bob, session_id=2, version=1, direction_wish=wish)
        return
    answer_sdp, bob_media = answer_offer(
        parse_sdp(offer.to_bytes()), bob, session_id=2, version=1, direction_wish=wish
    )
    alice_media = accept_answer(offer, parse_sdp(answer_sdp.to_bytes()))
    assert bob_media.codec.encoding == alice_media.codec.encoding == common[0]  # the offerer's order wins
    assert bob_media.dtmf_payload_type == alice_media.dtmf_payload_type
    assert (bob_media.dtmf_payload_type == dtmf_pt) is (offer_dtmf and answer_dtmf)
    assert alice_media.local_direction is bob_media.local_direction.reversed()
    assert alice_media.remote_direction is bob_media.local_direction
    assert bob_media.remote_direction is offer_direction
    assert (alice_media.remote_address, alice_media.remote_port) == ("10.0.0.2", 5000)
    assert (bob_media.remote_address, bob_media.remote_port) == ("10.0.0.1", 4000)


@st.composite
def audio_offers(draw: st.DrawFn) -> SessionDescription:
    """Offers close to what phones send, so that most of them can be answered."""
    lines = ""
    for _ in range(draw(st.integers(0, 3))):
        media = draw(st.sampled_from(["audio", "audio", "video"]))
        port = draw(st.sampled_from([0, 5000, 5002]))
        protocol = draw(st.sampled_from(["RTP/AVP", "RTP/AVP", "RTP/AVPF", "RTP/SAVP"]))
        pts = draw(st.lists(st.sampled_from(["0", "8", "18", "96", "101"]), unique=True, min_size=1))
        lines += f"m={media} {port} {protocol} {' '.join(pts)}\n"
        if "96" in pts:
            mapping = draw(st.sampled_from(["PCMA/8000", "opus/48000/2", "telephone-event/8000"]))
            lines += f"a=rtpmap:96 {mapping}\n"
        if "101" in pts:
            lines += (
                f"a=rtpmap:101 {draw(st.sampled_from(['telephone-event/8000', 'telephone-event/16000']))}\n"
            )
        direction = draw(st.none() | directions)
        lines += f"a={direction}\n" if direction else ""
    return parse_sdp(offer_with(lines, connection=draw(st.sampled_from(["198.51.100.7", "0.0.0.0"]))))


@settings(max_examples=400)
@given(st.one_of(audio_offers(), session_descriptions()), directions)
def test_any_offer_is_answered_or_refused_with_488(offer: SessionDescription, wish: Direction) -> None:
    try:
        sdp, media = answer_offer(offer, CAPS, session_id=3, version=4, direction_wish=wish)
    except NotAcceptable:
        return
    assert parse_sdp(sdp.to_bytes()) == sdp
    assert len(sdp.media) == len(offer.media)
    assert [m.port == CAPS.port for m in sdp.media].count(True) == 1
    for index, (ours, theirs) in enumerate(zip(sdp.media, offer.media, strict=True)):
        assert ours.media == theirs.media and ours.protocol == theirs.protocol
        if index != media.media_index:
            assert ours.port == 0
            assert [f.payload_type for f in ours.formats] == [f.payload_type for f in theirs.formats]
            assert ours.other_formats == theirs.other_formats
    assert media.local_direction is media.remote_direction.answer(wish)
    assert sdp.media[media.media_index].direction is media.local_direction
