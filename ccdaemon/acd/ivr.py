"""IVR menus from configuration and a pure per-call state machine that walks a caller through them.

Sans-I/O, like the rest of ``acd/``: the app feeds inputs with the current monotonic time (``digit``,
``prompt_finished``, ``handle_timer``), re-arms one timer from ``get_timer()`` and pulls outputs with
``next_action()``:

- :class:`PlayPrompts` -- play these prompt ids in order; when ``interruptible``, a digit stops them
  (barge-in) and counts as input, and the machine says so with :class:`StopPrompt`;
- :class:`Route` -- the IVR is over: send the call to a queue, an extension, voicemail, or hang up.
  Exactly one Route ends every session; it carries the path taken, formatted as the call's contact reason
  (コールリーズン), e.g. ``main>1>ja>2>billing``.

Digits entered while the "this call is recorded" notice plays are ignored: the notice is meant to be heard.
Every menu visit is bounded (retries, digits, timers, a safety deadline on prompts) and so is the number of
menu visits (``max_menu_visits``), so any sequence of inputs ends in a Route.
"""

from __future__ import annotations

import enum
import math
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from ccdaemon.acd.calendar import (
    BusinessCalendar,
    CalendarConfig,
    Decision,
    FlowConfigError,
    check_keys,
    load_calendar_config,
)

__all__ = [
    "DIGITS",
    "Action",
    "Back",
    "FlowConfigError",
    "GotoMenu",
    "Hangup",
    "IvrConfig",
    "IvrOutput",
    "IvrSession",
    "IvrState",
    "MenuConfig",
    "PathStep",
    "PlayPrompts",
    "Repeat",
    "Route",
    "RouteAction",
    "RouteCause",
    "StopPrompt",
    "ToQueue",
    "Transfer",
    "Voicemail",
    "format_contact_reason",
    "ivr_warnings",
    "load_ivr_config",
    "parse_action",
]

DIGITS: Final = frozenset("0123456789*#ABCD")  # RFC 4733 events 0-15
DEFAULT_NOTICE_PROMPT: Final = "recorded-notice"
_OPTION_KEY: Final = re.compile(r"[0-9*A-D]+|#")
_BOX_ID: Final = re.compile(
    r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}"
)  # becomes a file name: no '/', no leading '.'


# ------------------------------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class GotoMenu:
    menu: str

    def __str__(self) -> str:
        return f"menu:{self.menu}"


@dataclass(frozen=True, slots=True)
class ToQueue:
    queue: str  # checked against the configured queues by the app, not here

    def __str__(self) -> str:
        return f"queue:{self.queue}"


@dataclass(frozen=True, slots=True)
class Transfer:
    target: str  # an extension ("201") or a SIP URI ("sip:201@pbx.example")

    def __str__(self) -> str:
        return f"transfer:{self.target}"


@dataclass(frozen=True, slots=True)
class Voicemail:
    box: str

    def __str__(self) -> str:
        return f"voicemail:{self.box}"


@dataclass(frozen=True, slots=True)
class Hangup:
    def __str__(self) -> str:
        return "hangup"


@dataclass(frozen=True, slots=True)
class Repeat:
    def __str__(self) -> str:
        return "repeat"


@dataclass(frozen=True, slots=True)
class Back:
    def __str__(self) -> str:
        return "back"


RouteAction = ToQueue | Transfer | Voicemail | Hangup  # leaves the IVR
Action = GotoMenu | Repeat | Back | RouteAction

_ACTION_FORMS: Final = (
    "menu:NAME, queue:NAME, transfer:EXTENSION-OR-URI, voicemail:BOX, hangup, repeat or back"
)


def parse_action(text: str) -> Action:
    """The TOML form of an action (``"queue:billing"``, ``"back"``); ValueError names the accepted forms."""
    kind, sep, arg = text.strip().partition(":")
    arg = arg.strip()
    bare: dict[str, Action] = {"hangup": Hangup(), "repeat": Repeat(), "back": Back()}
    if not sep and kind in bare:
        return bare[kind]
    if sep and arg:
        if kind == "menu":
            return GotoMenu(arg)
        if kind == "queue":
            return ToQueue(arg)
        if kind == "transfer":
            return Transfer(arg)
        if kind == "voicemail":
            return Voicemail(arg)
    raise ValueError(f"not an action: {text!r} (expected {_ACTION_FORMS})")


