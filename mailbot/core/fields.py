"""Required-field extraction from request text and NIP / NI PPPK / NIK / phone validation (DOMAIN.md s. 2).

Pure functions: text in, values and issues out. Messages people read are in the
templates; here an issue is a code (`missing`, `nip_bad_birth_date`, …).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

import phonenumbers
from stdnum.exceptions import InvalidComponent, ValidationError
from stdnum.id import nik as stdnum_nik

FIELDS = ("name", "id_number", "unit", "position", "phone", "question")
# A complaint (SOP 003 step 1): the type of complaint, the date and time of the incident, and
# evidence (a photo, screenshot or video attached, or described). A profile requires them in
# `required_fields`; validated only when required.
COMPLAINT_FIELDS = ("complaint_type", "incident_time", "evidence")
ALL_FIELDS = FIELDS + COMPLAINT_FIELDS

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
        "deskripsi keluhan",
        "uraian keluhan",
        "isi keluhan",
        "keluhan",
        "deskripsi pengaduan",
        "uraian pengaduan",
        "isi pengaduan",
        "pengaduan",
        "complaint",
        "complaint description",
        "description of the complaint",
    ),
    "complaint_type": (
        "jenis keluhan",
        "jenis pengaduan",
        "jenis masalah",
        "jenis kendala",
        "jenis gangguan",
        "kategori keluhan",
        "kategori pengaduan",
        "kategori masalah",
        "tipe keluhan",
        "kategori",
        "complaint type",
        "type of complaint",
        "issue type",
        "category",
    ),
    "incident_time": (
        "waktu kejadian",
        "tanggal kejadian",
        "tanggal dan waktu kejadian",
        "tanggal waktu kejadian",
        "tanggal dan jam kejadian",
        "tanggal jam kejadian",
        "hari tanggal kejadian",
        "tgl kejadian",
        "jam kejadian",
        "waktu terjadi",
        "tanggal terjadi",
        "waktu kejadian keluhan",
        "date of incident",
        "date of the incident",
        "incident date",
        "incident time",
        "time of incident",
        "time of the incident",
        "date and time of incident",
        "date and time of the incident",
        "date and time",
    ),
    "evidence": (
        "bukti",
        "bukti pendukung",
        "bukti dukung",
        "bukti kejadian",
        "bukti keluhan",
        "bukti foto",
        "bukti foto screenshot video",
        "bukti foto tangkapan layar video",
        "foto screenshot video",
        "lampiran bukti",
        "data dukung",
        "lampiran",
        "screenshot",
        "tangkapan layar",
        "evidence",
        "proof",
        "attachment",
    ),
}
_LABEL_TO_FIELD = {label: name for name, labels in _LABELS.items() for label in labels}

# "label : value", "label = value", "label - value", "label<TAB>value", "| label | value |".
# Linear (STYLE.md 10): the label never ends in a space, so only one label length reaches a run
# of spaces, and every whitespace run is taken possessively. Same matches as the plain
# `label\s*(?:[:=：]|\s[-–—]\s|\t|\|)\s*value` (tests/test_linear_time.py compares the two).
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
_GREETING_RE = re.compile(
    r"^\s*(?:yth\.?.*|kepada\b.*|dengan hormat,?|assalamu.*|selamat (?:pagi|siang|sore|malam).*|"
    r"dear\b.*|hello\b.*|hi\b.*|halo\b.*|bapak/ibu.*|di tempat\.?)\s*$",
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
    return found


_PAREN_NOTE = re.compile(r"\([^()]*+\)")


def _label_field(label: str) -> str | None:
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
    value = value.rstrip("|").rstrip()  # a table row's closing bar (no regex search over spaces)
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

    def keep(name: str, value: str) -> None:
        if name == "id_number":
            if _NO_NUMBER.match(value):
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

    for raw in lines:
        if not raw or raw.isspace():  # most lines of a padded mail: no rule reads a blank line
            if current == "question":
                collected.append("")
            continue
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
                keep(name, value)
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
        question = strip_closing(re.sub(r"\n{3,}", "\n\n", found["question"]).strip())
        if question:
            found["question"] = question
        else:
            del found["question"]
    return found


# "NIP : -", "NIP: tidak ada", "bukan PNS", "belum ada": no number given on this line.
_NO_NUMBER = re.compile(
    r"^[\s\-–—./]*+(?:(?:tidak|belum|bukan)\b[^\d]{0,40}|n\.?/?a\.?|none|nihil|kosong)?[\s\-–—.]*+$",
    re.IGNORECASE | re.DOTALL,
)

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


# --- identity numbers ---------------------------------------------------------


_SEPARATED_DIGITS = re.compile(r"(?<=\d)[\s.\-/]+(?=\d)")


def _digits(value: str) -> str:
    """The identity number inside a value: separators (space . - /) removed, first digit run."""
    squeezed = _SEPARATED_DIGITS.sub("", value)
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
    # Numbers are issued in December for an appointment (TMT) in January: up to January of next
    # year is accepted (an NI PPPK carries the year only).
    if not birth.year + 15 <= year <= today.year + 1:
        return kind, "nip_bad_appointment"
    if year == today.year + 1 and kind == "nip" and int(digits[12:14]) != 1:
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


def _validate_one(digits: str, today: date) -> tuple[str, str | None, str | None]:
    if len(digits) == 18 or len(digits) == 9:
        kind, error = validate_nip(digits, today)
        return digits, kind, error
    if len(digits) == 16:
        return digits, "nik", validate_nik(digits, today)
    return digits, None, "id_bad_length"


_ID_VALUE_MAX = 300  # a bound before matching: two numbers and their separators fit many times


def _split_numbers(value: str) -> list[str] | None:
    """Two numbers written as one run ("198609262015051001 / 3273012609860001",
    "19860926 201505 1 001 - 3273012609860001"): the digit groups cut into an 18- or 16-digit
    number each, or None when they cannot be."""
    groups = re.findall(r"\d+", value[:_ID_VALUE_MAX])
    best: dict[int, list[str] | None] = {len(groups): []}
    for i in range(len(groups) - 1, -1, -1):  # fewest numbers from group i to the end
        best[i] = None
        run = ""
        for j in range(i, len(groups)):
            run += groups[j]
            if len(run) > 18:
                break
            rest = best[j + 1]
            fewer = best[i] is None or (rest is not None and len(rest) + 1 < len(best[i] or []))
            if len(run) in (16, 18) and rest is not None and fewer:
                best[i] = [run, *rest]
    numbers = best[0]
    return numbers if numbers and len(numbers) > 1 else None


def validate_id_numbers(value: str, today: date) -> tuple[str, str | None, str | None, list[str]]:
    """(digits, kind, error, other numbers) for a NIP/NIK value that may hold two numbers.

    With two, the valid NIP or NI PPPK is the id number (the roster knows it), else the valid
    NIK; the other is kept for the staff to see."""
    digits = _digits(value)
    if len(digits) in (9, 16, 18):
        # "NIP: 1986…, NIK 3273…": a further number after words is kept too.
        squeezed = _SEPARATED_DIGITS.sub("", value[:_ID_VALUE_MAX])
        others = [run for run in re.findall(r"\d+", squeezed)[1:] if len(run) in (16, 18)]
        return (*_validate_one(digits, today), others)
    numbers = _split_numbers(value)
    if not numbers:
        return (*_validate_one(digits, today), [])
    checked = [_validate_one(n, today) for n in numbers]
    ranked = sorted(checked, key=lambda c: (c[2] is not None, c[1] == "nik"))
    chosen = ranked[0]
    return chosen[0], chosen[1], chosen[2], [c[0] for c in checked if c is not chosen]


def validate_id_number(value: str, today: date) -> tuple[str, str | None, str | None]:
    """(normalized digits, kind, error code) for a NIP/NIK value."""
    digits, kind, error, _ = validate_id_numbers(value, today)
    return digits, kind, error


_PHONE_VALUE_MAX = 200  # a bound before reading: a phone field is one line
_PHONE_CHARS = frozenset("0123456789 ().-+\t")
_NOTE_EDGES = " \t,;:/-–—|"


def _phone_run(value: str) -> tuple[int, int] | None:
    """Where the first number is: from a digit, '+' or '(' before a digit, over digits, spaces,
    dots, dashes and parentheses, ending at its last digit."""
    m = re.search(r"\+?\(?\d", value)
    if m is None:
        return None
    end = m.start()
    last_digit = end
    while end < len(value) and value[end] in _PHONE_CHARS and (value[end] != "+" or end == m.start()):
        if value[end].isdigit():
            last_digit = end + 1
        end += 1
    stop = last_digit
    if value.count("(", m.start(), stop) > value.count(")", m.start(), stop):
        close = value.find(")", stop, stop + 2)  # "(021) 555": the run may end right before ")"
        stop = close + 1 if close != -1 else stop
    return m.start(), stop


def split_phone(value: str) -> tuple[str, str | None, str]:
    """(E.164, error code, note): the first number of the field and what else was written
    ("psw. 123", "a.n. Budi", "WhatsApp only", "Kantor: 021-1234567"), for the staff to read.
    A bare leading 62 is the country code (DOMAIN.md s. 2)."""
    value = value[:_PHONE_VALUE_MAX].strip()
    run = _phone_run(value)
    if run is None:
        return "", "phone_invalid", ""
    candidate = value[run[0] : run[1]].strip()
    note = (value[: run[0]].strip(_NOTE_EDGES) + " " + value[run[1] :].strip(_NOTE_EDGES)).strip()
    while note.startswith("(") and note.endswith(")") and note.count("(") == 1:
        note = note[1:-1].strip(_NOTE_EDGES)
    compact = re.sub(r"[\s.\-()]", "", candidate)
    if compact.startswith("62"):
        candidate = "+" + compact
    try:
        number = phonenumbers.parse(candidate, "ID")
    except phonenumbers.NumberParseException:
        return "", "phone_invalid", ""
    if not phonenumbers.is_valid_number(number):
        return "", "phone_invalid", ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None, note


def validate_phone(value: str) -> tuple[str, str | None]:
    """(E.164, error code) of the first number in a phone field."""
    e164, error, _ = split_phone(value)
    return e164, error


def _other_number(found: Mapping[str, str], today: date) -> list[str]:
    """A second identity number given on a line of its own ("NIP: …" then "NIK: …")."""
    raw = (found.get("id_number_other") or "").strip()
    if not raw:
        return []
    digits, _, error = _validate_one(_digits(raw), today)
    return [digits] if error is None else [raw[:40]]


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
            value, error = _evidence(raw, str(found.get("evidence_files") or ""))
            if error is None:
                values[name] = value
        elif not raw:
            error = "missing"
        elif name == "incident_time":
            if _WHEN.search(raw[:_WHEN_MAX]) is None:
                error = "incident_time_unclear"
            else:
                values[name] = re.sub(r"\s+", " ", raw)[:200]
        elif name == "id_number":
            digits, id_kind, error, others = validate_id_numbers(raw, today)
            if error is None:
                values[name] = digits
                if id_kind == "nip_old":
                    warnings.append(FieldIssue(name, "nip_old", digits))
                other = ", ".join([*others, *_other_number(found, today)])
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


# --- complaints (SOP 003) -------------------------------------------------------------------

_WHEN_MAX = 4000  # a bound before matching: the first part of a description holds the incident
_MONTHS = (
    r"jan(?:uari|uary)?|feb(?:ruari|ruary)?|mar(?:et|ch)?|apr(?:il)?|mei|may|jun[ie]?|jul[iy]?|"
    r"agu(?:stus)?|agt|aug(?:ust)?|sep(?:t(?:ember)?)?|okt(?:ober)?|oct(?:ober)?|nov(?:ember)?|"
    r"des(?:ember)?|dec(?:ember)?"
)
_DATE = re.compile(
    rf"\b(?:\d{{4}}-\d{{1,2}}-\d{{1,2}}|\d{{1,2}}[/.-]\d{{1,2}}[/.-](?:\d{{4}}|\d{{2}})"
    rf"|\d{{1,2}} ?(?:{_MONTHS})\b\.?(?: ?\d{{4}})?)",
    re.IGNORECASE,
)
_TIME = re.compile(
    r"\b(?:(?:pukul|pkl\.?|jam|at|around|sekitar) ?\d{1,2}(?:[.:]\d{2})?|\d{1,2}[.:]\d{2})"
    r"(?: ?(?:WIB|WITA|WIT|am|pm))?\b",
    re.IGNORECASE,
)
_DAY_WORDS = (
    r"senin|selasa|rabu|kamis|jum'?at|sabtu|minggu|kemarin|hari ini|tadi pagi|tadi siang|tadi sore|"
    r"tadi malam|pagi ini|siang ini|monday|tuesday|wednesday|thursday|friday|saturday|sunday|today|"
    r"yesterday|this morning"
)
# What a date or time of an incident has: a number, or a day ("Senin", "kemarin", "tadi pagi").
_WHEN = re.compile(rf"\d|\b(?:{_DAY_WORDS})\b", re.IGNORECASE)
# "Terlampir", "lihat lampiran", "screenshot terlampir", "(see attachment)", "menyusul": evidence
# said to be attached (or to come), not evidence itself. Read on a value of at most 120 characters.
_POINTER = re.compile(
    r"^[\W_]*+(?:(?:bukti|foto|gambar|screenshot|screen shot|tangkapan layar|video|rekaman|file|"
    r"berkas|dokumen|evidence|photos?|images?|the)\W*+)*+"
    r"(?:(?:ter|di)?lampir(?:an|kan)?|(?:lihat|cek|periksa|ada (?:di|pada)|sesuai|dalam|pada) lampiran|"
    r"(?:see |in )?(?:the )?attach(?:ed|ments?)|enclosed|akan (?:di)?kirim(?:kan)?|menyusul|"
    r"(?:dikirim )?(?:kemudian|nanti)|to follow)?+[\W_]*+"
    r"(?:(?:di|pada|dalam|ke|in|this|email|e-mail|surel|ini|berikut|mail|kemudian|nanti|menyusul)\b[\W_]*+)*+$",
    re.IGNORECASE,
)
_POINTER_MAX = 120


def incident_time_in(text: str) -> str:
    """The date and time of an incident told in a description ("Sejak Senin 16-11-2026 pukul
    08.00 …"): the first date and the first time, or "" when there is neither."""
    text = text[:_WHEN_MAX]
    date_match = _DATE.search(text)
    time_match = _TIME.search(text)
    parts = [m.group(0).strip() for m in (date_match, time_match) if m is not None]
    if date_match is not None and time_match is not None and time_match.start() < date_match.end():
        parts.reverse()  # "08.00, 16-11-2026": told the other way round
    return " ".join(dict.fromkeys(parts))


def is_pointer(value: str) -> bool:
    """Does the evidence field only say that the evidence is attached (or will be sent)?"""
    value = value.strip()
    return len(value) <= _POINTER_MAX and _POINTER.match(value) is not None


def _evidence(text: str, files: str) -> tuple[str, str | None]:
    """(value, error code) of a complaint's evidence: files attached count; so does a description
    ("Bukti: pesan galat 502 muncul setelah login"); "terlampir" with nothing attached does not."""
    text = re.sub(r"\s+", " ", text).strip()
    if _NO_NUMBER.match(text[:_POINTER_MAX]) and len(text) <= _POINTER_MAX:
        text = ""  # "-", "tidak ada", "belum ada", "nihil": nothing given
    described = bool(text) and not is_pointer(text) and re.search(r"[^\W\d_]", text) is not None
    if files:
        return (f"lampiran: {files}" + (f"; {text}" if described else ""))[:400], None
    if described:
        return text[:400], None
    return "", "evidence_not_attached" if text else "missing"


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
