"""The IVR state machine with virtual time, and its TOML loader: routing, timeouts, retries, paths, checks."""

from __future__ import annotations

import copy
import re
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccdaemon.acd.calendar import FlowConfigError, RuleKind
from ccdaemon.acd.ivr import (
    Back,
    GotoMenu,
    Hangup,
    IvrConfig,
    IvrOutput,
    IvrSession,
    IvrState,
    MenuConfig,
    PathStep,
    PlayPrompts,
    Repeat,
    Route,
    RouteCause,
    StopPrompt,
    ToQueue,
    Transfer,
    Voicemail,
    ivr_warnings,
    load_ivr_config,
    parse_action,
)

ROOT = Path(__file__).resolve().parents[3]
TOKYO = ZoneInfo("Asia/Tokyo")
MONDAY_10 = datetime(2027, 1, 4, 10, 0, tzinfo=TOKYO)
NEW_YEAR = datetime(2027, 1, 1, 10, 0, tzinfo=TOKYO)

DOC: dict[str, Any] = {
    "ivr": {
        "defaults": {
            "first_digit_timeout": 5.0,
            "inter_digit_timeout": 3.0,
            "max_retries": 2,
            "invalid_prompts": ["invalid"],
            "no_input_prompts": ["no-input"],
            "on_invalid": "queue:general",
        },
        "menus": {
            "main": {
                "prompts": ["welcome", "main"],
                "options": {"1": "menu:ja", "2": "menu:billing", "9": "repeat", "0": "transfer:200"},
                "on_no_input": "voicemail:general",
            },
            "ja": {
                "language": "ja",
                "prompts": "ja/menu",
                "options": {"1": "queue:sales", "2": "queue:billing", "4": "menu:ext", "*": "back"},
            },
            "billing": {
                "prompts": ["billing"],
                "options": {"1": "queue:billing", "2": "voicemail:billing", "3": "hangup", "*": "back"},
            },
            "ext": {
                "prompts": ["ext"],
                "max_digits": 4,
                "direct_dial": "sip:{digits}@pbx",
                "direct_dial_min_digits": 3,
                "options": {"*": "back", "#": "repeat"},
                "on_invalid": "transfer:200",
            },
        },
    }
}


def config(**ivr: Any) -> IvrConfig:
    document = copy.deepcopy(DOC)
    calendar = ivr.pop("calendar", None)
    if calendar is not None:
        document["calendar"] = calendar
    document["ivr"].update(ivr)
    return load_ivr_config(document)


def drain(session: IvrSession) -> list[IvrOutput]:
    outputs: list[IvrOutput] = []
    while (output := session.next_action()) is not None:
        outputs.append(output)
    return outputs


def route(session: IvrSession) -> Route:
    outputs = drain(session)
    assert isinstance(outputs[-1], Route), outputs
    assert session.done and session.result == outputs[-1] and session.get_timer() is None
    return outputs[-1]


def press(session: IvrSession, digits: str, now: float) -> None:
    for digit in digits:
        session.digit(digit, now)


def listen(session: IvrSession, now: float) -> IvrSession:
    """Let the current prompt finish at ``now`` (and throw its outputs away)."""
    drain(session)
    session.prompt_finished(now)
    return session


# -------------------------------------------------------------------------------------------- digit routing


def test_barge_in_stops_the_prompt_and_counts_as_input() -> None:
    session = IvrSession(config(), now=0.0)
    assert drain(session) == [PlayPrompts(("welcome", "main"), interruptible=True, play_id=1)]
    assert session.state is IvrState.PROMPT
    session.digit("1", 2.0)
    assert drain(session) == [StopPrompt(1), PlayPrompts(("ja/menu",), interruptible=True, play_id=2)]
    session.digit("2", 3.0)
    result = route(session)
    assert result.action == ToQueue("billing")
    assert result.cause is RouteCause.SELECTED
    assert result.contact_reason == "main>1>ja>2>billing"
    assert result.path == (PathStep("main", "1"), PathStep("ja", "2"))
    assert result.language == "ja"


