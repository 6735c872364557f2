"""Readable text of an HTML body, in one linear scan (mail from outside: STYLE.md 10)."""

from __future__ import annotations

import re

_BLOCK_TAGS = frozenset(
    {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "blockquote"}
    | {"pre", "hr", "section", "article", "header", "footer", "dd", "dt"}
)
_SKIP_TAGS = frozenset({"script", "style", "head", "title"})
# A tag: every try stops at the next "<" or ">", so the scan of a whole body is linear.
_TAG_RE = re.compile(r"<(/?)([A-Za-z][^\s/<>]*+)([^<>]*+)>|<[!?/][^<>]*+>")


class _HtmlText:
    """Text of an HTML body, built from start tags, end tags and data."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.skipping = 0

    def start(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append("\t")

    def end(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(re.sub(r"\s+", " ", data))

    def text(self) -> str:
        lines = []
        for raw_line in "".join(self.parts).split("\n"):
            line = re.sub(r"[ ]+", " ", raw_line).strip(" ")
            line = line.lstrip("\t")
            lines.append(re.sub(r"\t\s*\t+", "\t", line).rstrip("\t "))
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(html: str) -> str:
    """Readable text from an HTML body: table cells tab-separated, blocks on their own lines.

    One linear scan of tags, comments and text, entities unescaped. Not html.parser: in
    Python 3.11 it raises on some broken markup (`<![foo[`: AssertionError from _markupbase)
    and is quadratic on others (20 KB of `<a/`: 5 s; 40 KB: 26 s), and mail from outside
    can hold both (issue #18)."""
    from html import unescape

    out = _HtmlText()
    pos, end = 0, len(html)
    while pos < end:
        lt = html.find("<", pos)
        if lt == -1:
            out.data(unescape(html[pos:]))
            break
        if lt > pos:
            out.data(unescape(html[pos:lt]))
        if html.startswith("<!--", lt):
            close = html.find("-->", lt + 4)
            pos = end if close == -1 else close + 3
            continue
        m = _TAG_RE.match(html, lt)
        if m is None:
            out.data("<")  # a "<" that opens no tag is text
            pos = lt + 1
            continue
        if m.group(2):
            tag = m.group(2).lower()
            if m.group(1):
                out.end(tag)
            else:
                out.start(tag)
                if m.group(3).endswith("/"):  # <br/>: a start and an end, as html.parser has it
                    out.end(tag)
        pos = m.end()
    return out.text()
