"""Business hours and holidays: wall-clock rules in a zone, precedence, midnight crossing, DST edges."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccdaemon.acd.calendar import (
    BusinessCalendar,
    CalendarConfig,
    FlowConfigError,
    Holiday,
    MonthDay,
    RuleKind,
    SpecialDay,
    TimeRange,
    load_calendar_config,
)

TOKYO = ZoneInfo("Asia/Tokyo")
BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = ["09:00-12:00", "13:00-18:00"]


def tokyo(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=TOKYO)


def calendar(data: dict[str, Any]) -> BusinessCalendar:
    return BusinessCalendar(load_calendar_config(data))


@pytest.fixture
def office() -> BusinessCalendar:
    return calendar(
        {
            "weekly": {"weekdays": OFFICE},
            "holidays": [
                {"date": date(2027, 1, 11), "name": "成人の日"},
                {"date": "12-31", "name": "大晦日"},
            ],
            "special_days": [{"date": "2027-01-16", "hours": ["10:00-15:00"], "name": "土曜特別営業"}],
        }
    )


# -------------------------------------------------------------------------------------------- weekly hours


def test_weekday_hours_with_lunch_break(office: BusinessCalendar) -> None:
    # 2027-01-04 is a Monday
    assert office.is_open(tokyo(2027, 1, 4, 9, 0))
    assert not office.is_open(tokyo(2027, 1, 4, 8, 59, 59))
    assert not office.is_open(tokyo(2027, 1, 4, 12, 30))
    assert office.is_open(tokyo(2027, 1, 4, 17, 59, 59))
    assert not office.is_open(tokyo(2027, 1, 4, 18, 0))


def test_decision_names_the_rule(office: BusinessCalendar) -> None:
    decision = office.decide(tokyo(2027, 1, 4, 14, 0))
    assert decision.is_open and decision.kind is RuleKind.WEEKLY
    assert decision.interval == TimeRange.parse("13:00-18:00")
    assert str(decision) == "open: weekly mon 13:00-18:00 (2027-01-04)"
    assert str(office.decide(tokyo(2027, 1, 9, 10, 0))) == "closed: weekly sat (2027-01-09)"


def test_instants_in_other_zones_are_converted(office: BusinessCalendar) -> None:
    # 00:30 UTC is 09:30 in Tokyo
    assert office.is_open(datetime(2027, 1, 4, 0, 30, tzinfo=UTC))
    assert not office.is_open(datetime(2027, 1, 4, 9, 30, tzinfo=UTC))


def test_naive_datetime_is_refused(office: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="naive"):
        office.is_open(datetime(2027, 1, 4, 10, 0))
    with pytest.raises(ValueError, match="naive"):
        office.next_change(datetime(2027, 1, 4, 10, 0))


def test_next_change_through_lunch_and_weekend(office: BusinessCalendar) -> None:
    assert office.next_change(tokyo(2027, 1, 4, 10, 0)) == tokyo(2027, 1, 4, 12, 0)
    assert office.next_change(tokyo(2027, 1, 4, 12, 30)) == tokyo(2027, 1, 4, 13, 0)
    # at a boundary the change is the next one, not the one at the instant itself
    assert office.next_change(tokyo(2027, 1, 4, 12, 0)) == tokyo(2027, 1, 4, 13, 0)
    # Friday evening -> Monday morning
    assert office.next_change(tokyo(2027, 1, 22, 18, 30)) == tokyo(2027, 1, 25, 9, 0)


def test_next_change_is_given_in_utc(office: BusinessCalendar) -> None:
    change = office.next_change(datetime(2027, 1, 4, 1, 0, tzinfo=UTC))
    assert change is not None
    assert change.tzinfo is UTC
    assert change.astimezone(office.zone).isoformat() == "2027-01-04T12:00:00+09:00"


def test_touching_intervals_are_one_opening() -> None:
    cal = calendar({"weekly": {"weekdays": ["09:00-12:00", "12:00-13:00"]}})
    assert cal.next_change(tokyo(2027, 1, 4, 10, 0)) == tokyo(2027, 1, 4, 13, 0)


def test_always_open_and_never_open_have_no_next_change() -> None:
    always = calendar(
        {"weekly": {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}
    )
    assert always.is_open(tokyo(2027, 1, 4, 0, 0))
    assert always.next_change(tokyo(2027, 1, 4, 0, 0)) is None
    never = BusinessCalendar(CalendarConfig())
    assert not never.is_open(tokyo(2027, 1, 4, 12, 0))
    assert never.next_change(tokyo(2027, 1, 4, 12, 0)) is None


# ---------------------------------------------------------------------------------------- midnight crossing


def test_interval_crossing_midnight_belongs_to_its_start_day() -> None:
    cal = calendar({"weekly": {"fri": ["22:00-02:00"]}, "holidays": ["2027-01-09"]})
    # Friday 2027-01-08 22:00 -> Saturday 02:00, even though Saturday 2027-01-09 is a holiday
    assert not cal.is_open(tokyo(2027, 1, 8, 21, 59))
    assert cal.is_open(tokyo(2027, 1, 8, 23, 0))
    tail = cal.decide(tokyo(2027, 1, 9, 1, 30))
    assert tail.is_open
    assert (tail.kind, tail.day, tail.label) == (RuleKind.WEEKLY, date(2027, 1, 8), "fri")
    closed = cal.decide(tokyo(2027, 1, 9, 2, 0))
    assert not closed.is_open and closed.kind is RuleKind.HOLIDAY
    assert cal.next_change(tokyo(2027, 1, 8, 23, 0)) == tokyo(2027, 1, 9, 2, 0)
    assert cal.next_change(tokyo(2027, 1, 8, 12, 0)) == tokyo(2027, 1, 8, 22, 0)


def test_crossing_interval_ending_where_next_day_starts_is_continuous() -> None:
    cal = calendar({"weekly": {"mon": ["20:00-06:00"], "tue": ["06:00-10:00"]}})
    assert cal.next_change(tokyo(2027, 1, 4, 21, 0)) == tokyo(2027, 1, 5, 10, 0)


# ------------------------------------------------------------------------------------ holidays and specials


def test_holiday_beats_weekday_hours(office: BusinessCalendar) -> None:
    decision = office.decide(tokyo(2027, 1, 11, 10, 0))  # a Monday, 成人の日
    assert not decision.is_open
    assert (decision.kind, decision.label) == (RuleKind.HOLIDAY, "2027-01-11 成人の日")
    assert office.next_change(tokyo(2027, 1, 8, 18, 0)) == tokyo(2027, 1, 12, 9, 0)


def test_yearly_holiday_recurs_and_one_off_does_not(office: BusinessCalendar) -> None:
    for year in (2027, 2031):  # Fridays and a Wednesday: weekdays that would otherwise be open
        assert not office.is_open(tokyo(year, 12, 31, 10, 0))
    assert office.decide(tokyo(2031, 12, 31, 10, 0)).label == "12-31 大晦日"
    assert office.is_open(tokyo(2029, 1, 8, 10, 0))  # the second Monday of 2029 is not listed


def test_special_day_opens_a_saturday(office: BusinessCalendar) -> None:
    decision = office.decide(tokyo(2027, 1, 16, 11, 0))
    assert decision.is_open and decision.kind is RuleKind.SPECIAL
    assert decision.label == "2027-01-16 土曜特別営業"
    assert not office.is_open(tokyo(2027, 1, 16, 15, 0))
    assert office.next_change(tokyo(2027, 1, 15, 18, 0)) == tokyo(2027, 1, 16, 10, 0)


def test_special_day_beats_holiday_and_one_off_beats_yearly() -> None:
    config = CalendarConfig(
        weekly={0: (TimeRange.parse("09:00-18:00"),)},
        holidays=(Holiday(date(2027, 1, 4), "closed"),),
        special_days=(
            SpecialDay(MonthDay(1, 4), (TimeRange.parse("09:00-10:00"),), "yearly"),
            SpecialDay(date(2027, 1, 4), (TimeRange.parse("10:00-11:00"),), "one-off"),
        ),
    )
    cal = BusinessCalendar(config)
    assert not cal.is_open(tokyo(2027, 1, 4, 9, 30))
    assert cal.decide(tokyo(2027, 1, 4, 10, 30)).label == "2027-01-04 one-off"
    assert cal.decide(tokyo(2028, 1, 4, 9, 30)).label == "01-04 yearly"


def test_special_day_with_no_hours_is_closed() -> None:
    cal = calendar({"weekly": {"weekdays": OFFICE}, "special_days": [{"date": "2027-01-05", "hours": []}]})
    decision = cal.decide(tokyo(2027, 1, 5, 10, 0))
    assert not decision.is_open and decision.kind is RuleKind.SPECIAL


def test_february_29_recurs_in_leap_years_only() -> None:
    cal = calendar({"weekly": {"weekdays": OFFICE}, "holidays": ["02-29"]})
    assert not cal.is_open(tokyo(2028, 2, 29, 10, 0))  # Tuesday, leap year
    assert cal.is_open(tokyo(2027, 3, 1, 10, 0))


# ---------------------------------------------------------------------------------------------------- DST


@pytest.fixture
def berlin() -> BusinessCalendar:
    return calendar({"timezone": "Europe/Berlin", "weekly": {"sun": ["02:30-05:00", "09:00-17:00"]}})


def test_wall_clock_hours_hold_across_dst(berlin: BusinessCalendar) -> None:
    # 09:00 local is 08:00 UTC in winter and 07:00 UTC in summer
    assert berlin.next_change(datetime(2027, 3, 21, 6, 0, tzinfo=UTC)) == datetime(
        2027, 3, 21, 8, 0, tzinfo=UTC
    )
    assert berlin.next_change(datetime(2027, 3, 28, 5, 0, tzinfo=UTC)) == datetime(
        2027, 3, 28, 7, 0, tzinfo=UTC
    )
    assert berlin.is_open(datetime(2027, 3, 28, 14, 59, tzinfo=UTC))  # 16:59 CEST
    assert not berlin.is_open(datetime(2027, 3, 28, 15, 0, tzinfo=UTC))


def test_interval_starting_in_the_skipped_hour_opens_at_the_jump(berlin: BusinessCalendar) -> None:
    # 2027-03-28: 02:00 CET jumps to 03:00 CEST at 01:00 UTC; 02:30 never happens
    jump = datetime(2027, 3, 28, 1, 0, tzinfo=UTC)
    assert not berlin.is_open(jump - timedelta(seconds=1))
    assert berlin.is_open(jump)
    assert berlin.next_change(datetime(2027, 3, 28, 0, 0, tzinfo=UTC)) == jump
    # and it closes at 05:00 CEST = 03:00 UTC, one hour of real time less than on a normal Sunday
    assert berlin.next_change(jump) == datetime(2027, 3, 28, 3, 0, tzinfo=UTC)


def test_repeated_autumn_hour_follows_the_wall_clock(berlin: BusinessCalendar) -> None:
    # 2027-10-31: 03:00 CEST falls back to 02:00 CET at 01:00 UTC; 02:30 happens twice
    first = datetime(2027, 10, 31, 0, 30, tzinfo=UTC)  # 02:30 CEST
    assert berlin.next_change(datetime(2027, 10, 31, 0, 0, tzinfo=UTC)) == first
    back = datetime(2027, 10, 31, 1, 0, tzinfo=UTC)  # the wall clock shows 02:00 again: closed
    assert berlin.next_change(first) == back
    second = datetime(2027, 10, 31, 1, 30, tzinfo=UTC)  # 02:30 CET
    assert berlin.next_change(back) == second
    assert berlin.next_change(second) == datetime(2027, 10, 31, 4, 0, tzinfo=UTC)  # 05:00 CET


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31)),
    probes=st.lists(st.floats(min_value=0.0, max_value=1.0, exclude_max=True), max_size=5),
)
def test_next_change_is_the_first_flip(start: datetime, probes: list[float]) -> None:
    cal = BusinessCalendar(
        load_calendar_config(
            {
                "timezone": "Europe/Berlin",
                "weekly": {
                    "weekdays": ["08:00-12:00", "13:00-17:30"],
                    "sat": ["02:15-02:45"],
                    "sun": ["23:00-03:00"],
                },
                "holidays": ["12-25", "2027-04-05"],
                "special_days": [{"date": "03-28", "hours": ["01:30-04:00"]}],
            }
        )
    )
    at = start.replace(tzinfo=UTC)
    state = cal.is_open(at)
    change = cal.next_change(at)
    assert change is not None and change > at
    assert cal.is_open(change) != state
    for fraction in probes:  # no flip hides in between
        offset = int((change - at) / timedelta(microseconds=1) * fraction)  # floor: stays before the change
        assert cal.is_open(at + timedelta(microseconds=offset)) == state


# ------------------------------------------------------------------------------------------------- loader


def test_loader_builds_weekly_with_overrides() -> None:
    config = load_calendar_config({"weekly": {"weekdays": OFFICE, "fri": ["09:00-15:00"]}})
    assert config.timezone == "Asia/Tokyo"
    assert config.weekly[0] == (TimeRange(540, 720), TimeRange(780, 1080))
    assert config.weekly[4] == (TimeRange(540, 900),)
    assert 5 not in config.weekly
    assert load_calendar_config(None) == CalendarConfig()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"timezone": "Asia/Tokio"}, "calendar.timezone: unknown time zone 'Asia/Tokio'"),
        ({"weekly": {"monday": OFFICE}}, "calendar.weekly.monday: unknown key (did you mean 'mon'?)"),
        ({"weekly": {"mon": ["09:00-12:00", "13:00-25:00"]}}, "calendar.weekly.mon[1]: not a time of day"),
        ({"weekly": {"mon": ["9-12"]}}, "calendar.weekly.mon[0]: expected 'HH:MM-HH:MM'"),
        ({"weekly": {"mon": ["09:00-09:00"]}}, "calendar.weekly.mon[0]: start and end are equal"),
        ({"weekly": {"mon": "09:00-12:00"}}, "calendar.weekly.mon: must be a list"),
        (
            {"weekly": {"tue": ["09:00-12:00", "11:00-13:00"]}},
            "calendar.weekly.tue: intervals 09:00-12:00 and 11:00-13:00 overlap",
        ),
        ({"holidays": ["2027-02-30"]}, "calendar.holidays[0]: not a date"),
        (
            {"holidays": ["01-01", {"date": "01-01"}]},
            "calendar.holidays[1]: 01-01 is already listed at calendar.holidays[0]",
        ),
        (
            {"holidays": [{"date": "01-01", "nmae": "x"}]},
            "calendar.holidays[0].nmae: unknown key (did you mean 'name'?)",
        ),
        ({"special_days": [{"date": "2027-01-02"}]}, "calendar.special_days[0].hours: required"),
        ({"special_days": ["2027-01-02"]}, "calendar.special_days[0]: must be a table"),
        ({"holidays": [datetime(2027, 1, 1, 9, 0)]}, "calendar.holidays[0]: must be a date without a time"),
        ({"timezones": "UTC"}, "calendar.timezones: unknown key (did you mean 'timezone'?)"),
    ],
)
def test_loader_errors_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(FlowConfigError) as caught:
        load_calendar_config(data)
    assert str(caught.value).startswith(message)
    assert caught.value.key == message.split(":", maxsplit=1)[0]
