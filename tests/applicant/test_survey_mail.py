"""Survey replies as they arrive: real RFC 5322 mail from the clients applicants use, read by
mailbot.core.message.parse_message and parse_survey exactly as the dispatcher calls it.

The quoted part of every reply is our own answer mail: the answer (with a numbered list), the
public history (with the applicant's question, itself a numbered list with a/b items) and the
blank SKM form rendered from the real templates, so that a template change that makes the blank
form look like answers fails here.
"""

from __future__ import annotations

import base64
import quopri

import pytest

from mailbot.core.compose import environment
from mailbot.core.message import parse_message
from mailbot.core.survey import ELEMENTS, SurveyReply, parse_survey

ALL4 = dict.fromkeys(range(1, 10), 4)
D_C = {1: 4, 2: 3, 3: 4, 4: 4, 5: 3, 6: 4, 7: 4, 8: 3, 9: 4}  # d c d d c d d c d


def blank_form(language: str) -> str:
    source = f'{{% import "{language}/_macros.j2" as m %}}{{{{ m.survey_form(elements) }}}}'
    return environment().from_string(source).render(elements=ELEMENTS)


def our_answer(language: str = "id") -> str:
    """The body of the answer mail the applicant replies to."""
    return (
        "Yth. Rina Kartika,\n\n"
        "Berikut jawaban atas pengajuan konsultasi nomor KONS-2026-000001.\n\n"
        "Analisis Beban Kerja disusun dengan langkah berikut:\n"
        "1. Sesuai dengan Permenpan RB 1/2020, hitung beban kerja per jabatan.\n"
        "2. a. Gunakan 1.250 jam kerja efektif per tahun.\n"
        "3. d\n"  # a list item that is only a letter, in our text: never the applicant's answer
        "4. Cepat atau lambat hasilnya dilaporkan kepada pimpinan.\n\n"
        "Disampaikan oleh: Budi Santoso, Analis SDM Aparatur\n\n"
        "Salinan riwayat konsultasi:\n"
        "  16-11-2026 09.00 WIB  Pengajuan konsultasi diterima (pemohon)\n"
        "    Pertanyaan saya:\n"
        "    1. a atau b yang dipakai untuk jabatan pelaksana?\n"
        "    2. b\n"
        "    3. Sangat sesuai dengan peta jabatan?\n\n"
        "  16-11-2026 09.20 WIB  Jawaban disampaikan oleh Budi Santoso\n"
        + blank_form(language)
        + "\n\nBila masih ada pertanyaan tentang hal yang sama, balas email ini.\n\n"
        "--\nLayanan Konsultasi Online\nBPSDM Kementerian Desa PDTT\n"
    )


HEAD = (
    "From: Rina Kartika <rina.kartika@kemendesa.example.go.id>\r\n"
    "To: Layanan Konsultasi <konsultasi@bpsdm.example.go.id>\r\n"
    "Subject: Re: [KONS-2026-000001] Jawaban atas pengajuan konsultasi Anda\r\n"
    "Date: Tue, 17 Nov 2026 08:15:00 +0700\r\n"
    "Message-ID: <reply-1@kemendesa.example.go.id>\r\n"
    "In-Reply-To: <answer-1@bpsdm.example.go.id>\r\n"
    "References: <answer-1@bpsdm.example.go.id>\r\n"
    "MIME-Version: 1.0\r\n"
)


