"""Required-field extraction from request text, and the validation of every field (DOMAIN.md s. 2).

Pure functions: text in, values and issues out. Messages people read are in the
templates; here an issue is a code (`missing`, `nip_bad_birth_date`, …). The rules of one
kind of value live beside: identity (NIP / NI PPPK / NIK), phone, complaint_fields (SOP 003);
the label variants in field_labels.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from mailbot.core.complaint_fields import incident_time_in, tells_when, validate_evidence
from mailbot.core.field_labels import LABEL_TO_FIELD
from mailbot.core.identity import NO_NUMBER, other_number, validate_id_numbers
from mailbot.core.phone import split_phone

FIELDS = ("name", "id_number", "unit", "position", "phone", "question")
# A complaint (SOP 003 step 1): the type of complaint, the date and time of the incident, and
# evidence (a photo, screenshot or video attached, or described). A profile requires them in
# `required_fields`; validated only when required.
COMPLAINT_FIELDS = ("complaint_type", "incident_time", "evidence")
ALL_FIELDS = FIELDS + COMPLAINT_FIELDS

# "label : value", "label = value", "label - value", "label<TAB>value", "| label | value |".
# Linear (STYLE.md 10): the label never ends in a space, so only one label length reaches a run
# of spaces, and every whitespace run is taken possessively. Same matches as the plain
# `label\s*(?:[:=：]|\s[-–—]\s|\t|\|)\s*value` (tests/design/test_linear_time.py compares the two).
_LINE_RE = re.compile(
    r"^(?P<label>[A-Za-z](?:[A-Za-z0-9 ./()&-]{0,47}?[A-Za-z0-9./()&-])??)"
    r"(?:\s*+[:=：|]|\s++[-–—]\s|[^\S\t]*+\t)\s*+(?P<value>.*)$"
)
_BULLET_RE = re.compile(r"^\s*(?:[-*•·▪◦‣–—>]+|\(?\d{1,2}[.)]|\(?[a-hA-H][.)])\s+")
_EMPHASIS_RE = re.compile(r"[*_`]+")
_SIGNATURE_RE = re.compile(
    r"^\s*+(?:--|hormat (?:saya|kami),?|salam,?|wassalam.*|regards,?|best regards,?|"
    r"kind regards,?|sincerely,?|terima ?kasih(?: banyak)?[.,!]?|thank you[.,!]?|thanks[.,!]?)\s*+$",
    re.IGNORECASE,
)
# A mail client's own line under the text: "Dikirim dari Yahoo Mail di Android", "Sent from my
# iPhone", "Dapatkan Outlook untuk Android".
_MOBILE_SIGNATURE_RE = re.compile(
    r"\s*+(?:sent from (?:my|yahoo|mail|outlook)|get outlook for|dapatkan outlook untuk|"
    r"dikirim dari (?:yahoo|iphone|ipad|android|outlook|perangkat|ponsel|samsung|xiaomi|oppo|vivo|huawei|"
    r"gmail|mail|surel))\b",
    re.IGNORECASE,
)
_GREETING_RE = re.compile(
    r"^\s*(?:yth\.?.*|kepada\b.*|dengan hormat,?|assalamu.*|selamat (?:pagi|siang|sore|malam).*|"
    r"dear\b.*|hello\b.*|hi\b.*|halo\b.*|bapak/ibu.*|di tempat\.?)\s*$",
    re.IGNORECASE,
)
# A greeting is a short line: "Selamat siang, saya Rina dari Biro Perencanaan, ingin bertanya …"
# is the question.
_MAX_GREETING_CHARS = 80
# A number under the closing, labelled without a colon: "NIP. 19860926 201505 2 001", "HP 0812…".
_SIGNED_NUMBER = re.compile(
    r"\s*+(?P<label>nip|nik|ni pppk|hp|no\.? ?hp|telp|telepon|wa)\b\.?+\s*+:?+\s*+"
    r"(?P<v>\+?\d(?:[ .()-]{0,2}+\d){6,30}+)",
    re.IGNORECASE,
)
_FIELD_MIN_LENGTH = {"name": 3, "unit": 2, "position": 2, "question": 10, "complaint_type": 3}


@dataclass(frozen=True)
class FieldIssue:
    """A required field that is missing or fails validation; `code` selects the explanation."""

    field: str
    code: str
    value: str = ""


@dataclass(frozen=True)
class Validation:
    """Normalized values of the fields that passed, the issues of those that did not."""

    values: dict[str, str]
    issues: tuple[FieldIssue, ...]
    warnings: tuple[FieldIssue, ...] = ()
    id_kind: str | None = None

    @property
    def complete(self) -> bool:
        return not self.issues


def normalize_label(label: str) -> str:
    label = _EMPHASIS_RE.sub("", label).lower()
    label = re.sub(r"[^a-z0-9/ ]+", " ", label)
    label = re.sub(r"\s*/\s*", "/", label)
    return re.sub(r"\s+", " ", label).strip()


def label_field(label: str) -> str | None:
    """Which field a label names, or None. "No. HP / WA" and "NIP/NIK" resolve by their parts;
    a note in parentheses ("Nama Lengkap (beserta gelar)", "Nomor Telepon/HP (WA)") is read
    without its note when the whole does not name a field."""
    found = _label_field(label)
    if found is None and "(" in label:
        found = _label_field(_PAREN_NOTE.sub(" ", label))
    if found is None:
        # "Nama saya", "NIP saya", "Pertanyaan saya": a label said in the first person.
        norm = normalize_label(label)
        if norm.endswith(" saya"):
            found = _label_field(norm[: -len(" saya")])
    return found


_PAREN_NOTE = re.compile(r"\([^()]*+\)")


def _label_field(label: str) -> str | None:
    norm = normalize_label(label)
    if not norm:
        return None
    hit = LABEL_TO_FIELD.get(norm.replace("/", " "))
    if hit:
        return hit
    parts = [p.strip() for p in norm.split("/") if p.strip()]
    found = {LABEL_TO_FIELD.get(p) for p in parts}
    found.discard(None)
    if len(found) == 1:
        return found.pop()
    return None


def _clean_line(line: str) -> str:
    line = line.replace("\u00a0", " ").replace("\u200b", "").rstrip()
    line = _BULLET_RE.sub("", line)
    line = line.strip().strip("|").strip()
    return line


def _split_label(line: str) -> tuple[str, str] | None:
    """("name", value) when the line starts with a known label."""
    cleaned = _clean_line(line)
    cleaned = re.sub(r"^\*\*(.+?)\*\*", r"\1", cleaned)
    m = _LINE_RE.match(_EMPHASIS_RE.sub("", cleaned))
    if not m:
        # A bare label on its own line ("Pertanyaan"), value on the lines below.
        name = label_field(cleaned) if len(cleaned) <= 40 else None
        return (name, "") if name else None
    name = label_field(m.group("label"))
    if name is None:
        return None
    value = m.group("value").strip().strip("|").strip()
    value = value.rstrip("|").rstrip()  # a table row's closing bar (no regex search over spaces)
    value = re.sub(r"\t+", " ", value).strip()
    return name, value


# Where another labelled field may begin on the same line: after two spaces, a tab, or a comma,
# semicolon or bar ("NIP: 1986…  Unit Kerja: Dinas PMD, No. HP: 0812…"). Only a label that names
# a field splits the line; "Biro Perencanaan, Kementerian Desa" stays one value.
# The pattern begins at the label's first letter and looks back for the separator (fixed widths),
# so a long run of spaces or commas is passed over once: linear time on any line.
_INLINE_LABEL = re.compile(
    r"(?:(?<=[ \t][ \t])|(?<=\t)|(?<=[,;|])|(?<=[,;|][ \t]))"
    r"(?P<label>[A-Za-z][A-Za-z0-9 ./()&-]{0,39}?)[ \t]*+:"
)


def _inline_fields(name: str, value: str) -> list[tuple[str, str]]:
    """A field's value, and the further labelled fields written after it on the same line."""
    out: list[tuple[str, str]] = []
    start = 0
    for m in _INLINE_LABEL.finditer(value):
        if m.start() < start:
            continue
        other = label_field(m.group("label"))
        if other is None or other == "question":
            continue
        out.append((name, value[start : m.start()].strip().rstrip(",;|").strip()))
        name, start = other, m.end()
    out.append((name, value[start:].strip()))
    return [(n, v) for n, v in out if v]


