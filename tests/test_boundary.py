"""The feedparser's boundary matcher (mailbot.boundary) against the regular expression it replaces:
the same matches line by line, and the same parse of every mail of the corpus and of the tests'
own samples, with and without it."""

from __future__ import annotations

import email
import email.message
import re
from collections.abc import Iterator
from email import feedparser
from email.policy import compat32
from pathlib import Path

import pytest

from mailbot import boundary
from tests.conftest import CORPUS, ROOT

# RFC 2046's boundary characters, the regex metacharacters among them, and some that are not
# allowed but occur in the wild.
SEPARATORS = [
    "--simple",
    "--=_Part_12_3456.789",
    "--'()+_,-./:=? end",
    "--a.b*c[d]{2}|e^f$g\\h",
    "--",
    "--ünïcode",
]
SUFFIXES = ["", "\n", "\r\n", "\r", "--", "--\n", "--\r\n", "  \t\n", "--  \r\n"]
SUFFIXES += ["x\n", "-\n", " x\n", "\n\n"]


def real(separator: str) -> re.Pattern[str]:
    tail = r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
    return re.compile("(?P<sep>" + re.escape(separator) + tail)


def groups(mo: re.Match[str] | None) -> tuple[str | None, ...] | None:
    return None if mo is None else (mo.group("end"), mo.group("ws"), mo.group("linesep"), str(mo.end()))


@pytest.mark.parametrize("separator", SEPARATORS)
def test_matches_like_the_regular_expression(separator: str) -> None:
    pattern = real(separator)
    matcher = boundary._FeedparserRe().compile(pattern.pattern)
    assert isinstance(matcher, boundary.BoundaryMatcher)
    lines = [separator + s for s in SUFFIXES] + [separator[:-1], "x" + separator, "", "text\n"]
    lines += [other + s for other in SEPARATORS if other != separator for s in ("\n", "--\n")]
    matched = 0
    for line in lines:
        expected = groups(pattern.match(line))
        assert groups(matcher.match(line)) == expected, line
        matched += expected is not None
    assert matched >= 8  # the cases above do exercise the matching branch


def test_any_other_pattern_goes_to_re() -> None:
    fake = boundary._FeedparserRe()
    assert boundary.separator_of(r"(?P<sep>a|b)(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$") is None
    assert isinstance(fake.compile(r"\r\n|\r|\n"), re.Pattern)
    assert isinstance(fake.compile(real("--x").pattern, re.IGNORECASE), re.Pattern)
    assert fake.escape("a.b") == re.escape("a.b")


def samples() -> Iterator[Path]:
    yield from sorted((ROOT / "tests" / "data").rglob("*.eml"))
    if CORPUS.exists():
        yield from sorted(p for p in CORPUS.iterdir() if p.suffix in (".eml", ".msg"))


def structure(raw: bytes) -> list[tuple[object, ...]]:
    msg = email.message_from_bytes(raw, policy=compat32)
    return [
        (
            part.get_content_type(),
            part.get_boundary(),
            part.preamble,
            part.epilogue,
            None if part.is_multipart() else part.get_payload(),
            [type(d).__name__ for d in part.defects],
        )
        for part in msg.walk()
    ]


def test_every_sample_parses_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    boundary.install()
    paths = list(samples())
    assert len(paths) >= 10
    with_matcher = [structure(p.read_bytes()) for p in paths]
    monkeypatch.setattr(feedparser, "re", re)
    without = [structure(p.read_bytes()) for p in paths]
    assert any(len(s) > 2 for s in without)  # multipart mail is among them
    for path, ours, theirs in zip(paths, with_matcher, without, strict=True):
        assert ours == theirs, path.name


def test_installed_by_the_parser() -> None:
    import mailbot.parse  # noqa: F401  (installs it)

    assert isinstance(feedparser.re, boundary._FeedparserRe)
    msg = email.message_from_string(
        'Content-Type: multipart/mixed; boundary="b.1"\n\npre\n--b.1\n\none\n--b.1\n\ntwo\n--b.1--\nepi\n'
    )
    assert isinstance(msg, email.message.Message)
    assert [p.get_payload() for p in msg.get_payload()] == ["one", "two"]
    assert msg.preamble == "pre" and msg.epilogue == "epi\n"
