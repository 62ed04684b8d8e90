"""Bridge: who hears whom per supervisor mode, one pull per leg per 20 ms, a recording that keeps time.

Fake legs stand in for calls. Every frame a fake leg gives the bridge says where it came from: sample
``index`` (0 caller, 1 agent, 2 supervisor) holds the leg's pull number (base + 1, base + 2, ...) and the
samples from ``CONST_AT`` on hold a constant per leg (1, 10, 100), so a mixed frame shows which frame of
each source went into it, and the sum proves the mixing. One "period" is 20 ms: every ticking leg's RTP
sender calls its frame source once, in some order.
"""

from __future__ import annotations

import array
import logging
from collections.abc import Iterable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccdaemon.media.bridge import Bridge, FrameSource, SupervisorMode
from ccdaemon.media.player import FRAME_BYTES, FRAME_SAMPLES
from ccdaemon.media.recorder import StereoInterleaver

CALLER, AGENT, SUPERVISOR = 0, 1, 2
CONST_AT = 3
CONSTANT = {CALLER: 1, AGENT: 10, SUPERVISOR: 100}


class FakeLeg:
    def __init__(self, index: int, *, base: int = 0) -> None:
        self.index = index
        self.base = base
        self.pulls = 0
        self.muted = False  # sends nothing (hold, mute): pull_frame returns None
        self.source: FrameSource | None = None
        self.heard: list[bytes | None] = []

    def play(self, source: FrameSource | None) -> None:
        self.source = source

    def pull_frame(self) -> bytes | None:
        self.pulls += 1
        if self.muted:
            return None
        samples = [0] * FRAME_SAMPLES
        samples[self.index] = self.base + self.pulls
        samples[CONST_AT:] = [CONSTANT[self.index]] * (FRAME_SAMPLES - CONST_AT)
        return array.array("h", samples).tobytes()

    def tick(self) -> bytes | None:
        """One tick of this leg's RTP sender (a real sender does not tick without a source)."""
        if self.source is None:
            return None
        frame = self.source()
        self.heard.append(frame)
        return frame


class Sink:
    def __init__(self) -> None:
        self.frames: list[tuple[bytes | None, bytes | None]] = []

    def add(self, left: bytes | None, right: bytes | None) -> None:
        self.frames.append((left, right))


def decode(frame: bytes | None) -> dict[int, int]:
    """Which source's which frame is in ``frame``: {leg index: pull number}."""
    if frame is None:
        return {}
    assert len(frame) == FRAME_BYTES
    samples = array.array("h", frame)
    found = {i: samples[i] for i in (CALLER, AGENT, SUPERVISOR) if samples[i]}
    assert samples[CONST_AT] == sum(CONSTANT[i] for i in found)  # the mix is the sum of the sources
    return found


def heard_from(frames: Iterable[bytes | None], index: int) -> list[int]:
    return [decode(f)[index] for f in frames if index in decode(f)]


def run(legs: Sequence[FakeLeg], periods: int, order: Sequence[int] | None = None) -> None:
    for _ in range(periods):
        for i in order if order is not None else range(len(legs)):
            legs[i].tick()


def three_party(mode: SupervisorMode | str) -> tuple[Bridge, list[FakeLeg], Sink]:
    legs = [FakeLeg(CALLER), FakeLeg(AGENT), FakeLeg(SUPERVISOR)]
    sink = Sink()
    bridge = Bridge(legs[CALLER], legs[AGENT], recorder=sink)
    bridge.attach(legs[SUPERVISOR], mode)
    bridge.start()
    return bridge, legs, sink


# Expected hearing, written out independently of the bridge's table.
EXPECTED: dict[SupervisorMode | None, dict[int, set[int]]] = {
    None: {CALLER: {AGENT}, AGENT: {CALLER}},
    SupervisorMode.MONITOR: {CALLER: {AGENT}, AGENT: {CALLER}, SUPERVISOR: {CALLER, AGENT}},
    SupervisorMode.WHISPER: {CALLER: {AGENT}, AGENT: {CALLER, SUPERVISOR}, SUPERVISOR: {CALLER, AGENT}},
    SupervisorMode.BARGE: {
        CALLER: {AGENT, SUPERVISOR},
        AGENT: {CALLER, SUPERVISOR},
        SUPERVISOR: {CALLER, AGENT},
    },
}