# -------------------------------------------------------------------------------------------------- config


@dataclass(frozen=True, slots=True)
class MenuConfig:
    """One menu: prompts, then digits collected and matched against ``options``.

    Input ends at ``#``, at ``max_digits``, after ``inter_digit_timeout``, or as soon as no longer input could
    match anything else.  ``direct_dial`` (a target containing ``{digits}``) transfers any all-digit entry of
    ``direct_dial_min_digits``..``max_digits`` that is not an option, for extension dialling.
    """

    prompts: tuple[str, ...]
    options: Mapping[str, Action] = field(default_factory=dict)
    first_digit_timeout: float = 5.0  # seconds of silence after the prompts end
    inter_digit_timeout: float = 3.0
    max_digits: int = 1
    direct_dial: str | None = None
    direct_dial_min_digits: int = 1
    max_retries: int = 2  # re-prompts after invalid input or silence; then on_invalid / on_no_input
    invalid_prompts: tuple[str, ...] = ()  # played before the menu prompts on a retry after invalid input
    no_input_prompts: tuple[str, ...] = ()  # ... and after silence
    on_invalid: Action = Hangup()
    on_no_input: Action | None = None  # None: same as on_invalid
    language: str | None = None  # entering this menu sets the caller's language (for later announcements)

    @property
    def no_input_action(self) -> Action:
        return self.on_invalid if self.on_no_input is None else self.on_no_input


@dataclass(frozen=True, slots=True)
class IvrConfig:
    """``[ivr]``; validated on construction, errors name keys under ``ivr.``."""

    menus: Mapping[str, MenuConfig]
    entry: str = "main"
    calendar: CalendarConfig | None = None  # None: always open
    after_hours: Action = Hangup()
    recorded_notice: tuple[str, ...] = ()  # empty: no notice
    prompt_timeout: float = 120.0  # a player that never reports the end of a prompt cannot strand the call
    max_menu_visits: int = 20  # callers wandering between menus end at `fallback`
    fallback: RouteAction = Hangup()

    def __post_init__(self) -> None:
        _validate(self)


def _validate(config: IvrConfig) -> None:
    if not config.menus:
        raise FlowConfigError("ivr.menus", "at least one menu is required")
    if config.entry not in config.menus:
        raise FlowConfigError("ivr.entry", f"unknown menu {config.entry!r}")
    _check_action(config, config.after_hours, "ivr.after_hours", allow_back=False, allow_repeat=False)
    if not isinstance(config.fallback, ToQueue | Transfer | Voicemail | Hangup):
        raise FlowConfigError(
            "ivr.fallback",
            f"must leave the IVR (queue, transfer, voicemail or hangup), not {config.fallback}",
        )
    _check_action(config, config.fallback, "ivr.fallback", allow_back=False, allow_repeat=False)
    _check_prompts(config.recorded_notice, "ivr.recorded_notice", required=False)
    _check_seconds(config.prompt_timeout, "ivr.prompt_timeout")
    if config.max_menu_visits < 1:
        raise FlowConfigError("ivr.max_menu_visits", "must be at least 1")
    for name, menu in config.menus.items():
        key = f"ivr.menus.{name}"
        if not name or "." in name or ">" in name:
            raise FlowConfigError(key, "a menu name must be non-empty without '.' or '>'")
        _check_prompts(menu.prompts, f"{key}.prompts", required=True)
        _check_prompts(menu.invalid_prompts, f"{key}.invalid_prompts", required=False)
        _check_prompts(menu.no_input_prompts, f"{key}.no_input_prompts", required=False)
        _check_seconds(menu.first_digit_timeout, f"{key}.first_digit_timeout")
        _check_seconds(menu.inter_digit_timeout, f"{key}.inter_digit_timeout")
        if not 1 <= menu.max_digits <= 32:
            raise FlowConfigError(f"{key}.max_digits", "must be between 1 and 32")
        if not 0 <= menu.max_retries <= 10:
            raise FlowConfigError(f"{key}.max_retries", "must be between 0 and 10")
        for digits, action in menu.options.items():
            option_key = f"{key}.options.{digits}"
            if not _OPTION_KEY.fullmatch(digits):
                raise FlowConfigError(option_key, "an option is digits 0-9, '*', A-D, or '#' alone")
            if len(digits) > menu.max_digits:
                raise FlowConfigError(option_key, f"longer than {key}.max_digits ({menu.max_digits})")
            _check_action(config, action, option_key, allow_back=True, allow_repeat=True)
        if menu.direct_dial is not None:
            if "{digits}" not in menu.direct_dial or not _format_ok(menu.direct_dial):
                raise FlowConfigError(f"{key}.direct_dial", "must contain '{digits}' and no other braces")
            if not 1 <= menu.direct_dial_min_digits <= menu.max_digits:
                raise FlowConfigError(
                    f"{key}.direct_dial_min_digits", f"must be between 1 and {key}.max_digits"
                )
        # "repeat" as a fallback would replay the menu forever; max_retries already says how often to replay
        _check_action(config, menu.on_invalid, f"{key}.on_invalid", allow_back=True, allow_repeat=False)
        if menu.on_no_input is not None:
            _check_action(config, menu.on_no_input, f"{key}.on_no_input", allow_back=True, allow_repeat=False)
        if menu.language is not None and not menu.language:
            raise FlowConfigError(f"{key}.language", "must not be empty")