def test_sub_menu_then_back_drops_the_step_from_the_contact_reason() -> None:
    session = listen(IvrSession(config(), now=0.0), 4.0)
    press(session, "1", 5.0)
    assert session.contact_reason == "main>1>ja"
    press(session, "*", 6.0)
    assert session.menu == "main" and session.contact_reason == "main"
    press(session, "2", 7.0)
    press(session, "1", 8.0)
    assert route(session).contact_reason == "main>2>billing>1>billing"
    assert [step.choice for step in session.history] == ["1", "*", "2", "1"]


def test_back_in_the_first_menu_and_repeat_replay_it() -> None:
    cfg = config(
        menus={**DOC["ivr"]["menus"], "main": {"prompts": ["main"], "options": {"*": "back", "9": "repeat"}}}
    )
    session = listen(IvrSession(cfg, now=0.0), 1.0)
    press(session, "*", 2.0)
    assert drain(session) == [PlayPrompts(("main",), interruptible=True, play_id=2)]
    listen(session, 3.0)
    press(session, "9", 4.0)
    assert drain(session) == [PlayPrompts(("main",), interruptible=True, play_id=3)]
    assert session.path == () and session.menu == "main"


def test_destinations_in_the_contact_reason() -> None:
    cases = {"0": ("transfer:200", Transfer("200")), "22": ("voicemail:billing", Voicemail("billing"))}
    for digits, (end, action) in cases.items():
        session = listen(IvrSession(config(), now=0.0), 1.0)
        press(session, digits, 2.0)
        result = route(session)
        assert result.action == action
        assert result.contact_reason.endswith(end)
    session = listen(IvrSession(config(), now=0.0), 1.0)
    press(session, "23", 2.0)
    assert route(session).action == Hangup()


# ----------------------------------------------------------------------------------------------- timeouts


def test_first_digit_timeout_replays_with_the_no_input_prompt() -> None:
    session = listen(IvrSession(config(), now=0.0), 10.0)
    assert session.state is IvrState.COLLECT
    assert session.get_timer() == 15.0
    session.handle_timer(14.9)  # early wake-up: nothing happens
    assert drain(session) == []
    session.handle_timer(15.0)
    assert drain(session) == [PlayPrompts(("no-input", "welcome", "main"), interruptible=True, play_id=2)]
    assert session.history == (PathStep("main", "timeout"),)


def test_silence_uses_up_the_retries_then_takes_on_no_input() -> None:
    session = IvrSession(config(), now=0.0)
    now = 0.0
    for _ in range(3):
        listen(session, now)
        timer = session.get_timer()
        assert timer is not None
        now = timer
        session.handle_timer(now)
    result = route(session)
    assert result.action == Voicemail("general")
    assert result.cause is RouteCause.NO_INPUT
    assert result.contact_reason == "main>timeout>voicemail:general"
    assert [step.choice for step in session.history] == ["timeout"] * 3


def test_inter_digit_timeout_completes_the_entry() -> None:
    session = listen(IvrSession(config(), now=0.0), 1.0)
    press(session, "14", 2.0)  # main 1 -> ja 4 -> ext
    listen(session, 3.0)
    session.digit("2", 4.0)
    assert session.get_timer() == 7.0
    session.digit("0", 6.5)
    assert session.get_timer() == 9.5  # restarted by each digit
    session.digit("1", 9.0)
    session.handle_timer(12.0)
    result = route(session)
    assert result.action == Transfer("sip:201@pbx")
    assert result.contact_reason == "main>1>ja>4>ext>201>transfer:sip:201@pbx"


def test_prompt_that_never_reports_its_end_times_out() -> None:
    session = IvrSession(config(prompt_timeout=30.0), now=0.0)
    drain(session)
    assert session.get_timer() == 30.0
    session.handle_timer(30.0)
    assert session.state is IvrState.COLLECT and session.get_timer() == 35.0


# --------------------------------------------------------------------------------------- invalid and retries


def test_invalid_input_retries_then_default_route() -> None:
    session = listen(IvrSession(config(), now=0.0), 1.0)
    for attempt in range(2):
        session.digit("7", 2.0 + attempt)
        assert drain(session) == [
            PlayPrompts(("invalid", "welcome", "main"), interruptible=True, play_id=2 + attempt)
        ]
        listen(session, 2.5 + attempt)
    session.digit("7", 5.0)
    result = route(session)
    assert result.action == ToQueue("general")
    assert result.cause is RouteCause.INVALID
    assert result.contact_reason == "main>invalid>general"