# --- two parties ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", [(CALLER, AGENT), (AGENT, CALLER)])
def test_two_parties_hear_every_frame_of_each_other_once(order: tuple[int, int]) -> None:
    legs = [FakeLeg(CALLER), FakeLeg(AGENT)]
    sink = Sink()
    bridge = Bridge(legs[CALLER], legs[AGENT], recorder=sink)
    bridge.start()
    run(legs, 50, order)
    assert [leg.pulls for leg in legs] == [50, 50]
    assert heard_from(legs[AGENT].heard, CALLER) == list(range(1, 51))
    assert heard_from(legs[CALLER].heard, AGENT) == list(range(1, 51))
    assert all(decode(f).keys() == {AGENT} for f in legs[CALLER].heard)
    assert len(sink.frames) == bridge.frames_recorded == 50
    assert heard_from((left for left, _ in sink.frames), CALLER) == list(range(1, 51))
    assert heard_from((right for _, right in sink.frames), AGENT) == list(range(1, 51))
    assert all(decode(right).keys() == {AGENT} for _, right in sink.frames)
    assert bridge.frames_skipped == 0


def test_without_a_recorder_the_legs_are_still_pulled_once_per_period() -> None:
    legs = [FakeLeg(CALLER), FakeLeg(AGENT)]
    bridge = Bridge(legs[CALLER], legs[AGENT])
    bridge.start()
    run(legs, 20)
    assert [leg.pulls for leg in legs] == [20, 20]
    assert bridge.frames_recorded == 20


# --- supervisor modes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(SupervisorMode))
@pytest.mark.parametrize(
    "order", [(CALLER, AGENT, SUPERVISOR), (SUPERVISOR, AGENT, CALLER), (AGENT, SUPERVISOR, CALLER)]
)
def test_who_hears_whom(mode: SupervisorMode, order: tuple[int, int, int]) -> None:
    _, legs, sink = three_party(mode)
    run(legs, 40, order)
    for index, leg in enumerate(legs):
        assert len(leg.heard) == 40
        for frame in leg.heard:
            assert decode(frame).keys() == EXPECTED[mode][index]
        for source in EXPECTED[mode][index]:
            assert heard_from(leg.heard, source) == list(range(1, 41))  # every frame, once, in order
    # one pull per leg per period, also of a supervisor nobody hears (monitor): its buffer stays fresh
    assert [leg.pulls for leg in legs] == [40, 40, 40]
    assert len(sink.frames) == 40
    assert all(decode(left).keys() == {CALLER} for left, _ in sink.frames)
    right = {AGENT, SUPERVISOR} if mode is SupervisorMode.BARGE else {AGENT}  # whisper is not recorded
    assert all(decode(r).keys() == right for _, r in sink.frames)


def test_modes_switch_live_and_detach_leaves_the_two_party_call_unchanged() -> None:
    bridge, legs, sink = three_party("monitor")
    caller, agent, supervisor = legs
    run(legs, 5)
    assert bridge.mode is SupervisorMode.MONITOR
    bridge.set_mode("whisper")
    run(legs, 5)
    bridge.set_mode(SupervisorMode.BARGE)
    run(legs, 5)
    assert bridge.detach() is supervisor
    assert supervisor.source is None and bridge.supervisor is None and bridge.mode is None
    run(legs, 5)  # the detached supervisor's sender no longer ticks
    assert [decode(f).keys() for f in caller.heard] == [{AGENT}] * 10 + [{AGENT, SUPERVISOR}] * 5 + [
        {AGENT}
    ] * 5
    assert [decode(f).keys() for f in agent.heard] == [{CALLER}] * 5 + [{CALLER, SUPERVISOR}] * 10 + [
        {CALLER}
    ] * 5
    assert heard_from(caller.heard, AGENT) == list(range(1, 21))
    assert heard_from(agent.heard, CALLER) == list(range(1, 21))
    assert len(sink.frames) == 20 and caller.pulls == agent.pulls == 20
    assert [decode(r).keys() for _, r in sink.frames] == [{AGENT}] * 10 + [{AGENT, SUPERVISOR}] * 5 + [
        {AGENT}
    ] * 5


def test_attach_during_the_call_and_a_stale_source_does_nothing() -> None:
    legs = [FakeLeg(CALLER), FakeLeg(AGENT), FakeLeg(SUPERVISOR)]
    bridge = Bridge(legs[CALLER], legs[AGENT])
    bridge.start()
    run(legs[:2], 3)
    bridge.attach(legs[SUPERVISOR], "barge")
    run(legs, 10)
    stale = legs[SUPERVISOR].source
    bridge.detach()
    assert stale is not None and stale() is None  # e.g. a tick already scheduled when it was detached
    assert legs[SUPERVISOR].pulls == 10
    assert [leg.pulls for leg in legs[:2]] == [13, 13]


