"""The satisfaction survey (SKM) of Permenpan RB 14/2017 (DOMAIN.md s. 3).

Pure: the form's elements and labels, and parsing what people actually reply. The
arithmetic (NRR per element, IKM with the exact 1/9 weight, the grade) is core/ikm.py's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mailbot.core.html_text import html_to_text


@dataclass(frozen=True)
class Element:
    number: int
    name_id: str
    name_en: str
    labels_id: tuple[str, str, str, str]  # score 1..4
    labels_en: tuple[str, str, str, str]


ELEMENTS: tuple[Element, ...] = (
    Element(1, "Persyaratan", "Requirements",
            ("Tidak sesuai", "Kurang sesuai", "Sesuai", "Sangat sesuai"),
            ("Not appropriate", "Less appropriate", "Appropriate", "Very appropriate")),
    Element(2, "Sistem, mekanisme, dan prosedur", "System, mechanism and procedure",
            ("Tidak mudah", "Kurang mudah", "Mudah", "Sangat mudah"),
            ("Not easy", "Less easy", "Easy", "Very easy")),
    Element(3, "Waktu penyelesaian", "Completion time",
            ("Tidak cepat", "Kurang cepat", "Cepat", "Sangat cepat"),
            ("Not fast", "Less fast", "Fast", "Very fast")),
    Element(4, "Biaya/tarif", "Cost/tariff",
            ("Sangat mahal", "Cukup mahal", "Murah", "Gratis"),
            ("Very expensive", "Rather expensive", "Cheap", "Free")),
    Element(5, "Produk spesifikasi jenis pelayanan", "Service product specification",
            ("Tidak sesuai", "Kurang sesuai", "Sesuai", "Sangat sesuai"),
            ("Not appropriate", "Less appropriate", "Appropriate", "Very appropriate")),
    Element(6, "Kompetensi pelaksana", "Competence of the staff",
            ("Tidak kompeten", "Kurang kompeten", "Kompeten", "Sangat kompeten"),
            ("Not competent", "Less competent", "Competent", "Very competent")),
    Element(7, "Perilaku pelaksana", "Conduct of the staff",
            ("Tidak sopan dan ramah", "Kurang sopan dan ramah", "Sopan dan ramah", "Sangat sopan dan ramah"),
            ("Not polite and friendly", "Less polite and friendly", "Polite and friendly",
             "Very polite and friendly")),
    Element(8, "Penanganan pengaduan, saran dan masukan", "Handling of complaints, suggestions and input",
            ("Tidak ada", "Ada tetapi tidak berfungsi", "Berfungsi kurang maksimal", "Dikelola dengan baik"),
            ("None", "Exists but does not work", "Works, not at its best", "Well managed")),
    Element(9, "Sarana dan prasarana", "Facilities and infrastructure",
            ("Buruk", "Cukup", "Baik", "Sangat baik"),
            ("Poor", "Fair", "Good", "Very good")),
)  # fmt: skip
N_ELEMENTS = len(ELEMENTS)


@dataclass(frozen=True)
class SurveyError:
    element: int
    value: str  # what was written


@dataclass(frozen=True)
class SurveyReply:
    """What a reply says: scores found, values that are not scores, the free comment."""

    scores: dict[int, int]
    errors: tuple[SurveyError, ...] = ()
    comment: str = ""

    @property
    def found(self) -> bool:
        return bool(self.scores or self.errors)

    def missing(self, already: Mapping[int, int] | None = None) -> list[int]:
        have = {**(already or {}), **self.scores}
        return [e.number for e in ELEMENTS if e.number not in have]


# Lines longer than this are prose, never an answer; the bound also caps every regex's work.
_MAX_LINE = 300
_LETTERS = "abcd"  # the regulation's form: a = 1 ... d = 4


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


_HEAD_END = re.compile(r"[,;!(]| [-–] ")
_EMPTY_BOX = re.compile(r"[\[(]\s*+[\])]")
_TICK = re.compile(r"^(?:\[\s*+[x✓v]\s*+\]|\(\s*+[x✓v]\s*+\)|[x✓]\s)\s*+", re.IGNORECASE)


def _label_score(element: Element, text: str) -> int | None:
    """The score a label names for this element ("Sangat sesuai" → 4), in Indonesian or English.

    The label is the whole answer, or is followed by a comma, a bracket or a dash ("Sangat
    sesuai, terima kasih"); a label that merely starts a sentence ("Sesuai dengan ketentuan
    ...") is prose, not an answer. A ticked box before it ("[x] Sesuai") is allowed.
    """
    if _EMPTY_BOX.match(text.strip()):
        return None  # "[ ] Sangat sesuai": an option left unticked
    whole = _TICK.sub("", text.strip())
    head = _HEAD_END.split(whole, maxsplit=1)[0]
    for value in (_norm(whole), _norm(head)):
        if not value:
            continue
        for labels in (element.labels_id, element.labels_en):
            for score, label in enumerate(labels, start=1):
                if value == _norm(label):
                    return score
    return None


# "U1: 4", "U1 = Sangat sesuai", "1. d", "1) Sesuai", "Unsur 1 - 3", "U1. Persyaratan: 4", table cells.
_ELEMENT_LINE = re.compile(
    r"(?P<prefix>u|unsur(?:\s++ke)?|element)?\s*+[-.]?\s*+(?P<n>[1-9])(?![0-9])\s*+[.):=\-\t|]?\s*+"
    r"(?P<rest>.*+)",
    re.IGNORECASE,
)
# A score as a digit or the regulation's letter, alone or followed by its label: "4", "d",
# "(d)", "d. Sangat sesuai", "4 - Sangat sesuai", "c (Sesuai)".
_TOKEN = re.compile(
    r"[\[(]?\s*+(?P<tok>[0-9]++|[a-z])(?![^\W_])\s*+[\])]?\s*+[.):=\-–]?\s*+(?P<label>.*+)",
    re.IGNORECASE,
)
# Nine scores in a row on one line: "4 4 3 4 4 4 4 3 4", "443444434", "d d c d d d d c d".
_ROW = re.compile(r"(?:[0-9][\s,;/\-]*+){9}|(?:[a-d][\s,;/\-]*+){9}", re.IGNORECASE)
# A label before a row of scores: "Nilai: 4 4 3 4 4 4 4 3 4", "Skor survei = a b c …".
_ROW_LABEL = re.compile(
    r"(?:nilai|skor|score|jawaban|penilaian|survei|survey|skm|ikm)(?:\s++\w++)?+\s*+[:=]\s*+", re.IGNORECASE
)
# One score for every element: "semua 4", "Semua unsur: 4", "semua nilai d".
_ALL_SAME = re.compile(
    r"(?:semua|seluruh|all)(?:\s++(?:unsur|nilai|elemen|pertanyaan|jawaban|skor))?+\s*+[:=]?\s*+(?P<v>[1-4a-d])\.?",
    re.IGNORECASE,
)
# Numbered answers side by side on one line: "1.d 2.c 3.d", "1d, 2c, 3d", "U1=4 U2=3".
_PAIR = re.compile(
    r"(?:u\s*+)?(?P<n>[1-9])\s*+(?P<sep>[.):=\-]?)\s*+(?P<v>[a-d]|[0-9])(?![^\W_])[\s,;]*+", re.IGNORECASE
)
_COMMENT = re.compile(
    r"(?:komentar|saran|masukan|comments?|suggestions?)"
    r"(?:\s*+(?:/|dan|and)\s*+(?:saran|masukan|suggestions?))?\s*+[:=\-]\s*+(?P<c>.*+)",
    re.IGNORECASE,
)
_QUOTE_MARKS = re.compile(r"\s*+(?:>\s*+)*+")


def _value_part(element: Element, rest: str) -> tuple[str, bool]:
    """(the answer on an element's line, whether the line names the element).

    `Persyaratan (1-4): 4` → ("4", True); `Sangat sesuai` → ("Sangat sesuai", False).
    """
    rest = rest.strip().strip("|").strip()
    named = any(_norm(rest).startswith(_norm(n)) for n in (element.name_id, element.name_en))
    if "\t" in rest:
        cells = [c.strip() for c in rest.split("\t") if c.strip()]
        return (cells[-1] if cells else ""), named or len(cells) > 1
    if named:
        for separator in (":", "=", " - ", "–"):
            if separator in rest:
                return rest.rsplit(separator, 1)[1].strip(), True
        return "", True
    if ":" in rest or "=" in rest:
        return re.split(r"[:=]", rest)[-1].strip(), False
    return rest, False


@dataclass(frozen=True)
class _Read:
    """What one answer says: a score, or (conflict) a token and a label that disagree."""

    score: int | None
    conflict: bool = False


def _read_value(element: Element, value: str) -> _Read:
    """A score from what was written for an element: a label, a digit or a letter, the latter
    two optionally followed by their label (which must then agree: "c. Sangat sesuai" is
    neither 3 nor 4)."""
    value = value.strip()
    if not value or len(value) > _MAX_LINE:
        return _Read(None)
    by_label = _label_score(element, value)
    if by_label is not None:
        return _Read(by_label)
    m = _TOKEN.fullmatch(value)
    if m is None:
        return _Read(None)
    tok = m.group("tok").casefold()
    if tok.isdigit():
        score = int(tok) if 1 <= int(tok) <= 4 else None
    else:
        score = _LETTERS.index(tok) + 1 if tok in _LETTERS else None
    label_text = m.group("label").strip().strip(".").strip()
    if label_text.startswith("(") and label_text.endswith(")"):
        label_text = label_text[1:-1]
    if score is None or not label_text:
        return _Read(score)
    named = _label_score(element, label_text)
    if named is None:
        return _Read(None)  # "1. a atau b?", "2. 3 hari kerja": prose after a number
    return _Read(score) if named == score else _Read(None, conflict=True)


def _pairs(line: str) -> dict[int, str] | None:
    """`1.d 2.c 3.d` → {1: "d", 2: "c", 3: "d"}: two or more numbered answers on one line and
    nothing else. A bare digit after a number needs a separator ("1.4"), so that "1 2 3 4" is not
    read as two answers."""
    found: dict[int, str] = {}
    pos = 0
    while pos < len(line):
        m = _PAIR.match(line, pos)
        if m is None:
            return None
        n, v = int(m.group("n")), m.group("v").casefold()
        if n in found or (v.isdigit() and not m.group("sep")):
            return None
        found[n] = v
        pos = m.end()
    return found if len(found) >= 2 else None


# Where quoted history (or a signature) begins in a reply whose old text is not behind `>`:
# Outlook's rule and header block, "Pada … menulis:", "-----Pesan Asli-----", a signature.
# Applied to lines of at most _MAX_LINE characters, and linear besides.
_HISTORY_LINE = re.compile(
    r"_{10,}+|-{2,}+\s*+(?:original message|pesan asli|pesan yang diteruskan|forwarded message)\s*+-*+"
    r"|--\s?|begin forwarded message\s*+:?"
    r"|(?:sent from my|dikirim dari|get outlook for|dapatkan outlook untuk)\b.*+",
    re.IGNORECASE,
)
_WROTE = re.compile(r"(?:wrote|menulis|schrieb|a écrit|escribió)\s*+:?\s*+$", re.IGNORECASE)
_WROTE_HINT = re.compile(r"@|\d")
_FROM = re.compile(r"\*?(?:dari|from|von|de)\*?\s*+:", re.IGNORECASE)
_SENT = re.compile(
    r"\*?(?:dikirim|terkirim|tanggal|waktu|kepada|sent|date|to|gesendet|datum|an)\*?\s*+:", re.IGNORECASE
)


def _history_start(lines: list[str], new_text: str | None) -> int:
    """The index of the first line of quoted history (or signature) below the new text; the
    caller's `new_text` (InboundMessage.new_text), where given and where it lines up with the
    text, may put it earlier."""
    start = len(lines)
    for i, raw in enumerate(lines):
        line = raw.strip()
        if len(line) > _MAX_LINE or line.startswith(">"):
            continue  # a `>` line is judged on its own; a longer line is never an answer
        if _WROTE.search(line) and _WROTE_HINT.search(line):
            following = next((x.strip() for x in lines[i + 1 :] if x.strip()), "")
            if following.startswith(">"):
                continue  # "> " marks the history line by line: text below it is bottom-posted
            start = i
            break
        if _HISTORY_LINE.fullmatch(line) or (
            _FROM.match(line) and any(_SENT.match(x.strip()) for x in lines[i + 1 : i + 6])
        ):
            start = i
            break
    if new_text is None:
        return start
    wanted = [x.strip() for x in new_text.split("\n") if x.strip()]
    j = 0
    for i, raw in enumerate(lines[:start]):
        line = raw.strip()
        if not line:
            continue
        if j < len(wanted) and line == wanted[j]:
            j += 1
        elif j == len(wanted):
            return i
        else:
            break  # the stripper changed the text: our own markers decide
    return start


def parse_survey(text: str, html: str = "", *, new_text: str | None = None) -> SurveyReply:
    """Read survey answers from a reply: numbered lines with a digit, a letter a–d (the
    regulation's own form) or the element's label, `U1:` lines, a row of nine scores, numbered
    answers side by side, answers typed inside the quoted form, HTML tables.

    What the applicant wrote on top counts in every form. The quoted history below it (our
    answer with its blank form, the applicant's own question, a numbered list in our answer)
    counts only where a line names a survey element and carries a value (an answer typed into
    our quoted form): so a thank-you quoting the whole ticket is not a survey.
    `new_text` is the reply's new part where the caller has it (InboundMessage.new_text): the
    history then starts no later than where that part ends. Without it, the history starts at
    the first quote header or signature found here (Outlook's rule and header block, "Pada …
    menulis:", "-- ").
    """
    scores: dict[int, int] = {}
    errors: list[SurveyError] = []
    comment = ""
    sources = [(text.replace("\r\n", "\n").replace("\r", "\n"), new_text)]
    if html:
        sources.append((html_to_text(html), None))
    for source, known_new in sources:
        lines = source.split("\n")
        start = _history_start(lines, known_new)
        for index, raw in enumerate(lines):
            if len(raw) > _MAX_LINE:
                continue
            marks = _QUOTE_MARKS.match(raw)
            quoted = ">" in (marks.group() if marks else "")
            if index >= start:
                quoted = True
            line = raw[marks.end() if marks else 0 :].strip().strip("*").strip()
            if not line or "___" in line:
                continue  # an unanswered line of our own form
            m = _COMMENT.fullmatch(line)
            if m:
                comment = comment or m.group("c").strip()
                continue
            label = _ROW_LABEL.match(line) if not quoted else None
            if label is not None and _ROW.fullmatch(line[label.end() :]):
                line = line[label.end() :]
            same = _ALL_SAME.fullmatch(line) if not quoted and not scores else None
            if same is not None:
                tok = same.group("v").casefold()
                score = _LETTERS.index(tok) + 1 if tok in _LETTERS else int(tok)
                scores.update(dict.fromkeys(range(1, len(ELEMENTS) + 1), score))
                continue
            if not quoted and not scores and _ROW.fullmatch(line) and not _a_number(line):
                tokens = re.findall(r"[0-9a-d]", line.casefold())
                for i, tok in enumerate(tokens, start=1):
                    score = _LETTERS.index(tok) + 1 if tok in _LETTERS else int(tok)
                    if 1 <= score <= 4:
                        scores[i] = score
                    else:
                        errors.append(SurveyError(i, tok))
                continue
            pairs = None if quoted else _pairs(line)
            if pairs is not None:
                for number, value in pairs.items():
                    read = _read_value(ELEMENTS[number - 1], value)
                    if read.score is not None:
                        scores.setdefault(number, read.score)
                    else:
                        errors.append(SurveyError(number, value))
                continue
            m = _ELEMENT_LINE.fullmatch(line)
            if not m:
                continue
            number = int(m.group("n"))
            element = ELEMENTS[number - 1]
            value, named = _value_part(element, m.group("rest"))
            targeted = named or bool(m.group("prefix"))
            if (quoted and not targeted) or not value:
                continue
            read = _read_value(element, value)
            if read.score is not None:
                scores.setdefault(number, read.score)
            elif targeted or read.conflict or re.fullmatch(r"-?[0-9]{1,6}", value.strip(" .")):
                errors.append(SurveyError(number, value[:40]))
    errors = [e for e in errors if e.element not in scores]
    return SurveyReply(scores, tuple(_dedupe(errors)), comment[:2000])


def _a_number(line: str) -> bool:
    """Nine digits run together with one outside 1-4 are a number (an old NIP), not scores."""
    return line.isdigit() and not set(line) <= set("1234")


def _dedupe(errors: Iterable[SurveyError]) -> list[SurveyError]:
    seen: set[int] = set()
    out = []
    for e in errors:
        if e.element not in seen:
            seen.add(e.element)
            out.append(e)
    return out