def extract_fields(text: str, *, prose_question: bool = True) -> dict[str, str]:
    """Find labelled field values in a request's text.

    Copes with bullets, bold labels, table rows (tab- or pipe-separated),
    values on the next line, and a multi-line question. When no question is
    labelled, the unlabelled prose of the mail is the question (unless `prose_question` is
    False: the labelled fields only).
    """
    lines = text.splitlines()
    found: dict[str, str] = {}
    prose: list[str] = []
    current: str | None = None  # field still collecting lines (question, or empty value)
    collected: list[str] = []

    def keep(name: str, value: str) -> None:
        if name == "id_number":
            if NO_NUMBER.match(value):
                return  # "NIP : -" before "NIK : 3516…": the line that has a number counts
            if name in found and "id_number_other" not in found and re.search(r"\d", value):
                found["id_number_other"] = value  # "NIP: …" and "NIK: …" both given
                return
        found.setdefault(name, value)

    def finish() -> None:
        nonlocal current, collected
        if current is not None:
            value = "\n".join(collected).strip()
            if value:
                keep(current, value)
        current, collected = None, []

    signed = False  # below the closing ("Hormat saya,"): only labelled fields (the NIP under the name)
    for raw in lines:
        if not raw or raw.isspace():  # most lines of a padded mail: no rule reads a blank line
            if current == "question":
                collected.append("")
            continue
        if not signed and (_SIGNATURE_RE.match(raw) or _MOBILE_SIGNATURE_RE.match(raw)):
            finish()
            # "Salam," above everything is a greeting; below the text, the closing.
            signed = bool(found or prose)
            continue
        hit = _split_label(raw)
        if signed:
            if hit is not None and hit[1] and hit[0] != "question":
                for each, its_value in _inline_fields(*hit):
                    keep(each, its_value)
            elif (number := _SIGNED_NUMBER.match(raw[: _MAX_GREETING_CHARS * 2])) is not None:
                label = number.group("label").casefold()
                keep("id_number" if label.startswith(("nip", "nik", "ni ")) else "phone", number.group("v"))
            continue
        if hit is not None:
            finish()
            name, value = hit
            if name == "question":
                current, collected = name, [value] if value else []
            elif value:
                for each, its_value in _inline_fields(name, value):
                    keep(each, its_value)
            else:
                current, collected = name, []
            continue
        stripped = raw.strip()
        if current == "question":
            collected.append(raw.rstrip())
        elif current is not None:
            if stripped:
                collected.append(stripped)
                finish()
        elif stripped and not (len(stripped) <= _MAX_GREETING_CHARS and _GREETING_RE.match(stripped)):
            prose.append(stripped)
    finish()
    if "question" not in found and prose_question:
        fallback = "\n".join(prose).strip()
        if len(fallback) >= _FIELD_MIN_LENGTH["question"]:
            found["question"] = fallback
    if "question" in found:
        question = strip_closing(re.sub(r"\n{3,}", "\n\n", found["question"]).strip())
        if question:
            found["question"] = question
        else:
            del found["question"]
    return found