def test_api_misuse_is_refused_and_changes_nothing() -> None:
    bridge, legs, _ = three_party("monitor")
    with pytest.raises(ValueError, match="already attached"):
        bridge.attach(FakeLeg(SUPERVISOR), "barge")
    with pytest.raises(ValueError):
        bridge.set_mode("shout")
    assert bridge.mode is SupervisorMode.MONITOR
    with pytest.raises(ValueError, match="already a party"):
        bridge.replace_caller(legs[AGENT])
    bridge.detach()
    assert bridge.detach() is None
    with pytest.raises(ValueError, match="no supervisor"):
        bridge.set_mode("barge")
    with pytest.raises(ValueError, match="already a party"):
        bridge.attach(legs[CALLER], "monitor")
    with pytest.raises(ValueError, match="different"):
        Bridge(legs[CALLER], legs[CALLER])


# --- hold, silence, and the recording's clock -------------------------------------------------------------


def test_a_long_one_sided_silence_keeps_both_channels_equal_and_in_time() -> None:
    legs = [FakeLeg(CALLER), FakeLeg(AGENT)]
    interleaver = StereoInterleaver()
    chunks: list[bytes] = []

    class Stereo:
        def add(self, left: bytes | None, right: bytes | None) -> None:
            chunks.append(interleaver.add(left, right))

    bridge = Bridge(legs[CALLER], legs[AGENT], recorder=Stereo())
    bridge.start()
    run(legs, 10)
    legs[AGENT].muted = True  # the agent's phone holds the caller: it sends nothing for 10 s
    run(legs, 500)
    legs[AGENT].muted = False
    run(legs, 10)
    stereo = array.array("h", b"".join(chunks))
    left, right = stereo[0::2], stereo[1::2]
    assert len(left) == len(right) == 520 * FRAME_SAMPLES
    held = slice(10 * FRAME_SAMPLES, 510 * FRAME_SAMPLES)
    assert not any(right[held])
    assert left[CONST_AT::FRAME_SAMPLES] == array.array("h", [CONSTANT[CALLER]] * 520)  # never silent
    assert right[CONST_AT::FRAME_SAMPLES][510:] == array.array("h", [CONSTANT[AGENT]] * 10)
    assert [leg.pulls for leg in legs] == [520, 520]
    assert all(f is None for f in legs[CALLER].heard[10:510])  # nothing to send: no packet


@pytest.mark.parametrize("order", [(CALLER, AGENT), (AGENT, CALLER)])
@pytest.mark.parametrize("quiet", [CALLER, AGENT])
def test_a_leg_that_stops_ticking_does_not_stop_the_recording(order: tuple[int, int], quiet: int) -> None:
    """A sender that calls no source (the peer holds us: a=sendonly; or it sends DTMF) for 300 periods."""
    legs = [FakeLeg(CALLER), FakeLeg(AGENT)]
    sink = Sink()
    bridge = Bridge(legs[CALLER], legs[AGENT], recorder=sink)
    bridge.start()
    run(legs, 10, order)
    other = 1 - quiet
    run(legs, 300, [other])
    run(legs, 10, order)
    assert len(sink.frames) == bridge.frames_recorded == 320
    assert heard_from((left for left, _ in sink.frames), CALLER) == list(range(1, 321))
    assert heard_from((right for _, right in sink.frames), AGENT) == list(range(1, 321))
    assert [leg.pulls for leg in legs] == [320, 320]
    # the quiet leg's listener went on hearing everything; the quiet leg resumes with the newest frame
    assert heard_from(legs[other].heard, quiet) == list(range(1, 321))
    resumed = heard_from(legs[quiet].heard, other)
    assert resumed[:10] == list(range(1, 11))
    # no backlog: at most one frame behind the newest (20 ms more latency if the other leg now pulls first)
    assert resumed[10] >= 309 and resumed[10:] == list(range(resumed[10], resumed[10] + 10))
    assert bridge.frames_skipped > 0


