"""Business hours and a holiday calendar: is the call center open at an instant, and when does that change.

Pure: no clock is read, every question takes an aware ``datetime``.  Rules are wall-clock times in one IANA
zone (default ``Asia/Tokyo``), so "09:00" stays 09:00 across a DST change.

Which rule decides a local date, strongest first:

1. a special day for that exact date (``2027-12-28``), then a yearly special day (``12-28``);
2. a holiday for that exact date, then a yearly holiday (``01-01``): closed all day;
3. the weekly hours for that weekday.

An interval that crosses midnight (``22:00-02:00``) belongs to the day it starts on: Friday's ``22:00-02:00``
keeps the center open until 02:00 on Saturday even when Saturday is a holiday.  Intervals are half-open,
``[start, end)``: open at 09:00:00, closed at 18:00:00.

No holiday table is built in: the administrator lists national holidays as configuration (see docs/ivr.md).

Configuration errors raise :class:`FlowConfigError`, whose message starts with the dotted key of the
offending value (``calendar.weekly.mon[1]: ...``); the IVR loader raises the same type.
"""

from __future__ import annotations

import difflib
import enum
import heapq
import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DEFAULT_TIMEZONE",
    "HORIZON_DAYS",
    "WEEKDAYS",
    "BusinessCalendar",
    "CalendarConfig",
    "Decision",
    "FlowConfigError",
    "Holiday",
    "MonthDay",
    "RuleKind",
    "SpecialDay",
    "TimeRange",
    "check_keys",
    "load_calendar_config",
]

DEFAULT_TIMEZONE: Final = "Asia/Tokyo"
WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# next_change() looks this far ahead; a year plus slack covers every yearly rule at least once
HORIZON_DAYS: Final = 400
_DAY: Final = timedelta(days=1)
_MINUTES_PER_DAY: Final = 24 * 60


class FlowConfigError(ValueError):
    """Bad calendar or IVR configuration; ``str(error)`` is ``"<key>: <message>"`` for the operator."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


def check_keys(table: Mapping[str, Any], allowed: Iterable[str], key: str) -> None:
    """Reject unknown keys (a typo must not silently leave a default in place), suggesting the closest one."""
    names = list(allowed)
    for name in table:
        if name not in names:
            close = difflib.get_close_matches(str(name), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise FlowConfigError(_join(key, str(name)), f"unknown key{hint}")


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


# --------------------------------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class TimeRange:
    """Wall-clock opening interval in minutes after midnight; ``end < start`` means it ends the next day."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < _MINUTES_PER_DAY:
            raise ValueError(f"start {_hhmm(self.start)} is not a time of day")
        if not 0 <= self.end <= _MINUTES_PER_DAY:
            raise ValueError(f"end {_hhmm(self.end)} is not a time of day (24:00 at most)")
        if self.start == self.end:
            raise ValueError("start and end are equal; use 00:00-24:00 for a whole day")

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start

    @classmethod
    def parse(cls, text: str) -> TimeRange:
        """``"09:00-12:00"``, ``"22:00-02:00"`` (crosses midnight) or ``"00:00-24:00"``."""
        match = _RANGE.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"expected 'HH:MM-HH:MM', got {text!r}")
        start_h, start_m, end_h, end_m = (int(g) for g in match.groups())
        if start_h > 23 or start_m > 59 or end_m > 59 or end_h > 24 or (end_h == 24 and end_m):
            raise ValueError(f"not a time of day in {text!r}")
        return cls(start_h * 60 + start_m, end_h * 60 + end_m)

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


_RANGE: Final = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")
_MONTH_DAY: Final = re.compile(r"(\d{2})-(\d{2})")


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True, slots=True)
class MonthDay:
    """A date that recurs every year (``01-01``); ``02-29`` only matches leap years."""

    month: int
    day: int

    def __post_init__(self) -> None:
        # 2000 is a leap year, so 02-29 is accepted here
        date(2000, self.month, self.day)

    def __str__(self) -> str:
        return f"{self.month:02d}-{self.day:02d}"


@dataclass(frozen=True, slots=True)
class Holiday:
    """Closed all day: a one-off ``date`` or a yearly ``MonthDay``."""

    on: date | MonthDay
    name: str = ""


