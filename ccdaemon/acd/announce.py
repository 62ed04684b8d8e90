"""When to tell a waiting caller their position and estimated wait, and what to tell them.

Pure: time is always an argument (seconds on any monotonic scale), nothing here reads a clock.  One
:class:`AnnouncementPolicy` per queue holds the validated :class:`AnnouncementConfig`; each waiting caller
gets a :class:`CallerAnnouncements` from :meth:`AnnouncementPolicy.start`.  The app asks
:meth:`CallerAnnouncements.due` at :meth:`CallerAnnouncements.next_deadline` (and may ask at any other moment,
e.g. when the caller's position changed) and plays what comes back through :mod:`ccdaemon.acd.sentences`.

Schedule: the first announcement is due ``first_after`` seconds after the caller joined, later ones
``frequency`` seconds after the previous announcement or skipped turn.  Rules, in order:

* never within ``min_gap`` seconds of the previous announcement (a turn that comes too early waits);
* position 1 and ``announce_next``: "you are next" instead of position / wait; with ``next_immediately`` it is
  said as soon as the caller reaches position 1 (gap permitting), not only at the next turn;
* ``only_if_improved``: a turn is skipped unless the position is better than at the previous announcement
  (the first announcement always counts as improved) -- Asterisk's ``announce-position-only-up``;
* the wait is rounded *up* to whole minutes (a caller told "about 3 minutes" should rather be served early
  than late); below ``floor_minutes`` it is "less than N minutes", above ``cap_minutes`` "more than N".
  An unknown wait (``None``: no agent logged in, no statistics) drops the wait from the announcement.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_SPOKEN_NUMBER",
    "AnnounceContent",
    "Announcement",
    "AnnouncementConfig",
    "AnnouncementKind",
    "AnnouncementPolicy",
    "CallerAnnouncements",
    "WaitBound",
    "WaitEstimate",
    "compose",
    "round_wait",
]

MAX_SPOKEN_NUMBER: Final = 99  # the prompt set speaks 1..99 (see ccdaemon.acd.sentences)


class AnnounceContent(enum.Enum):
    """What a regular announcement says (configurable per queue)."""

    POSITION = "position"
    WAIT = "wait"
    BOTH = "both"


class AnnouncementKind(enum.Enum):
    NEXT = "next"  # "you are next" (position 1)
    POSITION = "position"
    WAIT = "wait"
    POSITION_AND_WAIT = "position-and-wait"


class WaitBound(enum.Enum):
    """How ``minutes`` of a wait estimate is to be read."""

    ABOUT = "about"  # "about N minutes"
    LESS_THAN = "less-than"  # "less than N minutes" (below the floor)
    MORE_THAN = "more-than"  # "more than N minutes" (above the cap)


@dataclass(frozen=True, slots=True)
class WaitEstimate:
    minutes: int  # always 1..MAX_SPOKEN_NUMBER
    bound: WaitBound


@dataclass(frozen=True, slots=True)
class Announcement:
    """What to say; ``position`` / ``wait`` are set exactly when the kind says them."""

    kind: AnnouncementKind
    position: int | None = None
    wait: WaitEstimate | None = None

    @property
    def minutes(self) -> int | None:
        return None if self.wait is None else self.wait.minutes


@dataclass(frozen=True, slots=True)
class AnnouncementConfig:
    enabled: bool = True
    first_after: float = 30.0  # seconds after joining the queue
    frequency: float = 60.0  # seconds between turns; 0 = only the first announcement
    min_gap: float = 20.0  # never two announcements closer than this
    only_if_improved: bool = False
    content: AnnounceContent = AnnounceContent.BOTH
    announce_next: bool = True  # position 1 -> "you are next"
    next_immediately: bool = True  # say "you are next" on reaching position 1, not only at the next turn
    floor_minutes: int = 1  # waits below this many minutes are "less than N minutes"; 0 = no floor
    cap_minutes: int = 30  # waits above this are "more than N minutes"

    def validate(self, key: str = "announcements") -> None:
        """Raise ``ValueError`` naming the offending key (``announcements.min_gap: ...``)."""
        for name in ("first_after", "frequency", "min_gap"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{key}.{name}: must be a finite number of seconds >= 0, got {value!r}")
        if not 1 <= self.cap_minutes <= MAX_SPOKEN_NUMBER:
            raise ValueError(f"{key}.cap_minutes: must be 1..{MAX_SPOKEN_NUMBER}, got {self.cap_minutes}")
        if not 0 <= self.floor_minutes <= self.cap_minutes:
            raise ValueError(
                f"{key}.floor_minutes: must be 0..cap_minutes ({self.cap_minutes}), got {self.floor_minutes}"
            )


def round_wait(ewt_seconds: float, floor_minutes: int = 1, cap_minutes: int = 30) -> WaitEstimate:
    """A wait estimate in seconds -> whole minutes, rounded up, floored and capped for speaking."""
    if math.isnan(ewt_seconds):
        raise ValueError("wait estimate is NaN")
    if ewt_seconds < floor_minutes * 60:
        return WaitEstimate(floor_minutes, WaitBound.LESS_THAN)
    if math.isinf(ewt_seconds):
        return WaitEstimate(cap_minutes, WaitBound.MORE_THAN)
    # Rounding to the millisecond first keeps float noise (180.0000000001 s) from adding a minute.
    minutes = max(1, math.ceil(round(ewt_seconds, 3) / 60))
    if minutes > cap_minutes:
        return WaitEstimate(cap_minutes, WaitBound.MORE_THAN)
    return WaitEstimate(minutes, WaitBound.ABOUT)


class AnnouncementPolicy:
    """One queue's announcement rules; hands out per-caller state."""

    __slots__ = ("config",)

    def __init__(self, config: AnnouncementConfig) -> None:
        config.validate()
        self.config = config

    def start(self, joined_at: float) -> CallerAnnouncements:
        """State for a caller who joined the queue at ``joined_at``."""
        return CallerAnnouncements(self.config, joined_at)

    def compose(self, position: int, ewt_seconds: float | None) -> Announcement | None:
        """What a turn would say for this position and wait, ignoring timing; None if nothing to say."""
        return compose(self.config, position, ewt_seconds)