def test_caller_on_hold_hears_music_agent_and_supervisor_consult_recording_goes_on() -> None:
    bridge, legs, sink = three_party("monitor")
    caller, agent, supervisor = legs
    run(legs, 5)
    music = iter(range(1000, 2000))
    bridge.hold_caller(lambda: array.array("h", [next(music)] * FRAME_SAMPLES).tobytes())
    bridge.set_mode("whisper")  # consultation: the agent hears the supervisor
    assert bridge.caller_held
    run(legs, 10)
    bridge.resume_caller()
    run(legs, 5)
    assert [array.array("h", f or b"\x00\x00")[0] for f in caller.heard[5:15]] == list(range(1000, 1010))
    heard = [decode(f).keys() for f in agent.heard]
    assert heard == [{CALLER}] * 5 + [{SUPERVISOR}] * 10 + [{CALLER, SUPERVISOR}] * 5
    assert [decode(f).keys() for f in supervisor.heard] == [{CALLER, AGENT}] * 5 + [{AGENT}] * 10 + [
        {CALLER, AGENT}
    ] * 5
    assert len(sink.frames) == 20
    assert heard_from((left for left, _ in sink.frames), CALLER) == list(range(1, 21))  # drained on hold too
    assert [r is None for _, r in sink.frames] == [False] * 5 + [True] * 10 + [False] * 5
    assert caller.pulls == 20  # nobody heard the caller on hold, but its buffer was drained


# --- replacement (transfer) -------------------------------------------------------------------------------


@pytest.mark.parametrize("new_ticks_first", [False, True])
def test_replace_agent_mid_period_keeps_the_recording_seamless(new_ticks_first: bool) -> None:
    caller, old = FakeLeg(CALLER), FakeLeg(AGENT)
    new = FakeLeg(AGENT, base=10_000)
    sink = Sink()
    bridge = Bridge(caller, old, recorder=sink)
    bridge.start()
    run([caller, old], 10)
    old_source = old.source
    assert bridge.replace_agent(new) is old
    assert old.source is None and bridge.agent is new
    assert old_source is not None and old_source() is None  # a late tick of the old leg pulls nothing
    if new_ticks_first:  # the new leg's phase lies before the caller's
        run([new, caller], 10)
    else:  # after the old leg's: it ticks once more in the period the old leg has just ticked in
        new.tick()
        run([caller, new], 10)
    assert caller.pulls == len(sink.frames) == 20  # no second pull of the caller in the swap's period
    assert heard_from((left for left, _ in sink.frames), CALLER) == list(range(1, caller.pulls + 1))
    right = heard_from((r for _, r in sink.frames), AGENT)
    assert right[:10] == list(range(1, 11)) and right[10:] == list(range(10_001, 10_011))
    assert heard_from(caller.heard, AGENT) == right  # no gap, no repeat for the caller either
    assert heard_from(old.heard, CALLER) == list(range(1, 11))
    # the new agent starts with the frame the old one heard last at most (never a second pull)
    first_new = heard_from(new.heard, CALLER)
    assert first_new[0] in (10, 11) and first_new == list(range(first_new[0], first_new[0] + len(first_new)))


def test_replace_caller() -> None:
    old, agent, new = FakeLeg(CALLER), FakeLeg(AGENT), FakeLeg(CALLER, base=500)
    sink = Sink()
    bridge = Bridge(old, agent, recorder=sink)
    bridge.start()
    run([old, agent], 5)
    assert bridge.replace_caller(new) is old and old.source is None
    run([new, agent], 5)
    assert heard_from(agent.heard, CALLER) == [1, 2, 3, 4, 5, 501, 502, 503, 504, 505]
    assert heard_from((left for left, _ in sink.frames), CALLER) == [1, 2, 3, 4, 5, 501, 502, 503, 504, 505]
    assert agent.pulls == 10 and len(sink.frames) == 10


def test_warm_transfer_completed_the_supervisor_becomes_the_agent() -> None:
    bridge, legs, sink = three_party("monitor")
    caller, agent, supervisor = legs
    run(legs, 5)
    bridge.hold_caller(None)
    bridge.set_mode("barge")
    run(legs, 5)
    assert bridge.replace_agent(supervisor) is agent
    bridge.resume_caller()
    assert agent.source is None and bridge.agent is supervisor
    assert bridge.supervisor is None and bridge.mode is None
    run([caller, supervisor], 5)
    assert [decode(f).keys() for f in caller.heard] == [{AGENT}] * 5 + [set()] * 5 + [{SUPERVISOR}] * 5
    assert [decode(f).keys() for f in supervisor.heard[-5:]] == [{CALLER}] * 5
    assert len(sink.frames) == 15
    assert heard_from((left for left, _ in sink.frames), CALLER) == list(range(1, 16))
    assert [decode(r).keys() for _, r in sink.frames] == [{AGENT}] * 5 + [set()] * 5 + [{SUPERVISOR}] * 5
    assert caller.pulls == 15 and supervisor.pulls == 15


