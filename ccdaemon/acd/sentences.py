"""Announcements as playlists: an :class:`~ccdaemon.acd.announce.Announcement` -> prompt ids for a language.

Pure.  A prompt id is a file stem; the file is ``<directory>/<language>/<id>.wav`` (see
:func:`prompt_candidates` and docs/prompts.md).  The wording of every id lives in ``prompts/prompts.tsv``.

Numbers 1..99 are built from parts:

* **Japanese** uses one whole-word prompt per number *and* counter (``minutes_23`` = 「23分」
  read にじゅうさんぷん, ``position_23`` = 「23番目に」): the reading of the counter changes
  with the number (いっぷん, にふん, さんぷん, ろっぷん, はっぷん, じゅっぷん ...), and a word
  spoken in one piece sounds natural where "にじゅう" + "さんぷん" spliced from two recordings
  does not.
* **English** concatenates number words the way people read them (``num_20`` + ``num_3`` = "twenty three"),
  then ``minute`` or ``minutes``; positions are said as "caller number N", so no ordinals are needed.

Sentences (ids in brackets):

====================  ===============================================================================
position (ja)         [position_intro] お客様は [position_N] N番目に [position_end] お待ちいただいております
position (en)         [position_intro] You are caller number [num_..] N
wait, about (ja)      [wait_about] ただいまの予想待ち時間は、約 [minutes_N] N分 [wait_end] です
wait, less (ja)       [wait_intro] ただいまの予想待ち時間は [minutes_N] [wait_less_end] 以内です
wait, more (ja)       [wait_intro] [minutes_N] [wait_more_end] 以上です
wait (en)             [wait_about | wait_less | wait_more] Your estimated wait time is about / less than /
                      more than [num_..] N [minute | minutes]
next                  [next] お客様が次の順番です。まもなくおつなぎします。 / You are next in line ...
====================  ===============================================================================

Position and wait together are the position sentence followed by the wait sentence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import PurePath
from typing import Final, Literal

from .announce import MAX_SPOKEN_NUMBER, Announcement, AnnouncementKind, WaitBound, WaitEstimate

__all__ = [
    "IVR_PROMPTS",
    "LANGUAGES",
    "announcement_prompt_ids",
    "announcement_prompts",
    "en_number_prompts",
    "en_number_words",
    "ja_reading",
    "number_prompts",
    "prompt_candidates",
    "wait_prompts",
]

Language = Literal["ja", "en"]
Counter = Literal["minutes", "position"]

LANGUAGES: Final[tuple[Language, ...]] = ("ja", "en")

# The base IVR's prompts, the same ids in every language (wording in prompts/prompts.tsv).
IVR_PROMPTS: Final[tuple[str, ...]] = (
    "welcome",
    "menu",
    "invalid",
    "no_input",
    "goodbye",
    "after_hours",
    "recorded_notice",
    "queue_wait",
    "queue_full",
    "please_hold",
    "connecting",
    "callback_offer",
    "callback_confirm",
    "survey_question",
    "survey_thanks",
    "voicemail_intro",
    "beep",
    "voicemail_thanks",
)

_PROMPT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")

# --- number words ------------------------------------------------------------------------------------

_EN_UNITS: Final = (
    "",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
_EN_TENS: Final = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")

_JA_DIGITS: Final = ("", "いち", "に", "さん", "よん", "ご", "ろく", "なな", "はち", "きゅう")
# 分 after a final digit: the sound changes (rendaku / sokuon) that make a separate counter prompt wrong.
_JA_FUN: Final = (
    "",
    "いっぷん",
    "にふん",
    "さんぷん",
    "よんぷん",
    "ごふん",
    "ろっぷん",
    "ななふん",
    "はっぷん",
    "きゅうふん",
)


def _check_number(n: int) -> None:
    if not 1 <= n <= MAX_SPOKEN_NUMBER:
        raise ValueError(f"only 1..{MAX_SPOKEN_NUMBER} can be spoken, got {n}")


def en_number_words(n: int) -> list[str]:
    """English words for 1..99, one per prompt: 23 -> ["twenty", "three"]."""
    _check_number(n)
    if n < 20:
        return [_EN_UNITS[n]]
    tens, unit = divmod(n, 10)
    return [_EN_TENS[tens]] + ([_EN_UNITS[unit]] if unit else [])


def en_number_prompts(n: int) -> list[str]:
    """Prompt ids for 1..99: the prompt of 1..19 and of each round ten, e.g. 23 -> num_20, num_3."""
    _check_number(n)
    if n < 20:
        return [f"num_{n}"]
    tens, unit = divmod(n, 10)
    return [f"num_{tens * 10}"] + ([f"num_{unit}"] if unit else [])


def _ja_tens(tens: int) -> str:
    return "" if tens == 0 else ("" if tens == 1 else _JA_DIGITS[tens]) + "じゅう"


def ja_reading(n: int, counter: Counter) -> str:
    """How 1..99 with a counter is read, in hiragana: (23, "minutes") -> にじゅうさんぷん.

    This is what the ``minutes_N`` / ``position_N`` prompts must say; the prompt tests check the synthesiser
    against it.  Only the standard readings: 10分 is じゅっぷん (not じっぷん), 8分 はっぷん (not はちふん).
    """
    _check_number(n)
    tens, unit = divmod(n, 10)
    if counter == "minutes":
        if unit == 0:  # じゅう + ふん -> じゅっぷん
            return _ja_tens(tens)[:-1] + "っぷん"
        return _ja_tens(tens) + _JA_FUN[unit]
    return _ja_tens(tens) + _JA_DIGITS[unit] + "ばんめ"


def number_prompts(n: int, lang: Language, counter: Counter) -> list[str]:
    """Prompt ids that say the number ``n`` with ``counter`` (English: minute words are not included)."""
    _check_number(n)
    if lang == "ja":
        return [f"{counter}_{n}"]
    if lang == "en":
        return en_number_prompts(n)
    raise ValueError(f"unsupported language {lang!r}; known: {', '.join(LANGUAGES)}")


# --- sentences ---------------------------------------------------------------------------------------


def _position(position: int, lang: Language) -> list[str]:
    if lang == "ja":
        return ["position_intro", *number_prompts(position, lang, "position"), "position_end"]
    return ["position_intro", *number_prompts(position, lang, "position")]


def wait_prompts(wait: WaitEstimate, lang: Language) -> list[str]:
    """The wait sentence alone (e.g. for an IVR that tells the wait before queueing)."""
    number = number_prompts(wait.minutes, lang, "minutes")
    if lang == "ja":
        intro, end = {
            WaitBound.ABOUT: ("wait_about", "wait_end"),
            WaitBound.LESS_THAN: ("wait_intro", "wait_less_end"),
            WaitBound.MORE_THAN: ("wait_intro", "wait_more_end"),
        }[wait.bound]
        return [intro, *number, end]
    intro = {
        WaitBound.ABOUT: "wait_about",
        WaitBound.LESS_THAN: "wait_less",
        WaitBound.MORE_THAN: "wait_more",
    }[wait.bound]
    return [intro, *number, "minute" if wait.minutes == 1 else "minutes"]


def announcement_prompts(announcement: Announcement, lang: Language) -> list[str]:
    """The playlist (prompt ids in order) that speaks ``announcement`` in ``lang``."""
    if lang not in LANGUAGES:
        raise ValueError(f"unsupported language {lang!r}; known: {', '.join(LANGUAGES)}")
    kind = announcement.kind
    if kind is AnnouncementKind.NEXT:
        return ["next"]
    out: list[str] = []
    if kind in (AnnouncementKind.POSITION, AnnouncementKind.POSITION_AND_WAIT):
        if announcement.position is None:
            raise ValueError(f"{kind.value} announcement without a position")
        out += _position(announcement.position, lang)
    if kind in (AnnouncementKind.WAIT, AnnouncementKind.POSITION_AND_WAIT):
        if announcement.wait is None:
            raise ValueError(f"{kind.value} announcement without a wait")
        out += wait_prompts(announcement.wait, lang)
    return out


def announcement_prompt_ids(lang: Language) -> frozenset[str]:
    """Every prompt id :func:`announcement_prompts` can produce in ``lang`` (what a prompt set must hold)."""
    ids: set[str] = {"next"}
    for n in range(1, MAX_SPOKEN_NUMBER + 1):
        ids.update(_position(n, lang))
        for bound in WaitBound:
            ids.update(wait_prompts(WaitEstimate(n, bound), lang))
    return frozenset(ids)


def prompt_candidates(prompt_id: str, lang: str, directories: Iterable[str | PurePath]) -> list[PurePath]:
    """The files that may hold a prompt, best first: ``<dir>/<lang>/<id>.wav`` for each directory in order.

    The daemon plays the first that exists, so listing the office's own directory before the default set
    lets a re-recorded prompt win file by file.  Ids and languages are checked so a configured id cannot
    name a file outside the prompt directories.
    """
    if not _PROMPT_ID.fullmatch(prompt_id):
        raise ValueError(f"bad prompt id {prompt_id!r}: letters, digits, '_' and '-' only")
    if not _PROMPT_ID.fullmatch(lang):
        raise ValueError(f"bad language {lang!r}")
    return [PurePath(d) / lang / f"{prompt_id}.wav" for d in directories]
