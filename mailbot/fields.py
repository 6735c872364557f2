"""Required-field extraction from request text and NIP / NI PPPK / NIK / phone validation (DOMAIN.md s. 2).

Pure functions: text in, values and issues out. Messages people read are in the
templates; here an issue is a code (`missing`, `nip_bad_birth_date`, …).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

import phonenumbers
from stdnum.exceptions import InvalidComponent, ValidationError
from stdnum.id import nik as stdnum_nik

FIELDS = ("name", "id_number", "unit", "position", "phone", "question")

# Label variants, normalized (lowercase, punctuation to spaces). Indonesian first.
_LABELS: dict[str, tuple[str, ...]] = {
    "name": (
        "nama",
        "nama lengkap",
        "nama pemohon",
        "nama pengguna",
        "nama pengguna layanan",
        "nama lengkap dan gelar",
        "nama pegawai",
        "full name",
        "name",
        "applicant name",
    ),
    "id_number": (
        "nip",
        "nik",
        "nip nik",
        "nik nip",
        "nip atau nik",
        "ni pppk",
        "nip ni pppk",
        "nip pppk",
        "nomor induk pegawai",
        "nomor induk kependudukan",
        "no nip",
        "no nik",
        "nomor nip",
        "nomor nik",
        "no ktp",
        "nomor ktp",
        "ktp",
        "employee id",
        "employee number",
        "civil servant id",
        "national id",
        "national id number",
        "id number",
        "identity number",
    ),
    "unit": (
        "unit kerja",
        "instansi",
        "satuan kerja",
        "satker",
        "asal instansi",
        "unit organisasi",
        "instansi unit kerja",
        "unit kerja instansi",
        "nama instansi",
        "opd",
        "perangkat daerah",
        "kantor",
        "work unit",
        "unit",
        "agency",
        "institution",
        "organization",
        "organisation",
        "office",
        "department",
    ),
    "position": (
        "jabatan",
        "pangkat jabatan",
        "jabatan pangkat",
        "nama jabatan",
        "jabatan pekerjaan",
        "position",
        "job title",
        "job position",
        "role",
    ),
    "phone": (
        "no hp",
        "nomor hp",
        "no telp",
        "no tlp",
        "no telepon",
        "nomor telepon",
        "nomor telp",
        "telepon",
        "telp",
        "tlp",
        "hp",
        "handphone",
        "no handphone",
        "nomor handphone",
        "whatsapp",
        "wa",
        "no wa",
        "nomor wa",
        "nomor whatsapp",
        "kontak",
        "nomor kontak",
        "no kontak",
        "phone",
        "phone number",
        "telephone",
        "telephone number",
        "mobile",
        "mobile phone",
        "mobile number",
        "contact number",
        "cell phone",
    ),
    "question": (
        "permasalahan",
        "substansi",
        "substansi permasalahan",
        "pertanyaan",
        "uraian",
        "uraian permasalahan",
        "pokok permasalahan",
        "isi konsultasi",
        "materi konsultasi",
        "konsultasi",
        "hal yang dikonsultasikan",
        "hal yang ditanyakan",
        "deskripsi",
        "permasalahan pertanyaan",
        "pertanyaan permasalahan",
        "question",
        "issue",
        "problem",
        "details",
        "description",
        "consultation",
        "subject matter",
        "topik",
    ),
}
_LABEL_TO_FIELD = {label: name for name, labels in _LABELS.items() for label in labels}

# "label : value", "label = value", "label - value", "label<TAB>value", "| label | value |".
_LINE_RE = re.compile(
    r"^(?P<label>[A-Za-z][A-Za-z0-9 ./()&-]{0,48}?)\s*(?:[:=：]|\s[-–—]\s|\t|\|)\s*(?P<value>.*)$"
)
_BULLET_RE = re.compile(r"^\s*(?:[-*•·▪◦‣–—>]+|\(?\d{1,2}[.)]|\(?[a-hA-H][.)])\s+")
_EMPHASIS_RE = re.compile(r"[*_`]+")
_SIGNATURE_RE = re.compile(
    r"^\s*(?:--\s*|hormat (?:saya|kami),?|salam,?|wassalam.*|regards,?|best regards,?|"
    r"kind regards,?|sincerely,?|terima ?kasih(?: banyak)?[.,!]?|thank you[.,!]?|thanks[.,!]?)\s*$",
    re.IGNORECASE,
)
_GREETING_RE = re.compile(
    r"^\s*(?:yth\.?.*|kepada\b.*|dengan hormat,?|assalamu.*|selamat (?:pagi|siang|sore|malam).*|"
    r"dear\b.*|hello\b.*|hi\b.*|halo\b.*|bapak/ibu.*|di tempat\.?)\s*$",
    re.IGNORECASE,
)
_FIELD_MIN_LENGTH = {"name": 3, "unit": 2, "position": 2, "question": 10}


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
    """Which field a label names, or None. "No. HP / WA" and "NIP/NIK" resolve by their parts."""
    norm = normalize_label(label)
    if not norm:
        return None
    hit = _LABEL_TO_FIELD.get(norm.replace("/", " "))
    if hit:
        return hit
    parts = [p.strip() for p in norm.split("/") if p.strip()]
    found = {_LABEL_TO_FIELD.get(p) for p in parts}
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
    value = re.sub(r"\s*\|\s*$", "", value)
    value = re.sub(r"\t+", " ", value).strip()
    return name, value


def extract_fields(text: str) -> dict[str, str]:
    """Find labelled field values in a request's text.

    Copes with bullets, bold labels, table rows (tab- or pipe-separated),
    values on the next line, and a multi-line question. When no question is
    labelled, the unlabelled prose of the mail is the question.
    """
    lines = text.splitlines()
    found: dict[str, str] = {}
    prose: list[str] = []
    current: str | None = None  # field still collecting lines (question, or empty value)
    collected: list[str] = []

    def finish() -> None:
        nonlocal current, collected
        if current is not None:
            value = "\n".join(collected).strip()
            if value and current not in found:
                found[current] = value
        current, collected = None, []

    for raw in lines:
        if _SIGNATURE_RE.match(raw):
            finish()
            break
        hit = _split_label(raw)
        if hit is not None:
            finish()
            name, value = hit
            if name == "question":
                current, collected = name, [value] if value else []
            elif value:
                found.setdefault(name, value)
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
        elif stripped and not _GREETING_RE.match(stripped):
            prose.append(stripped)
    finish()
    if "question" not in found:
        fallback = "\n".join(prose).strip()
        if len(fallback) >= _FIELD_MIN_LENGTH["question"]:
            found["question"] = fallback
    if "question" in found:
        found["question"] = re.sub(r"\n{3,}", "\n\n", found["question"]).strip()
    return found


def merge_fields(*sources: Mapping[str, str]) -> dict[str, str]:
    """First source wins per field (e.g. text/plain, then the HTML part)."""
    out: dict[str, str] = {}
    for source in sources:
        for key, value in source.items():
            out.setdefault(key, value)
    return out


# --- identity numbers ---------------------------------------------------------


def _digits(value: str) -> str:
    """The identity number inside a value: separators (space . - /) removed, first digit run."""
    squeezed = re.sub(r"(?<=\d)[\s.\-/]+(?=\d)", "", value)
    m = re.search(r"\d+", squeezed)
    return m.group(0) if m else ""


def _valid_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def validate_nip(digits: str, today: date) -> tuple[str, str | None]:
    """(kind, error code) for an 18-digit NIP (PNS) or NI PPPK, or a 9-digit old NIP."""
    if len(digits) == 9:
        return "nip_old", None
    birth = _valid_date(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]))
    if birth is None or not (1930 <= birth.year <= today.year - 15):
        return "nip", "nip_bad_birth_date"
    year = int(digits[8:12])
    if digits[12] == "2":
        # NI PPPK: YYYY of appointment, '2', contract count, gender, sequence.
        kind = "pppk"
        gender = digits[14]
    else:
        kind = "nip"
        month = int(digits[12:14])
        if not 1 <= month <= 12:
            return kind, "nip_bad_appointment"
        gender = digits[14]
    if not birth.year + 15 <= year <= today.year:
        return kind, "nip_bad_appointment"
    if gender not in "12":
        return kind, "nip_bad_gender"
    return kind, None


def nik_birth_date(digits: str, today: date) -> date | None:
    """Birth date in a NIK, day + 40 for women, century chosen so the date is not in the future."""
    day, month, yy = int(digits[6:8]), int(digits[8:10]), int(digits[10:12])
    if day > 40:
        day -= 40
    year = 2000 + yy if 2000 + yy <= today.year else 1900 + yy
    born = _valid_date(year, month, day)
    if born is not None and born > today:
        born = _valid_date(year - 100, month, day)
    return born


def validate_nik(digits: str, today: date) -> str | None:
    """Error code for a 16-digit NIK, or None.

    python-stdnum checks the form; its region table predates the new provinces
    and its century choice prefers the 1900s, so neither decides here (DOMAIN.md s. 2).
    """
    try:
        stdnum_nik.validate(digits)
    except InvalidComponent:
        pass  # region or date: judged below
    except ValidationError:
        return "nik_bad_format"
    if digits[0:2] == "00" or digits[12:16] == "0000":
        return "nik_bad_format"
    if nik_birth_date(digits, today) is None:
        return "nik_bad_birth_date"
    return None


def validate_id_number(value: str, today: date) -> tuple[str, str | None, str | None]:
    """(normalized digits, kind, error code) for a NIP/NIK value."""
    digits = _digits(value)
    if len(digits) == 18 or len(digits) == 9:
        kind, error = validate_nip(digits, today)
        return digits, kind, error
    if len(digits) == 16:
        return digits, "nik", validate_nik(digits, today)
    return digits, None, "id_bad_length"


def validate_phone(value: str) -> tuple[str, str | None]:
    """(E.164, error code). A bare leading 62 is the country code (DOMAIN.md s. 2)."""
    candidate = re.sub(r"\(\s*(?:wa|whatsapp|hp|kantor|office)\s*\)", "", value, flags=re.I).strip()
    candidate = re.split(r"\s*(?:/|,|;| atau | or )\s*", candidate)[0]
    compact = re.sub(r"[\s.\-()]", "", candidate)
    if compact.startswith("62") and not compact.startswith("+"):
        candidate = "+" + compact
    try:
        number = phonenumbers.parse(candidate, "ID")
    except phonenumbers.NumberParseException:
        return "", "phone_invalid"
    if not phonenumbers.is_valid_number(number):
        return "", "phone_invalid"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


def validate_fields(found: Mapping[str, str], required: Iterable[str], today: date) -> Validation:
    """Validate extracted values; every required field missing or invalid becomes an issue."""
    values: dict[str, str] = {}
    issues: list[FieldIssue] = []
    warnings: list[FieldIssue] = []
    id_kind: str | None = None
    for name in FIELDS:
        raw = (found.get(name) or "").strip()
        error: str | None = None
        if not raw:
            error = "missing"
        elif name == "id_number":
            digits, id_kind, error = validate_id_number(raw, today)
            if error is None:
                values[name] = digits
                if id_kind == "nip_old":
                    warnings.append(FieldIssue(name, "nip_old", digits))
        elif name == "phone":
            e164, error = validate_phone(raw)
            if error is None:
                values[name] = e164
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


@dataclass
class _HtmlText:
    parts: list[str] = field(default_factory=list)


def html_to_text(html: str) -> str:
    """Readable text from an HTML body: table cells tab-separated, blocks on their own lines."""
    from html.parser import HTMLParser

    out = _HtmlText()
    block = {
        "p",
        "div",
        "br",
        "tr",
        "li",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "table",
        "ul",
        "ol",
        "blockquote",
        "pre",
        "hr",
        "section",
        "article",
        "header",
        "footer",
        "dd",
        "dt",
    }
    skip = {"script", "style", "head", "title"}

    class _Parser(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.skipping = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag in skip:
                self.skipping += 1
            elif tag in block:
                out.parts.append("\n")
            elif tag in ("td", "th"):
                out.parts.append("\t")

        def handle_endtag(self, tag: str) -> None:
            if tag in skip:
                self.skipping = max(0, self.skipping - 1)
            elif tag in block:
                out.parts.append("\n")

        def handle_data(self, data: str) -> None:
            if not self.skipping:
                out.parts.append(re.sub(r"\s+", " ", data))

    parser = _Parser()
    parser.feed(html)
    parser.close()
    text = "".join(out.parts)
    lines = []
    for raw_line in text.split("\n"):
        line = re.sub(r"[ ]+", " ", raw_line).strip(" ")
        line = re.sub(r"^\t+", "", line)
        lines.append(re.sub(r"\t\s*\t+", "\t", line).rstrip("\t "))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