def test_warm_transfer_cancelled_the_caller_is_back_with_the_agent() -> None:
    bridge, legs, sink = three_party("barge")
    caller, agent, supervisor = legs
    bridge.hold_caller()
    run(legs, 5)
    bridge.detach()
    bridge.resume_caller()
    run(legs, 5)
    assert [decode(f).keys() for f in caller.heard] == [set()] * 5 + [{AGENT}] * 5
    assert [decode(f).keys() for f in agent.heard] == [{SUPERVISOR}] * 5 + [{CALLER}] * 5
    assert supervisor.source is None and len(supervisor.heard) == 5
    assert len(sink.frames) == 10 and caller.pulls == agent.pulls == 10


def test_a_leg_without_media_is_refused_and_nothing_changes() -> None:
    class NoMedia(FakeLeg):
        def play(self, source: FrameSource | None) -> None:
            raise RuntimeError("call has no media yet")

    legs = [FakeLeg(CALLER), FakeLeg(AGENT)]
    bridge = Bridge(legs[CALLER], legs[AGENT])
    bridge.start()
    run(legs, 3)
    with pytest.raises(RuntimeError):
        bridge.attach(NoMedia(SUPERVISOR), "barge")
    with pytest.raises(RuntimeError):
        bridge.replace_agent(NoMedia(AGENT, base=100))
    assert bridge.supervisor is None and bridge.mode is None and bridge.agent is legs[AGENT]
    run(legs, 3)
    assert heard_from(legs[CALLER].heard, AGENT) == [1, 2, 3, 4, 5, 6]
    assert all(decode(f).keys() == {CALLER} for f in legs[AGENT].heard)


def test_a_supervisor_coming_back_later_brings_no_stale_audio() -> None:
    bridge, legs, _ = three_party("barge")
    run(legs, 5)
    bridge.detach()
    run(legs[:2], 5)
    new_agent = FakeLeg(AGENT, base=100)
    bridge.replace_agent(new_agent)  # a listener that never heard the supervisor
    bridge.attach(legs[SUPERVISOR], "barge")
    legs[AGENT] = new_agent
    run(legs, 5)
    assert heard_from(new_agent.heard, SUPERVISOR) == [6, 7, 8, 9, 10]  # not frame 5, pulled long ago
    assert legs[SUPERVISOR].pulls == 10


# --- lifecycle --------------------------------------------------------------------------------------------


def test_stop_silences_every_leg_and_late_ticks_pull_nothing() -> None:
    bridge, legs, _ = three_party("barge")
    sources = [leg.source for leg in legs]
    run(legs, 3)
    bridge.stop()
    assert all(leg.source is None for leg in legs) and not bridge.active
    assert all(s is not None and s() is None for s in sources)
    assert [leg.pulls for leg in legs] == [3, 3, 3]
    bridge.stop()  # idempotent