def _check_action(
    config: IvrConfig, action: Action, key: str, *, allow_back: bool, allow_repeat: bool
) -> None:
    match action:
        case GotoMenu(menu=menu) if menu not in config.menus:
            raise FlowConfigError(key, f"unknown menu {menu!r}")
        case Back() if not allow_back:
            raise FlowConfigError(key, "'back' is not allowed here")
        case Repeat() if not allow_repeat:
            raise FlowConfigError(
                key, "'repeat' is not allowed here (max_retries sets how often a menu replays)"
            )
        case ToQueue(queue=name) | Voicemail(box=name) | Transfer(target=name) if not name.strip():
            raise FlowConfigError(key, f"{action} needs a name")
        case Voicemail(box=box) if not _BOX_ID.fullmatch(box):
            raise FlowConfigError(key, f"voicemail box {box!r}: use letters, digits, '.', '_' and '-' only")
        case Transfer(target=target) if any(c.isspace() for c in target):
            raise FlowConfigError(key, f"transfer target {target!r} contains white space")
        case _:
            pass


def _check_prompts(prompts: tuple[str, ...], key: str, *, required: bool) -> None:
    if required and not prompts:
        raise FlowConfigError(key, "at least one prompt id is required")
    for index, prompt in enumerate(prompts):
        if not prompt.strip():
            raise FlowConfigError(f"{key}[{index}]", "a prompt id must not be empty")


def _check_seconds(value: float, key: str) -> None:
    if not (math.isfinite(value) and 0 < value <= 3600):
        raise FlowConfigError(key, f"must be a number of seconds in (0, 3600], got {value}")


def _format_ok(template: str) -> bool:
    try:
        template.format(digits="1")
    except (KeyError, IndexError, ValueError):
        return False
    return True


def ivr_warnings(config: IvrConfig) -> list[str]:
    """Legal but suspicious configuration, one ``"<key>: <message>"`` line each, for the startup log."""
    warnings: list[str] = []
    reachable: set[str] = set()
    todo = deque([config.entry])
    if config.calendar is not None and isinstance(config.after_hours, GotoMenu):
        todo.append(config.after_hours.menu)
    while todo:
        name = todo.popleft()
        if name in reachable:
            continue
        reachable.add(name)
        menu = config.menus[name]
        for action in (*menu.options.values(), menu.on_invalid, menu.no_input_action):
            if isinstance(action, GotoMenu):
                todo.append(action.menu)
    warnings.extend(
        f"ivr.menus.{name}: unreachable from ivr.entry" for name in config.menus if name not in reachable
    )
    if config.calendar is None and not isinstance(config.after_hours, Hangup):
        warnings.append("ivr.after_hours: set, but there is no [calendar], so the IVR is always open")
    return warnings


