"""Announcements -> prompt ids in Japanese and English; numbers 1..99; the wording table covers every id."""

from __future__ import annotations

import csv
from pathlib import Path, PurePath

import pytest

from ccdaemon.acd.announce import Announcement, AnnouncementKind, WaitBound, WaitEstimate
from ccdaemon.acd.sentences import (
    IVR_PROMPTS,
    LANGUAGES,
    Language,
    announcement_prompt_ids,
    announcement_prompts,
    en_number_words,
    ja_reading,
    number_prompts,
    prompt_candidates,
    wait_prompts,
)

K = AnnouncementKind
TABLE = Path(__file__).resolve().parents[3] / "prompts" / "prompts.tsv"
NUMBERS = range(1, 100)


def load_table() -> dict[tuple[str, str], str]:
    lines = [ln for ln in TABLE.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    rows = list(csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))
    table = {(r["lang"], r["id"]): r["text"] for r in rows}
    assert len(table) == len(rows), "an id is listed twice for one language"
    return table


def spoken(ids: list[str], lang: Language) -> str:
    """The sentence the playlist says, from the table's wording."""
    table = load_table()
    return ("" if lang == "ja" else " ").join(table[(lang, i)] for i in ids)


# --- Japanese numbers --------------------------------------------------------------------------------

# The counter 分 changes the reading of the last digit (and of a round ten): checked by hand, not derived.
JA_MINUTES = {
    1: "いっぷん",
    2: "にふん",
    3: "さんぷん",
    4: "よんぷん",
    5: "ごふん",
    6: "ろっぷん",
    7: "ななふん",
    8: "はっぷん",
    9: "きゅうふん",
    10: "じゅっぷん",
    11: "じゅういっぷん",
    14: "じゅうよんぷん",
    16: "じゅうろっぷん",
    18: "じゅうはっぷん",
    20: "にじゅっぷん",
    23: "にじゅうさんぷん",
    30: "さんじゅっぷん",
    40: "よんじゅっぷん",
    47: "よんじゅうななふん",
    60: "ろくじゅっぷん",
    66: "ろくじゅうろっぷん",
    80: "はちじゅっぷん",
    88: "はちじゅうはっぷん",
    90: "きゅうじゅっぷん",
    99: "きゅうじゅうきゅうふん",
}
JA_TENS = ["", "じゅう", "にじゅう", "さんじゅう", "よんじゅう", "ごじゅう"]
JA_TENS += ["ろくじゅう", "ななじゅう", "はちじゅう", "きゅうじゅう"]
JA_POSITION_UNITS = ["", "いち", "に", "さん", "よん", "ご", "ろく", "なな", "はち", "きゅう"]


@pytest.mark.parametrize("n", sorted(JA_MINUTES))
def test_ja_minute_readings_by_hand(n: int) -> None:
    assert ja_reading(n, "minutes") == JA_MINUTES[n]


@pytest.mark.parametrize("n", NUMBERS)
def test_ja_minutes_every_number(n: int) -> None:
    tens, unit = divmod(n, 10)
    reading = ja_reading(n, "minutes")
    if unit:  # the tens are read plainly, the counter fuses with the last digit only
        assert reading == JA_TENS[tens] + JA_MINUTES[unit]
    else:
        assert reading == JA_TENS[tens][:-1] + "っぷん"
    assert number_prompts(n, "ja", "minutes") == [f"minutes_{n}"]
    wait = WaitEstimate(n, WaitBound.ABOUT)
    ids = announcement_prompts(Announcement(K.WAIT, wait=wait), "ja")
    assert ids == ["wait_about", f"minutes_{n}", "wait_end"]
    assert spoken(ids, "ja") == f"ただいまの予想待ち時間は、約{n}分です。"


@pytest.mark.parametrize("n", NUMBERS)
def test_ja_position_every_number(n: int) -> None:
    tens, unit = divmod(n, 10)
    assert ja_reading(n, "position") == JA_TENS[tens] + JA_POSITION_UNITS[unit] + "ばんめ"
    ids = announcement_prompts(Announcement(K.POSITION, position=n), "ja")
    assert ids == ["position_intro", f"position_{n}", "position_end"]
    assert spoken(ids, "ja") == f"お客様は{n}番目にお待ちいただいております。"


# --- English numbers ---------------------------------------------------------------------------------

EN_BY_HAND = {
    1: "one",
    7: "seven",
    11: "eleven",
    12: "twelve",
    13: "thirteen",
    15: "fifteen",
    19: "nineteen",
    20: "twenty",
    21: "twenty one",
    40: "forty",
    58: "fifty eight",
    70: "seventy",
    99: "ninety nine",
}


@pytest.mark.parametrize("n", sorted(EN_BY_HAND))
def test_en_words_by_hand(n: int) -> None:
    assert " ".join(en_number_words(n)) == EN_BY_HAND[n]