# Closing courtesy of a request: not part of the question (substansi permasalahan). Read on one
# stripped line of at most _CLOSING_LINE characters (a bound before matching).
_CLOSING_LINE = 240
_CLOSING = re.compile(
    r"^(?:atas perhatian\b|demikian\b|hormat (?:saya|kami)\b|salam\b|wassalam|"
    r"(?:terima ?kasih|thank you|thanks)(?: banyak| sebelumnya| atas perhatian\w*)?"
    r"(?: (?:bapak|ibu|bapak/ibu)\w*)?\s*+[.!,]*+$|"
    r"(?:best |kind |with )?regards\b|sincerely\b)",
    re.IGNORECASE,
)


def _signature_like(line: str) -> bool:
    """A short line after a closing: a name, a title, an office, a NIP; never a question."""
    return len(line) <= 80 and "?" not in line and len(line.split()) <= 10


def strip_closing(question: str) -> str:
    """The question without its closing courtesy ("Atas perhatian …", "Demikian …", "Hormat
    saya,", "Terima kasih." as the last paragraph) and the name and signature after it.

    Only at the end: the closing is cut when every line after it is blank, another closing or
    short like a signature. "Terima kasih" in the middle of the question stays."""
    lines = question.split("\n")
    cut = len(lines)
    for i in range(len(lines) - 1, 0, -1):
        line = lines[i].strip()
        if not line:
            continue
        if len(line) <= _CLOSING_LINE and "?" not in line and _CLOSING.match(line):
            cut = i
        elif not _signature_like(line):
            break
    if cut == len(lines):
        return question
    return "\n".join(lines[:cut]).strip()