# ------------------------------------------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class PathStep:
    """One decision in a menu: the digits entered, or ``invalid`` / ``timeout`` / ``after-hours``."""

    menu: str  # "" for decisions taken before any menu (after hours)
    choice: str


class RouteCause(enum.StrEnum):
    SELECTED = "selected"  # an option (or a direct-dialled extension) chosen by the caller
    INVALID = "invalid"  # retries exhausted on invalid input: the menu's on_invalid
    NO_INPUT = "no_input"  # retries exhausted on silence: the menu's on_no_input
    AFTER_HOURS = "after_hours"
    LIMIT = "limit"  # max_menu_visits reached: ivr.fallback


@dataclass(frozen=True, slots=True)
class PlayPrompts:
    prompts: tuple[str, ...]
    interruptible: bool
    play_id: int  # echo it in prompt_finished so a late report of a stopped playback is ignored


@dataclass(frozen=True, slots=True)
class StopPrompt:
    play_id: int


@dataclass(frozen=True, slots=True)
class Route:
    action: RouteAction
    cause: RouteCause
    path: tuple[PathStep, ...]
    contact_reason: str  # "main>1>ja>2>billing"
    language: str | None


IvrOutput = PlayPrompts | StopPrompt | Route


def format_contact_reason(path: tuple[PathStep, ...] | list[PathStep], end: str) -> str:
    """``menu>choice>menu>choice>...>end``; a queue is named bare, other destinations as in the TOML."""
    tokens: list[str] = []
    for step in path:
        if step.menu:
            tokens.append(step.menu)
        tokens.append(step.choice)
    if end:
        tokens.append(end)
    return ">".join(tokens)


def _destination(action: RouteAction) -> str:
    return action.queue if isinstance(action, ToQueue) else str(action)


# ------------------------------------------------------------------------------------------------- session


class IvrState(enum.Enum):
    NOTICE = "notice"  # the recorded-call notice is playing; digits are ignored
    PROMPT = "prompt"  # menu prompts are playing; a digit barges in
    COLLECT = "collect"  # waiting for the first or the next digit
    DONE = "done"  # a Route has been emitted