@dataclass(frozen=True, slots=True)
class SpecialDay:
    """A day with its own hours (empty: closed), beating both holidays and the weekly hours."""

    on: date | MonthDay
    hours: tuple[TimeRange, ...]
    name: str = ""


def _empty_week() -> dict[int, tuple[TimeRange, ...]]:
    return {}


@dataclass(frozen=True, slots=True)
class CalendarConfig:
    """``[calendar]``.  ``weekly`` maps ``date.weekday()`` (0 = Monday) to that day's intervals."""

    timezone: str = DEFAULT_TIMEZONE
    weekly: Mapping[int, tuple[TimeRange, ...]] = field(default_factory=_empty_week)
    holidays: tuple[Holiday, ...] = ()
    special_days: tuple[SpecialDay, ...] = ()


class RuleKind(enum.StrEnum):
    WEEKLY = "weekly"
    HOLIDAY = "holiday"
    SPECIAL = "special"


@dataclass(frozen=True, slots=True)
class _DayRule:
    kind: RuleKind
    hours: tuple[TimeRange, ...]
    label: str  # "mon", "2027-01-01 元日", "12-28 仕事納め"


@dataclass(frozen=True, slots=True)
class Decision:
    """Why the center is open or closed at one instant; ``str()`` is a log-friendly sentence."""

    is_open: bool
    kind: RuleKind
    day: date  # local date whose rule decided (the day before, for the tail of a midnight-crossing interval)
    label: str  # weekday name, or the holiday / special day date and name
    interval: TimeRange | None  # the interval that made it open; None when closed

    def __str__(self) -> str:
        state = "open" if self.is_open else "closed"
        where = f" {self.interval}" if self.interval is not None else ""
        return f"{state}: {self.kind} {self.label}{where} ({self.day.isoformat()})"


# ------------------------------------------------------------------------------------------------ calendar