def test_last_failure_kind_picks_the_fallback() -> None:
    session = listen(IvrSession(config(), now=0.0), 1.0)
    session.handle_timer(6.0)  # silence
    listen(session, 7.0)
    press(session, "7", 8.0)  # invalid
    listen(session, 9.0)
    session.handle_timer(14.0)  # silence again: the third failure decides
    assert route(session).cause is RouteCause.NO_INPUT


def test_barge_in_during_the_invalid_prompt_is_input() -> None:
    session = listen(IvrSession(config(), now=0.0), 1.0)
    press(session, "7", 2.0)
    drain(session)
    session.digit("2", 2.5)
    assert drain(session) == [StopPrompt(2), PlayPrompts(("billing",), interruptible=True, play_id=3)]


def test_invalid_entry_after_sub_menu_goes_to_that_menus_fallback() -> None:
    session = listen(IvrSession(config(), now=0.0), 1.0)
    press(session, "14", 2.0)
    for attempt in range(3):
        listen(session, 3.0 + attempt)
        press(session, "12#", 3.5 + attempt)  # too short for direct dial, not an option
    result = route(session)
    assert result.action == Transfer("200")
    assert result.contact_reason == "main>1>ja>4>ext>invalid>transfer:200"


# ------------------------------------------------------------------------------------------ multi-digit input


def ext_session() -> IvrSession:
    session = listen(IvrSession(config(), now=0.0), 1.0)
    press(session, "14", 2.0)
    return listen(session, 3.0)


def test_hash_ends_the_entry() -> None:
    session = ext_session()
    press(session, "201", 4.0)
    assert not session.done
    session.digit("#", 4.5)
    assert route(session).action == Transfer("sip:201@pbx")


def test_max_digits_ends_the_entry_without_waiting() -> None:
    session = ext_session()
    press(session, "2015", 4.0)
    assert route(session).action == Transfer("sip:2015@pbx")


def test_hash_alone_and_star_are_options_decided_at_once() -> None:
    session = ext_session()
    session.digit("#", 4.0)
    assert drain(session) == [PlayPrompts(("ext",), interruptible=True, play_id=4)]  # "#" = repeat
    listen(session, 5.0)
    session.digit("*", 6.0)  # no option or extension starts with "*": back at once
    assert session.menu == "ja" and session.contact_reason == "main>1>ja"


def test_option_that_is_a_prefix_of_another_waits_for_more() -> None:
    menus = {
        "main": {"prompts": ["m"], "options": {"1": "queue:one", "12": "queue:twelve", "3": "queue:three"}}
    }
    cfg = config(menus=menus)
    session = listen(IvrSession(cfg, now=0.0), 1.0)
    session.digit("1", 2.0)
    assert not session.done and session.get_timer() == 5.0
    session.handle_timer(5.0)
    assert route(session).action == ToQueue("one")
    session = listen(IvrSession(cfg, now=0.0), 1.0)
    press(session, "12", 2.0)
    assert route(session).action == ToQueue("twelve")
    session = listen(IvrSession(cfg, now=0.0), 1.0)
    session.digit("3", 2.0)  # nothing longer starts with 3
    assert route(session).action == ToQueue("three")


def test_hash_without_input_or_option_is_invalid() -> None:
    session = listen(IvrSession(config(), now=0.0), 1.0)
    session.digit("#", 2.0)
    assert drain(session) == [PlayPrompts(("invalid", "welcome", "main"), interruptible=True, play_id=2)]


# ------------------------------------------------------------------------------- calendar and recorded notice

OFFICE_CALENDAR = {
    "weekly": {"weekdays": ["09:00-12:00", "13:00-18:00"]},
    "holidays": [{"date": "01-01", "name": "元日"}],
}


def test_after_hours_route() -> None:
    cfg = config(calendar=OFFICE_CALENDAR, after_hours="voicemail:after-hours")
    session = IvrSession(cfg, now=0.0, wall_time=NEW_YEAR)
    result = route(session)
    assert result.action == Voicemail("after-hours")
    assert result.cause is RouteCause.AFTER_HOURS
    assert result.contact_reason == "after-hours>voicemail:after-hours"
    assert session.calendar_decision is not None
    assert session.calendar_decision.kind is RuleKind.HOLIDAY