def test_a_failing_leg_does_not_break_the_tick(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(FakeLeg):
        def pull_frame(self) -> bytes | None:
            raise RuntimeError("boom")

    legs = [FakeLeg(CALLER), Broken(AGENT)]
    bridge = Bridge(legs[CALLER], legs[AGENT])
    bridge.start()
    with caplog.at_level(logging.ERROR, logger="ccdaemon.media.bridge"):
        run(legs, 3)
    assert legs[CALLER].heard == [None] * 3
    assert len([r for r in caplog.records if "bridge tick failed" in r.getMessage()]) == 1


def test_a_leg_that_ended_is_silenced_quietly() -> None:
    class Ended(FakeLeg):
        def play(self, source: FrameSource | None) -> None:
            if source is None:
                raise RuntimeError("no media")
            super().play(source)

    caller, agent = FakeLeg(CALLER), Ended(AGENT)
    bridge = Bridge(caller, agent)
    bridge.start()
    bridge.stop()
    assert caller.source is None


# --- randomised interleavings -----------------------------------------------------------------------------

MODES: list[SupervisorMode | None] = [None, *SupervisorMode]
switch_lists = st.lists(st.tuples(st.integers(0, 39), st.integers(0, 2), st.sampled_from(MODES)), max_size=8)


class Checker:
    """Drives three legs tick by tick, applies mode switches, checks every frame heard."""

    def __init__(
        self, initial: SupervisorMode, switches: list[tuple[int, int, SupervisorMode | None]]
    ) -> None:
        self.bridge, self.legs, self.sink = three_party(initial)
        self.mode: SupervisorMode | None = initial
        self.switches = {(p, i): m for p, i, m in switches}
        self.last: dict[tuple[int, int], int] = {}  # (listener, source): newest frame number heard
        self.continuing: dict[tuple[int, int], bool] = {}  # ... and heard on the listener's previous tick
        self.skips = 0

    def switch(self, period: int, position: int) -> None:
        new = self.switches.get((period, position), self.mode)
        if new == self.mode:
            return
        if new is None:
            self.bridge.detach()
            self.interrupted(SUPERVISOR)
        elif self.mode is None:
            self.bridge.attach(self.legs[SUPERVISOR], new)
        else:
            self.bridge.set_mode(new)
        self.mode = new

    def interrupted(self, listener: int) -> None:
        self.continuing.update({(listener, source): False for source in (CALLER, AGENT, SUPERVISOR)})

    def tick(self, index: int) -> None:
        if index == SUPERVISOR and self.mode is None:
            return  # a detached leg's sender does not tick
        got = decode(self.legs[index].tick())
        assert got.keys() == EXPECTED[self.mode][index]  # each heard source is there: nobody starves
        for source in (CALLER, AGENT, SUPERVISOR):
            key = (index, source)
            if source in got:
                assert got[source] > self.last.get(key, 0)  # never a frame twice, never an older one
                if self.continuing.get(key) and got[source] != self.last[key] + 1:
                    self.skips += 1
                self.last[key] = got[source]
            self.continuing[key] = source in got

    def check_end(self, periods: int) -> None:
        for leg in self.legs:
            assert leg.pulls <= periods  # never two pulls of a leg in one period
        assert self.legs[CALLER].pulls >= periods - 1 and self.legs[AGENT].pulls >= periods - 1


@settings(max_examples=300, deadline=None)
@given(
    periods=st.integers(1, 40),
    order=st.permutations([CALLER, AGENT, SUPERVISOR]),
    switches=switch_lists,
    initial=st.sampled_from(list(SupervisorMode)),
    pause=st.tuples(st.sampled_from([CALLER, AGENT, SUPERVISOR]), st.integers(0, 39), st.integers(0, 20)),
)
def test_fixed_phases_any_mode_switches_and_a_pause(
    periods: int,
    order: list[int],
    switches: list[tuple[int, int, SupervisorMode | None]],
    initial: SupervisorMode,
    pause: tuple[int, int, int],
) -> None:
    """The legs tick on their own fixed phases (as asyncio timers on one clock do); modes switch or the
    supervisor leaves and comes back between any two ticks; one leg stops ticking for a while (DTMF, peer
    hold). Every tick hears exactly its mode's parties, every listener hears consecutive frames, no leg is
    pulled twice in a period and the recording has exactly one frame per period."""
    check = Checker(initial, switches)
    paused, pause_from, pause_for = pause
    for period in range(periods):
        for position, index in enumerate(order):
            check.switch(period, position)
            if index == paused and pause_from <= period < pause_from + pause_for:
                check.interrupted(index)
                continue
            check.tick(index)
    check.check_end(periods)
    assert check.skips == 0
    assert len(check.sink.frames) == check.bridge.frames_recorded == periods
    sink = check.sink
    assert heard_from((left for left, _ in sink.frames), CALLER) == list(range(1, periods + 1))
    assert heard_from((right for _, right in sink.frames), AGENT) == list(range(1, periods + 1))


@settings(max_examples=300, deadline=None)
@given(
    periods=st.integers(1, 40),
    orders=st.lists(st.permutations([CALLER, AGENT, SUPERVISOR]), min_size=40, max_size=40),
    switches=switch_lists,
    initial=st.sampled_from(list(SupervisorMode)),
)
def test_jittered_tick_orders(
    periods: int,
    orders: list[list[int]],
    switches: list[tuple[int, int, SupervisorMode | None]],
    initial: SupervisorMode,
) -> None:
    """Any order of the ticks within each period (worse than real timers, whose order is fixed): still no
    double pull, nobody starves or hears a frame twice, the recording keeps time. A listener may skip a
    frame when the order flips (one mailbox frame: the price of never adding latency)."""
    check = Checker(initial, switches)
    for period in range(periods):
        for position, index in enumerate(orders[period]):
            check.switch(period, position)
            check.tick(index)
    check.check_end(periods)
    assert periods - 1 <= check.bridge.frames_recorded <= periods