class IvrSession:
    """One caller's way through the IVR.

    ``now`` is the monotonic clock of the timers (seconds); ``wall_time`` the aware wall-clock instant used
    once, at the start, to ask the calendar whether the center is open (required with a calendar).
    """

    def __init__(self, config: IvrConfig, *, now: float, wall_time: datetime | None = None) -> None:
        self.config = config
        self.calendar_decision: Decision | None = None  # for the log: which rule made it open or closed
        if config.calendar is not None:
            if wall_time is None:
                raise ValueError("wall_time is required when the IVR has a calendar")
            self.calendar_decision = BusinessCalendar(config.calendar).decide(wall_time)
        self.language: str | None = None
        self._outputs: deque[IvrOutput] = deque()
        self._state = IvrState.NOTICE
        self._menu = ""  # current menu name, "" before the first one
        self._stack: list[tuple[str, int]] = []  # (menu to go back to, path length when it was entered)
        self._path: list[PathStep] = []
        self._history: list[PathStep] = []
        self._collected = ""
        self._failures = 0
        self._visits = 0
        self._deadline: float | None = None
        self._play_id = 0
        self._result: Route | None = None
        if config.recorded_notice:
            self._play(config.recorded_notice, now, interruptible=False)
            self._state = IvrState.NOTICE
        else:
            self._begin(now)

    # -- read-only views

    @property
    def state(self) -> IvrState:
        return self._state

    @property
    def done(self) -> bool:
        return self._state is IvrState.DONE

    @property
    def result(self) -> Route | None:
        return self._result

    @property
    def menu(self) -> str:
        return self._menu

    @property
    def path(self) -> tuple[PathStep, ...]:
        """The effective path: 'back' removes steps, 'repeat' adds none."""
        return tuple(self._path)

    @property
    def history(self) -> tuple[PathStep, ...]:
        """Every decision, including retries, repeats and backs (for the call log's detail)."""
        return tuple(self._history)

    @property
    def contact_reason(self) -> str:
        """The final reason once routed; before that, the path so far ending in the current menu."""
        if self._result is not None:
            return self._result.contact_reason
        return format_contact_reason(self._path, self._menu)

    # -- inputs

    def digit(self, digit: str, now: float) -> None:
        """A DTMF digit from the caller (0-9, ``*``, ``#``, A-D)."""
        digit = digit.upper()
        if digit not in DIGITS:
            raise ValueError(f"not a DTMF digit: {digit!r}")
        if self._state is IvrState.PROMPT:
            self._outputs.append(StopPrompt(self._play_id))
            self._state = IvrState.COLLECT
        if self._state is IvrState.COLLECT:
            self._on_digit(digit, now)

    def prompt_finished(self, now: float, play_id: int | None = None) -> None:
        """The prompts of the last PlayPrompts have been played (a stale ``play_id`` is ignored)."""
        if play_id is not None and play_id != self._play_id:
            return
        if self._state is IvrState.NOTICE:
            self._begin(now)
        elif self._state is IvrState.PROMPT:
            self._wait_for_input(now)

    def handle_timer(self, now: float) -> None:
        if self._deadline is None or now < self._deadline:
            return  # an early wake-up changes nothing
        if self._state in (IvrState.NOTICE, IvrState.PROMPT):
            self.prompt_finished(now)
        elif self._state is IvrState.COLLECT:
            if self._collected:
                self._complete(self._collected, now)
            else:
                self._fail(RouteCause.NO_INPUT, now)

    def get_timer(self) -> float | None:
        return self._deadline

    def next_action(self) -> IvrOutput | None:
        return self._outputs.popleft() if self._outputs else None

    # -- transitions

    def _begin(self, now: float) -> None:
        decision = self.calendar_decision
        if decision is not None and not decision.is_open:
            self._apply(self.config.after_hours, PathStep("", "after-hours"), RouteCause.AFTER_HOURS, now)
        else:
            self._enter(self.config.entry, now)

    def _enter(self, name: str, now: float) -> None:
        self._visits += 1
        if self._visits > self.config.max_menu_visits:
            self._history.append(PathStep(name, "limit"))
            self._route(self.config.fallback, RouteCause.LIMIT)
            return
        menu = self.config.menus[name]
        self._menu = name
        self._failures = 0
        if menu.language is not None:
            self.language = menu.language
        self._play(menu.prompts, now, interruptible=True)

    def _play(self, prompts: tuple[str, ...], now: float, *, interruptible: bool) -> None:
        self._collected = ""
        self._play_id += 1
        self._outputs.append(PlayPrompts(prompts, interruptible, self._play_id))
        self._state = IvrState.PROMPT
        self._deadline = now + self.config.prompt_timeout

    def _wait_for_input(self, now: float) -> None:
        self._state = IvrState.COLLECT
        self._deadline = now + self.config.menus[self._menu].first_digit_timeout

    def _on_digit(self, digit: str, now: float) -> None:
        menu = self.config.menus[self._menu]
        if digit == "#":
            if self._collected:
                self._complete(self._collected, now)
            elif "#" in menu.options:
                self._complete("#", now)
            else:
                self._fail(RouteCause.INVALID, now)
            return
        self._collected += digit
        entry = self._collected
        longer_option = any(key != entry and key.startswith(entry) for key in menu.options)
        longer_dial = menu.direct_dial is not None and entry.isdigit() and len(entry) < menu.max_digits
        if len(entry) >= menu.max_digits or not (longer_option or longer_dial):
            # nothing longer could match: decide now instead of making the caller wait for the timeout
            self._complete(entry, now)
        else:
            self._deadline = now + menu.inter_digit_timeout

    def _complete(self, entry: str, now: float) -> None:
        menu = self.config.menus[self._menu]
        self._collected = ""
        if entry in menu.options:
            self._apply(menu.options[entry], PathStep(self._menu, entry), RouteCause.SELECTED, now)
        elif (
            menu.direct_dial is not None
            and entry.isdigit()
            and menu.direct_dial_min_digits <= len(entry) <= menu.max_digits
        ):
            target = Transfer(menu.direct_dial.format(digits=entry))
            self._apply(target, PathStep(self._menu, entry), RouteCause.SELECTED, now)
        else:
            self._fail(RouteCause.INVALID, now)

    def _fail(self, cause: RouteCause, now: float) -> None:
        menu = self.config.menus[self._menu]
        choice = "invalid" if cause is RouteCause.INVALID else "timeout"
        self._failures += 1
        if self._failures <= menu.max_retries:
            self._history.append(PathStep(self._menu, choice))
            extra = menu.invalid_prompts if cause is RouteCause.INVALID else menu.no_input_prompts
            self._play(extra + menu.prompts, now, interruptible=True)
            return
        action = menu.on_invalid if cause is RouteCause.INVALID else menu.no_input_action
        self._apply(action, PathStep(self._menu, choice), cause, now)

    def _apply(self, action: Action, step: PathStep, cause: RouteCause, now: float) -> None:
        self._history.append(step)
        match action:
            case Repeat():
                self._enter(self._menu, now)
            case Back():
                if self._stack:
                    previous, path_length = self._stack.pop()
                    del self._path[path_length:]
                    self._enter(previous, now)
                else:  # back from the first menu: nowhere to go, so replay it
                    self._enter(self._menu, now)
            case GotoMenu(menu=name):
                if self._menu:
                    self._stack.append((self._menu, len(self._path)))
                self._path.append(step)
                self._enter(name, now)
            case ToQueue() | Transfer() | Voicemail() | Hangup():
                self._path.append(step)
                self._route(action, cause)

    def _route(self, action: RouteAction, cause: RouteCause) -> None:
        self._state = IvrState.DONE
        self._deadline = None
        reason = format_contact_reason(self._path, _destination(action))
        self._result = Route(action, cause, tuple(self._path), reason, self.language)
        self._outputs.append(self._result)