def test_open_hours_go_to_the_entry_menu() -> None:
    cfg = config(calendar=OFFICE_CALENDAR, after_hours="voicemail:after-hours")
    session = IvrSession(cfg, now=0.0, wall_time=MONDAY_10)
    assert drain(session) == [PlayPrompts(("welcome", "main"), interruptible=True, play_id=1)]
    assert str(session.calendar_decision) == "open: weekly mon 09:00-12:00 (2027-01-04)"


def test_after_hours_menu_then_voicemail() -> None:
    menus = {
        **DOC["ivr"]["menus"],
        "closed": {"prompts": ["closed"], "max_retries": 0, "on_no_input": "voicemail:vm"},
    }
    cfg = config(calendar=OFFICE_CALENDAR, after_hours="menu:closed", menus=menus)
    session = listen(IvrSession(cfg, now=0.0, wall_time=datetime(2027, 1, 4, 12, 30, tzinfo=TOKYO)), 3.0)
    session.handle_timer(8.0)
    result = route(session)
    assert result.action == Voicemail("vm")
    assert result.contact_reason == "after-hours>closed>timeout>voicemail:vm"


def test_calendar_needs_the_wall_time() -> None:
    with pytest.raises(ValueError, match="wall_time"):
        IvrSession(config(calendar=OFFICE_CALENDAR), now=0.0)


def test_recorded_notice_plays_first_and_cannot_be_skipped() -> None:
    session = IvrSession(config(recorded_notice=True), now=0.0)
    assert drain(session) == [PlayPrompts(("recorded-notice",), interruptible=False, play_id=1)]
    assert session.state is IvrState.NOTICE
    session.digit("1", 1.0)  # ignored: the notice must be heard
    assert drain(session) == [] and session.path == ()
    session.prompt_finished(4.0, play_id=1)
    assert drain(session) == [PlayPrompts(("welcome", "main"), interruptible=True, play_id=2)]


def test_recorded_notice_before_after_hours() -> None:
    cfg = config(recorded_notice="notice-ja", calendar=OFFICE_CALENDAR, after_hours="hangup")
    session = IvrSession(cfg, now=0.0, wall_time=NEW_YEAR)
    assert drain(session) == [PlayPrompts(("notice-ja",), interruptible=False, play_id=1)]
    session.prompt_finished(3.0)
    assert route(session).contact_reason == "after-hours>hangup"


def test_stale_prompt_finished_is_ignored() -> None:
    session = IvrSession(config(), now=0.0)
    session.digit("1", 1.0)  # barge-in: play 1 stopped, play 2 started
    drain(session)
    session.prompt_finished(1.1, play_id=1)  # the player's late report about the stopped play
    assert session.get_timer() == 121.0  # still the safety deadline of play 2's prompt
    session.prompt_finished(5.0, play_id=2)
    assert session.state is IvrState.COLLECT


# --------------------------------------------------------------------------------------------- robustness


def test_menu_visits_are_capped() -> None:
    session = IvrSession(config(max_menu_visits=3, fallback="queue:operator"), now=0.0)
    for now in (1.0, 2.0, 3.0):
        session.digit("9", now)  # repeat, repeat, repeat
    result = route(session)
    assert result.action == ToQueue("operator")
    assert result.cause is RouteCause.LIMIT


def test_input_after_the_route_is_ignored_and_bad_digits_raise() -> None:
    session = listen(IvrSession(config(), now=0.0), 1.0)
    with pytest.raises(ValueError, match="DTMF"):
        session.digit("x", 1.5)
    press(session, "0", 2.0)
    result = route(session)
    session.digit("1", 3.0)
    session.prompt_finished(4.0)
    session.handle_timer(100.0)
    assert drain(session) == [] and session.result == result


EVENTS = st.one_of(
    st.sampled_from(list("0123456789*#AB")),
    st.sampled_from(["finish", "stale", "timer", "early"]),
)