def merge_fields(*sources: Mapping[str, str]) -> dict[str, str]:
    """First source wins per field (e.g. text/plain, then the HTML part)."""
    out: dict[str, str] = {}
    for source in sources:
        for key, value in source.items():
            out.setdefault(key, value)
    return out


def validate_fields(found: Mapping[str, str], required: Iterable[str], today: date) -> Validation:
    """Validate extracted values; every required field missing or invalid becomes an issue."""
    values: dict[str, str] = {}
    issues: list[FieldIssue] = []
    warnings: list[FieldIssue] = []
    id_kind: str | None = None
    required = list(required)
    complaint = [f for f in COMPLAINT_FIELDS if f in required]
    for name in (*FIELDS[:-1], *complaint, FIELDS[-1]):  # the question last, as forms have it
        raw = (found.get(name) or "").strip()
        error: str | None = None
        if name == "incident_time" and not raw:
            # "Sejak Senin 16-11-2026 pukul 08.00 …": the date and time told in the description.
            raw = incident_time_in(str(found.get("question") or ""))
        if name == "evidence":
            value, error = validate_evidence(raw, str(found.get("evidence_files") or ""))
            if error is None:
                values[name] = value
        elif not raw:
            error = "missing"
        elif name == "incident_time":
            if not tells_when(raw):
                error = "incident_time_unclear"
            else:
                values[name] = re.sub(r"\s+", " ", raw)[:200]
        elif name == "id_number":
            digits, id_kind, error, others = validate_id_numbers(raw, today)
            if error is None:
                values[name] = digits
                if id_kind == "nip_old":
                    warnings.append(FieldIssue(name, "nip_old", digits))
                other = ", ".join([*others, *other_number(found, today)])
                if other:
                    values["id_number_other"] = other  # the staff see it; the id number decides
        elif name == "phone":
            e164, error, note = split_phone(raw)
            if error is None:
                values[name] = e164
                if note:
                    values["phone_note"] = note[:200]
        else:
            text = re.sub(r"[ \t]+", " ", raw) if name != "question" else raw
            if len(text) < _FIELD_MIN_LENGTH[name] or not re.search(r"[^\W\d_]", text):
                error = "too_short"
            elif name == "name" and re.search(r"\d{3,}", text):
                error = "name_has_digits"
            else:
                values[name] = text[:4000] if name == "question" else text[:200]
        if error is not None and name in required:
            issues.append(FieldIssue(name, error, raw[:80]))
    return Validation(values, tuple(issues), tuple(warnings), id_kind)
