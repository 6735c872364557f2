"""The feedparser backport (mailbot.core.feedparser_backport) against the regular expression it replaces:
the same matches line by line, and the same parse of every mail of the corpus and of the tests'
own samples, with and without it."""

from __future__ import annotations

import email
import email.message
import re
from collections.abc import Iterator
from email import feedparser
from email.message import EmailMessage
from email.policy import compat32

import pytest

from mailbot.core import feedparser_backport
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
    matcher = feedparser_backport._FeedparserRe().compile(pattern.pattern)
    assert isinstance(matcher, feedparser_backport.BoundaryMatcher)
    lines = [separator + s for s in SUFFIXES] + [separator[:-1], "x" + separator, "", "text\n"]
    lines += [other + s for other in SEPARATORS if other != separator for s in ("\n", "--\n")]
    matched = 0
    for line in lines:
        expected = groups(pattern.match(line))
        assert groups(matcher.match(line)) == expected, line
        matched += expected is not None
    assert matched >= 8  # the cases above do exercise the matching branch


def test_any_other_pattern_goes_to_re() -> None:
    fake = feedparser_backport._FeedparserRe()
    assert (
        feedparser_backport.separator_of(r"(?P<sep>a|b)(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$")
        is None
    )
    assert isinstance(fake.compile(r"\r\n|\r|\n"), re.Pattern)
    assert isinstance(fake.compile(real("--x").pattern, re.IGNORECASE), re.Pattern)
    assert fake.escape("a.b") == re.escape("a.b")


def made_samples() -> list[bytes]:
    """Multipart mail of the shapes clients send: alternative, mixed with an attachment, nested,
    a preamble and an epilogue, and a close boundary missing."""
    out = []
    for i, boundary_text in enumerate(["b1", "=_Part_0_1.2", "----=_NextPart_000_0001_01DA.7F3E(x)+y"]):
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "a@x.id", "b@x.id", f"uji {i}"
        msg.set_content("Nama Lengkap: Rina\n--not a boundary\n")
        msg.add_alternative("<p>Nama Lengkap: Rina</p>", subtype="html")
        if i:
            msg.add_attachment(b"%PDF-1.4 x" * 50, maintype="application", subtype="pdf", filename="a.pdf")
        msg.set_boundary(boundary_text)
        out.append(msg.as_bytes())
    out.append(
        b'Content-Type: multipart/mixed; boundary="o"\r\n\r\npreamble\r\n--o\r\n'
        b'Content-Type: multipart/alternative; boundary="i"\r\n\r\n--i\r\n\r\none\r\n--i--\r\n'
        b"--o  \r\n\r\ntwo\r\n--o--\r\nepilogue\r\n"
    )
    out.append(b'Content-Type: multipart/mixed; boundary="cut"\n\n--cut\n\nno close boundary\n')
    return out


def samples() -> Iterator[tuple[str, bytes]]:
    for i, raw in enumerate(made_samples()):
        yield f"made-{i}", raw
    for path in sorted((ROOT / "tests" / "data").rglob("*.eml")):
        yield path.name, path.read_bytes()
    if CORPUS.exists():  # the shared corpus, where this checkout has it beside it
        for path in sorted(p for p in CORPUS.iterdir() if p.suffix in (".eml", ".msg")):
            yield path.name, path.read_bytes()


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
    feedparser_backport.install()
    mails = list(samples())
    with_matcher = [structure(raw) for _name, raw in mails]
    monkeypatch.setattr(feedparser, "re", re)
    without = [structure(raw) for _name, raw in mails]
    assert sum(len(s) > 2 for s in without) >= 4  # multipart mail is among them
    for (name, _raw), ours, theirs in zip(mails, with_matcher, without, strict=True):
        assert ours == theirs, name


def test_installed_by_the_parser() -> None:
    import mailbot.core.message  # noqa: F401  (installs it)

    assert isinstance(feedparser.re, feedparser_backport._FeedparserRe)
    msg = email.message_from_string(
        'Content-Type: multipart/mixed; boundary="b.1"\n\npre\n--b.1\n\none\n--b.1\n\ntwo\n--b.1--\nepi\n'
    )
    assert isinstance(msg, email.message.Message)
    assert [p.get_payload() for p in msg.get_payload()] == ["one", "two"]
    assert msg.preamble == "pre" and msg.epilogue == "epi\n"