@pytest.mark.parametrize("variant", ["plain", "notice", "closed-menu", "closed-route"])
@settings(max_examples=150, deadline=None)
@given(events=st.lists(st.tuples(EVENTS, st.floats(min_value=0, max_value=10)), max_size=60))
def test_any_input_ends_in_exactly_one_route(variant: str, events: list[tuple[str, float]]) -> None:
    menus = {
        **DOC["ivr"]["menus"],
        "closed": {"prompts": ["closed"], "options": {"1": "voicemail:vm", "*": "back"}},
    }
    extra: dict[str, Any] = {"menus": menus, "max_menu_visits": 8}
    if variant == "notice":
        extra["recorded_notice"] = True
    if variant.startswith("closed"):
        extra["calendar"] = OFFICE_CALENDAR
        extra["after_hours"] = "menu:closed" if variant == "closed-menu" else "hangup"
    session = IvrSession(config(**extra), now=0.0, wall_time=NEW_YEAR)
    outputs = drain(session)
    now = 0.0
    for event, step in events:
        now += step
        if event == "finish":
            session.prompt_finished(now)
        elif event == "stale":
            session.prompt_finished(now, play_id=0)
        elif event == "early":
            session.handle_timer(now)
        elif event == "timer":
            now = max(now, session.get_timer() or now)
            session.handle_timer(now)
        else:
            session.digit(event, now)
        outputs += drain(session)
    # silence from here on: timers alone must finish the call, within a bounded number of steps
    for _ in range(200):
        timer = session.get_timer()
        if timer is None:
            break
        now = max(now, timer)
        session.handle_timer(now)
        outputs += drain(session)
    assert session.done
    routes = [output for output in outputs if isinstance(output, Route)]
    assert len(routes) == 1 and outputs[-1] == routes[0] == session.result
    assert routes[0].contact_reason == session.contact_reason


# ------------------------------------------------------------------------------------------------- loader


def test_documented_example_loads_cleanly() -> None:
    text = (ROOT / "docs" / "ivr.md").read_text(encoding="utf-8")
    block = re.search(r"```toml\n(.*?)```", text, re.DOTALL)
    assert block is not None
    cfg = load_ivr_config(tomllib.loads(block.group(1)))
    assert ivr_warnings(cfg) == []
    assert cfg.recorded_notice == ("recorded-notice",)
    assert cfg.menus["ja"].options["*"] == Back()
    assert cfg.menus["ja"].first_digit_timeout == 6.0  # from [ivr.defaults]
    assert cfg.calendar is not None and len(cfg.calendar.holidays) == 22
    # a caller on 2027-01-04 (Monday) at 10:00 who chooses Japanese, then billing
    session = IvrSession(cfg, now=0.0, wall_time=MONDAY_10)
    listen(session, 5.0)
    press(session, "12", 12.0)
    assert route(session).contact_reason == "main>1>ja>2>billing"


def test_parse_action_forms() -> None:
    assert parse_action("menu:ja") == GotoMenu("ja")
    assert parse_action(" queue: billing ") == ToQueue("billing")
    assert parse_action("transfer:sip:201@pbx.example") == Transfer("sip:201@pbx.example")
    assert parse_action("repeat") == Repeat()
    for action in (GotoMenu("x"), ToQueue("q"), Transfer("201"), Voicemail("vm"), Hangup(), Repeat(), Back()):
        assert parse_action(str(action)) == action
    with pytest.raises(ValueError, match="expected menu:NAME"):
        parse_action("queue:")