class BusinessCalendar:
    """Answers is-open questions for one :class:`CalendarConfig`; immutable and cheap to share."""

    def __init__(self, config: CalendarConfig) -> None:
        self.config = config
        self.zone = ZoneInfo(config.timezone)
        self._special: dict[date | MonthDay, SpecialDay] = {s.on: s for s in config.special_days}
        self._holidays: dict[date | MonthDay, Holiday] = {h.on: h for h in config.holidays}

    def decide(self, at: datetime) -> Decision:
        """The decision, with the rule that made it, at the aware instant ``at``."""
        return self._decide_wall(self._wall(at))

    def is_open(self, at: datetime) -> bool:
        return self.decide(at).is_open

    def next_change(self, at: datetime) -> datetime | None:
        """The first instant after ``at`` where :meth:`is_open` flips, in UTC.

        UTC because an aware datetime inside a repeated autumn hour never compares equal to one in another
        zone (PEP 495); use ``.astimezone(calendar.zone)`` to show it.  None when nothing changes within
        :data:`HORIZON_DAYS` (always open, or closed for over a year).
        """
        at_utc = self._utc(at)
        state = self._decide_wall(self._wall(at_utc)).is_open
        first_day = self._wall(at_utc).date() - _DAY  # yesterday's midnight-crossing interval may end today
        pending: list[datetime] = []
        for offset in range(HORIZON_DAYS + 2):
            day = first_day + timedelta(days=offset)
            for candidate in self._candidates(day):
                if candidate > at_utc:
                    heapq.heappush(pending, candidate)
            # candidates of later days all lie at or after the next local midnight
            settled_before = self._earliest(datetime.combine(day + _DAY, time()))
            while pending and pending[0] < settled_before:
                candidate = heapq.heappop(pending)
                if self._decide_wall(self._wall(candidate)).is_open != state:
                    return candidate
        return None

    # -- internals

    def _utc(self, at: datetime) -> datetime:
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"naive datetime {at.isoformat()}: pass an aware datetime (e.g. tzinfo=UTC)")
        # aware datetimes sharing a tzinfo compare by wall time, ignoring fold: compare in UTC only
        return at.astimezone(UTC)

    def _wall(self, at: datetime) -> datetime:
        return self._utc(at).astimezone(self.zone).replace(tzinfo=None)

    def _rule(self, day: date) -> _DayRule:
        keys: tuple[date | MonthDay, ...] = (day, MonthDay(day.month, day.day))  # one-off beats yearly
        for key in keys:
            special = self._special.get(key)
            if special is not None:
                return _DayRule(RuleKind.SPECIAL, special.hours, _label(special.on, special.name))
        for key in keys:
            holiday = self._holidays.get(key)
            if holiday is not None:
                return _DayRule(RuleKind.HOLIDAY, (), _label(holiday.on, holiday.name))
        weekday = day.weekday()
        return _DayRule(RuleKind.WEEKLY, tuple(self.config.weekly.get(weekday, ())), WEEKDAYS[weekday])

    def _decide_wall(self, wall: datetime) -> Decision:
        day = wall.date()
        since_midnight = wall - datetime.combine(day, time())
        rule = self._rule(day)
        for interval in rule.hours:
            end = _MINUTES_PER_DAY if interval.crosses_midnight else interval.end
            if timedelta(minutes=interval.start) <= since_midnight < timedelta(minutes=end):
                return Decision(True, rule.kind, day, rule.label, interval)
        yesterday = self._rule(day - _DAY)
        for interval in yesterday.hours:
            if interval.crosses_midnight and since_midnight < timedelta(minutes=interval.end):
                return Decision(True, yesterday.kind, day - _DAY, yesterday.label, interval)
        return Decision(False, rule.kind, day, rule.label, None)

    def _instants(self, wall: datetime) -> set[datetime]:
        # an ambiguous wall time (DST fall-back) happens twice; a skipped one maps to two bounds of the gap
        return {wall.replace(tzinfo=self.zone, fold=fold).astimezone(UTC) for fold in (0, 1)}

    def _earliest(self, wall: datetime) -> datetime:
        return min(self._instants(wall))

    def _candidates(self, day: date) -> Iterator[datetime]:
        """Every instant on or after local ``day`` 00:00 where day ``day``'s rules could flip the state."""
        midnight = datetime.combine(day, time())
        for interval in self._rule(day).hours:
            end = interval.end + (_MINUTES_PER_DAY if interval.crosses_midnight else 0)
            for minutes in (interval.start, end):
                yield from self._instants(midnight + timedelta(minutes=minutes))
        # a DST jump moves the wall clock without it passing the boundaries in between
        transition = self._transition(self._earliest(midnight), self._earliest(midnight + _DAY))
        if transition is not None:
            yield transition

    def _transition(self, lo: datetime, hi: datetime) -> datetime | None:
        """The instant in ``[lo, hi)`` where the UTC offset changes (at most once a day), by bisection."""
        before = lo.astimezone(self.zone).utcoffset()
        if hi.astimezone(self.zone).utcoffset() == before:
            return None
        low, high = 0, int((hi - lo).total_seconds())  # offset(lo + low) == before != offset(lo + high)
        while high - low > 1:
            mid = (low + high) // 2
            if (lo + timedelta(seconds=mid)).astimezone(self.zone).utcoffset() == before:
                low = mid
            else:
                high = mid
        return lo + timedelta(seconds=high)


def _label(on: date | MonthDay, name: str) -> str:
    text = on.isoformat() if isinstance(on, date) else str(on)
    return f"{text} {name}" if name else text


# -------------------------------------------------------------------------------------------------- loader

_CALENDAR_KEYS: Final = ("timezone", "weekly", "holidays", "special_days")
_WEEKLY_KEYS: Final = (*WEEKDAYS, "weekdays")
_DAY_KEYS: Final = ("date", "name")
_SPECIAL_KEYS: Final = ("date", "name", "hours")