# -------------------------------------------------------------------------------------------------- loader

_IVR_KEYS: Final = (
    "entry",
    "after_hours",
    "recorded_notice",
    "prompt_timeout",
    "max_menu_visits",
    "fallback",
    "defaults",
    "menus",
)
_DEFAULT_KEYS: Final = (
    "first_digit_timeout",
    "inter_digit_timeout",
    "max_retries",
    "invalid_prompts",
    "no_input_prompts",
    "on_invalid",
    "on_no_input",
)
_MENU_KEYS: Final = (
    *_DEFAULT_KEYS,
    "prompts",
    "options",
    "max_digits",
    "direct_dial",
    "direct_dial_min_digits",
    "language",
)


def load_ivr_config(document: Mapping[str, Any]) -> IvrConfig:
    """Build the IVR (and its ``[calendar]``, if any) from a parsed TOML document.

    Raises :class:`FlowConfigError` naming the key (``ivr.menus.main.options.9: unknown menu 'foo'``).
    Queue names are not checked here; the app knows the queues.  See :func:`ivr_warnings` for lint.
    """
    if "ivr" not in document:
        raise FlowConfigError("ivr", "section required")
    table = _table(document["ivr"], "ivr")
    check_keys(table, _IVR_KEYS, "ivr")
    calendar = load_calendar_config(document["calendar"]) if "calendar" in document else None

    defaults = _table(table.get("defaults", {}), "ivr.defaults")
    check_keys(defaults, _DEFAULT_KEYS, "ivr.defaults")
    menus_table = _table(table.get("menus", {}), "ivr.menus")
    menus: dict[str, MenuConfig] = {}
    for name, raw in menus_table.items():
        key = f"ivr.menus.{name}"
        menu_table = _table(raw, key)
        check_keys(menu_table, _MENU_KEYS, key)
        menus[str(name)] = _menu(menu_table, key, defaults)

    notice = table.get("recorded_notice", False)
    if notice is True:
        recorded_notice: tuple[str, ...] = (DEFAULT_NOTICE_PROMPT,)
    elif notice is False:
        recorded_notice = ()
    else:
        recorded_notice = _prompts(notice, "ivr.recorded_notice")

    fallback = _action(table.get("fallback", "hangup"), "ivr.fallback")
    if not isinstance(fallback, ToQueue | Transfer | Voicemail | Hangup):
        raise FlowConfigError(
            "ivr.fallback", f"must leave the IVR (queue, transfer, voicemail or hangup), not {fallback}"
        )
    return IvrConfig(
        menus=menus,
        entry=_string(table.get("entry", "main"), "ivr.entry"),
        calendar=calendar,
        after_hours=_action(table.get("after_hours", "hangup"), "ivr.after_hours"),
        recorded_notice=recorded_notice,
        prompt_timeout=_number(table.get("prompt_timeout", 120.0), "ivr.prompt_timeout"),
        max_menu_visits=_integer(table.get("max_menu_visits", 20), "ivr.max_menu_visits"),
        fallback=fallback,
    )