def compose(config: AnnouncementConfig, position: int, ewt_seconds: float | None) -> Announcement | None:
    """What a turn says for this position and wait under ``config``; None if there is nothing to say."""
    if position < 1:
        raise ValueError(f"queue position starts at 1, got {position}")
    if position == 1 and config.announce_next:
        return Announcement(AnnouncementKind.NEXT, position=1)
    # Positions beyond what the prompts can speak are not announced: "caller number 140" helps nobody.
    say_position = config.content is not AnnounceContent.WAIT and position <= MAX_SPOKEN_NUMBER
    wait = None
    if config.content is not AnnounceContent.POSITION and ewt_seconds is not None:
        wait = round_wait(max(0.0, ewt_seconds), config.floor_minutes, config.cap_minutes)
    if say_position and wait is not None:
        return Announcement(AnnouncementKind.POSITION_AND_WAIT, position=position, wait=wait)
    if say_position:
        return Announcement(AnnouncementKind.POSITION, position=position)
    if wait is not None:
        return Announcement(AnnouncementKind.WAIT, wait=wait)
    return None


class CallerAnnouncements:
    """One waiting caller's announcement state.  Drop it when the caller leaves the queue."""

    __slots__ = (
        "_cfg",
        "_last_at",
        "_last_position",
        "_next_said_at_one",
        "_seen_position",
        "_turn_at",
        "announced",
    )

    def __init__(self, config: AnnouncementConfig, joined_at: float) -> None:
        self._cfg = config
        self._turn_at: float | None = joined_at + config.first_after if config.enabled else None
        self._last_at: float | None = None  # when the previous announcement was made
        self._last_position: int | None = None  # position at the previous announcement
        self._seen_position: int | None = None  # position at the latest due() call
        self._next_said_at_one = False  # "you are next" already said since reaching position 1
        self.announced = 0

    def _gap_open_at(self) -> float:
        return -math.inf if self._last_at is None else self._last_at + self._cfg.min_gap

    def _immediate_next_at(self) -> float | None:
        cfg = self._cfg
        if not (cfg.enabled and cfg.announce_next and cfg.next_immediately):
            return None
        if self._seen_position != 1 or self._next_said_at_one or self.announced == 0:
            return None  # before the first announcement the regular first turn handles position 1
        return self._gap_open_at()

    def next_deadline(self) -> float | None:
        """When :meth:`due` should next be asked; None when nothing more will be said by time alone."""
        candidates = []
        if self._turn_at is not None:
            candidates.append(max(self._turn_at, self._gap_open_at()))
        immediate = self._immediate_next_at()
        if immediate is not None:
            candidates.append(immediate)
        return min(candidates) if candidates else None

    def due(self, now: float, position: int, ewt_seconds: float | None) -> Announcement | None:
        """The announcement to play now, if any.  Call it at :meth:`next_deadline` or on a position change."""
        if position < 1:
            raise ValueError(f"queue position starts at 1, got {position}")
        cfg = self._cfg
        if position != 1:
            self._next_said_at_one = False
        self._seen_position = position
        if not cfg.enabled or now < self._gap_open_at():
            return None
        immediate = self._immediate_next_at()
        if immediate is not None and now >= immediate and self._improved(position):
            return self._say(now, position, Announcement(AnnouncementKind.NEXT, position=1))
        if self._turn_at is None or now < self._turn_at:
            return None
        if not self._improved(position):
            self._advance_turn(now)
            return None
        announcement = compose(cfg, position, ewt_seconds)
        if announcement is None:
            self._advance_turn(now)
            return None
        return self._say(now, position, announcement)

    def _improved(self, position: int) -> bool:
        if not self._cfg.only_if_improved or self._last_position is None:
            return True
        return position < self._last_position

    def _advance_turn(self, now: float) -> None:
        self._turn_at = now + self._cfg.frequency if self._cfg.frequency > 0 else None

    def _say(self, now: float, position: int, announcement: Announcement) -> Announcement:
        self._last_at = now
        self._last_position = position
        self.announced += 1
        if announcement.kind is AnnouncementKind.NEXT:
            self._next_said_at_one = True
        self._advance_turn(now)
        return announcement
