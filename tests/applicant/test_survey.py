"""Survey parsing on what people send, and IKM arithmetic against hand-computed cases."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from mailbot.core.ikm import compute_ikm, grade, ikm_from_value, tally_surveys
from mailbot.core.survey import ELEMENTS, parse_survey

ALL4 = dict.fromkeys(range(1, 10), 4)


@pytest.mark.parametrize(
    ("text", "scores"),
    [
        ("1. 4\n2. 4\n3. 3\n4. 4\n5. 4\n6. 4\n7. 4\n8. 3\n9. 4", {**ALL4, 3: 3, 8: 3}),
        (
            "U1: Sangat sesuai\nU2: Mudah\nU3: Kurang cepat\nU4: Gratis\nU5: Sesuai\nU6: Sangat kompeten\n"
            "U7: Sopan dan ramah\nU8: Dikelola dengan baik\nU9: Baik",
            {1: 4, 2: 3, 3: 2, 4: 4, 5: 3, 6: 4, 7: 3, 8: 4, 9: 3},
        ),
        ("4 4 3 4 4 4 4 3 4", {**ALL4, 3: 3, 8: 3}),
        ("443444434", {**ALL4, 3: 3, 8: 3}),
        ("4,4,4,4,4,4,4,4,1", {**ALL4, 9: 1}),
        (
            "1) Sangat sesuai\n2) Sangat mudah\n3) Sangat cepat\n4) Gratis\n5) Sangat sesuai\n"
            "6) Sangat kompeten\n7) Sangat sopan dan ramah\n8) Dikelola dengan baik\n9) Sangat baik",
            ALL4,
        ),
        ("Unsur 1 - 3\nUnsur 2 - 3", {1: 3, 2: 3}),
        ("U1 = 2", {1: 2}),
        ("U4: Cukup mahal", {4: 2}),
        ("1. Very appropriate\n9. Good", {1: 4, 9: 3}),
        # One score for all, and a row behind a label.
        ("semua 4", ALL4),
        ("Semua unsur: 4", ALL4),
        ("semua nilai d", ALL4),
        ("Nilai: 4 4 3 4 4 4 4 3 4", {**ALL4, 3: 3, 8: 3}),
        ("Skor survei = 4,4,4,4,4,4,4,4,1", {**ALL4, 9: 1}),
    ],
)
def test_accepted_forms(text: str, scores: dict[int, int]) -> None:
    reply = parse_survey(text)
    assert reply.scores == scores and not reply.errors


def test_answers_typed_inside_the_quoted_form() -> None:
    text = (
        "Terima kasih, berikut penilaian saya.\n\n"
        "Pada Sen, 16 Nov 2026 Layanan Konsultasi menulis:\n"
        "> Berikut jawaban atas pengajuan Anda:\n"
        "> 1. ABK disusun per jabatan.\n"  # a numbered list inside the quoted answer: not a survey answer
        "> 2. Gunakan 1.250 jam efektif.\n"
        "> U1. Persyaratan: 4\n"
        "> U2. Sistem, mekanisme, dan prosedur: Mudah\n"
        "> U3. Waktu penyelesaian: ___\n"
        "> (1 Tidak cepat, 2 Kurang cepat, 3 Cepat, 4 Sangat cepat)\n"
        "> U4. Biaya/tarif: Gratis\n"
    )
    reply = parse_survey(text)
    assert reply.scores == {1: 4, 2: 3, 4: 4}
    assert not reply.errors
    assert reply.missing() == [3, 5, 6, 7, 8, 9]


def test_html_table() -> None:
    html = (
        "<table>"
        + "".join(
            f"<tr><td>U{i}</td><td>Unsur {i}</td><td>{3 if i % 2 else 4}</td></tr>" for i in range(1, 10)
        )
        + "</table><p>Komentar: pelayanan cepat</p>"
    )
    reply = parse_survey("", html)
    assert reply.scores == {i: 3 if i % 2 else 4 for i in range(1, 10)}
    assert reply.comment == "pelayanan cepat"


def test_partial_answers_and_missing_elements() -> None:
    reply = parse_survey("U1: 4\nU2: 3\nKomentar: bagus")
    assert reply.scores == {1: 4, 2: 3} and reply.comment == "bagus"
    assert reply.missing({3: 4}) == [4, 5, 6, 7, 8, 9]


@pytest.mark.parametrize(
    ("text", "errors"),
    [
        ("U1: 5", [(1, "5")]),
        ("U2: 0\nU3: 4", [(2, "0")]),
        ("4 4 4 4 4 4 4 4 7", [(9, "7")]),
        ("U4: mahal sekali", [(4, "mahal sekali")]),
        ("1. 10", [(1, "10")]),
    ],
)
def test_wrong_values_are_errors_not_scores(text: str, errors: list[tuple[int, str]]) -> None:
    reply = parse_survey(text)
    assert [(e.element, e.value) for e in reply.errors] == errors
    assert all(1 <= v <= 4 for v in reply.scores.values())


def test_prose_is_not_a_survey() -> None:
    for text in (
        "Terima kasih atas jawabannya.",
        "Saya masih bingung soal nomor 2 tadi.",
        "",
        "Semua pegawai 4 orang sudah dihitung",
        "Semua 5",
    ):
        assert not parse_survey(text).found, text


# --- IKM -----------------------------------------------------------------------------------


def test_ikm_hand_computed() -> None:
    # Two respondents. Element sums: 7,8,6,8,7,8,8,5,7 → NRR 3.5,4,3,4,3.5,4,4,2.5,3.5 → sum 32
    # IKM = 32 x 1/9 x 25 = 88.888… → 88.89, grade A.
    a = {1: 4, 2: 4, 3: 3, 4: 4, 5: 4, 6: 4, 7: 4, 8: 3, 9: 4}
    b = {1: 3, 2: 4, 3: 3, 4: 4, 5: 3, 6: 4, 7: 4, 8: 2, 9: 3}
    ikm = compute_ikm([a, b])
    assert ikm is not None
    assert ikm.respondents == 2
    assert ikm.nrr[8] == Fraction(5, 2) and ikm.nrr[1] == Fraction(7, 2)
    assert ikm.value == Fraction(800, 9)
    assert ikm.rounded == Decimal("88.89") and ikm.grade == "A" and ikm.grade_label() == "Sangat Baik"


def test_exact_one_ninth_not_0_11() -> None:
    ikm = compute_ikm([ALL4])
    assert ikm is not None and ikm.value == 100  # 0.11 would give 99.00
    low = compute_ikm([dict.fromkeys(range(1, 10), 1)])
    assert low is not None and low.value == 25 and low.grade == "D"


def test_nrr_counts_only_those_who_answered_an_element() -> None:
    # An 8-of-9 survey counts in the eight elements it answers: U9 averages over one respondent.
    ikm = compute_ikm([{**ALL4, 9: 2}, dict.fromkeys(range(1, 9), 2)])
    assert ikm is not None and ikm.respondents == 2
    assert ikm.nrr == {**dict.fromkeys(range(1, 9), Fraction(3)), 9: Fraction(2)}
    assert ikm.answered == {**dict.fromkeys(range(1, 9), 2), 9: 1}
    # (8 x 3 + 2) x 1/9 x 25 = 72.22 (C)
    assert ikm.value == Fraction(26 * 25, 9) and ikm.rounded == Decimal("72.22") and ikm.grade == "C"


def test_no_respondents() -> None:
    assert compute_ikm([]) is None


@pytest.mark.parametrize(
    ("value", "letter", "label"),
    [
        ("25.00", "D", "Tidak Baik"),
        ("64.99", "D", "Tidak Baik"),
        ("65.00", "C", "Kurang Baik"),
        ("76.60", "C", "Kurang Baik"),
        ("76.61", "B", "Baik"),
        ("88.30", "B", "Baik"),
        ("88.31", "A", "Sangat Baik"),
        ("100.00", "A", "Sangat Baik"),
    ],
)
def test_grade_boundaries(value: str, letter: str, label: str) -> None:
    assert grade(Decimal(value))[:2] == (letter, label)
    ikm = ikm_from_value(Fraction(value))
    assert (ikm.grade, ikm.grade_label()) == (letter, label)


def test_rounding_before_grading() -> None:
    # 64.995 reports as 65.00 (half up) and is graded C; 76.604 reports as 76.60, grade C.
    assert ikm_from_value(Fraction("64.995")).grade == "C"
    assert ikm_from_value(Fraction("76.604")).grade == "C"
    assert ikm_from_value(Fraction("76.605")).grade == "B"


# --- letters, labels and prose (pure) ------------------------------------------------------------

LABEL_CASES = [
    (f"{form.format(n=e.number)}{label}", e.number, score)
    for e in ELEMENTS
    for labels in (e.labels_id, e.labels_en)
    for score, label in enumerate(labels, start=1)
    for form in ("{n}. ", "U{n}: ", "{n}) ")
]


@pytest.mark.parametrize(("text", "number", "score"), LABEL_CASES)
def test_every_label_of_every_element(text: str, number: int, score: int) -> None:
    assert parse_survey(text).scores == {number: score}
    assert parse_survey(text.upper()).scores == {number: score}


LETTER_FORMS = ["{n}. {x}", "{n}.{x}", "{n}) {x}", "U{n}: {x}", "{n} = {x}", "U{n} = {x}", "Unsur {n}: {x}",
                "{n}. ({x})", "{n}. {x}.", "{n} - {x}", "u{n}.{x}"]  # fmt: skip


@pytest.mark.parametrize("form", LETTER_FORMS)
@pytest.mark.parametrize(("letter", "score"), [("a", 1), ("b", 2), ("c", 3), ("d", 4)])
def test_letters_a_to_d(form: str, letter: str, score: int) -> None:
    for x in (letter, letter.upper()):
        text = "\n".join(form.format(n=n, x=x) for n in range(1, 10))
        reply = parse_survey(text)
        assert reply.scores == dict.fromkeys(range(1, 10), score) and not reply.errors, text


def test_a_letter_with_its_label_must_agree() -> None:
    assert parse_survey("4. d. Gratis\n9. a. Buruk").scores == {4: 4, 9: 1}
    reply = parse_survey("4. a. Gratis")
    assert not reply.scores and [(e.element, e.value) for e in reply.errors] == [(4, "a. Gratis")]


@pytest.mark.parametrize(
    "text",
    [
        "1. a atau b yang dipakai?",
        "2. a. Surat permohonan dari instansi",
        "Untuk nomor 1 a saya kurang paham.",
        "a. Tidak sesuai\nb. Kurang sesuai\nc. Sesuai\nd. Sangat sesuai",  # the options, unmarked
        "Saya pilih a.",
        "1 2 3 4",
        "Baik, terima kasih, sudah jelas",
        "Terima kasih banyak Pak.",
        "1. Sesuai dengan ketentuan yang berlaku.",
        "3. Cepat atau lambat akan kami laporkan.",
        "abcdabcd",  # eight letters are not a row of nine
        "196509121",  # an old 9-digit NIP on its own line
        "1. [ ] Sangat sesuai",  # an empty box is not a choice
    ],
)
def test_letters_and_labels_in_prose_do_not_count(text: str) -> None:
    assert not parse_survey(text).found


def test_pairs_on_one_line_need_distinct_elements() -> None:
    assert parse_survey("1.d 2.c").scores == {1: 4, 2: 3}
    assert not parse_survey("1.d 1.c").found


@pytest.mark.parametrize(
    "text",
    [
        "1" + " " * 200_000 + "x",
        "U1: " + "d " * 100_000,
        "1." * 100_000,
        "u" * 200_000,
        ("1. " + "a" * 290 + "\n") * 3_000,
        ">" * 200_000,
        "1.d " * 70 + "x",
        "[(" * 100_000,
    ],
)
def test_hostile_lines_take_linear_time(text: str) -> None:
    import time

    started = time.perf_counter()
    parse_survey(text)
    assert time.perf_counter() - started < 2.0


# --- NRR tertimbang and elements nobody rated ------------------------------------------------------


def test_nrr_weighted_per_element_is_exactly_one_ninth() -> None:
    a = {1: 4, 2: 4, 3: 3, 4: 4, 5: 4, 6: 4, 7: 4, 8: 3, 9: 4}
    b = {1: 3, 2: 4, 3: 3, 4: 4, 5: 3, 6: 4, 7: 4, 8: 2, 9: 3}
    ikm = compute_ikm([a, b])
    assert ikm is not None
    assert ikm.weighted[1] == Fraction(7, 2) / 9 == Fraction(7, 18)  # 0.3889, not 3.5 x 0.11 = 0.385
    assert ikm.weighted[8] == Fraction(5, 18)
    assert sum(ikm.weighted.values()) * 25 == ikm.value == Fraction(800, 9)
    assert [e.weighted for e in ikm.elements] == [ikm.weighted[n] for n in range(1, 10)]


def test_an_element_nobody_rated_leaves_the_ikm_undefined_but_shows_the_rest() -> None:
    tally = tally_surveys([dict.fromkeys(range(1, 9), 4), {1: 2}, {}])
    assert tally.respondents == 2  # an empty survey is no respondent
    assert tally.unrated == (9,)
    assert tally.nrr[1] == 3 and tally.weighted[1] == Fraction(1, 3) and 9 not in tally.nrr
    assert tally.answered == {**dict.fromkeys(range(2, 9), 1), 1: 2, 9: 0}
    assert tally.ikm is None and compute_ikm([dict.fromkeys(range(1, 9), 4)]) is None
    assert tally_surveys([]).ikm is None and tally_surveys([]).respondents == 0


def test_scores_outside_the_scale_are_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        tally_surveys([{1: 5}])
    with pytest.raises(ValueError, match="element 10"):
        tally_surveys([{10: 4}])