def _menu(own: Mapping[str, Any], key: str, defaults: Mapping[str, Any]) -> MenuConfig:
    def get(name: str, default: object) -> tuple[object, str]:
        # a value inherited from [ivr.defaults] is reported there, where the operator has to fix it
        if name in own:
            return own[name], f"{key}.{name}"
        if name in defaults:
            return defaults[name], f"ivr.defaults.{name}"
        return default, f"{key}.{name}"

    options: dict[str, Action] = {}
    for digits, text in _table(own.get("options", {}), f"{key}.options").items():
        options[str(digits)] = _action(text, f"{key}.options.{digits}")
    direct_dial = own.get("direct_dial")
    if "max_digits" in own:
        max_digits = _integer(own["max_digits"], f"{key}.max_digits")
    elif direct_dial is not None:
        raise FlowConfigError(f"{key}.max_digits", "required with direct_dial (the longest extension)")
    else:
        max_digits = max((len(k) for k in options), default=1)
    on_no_input, on_no_input_key = get("on_no_input", None)
    language = own.get("language")
    return MenuConfig(
        prompts=_prompts(own.get("prompts", []), f"{key}.prompts"),
        options=options,
        first_digit_timeout=_number(*get("first_digit_timeout", 5.0)),
        inter_digit_timeout=_number(*get("inter_digit_timeout", 3.0)),
        max_digits=max_digits,
        direct_dial=None if direct_dial is None else _string(direct_dial, f"{key}.direct_dial"),
        direct_dial_min_digits=_integer(
            own.get("direct_dial_min_digits", 1), f"{key}.direct_dial_min_digits"
        ),
        max_retries=_integer(*get("max_retries", 2)),
        invalid_prompts=_prompts(*get("invalid_prompts", [])),
        no_input_prompts=_prompts(*get("no_input_prompts", [])),
        on_invalid=_action(*get("on_invalid", "hangup")),
        on_no_input=None if on_no_input is None else _action(on_no_input, on_no_input_key),
        language=None if language is None else _string(language, f"{key}.language"),
    )


def _table(value: object, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise FlowConfigError(key, f"must be a table, got {type(value).__name__}")
    return value


def _string(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FlowConfigError(key, "must be a non-empty string")
    return value.strip()


def _number(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FlowConfigError(key, "must be a number of seconds")
    return float(value)


def _integer(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FlowConfigError(key, "must be an integer")
    return value


def _prompts(value: object, key: str) -> tuple[str, ...]:
    """One prompt id or a list of them."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise FlowConfigError(key, "must be a prompt id or a list of prompt ids")
    return tuple(_string(item, f"{key}[{index}]") for index, item in enumerate(items))


def _action(value: object, key: str) -> Action:
    if not isinstance(value, str):
        raise FlowConfigError(key, f"must be a string: {_ACTION_FORMS}")
    try:
        return parse_action(value)
    except ValueError as error:
        raise FlowConfigError(key, str(error)) from None