def load_calendar_config(data: Mapping[str, Any] | None, key: str = "calendar") -> CalendarConfig:
    """Build a :class:`CalendarConfig` from the parsed ``[calendar]`` table (None: defaults, always closed).

    ``weekly.weekdays`` sets Monday to Friday; a named day (``weekly.wed``) overrides it.
    """
    if data is None:
        return CalendarConfig()
    table = _table(data, key)
    check_keys(table, _CALENDAR_KEYS, key)
    zone = table.get("timezone", DEFAULT_TIMEZONE)
    if not isinstance(zone, str) or not zone:
        raise FlowConfigError(_join(key, "timezone"), "must be an IANA time zone name such as 'Asia/Tokyo'")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise FlowConfigError(_join(key, "timezone"), f"unknown time zone {zone!r}") from None

    weekly_key = _join(key, "weekly")
    weekly_table = _table(table.get("weekly", {}), weekly_key)
    check_keys(weekly_table, _WEEKLY_KEYS, weekly_key)
    weekly: dict[int, tuple[TimeRange, ...]] = {}
    if "weekdays" in weekly_table:
        hours = _hours(weekly_table["weekdays"], _join(weekly_key, "weekdays"))
        weekly.update(dict.fromkeys(range(5), hours))
    for index, name in enumerate(WEEKDAYS):
        if name in weekly_table:
            weekly[index] = _hours(weekly_table[name], _join(weekly_key, name))

    holidays: list[Holiday] = []
    seen: dict[date | MonthDay, str] = {}
    for item_key, item in _items(table.get("holidays", []), _join(key, "holidays")):
        if isinstance(item, Mapping):
            check_keys(item, _DAY_KEYS, item_key)
            on = _day(item.get("date"), _join(item_key, "date"))
            name = _name(item.get("name", ""), _join(item_key, "name"))
        else:
            on, name = _day(item, item_key), ""
        _unique(on, seen, item_key)
        holidays.append(Holiday(on, name))

    special_days: list[SpecialDay] = []
    seen = {}
    for item_key, item in _items(table.get("special_days", []), _join(key, "special_days")):
        if not isinstance(item, Mapping):
            raise FlowConfigError(item_key, "must be a table with date, hours and name")
        check_keys(item, _SPECIAL_KEYS, item_key)
        on = _day(item.get("date"), _join(item_key, "date"))
        if "hours" not in item:
            raise FlowConfigError(_join(item_key, "hours"), "required (use [] for closed)")
        hours = _hours(item["hours"], _join(item_key, "hours"))
        _unique(on, seen, item_key)
        special_days.append(SpecialDay(on, hours, _name(item.get("name", ""), _join(item_key, "name"))))

    return CalendarConfig(zone, weekly, tuple(holidays), tuple(special_days))


def _table(value: object, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise FlowConfigError(key, f"must be a table, got {type(value).__name__}")
    return value


def _items(value: object, key: str) -> Iterator[tuple[str, Any]]:
    if not isinstance(value, list):
        raise FlowConfigError(key, f"must be a list, got {type(value).__name__}")
    for index, item in enumerate(value):
        yield f"{key}[{index}]", item


def _name(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise FlowConfigError(key, "must be a string")
    return value


def _unique(on: date | MonthDay, seen: dict[date | MonthDay, str], key: str) -> None:
    if on in seen:
        raise FlowConfigError(key, f"{_label(on, '')} is already listed at {seen[on]}")
    seen[on] = key


def _hours(value: object, key: str) -> tuple[TimeRange, ...]:
    ranges: list[TimeRange] = []
    for item_key, item in _items(value, key):
        if not isinstance(item, str):
            raise FlowConfigError(item_key, "must be a string like '09:00-12:00'")
        try:
            ranges.append(TimeRange.parse(item))
        except ValueError as error:
            raise FlowConfigError(item_key, str(error)) from None
    # overlaps are legal but almost always a typo; reject them so the operator looks again
    spans = sorted((r.start, r.end + (_MINUTES_PER_DAY if r.crosses_midnight else 0), r) for r in ranges)
    for (_, end, earlier), (start, _, later) in itertools.pairwise(spans):
        if start < end:
            raise FlowConfigError(key, f"intervals {earlier} and {later} overlap")
    return tuple(ranges)


def _day(value: object, key: str) -> date | MonthDay:
    """A TOML date, ``"2027-01-01"`` (one-off) or ``"01-01"`` (every year)."""
    if isinstance(value, datetime):  # datetime is a date subclass; a time of day makes no sense here
        raise FlowConfigError(key, "must be a date without a time")
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise FlowConfigError(key, "required: a date 'YYYY-MM-DD' or a yearly 'MM-DD'")
    text = value.strip()
    try:
        match = _MONTH_DAY.fullmatch(text)
        if match is not None:
            return MonthDay(int(match.group(1)), int(match.group(2)))
        return date.fromisoformat(text)
    except ValueError:
        raise FlowConfigError(key, f"not a date 'YYYY-MM-DD' or 'MM-DD': {value!r}") from None
