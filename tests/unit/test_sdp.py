"""SDP parsing and serialization (ccdaemon.sip.sdp)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ccdaemon.sip.errors import ParseError, RemoteProtocolError
from ccdaemon.sip.sdp import (
    MAX_ATTRIBUTES,
    MAX_FORMATS,
    MAX_LINES,
    MAX_MEDIA,
    MAX_SDP_BYTES,
    STATIC_PAYLOAD_TYPES,
    Bandwidth,
    Direction,
    MediaDescription,
    MediaFormat,
    Origin,
    SdpError,
    SessionDescription,
    Timing,
    infer_address_type,
    is_rtp_protocol,
    parse_sdp,
    revise,
    static_format,
)


def crlf(text: str) -> bytes:
    """Test SDP is written with LF in the source; the wire form uses CRLF."""
    return text.strip("\n").replace("\n", "\r\n").encode() + b"\r\n"


# --- real-world offers (anonymised; shapes as these peers send them) -----------------------------------

SIPP_UAC = crlf("""
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
""")

SIPP_UAC_PCAP = crlf("""
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-11,16
""")

BARESIP = crlf("""
v=0
o=- 1993926409 1428926347 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 10000 RTP/AVP 96 9 0 8 101
b=AS:96
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtcp-mux
a=ptime:20
a=sendrecv
a=label:1
""")

LINPHONE = crlf("""
v=0
o=alice 1234 5678 IN IP4 192.168.1.20
s=Talk
c=IN IP4 192.168.1.20
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=fmtp:98 vbr=on
a=fmtp:18 annexb=yes
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
m=video 9078 RTP/AVP 96 97
a=rtpmap:96 VP8/90000
a=rtpmap:97 H264/90000
a=fmtp:97 profile-level-id=42801F
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:96 nack pli
a=rtcp-fb:97 ccm fir
""")

# A Yealink offer forwarded by kamailio + rtpengine: fmtp before its rtpmap, a=rtcp, nortpproxy marker.
KAMAILIO_RTPENGINE = crlf("""
v=0
o=- 20005 20006 IN IP4 203.0.113.10
s=SDP data
c=IN IP4 203.0.113.10
t=0 0
m=audio 30000 RTP/AVP 0 8 18 9 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:9 G722/8000
a=fmtp:101 0-15
a=rtpmap:101 telephone-event/8000
a=ptime:20
a=sendrecv
a=rtcp:30001
a=nortpproxy:yes
""")

# RFC 2543 style hold from an old gateway: c=0.0.0.0 and no direction attribute.
CISCO_HOLD = crlf("""
v=0
o=CiscoSystemsSIP-GW-UserAgent 4447 1291 IN IP4 10.1.1.1
s=SIP Call
c=IN IP4 0.0.0.0
t=0 0
m=audio 18456 RTP/AVP 0 101
c=IN IP4 0.0.0.0
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
""")

WEBRTC = crlf("""
v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=msid-semantic: WMS
m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 126
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:Ab1c
a=ice-pwd:aaaaaaaaaaaaaaaaaaaaaaaa
a=fingerprint:sha-256 AB:CD:EF
a=setup:actpass
a=mid:0
a=sendrecv
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:126 telephone-event/8000
""")

IPV6 = crlf("""
v=0
o=- 1 1 IN IP6 2001:db8::1
s=-
c=IN IP6 2001:db8::1
t=0 0
m=audio 5004 RTP/AVP 8
""")

REAL_WORLD = {
    "sipp": SIPP_UAC,
    "sipp-pcap": SIPP_UAC_PCAP,
    "baresip": BARESIP,
    "linphone": LINPHONE,
    "kamailio-rtpengine": KAMAILIO_RTPENGINE,
    "cisco-hold": CISCO_HOLD,
    "webrtc": WEBRTC,
    "ipv6": IPV6,
}


def fmt(pt: int, encoding: str, rate: int, channels: int = 1, fmtp: str | None = None) -> MediaFormat:
    return MediaFormat(pt, encoding, rate, channels, fmtp)


PCMU = fmt(0, "PCMU", 8000)
PCMA = fmt(8, "PCMA", 8000)


# --- parsing real offers -------------------------------------------------------------------------------


def test_sipp_offer() -> None:
    sd = parse_sdp(SIPP_UAC)
    assert sd.origin == Origin("user1", 53655765, 2353687637, "127.0.0.1", "IP4")
    assert sd.session_name == "-"
    assert sd.connection_address == "127.0.0.1"
    assert sd.connection_address_type == "IP4"
    assert sd.timing == (Timing(0, 0),)
    (audio,) = sd.media
    assert (audio.media, audio.port, audio.protocol) == ("audio", 6000, "RTP/AVP")
    assert audio.formats == (PCMU,)
    assert audio.direction is None
    assert sd.effective_direction(audio) is Direction.SENDRECV
    assert sd.effective_connection(audio) == "127.0.0.1"


def test_baresip_offer() -> None:
    sd = parse_sdp(BARESIP)
    (audio,) = sd.media
    assert audio.formats == (
        fmt(96, "opus", 48000, 2, "stereo=1;sprop-stereo=1"),
        fmt(9, "G722", 8000),
        PCMU,
        PCMA,
        fmt(101, "telephone-event", 8000, fmtp="0-15"),
    )
    assert audio.bandwidths == (Bandwidth("AS", 96),)
    assert audio.ptime == 20
    assert audio.direction is Direction.SENDRECV
    assert audio.extra_attributes == ("rtcp-mux", "label:1")


def test_linphone_offer_with_video_and_three_telephone_events() -> None:
    sd = parse_sdp(LINPHONE)
    assert sd.session_name == "Talk"
    assert sd.extra_attributes == ("rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics",)
    audio, video = sd.media
    assert [f.payload_type for f in audio.formats] == [96, 97, 98, 0, 8, 18, 101, 99, 100]
    assert audio.format_for(18) == fmt(18, "G729", 8000, fmtp="annexb=yes")  # static, fmtp only
    assert audio.format_for(97) == fmt(97, "speex", 16000, fmtp="vbr=on")
    assert [str(f) for f in audio.formats[-3:]] == [
        "telephone-event/48000",
        "telephone-event/16000",
        "telephone-event/8000",
    ]
    assert audio.extra_attributes == ("rtcp-fb:* trr-int 1000", "rtcp-fb:* ccm tmmbr")
    # payload type numbers are per m= line: 96 is opus for audio and VP8 for video
    assert video.format_for(96) == fmt(96, "VP8", 90000)
    assert video.format_for(97) == fmt(97, "H264", 90000, fmtp="profile-level-id=42801F")
    assert video.port == 9078


def test_kamailio_forwarded_offer_with_fmtp_before_rtpmap() -> None:
    sd = parse_sdp(KAMAILIO_RTPENGINE)
    (audio,) = sd.media
    assert audio.format_for(101) == fmt(101, "telephone-event", 8000, fmtp="0-15")
    assert audio.format_for(18) == fmt(18, "G729", 8000, fmtp="annexb=no")
    assert audio.extra_attributes == ("rtcp:30001", "nortpproxy:yes")
    assert sd.session_name == "SDP data"


def test_rfc2543_hold_offer_keeps_zero_address_at_both_levels() -> None:
    sd = parse_sdp(CISCO_HOLD)
    (audio,) = sd.media
    assert sd.connection_address == "0.0.0.0"
    assert audio.connection_address == "0.0.0.0"
    assert sd.effective_connection(audio) == "0.0.0.0"


def test_webrtc_offer_parses_with_media_level_connection_only() -> None:
    sd = parse_sdp(WEBRTC)
    assert sd.connection_address is None
    (audio,) = sd.media
    assert audio.protocol == "UDP/TLS/RTP/SAVPF"
    assert audio.is_rtp
    assert sd.origin.session_id == 4611731400430051336
    assert sd.effective_connection(audio) == "0.0.0.0"
    assert "fingerprint:sha-256 AB:CD:EF" in audio.extra_attributes
    assert sd.extra_attributes == ("group:BUNDLE 0", "msid-semantic: WMS")


def test_ipv6_addresses() -> None:
    sd = parse_sdp(IPV6)
    assert sd.origin.address_type == "IP6"
    assert sd.origin.address == "2001:db8::1"
    assert sd.connection_address_type == "IP6"
    assert sd.media[0].formats == (PCMA,)


@pytest.mark.parametrize("name", sorted(REAL_WORLD))
def test_real_world_round_trip(name: str) -> None:
    sd = parse_sdp(REAL_WORLD[name])
    assert parse_sdp(sd.to_bytes()) == sd


@pytest.mark.parametrize("name", sorted(REAL_WORLD))
def test_real_world_with_lf_only_line_ends(name: str) -> None:
    assert parse_sdp(REAL_WORLD[name].replace(b"\r\n", b"\n")) == parse_sdp(REAL_WORLD[name])


@pytest.mark.parametrize("name", sorted(REAL_WORLD))
def test_real_world_as_str(name: str) -> None:
    assert parse_sdp(REAL_WORLD[name].decode()) == parse_sdp(REAL_WORLD[name])


# --- serialization -------------------------------------------------------------------------------------


def test_to_bytes_is_canonical_crlf() -> None:
    sd = parse_sdp(KAMAILIO_RTPENGINE)
    assert sd.to_bytes() == crlf("""