@pytest.mark.parametrize("n", NUMBERS)
def test_en_every_number(n: int) -> None:
    ids = number_prompts(n, "en", "minutes")
    tens, unit = divmod(n, 10)
    if n < 20:
        assert ids == [f"num_{n}"]
    else:  # "twenty" + "three": the round ten, then the unit unless zero
        assert ids == [f"num_{tens * 10}"] + ([f"num_{unit}"] if unit else [])
    words = " ".join(en_number_words(n))
    assert spoken(ids, "en") == words
    unit_word = "minute" if n == 1 else "minutes"
    wait = announcement_prompts(Announcement(K.WAIT, wait=WaitEstimate(n, WaitBound.ABOUT)), "en")
    assert wait == ["wait_about", *ids, unit_word]
    assert spoken(wait, "en") == f"Your estimated wait time is about {words} {unit_word}"
    position = announcement_prompts(Announcement(K.POSITION, position=n), "en")
    assert spoken(position, "en") == f"You are caller number {words}"


# --- sentences ---------------------------------------------------------------------------------------


def test_less_than_and_more_than() -> None:
    less = WaitEstimate(1, WaitBound.LESS_THAN)
    more = WaitEstimate(30, WaitBound.MORE_THAN)
    assert spoken(wait_prompts(less, "ja"), "ja") == "ただいまの予想待ち時間は1分以内です。"
    assert spoken(wait_prompts(more, "ja"), "ja") == "ただいまの予想待ち時間は30分以上です。"
    assert spoken(wait_prompts(less, "en"), "en") == "Your estimated wait time is less than one minute"
    assert spoken(wait_prompts(more, "en"), "en") == "Your estimated wait time is more than thirty minutes"


def test_position_and_wait_and_next() -> None:
    both = Announcement(K.POSITION_AND_WAIT, position=3, wait=WaitEstimate(3, WaitBound.ABOUT))
    assert spoken(announcement_prompts(both, "ja"), "ja") == (
        "お客様は3番目にお待ちいただいております。ただいまの予想待ち時間は、約3分です。"
    )
    assert announcement_prompts(both, "en") == [
        "position_intro",
        "num_3",
        "wait_about",
        "num_3",
        "minutes",
    ]
    nxt = Announcement(K.NEXT, position=1)
    assert announcement_prompts(nxt, "ja") == ["next"]
    assert "まもなくおつなぎします" in spoken(["next"], "ja")
    assert spoken(["next"], "en").startswith("You are next")


def test_malformed_announcements_and_bad_input_rejected() -> None:
    with pytest.raises(ValueError, match="without a position"):
        announcement_prompts(Announcement(K.POSITION), "en")
    with pytest.raises(ValueError, match="without a wait"):
        announcement_prompts(Announcement(K.WAIT), "ja")
    with pytest.raises(ValueError, match="unsupported language"):
        announcement_prompts(Announcement(K.NEXT, position=1), "fr")  # type: ignore[arg-type]
    for n in (0, 100):
        with pytest.raises(ValueError, match=r"1\.\.99"):
            number_prompts(n, "ja", "minutes")
        with pytest.raises(ValueError, match=r"1\.\.99"):
            en_number_words(n)


# --- the wording table -------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_producible_prompt_is_in_the_table(lang: Language) -> None:
    table = load_table()
    needed = announcement_prompt_ids(lang) | set(IVR_PROMPTS)
    missing = sorted(i for i in needed if (lang, i) not in table)
    assert missing == []
    # Every announcement the policy can make uses only ids from that set.
    for n in NUMBERS:
        for bound in WaitBound:
            ann = Announcement(K.POSITION_AND_WAIT, position=n, wait=WaitEstimate(n, bound))
            assert set(announcement_prompts(ann, lang)) <= needed


def test_table_has_no_stray_rows_and_texts_are_filled() -> None:
    table = load_table()
    allowed = {(lang, i) for lang in LANGUAGES for i in announcement_prompt_ids(lang) | set(IVR_PROMPTS)}
    assert sorted(set(table) - allowed) == []
    assert all(text.strip() for text in table.values())


# --- prompt files ------------------------------------------------------------------------------------


def test_prompt_candidates_custom_directory_first() -> None:
    got = prompt_candidates("minutes_3", "ja", ["/etc/ccdaemon/prompts", PurePath("/opt/ccdaemon/prompts")])
    assert got == [
        PurePath("/etc/ccdaemon/prompts/ja/minutes_3.wav"),
        PurePath("/opt/ccdaemon/prompts/ja/minutes_3.wav"),
    ]


BAD_NAMES = [("../secret", "ja"), ("a/b", "en"), ("", "en"), ("x", "../")]


@pytest.mark.parametrize(("prompt_id", "lang"), BAD_NAMES)
def test_prompt_candidates_refuse_paths(prompt_id: str, lang: str) -> None:
    with pytest.raises(ValueError, match="bad"):
        prompt_candidates(prompt_id, lang, ["/p"])