def menu(key: str, **changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(DOC)
    document["ivr"]["menus"][key].update(changes)
    return document


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (menu("main", options={"9": "menu:foo"}), "ivr.menus.main.options.9: unknown menu 'foo'"),
        (menu("main", options={"9": "queue"}), "ivr.menus.main.options.9: not an action: 'queue'"),
        (menu("main", options={"9": 3}), "ivr.menus.main.options.9: must be a string"),
        (menu("main", options={"1#": "hangup"}), "ivr.menus.main.options.1#: an option is digits"),
        (menu("main", options={"12": "hangup"}, max_digits=1), "ivr.menus.main.options.12: longer than"),
        (menu("main", on_invalid="repeat"), "ivr.menus.main.on_invalid: 'repeat' is not allowed here"),
        (menu("main", on_no_input="menu:nowhere"), "ivr.menus.main.on_no_input: unknown menu 'nowhere'"),
        (
            menu("main", frist_digit_timeout=3),
            "ivr.menus.main.frist_digit_timeout: unknown key (did you mean",
        ),
        (
            menu("main", first_digit_timeout=0),
            "ivr.menus.main.first_digit_timeout: must be a number of seconds",
        ),
        (menu("main", first_digit_timeout="5"), "ivr.menus.main.first_digit_timeout: must be a number"),
        (menu("main", max_retries=True), "ivr.menus.main.max_retries: must be an integer"),
        (menu("main", prompts=[]), "ivr.menus.main.prompts: at least one prompt id"),
        (menu("main", prompts=["ok", ""]), "ivr.menus.main.prompts[1]: must be a non-empty string"),
        (
            menu("billing", options={"2": "voicemail:../etc"}),
            "ivr.menus.billing.options.2: voicemail box '../etc'",
        ),
        (
            menu("ext", max_digits=2, direct_dial_min_digits=3),
            "ivr.menus.ext.direct_dial_min_digits: must be",
        ),
        (menu("ext", direct_dial="sip:{digit}@pbx"), "ivr.menus.ext.direct_dial: must contain '{digits}'"),
        ({"calendar": {}}, "ivr: section required"),
        (
            {"ivr": {"entry": "m", "menus": {"m": {"prompts": "m", "direct_dial": "{digits}"}}}},
            "ivr.menus.m.max_digits: required",
        ),
        ({"ivr": {"entry": "x", "menus": {"m": {"prompts": "m"}}}}, "ivr.entry: unknown menu 'x'"),
        ({"ivr": {"menus": {}}}, "ivr.menus: at least one menu"),
        (
            {"ivr": {"menus": {"main": {"prompts": "m"}}, "fallback": "menu:main"}},
            "ivr.fallback: must leave the IVR",
        ),
        (
            {"ivr": {"menus": {"main": {"prompts": "m"}}, "after_hours": "back"}},
            "ivr.after_hours: 'back' is not allowed",
        ),
        (
            {"ivr": {"menus": {"main": {"prompts": "m"}}, "recorded_notice": 1}},
            "ivr.recorded_notice: must be a prompt id",
        ),
        (
            {"ivr": {"menus": {"main": {"prompts": "m"}}, "entyr": "main"}},
            "ivr.entyr: unknown key (did you mean 'entry'?)",
        ),
        (
            {"ivr": {"menus": {"main": {"prompts": "m"}}, "defaults": {"max_retries": -1}}},
            "ivr.menus.main.max_retries: must be",
        ),
        (
            {"ivr": {"menus": {"main": {"prompts": "m"}}, "defaults": {"max_retries": "2"}}},
            "ivr.defaults.max_retries: must be",
        ),
        (
            {"ivr": {"menus": {"main": {"prompts": "m"}}}, "calendar": {"timezone": "Mars/Base"}},
            "calendar.timezone: unknown",
        ),
        ({"ivr": []}, "ivr: must be a table"),
    ],
)
def test_loader_errors_name_the_key(document: dict[str, Any], message: str) -> None:
    with pytest.raises(FlowConfigError) as caught:
        load_ivr_config(document)
    assert str(caught.value).startswith(message)


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(FlowConfigError, match=r"^ivr\.menus\.main\.options\.5: unknown menu 'gone'$"):
        IvrConfig(menus={"main": MenuConfig(prompts=("m",), options={"5": GotoMenu("gone")})})


def test_defaults_and_inference() -> None:
    cfg = load_ivr_config(
        {"ivr": {"menus": {"main": {"prompts": "m", "options": {"1": "hangup", "22": "hangup"}}}}}
    )
    main = cfg.menus["main"]
    assert (main.max_digits, main.max_retries, main.on_invalid, main.no_input_action) == (
        2,
        2,
        Hangup(),
        Hangup(),
    )
    assert (cfg.entry, cfg.calendar, cfg.recorded_notice, cfg.fallback) == ("main", None, (), Hangup())


def test_warnings_list_unreachable_menus_and_unused_after_hours() -> None:
    document = copy.deepcopy(DOC)
    document["ivr"]["menus"]["orphan"] = {"prompts": ["o"]}
    document["ivr"]["after_hours"] = "voicemail:vm"
    assert ivr_warnings(load_ivr_config(document)) == [
        "ivr.menus.orphan: unreachable from ivr.entry",
        "ivr.after_hours: set, but there is no [calendar], so the IVR is always open",
    ]
    document["calendar"] = OFFICE_CALENDAR
    document["ivr"]["after_hours"] = "menu:orphan"
    assert ivr_warnings(load_ivr_config(document)) == []