v=0
o=- 20005 20006 IN IP4 203.0.113.10
s=SDP data
c=IN IP4 203.0.113.10
t=0 0
m=audio 30000 RTP/AVP 0 8 18 9 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:9 G722/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
a=rtcp:30001
a=nortpproxy:yes
""")


def test_out_of_order_session_lines_are_written_in_rfc_order() -> None:
    sd = parse_sdp(
        "v=0\nt=0 0\nr=7d 1h 0 25h\na=recvonly\nk=prompt\nz=2882844526 -1h\nc=IN IP4 10.0.0.1\n"
        "b=CT:128\np=+1 617 555-6011\ne=j.doe@example.com\nu=http://example.com/s\ni=About\n"
        "s=Session\no=jdoe 1 2 IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 0\nk=clear:x\na=ptime:30\n"
        "b=AS:64\nc=IN IP4 10.0.0.2\ni=Voice\n"
    )
    assert sd.to_bytes() == crlf("""
v=0
o=jdoe 1 2 IN IP4 10.0.0.1
s=Session
i=About
u=http://example.com/s
e=j.doe@example.com
p=+1 617 555-6011
c=IN IP4 10.0.0.1
b=CT:128
t=0 0
r=7d 1h 0 25h
z=2882844526 -1h
k=prompt
a=recvonly
m=audio 4000 RTP/AVP 0
i=Voice
c=IN IP4 10.0.0.2
b=AS:64
k=clear:x
a=rtpmap:0 PCMU/8000
a=ptime:30
""")
    assert parse_sdp(sd.to_bytes()) == sd


def test_channels_written_only_when_not_one() -> None:
    md = MediaDescription(
        media="audio", port=1, protocol="RTP/AVP", formats=(fmt(96, "opus", 48000, 2), fmt(97, "L16", 8000))
    )
    sd = SessionDescription(origin=Origin("-", 1, 1, "h"), connection_address="h", media=(md,))
    assert b"a=rtpmap:96 opus/48000/2\r\n" in sd.to_bytes()
    assert b"a=rtpmap:97 L16/8000\r\n" in sd.to_bytes()


def test_format_without_rtpmap_is_written_without_rtpmap() -> None:
    md = MediaDescription(media="audio", port=1, protocol="RTP/AVP", formats=(fmt(99, "", 0, fmtp="x=1"),))
    sd = SessionDescription(origin=Origin("-", 1, 1, "h"), connection_address="h", media=(md,))
    assert sd.to_bytes().endswith(b"m=audio 1 RTP/AVP 99\r\na=fmtp:99 x=1\r\n")
    assert parse_sdp(sd.to_bytes()) == sd


def test_port_count_and_non_rtp_formats() -> None:
    sd = parse_sdp(
        "v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4 h\nt=0 0\nm=video 49170/2 RTP/AVP 31\nm=image 0 udptl t38\n"
        "m=message 7394 TCP/MSRP *\na=accept-types:text/plain\n"
    )
    video, image, message = sd.media
    assert (video.port, video.port_count) == (49170, 2)
    assert image.formats == () and image.other_formats == ("t38",)
    assert message.other_formats == ("*",) and message.extra_attributes == ("accept-types:text/plain",)
    assert b"m=video 49170/2 RTP/AVP 31\r\n" in sd.to_bytes()
    assert b"m=image 0 udptl t38\r\n" in sd.to_bytes()
    assert parse_sdp(sd.to_bytes()) == sd


def test_default_session_serializes_minimal_body() -> None:
    sd = SessionDescription(origin=Origin("-", 7, 8, "192.0.2.1"))
    assert sd.to_bytes() == b"v=0\r\no=- 7 8 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n"


# --- lenient parsing -----------------------------------------------------------------------------------

MINIMAL = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\n"


def parse_media(lines: str, *, header: str = "m=audio 4000 RTP/AVP 0 8 96 101") -> MediaDescription:
    return parse_sdp(MINIMAL + header + "\n" + lines).media[0]


@pytest.mark.parametrize(
    ("pt", "expected"),
    [
        (0, PCMU),
        (3, fmt(3, "GSM", 8000)),
        (8, PCMA),
        (9, fmt(9, "G722", 8000)),
        (10, fmt(10, "L16", 44100, 2)),
        (13, fmt(13, "CN", 8000)),
        (18, fmt(18, "G729", 8000)),
        (34, fmt(34, "H263", 90000)),
    ],
)
def test_static_payload_types_need_no_rtpmap(pt: int, expected: MediaFormat) -> None:
    assert parse_media("", header=f"m=audio 4000 RTP/AVP {pt}").formats == (expected,)
    assert static_format(pt) == expected


@pytest.mark.parametrize("pt", [1, 2, 19, 24, 35, 72, 96, 127])
def test_payload_type_without_rtpmap_and_not_static_is_kept_with_empty_encoding(pt: int) -> None:
    (unknown,) = parse_media("", header=f"m=audio 4000 RTP/AVP {pt}").formats
    assert unknown == MediaFormat(pt, "", 0)
    assert unknown.rtpmap is None
    assert str(unknown) == f"PT{pt}"


def test_rtpmap_overrides_the_static_table_and_keeps_case() -> None:
    (pcmu,) = parse_media("a=rtpmap:0 pcmu/8000", header="m=audio 1 RTP/AVP 0").formats
    assert pcmu == fmt(0, "pcmu", 8000)
    assert pcmu.same_codec(PCMU)


def test_rtpmap_for_unlisted_payload_type_is_kept_verbatim() -> None:
    media = parse_media("a=rtpmap:99 foo/8000\na=fmtp:99 a=b\na=rtpmap:x y", header="m=audio 1 RTP/AVP 0")
    assert media.formats == (PCMU,)
    assert media.extra_attributes == ("rtpmap:99 foo/8000", "fmtp:99 a=b", "rtpmap:x y")


def test_repeated_attributes_first_wins_rest_kept_verbatim() -> None:
    media = parse_media(
        "a=rtpmap:96 opus/48000/2\na=rtpmap:96 speex/8000\na=fmtp:96 a=1\na=fmtp:96 b=2\n"
        "a=ptime:20\na=ptime:30\na=sendonly\na=recvonly"
    )
    assert media.format_for(96) == fmt(96, "opus", 48000, 2, "a=1")
    assert media.ptime == 20
    assert media.direction is Direction.SENDONLY
    assert media.extra_attributes == ("rtpmap:96 speex/8000", "fmtp:96 b=2", "ptime:30", "recvonly")
    sd = parse_sdp(MINIMAL + "m=audio 4000 RTP/AVP 96\n" + "a=rtpmap:96 opus/48000/2\na=rtpmap:96 x/1")
    assert parse_sdp(sd.to_bytes()) == sd


@pytest.mark.parametrize("value", ["ptime:abc", "ptime:20.5", "ptime:0", "ptime:", "ptime:9999999"])
def test_unusable_ptime_is_kept_verbatim(value: str) -> None:
    media = parse_media(f"a={value}")
    assert media.ptime is None
    assert media.extra_attributes == (value,)


def test_attribute_names_are_matched_case_insensitively() -> None:
    media = parse_media("a=RTPMAP:96 opus/48000/2\na=SendOnly\na=PTime:40")
    assert media.format_for(96) == fmt(96, "opus", 48000, 2)
    assert media.direction is Direction.SENDONLY
    assert media.ptime == 40


def test_direction_attribute_with_a_value_is_not_a_direction() -> None:
    media = parse_media("a=sendrecv:x")
    assert media.direction is None
    assert media.extra_attributes == ("sendrecv:x",)


def test_empty_fmtp_is_dropped() -> None:
    media = parse_media("a=fmtp:101", header="m=audio 1 RTP/AVP 101")
    assert media.formats == (MediaFormat(101, "", 0),)
    assert media.extra_attributes == ()


def test_extra_whitespace_in_structured_lines() -> None:
    sd = parse_sdp(
        "v=0\no=-  1  2 IN  IP4 10.0.0.1\ns=  spaced name \nc=IN IP4  10.0.0.1 \nt=0  0\n"
        "m=audio  4000 RTP/AVP 0  101 \na=rtpmap:101  telephone-event/8000 \na=fmtp:101   0-15 \n"
    )
    assert sd.origin == Origin("-", 1, 2, "10.0.0.1")
    assert sd.session_name == "  spaced name "  # text fields are verbatim
    assert sd.media[0].formats == (PCMU, fmt(101, "telephone-event", 8000, fmtp="0-15"))


def test_blank_lines_and_unknown_line_types_are_skipped() -> None:
    sd = parse_sdp("\r\nv=0\r\n\r\no=- 1 1 IN IP4 h\r\ns=-\r\nx=extension\r\nc=IN IP4 h\r\nt=0 0\r\n\r\n\r\n")
    assert sd == SessionDescription(origin=Origin("-", 1, 1, "h"), connection_address="h")


def test_missing_final_line_end_and_mixed_line_ends() -> None:
    a = parse_sdp(b"v=0\r\no=- 1 1 IN IP4 h\ns=-\r\nc=IN IP4 h\nt=0 0")
    assert a == SessionDescription(origin=Origin("-", 1, 1, "h"), connection_address="h")


def test_missing_t_line_means_t_0_0() -> None:
    sd = parse_sdp("v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4 h\nm=audio 1 RTP/AVP 0\n")
    assert sd.timing == (Timing(0, 0),)


def test_timing_with_repeats() -> None:
    sd = parse_sdp("v=0\no=- 1 1 IN IP4 h\ns=-\nt=3034423619 3042462419\nr=604800 3600 0 90000\nt=0 0\n")
    assert sd.timing == (Timing(3034423619, 3042462419, ("604800 3600 0 90000",)), Timing(0, 0))


def test_latin1_session_name_is_accepted() -> None:
    sd = parse_sdp(b"v=0\r\no=- 1 1 IN IP4 h\r\ns=T\xe9l\xe9phone\r\nt=0 0\r\n")
    assert sd.session_name == "Téléphone"
    assert parse_sdp(sd.to_bytes()) == sd


def test_utf8_session_name() -> None:
    sd = parse_sdp("v=0\no=- 1 1 IN IP4 h\ns=Gespräch 通話\nt=0 0\n".encode())
    assert sd.session_name == "Gespräch 通話"


def test_network_and_address_type_are_case_insensitive() -> None:
    sd = parse_sdp("v=0\no=- 1 1 in ip4 h\ns=-\nc=in ip6 ::1\nt=0 0\n")
    assert sd.origin.address_type == "IP4"
    assert sd.connection_address_type == "IP6"


def test_explicit_address_type_is_kept_even_for_host_names() -> None:
    sd = parse_sdp("v=0\no=- 1 1 IN IP6 host.example\ns=-\nc=IN IP6 host.example\nt=0 0\n")
    assert sd.origin.address_type == "IP6"
    assert b"c=IN IP6 host.example\r\n" in sd.to_bytes()


def test_rejected_media_needs_no_connection() -> None:
    sd = parse_sdp("v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nm=audio 0 RTP/AVP 0\nm=video 0 RTP/AVP\n")
    assert [m.rejected for m in sd.media] == [True, True]
    assert sd.media[1].formats == ()
    assert sd.effective_connection(sd.media[0]) is None


def test_multicast_connection_kept_verbatim() -> None:
    sd = parse_sdp("v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4 224.2.1.1/127/3\nt=0 0\n")
    assert sd.connection_address == "224.2.1.1/127/3"


def test_large_session_ids_and_leading_zeros() -> None:
    sd = parse_sdp("v=0\no=- 18446744073709551615 007 IN IP4 h\ns=-\nt=0 0\n")
    assert sd.origin.session_id == 2**64 - 1
    assert sd.origin.session_version == 7


# --- effective values ----------------------------------------------------------------------------------


def test_media_level_overrides_session_level() -> None:
    sd = parse_sdp(
        "v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\na=sendonly\n"
        "m=audio 1 RTP/AVP 0\nm=audio 2 RTP/AVP 0\nc=IN IP4 10.0.0.2\na=inactive\n"
    )
    first, second = sd.media
    assert sd.direction is Direction.SENDONLY
    assert sd.effective_direction(first) is Direction.SENDONLY
    assert sd.effective_direction(second) is Direction.INACTIVE
    assert sd.effective_connection(first) == "10.0.0.1"
    assert sd.effective_connection(second) == "10.0.0.2"


# --- errors --------------------------------------------------------------------------------------------

HEAD = "v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4 h\nt=0 0\n"
NO_C = "v=0\no=- 1 1 IN IP4 h\ns=-\n"

MALFORMED = [
    pytest.param(b"", "empty SDP", id="empty"),
    pytest.param(b"\r\n\r\n", "empty SDP", id="only-blank-lines"),
    pytest.param("o=- 1 1 IN IP4 h\nv=0\n", "SDP line 1: SDP must start with v=0", id="v-not-first"),
    pytest.param("v=1\no=- 1 1 IN IP4 h\ns=-\n", "SDP line 1: unsupported SDP version '1'", id="version"),
    pytest.param("v=0\nv=0\n", "SDP line 2: duplicate v= line", id="duplicate-v"),
    pytest.param("v=0\ns=-\nt=0 0\n", "SDP: missing o= line", id="missing-o"),
    pytest.param("v=0\no=- 1 1 IN IP4 h\nt=0 0\n", "SDP: missing s= line", id="missing-s"),
    pytest.param("v=0\no=- 1 1 IN IP4\n", "SDP line 2: o= needs 6 fields, got 5", id="o-fields"),
    pytest.param("v=0\no=- abc 1 IN IP4 h\n", "o= session id is not a number: 'abc'", id="o-id"),
    pytest.param("v=0\no=- 1 -1 IN IP4 h\n", "o= session version is not a number: '-1'", id="o-version"),
    pytest.param("v=0\no=- +1 1 IN IP4 h\n", "o= session id is not a number: '+1'", id="o-plus"),
    pytest.param("v=0\no=- \u0661 1 IN IP4 h\n", "o= session id is not a number", id="o-arabic-digit"),
    pytest.param("v=0\no=- " + "9" * 41 + " 1 IN IP4 h\n", "o= session id is not a number", id="o-huge"),
    pytest.param("v=0\no=- 1 1 ATM NSAP h\n", "unsupported network type 'ATM'", id="o-nettype"),
    pytest.param(
        "v=0\no=- 1 1 IN IP5 h\n", "SDP line 2: origin: unsupported address type 'IP5'", id="o-addr"
    ),
    pytest.param("v=0\no=- 1 1 IN IP4 h\no=- 1 1 IN IP4 h\n", "SDP line 3: duplicate o= line", id="dup-o"),
    pytest.param("v=0\no=- 1 1 IN IP4 h\ns=-\ns=-\n", "SDP line 4: duplicate s= line", id="dup-s"),
    pytest.param(NO_C + "c=IN IP4\n", "SDP line 4: c= needs 3 fields, got 2", id="c-fields"),
    pytest.param(HEAD + "c=IN IP4 h\n", "SDP line 6: duplicate c= line in one section", id="dup-c"),
    pytest.param(NO_C + "c=IN IPX h\n", "c=: unsupported address type 'IPX'", id="c-addrtype"),
    pytest.param(NO_C + "c=TN IP4 h\n", "unsupported network type 'TN'", id="c-nettype"),
    pytest.param(HEAD + "b=AS64\n", "SDP line 6: b= needs <type>:<kbit/s>", id="b-colon"),
    pytest.param(HEAD + "b=AS:x\n", "b= bandwidth is not a number", id="b-number"),
    pytest.param(HEAD + "b=:64\n", "bandwidth type must be a non-empty token", id="b-type"),
    pytest.param(HEAD + "t=0\n", "SDP line 6: t= needs 2 fields", id="t-fields"),
    pytest.param(HEAD + "t=now 0\n", "t= start is not a number", id="t-number"),
    pytest.param("v=0\no=- 1 1 IN IP4 h\ns=-\nr=1 2 3\n", "r= line before any t= line", id="r-first"),
    pytest.param(HEAD + "m=audio 1 RTP/AVP 0\ns=-\n", "SDP line 7: 's=' is not allowed after", id="s-late"),
    pytest.param(HEAD + "m=audio 1 RTP/AVP 0\nt=0 0\n", "'t=' is not allowed after", id="t-late"),
    pytest.param(HEAD + "m=audio 1 RTP/AVP 0\nu=x\n", "'u=' is not allowed after", id="u-late"),
    pytest.param(HEAD + "m=audio 1\n", "SDP line 6: m= needs <media> <port> <proto>", id="m-fields"),
    pytest.param(HEAD + "m=audio x RTP/AVP 0\n", "m= port is not a number: 'x'", id="m-port"),
    pytest.param(HEAD + "m=audio 70000 RTP/AVP 0\n", "m= port out of range: '70000'", id="m-port-range"),
    pytest.param(HEAD + "m=audio 1/0 RTP/AVP 0\n", "m= port out of range: '1/0'", id="m-port-count"),
    pytest.param(HEAD + "m=audio 1/x RTP/AVP 0\n", "m= port count is not a number", id="m-port-count-nan"),
    pytest.param(HEAD + "m=audio 1 RTP/AVP 128\n", "payload type 128 is outside 0..127", id="pt-range"),
    pytest.param(HEAD + "m=audio 1 RTP/AVP PCMU\n", "payload type is not a number: 'PCMU'", id="pt-nan"),
    pytest.param(HEAD + "m=audio 1 RTP/AVP 0 8 0\n", "payload type 0 listed twice", id="pt-dup"),
    pytest.param(HEAD + "a=\n", "SDP line 6: empty a= line", id="empty-a"),
    pytest.param(HEAD + "garbage\n", "SDP line 6: expected <letter>=<value>, got 'garbage'", id="no-equals"),
    pytest.param(HEAD + "a\n", "expected <letter>=<value>", id="one-char"),
    pytest.param(HEAD + "1=x\n", "expected <letter>=<value>", id="digit-type"),
    pytest.param(HEAD + " a=x\n", "expected <letter>=<value>", id="leading-space"),
    pytest.param(HEAD + "é=x\n", "expected <letter>=<value>", id="non-ascii-type"),
    pytest.param(HEAD + "a=x\0y\n", "SDP contains a NUL character", id="nul"),
    pytest.param(HEAD + "a=x\ry\n", "SDP line 6: stray CR inside the line", id="stray-cr"),
    pytest.param(
        "v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nm=audio 1 RTP/AVP 0\n",
        "SDP line 5: m= line without c= line and no session-level c= line",
        id="no-connection",
    ),
]


@pytest.mark.parametrize(("data", "message"), MALFORMED)
def test_malformed_sdp_gives_a_specific_error(data: bytes | str, message: str) -> None:
    with pytest.raises(SdpError) as info:
        parse_sdp(data)
    assert message in str(info.value)
    assert info.value.status_hint == 400
    assert isinstance(info.value, ParseError)
    assert isinstance(info.value, RemoteProtocolError)


MALFORMED_RTPMAPS = ["PCMU", "", "a b", "/8000", "X/1/2/3", "X/fast", "X/0", "X/8000/0", "X/8000/y"]


@pytest.mark.parametrize("value", MALFORMED_RTPMAPS)
def test_malformed_rtpmap_is_kept_verbatim_and_ignored(value: str) -> None:
    # RFC 4475 esc01/longreq carry "a=rtpmap:31 LPC": a valid SIP message must not fail on it
    sd = parse_sdp(HEAD + f"m=audio 1 RTP/AVP 0\na=rtpmap:0 {value}\n")
    (fmt,) = sd.media[0].formats
    assert (fmt.encoding, fmt.clock_rate) == ("PCMU", 8000)  # the static meaning of PT 0 stands
    assert f"rtpmap:0 {value}".strip() in [a.strip() for a in sd.media[0].extra_attributes]


def test_error_messages_quote_at_most_a_short_excerpt() -> None:
    with pytest.raises(SdpError) as info:
        parse_sdp(HEAD + "x" * 5000 + "\n")
    assert len(str(info.value)) < 150


def test_size_limit() -> None:
    body = (HEAD + "a=" + "x" * MAX_SDP_BYTES + "\n").encode()
    with pytest.raises(SdpError, match="exceeds the 65536 byte limit"):
        parse_sdp(body)
    with pytest.raises(SdpError, match="exceeds"):
        parse_sdp(body.decode())


def test_line_count_limit() -> None:
    with pytest.raises(SdpError, match=f"more than {MAX_LINES} lines"):
        parse_sdp(HEAD + "\n" * MAX_LINES)


def test_media_count_limit() -> None:
    at_limit = HEAD + "m=audio 0 RTP/AVP 0\n" * MAX_MEDIA
    assert len(parse_sdp(at_limit).media) == MAX_MEDIA
    with pytest.raises(SdpError, match=f"more than {MAX_MEDIA} m= lines"):
        parse_sdp(at_limit + "m=audio 0 RTP/AVP 0\n")


def test_attribute_count_limit() -> None:
    at_limit = HEAD + "m=audio 1 RTP/AVP 0\n" + "a=x\n" * MAX_ATTRIBUTES
    assert len(parse_sdp(at_limit).media[0].extra_attributes) == MAX_ATTRIBUTES
    with pytest.raises(SdpError, match=f"more than {MAX_ATTRIBUTES} a= lines in one section"):
        parse_sdp(at_limit + "a=x\n")


def test_format_count_limit() -> None:
    with pytest.raises(SdpError, match=f"more than {MAX_FORMATS} formats"):
        parse_sdp(HEAD + "m=image 1 udptl " + " ".join(["t38"] * (MAX_FORMATS + 1)) + "\n")


# --- value classes -------------------------------------------------------------------------------------

ORIGIN = Origin("-", 1, 1, "h")


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: SessionDescription(origin=ORIGIN, session_name="a\r\nm=x"), id="crlf-in-name"),
        pytest.param(lambda: SessionDescription(origin=ORIGIN, session_name="\ud800"), id="surrogate"),
        pytest.param(lambda: SessionDescription(origin=ORIGIN, timing=()), id="no-timing"),
        pytest.param(lambda: SessionDescription(origin=ORIGIN, extra_lines=("a=x",)), id="extra-a-line"),
        pytest.param(lambda: SessionDescription(origin=ORIGIN, extra_lines=("i",)), id="short-extra"),
        pytest.param(lambda: SessionDescription(origin=ORIGIN, extra_attributes=("",)), id="empty-attr"),
        pytest.param(
            lambda: SessionDescription(origin=ORIGIN, connection_address_type="IP4"), id="type-only"
        ),
        pytest.param(
            lambda: SessionDescription(
                origin=ORIGIN, media=(MediaDescription(media="audio", port=1, protocol="RTP/AVP"),)
            ),
            id="active-media-without-connection",
        ),
        pytest.param(lambda: Origin("a b", 1, 1, "h"), id="space-in-username"),
        pytest.param(lambda: Origin("-", -1, 1, "h"), id="negative-id"),
        pytest.param(lambda: Origin("-", 1, 1, ""), id="empty-address"),
        pytest.param(lambda: Origin("-", 1, 1, "h", "IP9"), id="address-type"),
        pytest.param(lambda: MediaFormat(128, "X", 8000), id="pt-range"),
        pytest.param(lambda: MediaFormat(96, "a/b", 8000), id="slash-in-encoding"),
        pytest.param(lambda: MediaFormat(96, "X", 0), id="zero-clock"),
        pytest.param(lambda: MediaFormat(96, "", 8000), id="clock-without-encoding"),
        pytest.param(lambda: MediaFormat(96, "X", 8000, fmtp=" a"), id="fmtp-space"),
        pytest.param(lambda: MediaFormat(96, "X", 8000, fmtp=""), id="fmtp-empty"),
        pytest.param(lambda: Bandwidth("A:S", 1), id="colon-in-bwtype"),
        pytest.param(lambda: Bandwidth("AS", -1), id="negative-bandwidth"),
        pytest.param(lambda: Timing(-1, 0), id="negative-time"),
        pytest.param(lambda: Timing(0, 0, ("a\nb",)), id="lf-in-repeat"),
        pytest.param(lambda: MediaDescription(media="audio", port=70000, protocol="RTP/AVP"), id="port"),
        pytest.param(
            lambda: MediaDescription(media="audio", port=1, protocol="RTP/AVP", port_count=0), id="cnt"
        ),
        pytest.param(lambda: MediaDescription(media="au dio", port=1, protocol="RTP/AVP"), id="media-token"),
        pytest.param(
            lambda: MediaDescription(media="audio", port=1, protocol="RTP/AVP", formats=(PCMU, PCMU)),
            id="dup-pt",
        ),
        pytest.param(
            lambda: MediaDescription(media="image", port=1, protocol="udptl", formats=(PCMU,)),
            id="rtp-fmt-on-udptl",
        ),
        pytest.param(
            lambda: MediaDescription(media="audio", port=1, protocol="RTP/AVP", other_formats=("t38",)),
            id="token-on-rtp",
        ),
        pytest.param(
            lambda: MediaDescription(media="audio", port=1, protocol="RTP/AVP", ptime=0), id="ptime"
        ),
        pytest.param(
            lambda: MediaDescription(media="audio", port=1, protocol="RTP/AVP", extra_lines=("c=IN IP4 h",)),
            id="media-extra-c",
        ),
        pytest.param(
            lambda: MediaDescription(media="audio", port=1, protocol="RTP/AVP", extra_attributes=("a\nb",)),
            id="lf-in-attribute",
        ),
    ],
)
def test_value_classes_refuse_what_could_not_be_written(build: object) -> None:
    assert callable(build)
    with pytest.raises(ValueError):
        build()


def test_address_type_is_inferred() -> None:
    assert Origin("-", 1, 1, "10.0.0.1").address_type == "IP4"
    assert Origin("-", 1, 1, "fe80::1").address_type == "IP6"
    assert SessionDescription(origin=ORIGIN, connection_address="::1").connection_address_type == "IP6"
    assert SessionDescription(origin=ORIGIN).connection_address_type == ""
    assert infer_address_type("pbx.example.com") == "IP4"


def test_extra_lines_are_put_in_rfc_order() -> None:
    sd = SessionDescription(origin=ORIGIN, extra_lines=("k=prompt", "p=1", "i=x", "e=a@b", "i=y"))
    assert sd.extra_lines == ("i=x", "i=y", "e=a@b", "p=1", "k=prompt")


@pytest.mark.parametrize(
    ("protocol", "rtp"),
    [
        ("RTP/AVP", True),
        ("rtp/avp", True),
        ("RTP/SAVPF", True),
        ("UDP/TLS/RTP/SAVPF", True),
        ("udptl", False),
    ],
)
def test_is_rtp_protocol(protocol: str, rtp: bool) -> None:
    assert is_rtp_protocol(protocol) is rtp


def test_static_table_is_consistent() -> None:
    for pt, known in STATIC_PAYLOAD_TYPES.items():
        assert known.payload_type == pt
        assert known.fmtp is None
    assert static_format(96) is None


# --- Direction -----------------------------------------------------------------------------------------

S, R, SR, IA = Direction.SENDONLY, Direction.RECVONLY, Direction.SENDRECV, Direction.INACTIVE


@pytest.mark.parametrize(
    ("direction", "sends", "receives", "reverse"),
    [(SR, True, True, SR), (S, True, False, R), (R, False, True, S), (IA, False, False, IA)],
)
def test_direction_flags(direction: Direction, sends: bool, receives: bool, reverse: Direction) -> None:
    assert direction.sends is sends
    assert direction.receives is receives
    assert direction.reversed() is reverse
    assert Direction.from_flags(sends=sends, receives=receives) is direction
    assert str(direction) == direction.value


# RFC 3264 §6.1: what the answerer may say for each offered direction, given what it would like.
ANSWER_TABLE = {
    (SR, SR): SR, (SR, S): S, (SR, R): R, (SR, IA): IA,
    (S, SR): R, (S, S): IA, (S, R): R, (S, IA): IA,
    (R, SR): S, (R, S): S, (R, R): IA, (R, IA): IA,
    (IA, SR): IA, (IA, S): IA, (IA, R): IA, (IA, IA): IA,
}  # fmt: skip


@pytest.mark.parametrize(("offered", "wish"), sorted(ANSWER_TABLE))
def test_direction_answer_table(offered: Direction, wish: Direction) -> None:
    assert offered.answer(wish) is ANSWER_TABLE[offered, wish]


def test_direction_answer_defaults_to_sendrecv_wish() -> None:
    assert [d.answer() for d in (SR, S, R, IA)] == [SR, R, S, IA]


@given(st.sampled_from(list(Direction)), st.sampled_from(list(Direction)))
def test_direction_intersect_is_commutative_and_never_grants_more(a: Direction, b: Direction) -> None:
    both = a.intersect(b)
    assert both is b.intersect(a)
    assert both.sends <= (a.sends and b.sends)
    assert both.receives <= (a.receives and b.receives)
    assert a.reversed().reversed() is a


# --- versioning helpers --------------------------------------------------------------------------------


def test_with_direction_sets_active_media_and_clears_session_level() -> None:
    sd = parse_sdp(HEAD + "a=sendrecv\nm=audio 1 RTP/AVP 0\nm=video 0 RTP/AVP 31\n")
    held = sd.with_direction(Direction.SENDONLY)
    assert held.direction is None
    assert held.media[0].direction is Direction.SENDONLY
    assert held.media[1] == sd.media[1]
    assert held.origin == sd.origin


def test_next_version_increments_only_the_version() -> None:
    sd = parse_sdp(SIPP_UAC)
    bumped = sd.next_version()
    assert bumped.origin == dataclasses.replace(sd.origin, session_version=2353687638)
    assert dataclasses.replace(bumped, origin=sd.origin) == sd


def test_revise_keeps_the_version_for_an_unchanged_description() -> None:
    sd = parse_sdp(SIPP_UAC)
    assert revise(sd, sd) is sd
    # a candidate built with another origin but the same content is still "unchanged"
    other = dataclasses.replace(sd, origin=Origin("x", 9, 9, "192.0.2.9"))
    assert revise(sd, other) is sd


def test_revise_bumps_a_changed_description_and_keeps_the_origin() -> None:
    sd = parse_sdp(SIPP_UAC)
    changed = dataclasses.replace(sd.with_direction(Direction.SENDONLY), origin=Origin("x", 9, 9, "h"))
    revised = revise(sd, changed)
    assert revised.origin == dataclasses.replace(sd.origin, session_version=sd.origin.session_version + 1)
    assert revised.media[0].direction is Direction.SENDONLY


# --- property tests ------------------------------------------------------------------------------------

_TOKEN_ALPHABET = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
tokens = st.text(_TOKEN_ALPHABET, min_size=1, max_size=10)
# Free text: anything but CR, LF, NUL and lone surrogates (which UTF-8 cannot carry).
texts = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\0"), max_size=20)
_MODELLED = {"sendrecv", "sendonly", "recvonly", "inactive", "ptime", "rtpmap", "fmtp"}
attributes = texts.filter(lambda a: a != "" and a.partition(":")[0].lower() not in _MODELLED)
addresses = st.one_of(tokens, st.ip_addresses().map(str))
address_types = st.sampled_from(["", "IP4", "IP6"])
RTP_PROTOCOLS = ["RTP/AVP", "RTP/AVPF", "RTP/SAVP", "UDP/TLS/RTP/SAVPF"]
OTHER_PROTOCOLS = ["udptl", "TCP/MSRP", "UDP/BFCP"]


@st.composite
def media_formats(draw: st.DrawFn, pt: int) -> MediaFormat:
    fmtp = draw(st.none() | texts.map(str.strip).filter(bool))
    if pt not in STATIC_PAYLOAD_TYPES and draw(st.booleans()):
        return MediaFormat(pt, "", 0, fmtp=fmtp)
    encoding = draw(tokens.filter(lambda t: "/" not in t))
    return MediaFormat(pt, encoding, draw(st.integers(1, 200_000)), draw(st.integers(1, 8)), fmtp)


@st.composite
def media_descriptions(draw: st.DrawFn, *, needs_connection: bool) -> MediaDescription:
    rtp = draw(st.booleans())
    port = draw(st.integers(0, 65535))
    connection = draw(addresses if needs_connection and port else st.none() | addresses)
    payload_types = draw(st.lists(st.integers(0, 127), unique=True, max_size=6))
    return MediaDescription(
        media=draw(tokens),
        port=port,
        protocol=draw(st.sampled_from(RTP_PROTOCOLS if rtp else OTHER_PROTOCOLS)),
        formats=tuple(draw(media_formats(pt)) for pt in payload_types) if rtp else (),
        other_formats=() if rtp else tuple(draw(st.lists(tokens, max_size=3))),
        port_count=draw(st.integers(1, 4)),
        connection_address=connection,
        connection_address_type=draw(address_types) if connection else "",
        direction=draw(st.none() | st.sampled_from(list(Direction))),
        ptime=draw(st.none() | st.integers(1, 1000)),
        bandwidths=tuple(
            draw(
                st.lists(
                    st.builds(Bandwidth, tokens.filter(lambda t: ":" not in t), st.integers(0, 10**9)),
                    max_size=2,
                )
            )
        ),
        extra_lines=tuple(
            draw(st.lists(st.builds("{}={}".format, st.sampled_from("ik"), texts), max_size=2))
        ),
        extra_attributes=tuple(draw(st.lists(attributes, max_size=4))),
    )


@st.composite
def session_descriptions(draw: st.DrawFn) -> SessionDescription:
    connection = draw(st.none() | addresses)
    origin = Origin(
        draw(tokens),
        draw(st.integers(0, 2**64)),
        draw(st.integers(0, 2**64)),
        draw(addresses),
        draw(address_types),
    )
    timing = st.builds(
        Timing, st.integers(0, 2**32), st.integers(0, 2**32), st.lists(texts, max_size=2).map(tuple)
    )
    return SessionDescription(
        origin=origin,
        session_name=draw(texts),
        connection_address=connection,
        connection_address_type=draw(address_types) if connection else "",
        direction=draw(st.none() | st.sampled_from(list(Direction))),
        media=tuple(draw(st.lists(media_descriptions(needs_connection=connection is None), max_size=4))),
        timing=tuple(draw(st.lists(timing, min_size=1, max_size=2))),
        bandwidths=tuple(
            draw(
                st.lists(
                    st.builds(Bandwidth, st.sampled_from(["AS", "CT", "TIAS"]), st.integers(0, 10**9)),
                    max_size=2,
                )
            )
        ),
        extra_lines=tuple(
            draw(st.lists(st.builds("{}={}".format, st.sampled_from("iuepzk"), texts), max_size=3))
        ),
        extra_attributes=tuple(draw(st.lists(attributes, max_size=3))),
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(session_descriptions())
def test_generated_descriptions_round_trip(sd: SessionDescription) -> None:
    data = sd.to_bytes()
    assert parse_sdp(data) == sd
    assert parse_sdp(data.replace(b"\r\n", b"\n")) == sd


def _parse_or_sdp_error(data: bytes | str) -> SessionDescription | None:
    try:
        sd = parse_sdp(data)
    except SdpError:
        return None
    # Whatever we accept, we can write back, and what we write reads back the same.
    assert parse_sdp(sd.to_bytes()) == sd
    return sd


@settings(max_examples=500)
@given(st.binary(max_size=400))
@example(b"v=0")
@example(b"v=0\no=- 1 1 IN IP4 h\ns=\xff\xfe")
def test_arbitrary_bytes_parse_or_raise_sdp_error(data: bytes) -> None:
    _parse_or_sdp_error(data)


_LINE_STARTS = [
    *(f"{letter}=" for letter in "vosiuepcbtrzkamx"),
    "m=audio 4000 RTP/AVP ",
    "m=video 0 RTP/AVP ",
    "m=image 5 udptl ",
    "a=rtpmap:",
    "a=fmtp:",
    "a=ptime:",
    "a=sendonly",
    "c=IN IP4 ",
    "b=AS:",
]
_HEADS = ["v=0\n", "v=0\no=- 1 1 IN IP4 h\ns=-\n", HEAD]
sdp_like_lines = st.builds(
    "{}{}".format,
    st.sampled_from(_LINE_STARTS),
    st.text(st.sampled_from(" 0123456789/:-.IPNRTAVPpcmux\t\x85\u00a0é"), max_size=25),
)


@settings(max_examples=500)
@given(st.sampled_from(_HEADS), st.lists(sdp_like_lines, max_size=20), st.sampled_from(["\n", "\r\n"]))
def test_sdp_like_text_parses_or_raises_sdp_error(head: str, lines: list[str], ending: str) -> None:
    _parse_or_sdp_error((head + "\n".join(lines)).replace("\n", ending))


@settings(max_examples=300)
@given(
    st.sampled_from(sorted(REAL_WORLD)),
    st.lists(
        st.tuples(st.integers(0, 2000), st.integers(0, 255), st.sampled_from(["set", "insert", "delete"]))
    ),
)
def test_mutated_real_world_sdp_parses_or_raises_sdp_error(
    name: str, edits: list[tuple[int, int, str]]
) -> None:
    data = bytearray(REAL_WORLD[name])
    for position, value, operation in edits:
        index = position % (len(data) + 1)
        if operation == "insert":
            data.insert(index, value)
        elif data and index < len(data):
            if operation == "set":
                data[index] = value
            else:
                del data[index]
    _parse_or_sdp_error(bytes(data))