def gmail(top: str, language: str = "id") -> bytes:
    """Gmail: the new text, "Pada … menulis:", every old line behind "> "; quoted-printable."""
    quoted = "\n".join(("> " + x).rstrip() for x in our_answer(language).splitlines())
    body = (
        f"{top}\n\nPada Sen, 16 Nov 2026 pukul 09.20 Layanan Konsultasi <konsultasi@bpsdm.example.go.id> "
        f"menulis:\n{quoted}\n"
    )
    encoded = quopri.encodestring(body.replace("\n", "\r\n").encode()).decode()
    return (
        HEAD
        + "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode() + encoded.encode()


def outlook(top: str, language: str = "id") -> bytes:
    """Outlook: the new text, the rule, the header block, the old mail below, nothing quoted."""
    body = (
        f"{top}\n\nSalam,\nRina\n\n________________________________\n"
        "Dari: Layanan Konsultasi <konsultasi@bpsdm.example.go.id>\n"
        "Dikirim: Senin, 16 November 2026 09.20\n"
        "Kepada: Rina Kartika <rina.kartika@kemendesa.example.go.id>\n"
        "Subjek: [KONS-2026-000001] Jawaban atas pengajuan konsultasi Anda\n\n" + our_answer(language)
    )
    return (HEAD + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body.replace("\n", "\r\n")).encode()


def iphone(top: str, language: str = "id") -> bytes:
    """iOS Mail: "Dikirim dari iPhone saya", then the quote; base64."""
    quoted = "\n".join(("> " + x).rstrip() for x in our_answer(language).splitlines())
    body = (
        f"{top}\n\nDikirim dari iPhone saya\n\n"
        f"> Pada 16 Nov 2026, pukul 09.20, Layanan Konsultasi <konsultasi@bpsdm.example.go.id> menulis:\n>\n"
        f"{quoted}\n"
    )
    encoded = base64.encodebytes(body.replace("\n", "\r\n").encode()).decode()
    return (
        HEAD
        + "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + encoded
    ).encode()


def outlook_html(top: str, language: str = "id") -> bytes:
    """Outlook on the web, HTML only: each new line a <div>, the old mail after an <hr>."""
    new = "".join(f"<div>{line or '<br>'}</div>" for line in top.split("\n"))
    old = "".join(f"<div>{line or '<br>'}</div>" for line in our_answer(language).split("\n"))
    html = (
        f"<html><body>{new}<div><br></div><hr style='display:inline-block;width:98%'>"
        "<div id='divRplyFwdMsg'><b>Dari:</b> Layanan Konsultasi &lt;konsultasi@bpsdm.example.go.id&gt;<br>"
        "<b>Dikirim:</b> Senin, 16 November 2026 09.20<br><b>Kepada:</b> Rina Kartika<br>"
        f"<b>Subjek:</b> [KONS-2026-000001] Jawaban</div><div>{old}</div></body></html>"
    )
    return (HEAD + "Content-Type: text/html; charset=utf-8\r\n\r\n" + html).encode()


CLIENTS = {"gmail": gmail, "outlook": outlook, "iphone": iphone, "outlook_html": outlook_html}


def read(raw: bytes) -> SurveyReply:
    msg = parse_message(raw)
    return parse_survey(msg.text, msg.html_text)


SURVEYS: list[tuple[str, dict[int, int]]] = [
    # the regulation's own form: number and letter, a = 1 ... d = 4
    ("1. d\n2. c\n3. d\n4. d\n5. c\n6. d\n7. d\n8. c\n9. d", D_C),
    ("1.d\n2.c\n3.d\n4.d\n5.c\n6.d\n7.d\n8.c\n9.d", D_C),
    ("1) d\n2) c\n3) d\n4) d\n5) c\n6) d\n7) d\n8) c\n9) d", D_C),
    ("U1: d\nU2: c\nU3: d\nU4: d\nU5: c\nU6: d\nU7: d\nU8: c\nU9: d", D_C),
    ("1 = D\n2 = C\n3 = D\n4 = D\n5 = C\n6 = D\n7 = D\n8 = C\n9 = D", D_C),
    ("1. (d)\n2. (c)\n3. [d]\n4. d.\n5. c)\n6. d\n7. d\n8. c\n9. d", D_C),
    ("Berikut penilaian saya:\n1.d 2.c 3.d 4.d 5.c 6.d 7.d 8.c 9.d\nTerima kasih.", D_C),
    ("1d, 2c, 3d, 4d, 5c, 6d, 7d, 8c, 9d", D_C),
    ("d c d d c d d c d", D_C),
    ("DCDDCDDCD", D_C),
    # a letter with its label, as copied from the form
    (
        "1. d. Sangat sesuai\n2. c. Mudah\n3. d. Sangat cepat\n4. d. Gratis\n5. c. Sesuai\n"
        "6. d. Sangat kompeten\n7. d. Sangat sopan dan ramah\n8. c. Berfungsi kurang maksimal\n"
        "9. d. Sangat baik",
        D_C,
    ),
    ("1. d (Sangat sesuai)\n2. c (Mudah)", {1: 4, 2: 3}),
    # the words of the scale, each element's own, Indonesian and English
    (
        "1. Sangat sesuai\n2. Kurang mudah\n3. Cepat\n4. Gratis\n5. Tidak sesuai\n6. Sangat kompeten\n"
        "7. Sopan dan ramah\n8. Ada tetapi tidak berfungsi\n9. Cukup",
        {1: 4, 2: 2, 3: 3, 4: 4, 5: 1, 6: 4, 7: 3, 8: 2, 9: 2},
    ),
    (
        "1. Very appropriate\n2. Less easy\n3. Fast\n4. Free\n5. Not appropriate\n6. Very competent\n"
        "7. Polite and friendly\n8. Exists but does not work\n9. Fair",
        {1: 4, 2: 2, 3: 3, 4: 4, 5: 1, 6: 4, 7: 3, 8: 2, 9: 2},
    ),
    ("1. Sangat sesuai, terima kasih\n4. Gratis!", {1: 4, 4: 4}),
    # digits, as before
    ("1. 4\n2. 3\n3. 4", {1: 4, 2: 3, 3: 4}),
    ("4 3 4 4 3 4 4 3 4", D_C),
    # a partial survey is a survey
    ("U1: d\nU2: c\nU3: d\nU4: d\nU5: c\nU6: d\nU7: d\nU8: c", {n: D_C[n] for n in range(1, 9)}),
]


@pytest.mark.parametrize("client", sorted(CLIENTS))
@pytest.mark.parametrize(("top", "scores"), SURVEYS, ids=[f"survey{i}" for i in range(len(SURVEYS))])
def test_answers_on_top_of_the_quoted_answer(client: str, top: str, scores: dict[int, int]) -> None:
    reply = read(CLIENTS[client](top))
    assert reply.scores == scores
    assert not reply.errors


NOT_SURVEYS = [
    "Terima kasih banyak Pak.",
    "Baik, terima kasih, sudah jelas",
    "Terima kasih, sudah sesuai.",
    "Sangat membantu, terima kasih Bapak.",
    # a further question with a numbered list and a/b items: prose, not answers
    "Mohon penjelasan lagi:\n1. a atau b yang dipakai?\n2. Apakah sesuai dengan Permenpan?\n"
    "3. Untuk nomor 2 a saya belum paham.",
    "Saya pilih opsi a, apakah sudah benar?",
    "1. Sesuai dengan jawaban Bapak, kami akan menyusun ABK.\n2. Cepat sekali responnya, terima kasih.",
]


@pytest.mark.parametrize("client", sorted(CLIENTS))
@pytest.mark.parametrize("top", NOT_SURVEYS, ids=[f"prose{i}" for i in range(len(NOT_SURVEYS))])
def test_no_scores_is_no_survey(client: str, top: str) -> None:
    reply = read(CLIENTS[client](top))
    assert not reply.found, (reply.scores, reply.errors)


@pytest.mark.parametrize("language", ["id", "en"])
@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_the_blank_form_and_our_history_are_not_answers(client: str, language: str) -> None:
    """The whole quoted answer under a one-word reply: numbered list, letters, labels, the form."""
    assert not read(CLIENTS[client]("Terima kasih.", language)).found


def test_answers_typed_into_the_quoted_form() -> None:
    """Gmail: the applicant wrote into our quoted form instead of on top."""
    raw = gmail("Sudah saya isi di bawah.")
    text = raw.decode()
    filled = (
        text.replace("U1. Persyaratan: ___", "U1. Persyaratan: d")
        .replace("U2. Sistem, mekanisme, dan prosedur: ___", "U2. Sistem, mekanisme, dan prosedur: c")
        .replace("U4. Biaya/tarif: ___", "U4. Biaya/tarif: Gratis")
    )
    assert filled != text
    reply = read(filled.encode())
    assert reply.scores == {1: 4, 2: 3, 4: 4} and not reply.errors


def test_answers_typed_into_the_form_below_an_outlook_rule() -> None:
    raw = outlook("Terlampir penilaian saya di formulir.").decode()
    filled = raw.replace("U3. Waktu penyelesaian: ___", "U3. Waktu penyelesaian: b").replace(
        "U9. Sarana dan prasarana: ___", "U9. Sarana dan prasarana: Sangat baik"
    )
    reply = read(filled.encode())
    assert reply.scores == {3: 2, 9: 4} and not reply.errors


@pytest.mark.parametrize(
    ("top", "errors"),
    [
        # a letter and a label that disagree: neither is taken, the applicant is asked again
        ("1. c. Sangat sesuai\n2. d", [(1, "c. Sangat sesuai")]),
        ("U3: e", [(3, "e")]),
        ("U4: mahal sekali", [(4, "mahal sekali")]),
    ],
)
def test_unreadable_answers_are_errors(top: str, errors: list[tuple[int, str]]) -> None:
    reply = read(gmail(top))
    assert [(e.element, e.value) for e in reply.errors] == errors and reply.found


def thunderbird_bottom_post(bottom: str) -> bytes:
    """Thunderbird, answered below the quote: "On … wrote:", the "> " lines, then the new text."""
    quoted = "\n".join(("> " + x).rstrip() for x in our_answer().splitlines())
    body = f"On 16/11/2026 09:20, Layanan Konsultasi wrote:\n{quoted}\n\n{bottom}\n\nRina\n"
    return (
        HEAD + "Content-Type: text/plain; charset=utf-8; format=flowed\r\n\r\n" + body.replace("\n", "\r\n")
    ).encode()


def test_answers_below_the_quote() -> None:
    reply = read(thunderbird_bottom_post("1. d\n2. c\n3. d\n4. d\n5. c\n6. d\n7. d\n8. c\n9. d"))
    assert reply.scores == D_C and not reply.errors
    assert not read(thunderbird_bottom_post("Terima kasih banyak Pak.")).found
